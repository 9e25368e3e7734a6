//! The byte layouts of the structures we exchange with the kernel, written
//! as tables, as in the kernel headers.
//!
//! One table per C struct: each [`Field`] has the kernel's name, offset,
//! size, how to read it and what it means. The parser reads every fixed
//! field through these tables (`inet_diag_msg::STATE.u8(bytes)`), and
//! `observer explain` prints the same tables next to the bytes: the
//! annotation cannot drift from the parsing, because it is the parsing.
//!
//! Sources: `include/uapi/linux/netlink.h`, `include/uapi/linux/inet_diag.h`,
//! `include/uapi/linux/sock_diag.h`. All integers are in host byte order
//! (little-endian here) except ports and addresses, which are in network
//! byte order (big-endian), as on the wire.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How to read and show a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plain unsigned integer in host byte order.
    Int,
    /// The same, but a number that changes from machine to machine or run
    /// to run (an inode, a user id, a queue's bytes): shown with room for
    /// its widest value, so that its width never moves a line break.
    Varies,
    /// A length in bytes.
    Len,
    /// `nlmsg_type`: a netlink message type, shown by name.
    MsgType,
    /// `nlmsg_flags`: each bit by name.
    NlFlags,
    /// An address family (AF_INET = 2, AF_INET6 = 10).
    Family,
    /// An IP protocol number (IPPROTO_TCP = 6).
    Protocol,
    /// A TCP state number (tcp_states.h).
    TcpState,
    /// A bitmask of TCP states (`1 << state`).
    StateMask,
    /// `idiag_ext`: a bitmask of requested attributes (`1 << (INET_DIAG_x - 1)`).
    Extensions,
    /// `idiag_timer`: which timer is pending.
    Timer,
    /// A port, big-endian.
    Port,
    /// An IPv4 or IPv6 address, 16 bytes, big-endian; IPv4 uses the first 4.
    Addr,
    /// A duration in milliseconds.
    Millis,
    /// A socket cookie: two u32, opaque; all ones means "none".
    Cookie,
    /// An errno, negated (`nlmsgerr.error`).
    NegErrno,
    /// Padding or reserved.
    Pad,
    /// A netlink port id (0 is the kernel).
    PortId,
    /// Multicast group bitmask.
    Groups,
    /// `nla_type` of an inet_diag attribute.
    AttrType,
    /// An inet_diag bytecode op code.
    BcCode,
    /// A byte offset to jump by, relative to this op.
    Jump,
    /// A user-space address (msghdr, iovec: never seen by the kernel as such).
    Pointer,
    /// A size_t count.
    Size,
}

/// One field of a C struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The kernel's name for it.
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
    pub kind: Kind,
    /// What it means, in a few words.
    pub doc: &'static str,
}

impl Field {
    const fn new(
        name: &'static str,
        offset: usize,
        size: usize,
        kind: Kind,
        doc: &'static str,
    ) -> Field {
        Field {
            name,
            offset,
            size,
            kind,
            doc,
        }
    }

