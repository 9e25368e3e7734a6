//! `observer kernel-echo`: the seed's "user-initiated session", without a
//! kernel module.
//!
//! The seed's example needs a custom module (NETLINK_TEST) that receives a
//! string and sends it back. Today's kernel has an echo of its own: ask for
//! an acknowledgement (NLM_F_ACK) on a message it must reject, and its
//! NLMSG_ERROR answer carries the error code *and a copy of the message*
//! (netlink_ack() in net/netlink/af_netlink.c). That is the kernel's
//! acknowledgement mechanism, not the seed's module: the tutorial
//! (tutorial/04-kernel-conversation.md) shows the module for those who can load one.
//!
//! With the socket option NETLINK_CAP_ACK, the kernel copies only the
//! header of the rejected message back (and sets NLM_F_CAPPED).

use std::time::{Duration, Instant};

use crate::diag::parse;
use crate::diag::{DiagError, DiagSocket};
use crate::explain::{self, Ctx, Section};
use crate::layout;

/// The greeting of the classic NETLINK_TEST example.
pub const GREETING: &str = "Hello you!";

/// A message type sock_diag does not handle: the kernel answers EINVAL.
pub const UNKNOWN_TYPE: u16 = 99;

/// What one round trip showed.
#[derive(Debug, Clone)]
pub struct Echo {
    pub sent: Vec<u8>,
    pub answer: Vec<u8>,
    pub errno: i32,
    /// The copy of our message inside the answer, as far as it goes.
    pub copy: Vec<u8>,
    pub capped: bool,
    pub rtt: Duration,
}

impl Echo {
    /// Is the copy our message, byte for byte?
    pub fn identical(&self) -> bool {
        self.copy == self.sent
    }
}

/// The longest text the kernel's answer can carry back to us: the answer
/// is a header (16), the error (4) and our whole message (16 + the text +
/// its NUL), and it must fit the buffer we receive into
/// ([`crate::diag::socket::RECV_BUFFER`]).
pub const MAX_TEXT: usize = crate::diag::socket::RECV_BUFFER - 2 * layout::NLMSG_HDRLEN - 4 - 1;

/// Build the message: a header, then the student's bytes (NUL-terminated,
/// as the seed's strcpy() left them).
pub fn message(text: &str, seq: u32) -> Vec<u8> {
    let mut payload = text.as_bytes().to_vec();
    payload.push(0);
    let len = layout::NLMSG_HDRLEN + payload.len();
    let mut buf = vec![0u8; layout::NLMSG_HDRLEN];
    layout::nlmsghdr::LEN.put(&mut buf, len as u64);
    layout::nlmsghdr::TYPE.put(&mut buf, UNKNOWN_TYPE.into());
    layout::nlmsghdr::FLAGS.put(&mut buf, (layout::NLM_F_REQUEST | layout::NLM_F_ACK).into());
    layout::nlmsghdr::SEQ.put(&mut buf, seq.into());
    buf.extend_from_slice(&payload);
    buf
}

/// Send `text` and read the kernel's answer, with or without CAP_ACK.
pub fn round_trip(text: &str, cap_ack: bool) -> Result<Echo, DiagError> {
    let mut socket = DiagSocket::open()?;
    socket.set_cap_ack(cap_ack)?;
    let seq = socket.next_seq();
    let sent = message(text, seq);
    let started = Instant::now();
    let answer = socket.request_raw(&sent)?;
    let rtt = started.elapsed();
    let messages = parse::messages(&answer)?;
    let error = messages
        .iter()
        .find(|m| m.msg_type == layout::NLMSG_ERROR)
        .ok_or_else(|| DiagError::Malformed("no NLMSG_ERROR in the answer".to_string()))?;
    let errno = parse::error_code(error);
    let rest = &error.payload[layout::nlmsgerr::LAYOUT.size..];
    let copy_len = if rest.len() >= layout::NLMSG_HDRLEN {
        (layout::nlmsghdr::LEN.u32(rest) as usize).min(rest.len())
    } else {
        0
    };
    Ok(Echo {
        sent,
        copy: rest[..copy_len].to_vec(),
        capped: error.flags & layout::NLM_F_CAPPED != 0,
        answer,
        errno,
        rtt,
    })
}

