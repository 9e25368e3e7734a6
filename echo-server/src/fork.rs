//! `--mode fork`: one child process per connection (UNP 4.8, tcpserv04).
//!
//! ```text
//!   parent: socket, bind, listen ---- accept ---- fork ---- close(connfd) ---- accept ...
//!                                                   |
//!   child:                                          +-- close(listenfd) -- str_echo -- exit
//! ```
//!
//! After fork() both processes hold both sockets: each descriptor is a
//! reference to the same kernel socket. The child closes the listening
//! socket because it will never accept; the parent closes the connected
//! socket because the child serves it. The parent's close() does *not*
//! send a FIN: the child's reference keeps the connection open. The FIN
//! goes out only when the last reference is closed (UNP 4.8, figure 4.16).

use std::collections::HashMap;
use std::net::SocketAddr;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid};
use socket2::Socket;

use crate::accept::{Accepted, Acceptor};
use crate::config::Config;
use crate::events::{self, ChildStatus, Event, Handler};
use crate::server::Summary;
use crate::{close, echo, signals};

/// Serve until SIGINT/SIGTERM; then end and reap every child.
///
/// The parent stays single-threaded for its whole life: that is what makes
/// it safe for the child to allocate and print after fork() (in a
/// multi-threaded process another thread may hold the allocator's lock at
/// the moment of fork, and the child would deadlock on it).
pub fn serve(listener: Socket, config: &Config) -> Summary {
    let pid = getpid().as_raw();
    let mut acceptor = Acceptor::new(pid, config.max_clients);
    // Children forked and not yet reaped, with the client each one serves.
    let mut live: HashMap<i32, SocketAddr> = HashMap::new();
    let mut summary = Summary::default();
    // str_echo's buffer, allocated (and zeroed) once, before any fork. Each
    // child inherits it copy-on-write and copies only the pages its read()
    // writes into: a 32-byte line costs one page. A fresh 64 KiB buffer in
    // each child cost 16 page faults just to zero it, the largest part of
    // a short connection's cost (measured with `perf record -e page-faults`).
    let mut buf = vec![0u8; echo::BUF_SIZE];

    let stop = loop {
        // Log what the SIGCHLD handler collected since we last looked.
        for status in signals::take_reaped() {
            log_reaped(pid, status, &mut live, &mut summary);
        }
        if let Some(signal) = signals::stop_requested() {
            break signal;
        }
        let (conn, peer) = match acceptor.accept_one(&listener, live.len()) {
            Accepted::Connection(conn, peer) => (conn, peer),
            Accepted::Again => continue,
        };
        summary.served += 1;

        // SAFETY: this process is single-threaded (see `serve`), so the child
        // starts with a consistent heap and no lock held by a vanished thread.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => serve_in_child(listener, conn, peer, pid, config, &mut buf),
            Ok(ForkResult::Parent { child }) => {
                live.insert(child.as_raw(), peer);
                events::emit(&Event::Accepted {
                    peer,
                    pid,
                    handler: Handler::Child(child.as_raw()),
                });
                // The parent closes the connected socket: the child owns it.
                drop(conn);
            }
            Err(errno) => {
                // EAGAIN (process limit) or ENOMEM: drop this client, go on.
                events::emit(&Event::Error {
                    pid,
                    op: "fork",
                    errno,
                    hint: format!("cannot serve {peer}; closing it, still accepting"),
                });
                drop(conn);
            }
        }
    };

    events::emit(&Event::Shutdown { pid, signal: stop });
    // Stop accepting: from now on a SYN to this port is answered with RST.
    drop(listener);
    reap_all(pid, &mut live, &mut summary);
    summary
}

/// The child: serve one client, then exit. Never returns.
fn serve_in_child(
    listener: Socket,
    conn: Socket,
    peer: SocketAddr,
    parent: i32,
    config: &Config,
    buf: &mut [u8],
) -> ! {
    signals::reset_in_child();
    if config.die_with_parent {
        die_with_parent(parent);
    }
    // The child never accepts: close its copy of the listening socket.
    drop(listener);
    let pid = getpid().as_raw();
    let end = echo::str_echo(&conn, config.limits(), buf);
    close::finish(conn, peer, pid, end, config, signals::sleep);
    // _exit, not exit: nothing of the parent's (atexit handlers, stdio
    // buffers) should run twice. Our event lines are unbuffered anyway.
    // SAFETY: _exit ends the process at once; nothing is left to clean up.
    unsafe { libc::_exit(0) }
}

/// `--die-with-parent`: ask for SIGTERM when the parent dies.
///
/// Without it, a child whose parent is killed lives on: the kernel
/// re-parents it to init (or to the nearest subreaper, PR_SET_CHILD_SUBREAPER)
/// and it goes on serving its client; nobody will stop it but its client
/// (or its own `--idle-timeout`). PR_SET_PDEATHSIG (prctl(2)) makes the
/// kernel send us a signal when the thread that forked us exits. SIGTERM
/// keeps its default action in the child (reset_in_child): we die, and
/// the kernel closes our socket as exit does (a FIN to the client).
///
/// The parent may already have died between fork() and this call; then
/// the signal will never come, and getppid() is no longer `parent`.
fn die_with_parent(parent: i32) {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and reads
    // no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) };
    if rc != 0 || nix::unistd::getppid().as_raw() != parent {
        // SAFETY: _exit ends the process at once (see serve_in_child).
        unsafe { libc::_exit(0) }
    }
}

fn log_reaped(
    pid: i32,
    status: nix::sys::wait::WaitStatus,
    live: &mut HashMap<i32, SocketAddr>,
    summary: &mut Summary,
) {
    if let Some((child, status)) = ChildStatus::from_wait(status) {
        live.remove(&child);
        summary.reaped += 1;
        events::emit(&Event::Reaped { child, pid, status });
    }
}

/// Shutdown: collect the zombies, end the living children, wait for them.
fn reap_all(pid: i32, live: &mut HashMap<i32, SocketAddr>, summary: &mut Summary) {
    // From here on we reap synchronously; the handler must not race with us.
    signals::block_caught(true);
    for status in signals::take_reaped() {
        log_reaped(pid, status, live, summary);
    }
    // Children that have exited but were never collected: zombies (with
    // --reap none or wait). Collect them now, and count them.
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if ChildStatus::from_wait(status).is_none() {
            break; // StillAlive: no more exited children
        }
        summary.zombies_at_shutdown += 1;
        log_reaped(pid, status, live, summary);
    }
    // The rest are still serving: ask them to stop (their SIGTERM has its
    // default action again, see signals::reset_in_child) and wait for each.
    for child in live.keys() {
        let _ = kill(Pid::from_raw(*child), Signal::SIGTERM);
    }
    loop {
        match waitpid(None, None) {
            Ok(status) => log_reaped(pid, status, live, summary),
            Err(Errno::EINTR) => continue,
            Err(_) => break, // ECHILD: no children left
        }
    }
    summary.zombies_left = live.len() as u64;
}
