//! What the picture shows, worked out from the events alone: where each
//! end of each connection is in the state diagram, the arrow it took last
//! (seen, or implied by the state machine), the processes and their
//! zombies, the last lines of the timeline and of the lab's ladder.
//!
//! [`Picture::apply`] takes one event at a time, in order; nothing here
//! reads the clock, the kernel or /proc. The same events give the same
//! picture, live or replayed, which is what lets a class step back and
//! forth through a recording.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::event::{Event, Gone, Kind, LabInfo, ProcChange, SockView};
use crate::lab::Side;
use crate::procfs::Process;
use crate::roles::Role;
use crate::tcp_state::TcpState;

/// How many timeline and ladder lines are kept (more than any screen shows).
pub const KEEP_LINES: usize = 200;

/// How long the arrow a socket took stays lit, in the events' time.
pub const ARROW_LIT: Duration = Duration::from_millis(1500);

/// How long an end that has left the table stays in the picture, on the
/// closing CLOSED box.
pub const GONE_SHOWN: Duration = Duration::from_secs(3);

/// How often (in the events' time) pairs that are over are taken out.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// Which end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndRole {
    Client,
    Server,
}

impl EndRole {
    /// The marker's letter: `1c`, `1s`.
    pub fn letter(self) -> char {
        match self {
            EndRole::Client => 'c',
            EndRole::Server => 's',
        }
    }
}

/// The last move of an end: from a state to another, through the states
/// the sampling missed (`implied`, certain; `maybe`, one of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    pub from: TcpState,
    pub to: TcpState,
    pub implied: Vec<TcpState>,
    pub maybe: Vec<TcpState>,
    pub at: Duration,
}

impl Arrow {
    /// The states in order, first to last, the `maybe` ones left out (the
    /// path through them is not known).
    pub fn path(&self) -> Vec<TcpState> {
        let mut path = vec![self.from];
        path.extend(&self.implied);
        path.push(self.to);
        path
    }
}

/// One end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub host: Option<Side>,
    /// TIME_WAIT's time left when last read, and when.
    pub expires: Option<(Duration, Duration)>,
    pub arrow: Option<Arrow>,
    /// When it left the table (its marker then sits on CLOSED).
    pub gone: Option<Duration>,
}

impl End {
    /// TIME_WAIT's time left at `now`, counted down from the last reading.
    pub fn time_left(&self, now: Duration) -> Option<Duration> {
        let (left, read) = self.expires?;
        Some(left.saturating_sub(now.saturating_sub(read)))
    }
}

/// Both ends of a connection, by its number (`#3`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pair {
    pub client: Option<End>,
    pub server: Option<End>,
}

impl Pair {
    pub fn end(&self, role: EndRole) -> Option<&End> {
        match role {
            EndRole::Client => self.client.as_ref(),
            EndRole::Server => self.server.as_ref(),
        }
    }

    fn end_mut(&mut self, role: EndRole) -> &mut Option<End> {
        match role {
            EndRole::Client => &mut self.client,
            EndRole::Server => &mut self.server,
        }
    }

    /// Both ends gone for long enough that the pair leaves the picture.
    pub fn over(&self, now: Duration) -> bool {
        [&self.client, &self.server].iter().all(|end| {
            end.as_ref()
                .is_none_or(|e| e.gone.is_some_and(|g| now.saturating_sub(g) >= GONE_SHOWN))
        })
    }
}

/// A watched process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcRow {
    pub process: Process,
    /// A zombie since (as reported), and its parent.
    pub zombie: Option<(Duration, Option<Process>)>,
    pub host: Option<Side>,
}

/// Everything the picture shows at one moment of the events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Picture {
    pub pairs: BTreeMap<u32, Pair>,
    /// Listening sockets: address -> the host it is on.
    pub listeners: BTreeMap<SocketAddr, Option<Side>>,
    pub procs: BTreeMap<i32, ProcRow>,
    /// The last events, for the timeline (rendered by the view).
    pub lines: VecDeque<Event>,
    /// The lab's wire: the last segments.
    pub ladder: VecDeque<Event>,
    pub lab: Option<LabInfo>,
    /// Client ends the tracepoint saw leave CLOSED before connect() chose
    /// their port (`127.0.0.1:0 > 127.0.0.1:6666`): no connection number
    /// yet. By the address they connect to.
    pub unnumbered: BTreeMap<SocketAddr, End>,
    /// The time of the last event applied.
    pub now: Duration,
    /// How many events were applied.
    pub applied: usize,
    /// When pairs that are over were last taken out (events' time).
    pub pruned: Duration,
}

fn end_role(role: Role) -> Option<EndRole> {
    match role {
        Role::Client => Some(EndRole::Client),
        Role::Server => Some(EndRole::Server),
        Role::Listener | Role::Unknown => None,
    }
}