/// The sections `observer kernel-echo` prints.
pub fn explain(text: &str) -> Result<(Vec<Section>, Echo, Echo), DiagError> {
    let full = round_trip(text, false)?;
    let capped = round_trip(text, true)?;
    let ctx = Ctx {
        family: layout::AF_INET,
        request: true,
        ack: false,
    };
    let mut sent_rows = explain::annotate(&layout::nlmsghdr::LAYOUT, &full.sent, 0, ctx);
    sent_rows.push(explain::payload_row(
        &full.sent[layout::NLMSG_HDRLEN..],
        layout::NLMSG_HDRLEN,
    ));
    let answer_rows = |echo: &Echo| -> Result<Vec<explain::Row>, DiagError> {
        Ok(parse::messages(&echo.answer)?
            .iter()
            .flat_map(|m| explain::annotate_message(m, m.offset))
            .collect())
    };
    let sections = vec![
        Section {
            title: format!("1. Sent: {} bytes to the kernel (nl_pid 0)", full.sent.len()),
            rows: sent_rows,
            notes: vec![format!(
                "Type {UNKNOWN_TYPE}, which NETLINK_SOCK_DIAG does not handle, with NLM_F_REQUEST (for the \
                 kernel) and NLM_F_ACK (answer me)."
            )],
        },
        Section {
            title: format!(
                "2. Received: {} bytes, after {}",
                full.answer.len(),
                explain::micros(full.rtt)
            ),
            rows: answer_rows(&full)?,
            notes: vec![format!(
                "NLMSG_ERROR: error {} and, after it, our message as we sent it: {}.",
                -full.errno,
                if full.identical() { "byte for byte identical" } else { "NOT identical" }
            )],
        },
        Section {
            title: format!(
                "3. Again with NETLINK_CAP_ACK: {} bytes, after {}",
                capped.answer.len(),
                explain::micros(capped.rtt)
            ),
            rows: answer_rows(&capped)?,
            notes: vec![format!(
                "NLM_F_CAPPED is {}: only our {}-byte header came back, not the payload.",
                if capped.capped { "set" } else { "not set" },
                capped.copy.len().min(layout::NLMSG_HDRLEN)
            )],
        },
        Section {
            title: "What this is".to_string(),
            rows: Vec::new(),
            notes: vec![
                "This is the kernel's acknowledgement mechanism (netlink_ack), not the seed's NETLINK_TEST \
                 module: no module was loaded and nothing of ours ran in the kernel. tutorial/04-kernel-conversation.md \
                 shows the module and how to build it where modules can be loaded."
                    .to_string(),
            ],
        },
    ];
    Ok((sections, full, capped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message, byte by byte.
    #[test]
    fn the_message_is_a_header_and_the_text() {
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[27u8, 0, 0, 0][..], // nlmsg_len = 16 + 11
            &[99, 0],             // nlmsg_type = 99
            &[0x05, 0],           // nlmsg_flags = REQUEST | ACK
            &[3, 0, 0, 0],        // nlmsg_seq
            &[0, 0, 0, 0],        // nlmsg_pid
            b"Hello you!\0",
        ]
        .concat();
        assert_eq!(message(GREETING, 3), expected);
    }

    /// Live: the kernel returns the message byte for byte, and with
    /// NETLINK_CAP_ACK only its header.
    #[test]
    fn the_kernel_echoes_the_message_byte_for_byte() {
        let text = "any bytes at all \u{1F600}";
        let echo = round_trip(text, false).unwrap();
        assert_eq!(echo.errno, libc::EINVAL);
        assert!(echo.identical(), "{:?} vs {:?}", echo.copy, echo.sent);
        assert!(!echo.capped);
        let capped = round_trip(text, true).unwrap();
        assert!(capped.capped);
        assert_eq!(capped.copy, capped.sent[..layout::NLMSG_HDRLEN]);
    }
}
