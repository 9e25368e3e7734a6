//! `observer snapshot`: one dump, printed as a table (or JSON lines).
//!
//! What `ss -tanep` shows, with the kernel's state names, the timer's
//! remaining time, and every process holding each socket.

use std::fmt::Write as _;
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
///
/// The dump and the owner scan are independent until they are joined by
/// inode, so the scan of /proc runs on other threads while this one waits
/// for the kernel's answer (with 10,000 sockets both take milliseconds).
/// Like `ss -p`, the two are not one atomic picture: a socket opened
/// between the scan and the dump is shown without its owner.
pub fn take(socket: &mut DiagSocket, query: &Query, owners: bool) -> Result<Snapshot, DiagError> {
    std::thread::scope(|threads| {
        let scan = owners.then(|| threads.spawn(|| procfs::scan_all(procfs::all_pids())));
        let sockets = socket.dump_one_walk(query)?;
        let owners = match scan {
            Some(scan) => scan.join().unwrap_or_default(),
            None => Owners::default(),
        };
        Ok(build(sockets, &owners, query.port))
    })
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

/// `echo-server[4100]/3 echo-server[4101]/3`: every holder, blank-separated.
pub fn owners_text(owners: &[Owner]) -> String {
    let mut text = String::new();
    push_owners(&mut text, owners);
    text
}

/// Append the holders as [`owners_text`] writes them.
fn push_owners(text: &mut String, owners: &[Owner]) {
    for (i, owner) in owners.iter().enumerate() {
        let gap = if i == 0 { "" } else { " " };
        // Writing to a String cannot fail.
        let _ = write!(text, "{gap}{owner}");
    }
}

/// The JSON object for one socket (schema: observer/README.md).
pub fn json_row(row: &Row) -> Value {
    let info = &row.info;
    json!({
        "state": info.state.name(),
        "local": info.local.to_string(),
        "remote": info.remote.to_string(),
        "family": if info.family == crate::layout::AF_INET6 { 6 } else { 4 },
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
    let mut table = render::Table::with_capacity(snapshot.rows.len() + 1, 10, 96);
    for heading in [
        "State", "Recv-Q", "Send-Q", "Local", "Peer", "Role", "Timer", "UID", "Inode", "Owners",
    ] {
        table.cell(&style.bold(heading));
    }
    table.end_row();
    for row in &snapshot.rows {
        let info = &row.info;
        if style.color {
            table.cell(&style.state(info.state));
        } else {
            table.cell(info.state.name());
        }
        table.cell_with(|t| render::push_decimal(t, info.recv_q.into()));
        table.cell_with(|t| render::push_decimal(t, info.send_q.into()));
        table.cell_with(|t| render::push_addr(t, info.local));
        table.cell_with(|t| render::push_remote(t, info));
        table.cell(row.role.name());
        table.cell_with(|t| render::push_timer(t, info));
        table.cell_with(|t| render::push_decimal(t, info.uid.into()));
        table.cell_with(|t| render::push_decimal(t, info.inode.into()));
        table.cell_with(|t| push_owners(t, &row.owners));
        table.end_row();
    }
    table.write_to(out)
}