fn push_line(lines: &mut VecDeque<Event>, event: &Event) {
    if lines.len() == KEEP_LINES {
        lines.pop_front();
    }
    lines.push_back(event.clone());
}

impl Picture {
    /// Apply the next event.
    pub fn apply(&mut self, event: &Event) {
        self.now = self.now.max(event.t);
        self.applied += 1;
        match &event.kind {
            Kind::Segment(_) => push_line(&mut self.ladder, event),
            _ => push_line(&mut self.lines, event),
        }
        let t = event.t;
        match &event.kind {
            Kind::New {
                sock,
                missed,
                existing,
                ..
            } => {
                if sock.info.state == TcpState::Listen {
                    self.listeners.insert(sock.info.local, event.host);
                    return;
                }
                // A new socket came from CLOSED (or from the listener, for a
                // server's end), through the states the sampling missed.
                // One there when the watch started has no arrow to show.
                let arrow = (!*existing).then(|| Arrow {
                    from: if sock.role == Role::Server {
                        TcpState::Listen
                    } else {
                        TcpState::Close
                    },
                    to: sock.info.state,
                    implied: missed.certain.clone(),
                    maybe: missed.either.clone(),
                    at: t,
                });
                self.place(sock, event.host, t, arrow);
            }
            Kind::State {
                sock, prev, missed, ..
            } => {
                let arrow = Arrow {
                    from: *prev,
                    to: sock.info.state,
                    implied: missed.certain.clone(),
                    maybe: missed.either.clone(),
                    at: t,
                };
                self.place(sock, event.host, t, Some(arrow));
            }
            Kind::Countdown { sock } => self.place(sock, event.host, t, None),
            Kind::Owners { .. } => {}
            Kind::Gone { sock, how, .. } => {
                if sock.info.state == TcpState::Listen {
                    self.listeners.remove(&sock.info.local);
                    return;
                }
                let (Some(conn), Some(role)) = (sock.conn, end_role(sock.role)) else {
                    return;
                };
                let implied = match how {
                    Gone::PassiveClose { missed, .. } => missed.certain.clone(),
                    _ => Vec::new(),
                };
                let pair = self.pairs.entry(conn).or_default();
                let slot = pair.end_mut(role);
                if let Some(end) = slot.as_mut().filter(|e| e.state == TcpState::Close) {
                    // The tracepoint showed this end close, every step: keep
                    // its arrow, which was seen, not implied.
                    end.gone.get_or_insert(t);
                    return;
                }
                let from = slot.as_ref().map_or(sock.info.state, |e| e.state);
                let end = slot.get_or_insert_with(|| End {
                    state: sock.info.state,
                    local: sock.info.local,
                    remote: sock.info.remote,
                    host: event.host,
                    expires: None,
                    arrow: None,
                    gone: None,
                });
                // A passive close too fast to see went through LAST_ACK;
                // the list of missed states ends with it.
                let implied: Vec<TcpState> = implied.into_iter().filter(|s| *s != from).collect();
                end.arrow = Some(Arrow {
                    from,
                    to: TcpState::Close,
                    implied,
                    maybe: Vec::new(),
                    at: t,
                });
                end.state = TcpState::Close;
                end.expires = None;
                end.gone = Some(t);
            }
            Kind::Transition {
                local,
                remote,
                role,
                conn,
                old,
                new,
                ..
            } => {
                if *new == TcpState::Listen {
                    self.listeners.insert(*local, event.host);
                    return;
                }
                // The listener itself closing; LISTEN -> SYN_RECV is a new
                // request socket, born of the listener with its state.
                if *old == TcpState::Listen && *new == TcpState::Close && remote.port() == 0 {
                    self.listeners.remove(local);
                    return;
                }
                if *role == Role::Client && local.port() == 0 {
                    // connect() has not chosen the port yet.
                    self.unnumbered.insert(
                        *remote,
                        End {
                            state: *new,
                            local: *local,
                            remote: *remote,
                            host: event.host,
                            expires: None,
                            arrow: Some(Arrow {
                                from: *old,
                                to: *new,
                                implied: Vec::new(),
                                maybe: Vec::new(),
                                at: t,
                            }),
                            gone: None,
                        },
                    );
                    return;
                }
                if *old == TcpState::SynSent {
                    self.unnumbered.remove(remote);
                }
                let (Some(conn), Some(role)) = (*conn, end_role(*role)) else {
                    return;
                };
                // FIN_WAIT2 (or CLOSING) -> CLOSE on the tracepoint is the
                // active closer's socket swapped for its timewait entry:
                // the connection is in TIME_WAIT, and stays there.
                let to = if *new == TcpState::Close
                    && matches!(old, TcpState::FinWait2 | TcpState::Closing)
                {
                    TcpState::TimeWait
                } else {
                    *new
                };
                let pair = self.pairs.entry(conn).or_default();
                let slot = pair.end_mut(role);
                let end = slot.get_or_insert_with(|| End {
                    state: *old,
                    local: *local,
                    remote: *remote,
                    host: event.host,
                    expires: None,
                    arrow: None,
                    gone: None,
                });
                if local.port() != 0 {
                    end.local = *local;
                }
                end.arrow = Some(Arrow {
                    from: *old,
                    to,
                    implied: Vec::new(),
                    maybe: Vec::new(),
                    at: t,
                });
                end.state = to;
                if to == TcpState::Close {
                    end.gone = Some(t);
                } else {
                    end.gone = None;
                }
            }
            Kind::Process { process, change } => match change {
                ProcChange::Exited => {
                    self.procs.remove(&process.pid);
                }
                _ => {
                    let row = self.procs.entry(process.pid).or_insert_with(|| ProcRow {
                        process: process.clone(),
                        zombie: None,
                        host: event.host,
                    });
                    row.process = process.clone();
                    row.zombie = None;
                }
            },
            Kind::Zombie {
                process,
                zombie_for,
                parent,
                ..
            } => {
                let row = self.procs.entry(process.pid).or_insert_with(|| ProcRow {
                    process: process.clone(),
                    zombie: None,
                    host: event.host,
                });
                row.process = process.clone();
                row.zombie = Some((t.saturating_sub(*zombie_for), parent.clone()));
            }
            Kind::Reaped { process, .. } => {
                self.procs.remove(&process.pid);
            }
            Kind::Lab(lab) => self.lab = Some((**lab).clone()),
            Kind::Note { .. } | Kind::Segment(_) | Kind::LabDown { .. } => {}
        }
        // Pairs that are over leave the map once a second of the events'
        // time, not at every event: with thousands of connections in
        // TIME_WAIT (100 a second for a minute) a walk per event cost more
        // than drawing. The diagram skips the ones over but not yet gone.
        let now = self.now;
        if now.saturating_sub(self.pruned) >= PRUNE_EVERY {
            self.pairs.retain(|_, pair| !pair.over(now));
            self.pruned = now;
        }
    }

