//! `observer watch` (the default): a live timeline of sockets and processes.
//!
//! Every `--interval` (10 ms by default) we dump the sockets on the port
//! (the kernel filters them for us), compare with the previous dump, and
//! print one line per change. Between dumps we listen to the kernel's
//! destroy notifications, which catch sockets that close between polls.
//!
//! Sampling is honest about what it missed: if a socket was ESTABLISHED
//! at one poll and TIME_WAIT at the next, the state machine says it went
//! through FIN_WAIT1 and then FIN_WAIT2 or CLOSING, too fast to be seen.
//! We print that, with the bound (`< 10 ms`), and never pretend we saw it.
//! `observer --exact` (root) shows every transition from the kernel's own
//! tracepoint instead.
//!
//! The [`Tracker`] is the whole logic, fed with dumps and clock readings;
//! [`run`] is the loop around it.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::diag::{DiagError, DiagSocket, EventSocket, Query, SockInfo, TcpInfoLite};
use crate::procfs::{self, Owner, Owners, Process};
use crate::render::{self, Style};
use crate::roles::{self, Listeners, Role};
use crate::snapshot::{owners_json, owners_text};
use crate::tcp_state::{self, Missed, TcpState};

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
    /// Time since the watch started.
    pub t: Duration,
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
}

impl Event {
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
            Kind::Note { .. } => (2, 0, 0, 0),
        }
    }
}

/// TIME_WAIT's remaining time in started 10 s steps: 60 s is step 6,
/// 59.9 s still 6, 49.9 s is 5: one countdown line per 10 s.
fn countdown_step(expires_ms: u32) -> u32 {
    expires_ms.div_ceil(10_000)
}

struct TrackedSock {
    view: SockView,
    state_since: Instant,
    /// Remaining TIME_WAIT, in 10 s steps, last reported.
    countdown: Option<u32>,
    /// A destroy notification arrived (the socket may live on as TIME_WAIT).
    destroyed: Option<(Instant, Option<TcpInfoLite>)>,
    /// Its destroy notification had remote port 0: tcp_disconnect ran,
    /// so this end sent an RST (see [`Gone::Reset`]).
    reset_sent: bool,
    /// First seen already in TIME_WAIT: how long it had been there, from
    /// its timer (see [`Gone::TimeWaitOver`]).
    time_wait_before_seen: Option<Duration>,
}

/// How long TIME_WAIT lasts on Linux (TCP_TIMEWAIT_LEN, include/net/tcp.h;
/// RFC 9293 asks for 2 MSL).
const TIME_WAIT_LEN: Duration = Duration::from_secs(60);

struct TrackedProc {
    process: Process,
    /// First seen in state Z.
    zombie_since: Option<Instant>,
    /// A zombie already at our first look at the processes: how long ago
    /// it started (the only age /proc gives a zombie).
    zombie_before_start: Option<Duration>,
    /// When we last said so (None: not yet).
    zombie_reported: Option<Instant>,
    /// A (state, wchan) seen once; reported when seen twice in a row, so a
    /// busy process flickering between R and S does not flood the timeline.
    candidate: Option<(char, String, String)>,
}

/// How many slow polls in a row before the timeline says the sampling
/// is slower than asked.
const SLOW_POLLS: u32 = 5;

/// How long a process must stay a zombie before we sound the alarm.
pub const ZOMBIE_GRACE: Duration = Duration::from_millis(50);

/// How often a zombie is reported again while it stays one.
const ZOMBIE_REMINDER: Duration = Duration::from_secs(5);

/// The timeline logic: feed it dumps, destroy notifications and process
/// readings; it returns the events.
pub struct Tracker {
    start: Instant,
    port: Option<u16>,
    sockets: HashMap<Key, TrackedSock>,
    listeners: Listeners,
    conns: HashMap<Key, u32>,
    next_conn: u32,
    pending_destroyed: HashMap<Key, (Instant, SockInfo)>,
    /// Destroy notifications with no remote address (see `destroyed`).
    disconnected: Vec<(Instant, SockInfo)>,
    /// local -> remote of sockets recently gone, to pair late notifications.
    recent_peers: HashMap<SocketAddr, SocketAddr>,
    recently_gone: HashMap<Key, Instant>,
    /// Local addresses of ends that sent an RST lately: their peers,
    /// destroyed too, received it.
    reset_senders: HashMap<SocketAddr, Instant>,
    last_poll: Option<Instant>,
    procs: HashMap<i32, TrackedProc>,
    /// Has `processes` been called before? What its first call finds
    /// already dead died before we started watching.
    procs_read: bool,
    /// The role of sockets no listener or port explains (the lab knows
    /// which namespace is the client's).
    fallback: Role,
}

impl Tracker {
    pub fn new(start: Instant, port: Option<u16>) -> Tracker {
        Tracker {
            start,
            port,
            sockets: HashMap::new(),
            listeners: Listeners::default(),
            conns: HashMap::new(),
            next_conn: 1,
            pending_destroyed: HashMap::new(),
            disconnected: Vec::new(),
            recent_peers: HashMap::new(),
            recently_gone: HashMap::new(),
            reset_senders: HashMap::new(),
            last_poll: None,
            procs: HashMap::new(),
            procs_read: false,
            fallback: Role::Unknown,
        }
    }

    /// Give sockets whose role nothing else decides this one.
    pub fn with_fallback_role(mut self, role: Role) -> Tracker {
        self.fallback = role;
        self
    }

    fn role(&self, local: SocketAddr, remote: SocketAddr, listening: bool) -> Role {
        if listening {
            return Role::Listener;
        }
        match roles::role_of_addrs(local, remote, &self.listeners, self.port) {
            Role::Unknown => self.fallback,
            role => role,
        }
    }

    /// The number of the connection these two addresses belong to; both
    /// ends get the same one, in order of first sight.
    fn conn_number(&mut self, local: SocketAddr, remote: SocketAddr, role: Role) -> Option<u32> {
        if role == Role::Listener || local.port() == 0 {
            return None;
        }
        let key = roles::connection_key_of(local, remote, role);
        Some(*self.conns.entry(key).or_insert_with(|| {
            self.next_conn += 1;
            self.next_conn - 1
        }))
    }

    fn view(&mut self, info: SockInfo, owners: Vec<Owner>) -> SockView {
        let role = self.role(info.local, info.remote, info.state == TcpState::Listen);
        let conn = self.conn_number(info.local, info.remote, role);
        SockView {
            info,
            role,
            conn,
            owners,
        }
    }

    fn event(&self, at: Instant, kind: Kind) -> Event {
        Event {
            t: at.saturating_duration_since(self.start),
            kind,
        }
    }

    /// A destroy notification: remember it until the next poll decides
    /// whether the socket is gone or lives on as a TIME_WAIT entry.
    ///
    /// A socket closed with an RST of its own (SO_LINGER 0) was
    /// disconnected first: tcp_disconnect() zeroed its remote address, so
    /// its notification says `remote 0.0.0.0:0`. We find it by its cookie
    /// if we polled it, else by its local address at the next poll.
    pub fn destroyed(&mut self, now: Instant, mut info: SockInfo) {
        if let Some(tracked) = self
            .sockets
            .values_mut()
            .find(|t| t.view.info.cookie == info.cookie)
        {
            tracked.destroyed = Some((now, info.tcp_info));
            if info.remote.port() == 0 {
                // tcp_disconnect cleared the address: an abortive close.
                tracked.reset_sent = true;
                self.reset_senders.insert(tracked.view.info.local, now);
            }
            return;
        }
        if info.remote.port() == 0 {
            self.disconnected.push((now, info));
            return;
        }
        if let Some(port) = self.port {
            if info.local.port() != port && info.remote.port() != port {
                return;
            }
        }
        let key = (info.local, info.remote);
        if !self.recently_gone.contains_key(&key) {
            info.state = TcpState::Close;
            self.pending_destroyed.insert(key, (now, info));
        }
    }

