//! Resolve the server's name and connect: UNP's tcp_connect (11.12).

use std::net::{SocketAddr, ToSocketAddrs};

use nix::errno::Errno;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::ClientError;

/// Resolve `host` (getaddrinfo) and try each address in turn until one
/// connects, as UNP's tcp_connect does.
pub fn connect(host: &str, port: u16) -> Result<(Socket, SocketAddr, SocketAddr), ClientError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|err| ClientError::Resolve {
            host: host.to_string(),
            reason: err.to_string(),
        })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match connect_one(addr) {
            Ok((socket, local)) => return Ok((socket, local, addr)),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Resolve {
        host: host.to_string(),
        reason: "no addresses".to_string(),
    }))
}

fn connect_one(addr: SocketAddr) -> Result<(Socket, SocketAddr), ClientError> {
    let fail = |errno: Errno| ClientError::Connect { addr, errno };
    let errno_of = |err: std::io::Error| Errno::from_raw(err.raw_os_error().unwrap_or(0));
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| fail(errno_of(e)))?;
    // connect() sends the SYN (CLOSED -> SYN_SENT) and sleeps until the
    // SYN+ACK arrives (-> ESTABLISHED; the kernel sends the final ACK), an
    // RST arrives (ECONNREFUSED), or the SYN retries run out (ETIMEDOUT,
    // about two minutes with net.ipv4.tcp_syn_retries = 6).
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        // A signal interrupted us; the handshake goes on in the kernel.
        // Calling connect() again would fail with EALREADY, so wait for the
        // result instead (UNP 5.9: connect cannot simply be restarted).
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => wait_connected(&socket).map_err(fail)?,
        Err(e) => return Err(fail(errno_of(e))),
    }
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    Ok((socket, local))
}

/// After an interrupted connect(): poll for writability, then read SO_ERROR.
fn wait_connected(socket: &Socket) -> Result<(), Errno> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
    match socket.take_error() {
        Ok(None) => Ok(()),
        Ok(Some(err)) => Err(Errno::from_raw(err.raw_os_error().unwrap_or(0))),
        Err(err) => Err(Errno::from_raw(err.raw_os_error().unwrap_or(0))),
    }
}
