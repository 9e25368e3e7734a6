//! `thread-mode`: the same lifecycle with a thread per connection.

use crate::observer::{EventExt, Timeline};
use crate::procfs;
use crate::spawn::Input;
use crate::story::{Failure, PATIENCE, Story};

use super::handshake::accept_calls;
use super::matching::{on_conn, owned_by, reaches};

/// Handshake and client-closes-first with threads: the server's end is
/// held by the server process itself, a thread sleeps in read() while the
/// main thread sleeps in accept(), and no child process ever exists.
pub fn thread_mode(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&["--mode", "thread", "--close-delay", "1s"])?;
    let observer = story.observer(server.port())?;
    let pid = server.pid();
    let mut client = story.client(server.addr, &[], Input::Pipe)?;
    let local = story.connected(&client)?;
    story.see(
        &observer,
        "the server's end ESTABLISHED, held by the server process itself",
        |e| {
            // The socket may be seen before accept() returns it (no file
            // yet): then an `owners` event follows.
            matches!(e.str("event"), "new" | "state" | "owners")
                && e.str("state") == "ESTABLISHED"
                && e.str("role") == "server"
                && on_conn(e, &local)
                && owned_by(e, pid)
        },
    )?;
    let accepted = server.wait_event("accepted", PATIENCE)?;
    let tid = accepted.num("thread").unwrap_or(-1) as i32;
    story.say("server", format!("thread {tid} serves {local}"));
    story.wait(
        "/proc",
        "the thread sleeps in read(), the main thread in accept()",
        || {
            let thread_reads = procfs::blocked_in_task(pid, tid, libc::SYS_read);
            let main_accepts = accept_calls()
                .iter()
                .any(|&nr| procfs::blocked_in_task(pid, pid, nr));
            (thread_reads && main_accepts).then_some(())
        },
        || format!("{:?}", procfs::thread_wchans(pid)),
    )?;
    client.proc.write_stdin(b"hello\n")?;
    let out = client.finish(PATIENCE)?;
    story.check(
        "client",
        "\"hello\" echoed, then the client closes",
        out.stdout == b"hello\n",
        || out.stderr.clone(),
    )?;
    story.see(&observer, "the client's end in FIN_WAIT2", |e| {
        reaches(e, "FIN_WAIT2", "client") && on_conn(e, &local)
    })?;
    story.see(&observer, "the server's end in CLOSE_WAIT", |e| {
        reaches(e, "CLOSE_WAIT", "server") && on_conn(e, &local)
    })?;
    story.see(&observer, "the client's end in TIME_WAIT", |e| {
        reaches(e, "TIME_WAIT", "client") && on_conn(e, &local)
    })?;
    story.see(&observer, "the server's end gone", |e| {
        e.str("event") == "gone" && e.str("role") == "server" && on_conn(e, &local)
    })?;
    let children: Vec<_> = observer
        .events()
        .into_iter()
        .filter(|e| e.str("event") == "process" && e.int("ppid") == pid as i64)
        .collect();
    story.check(
        "observer",
        "no child process appeared at any time",
        children.is_empty(),
        || format!("{children:#?}"),
    )?;
    story.check(
        "/proc",
        "the server has no children now",
        procfs::children(pid).is_empty(),
        || format!("{:?}", procfs::children(pid)),
    )?;
    let (status, events) = server.stop()?;
    let joined = events
        .iter()
        .find(|l| l.event == "summary")
        .and_then(|s| s.num("joined"));
    story.check(
        "server",
        "SIGTERM: its one thread joined, exit 0",
        status.success() && joined == Some(1),
        || format!("{status:?}, joined {joined:?}"),
    )?;
    Ok(())
}