    /// Give disconnected notifications back their peer: the socket whose
    /// remote address is their local one is the other end.
    fn match_disconnected(&mut self) {
        let stashed: Vec<(Instant, SockInfo)> = self.disconnected.drain(..).collect();
        for (at, mut info) in stashed {
            let peer = self
                .sockets
                .values()
                .map(|t| &t.view.info)
                .chain(self.pending_destroyed.values().map(|(_, i)| i))
                .find(|other| other.remote == info.local)
                .map(|other| other.local)
                .or_else(|| self.recent_peers.get(&info.local).copied());
            let Some(peer) = peer else {
                continue; // not a socket of the watched port
            };
            info.remote = peer;
            let key = (info.local, info.remote);
            if !self.recently_gone.contains_key(&key) {
                self.pending_destroyed.insert(key, (at, info));
            }
        }
    }

    /// One dump: compare with the last, return what changed.
    pub fn poll(&mut self, now: Instant, sockets: Vec<SockInfo>, owners: &Owners) -> Vec<Event> {
        let first = self.last_poll.is_none();
        let gap = self.last_poll.map_or(Duration::ZERO, |last| now - last);
        self.last_poll = Some(now);
        for s in &sockets {
            self.listeners.add(s);
        }
        self.recently_gone
            .retain(|_, at| now.saturating_duration_since(*at) < Duration::from_secs(2));
        self.reset_senders
            .retain(|_, at| now.saturating_duration_since(*at) < Duration::from_secs(2));
        let gone: HashSet<SocketAddr> = self.recently_gone.keys().map(|k| k.1).collect();
        self.recent_peers.retain(|remote, _| gone.contains(remote));
        self.match_disconnected();

        let mut events = Vec::new();
        let mut present: HashSet<Key> = HashSet::new();
        for info in sockets {
            let key = (info.local, info.remote);
            present.insert(key);
            let sock_owners = owners.of(info.inode).to_vec();
            let Some(tracked) = self.sockets.get(&key) else {
                events.extend(self.appear(now, info, sock_owners, gap, first));
                continue;
            };
            let prev = tracked.view.info.state;
            let same_socket = info.cookie == tracked.view.info.cookie
                || matches!(prev, TcpState::SynRecv | TcpState::NewSynRecv);
            let missed = tcp_state::missed_between(prev, info.state);
            if !same_socket || missed.is_none() {
                // A new connection reusing the 4-tuple: the old one is gone.
                let old = self.sockets.remove(&key).expect("tracked");
                events.push(self.leave(now, old, gap));
                events.extend(self.appear(now, info, sock_owners, gap, false));
                continue;
            }
            let mut view = self.view(info, sock_owners);
            let tracked = self.sockets.get_mut(&key).expect("tracked");
            let freed = tracked.destroyed.take().and_then(|(_, tcp)| tcp);
            if view.info.state != prev {
                let prev_for = now - tracked.state_since;
                tracked.state_since = now;
                tracked.countdown = None;
                tracked.view = view.clone();
                events.push(Event {
                    t: now - self.start,
                    kind: Kind::State {
                        sock: view,
                        prev,
                        prev_for,
                        missed: missed.unwrap_or_default(),
                        gap,
                        freed,
                    },
                });
                continue;
            }
            if view.owners != tracked.view.owners {
                let prev_owners = std::mem::take(&mut tracked.view.owners);
                tracked.view.owners = view.owners.clone();
                events.push(Event {
                    t: now - self.start,
                    kind: Kind::Owners {
                        sock: view.clone(),
                        prev: prev_owners,
                    },
                });
            }
            if view.info.state == TcpState::TimeWait {
                let step = countdown_step(view.info.expires_ms);
                if tracked.countdown.is_some_and(|last| step < last) {
                    events.push(Event {
                        t: now - self.start,
                        kind: Kind::Countdown { sock: view.clone() },
                    });
                }
                tracked.countdown = Some(step);
            }
            view.owners = tracked.view.owners.clone();
            tracked.view = view;
        }

        let vanished: Vec<Key> = self
            .sockets
            .keys()
            .filter(|k| !present.contains(k))
            .copied()
            .collect();
        for key in vanished {
            let old = self.sockets.remove(&key).expect("tracked");
            events.push(self.leave(now, old, gap));
        }

        // Destroyed between polls and never seen: a whole short life.
        let unseen: Vec<(Key, (Instant, SockInfo))> = self.pending_destroyed.drain().collect();
        for (key, (at, info)) in unseen {
            if present.contains(&key) {
                continue; // it lives on as a TIME_WAIT entry, reported above
            }
            self.recently_gone.insert(key, at);
            self.recent_peers.insert(key.1, key.0);
            let tcp = info.tcp_info;
            let view = self.view(info, Vec::new());
            events.push(self.event(
                at,
                Kind::Gone {
                    sock: view,
                    prev_for: Duration::ZERO,
                    how: Gone::Unseen(tcp),
                    gap,
                },
            ));
        }
        events.sort_by_key(|e| (e.t, e.order()));
        events
    }

    fn appear(
        &mut self,
        now: Instant,
        info: SockInfo,
        owners: Vec<Owner>,
        gap: Duration,
        existing: bool,
    ) -> Vec<Event> {
        let key = (info.local, info.remote);
        self.pending_destroyed.remove(&key);
        let view = self.view(info, owners);
        let missed = if existing {
            Missed::default()
        } else {
            tcp_state::missed_before(view.info.state, view.role.active_opener())
        };
        let countdown =
            (view.info.state == TcpState::TimeWait).then(|| countdown_step(view.info.expires_ms));
        self.sockets.insert(
            key,
            TrackedSock {
                view: view.clone(),
                state_since: now,
                countdown,
                destroyed: None,
                reset_sent: false,
                time_wait_before_seen: (view.info.state == TcpState::TimeWait).then(|| {
                    TIME_WAIT_LEN.saturating_sub(Duration::from_millis(view.info.expires_ms.into()))
                }),
            },
        );
        vec![self.event(
            now,
            Kind::New {
                sock: view,
                missed,
                gap,
                existing,
            },
        )]
    }

    fn leave(&mut self, now: Instant, old: TrackedSock, gap: Duration) -> Event {
        let key = (old.view.info.local, old.view.info.remote);
        self.recently_gone.insert(key, now);
        self.recent_peers.insert(key.1, key.0);
        let peer_reset = self.reset_senders.contains_key(&old.view.info.remote);
        // Its other end, if we watch it, in TIME_WAIT: then this end was the
        // passive closer and the close was a normal one.
        let peer_key = (old.view.info.remote, old.view.info.local);
        let peer_in_time_wait = self
            .sockets
            .get(&peer_key)
            .is_some_and(|p| p.view.info.state == TcpState::TimeWait);
        let how = match (old.view.info.state, old.destroyed) {
            (TcpState::TimeWait, _) => Gone::TimeWaitOver {
                before_seen: old.time_wait_before_seen,
            },
            (_, Some((_, tcp))) if old.reset_sent => Gone::Reset { sent: true, tcp },
            (TcpState::LastAck, _) => Gone::Closed,
            (_, destroyed) if peer_reset => Gone::Reset {
                sent: false,
                tcp: destroyed.and_then(|(_, tcp)| tcp),
            },
            (state @ (TcpState::Established | TcpState::CloseWait), destroyed)
                if peer_in_time_wait =>
            {
                let mut missed =
                    tcp_state::missed_between(state, TcpState::LastAck).unwrap_or_default();
                missed.certain.push(TcpState::LastAck);
                Gone::PassiveClose {
                    missed,
                    tcp: destroyed.and_then(|(_, tcp)| tcp),
                }
            }
            (_, Some((_, tcp))) => Gone::Destroyed(tcp),
            _ => Gone::Vanished,
        };
        let at = old.destroyed.map_or(now, |(at, _)| at);
        self.event(
            at,
            Kind::Gone {
                prev_for: at.saturating_duration_since(old.state_since),
                sock: old.view,
                how,
                gap,
            },
        )
    }

