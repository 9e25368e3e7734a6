//! The lines echo-server prints on stdout: one per event, stable, parseable.
//!
//! Tests, the `lifecycle` harness and a watching student all read these
//! lines, so their format is a contract (documented in `echo-server/README.md`):
//!
//! ```text
//! listening on 127.0.0.1:6666 pid=4100 mode=fork reap=waitpid backlog=1024
//! accepted peer=127.0.0.1:51230 pid=4100 child=4107
//! client-closed peer=127.0.0.1:51230 pid=4107 bytes=26
//! reaped child=4107 pid=4100 status=exited:0
//! summary pid=4100 served=1 reaped=1 joined=0 zombies-at-shutdown=0 zombies-left=0
//! ```
//!
//! The first word names the event; the rest are `key=value` pairs, and
//! `pid=` is always the process that did it (the parent for `accepted`
//! and `reaped`, the child for what happens on the connection). Free text,
//! where there is any, is the last field, `hint="..."`. In fork mode the
//! child writes the `accepted` line, as its first: two processes' lines
//! have no order between them, and the child's own lines must follow it.
//!
//! Each line leaves the process in a single `write(2)` to fd 1, bypassing
//! Rust's buffered stdout: a line is never split between two processes
//! writing to the same pipe (writes up to PIPE_BUF bytes are atomic, see
//! pipe(7)), and `fork()` never copies a half-filled stdio buffer into the
//! child, the classic "output printed twice" bug (APUE 8.3).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

pub use echo_lab_cli::errno_name;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

/// Who handles a connection once it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `--mode fork`: a child process.
    Child(i32),
    /// `--mode thread`: a thread, by its kernel thread id (see gettid(2);
    /// `/proc/PID/task/TID/wchan` shows where it sleeps).
    Thread(i32),
}

/// How a child process ended, as `waitpid` told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    Exited(i32),
    Signaled(Signal),
}

impl ChildStatus {
    /// Decode a `WaitStatus`; `None` for stops and continues, which we do
    /// not ask for (no WUNTRACED/WCONTINUED).
    pub fn from_wait(status: WaitStatus) -> Option<(i32, ChildStatus)> {
        match status {
            WaitStatus::Exited(pid, code) => Some((pid.as_raw(), ChildStatus::Exited(code))),
            WaitStatus::Signaled(pid, sig, _core) => {
                Some((pid.as_raw(), ChildStatus::Signaled(sig)))
            }
            _ => None,
        }
    }
}

impl fmt::Display for ChildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildStatus::Exited(code) => write!(f, "exited:{code}"),
            ChildStatus::Signaled(sig) => write!(f, "killed:{}", sig.as_str()),
        }
    }
}

/// One line of echo-server's stdout.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The first line: the socket is listening. Tests wait for it.
    Listening {
        addr: SocketAddr,
        pid: i32,
        mode: &'static str,
        reap: &'static str,
        backlog: u32,
    },
    /// `--accept-delay`: listening, but not calling accept() yet.
    NotAccepting {
        pid: i32,
        secs: f64,
    },
    /// `--accept-delay` is over: accept() is called from now on.
    Accepting {
        pid: i32,
        queued: Option<u32>,
    },
    Accepted {
        peer: SocketAddr,
        pid: i32,
        handler: Handler,
    },
    /// `--max-clients`: the connection was told so and closed.
    Busy {
        peer: SocketAddr,
        pid: i32,
        max: usize,
    },
    /// read() returned 0: the client sent its FIN (passive close here).
    ClientClosed {
        peer: SocketAddr,
        pid: i32,
        bytes: u64,
    },
    /// `--close-delay`: the client's FIN arrived; we hold CLOSE_WAIT.
    Holding {
        peer: SocketAddr,
        pid: i32,
        secs: f64,
    },
    /// `--close-after`: the server closed first (active close here).
    ServerClosed {
        peer: SocketAddr,
        pid: i32,
        bytes: u64,
    },
    /// `--idle-timeout`: the client sent nothing for `secs`; the server
    /// closes first (active close here).
    Idle {
        peer: SocketAddr,
        pid: i32,
        bytes: u64,
        secs: f64,
    },
    /// The connection ended with an error (ECONNRESET, EPIPE, ...).
    ConnectionError {
        peer: SocketAddr,
        pid: i32,
        bytes: u64,
        op: &'static str,
        errno: Errno,
    },
    Reaped {
        child: i32,
        pid: i32,
        status: ChildStatus,
    },
    /// Something failed but the server goes on (or, at start-up, stops).
    Error {
        pid: i32,
        op: &'static str,
        errno: Errno,
        hint: String,
    },
    Shutdown {
        pid: i32,
        signal: Signal,
    },
    /// The last line, after SIGINT/SIGTERM: `reaped` counts children
    /// collected by waitpid (fork mode), `joined` threads joined (thread
    /// mode); `zombies-at-shutdown` children found dead but never reaped.
    Summary {
        pid: i32,
        served: u64,
        reaped: u64,
        joined: u64,
        zombies_at_shutdown: u64,
        zombies_left: u64,
    },
}

