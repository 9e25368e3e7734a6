//! Talking to the kernel over NETLINK_SOCK_DIAG (the seed's
//! NETLINK_INET_DIAG, same protocol number 4).
//!
//! - [`request`]: the request we send, and the seed's legacy one.
//! - [`bytecode`]: the filter program the kernel runs for us.
//! - [`parse`]: the messages that come back.
//! - [`socket`]: the netlink socket, the dump loop, and the destroy events.

pub mod bytecode;
pub mod parse;
pub mod request;
pub mod socket;

pub use parse::{SockInfo, TcpInfoLite};
pub use socket::{DiagSocket, EventSocket};

use echo_lab_cli::errno_name;
use nix::errno::Errno;

/// The inodes of the sockets that have a file (0: TIME_WAIT, request
/// sockets, orphans), for the owner scan.
pub fn inodes(sockets: &[SockInfo]) -> std::collections::HashSet<u32> {
    sockets
        .iter()
        .map(|s| s.inode)
        .filter(|&i| i != 0)
        .collect()
}

/// The pending timer of a socket (`idiag_timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Off,
    /// Retransmission (or loss probe) timer: data or a SYN awaits an ACK.
    On,
    Keepalive,
    /// The TIME_WAIT timer: the entry disappears when it fires.
    TimeWait,
    /// Zero-window probe ("persist"): the peer's window is closed.
    Persist,
}

impl Timer {
    pub fn from_kernel(t: u8) -> Timer {
        match t {
            1 => Timer::On,
            2 => Timer::Keepalive,
            3 => Timer::TimeWait,
            4 => Timer::Persist,
            _ => Timer::Off,
        }
    }

    /// The name ss uses: on, keepalive, timewait, persist.
    pub fn name(self) -> &'static str {
        match self {
            Timer::Off => "off",
            Timer::On => "on",
            Timer::Keepalive => "keepalive",
            Timer::TimeWait => "timewait",
            Timer::Persist => "persist",
        }
    }
}

/// The `idiag_ext` bit asking for `struct tcp_info` (INET_DIAG_INFO = 2;
/// bit `1 << (INET_DIAG_INFO - 1)`, include/uapi/linux/inet_diag.h).
pub const EXT_INFO: u8 = 1 << (2 - 1);

/// What to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub ipv4: bool,
    pub ipv6: bool,
    /// inet_diag's state mask; 0xfff is every state, as ss asks.
    pub states: u32,
    /// Only sockets whose local or remote port is this (kernel-side filter).
    pub port: Option<u16>,
    /// `idiag_ext` bits (e.g. tcp_info).
    pub extensions: u8,
}

impl Query {
    pub const ALL_STATES: u32 = 0xfff;

    pub fn all() -> Query {
        Query {
            ipv4: true,
            ipv6: true,
            states: Query::ALL_STATES,
            port: None,
            extensions: 0,
        }
    }

    pub fn port(port: u16) -> Query {
        Query {
            port: Some(port),
            ..Query::all()
        }
    }
}

/// Why a dump failed, each worth one line to the user.
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("cannot open a NETLINK_SOCK_DIAG socket: {} ({}){}", errno_name(*.0), .0.desc(), open_hint(*.0))]
    Open(Errno),
    #[error("netlink {op}: {} ({})", errno_name(*.errno), .errno.desc())]
    Io { op: &'static str, errno: Errno },
    #[error(
        "the kernel refused the dump: {} ({}){}",
        errno_name(*.0),
        .0.desc(),
        refuse_hint(*.0)
    )]
    Refused(Errno),
    #[error(
        "a netlink datagram of {got} bytes did not fit our {buffer}-byte buffer: answer truncated"
    )]
    Truncated { got: usize, buffer: usize },
    #[error("malformed answer from the kernel: {0}")]
    Malformed(String),
    #[error("network namespace {name}: {reason}")]
    Netns { name: String, reason: String },
}

fn open_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EPROTONOSUPPORT => ": this kernel has no sock_diag (CONFIG_INET_DIAG)",
        Errno::EACCES | Errno::EPERM => ": not permitted here (a sandbox or seccomp policy?)",
        _ => "",
    }
}

fn refuse_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOENT => ": no inet_diag handler for TCP (module tcp_diag not loaded?)",
        Errno::EINVAL => ": the request or its filter was rejected",
        Errno::EPERM => ": not permitted",
        _ => "",
    }
}
