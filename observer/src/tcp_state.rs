//! The TCP states, as the Linux kernel numbers and names them.
//!
//! RFC 9293 section 3.3.2 defines eleven states; Linux keeps them in
//! `include/net/tcp_states.h` in its *own* order (ESTABLISHED is 1, not
//! LISTEN), adds NEW_SYN_RECV for request sockets, and calls RFC's CLOSED
//! `TCP_CLOSE`. inet_diag reports these numbers; we print the kernel's
//! spelling (`FIN_WAIT1`), which is also what `sock:inet_sock_set_state`
//! prints. `ss` abbreviates (`ESTAB`, `FIN-WAIT-1`).
//!
//! ```text
//!                        passive open                   active open
//!   CLOSE --listen()--> LISTEN                CLOSE --connect()/SYN--> SYN_SENT
//!   LISTEN --SYN/SYN+ACK--> SYN_RECV          SYN_SENT --SYN+ACK/ACK--> ESTABLISHED
//!   SYN_RECV --ACK--> ESTABLISHED
//!
//!   active close (close() first)              passive close (FIN received first)
//!   ESTABLISHED --FIN--> FIN_WAIT1            ESTABLISHED --FIN/ACK--> CLOSE_WAIT
//!   FIN_WAIT1 --ACK--> FIN_WAIT2              CLOSE_WAIT --close()/FIN--> LAST_ACK
//!   FIN_WAIT1 --FIN/ACK--> CLOSING            LAST_ACK --ACK--> CLOSE
//!   FIN_WAIT2 --FIN/ACK--> TIME_WAIT
//!   CLOSING --ACK--> TIME_WAIT --2MSL (60 s on Linux)--> CLOSE
//! ```

use std::fmt;
use std::str::FromStr;

/// How long TIME_WAIT lasts on Linux (TCP_TIMEWAIT_LEN, include/net/tcp.h;
/// RFC 9293 asks for 2 MSL).
pub const TIME_WAIT_LEN: std::time::Duration = std::time::Duration::from_secs(60);

/// The state of a TCP socket, by its number in `include/net/tcp_states.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    /// 1, RFC ESTABLISHED: the data transfer state.
    Established = 1,
    /// 2, RFC SYN-SENT: our SYN is out, waiting for SYN+ACK (connect()).
    SynSent = 2,
    /// 3, RFC SYN-RECEIVED: SYN received, SYN+ACK sent, waiting for the ACK.
    /// inet_diag reports request sockets (NEW_SYN_RECV) with this number.
    SynRecv = 3,
    /// 4, RFC FIN-WAIT-1: we closed first; our FIN is not yet ACKed.
    FinWait1 = 4,
    /// 5, RFC FIN-WAIT-2: our FIN is ACKed; waiting for the peer's FIN.
    FinWait2 = 5,
    /// 6, RFC TIME-WAIT: both FINs done; waiting 2MSL (60 s on Linux,
    /// TCP_TIMEWAIT_LEN) so that old duplicates die out (RFC 9293 3.6.1).
    TimeWait = 6,
    /// 7, RFC CLOSED.
    Close = 7,
    /// 8, RFC CLOSE-WAIT: the peer's FIN arrived; waiting for our close().
    CloseWait = 8,
    /// 9, RFC LAST-ACK: we closed after the peer; our FIN is not yet ACKed.
    LastAck = 9,
    /// 10, RFC LISTEN: waiting for SYNs (listen()).
    Listen = 10,
    /// 11, RFC CLOSING: both sides closed at once; our FIN not yet ACKed.
    Closing = 11,
    /// 12, Linux only: a request socket (a half-open connection) in the
    /// listener's SYN table.
    NewSynRecv = 12,
}

