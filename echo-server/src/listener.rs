//! socket(), setsockopt(), bind(), listen(): UNP 4.2-4.5.
//!
//! After listen() the kernel answers SYNs on its own: it completes each
//! three-way handshake (RFC 9293 3.5) and puts the finished connection on
//! the listener's accept queue, where accept() will find it. The process is
//! not involved in the handshake at all.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::Config;

/// Why the server could not start listening.
#[derive(Debug, thiserror::Error)]
#[error("{op} {addr}: {errno_name} ({message}){hint}")]
pub struct ListenError {
    pub op: &'static str,
    pub addr: SocketAddr,
    pub errno: Errno,
    errno_name: String,
    message: &'static str,
    hint: String,
}

impl ListenError {
    /// Installing the signal handlers failed (it does not, in practice).
    pub fn setup(errno: Errno, config: &Config) -> Self {
        let err = std::io::Error::from_raw_os_error(errno as i32);
        let addr = SocketAddr::new(config.bind, config.port);
        ListenError::new("sigaction", addr, err, config)
    }

    fn new(op: &'static str, addr: SocketAddr, err: std::io::Error, config: &Config) -> Self {
        let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
        let hint = match errno {
            Errno::EADDRINUSE if config.no_reuseaddr => {
                ": another socket holds this port; if it is a connection in TIME_WAIT \
                 (the previous server closed first), wait for it to expire or drop \
                 --no-reuseaddr: SO_REUSEADDR lets a server bind over TIME_WAIT"
            }
            Errno::EADDRINUSE => ": another server already listens on this port",
            Errno::EACCES => ": ports below 1024 need root (or CAP_NET_BIND_SERVICE)",
            Errno::EADDRNOTAVAIL => ": this address is not configured on any interface here",
            _ => "",
        };
        ListenError {
            op,
            addr,
            errno,
            errno_name: crate::events::errno_name(errno),
            message: errno.desc(),
            hint: hint.to_string(),
        }
    }
}

/// The accept loop wakes up at least this often, even with no client.
///
/// Why: a signal (SIGCHLD, SIGTERM) that lands after we last looked at the
/// flags and before accept() goes to sleep is handled at once by the handler,
/// but the main loop would only notice at the next connection. pselect()
/// was invented to close exactly that race (UNP 20.5); a receive timeout on
/// the listener is the simpler net used here. accept() honours SO_RCVTIMEO
/// (it returns EAGAIN when it expires).
pub const ACCEPT_WAKEUP: Duration = Duration::from_secs(1);

/// Create, configure, bind and listen. Returns the socket and the address
/// really bound (the port the kernel chose for `--port 0`).
pub fn listen(config: &Config) -> Result<(Socket, SocketAddr), ListenError> {
    let addr = SocketAddr::new(config.bind, config.port);
    let fail = |op, err| ListenError::new(op, addr, err, config);

    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| fail("socket", e))?;

    // SO_REUSEADDR: allow bind() while connections from an earlier run of
    // this server still sit in TIME_WAIT on this port (UNP 7.5). Every TCP
    // server should set it; `--no-reuseaddr` shows why.
    if !config.no_reuseaddr {
        socket
            .set_reuse_address(true)
            .map_err(|e| fail("setsockopt(SO_REUSEADDR)", e))?;
    }
    // An IPv6 socket bound to `::` also accepts IPv4 clients, which then
    // appear as v4-mapped addresses (::ffff:127.0.0.1) unless IPV6_V6ONLY is
    // set; we keep the system default (net.ipv6.bindv6only, normally 0).

    if let Some(wait) = config.defer_accept {
        // The option counts whole seconds; a part of one is one more.
        let secs =
            u32::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).unwrap_or(u32::MAX);
        // TCP_DEFER_ACCEPT: the kernel ignores the final ACK of the handshake
        // and keeps the connection as a request socket in SYN_RECV until data
        // arrives (then it is queued for accept) or the time is up. See tcp(7).
        set_defer_accept(&socket, secs).map_err(|e| fail("setsockopt(TCP_DEFER_ACCEPT)", e))?;
    }
    socket
        .set_read_timeout(Some(ACCEPT_WAKEUP))
        .map_err(|e| fail("setsockopt(SO_RCVTIMEO)", e))?;

    socket
        .bind(&SockAddr::from(addr))
        .map_err(|e| fail("bind", e))?;
    // listen(): from here on the kernel completes handshakes for us. The
    // backlog bounds the accept queue (connections handshaken but not yet
    // accepted); the kernel caps it at net.core.somaxconn.
    let backlog = i32::try_from(config.backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(|e| fail("listen", e))?;

    let bound = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    Ok((socket, bound))
}

fn set_defer_accept(socket: &Socket, secs: u32) -> std::io::Result<()> {
    let value: libc::c_int = secs.try_into().unwrap_or(libc::c_int::MAX);
    // SAFETY: the fd is a valid socket owned by `socket`; we pass a pointer to
    // a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The accept queue's current length: the Recv-Q that `ss -lt` shows for a
/// listening socket, read here with the TCP_INFO getsockopt.
pub fn accept_queue_len(socket: &Socket) -> Option<u32> {
    // For a listener, tcpi_unacked holds sk_ack_backlog (the queue length);
    // see tcp_get_info() in net/ipv4/tcp.c.
    let mut info: libc::tcp_info = zeroed_tcp_info();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: valid fd; `info` is a live tcp_info and `len` its size, which the
    // kernel may shrink but never exceeds.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info.tcpi_unacked)
}

fn zeroed_tcp_info() -> libc::tcp_info {
    // SAFETY: tcp_info is a plain C struct of integers: all-zero is valid.
    unsafe { std::mem::zeroed() }
}
