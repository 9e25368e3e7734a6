//! `--mode poll`: UNP's str_cli with select() and shutdown() (6.7), using
//! poll() and a non-blocking socket.
//!
//! One call, poll(), waits on both inputs at once: stdin and the socket. So
//! the client sees the server's FIN (or RST) the moment it arrives, even
//! while the user types nothing (the cure for UNP 5.12).
//!
//! At stdin EOF we must not close(): echoes may still be on their way, and
//! close() would throw them away (batch mode, UNP 6.6). shutdown(SHUT_WR)
//! sends our FIN but keeps the socket readable; we read until the server's
//! FIN, and only then are we done.
//!
//! One step beyond 6.7 (toward UNP 16.2): the socket is non-blocking and
//! we never read more stdin while earlier input is unsent. A blocking
//! write of a large input could otherwise deadlock: the server blocks
//! writing echoes into our full receive buffer while we block writing into
//! its full one, and nobody reads.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::Socket;

use crate::close::arm_reset;
use crate::config::Config;
use crate::error::ClientError;
use crate::output::{say, write_stdout};

const BUF_SIZE: usize = 64 * 1024;

pub fn str_cli(socket: &Socket, config: &Config) -> Result<(), ClientError> {
    let io_err = |op, err: std::io::Error| ClientError::Io {
        op,
        errno: Errno::from_raw(err.raw_os_error().unwrap_or(0)),
    };
    socket
        .set_nonblocking(true)
        .map_err(|e| io_err("fcntl(O_NONBLOCK)", e))?;
    let stdin = std::io::stdin();
    let mut pending: Vec<u8> = Vec::with_capacity(BUF_SIZE); // read from stdin, not yet sent
    let mut sent_at = 0; // how much of `pending` went out
    let mut from_server = vec![0u8; BUF_SIZE];
    let mut stdin_eof = false;
    let mut shut_wr = false;
    let (mut sent, mut echoed) = (0u64, 0u64);

    loop {
        if stdin_eof && sent_at == pending.len() && !shut_wr {
            if config.reset {
                // An abortive close would discard echoes still in flight:
                // wait until every byte came back, then reset.
                if echoed == sent {
                    arm_reset(socket);
                    return Ok(());
                }
            } else {
                say(format_args!(
                    "stdin EOF: shutdown(SHUT_WR), FIN sent, reading until the server's FIN"
                ));
                socket
                    .shutdown(std::net::Shutdown::Write)
                    .map_err(|e| io_err("shutdown", e))?;
                shut_wr = true;
            }
        }

        let want_stdin = !stdin_eof && sent_at == pending.len();
        let mut sock_events = PollFlags::POLLIN;
        if sent_at < pending.len() {
            sock_events |= PollFlags::POLLOUT;
        }
        let stdin_fd = stdin.as_fd();
        let mut fds = vec![PollFd::new(socket.as_fd(), sock_events)];
        if want_stdin {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(ClientError::Io { op: "poll", errno }),
        }
        let sock_ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let stdin_ready = fds
            .get(1)
            .and_then(|fd| fd.revents())
            .unwrap_or(PollFlags::empty());

        // The socket is readable: echo, the server's FIN (read returns 0),
        // or an error (RST: ECONNRESET).
        if sock_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(socket.as_fd(), &mut from_server) {
                Ok(0) if shut_wr => return Ok(()), // the normal end: their FIN after ours
                Ok(0) => {
                    return Err(ClientError::ServerTerminated {
                        detail: format!(
                            ": its FIN arrived while we still had input ({sent} bytes sent, \
                             {echoed} echoed)"
                        ),
                    });
                }
                Ok(n) => {
                    write_stdout(&from_server[..n])?;
                    echoed += n as u64;
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(errno) => return Err(ClientError::on_connection("read", errno)),
            }
        }

        // The socket has room: send what is pending, as much as fits.
        if sock_ready.contains(PollFlags::POLLOUT) && sent_at < pending.len() {
            match nix::unistd::write(socket.as_fd(), &pending[sent_at..]) {
                Ok(n) => {
                    sent_at += n;
                    sent += n as u64;
                }
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(errno) => return Err(ClientError::on_connection("write", errno)),
            }
        }

        // stdin is readable (or at EOF): take the next chunk.
        if stdin_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            pending.resize(BUF_SIZE, 0);
            // read(2) on fd 0 directly, not a buffered reader: poll() knows
            // nothing of bytes sitting in a user-space buffer (UNP 6.5).
            let n = loop {
                match nix::unistd::read(stdin_fd, &mut pending) {
                    Ok(n) => break n,
                    Err(Errno::EINTR) => continue,
                    Err(errno) => {
                        return Err(ClientError::Io {
                            op: "read stdin",
                            errno,
                        });
                    }
                }
            };
            pending.truncate(n);
            sent_at = 0;
            if n == 0 {
                stdin_eof = true;
            } else {
                // Try at once; poll() will tell us when more fits.
                match nix::unistd::write(socket.as_fd(), &pending) {
                    Ok(written) => {
                        sent_at = written;
                        sent += written as u64;
                    }
                    Err(Errno::EINTR | Errno::EAGAIN) => {}
                    Err(errno) => return Err(ClientError::on_connection("write", errno)),
                }
            }
        }
    }
}
