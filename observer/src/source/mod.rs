//! The sources: what produces the event stream.
//!
//! - [`poll`]: inet_diag and /proc, every `--interval`, with the destroy
//!   notifications between them (the watch, and each lab host); it dumps
//!   only when the namespace's [`counters`] moved.
//! - [`trace`]: the kernel's tracepoint, every transition (`--exact`).
//! - [`replay`]: a recording read back (`observer replay`).
//! - the lab's wire, in [`crate::lab`]: every segment between its hosts.

pub mod counters;
pub mod poll;
pub mod replay;
pub mod trace;
