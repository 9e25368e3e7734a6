//! The timeline's logic: dumps, destroy notifications and process
//! readings in, [`Event`]s out.
//!
//! Identity across polls is the 4-tuple; a new socket cookie on a known
//! 4-tuple is a new connection. Between two polls the [`Tracker`] works
//! out what changed and, by the state machine ([`crate::tcp_state`]), what
//! it must have passed unseen. It never reads the kernel itself: the
//! sources feed it ([`crate::source::poll`]), so tests feed it fixtures.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::diag::{SockInfo, TcpInfoLite};
use crate::event::{Event, Gone, Key, Kind, ProcChange, SockView};
use crate::procfs::{self, Owner, Owners, Process};
use crate::roles::{self, Listeners, Role};
use crate::tcp_state::{self, Missed, TIME_WAIT_LEN, TcpState};

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
    /// A destroy notification arrived since the last poll.
    destroyed_since: bool,
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
            destroyed_since: false,
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

    /// An event at `at`, on the watch's clock.
    pub fn event(&self, at: Instant, kind: Kind) -> Event {
        Event::new(at.saturating_duration_since(self.start), kind)
    }

    /// A destroy notification: remember it until the next poll decides
    /// whether the socket is gone or lives on as a TIME_WAIT entry.
    ///
    /// A socket closed with an RST of its own (SO_LINGER 0) was
    /// disconnected first: tcp_disconnect() zeroed its remote address, so
    /// its notification says `remote 0.0.0.0:0`. We find it by its cookie
    /// if we polled it, else by its local address at the next poll.
    pub fn destroyed(&mut self, now: Instant, mut info: SockInfo) {
        self.destroyed_since = true;
        if let Some(tracked) = self
            .sockets
            .values_mut()
            .find(|t| t.view.info.cookie == info.cookie)
        {
            tracked.destroyed = Some((now, info.tcp_info));
            // tcp_disconnect cleared the address: an abortive close. (A
            // listener never had a remote address: its end is no reset.)
            if info.remote.port() == 0 && tracked.view.info.state != TcpState::Listen {
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

    /// A poll that read nothing, because nothing had moved: the sockets
    /// are as they were at `now`. (What the next poll finds passed unseen
    /// passed after this moment.)
    pub fn looked(&mut self, now: Instant) {
        self.last_poll = Some(now);
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
                events.push(Event::new(
                    now - self.start,
                    Kind::State {
                        sock: view,
                        prev,
                        prev_for,
                        missed: missed.unwrap_or_default(),
                        gap,
                        freed,
                    },
                ));
                continue;
            }
            if view.owners != tracked.view.owners {
                let prev_owners = std::mem::take(&mut tracked.view.owners);
                tracked.view.owners = view.owners.clone();
                events.push(Event::new(
                    now - self.start,
                    Kind::Owners {
                        sock: view.clone(),
                        prev: prev_owners,
                    },
                ));
            }
            if view.info.state == TcpState::TimeWait {
                let step = countdown_step(view.info.expires_ms);
                if tracked.countdown.is_some_and(|last| step < last) {
                    events.push(Event::new(
                        now - self.start,
                        Kind::Countdown { sock: view.clone() },
                    ));
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
        Event::new(
            t.at.saturating_sub(start_mono),
            Kind::Transition {
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
        )
    }

    /// The processes worth watching: owners of the sockets, their
    /// children, the ones already tracked, and `extra` (`--pid`).
    /// `children` lists a process's children (the source may cache them).
    pub fn watch_set(
        &self,
        owners: &Owners,
        extra: &[i32],
        children: &mut dyn FnMut(i32) -> Vec<i32>,
    ) -> HashSet<i32> {
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
            set.extend(children(pid));
        }
        set
    }

    /// Can a segment change what we know, or make a socket that only the
    /// segment counters would show? A connection changes state only by a
    /// segment (or a timer: TIME_WAIT's end, seen by its countdown). A
    /// listener can get a SYN from another host, which makes a request
    /// socket (SYN_RECV) and moves nothing but the segment counters;
    /// unless it is bound to a loopback address (127.0.0.1, ::1): then it
    /// hears only connect()s made in its own namespace, which move
    /// sockstat. Loopback traffic never crosses namespaces, and a packet
    /// for 127.0.0.1 arriving on a real interface is dropped as a martian.
    pub fn segments_matter(&self) -> bool {
        self.sockets.values().any(|t| {
            let info = &t.view.info;
            match info.state {
                TcpState::Listen => !roles::is_loopback(info.local.ip()),
                TcpState::TimeWait => false,
                _ => true,
            }
        })
    }

    /// Did a destroy notification arrive since the last poll? (A socket
    /// that closes without a segment, a listener, moves no counter at
    /// once; the next poll dumps.)
    pub fn take_destroyed(&mut self) -> bool {
        std::mem::take(&mut self.destroyed_since)
    }

    /// Is a TIME_WAIT entry's next countdown line (or its end) due, its
    /// timer having run `since` since it was read?
    pub fn countdown_due(&self, since: Duration) -> bool {
        self.sockets.values().any(|t| {
            let info = &t.view.info;
            let left = u64::from(info.expires_ms).saturating_sub(since.as_millis() as u64);
            info.state == TcpState::TimeWait
                && countdown_step(left as u32) < countdown_step(info.expires_ms)
        })
    }

    /// The sockets known now, as last seen: what a poll may ask for by
    /// 4-tuple instead of dumping.
    pub fn known(&self) -> Vec<SockInfo> {
        self.sockets.values().map(|t| t.view.info.clone()).collect()
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
                    // What it waits for, in words, said now: a view (or a
                    // replay) cannot look in /proc later.
                    process.meaning = procfs::waiting_for(&process);
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
                            let mut process = process;
                            process.meaning = procfs::waiting_for(&process);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Style;
    use serde_json::{Value, json};

    fn sock(local: &str, remote: &str, state: TcpState, cookie: u64) -> SockInfo {
        SockInfo {
            state,
            cookie,
            ..SockInfo::wanted(local.parse().unwrap(), remote.parse().unwrap())
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
            meaning: None,
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
            meaning: None,
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

    /// A listener's destroy notification has no remote address, as it
    /// never had one: its end is a listener closed, not a reset.
    #[test]
    fn a_closed_listener_is_not_a_reset() {
        let start = Instant::now();
        let mut t = Tracker::new(start, Some(6666));
        let owners = Owners::default();
        t.poll(
            at(start, 0),
            vec![sock(L, ANY, TcpState::Listen, 1)],
            &owners,
        );
        t.destroyed(at(start, 5), sock(L, ANY, TcpState::Close, 1));
        let events = t.poll(at(start, 10), vec![], &owners);
        let line = events[0].human(Style::plain());
        assert!(line.contains("LISTEN -> destroyed after"), "{line}");
        assert!(line.contains("(listener closed)"), "{line}");
        assert!(!line.contains("RST"), "{line}");
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
