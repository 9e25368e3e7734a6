//! The dump request: "send me every TCP socket of this family in these
//! states (that passes this filter)".
//!
//! ```text
//! nlmsghdr (16)            len, type SOCK_DIAG_BY_FAMILY, flags REQUEST|DUMP, seq, pid
//! inet_diag_req_v2 (56)    family, protocol, ext, states, socket id (zero in a dump)
//! nlattr (4) + bytecode    optional: INET_DIAG_REQ_BYTECODE, the filter program
//! ```
//!
//! netlink-packet-sock-diag builds the first two parts; it has no way to
//! attach the bytecode attribute, so [`DiagRequest`] wraps its request and
//! appends the attribute itself.
//!
//! The same request without NLM_F_DUMP, and with the socket id filled in,
//! asks for one socket ([`DiagRequest::exact`]): the kernel looks its
//! 4-tuple up in the connection hash (inet_diag_find_one_icsk, then
//! inet_lookup) instead of walking every bucket.

use netlink_packet_core::Emitable;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};

use super::SockInfo;
use crate::layout::{self, inet_diag_req, nlattr};

/// The v2 request plus an optional filter program.
#[derive(Debug, Clone)]
pub struct DiagRequest {
    pub inner: InetRequest,
    pub bytecode: Vec<u8>,
}

impl DiagRequest {
    /// A dump of TCP sockets of `family` in the states of `mask`, with the
    /// extensions in `ext` (e.g. INET_DIAG_INFO for tcp_info) and an
    /// optional filter program.
    pub fn dump(family: u8, mask: u32, ext: u8, bytecode: Vec<u8>) -> DiagRequest {
        let socket_id = if family == layout::AF_INET6 {
            SocketId::new_v6()
        } else {
            SocketId::new_v4()
        };
        DiagRequest {
            inner: InetRequest {
                family,
                protocol: layout::IPPROTO_TCP,
                extensions: ExtensionFlags::from_bits_retain(ext),
                states: StateFlags::from_bits_retain(mask),
                socket_id,
            },
            bytecode,
        }
    }

    /// A question about the one socket `info` describes, by its 4-tuple
    /// (its interface index left 0: a socket bound to a device is not
    /// found this way, and the watch then dumps, see source::poll).
    ///
    /// The cookie is INET_DIAG_NOCOOKIE (all 0xff): with its own cookie
    /// the kernel would refuse the socket that replaces a request socket
    /// when the handshake completes, and we want to see that one.
    pub fn exact(info: &SockInfo) -> DiagRequest {
        let mut request = DiagRequest::dump(info.family, Self::ALL_STATES, 0, Vec::new());
        let id = &mut request.inner.socket_id;
        id.source_port = info.local.port();
        id.destination_port = info.remote.port();
        id.source_address = info.local.ip();
        id.destination_address = info.remote.ip();
        id.cookie = [0xff; 8];
        request
    }

    /// Every state: an exact question ignores the mask, a dump obeys it.
    const ALL_STATES: u32 = 0xfff;

    fn attr_len(&self) -> usize {
        if self.bytecode.is_empty() {
            0
        } else {
            layout::align(nlattr::LAYOUT.size + self.bytecode.len())
        }
    }

    /// The whole netlink message of a dump, header included, ready for send().
    pub fn to_bytes(&self, seq: u32) -> Vec<u8> {
        self.message(seq, layout::NLM_F_REQUEST | layout::NLM_F_DUMP)
    }

    /// The message of an exact question: NLM_F_REQUEST alone. The kernel
    /// answers with one SOCK_DIAG_BY_FAMILY message, or with an NLMSG_ERROR
    /// (ENOENT: no such socket).
    pub fn to_bytes_exact(&self, seq: u32) -> Vec<u8> {
        self.message(seq, layout::NLM_F_REQUEST)
    }

    fn message(&self, seq: u32, flags: u16) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(self.clone()));
        // finalize() fills in nlmsg_len and nlmsg_type from the payload;
        // without it the kernel sees a zero length and drops the message.
        message.finalize();
        let mut buf = vec![0u8; message.buffer_len()];
        message.serialize(&mut buf);
        buf
    }
}

