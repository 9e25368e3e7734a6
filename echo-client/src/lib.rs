//! # echo-client: UNP's str_cli, in its two classic shapes
//!
//! The second terminal of the lesson: read from stdin, send it to the echo
//! server, print what comes back. stdout carries exactly the echoed bytes,
//! so `echo-client < f > g` leaves `g` identical to `f`; every message goes
//! to stderr.
//!
//! # Layout (read in this order)
//! - [`config`]: the flags.
//! - [`connect`]: getaddrinfo and connect(): the client's half of the
//!   three-way handshake.
//! - [`lockstep`]: send a line, read its echo (UNP 5.5), and why it cannot
//!   see the server die while it waits on stdin (UNP 5.12).
//! - [`poll`]: watch stdin and the socket together, half-close at EOF
//!   (UNP 6.4-6.7).
//! - this file: how the connection ends (FIN, RST, half-close) and the
//!   errors a client must explain.
//!
//! SIGPIPE: Rust's runtime sets it to SIG_IGN before main(), and we keep it
//! so. A write to a connection the server has reset then fails with EPIPE,
//! which we explain, instead of killing the client without a word as it
//! would a C program (UNP 5.13).

pub mod config;
pub mod connect;
pub mod lockstep;
pub mod poll;

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use echo_lab_cli::errno_name;
use nix::errno::Errno;
use socket2::Socket;

use config::{Config, Mode};

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

/// Print a message about the connection on stderr, as `echo-client: ...`.
pub fn say(message: std::fmt::Arguments<'_>) {
    eprintln!("echo-client: {message}");
}

/// Connect, copy stdin to the server and the echo to stdout, close.
pub fn run(config: &Config) -> Result<(), ClientError> {
    let pid = std::process::id();
    let mut connections = Vec::new();
    for _ in 0..config.connections {
        let (socket, local, peer) = connect::connect(&config.host, config.port)?;
        say(format_args!("connected {local} -> {peer} pid={pid}"));
        connections.push(socket);
    }
    let data = connections.remove(0);
    let result = match config.mode {
        Mode::Lockstep => lockstep::str_cli(&data, config),
        Mode::Poll => poll::str_cli(&data, config),
    };
    if result.is_ok() {
        close(data, config);
    }
    // The extra connections (--connections N) close together, right now: at
    // the server, N children see EOF and exit within a few microseconds.
    if config.reset {
        connections.iter().for_each(arm_reset);
    }
    drop(connections);
    result
}

/// At stdin EOF in lockstep mode (poll mode has already half-closed):
/// end the connection the way the flags ask.
fn close(socket: Socket, config: &Config) {
    if config.reset {
        say(format_args!("closing with RST (SO_LINGER 0)"));
        arm_reset(&socket);
    } else if config.mode == Mode::Poll {
        // The poll loop sent our FIN at stdin EOF and read the server's.
        say(format_args!("both FINs exchanged: closing"));
    } else if config.half_close {
        say(format_args!(
            "stdin EOF: shutdown(SHUT_WR), FIN sent, waiting for the server's FIN"
        ));
        let _ = socket.shutdown(std::net::Shutdown::Write);
        let _ = drain_to_stdout(&socket);
    } else {
        say(format_args!("closing (FIN)"));
    }
    // close(): with linger 0, an RST and the socket is gone at once;
    // otherwise a FIN (ESTABLISHED -> FIN_WAIT1; if the server has closed
    // already, CLOSE_WAIT -> LAST_ACK).
    drop(socket);
}

/// SO_LINGER with l_onoff = 1, l_linger = 0: close() will abort the
/// connection with RST and skip TIME_WAIT (UNP 7.5, figure 7.12).
fn arm_reset(socket: &Socket) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}

/// Read until the server's EOF, copying everything to stdout.
fn drain_to_stdout(socket: &Socket) -> Result<u64, ClientError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match nix::unistd::read(socket.as_fd(), &mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                write_stdout(&buf[..n])?;
                total += n as u64;
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(ClientError::on_connection("read", errno)),
        }
    }
}

/// Write echoed bytes to stdout, all of them.
pub fn write_stdout(bytes: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|err| ClientError::Io {
            op: "write to stdout",
            errno: Errno::from_raw(err.raw_os_error().unwrap_or(0)),
        })
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
