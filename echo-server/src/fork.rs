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
//!
//! # What fork() and exit() cost, and why our parent is cheap to copy
//!
//! fork() copies the process *description*, not its memory
//! (kernel/fork.c, dup_mm and dup_mmap): a new task, the descriptor
//! table (the reason both hold both sockets), and one copy of each
//! mapping (VMA, `/proc/PID/maps`: the program, the heap, the stack,
//! each shared library) with its page-table entries for the pages that
//! the parent has written (anonymous memory). Those pages are then
//! shared, read-only in both processes: the first write to one by
//! either process is a copy-on-write fault that copies it (4 KiB). The
//! program's code is not copied at all: the child faults it in from the
//! page cache as it runs. exit() undoes it all: every mapping unmapped,
//! every page table freed, every descriptor closed (the FIN).
//!
//! So what a short connection costs, beyond the TCP work, grows with the
//! number of mappings, with the pages the parent has written, with every
//! page the parent writes between two forks (each is a fault, and a copy
//! while the child still shares it), and with what the child does before
//! its first read(). `bench` holds this server to a plain C fork server
//! (UNP's tcpserv04, `bench/c/cfork.c`), measured in the same run; what
//! each change bought, measured there:
//!
//! - the serve loop writes as few pages as it can: the SIGCHLD ring is
//!   one page (signals.rs), nothing is allocated per connection, and the
//!   children are counted, not kept in a table (the kernel lists them at
//!   shutdown): the parent's page faults per connection went from 7.8 to
//!   4.5 (C's: 3.8; 2,000 connections one after the other);
//! - str_echo's buffer is a mapping the parent never touches
//!   (ChildBuffer): nothing to copy at fork, and the child's read()
//!   faults in a fresh page of its own instead of copying one;
//! - the child resets no signal handler (three sigaction() calls before
//!   its first read): the one handler both inherit asks whose process it
//!   runs in (signals::stop_or_die); the connection's SO_RCVTIMEO is set
//!   in the child, not in the loop every connection waits for;
//! - the program is linked statically (build.rs): no loader, no
//!   libc.so.6: 14 mappings where the dynamic build had 26 (C's plain
//!   build: 23) and 33 written pages instead of 42. The largest single
//!   step: about 14% more connections a second with two client threads
//!   (5,738 against 5,042, medians of five rounds of the same load, one
//!   after the other), because every fork copies and every exit tears
//!   down each mapping. Before it the unwinder alone (libgcc_s) was
//!   linked in statically: four mappings;
//! - the release build is one LTO unit: less code, laid out closer, fewer
//!   pages for each child to fault in.
//!
//! With all of it this server is level with or ahead of the plain C one
//! (`cc -O2`, dynamically linked, as tcpserv04 is usually built): 1.13x
//! in the run above; in three full runs of `bench`, 0.97x to 1.23x with
//! one client thread and 0.996x to 1.03x with two. It is not ahead of the
//! same C program linked statically (`cc -O2 -static-pie`: 12 mappings,
//! 14 written pages): that one served 7,011 connections a second to our
//! 6,126 (0.87x), in another run of the same kind. What is left between
//! the two (their `/proc/PID/smaps`, and a profile, `perf record -a`, of
//! an earlier build against C): a heap, which a C server that never calls
//! malloc() does not have; the alternate signal stack and its guard page
//! that Rust's runtime sets up before main() to report a stack overflow;
//! more written pages (a deeper stack from parsing the command line, the
//! SIGCHLD ring, Rust's thread-locals, which put errno on a page of its
//! own); and three lines printed per connection (`reaped` by the parent,
//! `accepted` and `client-closed` by the child) where C prints none.
//! Tried and not kept, because the gain stayed inside the run-to-run
//! noise (about 5%): linking without PIE and malloc_trim(0) before the
//! loop.
//!
//! Not done, because it would no longer be this lesson: pre-forking a
//! pool of children (UNP 30.6), or threads (see thread.rs).

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
    // Children forked and not yet reaped: a count, not a table. The kernel
    // keeps the list (which pids are ours, until we wait for them), and at
    // shutdown we ask it (see reap_all). A table in our heap would be one
    // more page written per connection, and after every fork() each page
    // the parent writes costs it a copy-on-write fault.
    let mut live: usize = 0;
    let mut summary = Summary::default();
    // str_echo's buffer, mapped once, before any fork, and never touched
    // by the parent (see ChildBuffer).
    let mut buf = ChildBuffer::map();

    let stop = loop {
        // Log what the SIGCHLD handler collected since we last looked.
        signals::take_reaped(|status| log_reaped(pid, status, &mut live, &mut summary));
        if let Some(signal) = signals::stop_requested() {
            break signal;
        }
        let (conn, peer) = match acceptor.accept_one(&listener, live) {
            Accepted::Connection(conn, peer) => (conn, peer),
            Accepted::Again => continue,
        };
        summary.served += 1;

        // SAFETY: this process is single-threaded (see `serve`), so the child
        // starts with a consistent heap and no lock held by a vanished thread.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                serve_in_child(listener, conn, peer, pid, config, buf.as_mut())
            }
            Ok(ForkResult::Parent { .. }) => {
                live += 1;
                // The parent closes the connected socket: the child owns it.
                // At once, before anything else: while the parent holds its
                // reference, the child may serve the client, and exit, and
                // the parent's close() would then be the last one, doing
                // the connection's whole close (the FIN) on the loop every
                // connection waits for.
                drop(conn);
                // The `accepted` line is the child's to print (see
                // serve_in_child): the parent goes straight back to accept().
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
    let pid = getpid().as_raw();
    // The child's first words: the parent accepted this client and forked
    // us. Printed here, not by the parent after fork() returned: parent and
    // child then run at once, and a child that closes at once
    // (`--close-after 0`) or meets an RST printed its `server-closed` line
    // before the parent's `accepted`. Each process's lines keep their
    // order; two processes' lines do not. (Thread mode does the same: the
    // new thread prints its own `accepted`.)
    events::emit(&Event::Accepted {
        peer,
        pid: parent,
        handler: Handler::Child(pid),
    });
    // No signal handler is reset here: see signals::stop_or_die.
    if config.die_with_parent {
        die_with_parent(parent);
    }
    // The child never accepts: close its copy of the listening socket.
    drop(listener);
    let end = echo::str_echo(&conn, config.limits(), buf);
    close::finish(conn, peer, pid, end, config, signals::sleep);
    // _exit, not exit: nothing of the parent's (atexit handlers, stdio
    // buffers) should run twice. Our event lines are unbuffered anyway.
    // SAFETY: _exit ends the process at once; nothing is left to clean up.
    unsafe { libc::_exit(0) }
}