impl NetlinkSerializable for DiagRequest {
    fn message_type(&self) -> u16 {
        layout::SOCK_DIAG_BY_FAMILY
    }

    fn buffer_len(&self) -> usize {
        self.inner.buffer_len() + self.attr_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        let req_len = self.inner.buffer_len();
        self.inner.emit(&mut buffer[..req_len]);
        if self.bytecode.is_empty() {
            return;
        }
        let attr = &mut buffer[req_len..];
        nlattr::LEN.put(attr, (nlattr::LAYOUT.size + self.bytecode.len()) as u64);
        nlattr::TYPE.put(attr, layout::INET_DIAG_REQ_BYTECODE.into());
        attr[nlattr::LAYOUT.size..nlattr::LAYOUT.size + self.bytecode.len()]
            .copy_from_slice(&self.bytecode);
    }
}

/// The seed's request: message type TCPDIAG_GETSOCK, flags
/// NLM_F_REQUEST | NLM_F_ROOT, body the old `struct inet_diag_req`.
///
/// The seed sets `idiag_states = (1 << TCP_CLOSING + 1) - 1`. In C, `+`
/// binds tighter than `<<`, so that is `(1 << 12) - 1 = 0xfff`: bits 0 to
/// 11, every state from ESTABLISHED (1) to CLOSING (11), plus bit 0, which
/// no state uses. It is the same mask as ss's, by luck of precedence.
///
/// `bytecode`, if not empty, is attached as on a v2 request: the
/// compatibility path audits and runs it the same way.
pub fn legacy_dump(family: u8, mask: u32, seq: u32, bytecode: &[u8]) -> Vec<u8> {
    let body_len = inet_diag_req::LAYOUT.size;
    let attr_len = if bytecode.is_empty() {
        0
    } else {
        layout::align(nlattr::LAYOUT.size + bytecode.len())
    };
    let total = layout::NLMSG_HDRLEN + body_len + attr_len;
    let mut buf = vec![0u8; total];
    let (header, rest) = buf.split_at_mut(layout::NLMSG_HDRLEN);
    let (body, attr) = rest.split_at_mut(body_len);
    layout::nlmsghdr::LEN.put(header, total as u64);
    if !bytecode.is_empty() {
        nlattr::LEN.put(attr, (nlattr::LAYOUT.size + bytecode.len()) as u64);
        nlattr::TYPE.put(attr, layout::INET_DIAG_REQ_BYTECODE.into());
        attr[nlattr::LAYOUT.size..nlattr::LAYOUT.size + bytecode.len()].copy_from_slice(bytecode);
    }
    layout::nlmsghdr::TYPE.put(header, layout::TCPDIAG_GETSOCK.into());
    layout::nlmsghdr::FLAGS.put(header, (layout::NLM_F_REQUEST | layout::NLM_F_ROOT).into());
    layout::nlmsghdr::SEQ.put(header, seq.into());
    inet_diag_req::FAMILY.put(body, family.into());
    inet_diag_req::STATES.put(body, mask.into());
    buf
}

