//! Reading the kernel's answer: datagrams hold netlink messages, messages
//! hold `inet_diag_msg` structs followed by attributes.
//!
//! The seed's loop, `for (h = buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))`,
//! in Rust: each message starts with a 16-byte `nlmsghdr` whose `nlmsg_len`
//! says how long it is; the next one starts at the length rounded up to 4
//! bytes. A single datagram carries many messages, and the `NLMSG_DONE`
//! that ends the dump may share a datagram with the last sockets.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{NlaBuffer, NlasIterator, Parseable};
use netlink_packet_sock_diag::inet::nlas::Nla;

use crate::layout::{self, inet_diag_msg as msg, nlmsghdr};
use crate::tcp_state::TcpState;

/// The attribute that carries `struct tcp_info`.
const INET_DIAG_INFO: u16 = 2;

use super::{DiagError, Timer};

/// One netlink message inside a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Offset of the message in its datagram.
    pub offset: usize,
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// The whole message, header included.
    pub bytes: &'a [u8],
    /// What follows the header.
    pub payload: &'a [u8],
}

/// Split a datagram into its messages (NLMSG_OK / NLMSG_NEXT).
pub fn messages(datagram: &[u8]) -> Result<Vec<Message<'_>>, DiagError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while datagram.len() - offset >= layout::NLMSG_HDRLEN {
        let rest = &datagram[offset..];
        let len = nlmsghdr::LEN.u32(rest) as usize;
        // NLMSG_OK: the length covers at least a header and fits.
        if len < layout::NLMSG_HDRLEN || len > rest.len() {
            return Err(DiagError::Malformed(format!(
                "message at offset {offset} claims {len} bytes, {} remain",
                rest.len()
            )));
        }
        out.push(Message {
            offset,
            msg_type: nlmsghdr::TYPE.u16(rest),
            flags: nlmsghdr::FLAGS.u16(rest),
            seq: nlmsghdr::SEQ.u32(rest),
            pid: nlmsghdr::PID.u32(rest),
            bytes: &rest[..len],
            payload: &rest[layout::NLMSG_HDRLEN..len],
        });
        // NLMSG_NEXT: skip to the next 4-byte boundary.
        offset += layout::align(len);
    }
    Ok(out)
}

/// The errno in an NLMSG_ERROR message (0 means an ACK).
pub fn error_code(message: &Message<'_>) -> i32 {
    if message.payload.len() < 4 {
        return 0;
    }
    -layout::nlmsgerr::ERROR.i32(message.payload)
}

/// One socket, as inet_diag describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockInfo {
    pub family: u8,
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Recv-Q: bytes received but not read; for LISTEN, the accept queue.
    pub recv_q: u32,
    /// Send-Q: bytes sent but not acknowledged; for LISTEN, the backlog.
    pub send_q: u32,
    pub timer: Timer,
    /// Milliseconds until the timer fires (for TIME_WAIT: until it ends).
    pub expires_ms: u32,
    pub retrans: u8,
    pub uid: u32,
    /// 0 for sockets with no file: TIME_WAIT, request sockets (SYN_RECV),
    /// connections waiting in the accept queue, orphans.
    pub inode: u32,
    /// A unique id the kernel gives each socket; a TIME_WAIT entry keeps
    /// the cookie of the socket it replaced.
    pub cookie: u64,
    /// From INET_DIAG_INFO, when asked for (destroy notifications carry it).
    pub tcp_info: Option<TcpInfoLite>,
}

/// The few `struct tcp_info` fields we show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfoLite {
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub total_retrans: u32,
    pub rtt_us: u32,
}

impl SockInfo {
    /// A question for [`DiagSocket::lookup`](super::DiagSocket::lookup):
    /// the socket whose own address is `local` and whose peer is `remote`
    /// (only the family and the 4-tuple are used).
    pub fn wanted(local: SocketAddr, remote: SocketAddr) -> SockInfo {
        SockInfo {
            family: if local.is_ipv4() {
                layout::AF_INET
            } else {
                layout::AF_INET6
            },
            state: TcpState::Established,
            local,
            remote,
            recv_q: 0,
            send_q: 0,
            timer: Timer::Off,
            expires_ms: 0,
            retrans: 0,
            uid: 0,
            inode: 0,
            cookie: 0,
            tcp_info: None,
        }
    }

