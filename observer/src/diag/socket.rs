//! The netlink socket, the dump conversation, and destroy notifications.
//!
//! A dump is a conversation: we send one request to the kernel (netlink
//! port id 0); the kernel answers with as many datagrams as it takes, each
//! holding several messages, and ends with NLMSG_DONE. A socket carries one
//! dump at a time, so IPv4 and IPv6 are asked one after the other.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};
use nix::errno::Errno;

use super::parse::{self, Message, SockInfo};
use super::request::DiagRequest;
use super::{DiagError, Query, bytecode};
use crate::layout;

/// Large enough for any dump datagram: the kernel sizes them to the
/// largest recvmsg() buffer it has seen, capped near 32 KiB
/// (netlink_recvmsg in net/netlink/af_netlink.c).
pub const RECV_BUFFER: usize = 64 * 1024;

/// How many exact questions go out in one datagram (see
/// [`DiagSocket::lookup`]): 64 answers take about 64 KiB of the receive
/// buffer, a third of its default size (net.core.rmem_default).
pub const LOOKUPS_PER_SEND: usize = 64;

/// A NETLINK_SOCK_DIAG socket for dumps.
pub struct DiagSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// What came back for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exchange {
    pub datagrams: usize,
    pub messages: usize,
    /// NLM_F_DUMP_INTR: the socket tables changed during the dump, so the
    /// answer may have missed or doubled an entry.
    pub interrupted: bool,
}

fn errno_of(err: &std::io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(0))
}

impl DiagSocket {
    /// Open a socket in our own network namespace.
    pub fn open() -> Result<DiagSocket, DiagError> {
        Self::with_buffer(RECV_BUFFER)
    }

    /// Open a socket inside the named network namespace (`ip netns`): the
    /// socket belongs to the namespace it was created in, for its whole life.
    pub fn open_in(netns: Option<&str>) -> Result<DiagSocket, DiagError> {
        match netns {
            None => Self::open(),
            Some(name) => in_netns(name, Self::open),
        }
    }

    /// With a receive buffer of `size` bytes (small sizes test truncation).
    pub fn with_buffer(size: usize) -> Result<DiagSocket, DiagError> {
        let mut socket =
            Socket::new(NETLINK_SOCK_DIAG).map_err(|e| DiagError::Open(errno_of(&e)))?;
        // bind with port id 0: the kernel picks ours (usually our pid).
        socket.bind_auto().map_err(|e| DiagError::Io {
            op: "bind",
            errno: errno_of(&e),
        })?;
        Ok(DiagSocket {
            socket,
            seq: 0,
            buf: vec![0; size],
        })
    }

    /// Our netlink port id, as the kernel assigned it at bind().
    pub fn port_id(&self) -> u32 {
        let mut addr = SocketAddr::new(0, 0);
        let _ = self.socket.get_address(&mut addr);
        addr.port_number()
    }

    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Dump the sockets `query` asks for: IPv4, then IPv6.
    pub fn dump(&mut self, query: &Query) -> Result<Vec<SockInfo>, DiagError> {
        let program = query.port.map(bytecode::port_filter).unwrap_or_default();
        let mut sockets = Vec::new();
        for (wanted, family) in [
            (query.ipv4, layout::AF_INET),
            (query.ipv6, layout::AF_INET6),
        ] {
            if !wanted {
                continue;
            }
            let seq = self.next_seq();
            let request =
                DiagRequest::dump(family, query.states, query.extensions, program.clone());
            self.exchange(
                &request.to_bytes(seq),
                |message| {
                    if message.msg_type == layout::SOCK_DIAG_BY_FAMILY {
                        sockets.push(SockInfo::parse(message.payload)?);
                    }
                    Ok(())
                },
                |_| {},
            )?;
        }
        Ok(sockets)
    }