    /// A transition from the tracepoint, placed on our timeline: `at` is
    /// its CLOCK_MONOTONIC time, `start` ours when the watch began.
    pub fn transition(
        &mut self,
        t: &crate::exact::Transition,
        prev_for: Option<Duration>,
        start_mono: Duration,
    ) -> Event {
        if t.new == TcpState::Listen {
            self.listeners.add_addr(t.local);
        }
        let listening = t.new == TcpState::Listen
            || t.old == TcpState::Listen && t.new == TcpState::Close && t.remote.port() == 0;
        let role = self.role(t.local, t.remote, listening);
        let conn = self.conn_number(t.local, t.remote, role);
        Event {
            t: t.at.saturating_sub(start_mono),
            kind: Kind::Transition {
                local: t.local,
                remote: t.remote,
                role,
                conn,
                old: t.old,
                new: t.new,
                prev_for,
                pid: t.pid,
                comm: t.comm.clone(),
            },
        }
    }

    /// The processes worth watching: owners of the sockets, their
    /// children, the ones already tracked, and `extra` (`--pid`).
    pub fn watch_set(&self, owners: &Owners, extra: &[i32]) -> HashSet<i32> {
        let mut set: HashSet<i32> = self
            .sockets
            .values()
            .flat_map(|s| s.view.owners.iter().map(|o| o.pid))
            .collect();
        set.extend(owners.pids());
        set.extend(extra.iter().copied());
        set.extend(self.procs.keys().copied());
        let parents: Vec<i32> = set.iter().copied().collect();
        for pid in parents {
            set.extend(procfs::children(pid));
        }
        set
    }

    /// Read the watched processes and report what changed.
    ///
    /// A zombie is reported once it has stayed one for [`ZOMBIE_GRACE`]:
    /// every child is a zombie for the instant between its exit and its
    /// parent's waitpid(), and that instant is not the bug we warn about.
    pub fn processes(&mut self, now: Instant, readings: Vec<(i32, Option<Process>)>) -> Vec<Event> {
        let mut events = Vec::new();
        let first_look = !std::mem::replace(&mut self.procs_read, true);
        for (pid, reading) in readings {
            match (reading, self.procs.remove(&pid)) {
                (Some(mut process), None) => {
                    process.args = procfs::cmdline(pid);
                    let zombie_since = (process.state == 'Z').then_some(now);
                    // A zombie at our first look has been one for we do
                    // not know how long: say so, with its real age.
                    let zombie_before_start = (first_look && process.state == 'Z')
                        .then(|| procfs::started_ago(pid).unwrap_or_default());
                    events.push(self.event(
                        now,
                        Kind::Process {
                            process: process.clone(),
                            change: ProcChange::New,
                        },
                    ));
                    let mut tracked = TrackedProc {
                        process,
                        zombie_since,
                        zombie_before_start,
                        zombie_reported: None,
                        candidate: None,
                    };
                    if tracked.zombie_before_start.is_some() {
                        // Past any grace already: say so now.
                        tracked.zombie_reported = Some(now);
                        events.push(self.zombie_event(now, &tracked));
                    }
                    self.procs.insert(pid, tracked);
                }
                (Some(mut process), Some(mut tracked)) => {
                    // The command line does not change while we watch.
                    process.args.clone_from(&tracked.process.args);
                    if process.state == 'Z' {
                        let since = *tracked.zombie_since.get_or_insert(now);
                        tracked.process = process;
                        let due = match tracked.zombie_reported {
                            None => now - since >= ZOMBIE_GRACE,
                            Some(last) => now - last >= ZOMBIE_REMINDER,
                        };
                        if due {
                            tracked.zombie_reported = Some(now);
                            events.push(self.zombie_event(now, &tracked));
                        }
                    } else if (process.state, &process.wchan, &process.syscall)
                        != (
                            tracked.process.state,
                            &tracked.process.wchan,
                            &tracked.process.syscall,
                        )
                        && process.state != 'R'
                    {
                        let reading = (
                            process.state,
                            process.wchan.clone(),
                            process.syscall.clone(),
                        );
                        if tracked.candidate.as_ref() == Some(&reading) {
                            let change = ProcChange::Changed {
                                state: tracked.process.state,
                                wchan: tracked.process.wchan.clone(),
                            };
                            tracked.process = process.clone();
                            tracked.candidate = None;
                            events.push(self.event(now, Kind::Process { process, change }));
                        } else {
                            tracked.candidate = Some(reading);
                        }
                    } else {
                        tracked.candidate = None;
                    }
                    self.procs.insert(pid, tracked);
                }
                (None, Some(tracked)) => {
                    let kind = match (tracked.zombie_since, tracked.zombie_reported) {
                        (Some(since), Some(_)) => Kind::Reaped {
                            process: tracked.process,
                            zombie_for: now - since,
                            before_start: tracked.zombie_before_start.is_some(),
                        },
                        _ => Kind::Process {
                            process: tracked.process,
                            change: ProcChange::Exited,
                        },
                    };
                    events.push(self.event(now, kind));
                }
                (None, None) => {}
            }
        }
        events
    }

    fn zombie_event(&self, now: Instant, tracked: &TrackedProc) -> Event {
        self.event(
            now,
            Kind::Zombie {
                process: tracked.process.clone(),
                zombie_for: tracked.zombie_since.map_or(Duration::ZERO, |s| now - s),
                parent: procfs::process(tracked.process.ppid),
                before_start: tracked.zombie_before_start,
            },
        )
    }
}

fn state_json(state: TcpState) -> Value {
    Value::String(state.name().to_string())
}

fn names(states: &[TcpState]) -> Value {
    Value::Array(states.iter().map(|s| state_json(*s)).collect())
}

