//! Signals: reaping children (SIGCHLD), stopping (SIGINT/SIGTERM), and
//! what we do with SIGPIPE.
//!
//! Lesson: UNP 5.8-5.10. A child that exits stays a zombie until its parent
//! calls wait() or waitpid(). The parent learns of it through SIGCHLD. Three
//! strategies are switchable with `--reap`:
//!
//! * `waitpid`: the handler loops `waitpid(-1, WNOHANG)` until no child is
//!   left to collect. Correct: standard signals are not queued, so five
//!   children exiting together may raise SIGCHLD once, and one handler call
//!   must collect all five.
//! * `wait`: the handler calls `wait()` once per signal: the bug UNP 5.10
//!   shows, zombies remain when signals merge.
//! * `none`: no handler, SIGCHLD's default disposition is "ignore, but keep
//!   the zombie": every child stays a zombie (UNP 5.9).
//!
//! The handlers are installed **without SA_RESTART**: a slow system call the
//! parent is blocked in (accept) returns EINTR when the signal arrives, and
//! the server restarts it by hand (see `accept.rs`). That is the lesson of
//! UNP 5.9 "Handling interrupted system calls".
//!
//! A signal handler may only call async-signal-safe functions (signal-safety(7)):
//! no allocation, no locks, no println!. So the handler only stores each
//! reaped (pid, status) in a fixed array of atomics; the main loop prints them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::config::Reap;

/// Reaped children, written by the SIGCHLD handler, read by the main loop:
/// a single-producer single-consumer ring. The producer is the handler, which
/// interrupts the consumer on the same thread, so it never waits for it.
const RING: usize = 1024;
static REAPED: [AtomicU64; RING] = [const { AtomicU64::new(0) }; RING];
static WRITTEN: AtomicUsize = AtomicUsize::new(0);
static READ: AtomicUsize = AtomicUsize::new(0);
/// Children reaped while the ring was full: collected, but not logged.
static UNLOGGED: AtomicUsize = AtomicUsize::new(0);

fn record(pid: libc::pid_t, status: libc::c_int) {
    let w = WRITTEN.load(Ordering::Relaxed);
    if w - READ.load(Ordering::Acquire) >= RING {
        UNLOGGED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let packed = ((pid as u32 as u64) << 32) | status as u32 as u64;
    REAPED[w % RING].store(packed, Ordering::Relaxed);
    WRITTEN.store(w + 1, Ordering::Release);
}

/// `--reap waitpid`: collect every child that has exited, without blocking.
extern "C" fn reap_with_waitpid(_: libc::c_int) {
    // waitpid may set errno; the code we interrupted may be about to read
    // errno from its own failed call. Save and restore it.
    let saved = Errno::last_raw();
    loop {
        let mut status = 0;
        // SAFETY: waitpid is async-signal-safe; `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break; // 0: children remain but none has exited; -1: ECHILD.
        }
        record(pid, status);
    }
    Errno::set_raw(saved);
}

/// `--reap wait`: one wait() per SIGCHLD. Wrong on purpose (UNP 5.10).
extern "C" fn reap_with_one_wait(_: libc::c_int) {
    let saved = Errno::last_raw();
    let mut status = 0;
    // SAFETY: wait is async-signal-safe; SIGCHLD means at least one child
    // has changed state, so this returns at once.
    let pid = unsafe { libc::wait(&mut status) };
    if pid > 0 {
        record(pid, status);
    }
    Errno::set_raw(saved);
}