    /// Put an end in the state its event says, with the arrow it took.
    fn place(&mut self, sock: &SockView, host: Option<Side>, t: Duration, arrow: Option<Arrow>) {
        if sock.role == Role::Client {
            self.unnumbered.remove(&sock.info.remote);
        }
        let (Some(conn), Some(role)) = (sock.conn, end_role(sock.role)) else {
            return;
        };
        let pair = self.pairs.entry(conn).or_default();
        let slot = pair.end_mut(role);
        let was = slot.as_ref().map(|e| e.state);
        let end = slot.get_or_insert_with(|| End {
            state: sock.info.state,
            local: sock.info.local,
            remote: sock.info.remote,
            host,
            expires: None,
            arrow: None,
            gone: None,
        });
        // Already there: the tracepoint showed the way, step by step; the
        // poll's arrow (with what it could only imply) would hide it.
        let known = was == Some(sock.info.state);
        end.state = sock.info.state;
        end.gone = None;
        end.expires = (sock.info.state == TcpState::TimeWait)
            .then(|| (Duration::from_millis(sock.info.expires_ms.into()), t));
        if arrow.is_some() && !known {
            end.arrow = arrow;
        }
    }

    /// Zombies now.
    pub fn zombies(&self) -> usize {
        self.procs.values().filter(|p| p.zombie.is_some()).count()
    }
}

