//! What every echo-lab program shares, written once (in the spirit of
//! ripgrep's `grep-cli`): the programs and the harness depend on it, so a
//! program's `main.rs` holds only what is its own.
//!
//! # Layout
//! - [`args`]: the command line. A usage error is one line,
//!   `PROGRAM: what was wrong (see --help)`, and exit status 2; `--help`
//!   and `--version` print and exit 0 ([`parse`]). A number that cannot
//!   be negative says so (`--port -1`) rather than clap's "unexpected
//!   argument '-1' found" ([`at_least`], with `allow_negative_numbers` on
//!   the command so that `-1` reaches the parser as a value). The lesson's
//!   port, [`LESSON_PORT`].
//! - [`duration`]: a duration always carries its unit: `10ms`, `0.5s`,
//!   `300us`, `2m`.
//! - [`errno`]: an errno by its header name, `ECONNRESET`.
//! - [`stop`]: SIGINT and SIGTERM set a flag, without SA_RESTART.
//! - [`proc_stat`]: `/proc/PID/stat`, and a process's children.

pub mod args;
pub mod duration;
pub mod errno;
pub mod proc_stat;
pub mod stop;

pub use args::{Bounded, LESSON_PORT, at_least, between, parse, parse_from, usage_line};
pub use duration::{duration, duration_between, shown};
pub use errno::errno_name;