    /// The bytes of this field inside `buf` (which starts at the struct).
    pub fn bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.offset..self.offset + self.size]
    }

    pub fn u8(&self, buf: &[u8]) -> u8 {
        buf[self.offset]
    }

    /// A 16-bit field in host byte order.
    pub fn u16(&self, buf: &[u8]) -> u16 {
        u16::from_ne_bytes(self.bytes(buf).try_into().expect("2-byte field"))
    }

    /// A 16-bit field in network byte order (ports).
    pub fn be16(&self, buf: &[u8]) -> u16 {
        u16::from_be_bytes(self.bytes(buf).try_into().expect("2-byte field"))
    }

    pub fn u32(&self, buf: &[u8]) -> u32 {
        u32::from_ne_bytes(self.bytes(buf).try_into().expect("4-byte field"))
    }

    pub fn i32(&self, buf: &[u8]) -> i32 {
        i32::from_ne_bytes(self.bytes(buf).try_into().expect("4-byte field"))
    }

    pub fn u64(&self, buf: &[u8]) -> u64 {
        u64::from_ne_bytes(self.bytes(buf).try_into().expect("8-byte field"))
    }

    /// A 16-byte address field, read for `family`.
    pub fn addr(&self, buf: &[u8], family: u8) -> IpAddr {
        let raw: [u8; 16] = self.bytes(buf).try_into().expect("16-byte field");
        if family == AF_INET6 {
            IpAddr::V6(Ipv6Addr::from(raw))
        } else {
            IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
        }
    }

    /// The same integer written into `buf` (for building fixtures).
    pub fn put(&self, buf: &mut [u8], value: u64) {
        let bytes = value.to_ne_bytes();
        buf[self.offset..self.offset + self.size].copy_from_slice(&bytes[..self.size]);
    }

    pub fn put_be16(&self, buf: &mut [u8], value: u16) {
        buf[self.offset..self.offset + 2].copy_from_slice(&value.to_be_bytes());
    }

    pub fn put_addr(&self, buf: &mut [u8], addr: IpAddr) {
        let slot = &mut buf[self.offset..self.offset + 16];
        slot.fill(0);
        match addr {
            IpAddr::V4(a) => slot[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => slot.copy_from_slice(&a.octets()),
        }
    }
}

/// A C struct: its name, size, and fields in order.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [Field],
}

pub const AF_INET: u8 = libc::AF_INET as u8;
pub const AF_INET6: u8 = libc::AF_INET6 as u8;
pub const IPPROTO_TCP: u8 = libc::IPPROTO_TCP as u8;

/// `struct nlmsghdr` (netlink.h): the 16-byte header of every netlink message.
#[rustfmt::skip]
pub mod nlmsghdr {
    use super::{Field, Kind, Layout};
    pub const LEN:   Field = Field::new("nlmsg_len",    0, 4, Kind::Len,     "length of the message, header included");
    pub const TYPE:  Field = Field::new("nlmsg_type",   4, 2, Kind::MsgType, "what the message is");
    pub const FLAGS: Field = Field::new("nlmsg_flags",  6, 2, Kind::NlFlags, "request, dump, multipart...");
    pub const SEQ:   Field = Field::new("nlmsg_seq",    8, 4, Kind::Int,     "sequence number, echoed back by the kernel");
    pub const PID:   Field = Field::new("nlmsg_pid",   12, 4, Kind::Varies,  "port id: in a request ours (0: the kernel fills it in), in an answer the receiver's");
    pub const LAYOUT: Layout = Layout {
        name: "struct nlmsghdr",
        size: 16,
        fields: &[LEN, TYPE, FLAGS, SEQ, PID],
    };
}

/// `struct inet_diag_req_v2` (inet_diag.h): the dump request, 56 bytes.
#[rustfmt::skip]
pub mod inet_diag_req_v2 {
    use super::{Field, Kind, Layout};
    pub const FAMILY: Field = Field::new("sdiag_family",     0,  1, Kind::Family,     "which sockets: AF_INET or AF_INET6");
    pub const PROTOCOL: Field =
        Field::new("sdiag_protocol", 1, 1, Kind::Protocol, "which transport");
    pub const EXT:    Field = Field::new("idiag_ext",        2,  1, Kind::Extensions, "attributes to add to each answer");
    pub const PAD:    Field = Field::new("pad",              3,  1, Kind::Pad,        "padding");
    pub const STATES: Field = Field::new("idiag_states",     4,  4, Kind::StateMask,  "which TCP states, 1 << state");
    pub const SPORT:  Field = Field::new("id.idiag_sport",   8,  2, Kind::Port,       "source port (0: any, in a dump)");
    pub const DPORT:  Field = Field::new("id.idiag_dport",  10,  2, Kind::Port,       "destination port");
    pub const SRC:    Field = Field::new("id.idiag_src",    12, 16, Kind::Addr,       "source address");
    pub const DST:    Field = Field::new("id.idiag_dst",    28, 16, Kind::Addr,       "destination address");
    pub const IF:     Field = Field::new("id.idiag_if",     44,  4, Kind::Int,        "interface index");
    pub const COOKIE: Field = Field::new("id.idiag_cookie", 48,  8, Kind::Cookie,     "socket cookie (ignored in a dump)");
    pub const LAYOUT: Layout = Layout {
        name: "struct inet_diag_req_v2",
        size: 56,
        fields: &[
            FAMILY, PROTOCOL, EXT, PAD, STATES, SPORT, DPORT, SRC, DST, IF, COOKIE,
        ],
    };
}

