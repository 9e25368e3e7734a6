//! The annotator: every field of a buffer, with its offset, bytes, value
//! and meaning, read through the tables in [`crate::layout`], the same tables
//! the parser reads fields through: what `explain` says a byte means is
//! what the observer takes it to mean.

use crate::diag::bytecode;
use crate::diag::parse::Message;
use crate::layout::{self, Field, Kind, Layout};
use crate::tcp_state::TcpState;

use super::render::wide;

/// One annotated field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Offset from the start of the buffer being explained.
    pub offset: usize,
    pub bytes: Vec<u8>,
    pub field: String,
    pub value: String,
    pub meaning: String,
}

/// What a field's value depends on besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// For addresses: AF_INET or AF_INET6.
    pub family: u8,
    /// Attribute types mean different things in requests and answers.
    pub request: bool,
    /// Flag bits mean different things in an acknowledgement (NLMSG_ERROR).
    pub ack: bool,
}

/// Decimal digits of the largest value a field of `size` bytes holds.
fn widest_decimal(size: usize) -> usize {
    match size {
        1 => 3,  // 255
        2 => 5,  // 65535
        4 => 10, // 4294967295
        _ => 20, // 18446744073709551615
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn family_name(f: u64) -> &'static str {
    match f as i32 {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_UNSPEC => "AF_UNSPEC",
        _ => "?",
    }
}

/// The states named by a mask, and what else is in it.
pub fn describe_mask(mask: u32) -> String {
    let names: Vec<&str> = TcpState::ALL
        .iter()
        .filter(|s| mask & s.bit() != 0)
        .map(|s| s.name())
        .collect();
    let mut text = if mask == 0 {
        "none".to_string()
    } else if names.len() == TcpState::ALL.len() {
        "every state".to_string()
    } else {
        names.join(" ")
    };
    if mask & 1 != 0 {
        text += " + bit 0 (no state has number 0)";
    }
    text
}

fn describe_ext(ext: u8) -> String {
    if ext == 0 {
        return "none".to_string();
    }
    (1..=8u16)
        .filter(|i| ext & (1 << (i - 1)) != 0)
        .map(layout::attr_name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value of one field, in words: the one place where bytes get meaning.
pub fn value_of(field: &Field, buf: &[u8], ctx: Ctx) -> String {
    let n = || match field.size {
        1 => field.u8(buf) as u64,
        2 => field.u16(buf) as u64,
        4 => field.u32(buf) as u64,
        8 => field.u64(buf),
        _ => 0,
    };
    // A number that changes from run to run keeps room for the widest
    // value of its size (see ROOM), a hex one for all its digits.
    let dec = |v: u64| wide(v, widest_decimal(field.size));
    let hexa = |v: u64| wide(format!("{v:#x}"), 2 + 2 * field.size);
    match field.kind {
        Kind::Int | Kind::Pad | Kind::Size => n().to_string(),
        Kind::Varies => dec(n()),
        Kind::Len => format!("{} bytes", n()),
        Kind::MsgType => {
            let t = n() as u16;
            format!("{t} {}", layout::msg_type_name(t))
        }
        Kind::NlFlags => {
            let f = n() as u16;
            let table = if ctx.ack {
                layout::NLM_ACK_FLAGS
            } else {
                layout::NLM_FLAGS
            };
            let names = layout::flag_names(f, table);
            if names.is_empty() {
                format!("{f:#x}: none")
            } else {
                format!("{f:#x} {}", names.join("|"))
            }
        }
        Kind::Family => format!("{} {}", n(), family_name(n())),
        Kind::Protocol => match n() as u8 {
            layout::IPPROTO_TCP => "6 IPPROTO_TCP".to_string(),
            p => p.to_string(),
        },
        Kind::TcpState => {
            let s = n() as u8;
            format!(
                "{s} {}",
                TcpState::from_kernel(s).map_or("?", TcpState::name)
            )
        }
        Kind::StateMask => format!("{:#x}: {}", n(), describe_mask(n() as u32)),
        Kind::Extensions => format!("{:#x}: {}", n(), describe_ext(n() as u8)),
        Kind::Timer => {
            let t = n() as u8;
            format!("{t} {}", layout::timer_name(t))
        }
        Kind::Port => dec(field.be16(buf).into()),
        Kind::Addr => field.addr(buf, ctx.family).to_string(),
        Kind::Millis => format!("{} ms", dec(n())),
        Kind::Cookie => {
            let c = field.u64(buf);
            if c == u64::MAX {
                "all ones: no cookie".to_string()
            } else {
                hexa(c)
            }
        }
        Kind::NegErrno => {
            let e = field.i32(buf);
            if e == 0 {
                "0: success (an ACK)".to_string()
            } else {
                let errno = nix::errno::Errno::from_raw(-e);
                format!("{e}: -{errno:?}, {}", errno.desc())
            }
        }
        Kind::PortId => match n() {
            0 => "0: the kernel".to_string(),
            p => format!("{}: a user-space socket", dec(p)),
        },
        Kind::Groups => format!("{:#x}", n()),
        Kind::AttrType => {
            let t = n() as u16;
            if ctx.request && t == layout::INET_DIAG_REQ_BYTECODE {
                format!("{t} INET_DIAG_REQ_BYTECODE")
            } else {
                format!("{t} {}", layout::attr_name(t))
            }
        }
        Kind::BcCode => {
            let c = n() as u8;
            format!("{c} {}", bytecode::op_name(c))
        }
        Kind::Jump => format!("{} bytes", n()),
        Kind::Pointer => hexa(n()),
    }
}

/// Annotate a struct laid out by `layout` at the start of `buf`; offsets
/// are reported from `base`.
pub fn annotate(layout: &Layout, buf: &[u8], base: usize, ctx: Ctx) -> Vec<Row> {
    layout
        .fields
        .iter()
        .filter(|f| f.offset + f.size <= buf.len())
        .map(|f| Row {
            offset: base + f.offset,
            bytes: f.bytes(buf).to_vec(),
            field: f.name.to_string(),
            value: value_of(f, buf, ctx),
            meaning: f.doc.to_string(),
        })
        .collect()
}

/// Rows for the attributes after a fixed struct (request or answer).
pub fn annotate_attrs(buf: &[u8], base: usize, ctx: Ctx) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut offset = 0;
    while buf.len() - offset >= layout::nlattr::LAYOUT.size {
        let attr = &buf[offset..];
        let len = layout::nlattr::LEN.u16(attr) as usize;
        if len < layout::nlattr::LAYOUT.size || len > attr.len() {
            break;
        }
        rows.extend(annotate(&layout::nlattr::LAYOUT, attr, base + offset, ctx));
        let kind = layout::nlattr::TYPE.u16(attr);
        let value = &attr[layout::nlattr::LAYOUT.size..len];
        let value_base = base + offset + layout::nlattr::LAYOUT.size;
        if ctx.request && kind == layout::INET_DIAG_REQ_BYTECODE {
            rows.extend(annotate_bytecode(value, value_base));
        } else {
            rows.push(Row {
                offset: value_base,
                bytes: value.to_vec(),
                field: "(value)".to_string(),
                value: attr_value(kind, value),
                meaning: String::new(),
            });
        }
        offset += layout::align(len);
    }
    rows
}

/// A few attribute values in words.
fn attr_value(kind: u16, value: &[u8]) -> String {
    let u = |n: usize| {
        value
            .get(..n)
            .map(|b| b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64))
    };
    match (layout::attr_name(kind), value.len()) {
        ("INET_DIAG_SHUTDOWN", 1) => {
            let how = ["none", "SHUT_RD", "SHUT_WR", "SHUT_RDWR"];
            format!(
                "{}: {}",
                value[0],
                how.get(value[0] as usize).unwrap_or(&"?")
            )
        }
        ("INET_DIAG_TOS" | "INET_DIAG_TCLASS" | "INET_DIAG_PROTOCOL" | "INET_DIAG_SKV6ONLY", 1) => {
            value[0].to_string()
        }
        ("INET_DIAG_MARK" | "INET_DIAG_CLASS_ID", 4) => u(4).unwrap_or(0).to_string(),
        ("INET_DIAG_CGROUP_ID", 8) => u(8).unwrap_or(0).to_string(),
        ("INET_DIAG_SOCKOPT", 2) => format!("{:#x}: socket option bits", u(2).unwrap_or(0)),
        ("INET_DIAG_CONG", _) => String::from_utf8_lossy(value)
            .trim_end_matches('\0')
            .to_string(),
        ("INET_DIAG_INFO", n) => format!("struct tcp_info, {n} bytes"),
        (_, n) => format!("{n} bytes"),
    }
}

/// One row per bytecode instruction, decoded.
fn annotate_bytecode(program: &[u8], base: usize) -> Vec<Row> {
    bytecode::decode(program)
        .into_iter()
        .map(|ins| Row {
            offset: base + ins.offset,
            bytes: program[ins.offset..ins.offset + ins.len].to_vec(),
            field: bytecode::op_name(ins.code)
                .trim_start_matches("INET_DIAG_")
                .to_string(),
            value: ins.describe(program.len()),
            meaning: "code, yes, no (+ operand)".to_string(),
        })
        .collect()
}

/// Rows for a whole netlink message from the kernel (header, body, attrs).
pub fn annotate_message(message: &Message<'_>, base: usize) -> Vec<Row> {
    let ctx = Ctx {
        family: message.payload.first().copied().unwrap_or(layout::AF_INET),
        request: false,
        ack: message.msg_type == layout::NLMSG_ERROR,
    };
    let mut rows = annotate(&layout::nlmsghdr::LAYOUT, message.bytes, base, ctx);
    let body_base = base + layout::NLMSG_HDRLEN;
    match message.msg_type {
        layout::SOCK_DIAG_BY_FAMILY | layout::TCPDIAG_GETSOCK => {
            let msg = &layout::inet_diag_msg::LAYOUT;
            rows.extend(annotate(msg, message.payload, body_base, ctx));
            if message.payload.len() > msg.size {
                rows.extend(annotate_attrs(
                    &message.payload[msg.size..],
                    body_base + msg.size,
                    ctx,
                ));
            }
        }
        layout::NLMSG_DONE if message.payload.len() >= 4 => {
            rows.push(Row {
                offset: body_base,
                bytes: message.payload[..4].to_vec(),
                field: "(int)".to_string(),
                value: layout::nlmsgerr::ERROR.i32(message.payload).to_string(),
                meaning: "the dump's result: 0, all sent".to_string(),
            });
        }
        layout::NLMSG_ERROR => {
            rows.extend(annotate(
                &layout::nlmsgerr::LAYOUT,
                message.payload,
                body_base,
                ctx,
            ));
            let copy = &message.payload[layout::nlmsgerr::LAYOUT.size..];
            if copy.len() >= layout::NLMSG_HDRLEN {
                let copy_base = body_base + layout::nlmsgerr::LAYOUT.size;
                let ours = Ctx { ack: false, ..ctx };
                for mut row in annotate(&layout::nlmsghdr::LAYOUT, copy, copy_base, ours) {
                    row.field = format!("msg.{}", row.field);
                    row.meaning = format!("our request's: {}", row.meaning);
                    rows.push(row);
                }
                let sent_len = layout::nlmsghdr::LEN.u32(copy) as usize;
                let payload_end = sent_len.min(copy.len());
                if payload_end > layout::NLMSG_HDRLEN {
                    rows.push(payload_row(
                        &copy[layout::NLMSG_HDRLEN..payload_end],
                        copy_base + layout::NLMSG_HDRLEN,
                    ));
                }
            }
        }
        _ => {}
    }
    rows
}

/// A payload of free bytes, shown as text where it is text.
pub fn payload_row(bytes: &[u8], offset: usize) -> Row {
    let text: String = bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    Row {
        offset,
        bytes: bytes.to_vec(),
        field: "(payload)".to_string(),
        value: format!("\"{text}\""),
        meaning: format!("{} bytes", bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::request::{self, DiagRequest};
    use crate::explain::render::{Section, printed, render_text};

    const V4: Ctx = Ctx {
        family: layout::AF_INET,
        request: false,
        ack: false,
    };

    fn lines(rows: &[Row]) -> Vec<String> {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {} {} = {}",
                    r.offset,
                    hex(&r.bytes),
                    r.field,
                    printed(&r.value)
                )
            })
            .collect()
    }

    /// struct nlmsghdr of a dump request, golden.
    #[test]
    fn nlmsghdr_golden() {
        #[rustfmt::skip]
        let bytes: [u8; 16] = [
            0x48, 0, 0, 0,  // nlmsg_len = 72
            20, 0,          // nlmsg_type = SOCK_DIAG_BY_FAMILY
            0x01, 0x03,     // nlmsg_flags = REQUEST | ROOT | MATCH
            9, 0, 0, 0,     // nlmsg_seq = 9
            0, 0, 0, 0,     // nlmsg_pid = 0
        ];
        assert_eq!(
            lines(&annotate(&layout::nlmsghdr::LAYOUT, &bytes, 0, V4)),
            vec![
                "0 48 00 00 00 nlmsg_len = 72 bytes",
                "4 14 00 nlmsg_type = 20 SOCK_DIAG_BY_FAMILY",
                "6 01 03 nlmsg_flags = 0x301 NLM_F_REQUEST|NLM_F_ROOT|NLM_F_MATCH",
                "8 09 00 00 00 nlmsg_seq = 9",
                "12 00 00 00 00 nlmsg_pid = 0",
            ]
        );
        // Emit: the same header built field by field.
        let mut built = [0u8; 16];
        layout::nlmsghdr::LEN.put(&mut built, 72);
        layout::nlmsghdr::TYPE.put(&mut built, layout::SOCK_DIAG_BY_FAMILY.into());
        layout::nlmsghdr::FLAGS.put(
            &mut built,
            (layout::NLM_F_REQUEST | layout::NLM_F_DUMP).into(),
        );
        layout::nlmsghdr::SEQ.put(&mut built, 9);
        assert_eq!(built, bytes);
    }

    /// struct inet_diag_req_v2, golden (emitted by netlink-packet-sock-diag).
    #[test]
    fn inet_diag_req_v2_golden() {
        let request = DiagRequest::dump(layout::AF_INET6, 0xfff, 0, Vec::new()).to_bytes(1);
        let rows = annotate(
            &layout::inet_diag_req_v2::LAYOUT,
            &request[16..],
            16,
            Ctx {
                family: layout::AF_INET6,
                request: true,
                ack: false,
            },
        );
        let text = lines(&rows);
        assert_eq!(text[0], "16 0a sdiag_family = 10 AF_INET6");
        assert_eq!(text[1], "17 06 sdiag_protocol = 6 IPPROTO_TCP");
        assert_eq!(text[2], "18 00 idiag_ext = 0x0: none");
        assert_eq!(
            text[4],
            "20 ff 0f 00 00 idiag_states = 0xfff: ESTABLISHED SYN_SENT SYN_RECV FIN_WAIT1 FIN_WAIT2 \
             TIME_WAIT CLOSE CLOSE_WAIT LAST_ACK LISTEN CLOSING + bit 0 (no state has number 0)"
        );
        assert_eq!(
            text[7],
            "28 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 id.idiag_src = ::"
        );
        assert_eq!(rows.len(), 11);
    }

    /// The seed's struct inet_diag_req, golden.
    #[test]
    fn inet_diag_req_legacy_golden() {
        let request = request::legacy_dump(layout::AF_INET, request::SEED_STATE_MASK, 1, &[]);
        let header = lines(&annotate(&layout::nlmsghdr::LAYOUT, &request, 0, V4));
        assert_eq!(header[1], "4 12 00 nlmsg_type = 18 TCPDIAG_GETSOCK");
        assert_eq!(
            header[2],
            "6 01 01 nlmsg_flags = 0x101 NLM_F_REQUEST|NLM_F_ROOT"
        );
        let body = lines(&annotate(
            &layout::inet_diag_req::LAYOUT,
            &request[16..],
            16,
            V4,
        ));
        assert_eq!(body[0], "16 02 idiag_family = 2 AF_INET");
        assert!(
            body[10].starts_with("68 ff 0f 00 00 idiag_states = 0xfff"),
            "{}",
            body[10]
        );
        assert_eq!(body[11], "72 00 00 00 00 idiag_dbs = 0");
    }

    /// struct inet_diag_msg: the TIME_WAIT fixture of the parser, explained.
    #[test]
    fn inet_diag_msg_golden() {
        let bytes = crate::diag::parse::tests::TIME_WAIT_MSG;
        let text = lines(&annotate(&layout::inet_diag_msg::LAYOUT, &bytes, 0, V4));
        assert_eq!(
            text,
            vec![
                "0 02 idiag_family = 2 AF_INET",
                "1 06 idiag_state = 6 TIME_WAIT",
                "2 03 idiag_timer = 3 timewait",
                "3 00 idiag_retrans = 0",
                "4 1a 0a id.idiag_sport = 6666",
                "6 c8 1e id.idiag_dport = 51230",
                "8 7f 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 id.idiag_src = 127.0.0.1",
                "24 7f 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 id.idiag_dst = 127.0.0.1",
                "40 00 00 00 00 id.idiag_if = 0",
                "44 2a 00 00 00 00 00 00 00 id.idiag_cookie = 0x2a",
                "52 60 e3 00 00 idiag_expires = 58208 ms",
                "56 00 00 00 00 idiag_rqueue = 0",
                "60 00 00 00 00 idiag_wqueue = 0",
                "64 00 00 00 00 idiag_uid = 0",
                "68 00 00 00 00 idiag_inode = 0",
            ]
        );
    }

    /// An attribute (nlattr) and the bytecode program inside it, golden.
    #[test]
    fn nlattr_and_bytecode_golden() {
        let program = bytecode::port_filter(6666);
        let mut attr = vec![0u8; 4];
        layout::nlattr::LEN.put(&mut attr, 24);
        layout::nlattr::TYPE.put(&mut attr, 1);
        attr.extend_from_slice(&program);
        let text = lines(&annotate_attrs(
            &attr,
            0,
            Ctx {
                family: layout::AF_INET,
                request: true,
                ack: false,
            },
        ));
        assert_eq!(
            text,
            vec![
                "0 18 00 nla_len = 24 bytes",
                "2 01 00 nla_type = 1 INET_DIAG_REQ_BYTECODE",
                "4 0b 08 0c 00 00 00 0a 1a BC_S_EQ = if local port == 6666 goto 8 else goto 12",
                "12 01 04 0c 00 BC_JMP = if jump (false) goto 12 else goto 20 (the end: accept)",
                "16 0c 08 0c 00 00 00 0a 1a BC_D_EQ = if remote port == 6666 goto 20 (the end: accept) else goto 24 (past the end: reject)",
            ]
        );
        // In an answer, type 1 is INET_DIAG_MEMINFO, not the bytecode.
        let answer = lines(&annotate(&layout::nlattr::LAYOUT, &attr, 0, V4));
        assert_eq!(answer[1], "2 01 00 nla_type = 1 INET_DIAG_MEMINFO");
    }

    /// struct nlmsgerr and struct sockaddr_nl, golden.
    #[test]
    fn nlmsgerr_and_sockaddr_nl_golden() {
        let err = (-22i32).to_ne_bytes();
        let text = lines(&annotate(&layout::nlmsgerr::LAYOUT, &err, 16, V4));
        assert_eq!(
            text,
            vec!["16 ea ff ff ff error = -22: -EINVAL, Invalid argument"]
        );
        #[rustfmt::skip]
        let sockaddr: [u8; 12] = [
            16, 0,       // nl_family = AF_NETLINK
            0, 0,        // nl_pad
            0, 0, 0, 0,  // nl_pid = 0: the kernel
            0, 0, 0, 0,  // nl_groups = 0
        ];
        let text = lines(&annotate(&layout::sockaddr_nl::LAYOUT, &sockaddr, 0, V4));
        assert_eq!(text[0], "0 10 00 nl_family = 16 AF_NETLINK");
        assert_eq!(text[2], "4 00 00 00 00 nl_pid = 0: the kernel");
    }

    /// The text fits 80 columns, whatever the values.
    #[test]
    fn text_fits_80_columns() {
        let bytes = crate::diag::parse::tests::TIME_WAIT_MSG;
        let section = Section {
            title: "a title".into(),
            rows: annotate(&layout::inet_diag_msg::LAYOUT, &bytes, 0, V4),
            notes: vec!["a long note ".repeat(20)],
        };
        for line in render_text(&[section]).lines() {
            assert!(line.chars().count() <= 80, "{line}");
        }
    }
}
