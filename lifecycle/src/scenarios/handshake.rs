//! `handshake`: what the three-way handshake leaves behind (UNP 2.6, 4.8).

use crate::observer::{EventExt, Observer, Timeline};
use crate::procfs;
use crate::spawn::Input;
use crate::story::{Failure, Story};

use super::matching::{is, owned_by};

/// LISTEN owned by the server; after connect() both ends ESTABLISHED, the
/// client's owned by echo-client, the server's by the child that serves
/// it; the child sleeps in read(), the parent in accept().
pub fn fork_mode(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&[])?;
    let observer = story.observer(server.port())?;
    let parent = server.pid();
    story.see(&observer, "LISTEN, owned by the server", |e| {
        e.str("state") == "LISTEN" && owned_by(e, parent)
    })?;

    let client = story.client(server.addr, &[], Input::Pipe)?;
    let local = story.connected(&client)?.to_string();
    let client_pid = client.proc.pid();
    story.see(
        &observer,
        "the client's end ESTABLISHED, owned by echo-client",
        |e| {
            is(e, "new", "ESTABLISHED", "client")
                && e.str("local") == local
                && owned_by(e, client_pid)
        },
    )?;
    let accepted = server.wait_event("accepted", crate::story::PATIENCE)?;
    let child = accepted.num("child").unwrap_or(-1) as i32;
    story.say(
        "server",
        format!("accept() returned; fork() made child {child} to serve {local}"),
    );
    story.see(
        &observer,
        "the server's end ESTABLISHED, held by the child",
        |e| {
            matches!(e.str("event"), "new" | "owners")
                && e.str("role") == "server"
                && e.str("remote") == local
                && owned_by(e, child)
        },
    )?;
    story.check(
        "observer",
        "both ends belong to one connection",
        same_conn(&observer, &local),
        || format!("{:#?}", observer.events()),
    )?;
    expect_sleeping(
        story,
        child,
        "the child sleeps in read() on its socket",
        &[libc::SYS_read],
    )?;
    expect_sleeping(
        story,
        parent,
        "the parent sleeps in accept()",
        &accept_calls(),
    )?;
    drop(client);
    server.stop()?;
    Ok(())
}

/// Both ends of the connection of client `local` carry the same `conn`.
fn same_conn(observer: &Observer, local: &str) -> bool {
    let events = observer.events();
    let conn_of = |role: &str| {
        events
            .iter()
            .find(|e| {
                e.str("role") == role && (e.str("local") == local || e.str("remote") == local)
            })
            .map(|e| e["conn"].clone())
    };
    conn_of("client").is_some() && conn_of("client") == conn_of("server")
}

/// accept() is accept4 in socket2; plain accept exists on x86-64 too.
pub fn accept_calls() -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    return vec![libc::SYS_accept4, libc::SYS_accept];
    #[cfg(not(target_arch = "x86_64"))]
    return vec![libc::SYS_accept4];
}

/// Wait until `pid` sleeps in one of `calls` (from /proc/PID/syscall) and
/// narrate its wchan.
pub fn expect_sleeping(
    story: &mut Story,
    pid: i32,
    expectation: &str,
    calls: &[i64],
) -> Result<(), Failure> {
    story.wait(
        "/proc",
        expectation,
        || {
            calls
                .iter()
                .any(|&nr| procfs::blocked_in(pid, nr))
                .then_some(())
        },
        || {
            format!(
                "{:?}; syscall: {}",
                procfs::info(pid),
                procfs::syscall_line(pid)
            )
        },
    )?;
    let wchan = procfs::info(pid).map(|p| p.wchan).unwrap_or_default();
    story.say("/proc", format!("pid {pid} wchan: {wchan}"));
    Ok(())
}
