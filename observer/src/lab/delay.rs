//! The delay line, the lab's slow wire: every packet waits a fixed delay before it is passed on,
//! and a TCP segment may be lost.
//!
//! `tc qdisc ... netem delay 300ms` does this in the kernel; this kernel has
//! no netem, so the relay does it in user space: it reads a packet from one
//! TUN device, keeps it for the delay, and writes it to the other. Each
//! direction is a FIFO: with a fixed delay, packets never overtake each
//! other (real wires may reorder; this one does not).
//!
//! Loss is decided for TCP segments only, by a pseudo-random generator
//! seeded with `--seed`: the same seed loses the same segments, so a
//! lesson can be replayed. (IPv6 neighbour discovery and the like pass
//! untouched and draw no random numbers, so they cannot shift the pattern.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// With `--loss 50`, this seed loses the first two TCP segments (a SYN and
/// its first retransmission) and passes the next four.
pub const LOST_SYN_SEED: u64 = 18;

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ClientToServer = 0,
    ServerToClient = 1,
}

impl Dir {
    pub fn arrow(self) -> &'static str {
        match self {
            Dir::ClientToServer => "client -> server",
            Dir::ServerToClient => "client <- server",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dir::ClientToServer => "client->server",
            Dir::ServerToClient => "server->client",
        }
    }
}

/// xorshift64*: small, fast, and the same sequence for the same seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `percent` / 100.
    pub fn lose(&mut self, percent: f64) -> bool {
        self.next_f64() * 100.0 < percent
    }
}

/// What happened to a packet entering the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Will arrive after the delay.
    Sent,
    /// Dropped, as `--loss` asked.
    Lost,
}

/// Both directions of the wire.
pub struct DelayLine {
    pub delay: Duration,
    pub loss_percent: f64,
    rng: Rng,
    queues: [VecDeque<(Instant, Vec<u8>)>; 2],
}

impl DelayLine {
    pub fn new(delay: Duration, loss_percent: f64, seed: u64) -> DelayLine {
        DelayLine {
            delay,
            loss_percent,
            rng: Rng::new(seed),
            queues: [VecDeque::new(), VecDeque::new()],
        }
    }

    /// A packet enters the wire at `now`; `tcp` says whether loss applies.
    pub fn enter(&mut self, dir: Dir, packet: Vec<u8>, tcp: bool, now: Instant) -> Fate {
        if tcp && self.loss_percent > 0.0 && self.rng.lose(self.loss_percent) {
            return Fate::Lost;
        }
        self.queues[dir as usize].push_back((now + self.delay, packet));
        Fate::Sent
    }

    /// When the next packet is due, if any is in flight.
    pub fn next_due(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|q| q.front().map(|(t, _)| *t))
            .min()
    }

    /// Packets whose delay is over, with their direction.
    pub fn due(&mut self, now: Instant) -> Vec<(Dir, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, dir) in [Dir::ClientToServer, Dir::ServerToClient]
            .into_iter()
            .enumerate()
        {
            while self.queues[i].front().is_some_and(|(t, _)| *t <= now) {
                if let Some((_, packet)) = self.queues[i].pop_front() {
                    out.push((dir, packet));
                }
            }
        }
        out
    }

    pub fn in_flight(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_wait_the_delay_and_keep_their_order() {
        let start = Instant::now();
        let mut wire = DelayLine::new(Duration::from_millis(300), 0.0, 1);
        wire.enter(Dir::ClientToServer, vec![1], true, start);
        wire.enter(
            Dir::ClientToServer,
            vec![2],
            true,
            start + Duration::from_millis(1),
        );
        assert!(wire.due(start + Duration::from_millis(299)).is_empty());
        assert_eq!(wire.next_due(), Some(start + Duration::from_millis(300)));
        let first = wire.due(start + Duration::from_millis(300));
        assert_eq!(first, vec![(Dir::ClientToServer, vec![1])]);
        let second = wire.due(start + Duration::from_millis(301));
        assert_eq!(second, vec![(Dir::ClientToServer, vec![2])]);
        assert_eq!(wire.in_flight(), 0);
    }

    /// The same seed loses the same segments; non-TCP packets draw nothing.
    #[test]
    fn loss_is_deterministic_for_a_seed() {
        let now = Instant::now();
        let fates = |seed| {
            let mut wire = DelayLine::new(Duration::ZERO, 50.0, seed);
            wire.enter(Dir::ClientToServer, vec![0], false, now); // not TCP: no draw
            (0..32)
                .map(|_| wire.enter(Dir::ClientToServer, vec![0], true, now))
                .collect::<Vec<_>>()
        };
        assert_eq!(fates(7), fates(7));
        assert_ne!(fates(7), fates(8));
        let lost = fates(7).iter().filter(|f| **f == Fate::Lost).count();
        assert!((8..=24).contains(&lost), "{lost} of 32 at 50%");
    }

    /// `--loss 50 --seed 18` loses the first two TCP segments and passes the
    /// next four: the SYN and its first retransmission are lost, the second
    /// retransmission and the rest of the handshake get through. The
    /// lost-syn lesson relies on it.
    #[test]
    fn seed_18_at_50_percent_loses_the_first_two_segments() {
        let mut rng = Rng::new(LOST_SYN_SEED);
        let fates: Vec<bool> = (0..6).map(|_| rng.lose(50.0)).collect();
        assert_eq!(fates, [true, true, false, false, false, false]);
    }
}