/// str_echo's buffer for the children: an anonymous mapping of its own
/// that the parent never writes.
///
/// At fork() the kernel copies the parent's page table entries for every
/// page it has touched, and marks them copy-on-write (see the top of this
/// file). A buffer the parent had zeroed (`vec![0; 64 KiB]`) was 16 such
/// pages, copied at every fork; the child's read() then wrote into the
/// first and paid a copy of it. Untouched, the mapping has no entries to
/// copy, and the child's read() faults in a fresh zeroed page of its own.
struct ChildBuffer {
    ptr: std::ptr::NonNull<std::ffi::c_void>,
}

impl ChildBuffer {
    fn map() -> ChildBuffer {
        use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
        let len = std::num::NonZeroUsize::new(echo::BUF_SIZE).expect("a non-zero size");
        // SAFETY: a new private anonymous mapping aliases nothing of ours.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .unwrap_or_else(|errno| {
            // ENOMEM at start-up: nothing can be served; say so and stop.
            eprintln!("echo-server: mmap of the echo buffer: {}", errno.desc());
            std::process::exit(1)
        });
        ChildBuffer { ptr }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is BUF_SIZE bytes, readable and writable, lives
        // as long as `self`, and only this borrow reaches it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), echo::BUF_SIZE) }
    }
}

impl Drop for ChildBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no borrow of it outlives `self`.
        let _ = unsafe { nix::sys::mman::munmap(self.ptr, echo::BUF_SIZE) };
    }
}

/// `--die-with-parent`: ask for SIGTERM when the parent dies.
///
/// Without it, a child whose parent is killed lives on: the kernel
/// re-parents it to init (or to the nearest subreaper, PR_SET_CHILD_SUBREAPER)
/// and it goes on serving its client; nobody will stop it but its client
/// (or its own `--idle-timeout`). PR_SET_PDEATHSIG (prctl(2)) makes the
/// kernel send us a signal when the thread that forked us exits. SIGTERM
/// acts as its default action in the child (signals::stop_or_die): we die, and
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
    live: &mut usize,
    summary: &mut Summary,
) {
    if let Some((child, status)) = ChildStatus::from_wait(status) {
        *live = live.saturating_sub(1);
        summary.reaped += 1;
        events::emit(&Event::Reaped { child, pid, status });
    }
}

/// Shutdown: collect the zombies, end the living children, wait for them.
fn reap_all(pid: i32, live: &mut usize, summary: &mut Summary) {
    // From here on we reap synchronously; the handler must not race with us.
    signals::block_caught(true);
    signals::take_reaped(|status| log_reaped(pid, status, live, summary));
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
    // default action, see signals::stop_or_die) and wait for each.
    // Which are they? The kernel's list of our children
    // (/proc/PID/task/TID/children, see echo_lab_cli::proc_stat): no child
    // can leave it meanwhile, since only we reap them and the handler is
    // blocked.
    for child in echo_lab_cli::proc_stat::children(pid) {
        let _ = kill(Pid::from_raw(child), Signal::SIGTERM);
    }
    loop {
        match waitpid(None, None) {
            Ok(status) => log_reaped(pid, status, live, summary),
            Err(Errno::EINTR) => continue,
            Err(_) => break, // ECHILD: no children left
        }
    }
    summary.zombies_left = *live as u64;
}
