//! Everything that makes the client exit 1, each with its explanation:
//! the errno by its name, and what it means for the connection.

use std::os::fd::AsFd;

use echo_lab_cli::errno_name;
use nix::errno::Errno;
use socket2::Socket;
use std::net::SocketAddr;

/// Everything that makes the client exit 1, each with its explanation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("connect {addr}: {}", explain_connect(*.errno))]
    Connect { addr: SocketAddr, errno: Errno },
    /// The server closed or reset while we still expected data (UNP 5.12).
    #[error("server terminated prematurely{detail}")]
    ServerTerminated { detail: String },
    #[error("{op}: {} ({})", errno_name(*.errno), .errno.desc())]
    Io { op: &'static str, errno: Errno },
}

fn explain_connect(errno: Errno) -> String {
    let why = match errno {
        Errno::ECONNREFUSED => {
            "nothing listens there: the server's kernel answered our SYN with RST"
        }
        Errno::ETIMEDOUT => "no answer to our SYNs, retried for about two minutes",
        Errno::EHOSTUNREACH | Errno::ENETUNREACH => "no route to that address",
        Errno::EADDRNOTAVAIL => "no local address/port could be used for it",
        _ => "",
    };
    if why.is_empty() {
        format!("{} ({})", errno_name(errno), errno.desc())
    } else {
        format!("{} ({}): {why}", errno_name(errno), errno.desc())
    }
}

impl ClientError {
    /// A read or write on the connection failed: name the reset as such.
    pub fn on_connection(op: &'static str, errno: Errno) -> ClientError {
        match errno {
            Errno::ECONNRESET => ClientError::ServerTerminated {
                detail: format!(": {op} failed with ECONNRESET, the server's kernel sent RST"),
            },
            Errno::EPIPE => ClientError::ServerTerminated {
                detail: format!(
                    ": {op} failed with EPIPE, the connection was already reset \
                     (SIGPIPE is ignored, so we are told instead of killed)"
                ),
            },
            _ => ClientError::Io { op, errno },
        }
    }
}

/// After the server's EOF came too early: did our last write provoke an RST?
///
/// The classic sequence (UNP 5.12): the server's child dies, its kernel
/// sends FIN; we, blocked on stdin, do not notice. We write the next line;
/// the server's kernel has no socket for it and answers RST. Our read then
/// returns 0 (the FIN came first). The RST sets the socket's pending error,
/// which SO_ERROR reads; it may take a moment to arrive, so look briefly.
pub fn reset_after_eof(socket: &Socket) -> String {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLERR)];
    // POLLHUP: both directions shut down, or the socket is CLOSED (the RST).
    let _ = poll(&mut fds, PollTimeout::from(200u16));
    match socket.take_error() {
        Ok(Some(err)) => {
            let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
            format!(
                ": EOF, and our last write was answered with RST ({})",
                errno_name(errno)
            )
        }
        _ => ": EOF while waiting for the echo".to_string(),
    }
}