/// Install the handlers for the chosen reaping strategy and for stopping.
///
/// `reap = None` (thread mode) installs no SIGCHLD handler.
pub fn install(reap: Option<Reap>) -> nix::Result<()> {
    unblock_inherited();
    // SIGPIPE: Rust's runtime already set it to SIG_IGN before main(). We say
    // it again here because it is part of the lesson: with SIGPIPE ignored, a
    // write to a connection the client has reset fails with EPIPE, which the
    // echo loop logs, instead of the signal silently killing the server (or,
    // in fork mode, the child) as it would a C program (UNP 5.13).
    // SAFETY: installing SIG_IGN runs no code of ours in signal context.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }?;

    // SIGINT/SIGTERM set the stop flag, without SA_RESTART: accept()
    // returns EINTR and the serve loop sees the flag (echo_lab_cli::stop).
    echo_lab_cli::stop::install()?;

    let handler = match reap {
        Some(Reap::Waitpid) => reap_with_waitpid,
        Some(Reap::Wait) => reap_with_one_wait,
        // --reap none: SIGCHLD keeps its default disposition (SIG_DFL, which
        // ignores the signal but keeps the zombie). Setting SIG_IGN instead
        // would make the kernel reap for us (POSIX.1-2001): not the lesson.
        Some(Reap::None) | None => return Ok(()),
    };
    // SA_NOCLDSTOP: no SIGCHLD when a child is merely stopped (Ctrl-Z).
    let chld = SigAction::new(
        SigHandler::Handler(handler),
        SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    // SAFETY: both handlers call only waitpid/wait and atomics (async-signal-safe).
    unsafe { sigaction(Signal::SIGCHLD, &chld) }?;
    Ok(())
}

/// A blocked signal is never delivered, handler or not, and the signal
/// mask is inherited across fork() and exec(): a parent that had blocked
/// SIGTERM would make us unstoppable. Start from a known mask.
fn unblock_inherited() {
    block_caught(false);
}

/// In a freshly forked child: give SIGINT, SIGTERM and SIGCHLD back their
/// default actions, so the parent's SIGTERM at shutdown ends the child.
///
/// Only sigaction() is called: async-signal-safe, fine right after fork().
pub fn reset_in_child() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        // SAFETY: restoring SIG_DFL installs no code of ours.
        let _ = unsafe { sigaction(signal, &default) };
    }
}

/// The signal that asked us to stop, if one has arrived.
pub use echo_lab_cli::stop::requested as stop_requested;

/// Take what the SIGCHLD handler has collected since the last call.
pub fn take_reaped() -> Vec<WaitStatus> {
    let written = WRITTEN.load(Ordering::Acquire);
    let mut read = READ.load(Ordering::Relaxed);
    let mut out = Vec::new();
    while read < written {
        let packed = REAPED[read % RING].load(Ordering::Relaxed);
        let pid = Pid::from_raw((packed >> 32) as u32 as i32);
        if let Ok(status) = WaitStatus::from_raw(pid, packed as u32 as i32) {
            out.push(status);
        }
        read += 1;
    }
    READ.store(read, Ordering::Release);
    out
}

/// Children reaped but not logged because the ring overflowed.
pub fn unlogged() -> usize {
    UNLOGGED.load(Ordering::Relaxed)
}

/// Block (or unblock) the signals our handlers catch, in this thread.
///
/// Used around spawning worker threads, so that the signals are delivered
/// to the main thread, the one blocked in accept(), and at shutdown, so the
/// SIGCHLD handler no longer races with our final waitpid loop.
pub fn block_caught(block: bool) {
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGCHLD] {
        set.add(signal);
    }
    let how = if block {
        SigmaskHow::SIG_BLOCK
    } else {
        SigmaskHow::SIG_UNBLOCK
    };
    let _ = nix::sys::signal::pthread_sigmask(how, Some(&set), None);
}

/// Sleep for `duration` in clock_nanosleep (wchan: hrtimer_nanosleep),
/// returning early if SIGINT/SIGTERM arrives.
///
/// `std::thread::sleep` would hide the signal: it retries EINTR itself.
pub fn sleep(duration: std::time::Duration) {
    let deadline = std::time::Instant::now() + duration;
    while stop_requested().is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        let request = libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `request` is a valid timespec; a null remainder is allowed.
        // EINTR (a signal) just brings us back to the loop's checks.
        unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, 0, &request, std::ptr::null_mut()) };
    }
}