fn tcp_json(tcp: &Option<TcpInfoLite>) -> Value {
    match tcp {
        Some(t) => json!({
            "bytes_acked": t.bytes_acked,
            "bytes_received": t.bytes_received,
            "total_retrans": t.total_retrans,
            "rtt_us": t.rtt_us,
        }),
        None => Value::Null,
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn sock_json(sock: &SockView) -> serde_json::Map<String, Value> {
    let info = &sock.info;
    let mut m = serde_json::Map::new();
    m.insert("state".into(), state_json(info.state));
    m.insert("local".into(), json!(info.local.to_string()));
    m.insert("remote".into(), json!(info.remote.to_string()));
    m.insert("role".into(), json!(sock.role.name()));
    m.insert("conn".into(), json!(sock.conn));
    m.insert("owners".into(), owners_json(&sock.owners));
    m.insert("recv_q".into(), json!(info.recv_q));
    m.insert("send_q".into(), json!(info.send_q));
    m.insert("timer".into(), json!(info.timer.name()));
    m.insert("expires_ms".into(), json!(info.expires_ms));
    m.insert("inode".into(), json!(info.inode));
    m.insert("uid".into(), json!(info.uid));
    m
}

fn process_json(p: &Process) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("pid".into(), json!(p.pid));
    m.insert("ppid".into(), json!(p.ppid));
    m.insert("state".into(), json!(p.state.to_string()));
    m.insert("wchan".into(), json!(p.wchan));
    m.insert("syscall".into(), json!(p.syscall));
    m.insert("meaning".into(), json!(procfs::waiting_for(p)));
    m.insert("comm".into(), json!(p.comm));
    m.insert("args".into(), json!(p.args));
    m
}

impl Event {
    /// One JSON object (schema: observer/README.md).
    pub fn json(&self) -> Value {
        let mut m = match &self.kind {
            Kind::New {
                sock,
                missed,
                gap,
                existing,
            } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("new"));
                m.insert("prev_state".into(), Value::Null);
                m.insert("existing".into(), json!(existing));
                missed_json(&mut m, missed, *gap);
                m
            }
            Kind::State {
                sock,
                prev,
                prev_for,
                missed,
                gap,
                freed,
            } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("state"));
                m.insert("prev_state".into(), state_json(*prev));
                m.insert("prev_ms".into(), json!(ms(*prev_for)));
                m.insert("freed".into(), tcp_json(freed));
                missed_json(&mut m, missed, *gap);
                m
            }
            Kind::Countdown { sock } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("countdown"));
                m
            }
            Kind::Owners { sock, prev } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("owners"));
                m.insert("prev_owners".into(), owners_json(prev));
                m
            }
            Kind::Gone {
                sock,
                prev_for,
                how,
                gap,
            } => {
                let mut m = sock_json(sock);
                m.insert("event".into(), json!("gone"));
                // Never polled: we do not know the state it was last in.
                let prev = match how {
                    Gone::Unseen(_) => Value::Null,
                    _ => state_json(sock.info.state),
                };
                m.insert("prev_state".into(), prev);
                m.insert("state".into(), state_json(TcpState::Close));
                m.insert("prev_ms".into(), json!(ms(*prev_for)));
                let (how, tcp, source) = match how {
                    Gone::TimeWaitOver { before_seen } => {
                        m.insert(
                            "before_seen_ms".into(),
                            before_seen.map_or(Value::Null, |d| json!(ms(d))),
                        );
                        ("time_wait_over", None, "poll")
                    }
                    Gone::Closed => ("closed", None, "poll"),
                    Gone::Destroyed(t) => ("destroyed", *t, "destroy"),
                    Gone::Reset { sent: true, tcp } => ("reset_sent", *tcp, "destroy"),
                    Gone::PassiveClose { missed, tcp } => {
                        m.insert("missed".into(), names(&missed.certain));
                        ("closed", *tcp, "poll")
                    }
                    Gone::Reset { sent: false, tcp } => ("reset_received", *tcp, "destroy"),
                    Gone::Vanished => ("vanished", None, "poll"),
                    Gone::Unseen(t) => ("unseen", *t, "destroy"),
                };
                m.insert("how".into(), json!(how));
                m.insert("source".into(), json!(source));
                m.insert("final".into(), tcp_json(&tcp));
                m.insert("gap_ms".into(), json!(ms(*gap)));
                m
            }
            Kind::Process { process, change } => {
                let mut m = process_json(process);
                m.insert("event".into(), json!("process"));
                let (change, prev) = match change {
                    ProcChange::New => ("new", None),
                    ProcChange::Changed { state, wchan } => ("changed", Some((state, wchan))),
                    ProcChange::Exited => ("exited", None),
                };
                m.insert("change".into(), json!(change));
                if let Some((state, wchan)) = prev {
                    m.insert("prev_state".into(), json!(state.to_string()));
                    m.insert("prev_wchan".into(), json!(wchan));
                }
                m
            }
            Kind::Zombie {
                process,
                zombie_for,
                parent,
                before_start,
            } => {
                let mut m = process_json(process);
                m.insert("event".into(), json!("zombie"));
                m.insert("zombie_ms".into(), json!(ms(*zombie_for)));
                m.insert("before_start".into(), json!(before_start.is_some()));
                m.insert(
                    "started_ms_ago".into(),
                    before_start.map_or(Value::Null, |age| json!(ms(age))),
                );
                m.insert(
                    "parent".into(),
                    parent
                        .as_ref()
                        .map_or(Value::Null, |p| json!({"pid": p.pid, "comm": p.comm})),
                );
                m
            }
            Kind::Reaped {
                process,
                zombie_for,
                before_start,
            } => {
                let mut m = process_json(process);
                m.insert("event".into(), json!("reaped"));
                m.insert("zombie_ms".into(), json!(ms(*zombie_for)));
                m.insert("before_start".into(), json!(before_start));
                m
            }
            Kind::Note { text } => {
                let mut m = serde_json::Map::new();
                m.insert("event".into(), json!("note"));
                m.insert("text".into(), json!(text));
                m
            }
            Kind::Transition {
                local,
                remote,
                role,
                conn,
                old,
                new,
                prev_for,
                pid,
                comm,
            } => {
                let mut m = serde_json::Map::new();
                m.insert("event".into(), json!("transition"));
                m.insert("source".into(), json!("trace"));
                m.insert("state".into(), state_json(*new));
                m.insert("prev_state".into(), state_json(*old));
                m.insert(
                    "prev_us".into(),
                    prev_for.map_or(Value::Null, |d| json!(d.as_micros() as u64)),
                );
                m.insert("local".into(), json!(local.to_string()));
                m.insert("remote".into(), json!(remote.to_string()));
                m.insert("role".into(), json!(role.name()));
                m.insert("conn".into(), json!(conn));
                m.insert("pid".into(), json!(pid));
                m.insert("comm".into(), json!(comm));
                m
            }
        };
        m.entry("source").or_insert_with(|| json!(self.source()));
        m.insert(
            "t".into(),
            json!((self.t.as_secs_f64() * 1e6).round() / 1e6),
        );
        Value::Object(m)
    }

    /// Where the event came from: `poll` (inet_diag), `destroy` (the
    /// destroy notifications), `trace` (the tracepoint), `proc` (/proc),
    /// `observer` (a note of ours).
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
        }
    }

    /// One line for people.
    pub fn human(&self, style: Style) -> String {
        let t = format!("{:>9.3}", self.t.as_secs_f64());
        match &self.kind {
            Kind::New {
                sock,
                missed,
                gap,
                existing,
            } => {
                let mut text = format!("new {}", style.state(sock.info.state));
                if sock.info.state == TcpState::TimeWait {
                    text += &format!(" ({} left)", render::millis(sock.info.expires_ms.into()));
                }
                if *existing {
                    text += " (already there)";
                }
                format!(
                    "{t}  {}  {text}{}{}",
                    head(sock),
                    missed_text(missed, *gap),
                    tail(sock)
                )
            }
            Kind::State {
                sock,
                prev,
                prev_for,
                missed,
                gap,
                freed,
            } => {
                let mut text = format!(
                    "{} -> {} after {}",
                    style.state(*prev),
                    style.state(sock.info.state),
                    render::elapsed(*prev_for)
                );
                if sock.info.state == TcpState::TimeWait {
                    text += &format!(", {} to go", render::millis(sock.info.expires_ms.into()));
                }
                if let Some(tcp) = freed {
                    text += &format!(
                        " (socket freed, its entry remains; {})",
                        counters(tcp, sock.role, Fins::BothDone)
                    );
                }
                format!(
                    "{t}  {}  {text}{}{}",
                    head(sock),
                    missed_text(missed, *gap),
                    tail(sock)
                )
            }
            Kind::Countdown { sock } => format!(
                "{t}  {}  {} {} left",
                head(sock),
                style.state(TcpState::TimeWait),
                render::millis(sock.info.expires_ms.into())
            ),
            Kind::Owners { sock, prev } => {
                let now = if sock.owners.is_empty() {
                    "no process holds it now (orphaned: the kernel finishes the close)".to_string()
                } else {
                    format!("held by {}", owners_text(&sock.owners))
                };
                let was = if prev.is_empty() {
                    "no process before: not yet accepted".to_string()
                } else {
                    format!("was {}", owners_text(prev))
                };
                format!("{t}  {}  {now} ({was})", head(sock))
            }
            Kind::Gone {
                sock,
                prev_for,
                how,
                gap,
            } => {
                let state = sock.info.state;
                let text = match how {
                    Gone::TimeWaitOver { before_seen: None } => format!(
                        "{} over after {}: gone",
                        style.state(state),
                        render::elapsed(*prev_for)
                    ),
                    // We did not see it enter: say what was measured.
                    Gone::TimeWaitOver {
                        before_seen: Some(before),
                    } => format!(
                        "{} over: gone {} after we first saw it; it had entered about {} before \
                         (its timer then had {} left), about {} in all",
                        style.state(state),
                        render::elapsed(*prev_for),
                        render::elapsed(*before),
                        render::elapsed(TIME_WAIT_LEN.saturating_sub(*before)),
                        render::elapsed(*before + *prev_for)
                    ),
                    Gone::Closed => format!(
                        "{} -> gone (CLOSE) after {}",
                        style.state(state),
                        render::elapsed(*prev_for)
                    ),
                    Gone::Destroyed(tcp) | Gone::Unseen(tcp) => {
                        let base = if matches!(how, Gone::Unseen(_)) {
                            format!(
                                "opened and destroyed between two polls (< {})",
                                render::elapsed(*gap)
                            )
                        } else {
                            format!(
                                "{} -> destroyed after {}{}",
                                style.state(state),
                                render::elapsed(*prev_for),
                                abrupt(state)
                            )
                        };
                        match tcp {
                            Some(t) => format!("{base}; {}", counters(t, sock.role, Fins::Unknown)),
                            None => base,
                        }
                    }
                    Gone::PassiveClose { missed, tcp } => {
                        let base = format!(
                            "{} -> gone (CLOSE) after {}: closed normally, its other end is in TIME_WAIT{}",
                            style.state(state),
                            render::elapsed(*prev_for),
                            missed_text(missed, *gap)
                        );
                        match tcp {
                            Some(t) => {
                                format!("{base}; {}", counters(t, sock.role, Fins::BothDone))
                            }
                            None => base,
                        }
                    }
                    Gone::Reset { sent: true, .. } => format!(
                        "{} -> destroyed after {}: reset, this end sent the RST (an abortive close, \
                         SO_LINGER 0: no FIN, no TIME_WAIT; tcp_disconnect zeroed its counters)",
                        style.state(state),
                        render::elapsed(*prev_for)
                    ),
                    Gone::Reset { sent: false, tcp } => {
                        let base = format!(
                            "{} -> destroyed after {}: reset by the other end (an RST received: no TIME_WAIT)",
                            style.state(state),
                            render::elapsed(*prev_for)
                        );
                        match tcp {
                            Some(t) => format!("{base}; {}", counters(t, sock.role, Fins::Unknown)),
                            None => base,
                        }
                    }
                    Gone::Vanished => format!(
                        "{} -> gone after {}{}",
                        style.state(state),
                        render::elapsed(*prev_for),
                        abrupt(state)
                    ),
                };
                format!("{t}  {}  {text}", head(sock))
            }
            Kind::Process { process, change } => {
                let what = match change {
                    ProcChange::New if !process.args.is_empty() => {
                        format!("watching `{}`: {}", process.args, doing(process))
                    }
                    ProcChange::New => format!("watching: {}", doing(process)),
                    ProcChange::Changed { state, wchan } => {
                        format!(
                            "{} (was {state} {})",
                            doing(process),
                            if wchan.is_empty() { "-" } else { wchan }
                        )
                    }
                    ProcChange::Exited => "exited (and was reaped at once)".to_string(),
                };
                format!(
                    "{t}  {:<16}  {} ppid {}: {what}",
                    format!("pid {}", process.pid),
                    process.comm,
                    process.ppid
                )
            }
            Kind::Zombie {
                process,
                zombie_for,
                parent,
                before_start,
            } => {
                let parent = parent.as_ref().map_or(format!("{}", process.ppid), |p| {
                    format!("{} ({})", p.pid, p.comm)
                });
                // How long: what we saw, or, for one that was a zombie
                // before we looked, what is known (its start, not its exit).
                let how_long = match before_start {
                    None => format!("for {}", render::elapsed(*zombie_for)),
                    Some(age) => format!(
                        "already when we started {} ago (it started {} ago; /proc does not say when it exited)",
                        render::elapsed(*zombie_for),
                        render::elapsed(*age + *zombie_for)
                    ),
                };
                format!(
                    "{t}  {:<16}  {} is a {} {how_long}: it exited, but its parent {parent} has not called wait()",
                    format!("pid {}", process.pid),
                    process.comm,
                    style.alarm("ZOMBIE"),
                )
            }
            Kind::Reaped {
                process,
                zombie_for,
                before_start,
            } => format!(
                "{t}  {:<16}  {} reaped by its parent after {}{} as a zombie",
                format!("pid {}", process.pid),
                process.comm,
                if *before_start { "at least " } else { "" },
                render::elapsed(*zombie_for)
            ),
            Kind::Note { text } => format!("{t}  {text}"),
            Kind::Transition {
                local,
                remote,
                role,
                conn,
                old,
                new,
                prev_for,
                pid,
                comm,
            } => {
                let conn = conn.map_or("  ".to_string(), |c| format!("#{c}"));
                let after =
                    prev_for.map_or(String::new(), |d| format!(" after {}", render::elapsed(d)));
                // An active closer's socket is swapped for a timewait entry:
                // the tracepoint sees the socket end, inet_diag the entry go on.
                let swapped = if *old == TcpState::FinWait2 && *new == TcpState::Close {
                    " (replaced by a timewait entry)"
                } else {
                    ""
                };
                format!(
                    "{t}  {conn:<3} {:<8} {local} > {remote}  {} -> {}{after}{swapped}  [tracepoint, in {comm}[{pid}]]",
                    role.name(),
                    style.state(*old),
                    style.state(*new),
                )
            }
        }
    }
}

