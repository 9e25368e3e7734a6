//! The grader's own echo peer, for the one check echo-server cannot make:
//! it holds its echo back, to see what a client does at EOF while data is
//! still owed to it.
//!
//! A correct str_cli (UNP 6.7) calls shutdown(SHUT_WR) at EOF on standard
//! input: its FIN goes out, its end moves to FIN_WAIT2 and stays its own
//! (the descriptor is still open), and it keeps reading until the
//! server's FIN. A client that calls close() at EOF (or simply exits)
//! sends the same FIN, but its end is then an orphan: FIN_WAIT2 with no
//! process and no inode (`tcp_close()` in net/ipv4/tcp.c), and whatever
//! the server still sends is answered with an RST. Only the kernel can
//! tell the two apart, at the moment the FIN arrives: so the peer looks,
//! through inet_diag and /proc, before it sends anything back.
//!
//! A lockstep client (UNP 5.5) never gets there: it waits for each echo
//! before it reads the next line, so the peer, holding, sees it fall
//! quiet. Then it echoes as any server would.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use observer::diag::{DiagSocket, SockInfo};
use observer::procfs::Owner;
use observer::tcp_state::TcpState;

/// What the peer saw of one connection.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The client's end, as the peer's accept() gave it.
    pub client: SocketAddr,
    /// Bytes received while holding the echo back.
    pub held: usize,
    /// The client's FIN arrived while the peer held: it had sent
    /// everything and said so, with data still owed to it.
    pub fin_while_holding: bool,
    /// The client's end when its FIN arrived (inet_diag, looked up by its
    /// 4-tuple): its state, and who holds it (`/proc/PID/fd`).
    pub client_end: Option<(TcpState, Vec<Owner>)>,
    /// Bytes echoed in all.
    pub echoed: usize,
    /// What went wrong, if anything (the client reset the connection...).
    pub error: Option<String>,
}

/// A listening peer on a free loopback port, serving one connection on
/// a thread of its own.
pub struct HoldingPeer {
    pub addr: SocketAddr,
    thread: std::thread::JoinHandle<Option<Seen>>,
}

impl HoldingPeer {
    /// Listen, then (on a thread) accept one connection within `patience`
    /// and hold its echo until the client's FIN or until it has been
    /// `quiet` for that long.
    pub fn start(quiet: Duration, patience: Duration) -> anyhow::Result<HoldingPeer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        // The thread inherits our network namespace: sockets belong to
        // the namespace of the thread that creates them, and inet_diag
        // answers for the namespace of the netlink socket's creator.
        let thread = std::thread::spawn(move || serve(listener, quiet, patience));
        Ok(HoldingPeer { addr, thread })
    }

    /// What it saw (None: no client connected in time).
    pub fn finish(self) -> Option<Seen> {
        self.thread.join().ok().flatten()
    }
}

fn serve(listener: TcpListener, quiet: Duration, patience: Duration) -> Option<Seen> {
    let deadline = Instant::now() + patience;
    let (mut stream, client) = accept_by(&listener, deadline)?;
    let mut seen = Seen {
        client,
        held: 0,
        fin_while_holding: false,
        client_end: None,
        echoed: 0,
        error: None,
    };
    let mut held = Vec::new();
    // Hold: read without echoing, until the FIN (read() returns 0) or
    // until nothing has come for `quiet` (SO_RCVTIMEO: read() fails with
    // EAGAIN).
    let _ = stream.set_read_timeout(Some(quiet));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => {
                seen.fin_while_holding = true;
                break;
            }
            Ok(n) => held.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => {
                seen.error = Some(format!("read: {e}"));
                return Some(seen);
            }
        }
        if Instant::now() > deadline {
            break;
        }
    }
    seen.held = held.len();
    if seen.fin_while_holding {
        seen.client_end = client_end(&stream);
    }
    // Now send back what was held, and then echo as any server would.
    if let Err(e) = stream.write_all(&held) {
        seen.error = Some(format!("write: {e}"));
        return Some(seen);
    }
    seen.echoed = held.len();
    if !seen.fin_while_holding {
        let _ = stream.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())));
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => match stream.write_all(&buf[..n]) {
                    Ok(()) => seen.echoed += n,
                    Err(e) => {
                        seen.error = Some(format!("write: {e}"));
                        return Some(seen);
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    seen.error = Some(format!("read: {e}"));
                    return Some(seen);
                }
            }
        }
    }
    // Our FIN: the client's read() returns 0, and it may exit.
    let _ = stream.shutdown(Shutdown::Write);
    Some(seen)
}

/// accept() with a deadline: poll(2) for the listener to become readable
/// (a connection is in its accept queue), then accept it.
fn accept_by(listener: &TcpListener, deadline: Instant) -> Option<(TcpStream, SocketAddr)> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.as_millis().min(1000) as i32 + 1).ok()?;
        if poll(&mut fds, ms).ok()? > 0 {
            return listener.accept().ok();
        }
    }
}

/// The client's end of `stream`, looked up by its exact 4-tuple, and
/// the processes holding it.
fn client_end(stream: &TcpStream) -> Option<(TcpState, Vec<Owner>)> {
    let (ours, theirs) = (stream.local_addr().ok()?, stream.peer_addr().ok()?);
    let mut diag = DiagSocket::open().ok()?;
    // The question is the socket as its owner would see it: local = the
    // client's address.
    let asked = SockInfo::wanted(theirs, ours);
    let mut lookup = || {
        diag.lookup(std::slice::from_ref(&asked))
            .ok()?
            .pop()
            .flatten()
    };
    // Our kernel acknowledges the FIN as it queues it, and the client's
    // end moves from FIN_WAIT1 to FIN_WAIT2 when that ACK arrives: on
    // loopback a few microseconds, which our read() may still beat.
    let end = crate::wait::within(Duration::from_millis(200), || {
        lookup().filter(|end| end.state != TcpState::FinWait1)
    })
    .or_else(lookup)?;
    let owners = if end.inode == 0 {
        Vec::new()
    } else {
        let inodes = std::collections::HashSet::from([end.inode]);
        observer::procfs::scan(observer::procfs::all_pids(), &inodes)
            .of(end.inode)
            .to_vec()
    };
    Some((end.state, owners))
}
