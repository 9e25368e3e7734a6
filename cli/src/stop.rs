//! The stop flag: SIGINT (Ctrl-C) and SIGTERM ask a program to finish.
//!
//! A signal handler may only do async-signal-safe things (signal-safety(7)),
//! so ours stores the signal's number in an atomic and returns; the
//! program's loop looks at the flag and ends cleanly, saying what it did.
//!
//! The handlers are installed **without SA_RESTART**: a process blocked in
//! a slow system call (accept, poll, read on a socket) gets EINTR back when
//! the signal arrives, and so sees the flag at once (UNP 5.9). Rust's std
//! would retry EINTR for us inside its own `accept` and `sleep`; that is why
//! the programs make these calls through nix and libc.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The signal that asked us to stop (SIGINT or SIGTERM), 0 while running.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn note_stop(signal: libc::c_int) {
    note(signal);
}

/// Record that `signal` asked us to stop: what the handler does, for a
/// program that installs a handler of its own (echo-server's, which
/// knows the parent from a forked child). Async-signal-safe: one atomic
/// store.
pub fn note(signal: libc::c_int) {
    STOP_SIGNAL.store(signal, Ordering::SeqCst);
}

/// Catch SIGINT and SIGTERM into the flag.
///
/// Both are unblocked first: a blocked signal is never delivered, and the
/// signal mask is inherited across fork() and exec(), so a parent that had
/// blocked SIGTERM would make us unstoppable.
pub fn install() -> nix::Result<()> {
    let mut ours = SigSet::empty();
    ours.add(Signal::SIGINT);
    ours.add(Signal::SIGTERM);
    ours.thread_unblock()?;
    let action = SigAction::new(
        SigHandler::Handler(note_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: note_stop only stores to an atomic, which is async-signal-safe.
    unsafe {
        sigaction(Signal::SIGINT, &action)?;
        sigaction(Signal::SIGTERM, &action)?;
    }
    Ok(())
}

/// The signal that asked us to stop, if one has arrived.
pub fn requested() -> Option<Signal> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}
