//! Who is who: the listener, the server's end, the client's end.
//!
//! On loopback both ends of a connection are in the same table: the
//! client's socket (local 127.0.0.1:51230, remote 127.0.0.1:6666) and the
//! server's (local 127.0.0.1:6666, remote 127.0.0.1:51230) are mirror
//! images. The server's end is the one whose local port has a listener
//! (accept() hands out sockets on the listener's port); the other is the
//! client's. When the listener is out of sight (another namespace, or it
//! already closed), the watched port decides.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use crate::diag::SockInfo;
use crate::tcp_state::TcpState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Listener,
    Server,
    Client,
    Unknown,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Listener => "listener",
            Role::Server => "server",
            Role::Client => "client",
            Role::Unknown => "-",
        }
    }

    /// Does a socket in this role open actively (connect) or passively?
    pub fn active_opener(self) -> Option<bool> {
        match self {
            Role::Client => Some(true),
            Role::Server => Some(false),
            _ => None,
        }
    }
}

/// The listening addresses seen, to recognise a server's end.
#[derive(Debug, Default, Clone)]
pub struct Listeners {
    addrs: HashSet<SocketAddr>,
}

/// `::ffff:127.0.0.1` and `127.0.0.1` are the same host.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// 127.0.0.0/8, ::1, and 127.x written as IPv6 (`::ffff:127.0.0.1`).
pub fn is_loopback(ip: IpAddr) -> bool {
    canonical(ip).is_loopback()
}

impl Listeners {
    pub fn from_sockets<'a>(sockets: impl IntoIterator<Item = &'a SockInfo>) -> Listeners {
        let mut listeners = Listeners::default();
        for s in sockets {
            listeners.add(s);
        }
        listeners
    }

    pub fn add(&mut self, socket: &SockInfo) {
        if socket.state == TcpState::Listen {
            self.addrs.insert(socket.local);
        }
    }

    /// A listening address learned another way (the tracepoint).
    pub fn add_addr(&mut self, addr: SocketAddr) {
        self.addrs.insert(addr);
    }

    /// Is there a listener this address could have been accepted on?
    pub fn serves(&self, addr: SocketAddr) -> bool {
        self.addrs.iter().any(|l| {
            l.port() == addr.port()
                && (l.ip().is_unspecified() || canonical(l.ip()) == canonical(addr.ip()))
        })
    }
}

/// The role of one socket.
pub fn role_of(socket: &SockInfo, listeners: &Listeners, port: Option<u16>) -> Role {
    if socket.state == TcpState::Listen {
        return Role::Listener;
    }
    role_of_addrs(socket.local, socket.remote, listeners, port)
}

/// The role of a connected socket, from its two addresses.
pub fn role_of_addrs(
    local: SocketAddr,
    remote: SocketAddr,
    listeners: &Listeners,
    port: Option<u16>,
) -> Role {
    if listeners.serves(local) {
        return Role::Server;
    }
    if listeners.serves(remote) {
        return Role::Client;
    }
    match port {
        Some(p) if local.port() == p => Role::Server,
        Some(p) if remote.port() == p => Role::Client,
        _ => Role::Unknown,
    }
}

/// The connection a socket belongs to, the same for both ends:
/// (server side, client side) when the roles are known.
pub fn connection_key(socket: &SockInfo, role: Role) -> (SocketAddr, SocketAddr) {
    connection_key_of(socket.local, socket.remote, role)
}

/// The same, from the two addresses.
pub fn connection_key_of(
    local: SocketAddr,
    remote: SocketAddr,
    role: Role,
) -> (SocketAddr, SocketAddr) {
    match role {
        Role::Client => (remote, local),
        Role::Server | Role::Listener => (local, remote),
        Role::Unknown => {
            if local <= remote {
                (local, remote)
            } else {
                (remote, local)
            }
        }
    }
}