/// `struct inet_diag_req` (inet_diag.h): the old request of the seed's
/// era (message type TCPDIAG_GETSOCK), 60 bytes. No protocol field: the
/// message type says TCP.
#[rustfmt::skip]
pub mod inet_diag_req {
    use super::{Field, Kind, Layout};
    pub const FAMILY:  Field = Field::new("idiag_family",     0,  1, Kind::Family,     "AF_INET or AF_INET6");
    pub const SRC_LEN: Field = Field::new("idiag_src_len",    1,  1, Kind::Int,        "source prefix length (unused)");
    pub const DST_LEN: Field = Field::new("idiag_dst_len",    2,  1, Kind::Int,        "destination prefix length (unused)");
    pub const EXT:     Field = Field::new("idiag_ext",        3,  1, Kind::Extensions, "attributes to add to each answer");
    pub const SPORT:   Field = Field::new("id.idiag_sport",   4,  2, Kind::Port,       "source port");
    pub const DPORT:   Field = Field::new("id.idiag_dport",   6,  2, Kind::Port,       "destination port");
    pub const SRC:     Field = Field::new("id.idiag_src",     8, 16, Kind::Addr,       "source address");
    pub const DST:     Field = Field::new("id.idiag_dst",    24, 16, Kind::Addr,       "destination address");
    pub const IF:      Field = Field::new("id.idiag_if",     40,  4, Kind::Int,        "interface index");
    pub const COOKIE:  Field = Field::new("id.idiag_cookie", 44,  8, Kind::Cookie,     "socket cookie");
    pub const STATES:  Field = Field::new("idiag_states",    52,  4, Kind::StateMask,  "which TCP states, 1 << state");
    pub const DBS:     Field = Field::new("idiag_dbs",       56,  4, Kind::Int,        "tables to dump (unused)");
    pub const LAYOUT: Layout = Layout {
        name: "struct inet_diag_req",
        size: 60,
        fields: &[
            FAMILY, SRC_LEN, DST_LEN, EXT, SPORT, DPORT, SRC, DST, IF, COOKIE, STATES, DBS,
        ],
    };
}