/// The seed's state mask, computed the way its C expression is parsed.
pub const SEED_STATE_MASK: u32 = (1 << (11 + 1)) - 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{inet_diag_req_v2 as v2, nlmsghdr};

    /// The v2 dump request for IPv4 with the port filter, byte by byte.
    #[test]
    fn v2_request_with_bytecode_serializes_as_documented() {
        let req = DiagRequest::dump(
            layout::AF_INET,
            0xfff,
            0,
            super::super::bytecode::port_filter(6666),
        );
        let bytes = req.to_bytes(7);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // nlmsghdr
            96, 0, 0, 0,        // nlmsg_len = 16 + 56 + 4 + 20 = 96
            20, 0,              // nlmsg_type = SOCK_DIAG_BY_FAMILY
            0x01, 0x03,         // nlmsg_flags = REQUEST | ROOT | MATCH (= DUMP)
            7, 0, 0, 0,         // nlmsg_seq = 7
            0, 0, 0, 0,         // nlmsg_pid = 0: the kernel fills in ours
            // inet_diag_req_v2
            2,                  // sdiag_family = AF_INET
            6,                  // sdiag_protocol = IPPROTO_TCP
            0,                  // idiag_ext: no extra attributes
            0,                  // pad
            0xff, 0x0f, 0, 0,   // idiag_states = 0xfff
            0, 0, 0, 0,         // id.idiag_sport, id.idiag_dport
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // id.idiag_src
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // id.idiag_dst
            0, 0, 0, 0,         // id.idiag_if
            0, 0, 0, 0, 0, 0, 0, 0, // id.idiag_cookie
            // nlattr: INET_DIAG_REQ_BYTECODE
            24, 0,              // nla_len = 4 + 20
            1, 0,               // nla_type = INET_DIAG_REQ_BYTECODE
            11, 8, 12, 0, 0, 0, 0x0a, 0x1a, // S_EQ 6666
            1, 4, 12, 0,                    // JMP
            12, 8, 12, 0, 0, 0, 0x0a, 0x1a, // D_EQ 6666
        ];
        assert_eq!(bytes, expected);
        // And the tables read back what was written.
        assert_eq!(nlmsghdr::LEN.u32(&bytes), 96);
        let body = &bytes[16..];
        assert_eq!(v2::FAMILY.u8(body), layout::AF_INET);
        assert_eq!(v2::STATES.u32(body), 0xfff);
    }

    /// The exact question about one IPv4 connection, byte by byte: no
    /// NLM_F_DUMP, the 4-tuple in the socket id, INET_DIAG_NOCOOKIE.
    #[test]
    fn an_exact_question_names_the_four_tuple() {
        let info = SockInfo {
            family: layout::AF_INET,
            state: crate::tcp_state::TcpState::Established,
            local: "127.0.0.1:51230".parse().unwrap(),
            remote: "127.0.0.1:6666".parse().unwrap(),
            recv_q: 0,
            send_q: 0,
            timer: crate::diag::Timer::Off,
            expires_ms: 0,
            retrans: 0,
            uid: 0,
            inode: 0,
            cookie: 42,
            tcp_info: None,
        };
        let bytes = DiagRequest::exact(&info).to_bytes_exact(9);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            // nlmsghdr
            72, 0, 0, 0,        // nlmsg_len = 16 + 56
            20, 0,              // nlmsg_type = SOCK_DIAG_BY_FAMILY
            0x01, 0x00,         // nlmsg_flags = REQUEST only: one socket, not a dump
            9, 0, 0, 0,         // nlmsg_seq = 9
            0, 0, 0, 0,         // nlmsg_pid
            // inet_diag_req_v2
            2, 6, 0, 0,         // AF_INET, IPPROTO_TCP, no extensions, pad
            0xff, 0x0f, 0, 0,   // idiag_states (ignored by an exact question)
            0xc8, 0x1e,         // id.idiag_sport = 51230, big-endian
            0x1a, 0x0a,         // id.idiag_dport = 6666, big-endian
            127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // id.idiag_src
            127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // id.idiag_dst
            0, 0, 0, 0,         // id.idiag_if: any
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // INET_DIAG_NOCOOKIE
        ];
        assert_eq!(bytes, expected);
        // And the tables read back what was written.
        let body = &bytes[16..];
        assert_eq!(v2::SPORT.be16(body), 51230);
        assert_eq!(v2::DPORT.be16(body), 6666);
        assert_eq!(v2::COOKIE.u64(body), u64::MAX);
    }

    /// `(1 << TCP_CLOSING + 1) - 1` really is 0xfff.
    #[test]
    fn the_seed_mask_is_0xfff() {
        assert_eq!(SEED_STATE_MASK, 0xfff);
        let legacy = legacy_dump(layout::AF_INET, SEED_STATE_MASK, 1, &[]);
        assert_eq!(legacy.len(), 76);
        assert_eq!(nlmsghdr::TYPE.u16(&legacy), layout::TCPDIAG_GETSOCK);
        assert_eq!(nlmsghdr::FLAGS.u16(&legacy), 0x101);
        assert_eq!(inet_diag_req::STATES.u32(&legacy[16..]), 0xfff);
    }
}