fn missed_json(m: &mut serde_json::Map<String, Value>, missed: &Missed, gap: Duration) {
    m.insert("missed".into(), names(&missed.certain));
    m.insert("missed_either".into(), names(&missed.either));
    m.insert("missed_within_ms".into(), json!(ms(gap)));
}

/// `#3 client  127.0.0.1:51230 > 127.0.0.1:6666`
fn head(sock: &SockView) -> String {
    let conn = sock.conn.map_or("  ".to_string(), |c| format!("#{c}"));
    format!(
        "{conn:<3} {:<8} {} > {}",
        sock.role.name(),
        render::addr(sock.info.local),
        render::remote(&sock.info)
    )
}

fn tail(sock: &SockView) -> String {
    if sock.owners.is_empty() {
        String::new()
    } else {
        format!("  [{}]", owners_text(&sock.owners))
    }
}

fn missed_text(missed: &Missed, gap: Duration) -> String {
    if missed.is_empty() {
        return String::new();
    }
    let mut names: Vec<String> = missed
        .certain
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    if !missed.either.is_empty() {
        let either: Vec<&str> = missed.either.iter().map(|s| s.name()).collect();
        names.push(either.join(" or "));
    }
    let bound = if gap.is_zero() {
        "before we looked".to_string()
    } else {
        format!("< {}", render::elapsed(gap))
    };
    format!(" ({} not seen: {bound})", names.join(", then "))
}

/// What is known of the FINs when counters are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fins {
    /// Entering TIME_WAIT: the peer's FIN arrived and ours was acked.
    BothDone,
    Unknown,
}

/// tcp_info's byte counters, as the kernel keeps them (RFC 4898's
/// ThruOctetsAcked and ThruOctetsReceived; net/ipv4/tcp_input.c,
/// tcp_snd_una_update and tcp_rcv_nxt_update). They count sequence
/// numbers, not bytes:
/// - bytes_received advances with rcv_nxt: the peer's data, and 1 for its
///   FIN. Never its SYN (rcv_nxt starts after it).
/// - bytes_acked advances with snd_una: our data the peer acknowledged, 1
///   for our FIN once acked, and 1 for the SYN on the end that called
///   connect() (the end that accepted starts with its SYN already acked).
///
/// So `x\n` echoed and closed gives the client bytes_received 3 (2 + FIN)
/// and bytes_acked 4 (2 + FIN + SYN). Where the FINs are known, the data
/// bytes are worked out; otherwise the rule is said.
fn counters(t: &TcpInfoLite, role: Role, fins: Fins) -> String {
    let opener = role.active_opener();
    let syn = u64::from(opener == Some(true));
    let worked_out = match (fins, opener) {
        (Fins::BothDone, Some(_)) => t
            .bytes_received
            .checked_sub(1)
            .zip(t.bytes_acked.checked_sub(1 + syn)),
        _ => None,
    };
    let syn_text = match opener {
        Some(true) => " + 1 for our SYN",
        Some(false) => "",
        None => " + 1 for our SYN if this end connected",
    };
    match worked_out {
        Some((data_in, data_out)) => format!(
            "tcp_info: bytes_received {} = {data_in} data + 1 for the peer's FIN, bytes_acked {} = \
             {data_out} data + 1 for our FIN{syn_text}",
            t.bytes_received, t.bytes_acked,
        ),
        None => format!(
            "tcp_info: bytes_received {} (the peer's data + 1 for its FIN), bytes_acked {} (our data \
             acknowledged + 1 for our FIN{syn_text})",
            t.bytes_received, t.bytes_acked,
        ),
    }
}

