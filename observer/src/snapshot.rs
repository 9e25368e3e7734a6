//! `observer snapshot`: one dump, printed as a table (or JSON lines).
//!
//! What `ss -tanep` shows, with the kernel's state names, the timer's
//! remaining time, and every process holding each socket.

use std::collections::HashSet;
use std::io::Write;

use serde_json::{Value, json};

use crate::diag::{DiagError, DiagSocket, Query, SockInfo};
use crate::procfs::{self, Owner, Owners};
use crate::render::{self, Style};
use crate::roles::{self, Listeners, Role};

/// One socket with what we know about it.
#[derive(Debug, Clone)]
pub struct Row {
    pub info: SockInfo,
    pub role: Role,
    pub owners: Vec<Owner>,
}

/// A dump with owners and roles.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub rows: Vec<Row>,
    /// Some owners could not be seen (not root).
    pub owners_hidden: bool,
}

/// Dump, find owners (unless `owners` is false), assign roles, sort pairs
/// together.
pub fn take(socket: &mut DiagSocket, query: &Query, owners: bool) -> Result<Snapshot, DiagError> {
    let sockets = socket.dump(query)?;
    let inodes: HashSet<u32> = if owners {
        crate::diag::inodes(&sockets)
    } else {
        HashSet::new()
    };
    let owners = procfs::scan(procfs::all_pids(), &inodes);
    Ok(build(sockets, &owners, query.port))
}

/// Combine a dump with owners (separate so tests can feed fixtures).
pub fn build(sockets: Vec<SockInfo>, owners: &Owners, port: Option<u16>) -> Snapshot {
    let listeners = Listeners::from_sockets(&sockets);
    let mut rows: Vec<Row> = sockets
        .into_iter()
        .map(|info| Row {
            role: roles::role_of(&info, &listeners, port),
            owners: owners.of(info.inode).to_vec(),
            info,
        })
        .collect();
    // Listeners first, then each connection's two ends side by side.
    rows.sort_by_cached_key(|r| {
        (
            r.role != Role::Listener,
            roles::connection_key(&r.info, r.role),
            r.role,
        )
    });
    let me = nix::unistd::getuid().as_raw();
    let owners_hidden = owners.denied
        && rows
            .iter()
            .any(|r| r.info.inode != 0 && r.owners.is_empty() && r.info.uid != me);
    Snapshot {
        rows,
        owners_hidden,
    }
}

pub fn owners_text(owners: &[Owner]) -> String {
    owners
        .iter()
        .map(Owner::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The JSON object for one socket (schema: observer/README.md).
pub fn json_row(row: &Row) -> Value {
    let info = &row.info;
    json!({
        "state": info.state.name(),
        "local": info.local.to_string(),
        "remote": info.remote.to_string(),
        "family": if info.family == crate::wire::AF_INET6 { 6 } else { 4 },
        "role": row.role.name(),
        "recv_q": info.recv_q,
        "send_q": info.send_q,
        "timer": info.timer.name(),
        "expires_ms": info.expires_ms,
        "retrans": info.retrans,
        "uid": info.uid,
        "inode": info.inode,
        "cookie": info.cookie,
        "owners": owners_json(&row.owners),
    })
}

pub fn owners_json(owners: &[Owner]) -> Value {
    Value::Array(
        owners
            .iter()
            .map(|o| json!({"pid": o.pid, "comm": o.comm, "fd": o.fd}))
            .collect(),
    )
}

/// Print the snapshot as an aligned table or as JSON lines.
pub fn print(
    snapshot: &Snapshot,
    json: bool,
    style: Style,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if json {
        for row in &snapshot.rows {
            writeln!(out, "{}", json_row(row))?;
        }
        return Ok(());
    }
    let mut rows = vec![
        [
            "State", "Recv-Q", "Send-Q", "Local", "Peer", "Role", "Timer", "UID", "Inode", "Owners",
        ]
        .iter()
        .map(|h| style.bold(h))
        .collect::<Vec<_>>(),
    ];
    for row in &snapshot.rows {
        let info = &row.info;
        rows.push(vec![
            style.state(info.state),
            info.recv_q.to_string(),
            info.send_q.to_string(),
            render::addr(info.local),
            render::remote(info),
            row.role.name().to_string(),
            render::timer(info),
            info.uid.to_string(),
            info.inode.to_string(),
            owners_text(&row.owners),
        ]);
    }
    out.write_all(render::table(&rows).as_bytes())
}