/// The picture after the first `n` of `events`.
pub fn picture_at(events: &[Event], n: usize) -> Picture {
    let mut picture = Picture::default();
    for event in &events[..n.min(events.len())] {
        picture.apply(event);
    }
    picture
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{SockInfo, Timer};
    use crate::tcp_state::Missed;

    fn view(local: &str, remote: &str, state: TcpState, role: Role, conn: u32) -> SockView {
        SockView {
            info: SockInfo {
                family: crate::layout::AF_INET,
                state,
                local: local.parse().unwrap(),
                remote: remote.parse().unwrap(),
                recv_q: 0,
                send_q: 0,
                timer: Timer::Off,
                expires_ms: 60_000,
                retrans: 0,
                uid: 0,
                inode: 0,
                cookie: 0,
                tcp_info: None,
            },
            role,
            conn: Some(conn),
            owners: Vec::new(),
        }
    }

    /// A client first seen ESTABLISHED came from CLOSED through SYN_SENT,
    /// unseen: its arrow says so; then ESTABLISHED -> TIME_WAIT passed
    /// FIN_WAIT1 for certain and FIN_WAIT2 or CLOSING.
    #[test]
    fn arrows_carry_the_states_the_sampling_missed() {
        let mut p = Picture::default();
        let c = |state| view("127.0.0.1:5000", "127.0.0.1:6666", state, Role::Client, 1);
        p.apply(&Event::new(
            Duration::from_millis(10),
            Kind::New {
                sock: c(TcpState::Established),
                missed: Missed {
                    certain: vec![TcpState::SynSent],
                    either: vec![],
                },
                gap: Duration::from_millis(10),
                existing: false,
            },
        ));
        let end = p.pairs[&1].client.as_ref().unwrap();
        assert_eq!(
            end.arrow.as_ref().unwrap().path(),
            vec![TcpState::Close, TcpState::SynSent, TcpState::Established]
        );
        p.apply(&Event::new(
            Duration::from_millis(20),
            Kind::State {
                sock: c(TcpState::TimeWait),
                prev: TcpState::Established,
                prev_for: Duration::from_millis(10),
                missed: Missed {
                    certain: vec![TcpState::FinWait1],
                    either: vec![TcpState::FinWait2, TcpState::Closing],
                },
                gap: Duration::from_millis(10),
                freed: None,
            },
        ));
        let end = p.pairs[&1].client.as_ref().unwrap();
        assert_eq!(end.state, TcpState::TimeWait);
        let arrow = end.arrow.as_ref().unwrap();
        assert_eq!(arrow.implied, vec![TcpState::FinWait1]);
        assert_eq!(arrow.maybe, vec![TcpState::FinWait2, TcpState::Closing]);
        assert_eq!(
            end.time_left(Duration::from_millis(1020)),
            Some(Duration::from_secs(59))
        );
    }

    /// The tracepoint's FIN_WAIT2 -> CLOSE is the swap for a timewait
    /// entry: the end stays in TIME_WAIT; the poll's later TIME_WAIT, with
    /// its implied states, does not replace the arrow the tracepoint saw.
    #[test]
    fn the_tracepoints_close_of_an_active_closer_is_time_wait() {
        let mut p = Picture::default();
        p.apply(&Event::new(
            Duration::from_millis(5),
            Kind::Transition {
                local: "127.0.0.1:5000".parse().unwrap(),
                remote: "127.0.0.1:6666".parse().unwrap(),
                role: Role::Client,
                conn: Some(1),
                old: TcpState::FinWait2,
                new: TcpState::Close,
                prev_for: None,
                pid: 1,
                comm: "echo-client".into(),
            },
        ));
        let end = p.pairs[&1].client.as_ref().unwrap();
        assert_eq!(end.state, TcpState::TimeWait);
        assert_eq!(end.gone, None);
        p.apply(&Event::new(
            Duration::from_millis(8),
            Kind::State {
                sock: view(
                    "127.0.0.1:5000",
                    "127.0.0.1:6666",
                    TcpState::TimeWait,
                    Role::Client,
                    1,
                ),
                prev: TcpState::Established,
                prev_for: Duration::from_millis(8),
                missed: Missed {
                    certain: vec![TcpState::FinWait1],
                    either: vec![TcpState::FinWait2, TcpState::Closing],
                },
                gap: Duration::from_millis(10),
                freed: None,
            },
        ));
        let end = p.pairs[&1].client.as_ref().unwrap();
        let arrow = end.arrow.as_ref().unwrap();
        assert_eq!(
            (arrow.from, arrow.to),
            (TcpState::FinWait2, TcpState::TimeWait)
        );
        assert!(arrow.implied.is_empty());
        assert_eq!(
            end.time_left(Duration::from_millis(8)),
            Some(Duration::from_secs(60))
        );
    }

    /// A request socket is born of the listener (LISTEN -> SYN_RECV on the
    /// tracepoint): the listener stays.
    #[test]
    fn a_request_socket_does_not_take_the_listener_away() {
        let mut p = Picture::default();
        let listener: SocketAddr = "127.0.0.1:6666".parse().unwrap();
        p.listeners.insert(listener, None);
        p.apply(&Event::new(
            Duration::from_millis(5),
            Kind::Transition {
                local: listener,
                remote: "127.0.0.1:5000".parse().unwrap(),
                role: Role::Server,
                conn: Some(1),
                old: TcpState::Listen,
                new: TcpState::SynRecv,
                prev_for: None,
                pid: 1,
                comm: "echo-client".into(),
            },
        ));
        assert!(p.listeners.contains_key(&listener));
        assert_eq!(
            p.pairs[&1].server.as_ref().unwrap().state,
            TcpState::SynRecv
        );
    }
}
