//! # observer: the kernel's own account of every TCP socket
//!
//! The third terminal of the lesson. It asks the kernel over netlink
//! (NETLINK_SOCK_DIAG, the seed's NETLINK_INET_DIAG) which TCP sockets
//! exist, in which state, with which queues and timers, and reads /proc to
//! say which processes hold them and what those processes are doing.
//!
//! # Layout (read in this order)
//! - [`tcp_state`]: the states, numbered and named as the kernel does, and
//!   what the state machine says about states passed unseen.
//! - [`wire`]: the byte layouts of every structure exchanged, as tables.
//! - [`diag`]: the request, its filter bytecode, the dump loop, the answer,
//!   the destroy notifications.
//! - [`procfs`]: socket owners and process state from /proc.
//! - [`roles`]: listener, server end, client end.
//! - [`snapshot`]: `observer snapshot`.
//! - [`watch`]: `observer watch`, the live timeline.
//! - [`exact`]: `--exact`, every transition from the kernel's tracepoint.
//! - [`render`]: colours, durations, tables.
//! - [`explain`]: `observer explain`, one conversation byte by byte.
//! - [`kernel_echo`]: `observer kernel-echo`, the kernel's own echo.
//! - [`lab`]: `observer lab`, two namespaces and a slow wire between them.
//! - [`netns`]: named network namespaces.
//!
//! The schema of `--json` is in observer/README.md.

pub mod diag;
pub mod exact;
pub mod explain;
pub mod kernel_echo;
pub mod lab;
pub mod netns;
pub mod procfs;
pub mod render;
pub mod roles;
pub mod snapshot;
pub mod tcp_state;
pub mod watch;
pub mod wire;

/// Stop flag set by SIGINT/SIGTERM.
pub mod stop {
    use std::sync::atomic::{AtomicBool, Ordering};

    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

    static STOP: AtomicBool = AtomicBool::new(false);

    extern "C" fn note(_: libc::c_int) {
        STOP.store(true, Ordering::SeqCst);
    }

    /// Install handlers without SA_RESTART, so a blocking poll() returns,
    /// and unblock the signals in case our parent left them blocked (the
    /// mask is inherited across exec).
    pub fn install() {
        let mut ours = SigSet::empty();
        ours.add(Signal::SIGINT);
        ours.add(Signal::SIGTERM);
        let _ = ours.thread_unblock();
        let action = SigAction::new(SigHandler::Handler(note), SaFlags::empty(), SigSet::empty());
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe {
            let _ = sigaction(Signal::SIGINT, &action);
            let _ = sigaction(Signal::SIGTERM, &action);
        }
    }

    pub fn requested() -> bool {
        STOP.load(Ordering::SeqCst)
    }
}