/// `struct inet_diag_msg` (inet_diag.h): one socket in the answer, 72 bytes.
#[rustfmt::skip]
pub mod inet_diag_msg {
    use super::{Field, Kind, Layout};
    pub const FAMILY:  Field = Field::new("idiag_family",     0,  1, Kind::Family,   "address family");
    pub const STATE:   Field = Field::new("idiag_state",      1,  1, Kind::TcpState, "TCP state");
    pub const TIMER:   Field = Field::new("idiag_timer",      2,  1, Kind::Timer,    "pending timer");
    pub const RETRANS: Field = Field::new("idiag_retrans",    3,  1, Kind::Int,      "retransmissions (or TIME_WAIT: 0)");
    pub const SPORT:   Field = Field::new("id.idiag_sport",   4,  2, Kind::Port,     "local port");
    pub const DPORT:   Field = Field::new("id.idiag_dport",   6,  2, Kind::Port,     "remote port");
    pub const SRC:     Field = Field::new("id.idiag_src",     8, 16, Kind::Addr,     "local address");
    pub const DST:     Field = Field::new("id.idiag_dst",    24, 16, Kind::Addr,     "remote address");
    pub const IF:      Field = Field::new("id.idiag_if",     40,  4, Kind::Int,      "bound interface (0: none)");
    pub const COOKIE:  Field = Field::new("id.idiag_cookie", 44,  8, Kind::Cookie,   "socket cookie: unique per socket");
    pub const EXPIRES: Field = Field::new("idiag_expires",   52,  4, Kind::Millis,   "time until the timer fires");
    pub const RQUEUE:  Field = Field::new("idiag_rqueue",    56,  4, Kind::Varies,   "Recv-Q: unread bytes (LISTEN: accept queue)");
    pub const WQUEUE:  Field = Field::new("idiag_wqueue",    60,  4, Kind::Varies,   "Send-Q: unacked bytes (LISTEN: backlog)");
    pub const UID:     Field = Field::new("idiag_uid",       64,  4, Kind::Varies,   "owner's user id");
    pub const INODE:   Field = Field::new("idiag_inode",     68,  4, Kind::Varies,   "inode of the socket (0: no file)");
    pub const LAYOUT: Layout = Layout {
        name: "struct inet_diag_msg",
        size: 72,
        fields: &[
            FAMILY, STATE, TIMER, RETRANS, SPORT, DPORT, SRC, DST, IF, COOKIE, EXPIRES, RQUEUE,
            WQUEUE, UID, INODE,
        ],
    };
}

/// `struct nlattr` (netlink.h): the 4-byte header of an attribute; the
/// value follows, padded to 4 bytes.
#[rustfmt::skip]
pub mod nlattr {
    use super::{Field, Kind, Layout};
    pub const LEN:  Field = Field::new("nla_len",  0, 2, Kind::Len,      "header + value, without padding");
    pub const TYPE: Field = Field::new("nla_type", 2, 2, Kind::AttrType, "which attribute");
    pub const LAYOUT: Layout = Layout {
        name: "struct nlattr",
        size: 4,
        fields: &[LEN, TYPE],
    };
}

/// `struct inet_diag_bc_op` (inet_diag.h): one bytecode instruction.
#[rustfmt::skip]
pub mod inet_diag_bc_op {
    use super::{Field, Kind, Layout};
    pub const CODE: Field = Field::new("code", 0, 1, Kind::BcCode, "the test");
    pub const YES:  Field = Field::new("yes",  1, 1, Kind::Jump,   "if true, jump this many bytes");
    pub const NO:   Field = Field::new("no",   2, 2, Kind::Jump,   "if false, jump this many bytes");
    pub const LAYOUT: Layout = Layout {
        name: "struct inet_diag_bc_op",
        size: 4,
        fields: &[CODE, YES, NO],
    };
}

/// `struct nlmsgerr` (netlink.h): the body of NLMSG_ERROR: an errno (0
/// for an ACK) and the header of the request it answers (or all of it).
#[rustfmt::skip]
pub mod nlmsgerr {
    use super::{Field, Kind, Layout};
    pub const ERROR: Field = Field::new("error", 0, 4, Kind::NegErrno, "-errno, or 0 for an ACK");
    pub const LAYOUT: Layout = Layout {
        name: "struct nlmsgerr",
        size: 4,
        fields: &[ERROR],
    };
}

/// `struct sockaddr_nl` (netlink.h): a netlink address, 12 bytes.
#[rustfmt::skip]
pub mod sockaddr_nl {
    use super::{Field, Kind, Layout};
    pub const FAMILY: Field = Field::new("nl_family", 0, 2, Kind::Family, "a netlink address");
    pub const PAD:    Field = Field::new("nl_pad",    2, 2, Kind::Pad,    "zero");
    pub const PID:    Field = Field::new("nl_pid",    4, 4, Kind::PortId, "port id: 0 is the kernel");
    pub const GROUPS: Field = Field::new("nl_groups", 8, 4, Kind::Groups, "multicast groups (0: none)");
    pub const LAYOUT: Layout = Layout {
        name: "struct sockaddr_nl",
        size: 12,
        fields: &[FAMILY, PAD, PID, GROUPS],
    };
}

