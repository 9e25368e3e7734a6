//! `observer explain`: one real inet_diag conversation, byte by byte.
//!
//! The seed teaches netlink in three steps: the structures (`sockaddr_nl`,
//! `msghdr`, `iovec`, `nlmsghdr`), a request sent with sendmsg(), and the
//! `NLMSG_OK`/`NLMSG_NEXT` loop over the answer. This command performs that
//! conversation with the kernel and prints every byte it sent and the
//! first messages it got back, each field with its offset, bytes, value
//! and meaning.
//!
//! Every annotation is produced by [`annotate`] from the tables in
//! [`crate::wire`], the same tables the parser reads fields through: what
//! `explain` says a byte means is what the observer takes it to mean.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::diag::bytecode;
use crate::diag::parse::{self, Message};
use crate::diag::request::{self, DiagRequest};
use crate::diag::{DiagError, DiagSocket};
use crate::tcp_state::TcpState;
use crate::wire::{self, Field, Kind, Layout};

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

/// A titled group of rows, with notes in prose.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
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

/// Room kept beside a number whose width changes from run to run.
///
/// An inode is 5 digits on one machine and 9 on another, a port id is a
/// pid. Were the text around such a number wrapped by its printed width,
/// a line would break at a different word on each machine, and a lesson
/// that shows the output could not be checked. So a number keeps room for
/// its widest form: [`wide`] pads it with this character, which [`wrap`]
/// counts like any other and [`printed`] removes before anything is shown.
/// The lines then break where they would for the widest number, whatever
/// the number is (a shorter one leaves its line a little short).
const ROOM: char = '\u{E000}';

/// `n` with room for `widest` characters (see [`ROOM`]).
pub fn wide(n: impl std::fmt::Display, widest: usize) -> String {
    let mut text = n.to_string();
    let room = widest.saturating_sub(text.chars().count());
    text.extend(std::iter::repeat_n(ROOM, room));
    text
}