/// A peer's address as the lines write it: `127.0.0.1:51230`, `[::1]:51230`.
///
/// An IPv4 address is written octet by octet into a small buffer; core's
/// `Display` for `SocketAddrV4` runs the formatting machinery once per
/// octet, and a forked child's one line per connection was, measured, a
/// visible part of what a short connection costs (see fork.rs).
struct Peer(SocketAddr);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SocketAddr::V4(v4) = self.0 else {
            return write!(f, "{}", self.0);
        };
        // "255.255.255.255:65535" is 21 bytes.
        let mut buf = [0u8; 21];
        let mut len = 0;
        let mut push = |n: u32, last: u8| {
            let mut digits = [0u8; 5];
            let mut i = digits.len();
            let mut n = n;
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            let d = &digits[i..];
            buf[len..len + d.len()].copy_from_slice(d);
            len += d.len();
            if last != 0 {
                buf[len] = last;
                len += 1;
            }
        };
        let [a, b, c, d] = v4.ip().octets();
        push(a.into(), b'.');
        push(b.into(), b'.');
        push(c.into(), b'.');
        push(d.into(), b':');
        push(v4.port().into(), 0);
        // Only ASCII digits, dots and a colon were written.
        f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Event::*;
        match self {
            Listening {
                addr,
                pid,
                mode,
                reap,
                backlog,
            } => write!(
                f,
                "listening on {addr} pid={pid} mode={mode} reap={reap} backlog={backlog}"
            ),
            NotAccepting { pid, secs } => write!(f, "not-accepting pid={pid} secs={secs}"),
            Accepting { pid, queued } => {
                write!(f, "accepting pid={pid}")?;
                match queued {
                    Some(q) => write!(f, " queued={q}"),
                    None => Ok(()),
                }
            }
            Accepted { peer, pid, handler } => {
                write!(f, "accepted peer={} pid={pid} ", Peer(*peer))?;
                match handler {
                    Handler::Child(c) => write!(f, "child={c}"),
                    Handler::Thread(t) => write!(f, "thread={t}"),
                }
            }
            Busy { peer, pid, max } => {
                write!(f, "busy peer={} pid={pid} max-clients={max}", Peer(*peer))
            }
            ClientClosed { peer, pid, bytes } => {
                write!(
                    f,
                    "client-closed peer={} pid={pid} bytes={bytes}",
                    Peer(*peer)
                )
            }
            Holding { peer, pid, secs } => {
                write!(f, "holding peer={} pid={pid} secs={secs}", Peer(*peer))
            }
            ServerClosed { peer, pid, bytes } => {
                write!(
                    f,
                    "server-closed peer={} pid={pid} bytes={bytes}",
                    Peer(*peer)
                )
            }
            Idle {
                peer,
                pid,
                bytes,
                secs,
            } => write!(
                f,
                "idle peer={} pid={pid} bytes={bytes} secs={secs}",
                Peer(*peer)
            ),
            ConnectionError {
                peer,
                pid,
                bytes,
                op,
                errno,
            } => write!(
                f,
                "connection-error peer={} pid={pid} bytes={bytes} op={op} errno={}",
                Peer(*peer),
                errno_name(*errno)
            ),
            Reaped { child, pid, status } => {
                write!(f, "reaped child={child} pid={pid} status={status}")
            }
            Error {
                pid,
                op,
                errno,
                hint,
            } => write!(
                f,
                "error pid={pid} op={op} errno={} hint=\"{hint}\"",
                errno_name(*errno)
            ),
            Shutdown { pid, signal } => write!(f, "shutdown pid={pid} signal={}", signal.as_str()),
            Summary {
                pid,
                served,
                reaped,
                joined,
                zombies_at_shutdown,
                zombies_left,
            } => write!(
                f,
                "summary pid={pid} served={served} reaped={reaped} joined={joined} \
                 zombies-at-shutdown={zombies_at_shutdown} zombies-left={zombies_left}"
            ),
        }
    }
}

/// Print one event line with a single write(2) to fd 1.
///
/// Errors are ignored on purpose: if stdout is gone (the reader of our pipe
/// exited) the server keeps serving. SIGPIPE is ignored (see `signals.rs`),
/// so such a write fails with EPIPE instead of killing us.
///
/// The line is formatted on the stack, not in a `String`: a forked child
/// that touches the heap copies each page it writes (copy-on-write), and
/// so does the parent while children share its pages. A line too long for
/// the stack buffer (a long hint) falls back to the heap.
pub fn emit(event: &Event) {
    let mut line = StackLine::default();
    if std::fmt::Write::write_fmt(&mut line, format_args!("{event}\n")).is_ok() {
        write_all_fd1(&line.buf[..line.len]);
    } else {
        write_all_fd1(format!("{event}\n").as_bytes());
    }
}

