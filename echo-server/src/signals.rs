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

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::config::Reap;

/// Reaped children, written by the SIGCHLD handler, read by the main loop:
/// a single-producer single-consumer ring. The producer is the handler, which
/// interrupts the consumer on the same thread, so it never waits for it.
///
/// The ring and its counters fill exactly one page, aligned on one: each
/// fork() makes every page of the parent copy-on-write, and every page the
/// parent writes afterwards costs it a page fault (a copy, while the child
/// still shares it). One page here is one fault per connection; the
/// 1,024-slot ring this replaced spread its writes over three.
#[repr(C, align(4096))]
struct Ring {
    slots: [AtomicU64; RING],
    written: AtomicUsize,
    read: AtomicUsize,
    /// Children reaped while the ring was full: collected, but not logged.
    unlogged: AtomicUsize,
}

/// Slots in a page, less the three counters: more children than this
/// exiting between two turns of the main loop are counted, not logged.
const RING: usize = 4096 / 8 - 3;

static REAPED: Ring = Ring {
    slots: [const { AtomicU64::new(0) }; RING],
    written: AtomicUsize::new(0),
    read: AtomicUsize::new(0),
    unlogged: AtomicUsize::new(0),
};

fn record(pid: libc::pid_t, status: libc::c_int) {
    let w = REAPED.written.load(Ordering::Relaxed);
    if w - REAPED.read.load(Ordering::Acquire) >= RING {
        REAPED.unlogged.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let packed = ((pid as u32 as u64) << 32) | status as u32 as u64;
    REAPED.slots[w % RING].store(packed, Ordering::Relaxed);
    REAPED.written.store(w + 1, Ordering::Release);
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
    // In a forked child they keep their default action (see stop_or_die).
    SERVER_PID.store(nix::unistd::getpid().as_raw(), Ordering::Relaxed);
    let stop = SigAction::new(
        SigHandler::Handler(stop_or_die),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: stop_or_die calls only getpid, signal, raise and an atomic
    // store, all async-signal-safe.
    unsafe {
        sigaction(Signal::SIGINT, &stop)?;
        sigaction(Signal::SIGTERM, &stop)?;
    }

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

/// The server's pid: its handler for SIGINT and SIGTERM tells the server
/// from the children it forks.
static SERVER_PID: AtomicI32 = AtomicI32::new(0);

/// SIGINT and SIGTERM: in the server, set the stop flag; in a forked
/// child, do what the default action does, end the process by that signal.
///
/// A child inherits its parent's signal handlers (fork(2); UNP 5.8). We
/// want the children to die of the SIGTERM the parent sends them at
/// shutdown, and of a Ctrl-C at the terminal, as if they had no handler.
/// The usual way is to reset the handlers to SIG_DFL first thing in the
/// child: three sigaction() calls in every child, before its first read,
/// measured as a share of what a short connection costs. Instead, the one
/// handler both inherit asks getpid() whose it is, when a signal comes:
/// the child pays nothing until then. Re-raising with SIG_DFL in place
/// kills it "by SIGTERM" exactly as before (the parent's waitpid() sees
/// WIFSIGNALED, `status=killed:SIGTERM`).
///
/// (SIGCHLD's handler is inherited too and stays: a child has no children
/// of its own, so it never runs there.)
extern "C" fn stop_or_die(signal: libc::c_int) {
    // SAFETY: getpid, signal and raise are async-signal-safe (signal-safety(7)).
    unsafe {
        if libc::getpid() == SERVER_PID.load(Ordering::Relaxed) {
            echo_lab_cli::stop::note(signal);
        } else {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

/// The signal that asked us to stop, if one has arrived.
pub use echo_lab_cli::stop::requested as stop_requested;

/// Hand `each` what the SIGCHLD handler has collected since the last call.
/// (A callback, not a Vec: the serve loop allocates nothing per
/// connection, see the `Ring`.)
pub fn take_reaped(mut each: impl FnMut(WaitStatus)) {
    let written = REAPED.written.load(Ordering::Acquire);
    let mut read = REAPED.read.load(Ordering::Relaxed);
    if read == written {
        return;
    }
    while read < written {
        let packed = REAPED.slots[read % RING].load(Ordering::Relaxed);
        let pid = Pid::from_raw((packed >> 32) as u32 as i32);
        if let Ok(status) = WaitStatus::from_raw(pid, packed as u32 as i32) {
            each(status);
        }
        read += 1;
    }
    REAPED.read.store(read, Ordering::Release);
}

/// Children reaped but not logged because the ring overflowed.
pub fn unlogged() -> usize {
    REAPED.unlogged.load(Ordering::Relaxed)
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
