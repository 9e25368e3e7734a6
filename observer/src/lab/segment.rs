//! TCP segments as they cross the lab's wire, told the seed's way:
//! `SYN seq=J`, `SYN+ACK seq=K ack=J+1`, `ACK ack=K+1` (UNP 2.6).
//!
//! The relay sees whole IPv4 packets (the TUN device hands them over with
//! no link header). We read the IPv4 header (RFC 791: version, header
//! length, protocol, addresses) and the TCP header (RFC 9293 3.1: ports,
//! sequence and acknowledgment numbers, data offset, flags, window), and
//! name sequence numbers relative to each side's initial one: J for the
//! side that sent the first SYN, K for the other.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// TCP flag bits (RFC 9293 3.1).
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// The fields of one TCP segment we show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Bytes of data (after the TCP header).
    pub len: usize,
}

impl Segment {
    /// Parse an IPv4 packet carrying TCP; `None` for anything else
    /// (IPv6, ICMP, fragments...).
    pub fn parse(packet: &[u8]) -> Option<Segment> {
        let version = packet.first()? >> 4;
        if version != 4 || packet.len() < 20 {
            return None;
        }
        let ihl = (packet[0] & 0x0f) as usize * 4;
        let total = u16::from_be_bytes([packet[2], packet[3]]) as usize;
        let protocol = packet[9];
        if protocol != 6 || total > packet.len() || ihl < 20 || total < ihl + 20 {
            return None;
        }
        let src_ip = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
        let dst_ip = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
        let tcp = &packet[ihl..total];
        let be16 = |i: usize| u16::from_be_bytes([tcp[i], tcp[i + 1]]);
        let be32 = |i: usize| u32::from_be_bytes([tcp[i], tcp[i + 1], tcp[i + 2], tcp[i + 3]]);
        let data_offset = (tcp[12] >> 4) as usize * 4;
        if data_offset < 20 || data_offset > tcp.len() {
            return None;
        }
        Some(Segment {
            src: SocketAddr::V4(SocketAddrV4::new(src_ip, be16(0))),
            dst: SocketAddr::V4(SocketAddrV4::new(dst_ip, be16(2))),
            seq: be32(4),
            ack: be32(8),
            flags: tcp[13],
            window: be16(14),
            len: tcp.len() - data_offset,
        })
    }