impl TcpState {
    /// Every state, in kernel order.
    pub const ALL: [TcpState; 12] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
        TcpState::NewSynRecv,
    ];

    pub fn from_kernel(n: u8) -> Option<TcpState> {
        TcpState::ALL.into_iter().find(|s| *s as u8 == n)
    }

    /// The kernel's name, as in tcp_states.h without `TCP_`.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW_SYN_RECV",
        }
    }

    /// The bit for this state in inet_diag's `idiag_states` mask.
    pub fn bit(self) -> u32 {
        1 << (self as u8)
    }

    /// The states a socket can go to next, with the segment or call that
    /// moves it (RFC 9293 figure 5, as Linux implements it).
    pub fn next(self) -> &'static [TcpState] {
        use TcpState::*;
        match self {
            Close => &[SynSent, Listen],
            Listen => &[SynRecv],
            SynSent => &[Established, SynRecv],
            // (Simplified: a full socket closed while still in SYN_RECV goes
            // to FIN_WAIT1; left out, it would make every path ambiguous.)
            SynRecv => &[Established],
            Established => &[FinWait1, CloseWait],
            FinWait1 => &[FinWait2, Closing],
            FinWait2 => &[TimeWait],
            Closing => &[TimeWait],
            CloseWait => &[LastAck],
            LastAck => &[Close],
            TimeWait => &[Close],
            NewSynRecv => &[Established],
        }
    }

    /// Is this the state of a connection that is closing or closed?
    pub fn is_closing(self) -> bool {
        use TcpState::*;
        matches!(
            self,
            FinWait1 | FinWait2 | Closing | TimeWait | CloseWait | LastAck | Close
        )
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for TcpState {
    type Err = String;

    /// Accepts the kernel's names and ss's (`ESTAB`, `fin-wait-1`), any case.
    fn from_str(text: &str) -> Result<Self, String> {
        let norm = text.trim().to_ascii_uppercase().replace('-', "_");
        let norm = match norm.as_str() {
            "ESTAB" => "ESTABLISHED",
            "FIN_WAIT_1" => "FIN_WAIT1",
            "FIN_WAIT_2" => "FIN_WAIT2",
            "CLOSED" => "CLOSE",
            "UNCONN" => "CLOSE",
            "SYN_RECEIVED" => "SYN_RECV",
            other => other,
        };
        TcpState::ALL
            .into_iter()
            .find(|s| s.name() == norm)
            .ok_or_else(|| format!("unknown TCP state `{text}` (try ESTABLISHED, TIME_WAIT, ...)"))
    }
}

/// What the sampling could not see between two observations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Missed {
    /// States every path from the old state to the new one goes through:
    /// the socket was certainly in each of them, too briefly to be seen.
    pub certain: Vec<TcpState>,
    /// States some paths go through and others do not (FIN_WAIT2 or
    /// CLOSING on the way to TIME_WAIT): one of them, we cannot tell which.
    pub either: Vec<TcpState>,
}

impl Missed {
    pub fn is_empty(&self) -> bool {
        self.certain.is_empty() && self.either.is_empty()
    }
}

/// The states passed through unseen between `from` and `to`, by the state
/// machine: all simple paths from one to the other, intersected.
///
/// Returns `None` when no path exists (the sampling saw something the
/// state machine does not allow, e.g. a reused 4-tuple).
pub fn missed_between(from: TcpState, to: TcpState) -> Option<Missed> {
    if from == to {
        return Some(Missed::default());
    }
    let mut paths: Vec<Vec<TcpState>> = Vec::new();
    let mut stack = vec![(from, vec![from])];
    while let Some((state, path)) = stack.pop() {
        for &next in state.next() {
            if next == to {
                paths.push(path[1..].to_vec());
            } else if !path.contains(&next) && next != TcpState::Close {
                let mut longer = path.clone();
                longer.push(next);
                stack.push((next, longer));
            }
        }
    }
    if paths.is_empty() {
        return None;
    }
    // Prefer the shortest paths: a socket does not wander through SYN_RECV
    // (simultaneous open) on its way from SYN_SENT to ESTABLISHED unless we
    // saw it there.
    let shortest = paths.iter().map(Vec::len).min().unwrap_or(0);
    paths.retain(|p| p.len() == shortest);
    let certain: Vec<TcpState> = paths[0]
        .iter()
        .copied()
        .filter(|s| paths.iter().all(|p| p.contains(s)))
        .collect();
    let mut either: Vec<TcpState> = paths
        .iter()
        .flatten()
        .copied()
        .filter(|s| !certain.contains(s))
        .collect();
    either.sort();
    either.dedup();
    Some(Missed { certain, either })
}

