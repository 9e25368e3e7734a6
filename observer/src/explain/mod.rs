//! `observer explain`: one real inet_diag conversation, byte by byte.
//!
//! The seed teaches netlink in three steps: the structures (`sockaddr_nl`,
//! `msghdr`, `iovec`, `nlmsghdr`), a request sent with sendmsg(), and the
//! `NLMSG_OK`/`NLMSG_NEXT` loop over the answer. This command performs that
//! conversation with the kernel and prints every byte it sent and the
//! first messages it got back, each field with its offset, bytes, value
//! and meaning.
//!
//! # Layout
//! - [`annotate`]: every field of a buffer, from the tables in
//!   [`crate::layout`] (what the parser reads is what is explained).
//! - [`render`]: the sections as text or JSON.
//! - [`sendmsg`]: sendmsg() with a real msghdr and iovec, as the seed does.
//! - this file: the command, the conversation and its notes.

pub mod annotate;
pub mod render;
pub mod sendmsg;

use std::time::Instant;

use crate::diag::bytecode;
use crate::diag::parse;
use crate::diag::request::{self, DiagRequest};
use crate::diag::{DiagError, DiagSocket};
use crate::layout;

pub use annotate::{Ctx, Row, annotate, annotate_attrs, annotate_message, payload_row};
pub use render::{Section, micros, pointer, printed, render_json, render_text, wide};
use sendmsg::send_with_msghdr;

/// What to explain.
#[derive(Debug, Clone)]
pub struct Options {
    pub port: Option<u16>,
    pub legacy: bool,
    /// How many answer messages to annotate in full.
    pub max: usize,
}

/// Perform the conversation and explain it.
pub fn explain(options: &Options) -> Result<Vec<Section>, DiagError> {
    let mut socket = DiagSocket::open()?;
    let seq = socket.next_seq();
    let program = options.port.map(bytecode::port_filter).unwrap_or_default();
    let request = if options.legacy {
        request::legacy_dump(layout::AF_INET, request::SEED_STATE_MASK, seq, &program)
    } else {
        DiagRequest::dump(layout::AF_INET, 0xfff, 0, program.clone()).to_bytes(seq)
    };
    let started = Instant::now();
    let sent = send_with_msghdr(&socket, &request)?;
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let exchange = socket.receive(&request, |_| Ok(()), |d| datagrams.push(d.to_vec()))?;
    let elapsed = started.elapsed();

    let ctx = Ctx {
        family: layout::AF_INET,
        request: true,
        ack: false,
    };
    let mut sections = Vec::new();
    sections.push(Section {
        title: "1. Where to: struct sockaddr_nl (12 bytes)".to_string(),
        rows: annotate(&layout::sockaddr_nl::LAYOUT, &sent.sockaddr, 0, ctx),
        notes: vec![format!(
            "Our own address, from bind(): port id {}. nl_pid 0 in the destination means the kernel.",
            wide(socket.port_id(), 10)
        )],
    });
    sections.push(Section {
        title: "2. The envelope: struct msghdr (56 bytes) and struct iovec (16)".to_string(),
        rows: annotate(&layout::msghdr::LAYOUT, &sent.msghdr, 0, ctx)
            .into_iter()
            .chain(annotate(&layout::iovec::LAYOUT, &sent.iovec, 0, ctx))
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
        &layout::inet_diag_req::LAYOUT
    } else {
        &layout::inet_diag_req_v2::LAYOUT
    };
    let mut rows = annotate(&layout::nlmsghdr::LAYOUT, &request, 0, ctx);
    let body = &request[layout::NLMSG_HDRLEN..];
    rows.extend(annotate(body_layout, body, layout::NLMSG_HDRLEN, ctx));
    if body.len() > body_layout.size {
        rows.extend(annotate_attrs(
            &body[body_layout.size..],
            layout::NLMSG_HDRLEN + body_layout.size,
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
                layout::NLMSG_DONE => {
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
                    families[(family == layout::AF_INET6) as usize] += 1;
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
        .map(|t| format!("{t} {}", layout::msg_type_name(*t)))
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
