//! # lifecycle: the harness that drives echo-lab's programs
//!
//! Start a server on a free port and wait for its ready line, run clients
//! with scripted input, look at processes through /proc, and clean up
//! everything, even when a check fails.
//!
//! # Layout
//! - [`bins`]: build and find echo-server, echo-client, observer.
//! - [`cli`]: the two commands' argument parsing and exit codes.
//! - [`spawn`]: a child process with captured output, killed and reaped on drop.
//! - [`echo`]: handles on an echo-server and echo-clients.
//! - [`lab`]: `observer lab` (root), its namespaces and its timeline.
//! - [`observer`]: a live `observer watch --json` and snapshots.
//! - [`grade`]: `--server-cmd`, `--client-cmd`, `lifecycle grade`: checks
//!   for any echo server and client, a whole class isolated.
//! - [`interrupt`]: Ctrl-C stops everything and removes temporary files.
//! - [`isolate`]: a network namespace of one's own for a piece of work.
//! - [`procfs`]: process state, parent and wchan from /proc; subreaping.
//! - [`random`]: reproducible bytes for the echo checks.
//! - [`story`]: a scenario's narrated timeline and verdict.
//! - [`scenarios`]: the lessons, each a scenario.
//! - [`transcript`]: the tutorial's console blocks, run and compared.
//! - [`wait`]: wait for a condition with a deadline.

pub mod bins;
pub mod echo;
pub mod grade;
pub mod interrupt;
pub mod isolate;
pub mod lab;
pub mod observer;
pub mod procfs;
pub mod random;
pub mod scenarios;
pub mod spawn;
pub mod story;
pub mod transcript;
pub mod wait;

pub use random::random_bytes;
