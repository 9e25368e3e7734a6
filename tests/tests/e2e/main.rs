//! echo-lab's end-to-end tests: real processes, real sockets, the real
//! kernel, on ephemeral loopback ports. One binary, one module per topic.
//!
//! Every wait has a deadline; no test sleeps and hopes.

mod echo_pair;
mod lessons;
mod observer;

use std::sync::Once;

/// Once per test binary: become the subreaper of our descendants, so that
/// children orphaned by a killed server are ours to count and reap.
pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(lifecycle::procfs::become_subreaper);
}