/// The text as shown: without the room kept by [`wide`].
pub fn printed(text: &str) -> String {
    text.replace(ROOM, "")
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

fn hex(bytes: &[u8]) -> String {
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
        .map(wire::attr_name)
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
            format!("{t} {}", wire::msg_type_name(t))
        }
        Kind::NlFlags => {
            let f = n() as u16;
            let table = if ctx.ack {
                wire::NLM_ACK_FLAGS
            } else {
                wire::NLM_FLAGS
            };
            let names = wire::flag_names(f, table);
            if names.is_empty() {
                format!("{f:#x}: none")
            } else {
                format!("{f:#x} {}", names.join("|"))
            }
        }
        Kind::Family => format!("{} {}", n(), family_name(n())),
        Kind::Protocol => match n() as u8 {
            wire::IPPROTO_TCP => "6 IPPROTO_TCP".to_string(),
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
            format!("{t} {}", wire::timer_name(t))
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
            if ctx.request && t == wire::INET_DIAG_REQ_BYTECODE {
                format!("{t} INET_DIAG_REQ_BYTECODE")
            } else {
                format!("{t} {}", wire::attr_name(t))
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
    while buf.len() - offset >= wire::nlattr::LAYOUT.size {
        let attr = &buf[offset..];
        let len = wire::nlattr::LEN.u16(attr) as usize;
        if len < wire::nlattr::LAYOUT.size || len > attr.len() {
            break;
        }
        rows.extend(annotate(&wire::nlattr::LAYOUT, attr, base + offset, ctx));
        let kind = wire::nlattr::TYPE.u16(attr);
        let value = &attr[wire::nlattr::LAYOUT.size..len];
        let value_base = base + offset + wire::nlattr::LAYOUT.size;
        if ctx.request && kind == wire::INET_DIAG_REQ_BYTECODE {
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
        offset += wire::align(len);
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
    match (wire::attr_name(kind), value.len()) {
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
        family: message.payload.first().copied().unwrap_or(wire::AF_INET),
        request: false,
        ack: message.msg_type == wire::NLMSG_ERROR,
    };
    let mut rows = annotate(&wire::nlmsghdr::LAYOUT, message.bytes, base, ctx);
    let body_base = base + wire::NLMSG_HDRLEN;
    match message.msg_type {
        wire::SOCK_DIAG_BY_FAMILY | wire::TCPDIAG_GETSOCK => {
            let msg = &wire::inet_diag_msg::LAYOUT;
            rows.extend(annotate(msg, message.payload, body_base, ctx));
            if message.payload.len() > msg.size {
                rows.extend(annotate_attrs(
                    &message.payload[msg.size..],
                    body_base + msg.size,
                    ctx,
                ));
            }
        }
        wire::NLMSG_DONE if message.payload.len() >= 4 => {
            rows.push(Row {
                offset: body_base,
                bytes: message.payload[..4].to_vec(),
                field: "(int)".to_string(),
                value: wire::nlmsgerr::ERROR.i32(message.payload).to_string(),
                meaning: "the dump's result: 0, all sent".to_string(),
            });
        }
        wire::NLMSG_ERROR => {
            rows.extend(annotate(
                &wire::nlmsgerr::LAYOUT,
                message.payload,
                body_base,
                ctx,
            ));
            let copy = &message.payload[wire::nlmsgerr::LAYOUT.size..];
            if copy.len() >= wire::NLMSG_HDRLEN {
                let copy_base = body_base + wire::nlmsgerr::LAYOUT.size;
                let ours = Ctx { ack: false, ..ctx };
                for mut row in annotate(&wire::nlmsghdr::LAYOUT, copy, copy_base, ours) {
                    row.field = format!("msg.{}", row.field);
                    row.meaning = format!("our request's: {}", row.meaning);
                    rows.push(row);
                }
                let sent_len = wire::nlmsghdr::LEN.u32(copy) as usize;
                let payload_end = sent_len.min(copy.len());
                if payload_end > wire::NLMSG_HDRLEN {
                    rows.push(payload_row(
                        &copy[wire::NLMSG_HDRLEN..payload_end],
                        copy_base + wire::NLMSG_HDRLEN,
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

/// Lay out sections in 80 columns: offset, bytes (4 a line), field, then
/// the value and its meaning, wrapped.
pub fn render_text(sections: &[Section]) -> String {
    const VALUE_COL: usize = 39;
    const WIDTH: usize = 80;
    let mut out = String::new();
    for section in sections {
        let title = wrap(&section.title, WIDTH);
        out.push('\n');
        for line in &title {
            out.push_str(line);
            out.push('\n');
        }
        let underline = title
            .iter()
            .map(|l| printed(l).chars().count())
            .max()
            .unwrap_or(0);
        out.push_str(&format!("{}\n", "-".repeat(underline)));
        for row in &section.rows {
            let chunks: Vec<&[u8]> = if row.bytes.is_empty() {
                vec![&[][..]]
            } else {
                row.bytes.chunks(4).collect()
            };
            let shown = chunks.len().min(4);
            let text = if row.meaning.is_empty() {
                row.value.clone()
            } else {
                format!("{} - {}", row.value, row.meaning)
            };
            let value_lines = wrap(&text, WIDTH - VALUE_COL);
            let lines = shown.max(value_lines.len());
            for i in 0..lines {
                let offset = if i == 0 {
                    format!("{:>5}", row.offset)
                } else {
                    " ".repeat(5)
                };
                let bytes = match chunks.get(i) {
                    Some(c) if i + 1 == shown && chunks.len() > shown => {
                        format!("{} ..", hex(&c[..c.len().min(3)]))
                    }
                    Some(c) if i < shown => hex(c),
                    _ => String::new(),
                };
                let field = if i == 0 { row.field.as_str() } else { "" };
                let value = value_lines.get(i).map_or("", String::as_str);
                let line = format!("{offset}  {bytes:<12} {field:<17}{value}");
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        for note in &section.notes {
            for line in wrap(note, WIDTH - 2) {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    // Lines were broken with room kept for the widest numbers; now show
    // the numbers as they are.
    printed(&out)
}

/// Word-wrap to `width` columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

pub fn render_json(sections: &[Section]) -> Value {
    Value::Array(
        sections
            .iter()
            .map(|s| {
                json!({
                    "title": printed(&s.title),
                    "rows": s.rows.iter().map(|r| json!({
                        "offset": r.offset,
                        "hex": hex(&r.bytes),
                        "field": r.field,
                        "value": printed(&r.value),
                        "meaning": printed(&r.meaning),
                    })).collect::<Vec<_>>(),
                    "notes": s.notes.iter().map(|n| printed(n)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// What to explain.
#[derive(Debug, Clone)]
pub struct Options {
    pub port: Option<u16>,
    pub legacy: bool,
    /// How many answer messages to annotate in full.
    pub max: usize,
}

/// The envelope sendmsg() took, as bytes, and where its pieces were.
struct Sent {
    sockaddr: Vec<u8>,
    msghdr: Vec<u8>,
    iovec: Vec<u8>,
    sockaddr_at: usize,
    iovec_at: usize,
    request_at: usize,
}

/// sendmsg() with a real msghdr and iovec, as the seed does, keeping a
/// copy of both to show.
fn send_with_msghdr(socket: &DiagSocket, request: &[u8]) -> Result<Sent, DiagError> {
    // SAFETY: sockaddr_nl is a plain C struct: all-zero is a valid value.
    let mut dest: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    dest.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    dest.nl_pid = 0; // the kernel
    dest.nl_groups = 0; // unicast
    let mut iov = libc::iovec {
        iov_base: request.as_ptr() as *mut libc::c_void,
        iov_len: request.len(),
    };
    // SAFETY: msghdr is a plain C struct: all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut dest as *mut libc::sockaddr_nl).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: every pointer in `msg` points to a live local (`dest`, `iov`)
    // or to `request`, all alive until sendmsg returns; the kernel only
    // reads through them.
    let n = unsafe { libc::sendmsg(socket.raw_fd(), &msg, 0) };
    if n < 0 {
        return Err(DiagError::Io {
            op: "sendmsg",
            errno: nix::errno::Errno::last(),
        });
    }
    let as_bytes = |ptr: *const u8, len: usize| {
        // SAFETY: `ptr` points to a live local struct of exactly `len` bytes.
        unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
    };
    Ok(Sent {
        sockaddr: as_bytes(
            (&dest as *const libc::sockaddr_nl).cast(),
            std::mem::size_of_val(&dest),
        ),
        msghdr: as_bytes(
            (&msg as *const libc::msghdr).cast(),
            std::mem::size_of_val(&msg),
        ),
        iovec: as_bytes(
            (&iov as *const libc::iovec).cast(),
            std::mem::size_of_val(&iov),
        ),
        sockaddr_at: &dest as *const _ as usize,
        iovec_at: &iov as *const _ as usize,
        request_at: request.as_ptr() as usize,
    })
}

/// Perform the conversation and explain it.
pub fn explain(options: &Options) -> Result<Vec<Section>, DiagError> {
    let mut socket = DiagSocket::open()?;
    let seq = socket.next_seq();
    let program = options.port.map(bytecode::port_filter).unwrap_or_default();
    let request = if options.legacy {
        request::legacy_dump(wire::AF_INET, request::SEED_STATE_MASK, seq, &program)
    } else {
        DiagRequest::dump(wire::AF_INET, 0xfff, 0, program.clone()).to_bytes(seq)
    };
    let started = Instant::now();
    let sent = send_with_msghdr(&socket, &request)?;
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let exchange = socket.receive(&request, |_| Ok(()), |d| datagrams.push(d.to_vec()))?;
    let elapsed = started.elapsed();

    let ctx = Ctx {
        family: wire::AF_INET,
        request: true,
        ack: false,
    };
    let mut sections = Vec::new();
    sections.push(Section {
        title: "1. Where to: struct sockaddr_nl (12 bytes)".to_string(),
        rows: annotate(&wire::sockaddr_nl::LAYOUT, &sent.sockaddr, 0, ctx),
        notes: vec![format!(
            "Our own address, from bind(): port id {}. nl_pid 0 in the destination means the kernel.",
            wide(socket.port_id(), 10)
        )],
    });
    sections.push(Section {
        title: "2. The envelope: struct msghdr (56 bytes) and struct iovec (16)".to_string(),
        rows: annotate(&wire::msghdr::LAYOUT, &sent.msghdr, 0, ctx)
            .into_iter()
            .chain(annotate(&wire::iovec::LAYOUT, &sent.iovec, 0, ctx))
            .collect(),
        notes: vec![format!(
            "sendmsg(fd, &msghdr, 0): msg_name = {} is the sockaddr_nl above, msg_iov = {} the iovec, \
             whose iov_base = {} is the {}-byte message below. These live in our memory; the kernel copies \
             the message in and never sees the pointers again.",
            pointer(sent.sockaddr_at),
            pointer(sent.iovec_at),
            pointer(sent.request_at),
            request.len()
        )],
    });
    let body_layout = if options.legacy {
        &wire::inet_diag_req::LAYOUT
    } else {
        &wire::inet_diag_req_v2::LAYOUT
    };
    let mut rows = annotate(&wire::nlmsghdr::LAYOUT, &request, 0, ctx);
    let body = &request[wire::NLMSG_HDRLEN..];
    rows.extend(annotate(body_layout, body, wire::NLMSG_HDRLEN, ctx));
    if body.len() > body_layout.size {
        rows.extend(annotate_attrs(
            &body[body_layout.size..],
            wire::NLMSG_HDRLEN + body_layout.size,
            ctx,
        ));
    }
    sections.push(Section {
        title: format!(
            "3. The request: struct nlmsghdr (16) + {} ({}){}",
            body_layout.name,
            body_layout.size,
            if program.is_empty() {
                ""
            } else {
                " + the filter"
            }
        ),
        rows,
        notes: request_notes(options, &program),
    });

    // The answer: walk it as the seed's NLMSG_OK/NLMSG_NEXT loop does.
    let mut shown = 0;
    let mut sockets = 0;
    let mut families = [0usize; 2];
    let mut done: Option<Section> = None;
    let mut answer_rows = Vec::new();
    let mut answer_types = std::collections::BTreeSet::new();
    for (d, datagram) in datagrams.iter().enumerate() {
        for message in parse::messages(datagram)? {
            if message.seq != seq {
                continue;
            }
            answer_types.insert(message.msg_type);
            match message.msg_type {
                wire::NLMSG_DONE => {
                    done = Some(Section {
                        title: format!(
                            "5. The end: NLMSG_DONE (datagram {}, offset {})",
                            d + 1,
                            message.offset
                        ),
                        rows: annotate_message(&message, message.offset),
                        notes: vec![],
                    });
                }
                _ => {
                    sockets += 1;
                    let family = message.payload.first().copied().unwrap_or(0);
                    families[(family == wire::AF_INET6) as usize] += 1;
                    if shown < options.max {
                        shown += 1;
                        answer_rows.push(Section {
                            title: format!(
                                "4.{shown} Answer {shown} (datagram {}, offset {}): nlmsghdr, inet_diag_msg, attributes",
                                d + 1,
                                message.offset
                            ),
                            rows: annotate_message(&message, message.offset),
                            notes: vec![],
                        });
                    }
                }
            }
        }
    }
    sections.extend(answer_rows);
    if let Some(done) = done {
        sections.push(done);
    }
    // A datagram's size changes with the sockets that fill it: room for 5
    // digits. (The counts are the lesson's: its own namespace holds only
    // the lesson's sockets.)
    let sizes: Vec<String> = datagrams.iter().map(|d| wide(d.len(), 5)).collect();
    let mut notes = vec![
        format!(
            "{} datagrams ({} bytes), {} messages: {} sockets ({} IPv4, {} IPv6) and the NLMSG_DONE; \
             {} shown in full (--max). Round trip: {}.",
            exchange.datagrams,
            sizes.join(" + "),
            exchange.messages,
            sockets,
            families[0],
            families[1],
            shown,
            micros(elapsed)
        ),
        "Each datagram holds many messages, one after the other, each starting at a multiple of 4 bytes \
         (NLMSG_ALIGN); NLMSG_DONE may share a datagram with the last sockets."
            .to_string(),
    ];
    if exchange.interrupted {
        notes.push("NLM_F_DUMP_INTR was set: sockets changed during the dump.".to_string());
    }
    if options.legacy {
        notes.extend(legacy_notes(&answer_types, families));
    }
    sections.push(Section {
        title: "6. Summary".to_string(),
        rows: Vec::new(),
        notes,
    });
    Ok(sections)
}

/// A time in microseconds, with room for 7 digits (see [`ROOM`]).
pub fn micros(d: Duration) -> String {
    format!("{} us", wide(d.as_micros(), 7))
}

/// An address in our memory, with room for all 16 hex digits.
fn pointer(at: usize) -> String {
    wide(format!("{at:#x}"), 18)
}

fn request_notes(options: &Options, program: &[u8]) -> Vec<String> {
    let mut notes = Vec::new();
    if options.legacy {
        notes.push(
            "The seed's request: TCPDIAG_GETSOCK with NLM_F_REQUEST | NLM_F_ROOT and the old struct \
             inet_diag_req (no protocol field: the message type says TCP)."
                .to_string(),
        );
        notes.push(format!(
            "idiag_states = (1 << TCP_CLOSING + 1) - 1. In C, + binds tighter than <<: (1 << 12) - 1 = {:#x}, \
             bits 0 to 11: every state from ESTABLISHED (1) to CLOSING (11), and bit 0, which no state uses.",
            request::SEED_STATE_MASK
        ));
    } else {
        notes.push(
            "SOCK_DIAG_BY_FAMILY with NLM_F_REQUEST | NLM_F_DUMP (= ROOT | MATCH) and struct \
             inet_diag_req_v2: one family, one protocol. The socket id is zero: a dump ignores it."
                .to_string(),
        );
    }
    if !program.is_empty() {
        notes.push(
            "The filter is attached as attribute INET_DIAG_REQ_BYTECODE: the kernel runs it on every socket \
             and sends only those that reach the end of the program."
                .to_string(),
        );
    }
    notes
}

fn legacy_notes(types: &std::collections::BTreeSet<u16>, families: [usize; 2]) -> Vec<String> {
    let names: Vec<String> = types
        .iter()
        .map(|t| format!("{t} {}", wire::msg_type_name(*t)))
        .collect();
    let mut notes = vec![
        format!(
            "Today's kernel still answers the seed's request (net/ipv4/inet_diag.c, the compat path); the \
             messages came back as type {}.",
            names.join(", ")
        ),
        "NLM_F_ROOT alone suffices: the kernel tests (flags & NLM_F_DUMP), and ROOT is one of its two bits."
            .to_string(),
    ];
    notes.push(if families[1] > 0 {
        format!(
            "We asked for AF_INET, yet {} IPv6 sockets came back beside {} IPv4 ones: the compat path sets the \
             family to AF_UNSPEC and walks the tables once for both. (The v2 request needs two dumps.)",
            families[1], families[0]
        )
    } else {
        "The compat path ignores idiag_family (it dumps AF_UNSPEC: both families in one walk); no IPv6 socket \
         exists right now to show it."
            .to_string()
    });
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: Ctx = Ctx {
        family: wire::AF_INET,
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
            lines(&annotate(&wire::nlmsghdr::LAYOUT, &bytes, 0, V4)),
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
        wire::nlmsghdr::LEN.put(&mut built, 72);
        wire::nlmsghdr::TYPE.put(&mut built, wire::SOCK_DIAG_BY_FAMILY.into());
        wire::nlmsghdr::FLAGS.put(&mut built, (wire::NLM_F_REQUEST | wire::NLM_F_DUMP).into());
        wire::nlmsghdr::SEQ.put(&mut built, 9);
        assert_eq!(built, bytes);
    }

    /// struct inet_diag_req_v2, golden (emitted by netlink-packet-sock-diag).
    #[test]
    fn inet_diag_req_v2_golden() {
        let request = DiagRequest::dump(wire::AF_INET6, 0xfff, 0, Vec::new()).to_bytes(1);
        let rows = annotate(
            &wire::inet_diag_req_v2::LAYOUT,
            &request[16..],
            16,
            Ctx {
                family: wire::AF_INET6,
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
        let request = request::legacy_dump(wire::AF_INET, request::SEED_STATE_MASK, 1, &[]);
        let header = lines(&annotate(&wire::nlmsghdr::LAYOUT, &request, 0, V4));
        assert_eq!(header[1], "4 12 00 nlmsg_type = 18 TCPDIAG_GETSOCK");
        assert_eq!(
            header[2],
            "6 01 01 nlmsg_flags = 0x101 NLM_F_REQUEST|NLM_F_ROOT"
        );
        let body = lines(&annotate(
            &wire::inet_diag_req::LAYOUT,
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
        let text = lines(&annotate(&wire::inet_diag_msg::LAYOUT, &bytes, 0, V4));
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
        wire::nlattr::LEN.put(&mut attr, 24);
        wire::nlattr::TYPE.put(&mut attr, 1);
        attr.extend_from_slice(&program);
        let text = lines(&annotate_attrs(
            &attr,
            0,
            Ctx {
                family: wire::AF_INET,
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
        let answer = lines(&annotate(&wire::nlattr::LAYOUT, &attr, 0, V4));
        assert_eq!(answer[1], "2 01 00 nla_type = 1 INET_DIAG_MEMINFO");
    }

    /// struct nlmsgerr and struct sockaddr_nl, golden.
    #[test]
    fn nlmsgerr_and_sockaddr_nl_golden() {
        let err = (-22i32).to_ne_bytes();
        let text = lines(&annotate(&wire::nlmsgerr::LAYOUT, &err, 16, V4));
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
        let text = lines(&annotate(&wire::sockaddr_nl::LAYOUT, &sockaddr, 0, V4));
        assert_eq!(text[0], "0 10 00 nl_family = 16 AF_NETLINK");
        assert_eq!(text[2], "4 00 00 00 00 nl_pid = 0: the kernel");
    }

    /// The text fits 80 columns, whatever the values.
    #[test]
    fn text_fits_80_columns() {
        let bytes = crate::diag::parse::tests::TIME_WAIT_MSG;
        let section = Section {
            title: "a title".into(),
            rows: annotate(&wire::inet_diag_msg::LAYOUT, &bytes, 0, V4),
            notes: vec!["a long note ".repeat(20)],
        };
        for line in render_text(&[section]).lines() {
            assert!(line.chars().count() <= 80, "{line}");
        }
    }
}
