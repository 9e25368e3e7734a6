//! Events as lines for people: what `observer` prints in a terminal.
//!
//! Every line starts with the time since the watch started, then the
//! connection (`#3`), the role and the addresses, then what happened, and
//! the processes holding the socket in brackets. What sampling missed is
//! said with its bound (`SYN_SENT not seen: < 10 ms`).

use std::time::Duration;

use super::{Event, Gone, Kind, LabInfo, ProcChange, SockView, WireSegment};
use crate::diag::TcpInfoLite;
use crate::lab::delay::Fate;
use crate::procfs::Process;
use crate::render::{self, Style};
use crate::roles::Role;
use crate::snapshot::owners_text;
use crate::tcp_state::{Missed, TIME_WAIT_LEN, TcpState};

impl Event {
    /// One line for people (the lab's first event: several). In the lab,
    /// the host follows the time: `    1.234  server  #1 ...`.
    pub fn human(&self, style: Style) -> String {
        let line = self.line(style);
        match self.host {
            None => line,
            Some(host) => {
                let (time, rest) = line.split_at(line.len().min(9));
                format!("{time}  {:<6}{rest}", host.name())
            }
        }
    }

    fn line(&self, style: Style) -> String {
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
                        // A listener never carried data: no counters to read.
                        match tcp {
                            Some(t) if state != TcpState::Listen => {
                                format!("{base}; {}", counters(t, sock.role, Fins::Unknown))
                            }
                            _ => base,
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
            Kind::Lab(lab) => lab_text(lab),
            Kind::Segment(w) => segment_text(&t, w),
            Kind::LabDown { name } => format!(
                "{t}  observer lab: {name} torn down (namespaces, devices, processes inside)"
            ),
        }
    }
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
    match &p.meaning {
        Some(meaning) => format!("{} in {wchan}: {meaning}", p.state),
        None => format!("{} in {wchan}", p.state),
    }
}
/// The lab's announcement: the two hosts and the commands to type.
fn lab_text(lab: &LabInfo) -> String {
    let name_flag = if lab.name == "echolab" {
        String::new()
    } else {
        format!(" --name {}", lab.name)
    };
    let loss = if lab.loss_percent > 0.0 {
        format!(
            ", {}% of TCP segments lost (seed {})",
            lab.loss_percent, lab.seed
        )
    } else {
        String::new()
    };
    format!(
        "observer lab: {} ({}) <-> {} ({}), {} each way{loss}\n\
         \x20 server terminal:  ip netns exec {} {}\n\
         \x20               or: {} lab exec server{name_flag} -- {}\n\
         \x20 client terminal:  ip netns exec {} {}\n\
         \x20               or: {} lab exec client{name_flag} -- {}\n\
         \x20 one side only:    {} --netns {}\n\
         Ctrl-C here tears the lab down.",
        lab.client_ns,
        lab.client_addr,
        lab.server_ns,
        lab.server_addr,
        render::elapsed(lab.delay),
        lab.server_ns,
        lab.server_cmd,
        lab.observer,
        lab.server_cmd,
        lab.client_ns,
        lab.client_cmd,
        lab.observer,
        lab.client_cmd,
        lab.observer,
        lab.server_ns,
    )
}

/// One rung of the ladder: `wire  client -> server  SYN  seq=J ...`.
fn segment_text(t: &str, w: &WireSegment) -> String {
    let s = &w.segment;
    let named = &w.named;
    let ack = named
        .ack
        .as_ref()
        .map_or(String::new(), |a| format!("ack={a}"));
    let len = if s.len > 0 {
        format!("len {}", s.len)
    } else {
        String::new()
    };
    let retrans = if named.retransmission > 0 {
        format!(
            "  retransmission {} ({} after the first)",
            named.retransmission,
            render::elapsed(named.since_first)
        )
    } else {
        String::new()
    };
    let fate = match (w.fate, w.arrives) {
        (Fate::Sent, Some(at)) => format!("arrives {:.3}", at.as_secs_f64()),
        _ => "LOST".to_string(),
    };
    format!(
        "{t}  wire    {}  {:<8} seq={:<7} {:<9} {:<8} {fate}{retrans}",
        w.dir.arrow(),
        s.flag_names(),
        named.seq,
        ack,
        len
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