    /// `SYN`, `SYN+ACK`, `PSH+ACK`, `FIN+ACK`, `RST`...
    pub fn flag_names(&self) -> String {
        let names: Vec<&str> = [
            (SYN, "SYN"),
            (FIN, "FIN"),
            (RST, "RST"),
            (PSH, "PSH"),
            (ACK, "ACK"),
        ]
        .iter()
        .filter(|(bit, _)| self.flags & bit != 0)
        .map(|(_, name)| *name)
        .collect();
        if names.is_empty() {
            "(no flags)".to_string()
        } else {
            names.join("+")
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// What makes two segments the same one sent again: (src, dst, seq,
/// SYN/FIN/RST flags, length).
type SentKey = (SocketAddr, SocketAddr, u32, u8, usize);

/// Each connection's initial sequence numbers, learned from its SYNs.
#[derive(Debug, Default)]
pub struct Ladder {
    /// (opener address, other address) -> (J, Option<K>)
    isns: HashMap<(SocketAddr, SocketAddr), (u32, Option<u32>)>,
    /// Segments already sent once -> (times sent, first time).
    seen: HashMap<SentKey, (u32, std::time::Duration)>,
}

/// A segment with its sequence numbers named relative to J and K.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// `J`, `J+1`, `K+4`; the raw number if the connection's start was not seen.
    pub seq: String,
    /// The same for the acknowledgment number, when ACK is set.
    pub ack: Option<String>,
    /// Whether this side opened the connection (sent the first SYN).
    pub from_opener: bool,
    /// 0 for a first transmission; n for the n-th retransmission.
    pub retransmission: u32,
    /// Since the first transmission of the same segment.
    pub since_first: std::time::Duration,
}

fn relative(n: u32, base: u32, letter: &str) -> String {
    match n.wrapping_sub(base) {
        0 => letter.to_string(),
        d => format!("{letter}+{d}"),
    }
}

impl Ladder {
    /// Name a segment's numbers; learn ISNs from SYNs. `at` is its time.
    pub fn name(&mut self, s: &Segment, at: std::time::Duration) -> Named {
        if s.has(SYN) && !s.has(ACK) {
            self.isns.entry((s.src, s.dst)).or_insert((s.seq, None));
        }
        if s.has(SYN) && s.has(ACK) {
            if let Some(entry) = self.isns.get_mut(&(s.dst, s.src)) {
                entry.1.get_or_insert(s.seq);
            }
        }
        let (from_opener, isns) = match (
            self.isns.get(&(s.src, s.dst)),
            self.isns.get(&(s.dst, s.src)),
        ) {
            (Some(isns), _) => (true, Some(*isns)),
            (None, Some(isns)) => (false, Some(*isns)),
            (None, None) => (true, None),
        };
        let name = |n: u32, ours: bool| -> String {
            match (isns, ours == from_opener) {
                (Some((j, _)), true) => relative(n, j, "J"),
                (Some((_, Some(k))), false) => relative(n, k, "K"),
                _ => n.to_string(),
            }
        };
        let key = (s.src, s.dst, s.seq, s.flags & (SYN | FIN | RST), s.len);
        let sends_something = s.len > 0 || s.has(SYN) || s.has(FIN);
        let (retransmission, since_first) = if sends_something {
            let entry = self.seen.entry(key).or_insert((0, at));
            let n = entry.0;
            entry.0 += 1;
            (n, at.saturating_sub(entry.1))
        } else {
            (0, std::time::Duration::ZERO)
        };
        Named {
            seq: name(s.seq, true),
            ack: s.has(ACK).then(|| name(s.ack, false)),
            from_opener,
            retransmission,
            since_first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An IPv4+TCP SYN from 10.66.0.1:40000 to 10.66.0.2:6666, seq 1000,
    /// byte by byte.
    #[rustfmt::skip]
    pub const SYN_PACKET: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, // version 4, IHL 5 (20 bytes); total length 40
        0x00, 0x01, 0x40, 0x00, // id 1; flags DF, fragment offset 0
        0x40, 0x06, 0x00, 0x00, // TTL 64, protocol 6 (TCP), checksum (unchecked here)
        10, 66, 0, 1,           // source 10.66.0.1
        10, 66, 0, 2,           // destination 10.66.0.2
        0x9c, 0x40,             // source port 40000
        0x1a, 0x0a,             // destination port 6666
        0x00, 0x00, 0x03, 0xe8, // sequence number 1000
        0x00, 0x00, 0x00, 0x00, // acknowledgment number 0
        0x50, 0x02,             // data offset 5 (20 bytes); flags SYN
        0xfa, 0xf0,             // window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
    ];

    #[test]
    fn a_syn_parses() {
        let s = Segment::parse(&SYN_PACKET).unwrap();
        assert_eq!(s.src, "10.66.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.66.0.2:6666".parse().unwrap());
        assert_eq!(s.seq, 1000);
        assert_eq!(s.flag_names(), "SYN");
        assert_eq!(s.window, 64240);
        assert_eq!(s.len, 0);
        assert!(Segment::parse(&SYN_PACKET[..30]).is_none());
    }

    /// The three-way handshake, named as UNP names it.
    #[test]
    fn the_handshake_reads_j_and_k() {
        let c: SocketAddr = "10.66.0.1:40000".parse().unwrap();
        let s: SocketAddr = "10.66.0.2:6666".parse().unwrap();
        let seg = |src, dst, seq, ack, flags, len| Segment {
            src,
            dst,
            seq,
            ack,
            flags,
            window: 0,
            len,
        };
        let mut ladder = Ladder::default();
        let t = Duration::ZERO;
        let syn = ladder.name(&seg(c, s, 1000, 0, SYN, 0), t);
        assert_eq!((syn.seq.as_str(), syn.ack), ("J", None));
        let synack = ladder.name(&seg(s, c, 5000, 1001, SYN | ACK, 0), t);
        assert_eq!(
            (synack.seq.as_str(), synack.ack.as_deref()),
            ("K", Some("J+1"))
        );
        let ack = ladder.name(&seg(c, s, 1001, 5001, ACK, 0), t);
        assert_eq!((ack.seq.as_str(), ack.ack.as_deref()), ("J+1", Some("K+1")));
        let data = ladder.name(&seg(c, s, 1001, 5001, PSH | ACK, 3), t);
        assert_eq!(data.seq, "J+1");
        let again = ladder.name(
            &seg(c, s, 1001, 5001, PSH | ACK, 3),
            Duration::from_millis(300),
        );
        assert_eq!(again.retransmission, 1);
        assert_eq!(again.since_first, Duration::from_millis(300));
    }
}
