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

use std::time::Duration;

/// Parse `10ms`, `0.5s`, `2s`, `300ms`; a bare number is milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1e-3)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 10ms or 0.5s)"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("`{text}` is out of range"))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("300"), Ok(Duration::from_millis(300)));
        assert!(parse_duration("soon").is_err());
    }
}