/// Why a socket vanishes from a state other than LAST_ACK or TIME_WAIT.
fn abrupt(state: TcpState) -> &'static str {
    match state {
        TcpState::LastAck | TcpState::TimeWait | TcpState::Close => "",
        TcpState::CloseWait => " (LAST_ACK not seen, or reset)",
        TcpState::Listen => " (listener closed)",
        TcpState::FinWait2 | TcpState::FinWait1 | TcpState::Closing => {
            " (no TIME_WAIT: reset, or the FIN_WAIT2 timeout)"
        }
        _ => " (closed faster than we sample, or reset)",
    }
}

/// `S in wait_woken: read(): waiting for data on socket fd 4`
fn doing(p: &Process) -> String {
    let wchan = if p.wchan.is_empty() { "-" } else { &p.wchan };
    match procfs::waiting_for(p) {
        Some(meaning) => format!("{} in {wchan}: {meaning}", p.state),
        None => format!("{} in {wchan}", p.state),
    }
}

/// Options of the watch loop.
#[derive(Debug, Clone)]
pub struct Options {
    pub query: Query,
    pub interval: Duration,
    pub pids: Vec<i32>,
    pub json: bool,
    pub duration: Option<Duration>,
    pub netns: Option<String>,
    /// Also read the kernel's tracepoint (root): every transition.
    pub exact: bool,
}

/// One network namespace's sockets and the processes holding them, polled:
/// what the watch runs, and what the lab runs on each of its two hosts.
pub struct Poller {
    pub diag: DiagSocket,
    pub tracker: Tracker,
    owners: procfs::OwnerCache,
    /// Processes watched besides the sockets' owners (`--pid`).
    pids: Vec<i32>,
}

/// What one poll produced.
pub struct Polled {
    pub events: Vec<Event>,
    /// A socket of another user has no owner we could see (not root).
    pub owners_hidden: bool,
}

impl Poller {
    pub fn new(diag: DiagSocket, tracker: Tracker, pids: Vec<i32>) -> Poller {
        Poller {
            diag,
            tracker,
            owners: procfs::OwnerCache::default(),
            pids,
        }
    }

    /// Dump the sockets, find their owners, compare with the last poll,
    /// read the watched processes.
    pub fn poll(&mut self, now: Instant, query: &Query) -> Result<Polled, DiagError> {
        // One walk of the kernel's tables for both families (half the
        // kernel time per poll; `observer explain --legacy` shows why).
        let sockets = self.diag.dump_one_walk(query)?;
        let proc_set = self.tracker.watch_set(&Owners::default(), &self.pids);
        let owners = self
            .owners
            .update(now, crate::diag::inodes(&sockets), &proc_set)
            .clone();
        let me = nix::unistd::getuid().as_raw();
        let owners_hidden = owners.denied
            && !nix::unistd::geteuid().is_root()
            && sockets
                .iter()
                .any(|s| s.inode != 0 && owners.of(s.inode).is_empty() && s.uid != me);
        let mut events = self.tracker.poll(now, sockets, &owners);
        let watched = self.tracker.watch_set(&owners, &self.pids);
        let readings = watched
            .into_iter()
            .map(|pid| (pid, procfs::process(pid)))
            .collect();
        events.extend(self.tracker.processes(now, readings));
        events.sort_by_key(|e| (e.t, e.order()));
        Ok(Polled {
            events,
            owners_hidden,
        })
    }
}

/// The tracepoint source of `--exact`, when it could be set up.
struct Exact {
    instance: crate::exact::Instance,
    events: std::sync::mpsc::Receiver<crate::exact::Transition>,
    reader: Option<std::thread::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    durations: crate::exact::Durations,
    /// CLOCK_MONOTONIC when the watch started (trace timestamps use it).
    start_mono: Duration,
}

impl Exact {
    fn start(port: Option<u16>, start_mono: Duration) -> Result<Exact, crate::exact::Unavailable> {
        let instance = crate::exact::Instance::create(port)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (events, reader) = instance.read(std::sync::Arc::clone(&stop))?;
        Ok(Exact {
            instance,
            events,
            reader: Some(reader),
            stop,
            durations: crate::exact::Durations::default(),
            start_mono,
        })
    }

    /// The transitions that arrived, as events.
    fn drain(&mut self, tracker: &mut Tracker) -> Vec<Event> {
        let mut events = Vec::new();
        while let Ok(t) = self.events.try_recv() {
            let prev_for = self.durations.record(&t);
            events.push(tracker.transition(&t, prev_for, self.start_mono));
        }
        events
    }
}

impl Drop for Exact {
    fn drop(&mut self) {
        // Stop the reader (it closes trace_pipe), then the instance can go.
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let _ = &self.instance;
    }
}

/// Events wait here briefly so that the two sources, which report with
/// different delays, come out in time order.
struct Timeline<'a> {
    pending: Vec<Event>,
    window: Duration,
    json: bool,
    style: Style,
    out: std::io::StdoutLock<'a>,
}

impl Timeline<'_> {
    fn push(&mut self, events: Vec<Event>) {
        self.pending.extend(events);
    }

    /// Print what is older than the window (everything if `all`); false
    /// once stdout is gone (the reader went away: the watch ends quietly).
    fn flush(&mut self, now: Duration, all: bool) -> bool {
        self.pending.sort_by_key(|e| (e.t, e.order()));
        let cut = if all {
            self.pending.len()
        } else {
            self.pending.partition_point(|e| e.t + self.window <= now)
        };
        for event in self.pending.drain(..cut) {
            let line = if self.json {
                event.json().to_string()
            } else {
                event.human(self.style)
            };
            if writeln!(self.out, "{line}").is_err() {
                return false;
            }
        }
        self.out.flush().is_ok()
    }
}

