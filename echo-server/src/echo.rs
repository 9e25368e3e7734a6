//! str_echo: read what the client sends, write all of it back (UNP 5.3).
//!
//! Three details make the seed's five-line loop correct:
//! * read() may return fewer bytes than asked, and write() may write fewer
//!   than given (a full socket send buffer, a signal): `write_all` loops.
//! * a signal handler without SA_RESTART makes a blocked read()/write()
//!   return EINTR: try again, nothing was lost.
//! * read() returning 0 is the client's FIN: it will send no more. The
//!   kernel has already ACKed the FIN and moved this socket to CLOSE_WAIT;
//!   it stays there until we close() (RFC 9293 3.6).

use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;

/// UNP's MAXLINE is 4096; a larger buffer means fewer system calls for bulk
/// data and changes nothing else.
pub const BUF_SIZE: usize = 64 * 1024;

/// How an echo session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoEnd {
    /// read() returned 0: the client closed (or shut down) its side.
    PeerClosed { bytes: u64 },
    /// `--close-after`: we echoed enough and will close first.
    LimitReached { bytes: u64 },
    /// The server is shutting down (SIGINT/SIGTERM) and closes first.
    Stopped { bytes: u64 },
    /// `--idle-timeout`: the client sent nothing for that long; we close
    /// first.
    Idle { bytes: u64 },
    /// A read or write failed: ECONNRESET (the client sent RST) on read,
    /// EPIPE or ECONNRESET on write (the client is gone).
    Failed {
        bytes: u64,
        op: &'static str,
        errno: Errno,
    },
}

/// When a session ends on its own, besides the client's FIN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `--close-after`: close once this many bytes were echoed.
    pub close_after: Option<u64>,
    /// `--idle-timeout`: close when the client sends nothing for this long.
    pub idle: Option<Duration>,
}

/// Echo until EOF, an error, or a limit, through `buf` (whatever it holds
/// is overwritten).
///
/// The caller owns the buffer: a forked child uses the one its parent
/// allocated before forking (see `fork.rs`), a thread allocates its own.
pub fn str_echo(conn: impl AsFd, limits: Limits, buf: &mut [u8]) -> EchoEnd {
    let fd = conn.as_fd();
    let mut bytes: u64 = 0;
    let close_after = limits.close_after;
    // SO_RCVTIMEO: a read() that waits this long without data returns
    // EAGAIN instead of sleeping on (socket(7)); UNP 14.2 uses it for the
    // same purpose. The connection inherited the listener's (the accept
    // loop's one-second wake-up, see listener.rs): set ours, the idle
    // timeout or none (0: wait for ever). It cannot fail on a socket we
    // hold; if it did, the inherited timeout would end the session after a
    // second of silence, as a failed read.
    let idle = limits.idle.unwrap_or_default();
    let tv = nix::sys::time::TimeVal::new(
        idle.as_secs() as libc::time_t,
        idle.subsec_micros() as libc::suseconds_t,
    );
    let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv);
    loop {
        if close_after.is_some_and(|limit| bytes >= limit) {
            return EchoEnd::LimitReached { bytes };
        }
        // read() sleeps (wchan: wait_woken, under tcp_recvmsg) until data or
        // the FIN arrives.
        let n = match nix::unistd::read(fd, buf) {
            Ok(0) => return EchoEnd::PeerClosed { bytes },
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            // SO_RCVTIMEO expired: the client has been silent too long.
            Err(Errno::EAGAIN) if limits.idle.is_some() => return EchoEnd::Idle { bytes },
            Err(errno) => {
                return EchoEnd::Failed {
                    bytes,
                    op: "read",
                    errno,
                };
            }
        };
        if let Err(errno) = write_all(fd, &buf[..n]) {
            return EchoEnd::Failed {
                bytes,
                op: "write",
                errno,
            };
        }
        bytes += n as u64;
    }
}

/// UNP's writen(): write every byte, across partial writes and EINTR.
pub fn write_all(fd: impl AsFd, mut buf: &[u8]) -> Result<(), Errno> {
    let fd = fd.as_fd();
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}
