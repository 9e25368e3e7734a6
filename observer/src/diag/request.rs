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

use netlink_packet_core::Emitable;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};

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

    fn attr_len(&self) -> usize {
        if self.bytecode.is_empty() {
            0
        } else {
            layout::align(nlattr::LAYOUT.size + self.bytecode.len())
        }
    }

    /// The whole netlink message, header included, ready for send().
    pub fn to_bytes(&self, seq: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.flags = layout::NLM_F_REQUEST | layout::NLM_F_DUMP;
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
