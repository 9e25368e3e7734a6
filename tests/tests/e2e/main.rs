//! echo-lab's end-to-end tests: real processes, real sockets, the real
//! kernel, on ephemeral loopback ports. One binary, one module per topic.
//!
//! Every wait has a deadline; no test sleeps and hopes.

mod docs;
mod echo_pair;
mod exact;
mod lab;
mod lessons;
mod observer;

use std::sync::Once;

/// Once per test binary: become the subreaper of our descendants, so that
/// children orphaned by a killed server are ours to count and reap.
pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(lifecycle::procfs::become_subreaper);
}

/// Root-only tests call this first: without root they say why they are
/// skipped (visible with --nocapture, and in the test's output on failure
/// of others) and return early.
pub fn needs_root(why: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIPPED: needs root: {why}");
    false
}
