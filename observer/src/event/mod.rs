//! The story the observer tells: one typed stream of events.
//!
//! Every source produces these: the inet_diag poll and the destroy
//! notifications ([`crate::track`], [`crate::source::poll`]), the kernel's
//! tracepoint ([`crate::source::trace`], `--exact`), the lab's wire
//! ([`crate::lab`]), and a recording read back ([`crate::source::replay`]).
//! Every view consumes them: the text and JSON lines ([`text`], [`json`],
//! [`crate::view::text`]), the recorder ([`crate::view::record`]) and the
//! full-screen picture ([`crate::tui`]). A view never asks the kernel or
//! /proc anything: what it shows is in the event, so a recording replays
//! to the same lines and the same pictures.
//!
//! The JSON form of each event is the `--json` schema of
//! observer/README.md.

pub mod json;
pub mod text;

use std::net::SocketAddr;
use std::time::Duration;

use crate::diag::{SockInfo, TcpInfoLite};
use crate::lab::Side;
use crate::lab::delay::{Dir, Fate};
use crate::lab::segment::{Named, Segment};
use crate::procfs::{Owner, Process};
use crate::roles::Role;
use crate::tcp_state::{Missed, TcpState};

/// The identity of a socket across polls: its 4-tuple.
pub type Key = (SocketAddr, SocketAddr);

/// A socket as shown in an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockView {
    pub info: SockInfo,
    pub role: Role,
    /// Connection number, shared by both ends (`#3`); none for listeners.
    pub conn: Option<u32>,
    pub owners: Vec<Owner>,
}

/// How a socket left the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// TIME_WAIT's 60 s ran out. `before_seen`: it was in TIME_WAIT when
    /// we first saw it, for about this long (60 s less the time its timer
    /// had left then); `None`: we saw it enter.
    TimeWaitOver { before_seen: Option<Duration> },
    /// LAST_ACK got its ACK: the passive closer is done.
    Closed,
    /// The kernel told us it destroyed the socket (with final counters).
    Destroyed(Option<TcpInfoLite>),
    /// Destroyed by a reset: `sent` when this end sent the RST (an
    /// abortive close: SO_LINGER 0 runs tcp_disconnect, which clears the
    /// socket's remote address and zeroes its counters before the destroy
    /// notification, so the notification carries remote port 0), else
    /// received (its other end was the one reset, and it left no TIME_WAIT).
    Reset {
        sent: bool,
        tcp: Option<TcpInfoLite>,
    },
    /// A normal passive close, too fast to see: its other end is in
    /// TIME_WAIT, so the FINs were exchanged; `missed` are the states it
    /// passed unseen (CLOSE_WAIT, LAST_ACK).
    PassiveClose {
        missed: Missed,
        tcp: Option<TcpInfoLite>,
    },
    /// It is just not there any more.
    Vanished,
    /// Opened and destroyed between two polls: we never saw it.
    Unseen(Option<TcpInfoLite>),
}

/// What changed about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcChange {
    New,
    Changed {
        state: char,
        wchan: String,
    },
    /// Gone without ever being seen as a zombie: reaped within a poll.
    Exited,
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Time since the watch started, in whole microseconds (what the JSON
    /// lines carry, so that a recording replays to the same text).
    pub t: Duration,
    /// In the lab: which of its two hosts the event happened on.
    pub host: Option<Side>,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A socket appeared. `existing`: it was there when we started.
    New {
        sock: SockView,
        missed: Missed,
        gap: Duration,
        existing: bool,
    },
    State {
        sock: SockView,
        prev: TcpState,
        prev_for: Duration,
        missed: Missed,
        gap: Duration,
        /// The full socket's final counters, when its TIME_WAIT entry took over.
        freed: Option<TcpInfoLite>,
    },
    /// TIME_WAIT's remaining time, every 10 s.
    Countdown {
        sock: SockView,
    },
    /// The set of processes holding the socket changed.
    Owners {
        sock: SockView,
        prev: Vec<Owner>,
    },
    Gone {
        sock: SockView,
        prev_for: Duration,
        how: Gone,
        gap: Duration,
    },
    Process {
        process: Process,
        change: ProcChange,
    },
    Zombie {
        process: Process,
        /// How long we have seen it a zombie.
        zombie_for: Duration,
        parent: Option<Process>,
        /// Already a zombie at our first look: how long ago it *started*
        /// (/proc/PID/stat); when it exited, the kernel does not say.
        before_start: Option<Duration>,
    },
    Reaped {
        process: Process,
        zombie_for: Duration,
        /// It was a zombie before we started: `zombie_for` is a lower bound.
        before_start: bool,
    },
    Note {
        text: String,
    },
    /// A state change reported by the kernel's tracepoint (`--exact`).
    Transition {
        local: SocketAddr,
        remote: SocketAddr,
        role: Role,
        conn: Option<u32>,
        old: TcpState,
        new: TcpState,
        /// Time in `old`, when the tracepoint showed its start.
        prev_for: Option<Duration>,
        pid: i32,
        comm: String,
    },
    /// The lab's first line: its two hosts, its wire, what to type.
    Lab(Box<LabInfo>),
    /// A TCP segment entering the lab's wire.
    Segment(Box<WireSegment>),
    /// The lab was torn down.
    LabDown {
        name: String,
    },
}