/// Run until SIGINT/SIGTERM (or `--duration`), printing the timeline.
pub fn run(options: &Options, style: Style, stop: &dyn Fn() -> bool) -> Result<(), DiagError> {
    let diag = DiagSocket::open_in(options.netns.as_deref())?;
    let mut events_socket = EventSocket::open(options.netns.as_deref());
    let start = Instant::now();
    let start_mono = crate::exact::monotonic_now();
    let tracker = Tracker::new(start, options.query.port);
    let mut poller = Poller::new(diag, tracker, options.pids.clone());
    let mut exact = None;
    if options.exact {
        match Exact::start(options.query.port, start_mono) {
            Ok(e) => {
                if e.instance.mounted {
                    eprintln!(
                        "observer: mounted tracefs on {} (it keeps no state; left mounted)",
                        crate::exact::TRACEFS
                    );
                }
                eprintln!(
                    "observer: --exact: tracing sock:inet_sock_set_state in tracefs instance {}",
                    e.instance.name()
                );
                exact = Some(e);
            }
            Err(why) => eprintln!("observer: {}; running as the sampling observer", why.0),
        }
    }
    let mut timeline = Timeline {
        pending: Vec::new(),
        // Tracepoint lines arrive a few milliseconds late; hold everything
        // that long so both sources come out in order.
        window: if exact.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::ZERO
        },
        json: options.json,
        style,
        out: std::io::stdout().lock(),
    };
    let mut warned_hidden = false;
    let mut announced = false;
    let mut slowed = false;
    let mut slow_streak = 0;
    loop {
        if stop() || options.duration.is_some_and(|d| start.elapsed() >= d) {
            if let Some(e) = exact.as_mut() {
                timeline.push(e.drain(&mut poller.tracker));
            }
            timeline.flush(start.elapsed(), true);
            return Ok(());
        }
        let now = Instant::now();
        let polled = poller.poll(now, &options.query)?;
        if polled.owners_hidden && !warned_hidden {
            eprintln!("observer: not root: owners of other users' sockets are not shown");
            warned_hidden = true;
        }
        timeline.push(polled.events);
        if let Some(e) = exact.as_mut() {
            timeline.push(e.drain(&mut poller.tracker));
        }
        if !timeline.flush(now - start, false) {
            return Ok(());
        }
        if !announced {
            // After the first dump, so that a harness waiting for this line
            // knows the kernel answered and the watch is live.
            announced = true;
            let port = options
                .query
                .port
                .map_or("every TCP port".to_string(), |p| format!("TCP port {p}"));
            eprintln!(
                "observer: watching {port}{} every {} (destroy events: {}); Ctrl-C to stop",
                options
                    .netns
                    .as_ref()
                    .map_or(String::new(), |n| format!(" in netns {n}")),
                render::elapsed(options.interval),
                if events_socket.is_some() {
                    "on"
                } else {
                    "not available"
                }
            );
        }

        // A poll that takes longer than half the interval (thousands of
        // sockets on the port) stretches the interval, so that the watch
        // never takes more than about half a core. The timeline says so
        // once it has lasted: one slow poll (the first, which reads every
        // process's descriptors; a busy moment of the machine) is not news.
        let work = now.elapsed();
        let interval = options.interval.max(2 * work);
        let slow = interval > options.interval + options.interval / 2;
        slow_streak = if slow { slow_streak + 1 } else { 0 };
        if slow_streak >= SLOW_POLLS && !slowed {
            slowed = true;
            let text = format!(
                "each poll takes {} here: sampling every {} instead of {}",
                render::elapsed(work),
                render::elapsed(interval),
                render::elapsed(options.interval)
            );
            timeline.push(vec![
                poller.tracker.event(Instant::now(), Kind::Note { text }),
            ]);
        }
        // Until the next poll: take the destroy notifications as they come.
        if wait_for_destroys(
            &mut events_socket,
            &mut poller.tracker,
            &mut timeline,
            now + interval,
            stop,
        ) {
            continue; // overflowed: dump again at once
        }
    }
}