/// A fixed buffer that `write!` fills; an error once it is full.
struct StackLine {
    buf: [u8; 512],
    len: usize,
}

impl Default for StackLine {
    fn default() -> StackLine {
        StackLine {
            buf: [0; 512],
            len: 0,
        }
    }
}

impl std::fmt::Write for StackLine {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn write_all_fd1(mut buf: &[u8]) {
    // SAFETY: descriptor 1 is open for the whole life of the process (a
    // closed stdout would only make write() fail, which we ignore).
    let stdout = unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::STDOUT_FILENO) };
    while !buf.is_empty() {
        match nix::unistd::write(stdout, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// A parsed event line: its name and its `key=value` fields.
///
/// The listening line's address is stored as the field `addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub event: String,
    pub fields: BTreeMap<String, String>,
}

impl Line {
    /// Parse one line of echo-server's stdout; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Line> {
        let text = text.trim_end();
        let (event, mut rest) = text.split_once(' ').unwrap_or((text, ""));
        let mut fields = BTreeMap::new();
        if event == "listening" {
            let after_on = rest.strip_prefix("on ")?;
            let (addr, tail) = after_on.split_once(' ').unwrap_or((after_on, ""));
            fields.insert("addr".to_string(), addr.to_string());
            rest = tail;
        }
        while !rest.is_empty() {
            let (key, after_eq) = rest.split_once('=')?;
            let (value, tail) = if let Some(quoted) = after_eq.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&quoted[..end], quoted[end + 1..].trim_start())
            } else {
                after_eq.split_once(' ').unwrap_or((after_eq, ""))
            };
            fields.insert(key.to_string(), value.to_string());
            rest = tail;
        }
        if event.is_empty() || !event.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            return None;
        }
        Some(Line {
            event: event.to_string(),
            fields,
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A numeric field (pid, child, bytes ...).
    pub fn num(&self, key: &str) -> Option<i64> {
        self.get(key)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line fits the stack buffer whole, or not at all (then the heap).
    #[test]
    fn stack_line_takes_a_line_or_refuses_it() {
        use std::fmt::Write;
        let mut line = StackLine::default();
        writeln!(line, "accepted pid={}", 4100).unwrap();
        assert_eq!(&line.buf[..line.len], b"accepted pid=4100\n");
        let mut long = StackLine::default();
        assert!(write!(long, "{}", "x".repeat(600)).is_err());
    }

    /// Every event prints as one line that parses back to its fields.
    #[test]
    fn every_event_round_trips_through_its_line() {
        let peer: SocketAddr = "127.0.0.1:51230".parse().unwrap();
        let listening = Event::Listening {
            addr: "[::1]:6666".parse().unwrap(),
            pid: 4100,
            mode: "fork",
            reap: "waitpid",
            backlog: 1024,
        };
        let line = Line::parse(&listening.to_string()).unwrap();
        assert_eq!(line.event, "listening");
        assert_eq!(line.get("addr"), Some("[::1]:6666"));
        assert_eq!(line.num("pid"), Some(4100));
        assert_eq!(line.get("reap"), Some("waitpid"));

        let accepted = Event::Accepted {
            peer,
            pid: 4100,
            handler: Handler::Child(4107),
        };
        assert_eq!(
            accepted.to_string(),
            "accepted peer=127.0.0.1:51230 pid=4100 child=4107"
        );
        let reaped = Event::Reaped {
            child: 4107,
            pid: 4100,
            status: ChildStatus::Signaled(Signal::SIGTERM),
        };
        let line = Line::parse(&reaped.to_string()).unwrap();
        assert_eq!(line.get("status"), Some("killed:SIGTERM"));

        let error = Event::Error {
            pid: 1,
            op: "accept",
            errno: Errno::EMFILE,
            hint: "out of file descriptors; backing off 100 ms".into(),
        };
        let line = Line::parse(&error.to_string()).unwrap();
        assert_eq!(line.get("errno"), Some("EMFILE"));
        assert_eq!(
            line.get("hint"),
            Some("out of file descriptors; backing off 100 ms")
        );
    }

    #[test]
    fn text_that_is_not_an_event_is_rejected() {
        assert_eq!(Line::parse("Hello, world"), None);
        assert_eq!(Line::parse("accepted peer"), None);
    }

    /// The hand-written IPv4 form is the standard one, at every width;
    /// IPv6 goes through the standard form.
    #[test]
    fn peers_are_written_as_the_standard_library_writes_them() {
        for text in [
            "0.0.0.0:0",
            "127.0.0.1:51230",
            "255.255.255.255:65535",
            "10.66.0.2:6666",
            "[::1]:6666",
            "[::ffff:127.0.0.1]:80",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(Peer(addr).to_string(), addr.to_string());
        }
    }
}