/// What `observer lab` built, as its first event says.
#[derive(Debug, Clone, PartialEq)]
pub struct LabInfo {
    pub name: String,
    pub client_ns: String,
    pub server_ns: String,
    pub client_addr: String,
    pub server_addr: String,
    /// One-way delay of the wire.
    pub delay: Duration,
    pub loss_percent: f64,
    pub seed: u64,
    pub syn_linear_timeouts: Option<u32>,
    /// The commands the lab suggests for the other two terminals.
    pub server_cmd: String,
    pub client_cmd: String,
    /// The observer's own path, for `observer lab exec`.
    pub observer: String,
}

/// One TCP segment as it entered the lab's wire, named the seed's way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireSegment {
    pub dir: Dir,
    pub segment: Segment,
    pub named: Named,
    pub fate: Fate,
    /// When it reaches the other host (None: lost).
    pub arrives: Option<Duration>,
}

/// A time as events carry it: whole microseconds.
pub fn micros(d: Duration) -> Duration {
    Duration::from_micros(d.as_micros() as u64)
}

impl Event {
    /// An event at `t` (cut to whole microseconds), on no lab host.
    pub fn new(t: Duration, kind: Kind) -> Event {
        Event {
            t: micros(t),
            host: None,
            kind,
        }
    }

    /// Where a line goes among the lines of the same instant (one poll):
    /// sockets by connection number, each connection's server end before
    /// its client end (as `observer snapshot` lists them), then processes
    /// by pid, then notes. The kernel's dump comes in hash-table order,
    /// which changes from run to run; the timeline should not.
    pub fn order(&self) -> (u8, u32, u8, i32) {
        let role = |r: Role| match r {
            Role::Listener => 0,
            Role::Server => 1,
            Role::Client => 2,
            Role::Unknown => 3,
        };
        match &self.kind {
            Kind::New { sock, .. }
            | Kind::State { sock, .. }
            | Kind::Countdown { sock }
            | Kind::Owners { sock, .. }
            | Kind::Gone { sock, .. } => (0, sock.conn.unwrap_or(0), role(sock.role), 0),
            Kind::Transition { conn, role: r, .. } => (0, conn.unwrap_or(0), role(*r), 0),
            Kind::Process { process, .. }
            | Kind::Zombie { process, .. }
            | Kind::Reaped { process, .. } => (1, 0, 0, process.pid),
            Kind::Note { .. } | Kind::Lab(_) | Kind::Segment(_) | Kind::LabDown { .. } => {
                (2, 0, 0, 0)
            }
        }
    }

    /// Where the event came from: `poll` (inet_diag), `destroy` (the
    /// destroy notifications), `trace` (the tracepoint), `proc` (/proc),
    /// `wire` (the lab's wire), `lab` (the lab itself), `observer` (a note
    /// of ours).
    pub fn source(&self) -> &'static str {
        match &self.kind {
            Kind::New { .. }
            | Kind::State { .. }
            | Kind::Countdown { .. }
            | Kind::Owners { .. } => "poll",
            Kind::Gone { how, .. } => match how {
                Gone::Destroyed(_) | Gone::Unseen(_) | Gone::Reset { .. } => "destroy",
                _ => "poll",
            },
            Kind::Process { .. } | Kind::Zombie { .. } | Kind::Reaped { .. } => "proc",
            Kind::Note { .. } => "observer",
            Kind::Transition { .. } => "trace",
            Kind::Segment(_) => "wire",
            Kind::Lab(_) | Kind::LabDown { .. } => "lab",
        }
    }
}