/// Wait until `deadline`, handing destroy notifications to the tracker.
/// Returns true if the kernel dropped some (ENOBUFS): dump again now.
fn wait_for_destroys(
    events_socket: &mut Option<EventSocket>,
    tracker: &mut Tracker,
    timeline: &mut Timeline<'_>,
    deadline: Instant,
    stop: &dyn Fn() -> bool,
) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stop() {
            return false;
        }
        let Some(socket) = events_socket.as_mut() else {
            std::thread::sleep(left);
            return false;
        };
        let mut fds = [nix::poll::PollFd::new(
            socket.fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let timeout = nix::poll::PollTimeout::try_from(left.as_millis().max(1) as i32)
            .unwrap_or(nix::poll::PollTimeout::MAX);
        if !matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0) {
            continue;
        }
        let drained = socket.drain();
        let at = Instant::now();
        for info in drained.destroyed {
            tracker.destroyed(at, info);
        }
        if drained.overflowed {
            let text = "destroy notifications overflowed (ENOBUFS): dumping again".to_string();
            timeline.push(vec![tracker.event(at, Kind::Note { text })]);
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Timer;

    fn sock(local: &str, remote: &str, state: TcpState, cookie: u64) -> SockInfo {
        SockInfo {
            family: crate::layout::AF_INET,
            state,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            recv_q: 0,
            send_q: 0,
            timer: Timer::Off,
            expires_ms: 0,
            retrans: 0,
            uid: 0,
            inode: 0,
            cookie,
            tcp_info: None,
        }
    }

    const L: &str = "127.0.0.1:6666";
    const C: &str = "127.0.0.1:51230";
    const ANY: &str = "0.0.0.0:0";

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    /// The client is first seen ESTABLISHED: SYN_SENT was not seen, and
    /// the line says so with the bound; the server end gets the other role.
    #[test]
    fn test_established_first_seen_says_syn_sent_not_seen() {
        let start = Instant::now();
        let mut t = Tracker::new(start, Some(6666));
        let owners = Owners::default();
        t.poll(
            at(start, 0),
            vec![sock(L, ANY, TcpState::Listen, 1)],
            &owners,
        );
        let events = t.poll(
            at(start, 10),
            vec![
                sock(L, ANY, TcpState::Listen, 1),
                sock(C, L, TcpState::Established, 2),
                sock(L, C, TcpState::Established, 3),
            ],
            &owners,
        );
        assert_eq!(events.len(), 2);
        let Kind::New {
            sock: client,
            missed,
            ..
        } = &events[0].kind
        else {
            panic!()
        };
        let Kind::New {
            sock: server,
            missed: server_missed,
            ..
        } = &events[1].kind
        else {
            panic!()
        };
        let (client, server, missed_c, missed_s) = if client.role == Role::Client {
            (client, server, missed, server_missed)
        } else {
            (server, client, server_missed, missed)
        };
        assert_eq!(client.role, Role::Client);
        assert_eq!(server.role, Role::Server);
        assert_eq!(client.conn, server.conn);
        assert_eq!(missed_c.certain, vec![TcpState::SynSent]);
        assert_eq!(missed_s.certain, vec![TcpState::SynRecv]);
        let line = events[0].human(Style::plain());
        assert!(line.contains("not seen: < 10 ms"), "{line}");
    }

    /// Whatever order the kernel's hash table gives, one poll's lines
    /// come out the same way: the listener, then the server's end, then
    /// the client's.
    #[test]
    fn test_lines_of_one_poll_come_in_a_fixed_order() {
        let start = Instant::now();
        let owners = Owners::default();
        for dump in [
            vec![
                sock(L, C, TcpState::Established, 3),
                sock(C, L, TcpState::Established, 2),
                sock(L, ANY, TcpState::Listen, 1),
            ],
            vec![
                sock(C, L, TcpState::Established, 2),
                sock(L, ANY, TcpState::Listen, 1),
                sock(L, C, TcpState::Established, 3),
            ],
        ] {
            let mut t = Tracker::new(start, Some(6666));
            let roles: Vec<Role> = t
                .poll(at(start, 0), dump, &owners)
                .iter()
                .map(|e| match &e.kind {
                    Kind::New { sock, .. } => sock.role,
                    _ => panic!("only new sockets here"),
                })
                .collect();
            assert_eq!(roles, vec![Role::Listener, Role::Server, Role::Client]);
        }
    }

    /// ESTABLISHED then TIME_WAIT (same cookie): a state change, with the
    /// missed FIN_WAIT1 and "FIN_WAIT2 or CLOSING".
    #[test]
    fn test_established_to_time_wait_is_one_transition() {
        let start = Instant::now();
        let mut t = Tracker::new(start, Some(6666));
        let owners = Owners::default();
        t.poll(
            at(start, 0),
            vec![sock(C, L, TcpState::Established, 7)],
            &owners,
        );
        let mut tw = sock(C, L, TcpState::TimeWait, 7);
        tw.expires_ms = 59_990;
        let events = t.poll(at(start, 10), vec![tw], &owners);
        assert_eq!(events.len(), 1);
        let Kind::State { prev, missed, .. } = &events[0].kind else {
            panic!()
        };
        assert_eq!(*prev, TcpState::Established);
        assert_eq!(missed.certain, vec![TcpState::FinWait1]);
        let json = events[0].json();
        assert_eq!(json["event"], "state");
        assert_eq!(json["state"], "TIME_WAIT");
        assert_eq!(json["prev_state"], "ESTABLISHED");
        assert_eq!(json["missed"][0], "FIN_WAIT1");
    }

    /// A new cookie on a known 4-tuple is a new connection, not a jump.
    #[test]
    fn test_reused_tuple_is_gone_then_new() {
        let start = Instant::now();
        let mut t = Tracker::new(start, Some(6666));
        let owners = Owners::default();
        t.poll(
            at(start, 0),
            vec![sock(C, L, TcpState::TimeWait, 7)],
            &owners,
        );
        let events = t.poll(
            at(start, 10),
            vec![sock(C, L, TcpState::SynSent, 8)],
            &owners,
        );
        let kinds: Vec<Value> = events.iter().map(|e| e.json()["event"].clone()).collect();
        assert_eq!(kinds, vec![json!("gone"), json!("new")]);
    }

    /// A destroy notification for a socket never polled: reported once,
    /// as unseen, and not again when a late duplicate arrives.
    #[test]
    fn test_destroyed_between_polls_is_reported_unseen() {
        let start = Instant::now();
        let mut t = Tracker::new(start, Some(6666));
        let owners = Owners::default();
        t.poll(at(start, 0), vec![], &owners);
        t.destroyed(at(start, 3), sock(C, L, TcpState::Close, 9));
        t.destroyed(
            at(start, 4),
            sock("127.0.0.1:1", "127.0.0.1:2", TcpState::Close, 9),
        );
        let events = t.poll(at(start, 10), vec![], &owners);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].json()["how"], "unseen");
        assert_eq!(events[0].t, Duration::from_millis(3));
        t.destroyed(at(start, 12), sock(C, L, TcpState::Close, 9));
        assert!(t.poll(at(start, 20), vec![], &owners).is_empty());
    }

    /// SO_LINGER 0 on the client: its destroy notification has no remote
    /// address; it is matched to the connection through the server's end.
    #[test]
    fn test_disconnected_destroy_is_paired_with_its_peer() {
        let start = Instant::now();
        let mut t = Tracker::new(start, Some(6666));
        let owners = Owners::default();
        t.poll(at(start, 0), vec![], &owners);
        t.destroyed(at(start, 2), sock(C, ANY, TcpState::Close, 5));
        t.destroyed(at(start, 3), sock(L, C, TcpState::Close, 6));
        let events = t.poll(at(start, 10), vec![], &owners);
        let roles: Vec<Value> = events.iter().map(|e| e.json()["role"].clone()).collect();
        assert_eq!(roles, vec![json!("client"), json!("server")], "{events:?}");
        assert_eq!(events[0].json()["remote"], L);
    }

    /// A child that stays a zombie is reported, with its parent; its
    /// disappearance afterwards is a reaping.
    #[test]
    fn test_zombie_then_reaped() {
        let start = Instant::now();
        let mut t = Tracker::new(start, None);
        let p = |state: char| Process {
            pid: 99_999_999,
            ppid: 1,
            state,
            comm: "echo-server".into(),
            wchan: String::new(),
            syscall: String::new(),
            args: String::new(),
        };
        t.processes(at(start, 0), vec![(99_999_999, Some(p('S')))]);
        // A zombie for an instant: not yet worth an alarm.
        assert!(
            t.processes(at(start, 10), vec![(99_999_999, Some(p('Z')))])
                .is_empty()
        );
        let events = t.processes(at(start, 70), vec![(99_999_999, Some(p('Z')))]);
        assert!(matches!(events[0].kind, Kind::Zombie { .. }));
        let events = t.processes(at(start, 1010), vec![(99_999_999, None)]);
        let Kind::Reaped { zombie_for, .. } = &events[0].kind else {
            panic!()
        };
        assert_eq!(*zombie_for, Duration::from_secs(1));
    }

    /// A zombie at the first look is not "a zombie for 0 ms": it is
    /// reported at once, as one from before we started, and its reaping
    /// gives a lower bound.
    #[test]
    fn a_zombie_from_before_we_started_says_so() {
        let start = Instant::now();
        let mut t = Tracker::new(start, None);
        let z = Process {
            pid: 99_999_998,
            ppid: 1,
            state: 'Z',
            comm: "echo-server".into(),
            wchan: String::new(),
            syscall: String::new(),
            args: String::new(),
        };
        let events = t.processes(at(start, 0), vec![(z.pid, Some(z.clone()))]);
        let Kind::Zombie { before_start, .. } = &events[1].kind else {
            panic!("{:?}", events.iter().map(|e| &e.kind).collect::<Vec<_>>())
        };
        assert!(before_start.is_some());
        let text = events[1].human(Style::plain());
        assert!(
            text.contains("is a ZOMBIE already when we started"),
            "{text}"
        );
        let events = t.processes(at(start, 500), vec![(z.pid, None)]);
        let text = events[0].human(Style::plain());
        assert!(text.contains("after at least 500 ms as a zombie"), "{text}");
        // A zombie first seen later appeared while we watched: as before.
        let late = Process {
            pid: 99_999_997,
            ..z
        };
        let events = t.processes(at(start, 600), vec![(late.pid, Some(late.clone()))]);
        assert!(
            events
                .iter()
                .all(|e| !matches!(e.kind, Kind::Zombie { .. }))
        );
    }

    /// The counters read as final, worked out per the kernel's rules.
    #[test]
    fn counters_say_what_each_sequence_number_was() {
        let t = TcpInfoLite {
            bytes_acked: 4,
            bytes_received: 3,
            total_retrans: 0,
            rtt_us: 10,
        };
        assert_eq!(
            counters(&t, Role::Client, Fins::BothDone),
            "tcp_info: bytes_received 3 = 2 data + 1 for the peer's FIN, bytes_acked 4 = 2 data + 1 for our FIN + 1 for our SYN"
        );
        let server = TcpInfoLite {
            bytes_acked: 3,
            ..t
        };
        assert!(
            counters(&server, Role::Server, Fins::BothDone)
                .ends_with("bytes_acked 3 = 2 data + 1 for our FIN")
        );
        assert!(
            counters(&t, Role::Client, Fins::Unknown).contains("(the peer's data + 1 for its FIN)")
        );
    }

    /// The server's end gone from ESTABLISHED while the client's is in
    /// TIME_WAIT: a normal passive close, its CLOSE_WAIT and LAST_ACK
    /// unseen, not "closed faster than we sample, or reset".
    #[test]
    fn a_passive_close_too_fast_to_see_lists_its_missed_states() {
        let start = Instant::now();
        let mut t = Tracker::new(start, Some(6666));
        let owners = Owners::default();
        let both = vec![
            sock(L, ANY, TcpState::Listen, 1),
            sock(C, L, TcpState::Established, 2),
            sock(L, C, TcpState::Established, 3),
        ];
        t.poll(at(start, 0), both, &owners);
        let events = t.poll(
            at(start, 10),
            vec![
                sock(L, ANY, TcpState::Listen, 1),
                sock(C, L, TcpState::TimeWait, 2),
            ],
            &owners,
        );
        let gone = events
            .iter()
            .find(|e| matches!(e.kind, Kind::Gone { .. }))
            .expect("the server's end left");
        let Kind::Gone {
            how: Gone::PassiveClose { missed, .. },
            ..
        } = &gone.kind
        else {
            panic!("{:?}", gone.kind)
        };
        assert_eq!(missed.certain, vec![TcpState::CloseWait, TcpState::LastAck]);
        let line = gone.human(Style::plain());
        assert!(line.contains("closed normally, its other end is in TIME_WAIT (CLOSE_WAIT, then LAST_ACK not seen: < 10 ms)"), "{line}");
    }

    /// A TIME_WAIT first seen with 32.9 s left had been there 27.1 s: its
    /// end says so, not "TIME_WAIT over after 32.90 s".
    #[test]
    fn a_time_wait_we_did_not_see_enter_says_what_was_measured() {
        let start = Instant::now();
        let mut t = Tracker::new(start, Some(6666));
        let owners = Owners::default();
        let mut tw = sock(C, L, TcpState::TimeWait, 2);
        tw.expires_ms = 32_900;
        t.poll(at(start, 0), vec![tw], &owners);
        let events = t.poll(at(start, 32_900), vec![], &owners);
        let line = events[0].human(Style::plain());
        assert!(
            line.contains(
                "TIME_WAIT over: gone 32.90 s after we first saw it; it had entered about 27.10 s before \
                 (its timer then had 32.90 s left), about 60.00 s in all"
            ),
            "{line}"
        );
        assert_eq!(events[0].json()["before_seen_ms"], 27_100);
    }
}
