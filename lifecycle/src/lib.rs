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
//! - [`grade`]: `--server-cmd`, checks for any echo server.
//! - [`interrupt`]: Ctrl-C stops everything and removes temporary files.
//! - [`isolate`]: a network namespace of one's own for a piece of work.
//! - [`procfs`]: process state, parent and wchan from /proc; subreaping.
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
pub mod scenarios;
pub mod spawn;
pub mod story;
pub mod transcript;
pub mod wait;

/// A deterministic pseudo-random byte stream (xorshift64*): the same seed
/// gives the same bytes, so a failing echo test can be rerun exactly.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