/// The states a socket first seen in `state` must already have passed,
/// given which side it is: an active opener starts in SYN_SENT, a server's
/// accepted socket in SYN_RECV, a listener in LISTEN.
pub fn missed_before(state: TcpState, active_opener: Option<bool>) -> Missed {
    let start = match (state, active_opener) {
        (TcpState::Listen | TcpState::SynSent, _) => return Missed::default(),
        (TcpState::SynRecv | TcpState::NewSynRecv, _) => return Missed::default(),
        (_, Some(true)) => TcpState::SynSent,
        (_, Some(false)) => TcpState::SynRecv,
        (_, None) => return Missed::default(),
    };
    let mut missed = missed_between(start, state).unwrap_or_default();
    missed.certain.insert(0, start);
    missed
}

/// Parse `ESTABLISHED,TIME_WAIT` into inet_diag's state mask.
pub fn parse_state_list(text: &str) -> Result<(Vec<TcpState>, u32), String> {
    let mut states = Vec::new();
    let mut mask = 0;
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let state: TcpState = part.parse()?;
        mask |= state.bit();
        if state == TcpState::SynRecv {
            // The kernel reports request sockets as SYN_RECV but files them
            // under NEW_SYN_RECV; ask for both, as ss does.
            mask |= TcpState::NewSynRecv.bit();
        }
        states.push(state);
    }
    if states.is_empty() {
        return Err("no state given".to_string());
    }
    Ok((states, mask))
}

#[cfg(test)]
mod tests {
    use super::TcpState::*;
    use super::*;

    #[test]
    fn kernel_numbers_and_names_round_trip() {
        for state in TcpState::ALL {
            assert_eq!(TcpState::from_kernel(state as u8), Some(state));
            assert_eq!(state.name().parse::<TcpState>(), Ok(state));
        }
        assert_eq!(Established as u8, 1);
        assert_eq!(Listen as u8, 10);
        assert_eq!("estab".parse::<TcpState>(), Ok(Established));
        assert_eq!("fin-wait-1".parse::<TcpState>(), Ok(FinWait1));
    }

    /// ESTABLISHED straight to TIME_WAIT: FIN_WAIT1 for certain, then
    /// FIN_WAIT2 or CLOSING, the sampling cannot tell which.
    #[test]
    fn test_established_to_time_wait_missed_states() {
        let missed = missed_between(Established, TimeWait).unwrap();
        assert_eq!(missed.certain, vec![FinWait1]);
        assert_eq!(missed.either, vec![FinWait2, Closing]);
    }

    #[test]
    fn test_close_wait_to_close_passes_last_ack() {
        let missed = missed_between(CloseWait, Close).unwrap();
        assert_eq!(missed.certain, vec![LastAck]);
        assert!(missed.either.is_empty());
    }

    #[test]
    fn test_adjacent_states_miss_nothing() {
        assert!(missed_between(FinWait1, FinWait2).unwrap().is_empty());
        assert!(missed_between(SynSent, Established).unwrap().is_empty());
    }

    #[test]
    fn test_impossible_transition_is_none() {
        assert_eq!(missed_between(TimeWait, Established), None);
        assert_eq!(missed_between(CloseWait, FinWait2), None);
    }

    /// A client first seen ESTABLISHED was in SYN_SENT before; a server's
    /// socket first seen in CLOSE_WAIT was in SYN_RECV and ESTABLISHED.
    #[test]
    fn test_first_seen_late_names_the_states_before() {
        assert_eq!(
            missed_before(Established, Some(true)).certain,
            vec![SynSent]
        );
        assert_eq!(
            missed_before(CloseWait, Some(false)).certain,
            vec![SynRecv, Established]
        );
        assert!(missed_before(Listen, None).is_empty());
    }

    #[test]
    fn state_lists_compile_to_masks() {
        let (states, mask) = parse_state_list("LISTEN,syn_recv").unwrap();
        assert_eq!(states, vec![Listen, SynRecv]);
        assert_eq!(mask, (1 << 10) | (1 << 3) | (1 << 12));
        assert!(parse_state_list("nope").is_err());
    }
}
