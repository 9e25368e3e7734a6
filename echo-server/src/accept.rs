//! accept(), and everything that can go wrong with it (UNP 5.9, 5.11, 16.6).
//!
//! accept() sleeps in inet_csk_wait_for_connect until the kernel has a
//! completed connection on the listener's accept queue (the handshake was
//! done by the kernel, not by us), then returns a new socket for it. Rust's
//! `TcpListener::accept` retries EINTR for you; we call socket2's accept,
//! which does not, because EINTR is part of the lesson.

use std::net::SocketAddr;
use std::time::Duration;

use nix::errno::Errno;
use socket2::Socket;

use crate::events::{self, Event};
use crate::signals;

/// What one call to [`accept_one`] produced.
pub enum Accepted {
    /// A new connection and the client's address.
    Connection(Socket, SocketAddr),
    /// No connection this time: a signal interrupted us, the wake-up timeout
    /// expired, or a transient error was logged. Look at the flags and call
    /// again.
    Again,
}

/// Accept one connection, sorting out the errors a server must survive.
pub struct Acceptor {
    pid: i32,
    /// `--max-clients`: connections beyond it are told so and closed.
    max_clients: Option<u32>,
    /// Doubles on each consecutive resource error, up to a second.
    backoff: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);

impl Acceptor {
    pub fn new(pid: i32, max_clients: Option<u32>) -> Acceptor {
        Acceptor {
            pid,
            max_clients,
            backoff: FIRST_BACKOFF,
        }
    }

    /// Accept the next connection; `active` is how many are being served
    /// (for `--max-clients`).
    pub fn accept_one(&mut self, listener: &Socket, active: usize) -> Accepted {
        let err = match listener.accept() {
            Ok((conn, addr)) => {
                self.backoff = FIRST_BACKOFF;
                // The new socket inherits the listener's options, including
                // the SO_RCVTIMEO we set only to wake the accept loop:
                // str_echo replaces it with its own (in the child or the
                // thread, not here: this loop is the one every connection
                // waits for).
                let Some(peer) = addr.as_socket() else {
                    return Accepted::Again; // not an IP peer: impossible for TCP
                };
                if let Some(max) = self.max_clients.map(|m| m as usize) {
                    if active >= max {
                        refuse_busy(conn, peer, self.pid, max);
                        return Accepted::Again;
                    }
                }
                return Accepted::Connection(conn, peer);
            }
            Err(err) => err,
        };
        let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
        let (hint, back_off) = match errno {
            // A signal arrived while accept() slept (our handlers have no
            // SA_RESTART). Nothing is lost: call accept() again (UNP 5.9).
            Errno::EINTR => return Accepted::Again,
            // SO_RCVTIMEO expired with no client: just the periodic wake-up.
            Errno::EAGAIN => return Accepted::Again,
            // The client reset the connection while it sat in the accept
            // queue (UNP 5.11). POSIX says: ignore it and accept the next.
            Errno::ECONNABORTED => (
                "client reset the connection before we accepted it; ignored".to_string(),
                false,
            ),
            // Linux passes pending network errors of the new connection to
            // accept() (see accept(2), "Error handling"): treat like EAGAIN.
            Errno::ENETDOWN
            | Errno::EPROTO
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::ENONET
            | Errno::EHOSTUNREACH
            | Errno::EOPNOTSUPP
            | Errno::ENETUNREACH => (
                "network error on a pending connection; ignored".to_string(),
                false,
            ),
            // Out of file descriptors (per process or system-wide) or memory.
            // The connection stays queued; retrying at once would spin at
            // 100% CPU, so wait a little, longer each time. Anything else we
            // did not expect gets the same treatment.
            _ => (
                format!(
                    "out of descriptors or memory, or unexpected; not accepting for {} ms",
                    self.backoff.as_millis()
                ),
                true,
            ),
        };
        events::emit(&Event::Error {
            pid: self.pid,
            op: "accept",
            errno,
            hint,
        });
        if back_off {
            signals::sleep(self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
        Accepted::Again
    }
}

/// `--max-clients`: tell the client, close, and carry on.
fn refuse_busy(conn: Socket, peer: SocketAddr, pid: i32, max: usize) {
    let message = format!("echo-server: busy, {max} clients already connected; closing\n");
    // A fresh connection's send buffer is empty: this write cannot block.
    let _ = crate::echo::write_all(&conn, message.as_bytes());
    events::emit(&Event::Busy { peer, pid, max });
}