    /// Send one request and read the answer until NLMSG_DONE (or, for a
    /// non-dump request, until the first NLMSG_ERROR/ACK).
    ///
    /// `on_message` sees every message of our sequence number;
    /// `on_datagram` sees each datagram as received (for `explain`).
    pub fn exchange(
        &mut self,
        request: &[u8],
        on_message: impl FnMut(&Message<'_>) -> Result<(), DiagError>,
        on_datagram: impl FnMut(&[u8]),
    ) -> Result<Exchange, DiagError> {
        self.send(request)?;
        self.receive(request, on_message, on_datagram)
    }

    /// sendto() the kernel (netlink port id 0).
    pub fn send(&self, request: &[u8]) -> Result<(), DiagError> {
        let kernel = SocketAddr::new(0, 0);
        loop {
            match self.socket.send_to(request, &kernel, 0) {
                Ok(_) => return Ok(()),
                Err(e) if errno_of(&e) == Errno::EINTR => continue,
                Err(e) => {
                    return Err(DiagError::Io {
                        op: "sendto",
                        errno: errno_of(&e),
                    });
                }
            }
        }
    }

    /// Read the answer to `request` (already sent) until NLMSG_DONE, or
    /// for a non-dump request until its NLMSG_ERROR/ACK.
    pub fn receive(
        &mut self,
        request: &[u8],
        mut on_message: impl FnMut(&Message<'_>) -> Result<(), DiagError>,
        mut on_datagram: impl FnMut(&[u8]),
    ) -> Result<Exchange, DiagError> {
        let seq = layout::nlmsghdr::SEQ.u32(request);
        let is_dump = layout::nlmsghdr::FLAGS.u16(request) & layout::NLM_F_ROOT != 0;
        let mut exchange = Exchange::default();
        loop {
            let size = self.buf.len();
            // MSG_TRUNC: recv() returns the datagram's real length even when
            // it is longer than our buffer, so truncation cannot go unnoticed.
            let got = match self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if errno_of(&e) == Errno::EINTR => continue,
                Err(e) => {
                    return Err(DiagError::Io {
                        op: "recv",
                        errno: errno_of(&e),
                    });
                }
            };
            if got > size {
                return Err(DiagError::Truncated { got, buffer: size });
            }
            let datagram = &self.buf[..got];
            exchange.datagrams += 1;
            on_datagram(datagram);
            for message in parse::messages(datagram)? {
                if message.seq != seq {
                    continue; // left over from an earlier, abandoned request
                }
                exchange.messages += 1;
                exchange.interrupted |= message.flags & layout::NLM_F_DUMP_INTR != 0;
                on_message(&message)?;
                match message.msg_type {
                    layout::NLMSG_DONE => return Ok(exchange),
                    layout::NLMSG_ERROR => {
                        let code = parse::error_code(&message);
                        if code != 0 {
                            return Err(DiagError::Refused(Errno::from_raw(code)));
                        }
                        if !is_dump {
                            return Ok(exchange); // an ACK ends a single request
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The seed's request, one dump for both families: the compatibility
    /// path (TCPDIAG_GETSOCK) ignores `idiag_family` and walks the socket
    /// tables once for IPv4 and IPv6 together. See `observer explain --legacy`.
    pub fn dump_legacy(&mut self, query: &Query) -> Result<Vec<SockInfo>, DiagError> {
        let program = query.port.map(bytecode::port_filter).unwrap_or_default();
        let seq = self.next_seq();
        let request = super::request::legacy_dump(layout::AF_INET, query.states, seq, &program);
        let mut sockets = Vec::new();
        self.exchange(
            &request,
            |message| {
                if message.msg_type == layout::TCPDIAG_GETSOCK {
                    let info = SockInfo::parse(message.payload)?;
                    let family_wanted = if info.family == layout::AF_INET6 {
                        query.ipv6
                    } else {
                        query.ipv4
                    };
                    if family_wanted {
                        sockets.push(info);
                    }
                }
                Ok(())
            },
            |_| {},
        )?;
        Ok(sockets)
    }

    /// The cheapest dump that answers `query`: when both families are
    /// wanted, one walk of the kernel's tables with the seed's compat
    /// request instead of two v2 dumps (each walk visits all 262,144
    /// buckets of the connection hash, empty or not: about 1 ms on an idle
    /// machine); otherwise one v2 dump of the one family.
    pub fn dump_one_walk(&mut self, query: &Query) -> Result<Vec<SockInfo>, DiagError> {
        if query.ipv4 && query.ipv6 {
            self.dump_legacy(query)
        } else {
            self.dump(query)
        }
    }

    /// Ask for each of `sockets` by its 4-tuple: a hash lookup each, where
    /// a dump walks every bucket of the table (262,144 here, about 1 ms,
    /// however few sockets it returns).
    ///
    /// The questions go out [`LOOKUPS_PER_SEND`] to a datagram: the kernel
    /// reads every message of a datagram in turn (netlink_rcv_skb) and
    /// answers each with a datagram of its own, the socket or an
    /// NLMSG_ERROR carrying ENOENT. Each answer takes about a kilobyte of
    /// our receive buffer (skb truesize); a full buffer would make the
    /// kernel drop answers, so we collect one batch before sending the next.
    ///
    /// The answer for each: `Some` if a socket with that very 4-tuple
    /// exists now (its state may have changed), `None` if not. A lookup
    /// that misses the connection hash falls back to the listeners
    /// (inet_lookup, net/ipv4/inet_hashtables.c): asking for a closed
    /// server end `6666 -> 51230` returns the *listener* on 6666. That
    /// answer is not the socket we asked for, so it is `None` too.
    pub fn lookup(&mut self, sockets: &[SockInfo]) -> Result<Vec<Option<SockInfo>>, DiagError> {
        let mut found = Vec::with_capacity(sockets.len());
        for batch in sockets.chunks(LOOKUPS_PER_SEND) {
            let first = self.seq.wrapping_add(1);
            let mut datagram = Vec::with_capacity(batch.len() * 72);
            for info in batch {
                let seq = self.next_seq();
                datagram.extend(DiagRequest::exact(info).to_bytes_exact(seq));
            }
            self.send(&datagram)?;
            let mut answers: Vec<Option<Option<SockInfo>>> = vec![None; batch.len()];
            let mut missing = batch.len();
            while missing > 0 {
                let got = self.recv_datagram()?;
                for message in parse::messages(&self.buf[..got])? {
                    let i = message.seq.wrapping_sub(first) as usize;
                    let Some(slot) = answers.get_mut(i).filter(|a| a.is_none()) else {
                        continue; // an answer to an earlier, abandoned question
                    };
                    let answer = match message.msg_type {
                        layout::SOCK_DIAG_BY_FAMILY => {
                            let info = SockInfo::parse(message.payload)?;
                            let asked = &batch[i];
                            (info.local == asked.local && info.remote == asked.remote)
                                .then_some(info)
                        }
                        layout::NLMSG_ERROR => match parse::error_code(&message) {
                            code if code == Errno::ENOENT as i32 => None,
                            code => return Err(DiagError::Refused(Errno::from_raw(code))),
                        },
                        _ => continue,
                    };
                    *slot = Some(answer);
                    missing -= 1;
                }
            }
            found.extend(answers.into_iter().map(Option::flatten));
        }
        Ok(found)
    }

    /// recv() one datagram into our buffer; its length.
    fn recv_datagram(&mut self) -> Result<usize, DiagError> {
        let size = self.buf.len();
        loop {
            return match self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                Ok(n) if n > size => Err(DiagError::Truncated {
                    got: n,
                    buffer: size,
                }),
                Ok(n) => Ok(n),
                Err(e) if errno_of(&e) == Errno::EINTR => continue,
                Err(e) => Err(DiagError::Io {
                    op: "recv",
                    errno: errno_of(&e),
                }),
            };
        }
    }

    /// The raw descriptor, for `explain`'s own sendmsg().
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }

    /// Set a socket option at SOL_NETLINK (e.g. NETLINK_CAP_ACK).
    pub fn set_cap_ack(&self, on: bool) -> Result<(), DiagError> {
        self.socket.set_cap_ack(on).map_err(|e| DiagError::Io {
            op: "setsockopt(NETLINK_CAP_ACK)",
            errno: errno_of(&e),
        })
    }

    /// Send raw bytes and return the first datagram of the answer.
    pub fn request_raw(&mut self, request: &[u8]) -> Result<Vec<u8>, DiagError> {
        let mut first = None;
        self.exchange(
            request,
            |_| Ok(()),
            |datagram| {
                if first.is_none() {
                    first = Some(datagram.to_vec());
                }
            },
        )
        .or_else(|err| match err {
            // A refusal is an answer too: the caller wants to see it.
            DiagError::Refused(_) => Ok(Exchange::default()),
            other => Err(other),
        })?;
        first.ok_or_else(|| DiagError::Malformed("no answer".to_string()))
    }
}

/// Run `open` with this thread inside the named network namespace, on a
/// helper thread so that no other thread of ours changes namespace.
pub fn in_netns<T: Send>(
    name: &str,
    open: impl FnOnce() -> Result<T, DiagError> + Send,
) -> Result<T, DiagError> {
    // setns() moves only the helper thread; sockets created there belong
    // to the namespace for good (see crate::netns).
    crate::netns::run_in(name, open).unwrap_or_else(|reason| {
        Err(DiagError::Netns {
            name: name.to_string(),
            reason,
        })
    })
}

/// A socket subscribed to the sock_diag destroy groups: the kernel sends
/// one message each time a TCP socket is destroyed, with its final state
/// and tcp_info (SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET6_TCP_DESTROY).
pub struct EventSocket {
    socket: Socket,
    buf: Vec<u8>,
}

/// What a read of the event socket produced.
#[derive(Debug, Default)]
pub struct Events {
    pub destroyed: Vec<SockInfo>,
    /// ENOBUFS: the kernel dropped notifications because we read too slowly.
    pub overflowed: bool,
}

impl EventSocket {
    /// Subscribe; `None` where the kernel does not permit or support it.
    pub fn open(netns: Option<&str>) -> Option<EventSocket> {
        let open = || -> Result<EventSocket, DiagError> {
            let mut socket =
                Socket::new(NETLINK_SOCK_DIAG).map_err(|e| DiagError::Open(errno_of(&e)))?;
            let io = |op| {
                move |e: std::io::Error| DiagError::Io {
                    op,
                    errno: errno_of(&e),
                }
            };
            socket.bind_auto().map_err(io("bind"))?;
            socket
                .add_membership(layout::SKNLGRP_INET_TCP_DESTROY)
                .map_err(io("join group"))?;
            socket
                .add_membership(layout::SKNLGRP_INET6_TCP_DESTROY)
                .map_err(io("join group"))?;
            socket.set_non_blocking(true).map_err(io("fcntl"))?;
            // A larger queue: a burst of closes must not overflow it.
            let _ = socket.set_rx_buf_sz(1 << 20);
            Ok(EventSocket {
                socket,
                buf: vec![0; RECV_BUFFER],
            })
        };
        match netns {
            None => open().ok(),
            Some(name) => in_netns(name, open).ok(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd belongs to `self.socket`, which outlives the borrow.
        unsafe { BorrowedFd::borrow_raw(self.socket.as_raw_fd()) }
    }

    /// Read every notification waiting, without blocking.
    pub fn drain(&mut self) -> Events {
        let mut events = Events::default();
        loop {
            let size = self.buf.len();
            let got = match self.socket.recv(&mut &mut self.buf[..], libc::MSG_TRUNC) {
                Ok(n) => n.min(size),
                Err(e) => match errno_of(&e) {
                    Errno::EINTR => continue,
                    Errno::ENOBUFS => {
                        events.overflowed = true;
                        continue;
                    }
                    _ => return events, // EAGAIN: nothing more
                },
            };
            let Ok(messages) = parse::messages(&self.buf[..got]) else {
                continue;
            };
            for message in messages {
                if message.msg_type == layout::SOCK_DIAG_BY_FAMILY {
                    if let Ok(info) = SockInfo::parse(message.payload) {
                        events.destroyed.push(info);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real dump sees a socket we just made, with the right state.
    #[test]
    fn a_dump_finds_our_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut socket = DiagSocket::open().unwrap();
        let found = socket.dump(&Query::port(port)).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].state, crate::tcp_state::TcpState::Listen);
        assert_eq!(found[0].local.port(), port);
    }

    /// Exact questions: a live connection is found (both ends), a closed
    /// one is not, and asking for a gone server end does not return the
    /// listener the kernel falls back to.
    #[test]
    fn lookups_find_live_sockets_and_only_them() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut socket = DiagSocket::open().unwrap();
        let dumped = socket.dump(&Query::port(port)).unwrap();
        assert_eq!(dumped.len(), 3, "{dumped:?}");
        let mut gone = dumped
            .iter()
            .find(|s| s.local.port() == port && s.remote.port() != 0)
            .unwrap()
            .clone();
        gone.remote.set_port(1); // a server end that never existed
        let mut asked = dumped.clone();
        asked.push(gone);
        let found = socket.lookup(&asked).unwrap();
        for (asked, found) in asked.iter().zip(&found) {
            if asked.remote.port() == 1 {
                assert_eq!(found, &None, "the listener is not the socket asked for");
            } else {
                let found = found.as_ref().expect("a live socket is found");
                assert_eq!((found.local, found.remote), (asked.local, asked.remote));
                assert_eq!((found.state, found.cookie), (asked.state, asked.cookie));
            }
        }
        drop((client, server));
    }

    /// More questions than one datagram carries: every one answered.
    #[test]
    fn many_lookups_are_answered_batch_by_batch() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut socket = DiagSocket::open().unwrap();
        let found = socket.dump(&Query::port(port)).unwrap();
        let asked = vec![found[0].clone(); 3 * LOOKUPS_PER_SEND + 5];
        let answers = socket.lookup(&asked).unwrap();
        assert_eq!(answers.len(), asked.len());
        assert!(answers.iter().all(Option::is_some));
    }

    /// A buffer too small for the kernel's datagram: the truncation is
    /// detected (MSG_TRUNC), never silently parsed.
    #[test]
    fn a_truncated_datagram_is_an_error() {
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut socket = DiagSocket::with_buffer(64).unwrap();
        match socket.dump(&Query::all()) {
            Err(DiagError::Truncated { got, buffer }) => {
                assert_eq!(buffer, 64);
                assert!(got > 64);
            }
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    /// The seed's legacy request (one walk, both families) returns the same
    /// sockets as two v2 requests, IPv6 included.
    #[test]
    fn the_legacy_request_returns_the_same_sockets_as_v2() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let _c4 = std::net::TcpStream::connect(v4.local_addr().unwrap()).unwrap();
        let _c6 = std::net::TcpStream::connect(v6.local_addr().unwrap()).unwrap();
        let keys = |sockets: Vec<SockInfo>| -> std::collections::BTreeSet<_> {
            sockets
                .iter()
                .map(|s| (s.state as u8, s.local, s.remote, s.inode))
                .collect()
        };
        let mut socket = DiagSocket::open().unwrap();
        // Other tests open and close sockets meanwhile, and TIME_WAIT entries
        // expire: retry until all three dumps agree.
        let mut last = None;
        for _ in 0..50 {
            let before = keys(socket.dump(&Query::all()).unwrap());
            let legacy = keys(socket.dump_legacy(&Query::all()).unwrap());
            let after = keys(socket.dump(&Query::all()).unwrap());
            if before == after && legacy == before {
                let families: std::collections::BTreeSet<bool> =
                    legacy.iter().map(|k| k.1.is_ipv6()).collect();
                assert_eq!(families.len(), 2, "both families in one legacy dump");
                return;
            }
            last = Some((
                legacy.difference(&before).copied().collect::<Vec<_>>(),
                before.difference(&legacy).copied().collect::<Vec<_>>(),
                before == after,
            ));
        }
        panic!("50 tries, never the same sockets: (only legacy, only v2, v2 stable) {last:?}");
    }

    /// A filter the kernel's audit rejects comes back as one clear error.
    #[test]
    fn a_rejected_filter_is_a_refusal() {
        let mut socket = DiagSocket::open().unwrap();
        let mut bad = bytecode::port_filter(6666);
        bad[1] = 2; // a `yes` jump that is not a multiple of 4
        let seq = socket.next_seq();
        let request = DiagRequest::dump(layout::AF_INET, Query::ALL_STATES, 0, bad).to_bytes(seq);
        let err = socket.exchange(&request, |_| Ok(()), |_| {}).unwrap_err();
        assert!(matches!(err, DiagError::Refused(Errno::EINVAL)), "{err}");
    }
}
