//! `--mode thread`: one thread per connection (UNP 26.4).
//!
//! There are no children, so nothing to reap: a thread's resources are
//! collected by join(). All threads share one descriptor table, so unlike
//! the fork version nobody closes the other's socket: the listener stays
//! with the main thread, each connection with its thread.

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::unistd::{getpid, gettid};
use socket2::Socket;

use crate::accept::{Accepted, Acceptor};
use crate::config::Config;
use crate::events::{self, Event, Handler};
use crate::server::Summary;
use crate::{close, echo, signals};

/// What the main thread shares with the connection threads.
#[derive(Default)]
struct Shared {
    /// Open connections by sequence number, so shutdown can wake the threads
    /// blocked in read() with shutdown(SHUT_RDWR).
    open: Mutex<HashMap<u64, Arc<Socket>>>,
    /// Set at shutdown; the condvar wakes threads holding `--close-delay`.
    stopping: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    /// Wait up to `duration`, or less if the server is stopping.
    fn hold(&self, duration: Duration) {
        let stopping = self.stopping.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .wake
            .wait_timeout_while(stopping, duration, |stopping| !*stopping);
    }
}

/// Serve until SIGINT/SIGTERM; then end and join every thread.
pub fn serve(listener: Socket, config: &Config) -> Summary {
    let pid = getpid().as_raw();
    let shared = Arc::new(Shared::default());
    let mut acceptor = Acceptor::new(pid, config.max_clients);
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    let mut summary = Summary::default();
    let mut next_id: u64 = 0;

    let stop = loop {
        // Join the threads that are done, so the list does not grow forever.
        let (done, running): (Vec<_>, Vec<_>) = threads.into_iter().partition(|t| t.is_finished());
        threads = running;
        for thread in done {
            let _ = thread.join();
            summary.joined += 1;
        }
        if let Some(signal) = signals::stop_requested() {
            break signal;
        }
        let (conn, peer) = match acceptor.accept_one(&listener, threads.len()) {
            Accepted::Connection(conn, peer) => (conn, peer),
            Accepted::Again => continue,
        };
        summary.served += 1;
        let conn = Arc::new(conn);
        let id = next_id;
        next_id += 1;
        lock(&shared.open).insert(id, Arc::clone(&conn));

        let shared_for_thread = Arc::clone(&shared);
        let config = config.clone();
        // The new thread inherits our signal mask. Block the signals while
        // spawning so that SIGINT/SIGTERM always land on this thread, the
        // one sleeping in accept(), and interrupt it.
        signals::block_caught(true);
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{id}"))
            .spawn(move || {
                let tid = gettid().as_raw();
                events::emit(&Event::Accepted {
                    peer,
                    pid,
                    handler: Handler::Thread(tid),
                });
                let mut end = echo::str_echo(&*conn, config.limits(), &mut vec![0; echo::BUF_SIZE]);
                if let echo::EchoEnd::PeerClosed { bytes } = end {
                    if *lock(&shared_for_thread.stopping) {
                        // Our own shutdown(SHUT_RDWR) at SIGTERM woke the
                        // read(): the server closed first, not the client.
                        end = echo::EchoEnd::Stopped { bytes };
                    }
                }
                // Forget the connection before closing it. Dropping our Arc
                // in finish() closes the socket (a shutdown in progress may
                // hold a second reference for an instant).
                lock(&shared_for_thread.open).remove(&id);
                close::finish(conn, peer, pid, end, &config, |d| shared_for_thread.hold(d));
            });
        signals::block_caught(false);
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(err) => {
                lock(&shared.open).remove(&id);
                events::emit(&Event::Error {
                    pid,
                    op: "pthread_create",
                    errno: nix::errno::Errno::from_raw(err.raw_os_error().unwrap_or(0)),
                    hint: format!("cannot serve {peer}; closing it, still accepting"),
                });
            }
        }
    };

    events::emit(&Event::Shutdown { pid, signal: stop });
    drop(listener);
    *lock(&shared.stopping) = true;
    shared.wake.notify_all();
    // Wake every thread blocked in read(): shutdown() makes it return 0.
    for conn in lock(&shared.open).values() {
        let _ = conn.shutdown(Shutdown::Both);
    }
    for thread in threads {
        let _ = thread.join();
        summary.joined += 1;
    }
    summary
}

/// Lock a mutex even if a thread panicked while holding it: the map is
/// still usable, and a server must not die of one broken connection.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