/// `struct msghdr` (socket.h), as laid out on a 64-bit Linux: the envelope
/// sendmsg() takes. It lives in our memory; the kernel copies it in and
/// follows its pointers.
#[cfg(target_pointer_width = "64")]
#[rustfmt::skip]
pub mod msghdr {
    use super::{Field, Kind, Layout};
    pub const NAME:       Field = Field::new("msg_name",        0, 8, Kind::Pointer, "-> the destination address");
    pub const NAMELEN:    Field = Field::new("msg_namelen",     8, 4, Kind::Len,     "its size");
    pub const PAD:        Field = Field::new("(padding)",      12, 4, Kind::Pad,     "alignment of the next pointer");
    pub const IOV:        Field = Field::new("msg_iov",        16, 8, Kind::Pointer, "-> an array of iovec");
    pub const IOVLEN:     Field = Field::new("msg_iovlen",     24, 8, Kind::Size,    "how many iovec");
    pub const CONTROL: Field =
        Field::new("msg_control", 32, 8, Kind::Pointer, "ancillary data (none)");
    pub const CONTROLLEN: Field = Field::new("msg_controllen", 40, 8, Kind::Size,    "its size");
    pub const FLAGS:      Field = Field::new("msg_flags",      48, 4, Kind::Int,     "set by recvmsg only");
    pub const LAYOUT: Layout = Layout {
        name: "struct msghdr",
        size: 56,
        fields: &[NAME, NAMELEN, PAD, IOV, IOVLEN, CONTROL, CONTROLLEN, FLAGS],
    };
}

/// `struct iovec` (uio.h): one piece of the data to send.
#[cfg(target_pointer_width = "64")]
#[rustfmt::skip]
pub mod iovec {
    use super::{Field, Kind, Layout};
    pub const BASE: Field = Field::new("iov_base", 0, 8, Kind::Pointer, "-> the netlink message");
    pub const LEN:  Field = Field::new("iov_len",  8, 8, Kind::Size,    "its length in bytes");
    pub const LAYOUT: Layout = Layout {
        name: "struct iovec",
        size: 16,
        fields: &[BASE, LEN],
    };
}

/// Netlink message types we meet (netlink.h, sock_diag.h, inet_diag.h).
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
/// The seed's request type: `TCPDIAG_GETSOCK`, alias `INET_DIAG_GETSOCK_MIN`.
pub const TCPDIAG_GETSOCK: u16 = 18;
pub const DCCPDIAG_GETSOCK: u16 = 19;
/// Today's request type, for every family and protocol.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
pub const SOCK_DESTROY: u16 = 21;

pub fn msg_type_name(t: u16) -> &'static str {
    match t {
        NLMSG_NOOP => "NLMSG_NOOP",
        NLMSG_ERROR => "NLMSG_ERROR",
        NLMSG_DONE => "NLMSG_DONE",
        4 => "NLMSG_OVERRUN",
        TCPDIAG_GETSOCK => "TCPDIAG_GETSOCK",
        DCCPDIAG_GETSOCK => "DCCPDIAG_GETSOCK",
        SOCK_DIAG_BY_FAMILY => "SOCK_DIAG_BY_FAMILY",
        SOCK_DESTROY => "SOCK_DESTROY",
        _ => "(a type nobody here handles)",
    }
}