    /// Parse the payload of a SOCK_DIAG_BY_FAMILY message.
    pub fn parse(payload: &[u8]) -> Result<SockInfo, DiagError> {
        if payload.len() < msg::LAYOUT.size {
            return Err(DiagError::Malformed(format!(
                "inet_diag_msg of {} bytes, expected {}",
                payload.len(),
                msg::LAYOUT.size
            )));
        }
        let family = msg::FAMILY.u8(payload);
        let raw_state = msg::STATE.u8(payload);
        let state = TcpState::from_kernel(raw_state)
            .ok_or_else(|| DiagError::Malformed(format!("unknown TCP state {raw_state}")))?;
        let addr = |field: layout::Field, port: layout::Field| -> SocketAddr {
            let ip: IpAddr = field.addr(payload, family);
            SocketAddr::new(ip, port.be16(payload))
        };
        let mut tcp_info = None;
        for attr in NlasIterator::new(&payload[msg::LAYOUT.size..]) {
            let attr: NlaBuffer<&[u8]> =
                attr.map_err(|e| DiagError::Malformed(format!("attribute: {e}")))?;
            // Only tcp_info interests us; the others are left unparsed.
            if attr.kind() != INET_DIAG_INFO {
                continue;
            }
            if let Ok(Nla::TcpInfo(info)) = Nla::parse(&attr) {
                tcp_info = Some(TcpInfoLite {
                    bytes_acked: info.bytes_acked,
                    bytes_received: info.bytes_received,
                    total_retrans: info.total_retrans,
                    rtt_us: info.rtt,
                });
            }
        }
        Ok(SockInfo {
            family,
            state,
            local: addr(msg::SRC, msg::SPORT),
            remote: addr(msg::DST, msg::DPORT),
            recv_q: msg::RQUEUE.u32(payload),
            send_q: msg::WQUEUE.u32(payload),
            timer: Timer::from_kernel(msg::TIMER.u8(payload)),
            expires_ms: msg::EXPIRES.u32(payload),
            retrans: msg::RETRANS.u8(payload),
            uid: msg::UID.u32(payload),
            inode: msg::INODE.u32(payload),
            cookie: msg::COOKIE.u64(payload),
            tcp_info,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netlink_packet_sock_diag::inet::InetResponse;

    /// An inet_diag_msg for 127.0.0.1:6666 -> 127.0.0.1:51230 in TIME_WAIT,
    /// annotated byte by byte, as the kernel sends it on x86-64.
    #[rustfmt::skip]
    pub const TIME_WAIT_MSG: [u8; 72] = [
        2,                      // idiag_family = AF_INET
        6,                      // idiag_state = TCP_TIME_WAIT
        3,                      // idiag_timer = 3: the TIME_WAIT timer
        0,                      // idiag_retrans
        0x1a, 0x0a,             // id.idiag_sport = 6666, big-endian
        0xc8, 0x1e,             // id.idiag_dport = 51230, big-endian
        127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // id.idiag_src
        127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // id.idiag_dst
        0, 0, 0, 0,             // id.idiag_if = 0
        0x2a, 0, 0, 0, 0, 0, 0, 0, // id.idiag_cookie = 42
        0x60, 0xe3, 0, 0,       // idiag_expires = 58208 ms
        0, 0, 0, 0,             // idiag_rqueue = 0
        0, 0, 0, 0,             // idiag_wqueue = 0
        0, 0, 0, 0,             // idiag_uid = 0 (root)
        0, 0, 0, 0,             // idiag_inode = 0: a TIME_WAIT entry has no file
    ];

    #[test]
    fn a_time_wait_message_parses_with_its_countdown() {
        let info = SockInfo::parse(&TIME_WAIT_MSG).unwrap();
        assert_eq!(info.state, TcpState::TimeWait);
        assert_eq!(info.local, "127.0.0.1:6666".parse().unwrap());
        assert_eq!(info.remote, "127.0.0.1:51230".parse().unwrap());
        assert_eq!(info.timer, Timer::TimeWait);
        assert_eq!(info.expires_ms, 58208);
        assert_eq!(info.cookie, 42);
        assert_eq!(info.inode, 0);
    }

    /// Our table-driven parser and netlink-packet-sock-diag agree on every
    /// field both read (the crate drops the TIME_WAIT expiry, which is
    /// why we read the fields ourselves).
    #[test]
    fn the_tables_agree_with_the_crate() {
        let ours = SockInfo::parse(&TIME_WAIT_MSG).unwrap();
        let theirs = InetResponse::parse(&TIME_WAIT_MSG[..]).unwrap().header;
        assert_eq!(ours.local.port(), theirs.socket_id.source_port);
        assert_eq!(ours.remote.port(), theirs.socket_id.destination_port);
        assert_eq!(ours.local.ip(), theirs.socket_id.source_address);
        assert_eq!(ours.state as u8, theirs.state);
        assert_eq!(ours.inode, theirs.inode);
        assert_eq!(ours.uid, theirs.uid);
        assert_eq!(ours.cookie.to_ne_bytes(), theirs.socket_id.cookie);
    }

    /// Two messages in one datagram, the second an NLMSG_DONE, each at a
    /// 4-byte boundary.
    #[test]
    fn a_datagram_splits_into_aligned_messages() {
        let mut datagram = Vec::new();
        let mut header = [0u8; 16];
        nlmsghdr::LEN.put(&mut header, 16 + 72);
        nlmsghdr::TYPE.put(&mut header, layout::SOCK_DIAG_BY_FAMILY.into());
        nlmsghdr::FLAGS.put(&mut header, layout::NLM_F_MULTI.into());
        datagram.extend_from_slice(&header);
        datagram.extend_from_slice(&TIME_WAIT_MSG);
        let mut done = [0u8; 20];
        nlmsghdr::LEN.put(&mut done, 20);
        nlmsghdr::TYPE.put(&mut done, layout::NLMSG_DONE.into());
        datagram.extend_from_slice(&done);

        let messages = messages(&datagram).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].msg_type, layout::SOCK_DIAG_BY_FAMILY);
        assert_eq!(messages[1].offset, 88);
        assert_eq!(messages[1].msg_type, layout::NLMSG_DONE);
    }

    #[test]
    fn a_length_past_the_end_is_an_error() {
        let mut header = [0u8; 16];
        nlmsghdr::LEN.put(&mut header, 200);
        assert!(messages(&header).is_err());
    }
}