/// `nlmsg_flags` bits (netlink.h). The same bit means different things in
/// a GET request (ROOT, MATCH) and a NEW request (REPLACE, EXCL); these
/// are the GET meanings, the ones a dump uses.
pub const NLM_FLAGS: &[(u16, &str)] = &[
    (0x01, "NLM_F_REQUEST"),
    (0x02, "NLM_F_MULTI"),
    (0x04, "NLM_F_ACK"),
    (0x08, "NLM_F_ECHO"),
    (0x10, "NLM_F_DUMP_INTR"),
    (0x20, "NLM_F_DUMP_FILTERED"),
    (0x100, "NLM_F_ROOT"),
    (0x200, "NLM_F_MATCH"),
    (0x400, "NLM_F_ATOMIC"),
];
pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
/// NLM_F_ROOT | NLM_F_MATCH: "give me everything".
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;

/// In an NLMSG_ERROR answer: only the request's header was copied back
/// (NETLINK_CAP_ACK), or extended ACK attributes follow.
pub const NLM_F_CAPPED: u16 = 0x100;
pub const NLM_F_ACK_TLVS: u16 = 0x200;

/// In an NLMSG_ERROR (an acknowledgement), bits 0x100 and 0x200 mean
/// something else (netlink.h, "Flags for ACK message").
pub const NLM_ACK_FLAGS: &[(u16, &str)] = &[
    (0x01, "NLM_F_REQUEST"),
    (0x02, "NLM_F_MULTI"),
    (0x100, "NLM_F_CAPPED"),
    (0x200, "NLM_F_ACK_TLVS"),
];

pub fn flag_names(flags: u16, table: &[(u16, &'static str)]) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, name)| *name)
        .collect()
}

/// inet_diag attribute types (`enum { INET_DIAG_NONE, ... }`, inet_diag.h).
pub const INET_DIAG_ATTRS: &[&str] = &[
    "INET_DIAG_NONE",
    "INET_DIAG_MEMINFO",
    "INET_DIAG_INFO",
    "INET_DIAG_VEGASINFO",
    "INET_DIAG_CONG",
    "INET_DIAG_TOS",
    "INET_DIAG_TCLASS",
    "INET_DIAG_SKMEMINFO",
    "INET_DIAG_SHUTDOWN",
    "INET_DIAG_DCTCPINFO",
    "INET_DIAG_PROTOCOL",
    "INET_DIAG_SKV6ONLY",
    "INET_DIAG_LOCALS",
    "INET_DIAG_PEERS",
    "INET_DIAG_PAD",
    "INET_DIAG_MARK",
    "INET_DIAG_BBRINFO",
    "INET_DIAG_CLASS_ID",
    "INET_DIAG_MD5SIG",
    "INET_DIAG_ULP_INFO",
    "INET_DIAG_SK_BPF_STORAGES",
    "INET_DIAG_CGROUP_ID",
    "INET_DIAG_SOCKOPT",
];

pub fn attr_name(t: u16) -> &'static str {
    INET_DIAG_ATTRS.get(t as usize).copied().unwrap_or("?")
}

/// In a *request*, attribute type 1 is not MEMINFO but the filter program.
pub const INET_DIAG_REQ_BYTECODE: u16 = 1;

/// `idiag_timer` values (inet_diag_msg documentation, net/ipv4/inet_diag.c).
pub fn timer_name(t: u8) -> &'static str {
    match t {
        0 => "off",
        1 => "on",
        2 => "keepalive",
        3 => "timewait",
        4 => "persist",
        _ => "?",
    }
}

/// Sock-diag multicast groups (`enum sknetlink_groups`, sock_diag.h): join
/// one to be told each time a socket of that kind is destroyed.
pub const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
pub const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;

/// The size of a netlink message header and alignment.
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_ALIGNTO: usize = 4;

/// `NLMSG_ALIGN` / `NLA_ALIGN`: round up to a multiple of 4.
pub const fn align(len: usize) -> usize {
    (len + NLMSG_ALIGNTO - 1) & !(NLMSG_ALIGNTO - 1)
}
