//! How connections end (UNP 2.6, 5.12, 6.6, 7.5; RFC 9293 3.6).

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::echo::{Client, Server};
use crate::observer::{EventExt, Observer, Timeline};
use crate::random_bytes;
use crate::spawn::Input;
use crate::story::{Failure, PATIENCE, Story};

use super::matching::{on_conn, owned_by, reaches};

/// Connect a lockstep client, echo one line, return it and its address.
fn connect_and_echo(
    story: &mut Story,
    server: &Server,
    args: &[&str],
) -> Result<(Client, std::net::SocketAddr), Failure> {
    let mut client = story.client(server.addr, args, Input::Pipe)?;
    let local = story.connected(&client)?;
    client.proc.write_stdin(b"hello\n")?;
    story.wait(
        "client",
        "\"hello\" echoed",
        || (client.proc.stdout.bytes() == b"hello\n").then_some(()),
        || client.proc.stderr.text(),
    )?;
    Ok((client, local))
}

/// The child that serves the connection from `local`.
fn child_for(server: &Server, local: &std::net::SocketAddr) -> Result<i32, Failure> {
    let peer = local.to_string();
    let lines = server.wait_events("the accepted line", 1, PATIENCE, |l| {
        l.event == "accepted" && l.get("peer") == Some(peer.as_str())
    })?;
    Ok(lines[0].num("child").unwrap_or(-1) as i32)
}

/// No event put this connection's `role` end in TIME_WAIT.
fn no_time_wait(
    story: &mut Story,
    observer: &Observer,
    local: &std::net::SocketAddr,
    role: &str,
) -> Result<(), Failure> {
    let events = observer.events();
    let bad: Vec<&Value> = events
        .iter()
        .filter(|e| {
            on_conn(e, local)
                && e.str("state") == "TIME_WAIT"
                && (role.is_empty() || e.str("role") == role)
        })
        .collect();
    let what = if role.is_empty() {
        "no TIME_WAIT on either side".to_string()
    } else {
        format!("no TIME_WAIT on the {role}'s side")
    };
    story.check("observer", &what, bad.is_empty(), || format!("{bad:#?}"))
}

fn expect_reaped(
    story: &mut Story,
    server: &Server,
    child: i32,
    status: &str,
) -> Result<(), Failure> {
    let child_s = child.to_string();
    let line = server.wait_events("the child reaped", 1, PATIENCE, |l| {
        l.event == "reaped" && l.get("child") == Some(child_s.as_str())
    })?;
    let got = line[0].get("status").unwrap_or("").to_string();
    story.check(
        "server",
        &format!("child {child} reaped, status {status}"),
        got == status,
        || format!("status {got}"),
    )?;
    story.check(
        "/proc",
        "no zombie among the server's children",
        server.zombies().is_empty(),
        || format!("zombies: {:?}", server.zombies()),
    )
}

/// The client closes first: its end goes FIN_WAIT2 (held by the server's
/// --close-delay) then TIME_WAIT for 60 s; the server's end CLOSE_WAIT,
/// then LAST_ACK, then gone. The child exits and is reaped.
pub fn client_closes_first(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&["--close-delay", "1s"])?;
    let observer = story.observer(server.port())?;
    let (client, local) = connect_and_echo(story, &server, &[])?;
    let child = child_for(&server, &local)?;
    let out = client.finish(PATIENCE)?;
    story.check(
        "client",
        "stdin EOF: the client closes and exits 0",
        out.status.success(),
        || out.stderr.clone(),
    )?;
    story.see(
        &observer,
        "the client's end in FIN_WAIT2 (our FIN acknowledged)",
        |e| reaches(e, "FIN_WAIT2", "client") && on_conn(e, &local),
    )?;
    story.see(
        &observer,
        "the server's end in CLOSE_WAIT (their FIN received)",
        |e| reaches(e, "CLOSE_WAIT", "server") && on_conn(e, &local),
    )?;
    let tw = story.see(&observer, "the client's end in TIME_WAIT", |e| {
        reaches(e, "TIME_WAIT", "client") && on_conn(e, &local)
    })?;
    let left = tw.int("expires_ms");
    story.check(
        "observer",
        &format!(
            "TIME_WAIT counts down from about 60 s ({:.1} s left)",
            left as f64 / 1000.0
        ),
        (50_000..=60_000).contains(&left),
        || format!("{tw}"),
    )?;
    story.see(&observer, "the server's end gone", |e| {
        e.str("event") == "gone" && e.str("role") == "server" && on_conn(e, &local)
    })?;
    expect_reaped(story, &server, child, "exited:0")?;
    no_time_wait(story, &observer, &local, "server")?;
    server.stop()?;
    Ok(())
}

/// The server closes first (--close-after): FIN_WAIT2 and then TIME_WAIT
/// on the server's side; the client sits in CLOSE_WAIT until it closes.
pub fn server_closes_first(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&["--close-after", "1"])?;
    let observer = story.observer(server.port())?;
    let (client, local) = connect_and_echo(story, &server, &[])?;
    server.wait_event("server-closed", PATIENCE)?;
    story.say(
        "server",
        "echoed 6 bytes, then close(): the server closes first",
    );
    story.see(&observer, "the server's end in FIN_WAIT2", |e| {
        reaches(e, "FIN_WAIT2", "server") && on_conn(e, &local)
    })?;
    story.see(
        &observer,
        "the client's end in CLOSE_WAIT (blocked on stdin, it has not noticed)",
        |e| reaches(e, "CLOSE_WAIT", "client") && on_conn(e, &local),
    )?;
    let out = client.finish(PATIENCE)?;
    story.check(
        "client",
        "stdin EOF: the client closes too",
        out.status.success(),
        || out.stderr.clone(),
    )?;
    let tw = story.see(&observer, "TIME_WAIT on the server's side", |e| {
        reaches(e, "TIME_WAIT", "server") && on_conn(e, &local)
    })?;
    let left = tw.int("expires_ms");
    story.check(
        "observer",
        "its countdown starts near 60 s",
        (50_000..=60_000).contains(&left),
        || format!("{tw}"),
    )?;
    story.see(
        &observer,
        "the client's end gone (LAST_ACK acknowledged)",
        |e| e.str("event") == "gone" && e.str("role") == "client" && on_conn(e, &local),
    )?;
    no_time_wait(story, &observer, &local, "client")?;
    server.stop()?;
    Ok(())
}

/// Half-close: the poll client sends its input and shuts down its write
/// side; its end waits in FIN_WAIT2, still owned and reading, while the
/// server (CLOSE_WAIT) finishes; every byte arrives.
pub fn half_close(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&["--close-delay", "1s"])?;
    let observer = story.observer(server.port())?;
    let mut client = story.client(server.addr, &["--mode", "poll"], Input::Pipe)?;
    let local = story.connected(&client)?;
    let client_pid = client.proc.pid();
    let data = random_bytes(11, 512 * 1024);
    let feeder = client.proc.feed_stdin(data.clone());
    story.say(
        "client",
        format!("sends {} bytes, then shutdown(SHUT_WR) at EOF", data.len()),
    );
    story.see(
        &observer,
        "the client's end in FIN_WAIT2, still held by echo-client",
        |e| reaches(e, "FIN_WAIT2", "client") && on_conn(e, &local) && owned_by(e, client_pid),
    )?;
    story.see(
        &observer,
        "the server's end in CLOSE_WAIT while it finishes",
        |e| reaches(e, "CLOSE_WAIT", "server") && on_conn(e, &local),
    )?;
    let out = client.finish(PATIENCE)?;
    let _ = feeder.join();
    story.check(
        "client",
        &format!("all {} bytes came back, then the server's FIN", data.len()),
        out.status.success() && out.stdout == data,
        || format!("got {} bytes; {}", out.stdout.len(), out.stderr),
    )?;
    story.see(&observer, "the client's end in TIME_WAIT", |e| {
        reaches(e, "TIME_WAIT", "client") && on_conn(e, &local)
    })?;
    server.stop()?;
    Ok(())
}

/// SO_LINGER 0: close() sends RST; both ends vanish at once, no
/// TIME_WAIT anywhere; the child reads ECONNRESET and exits cleanly.
pub fn reset(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&[])?;
    let observer = story.observer(server.port())?;
    let (client, local) = connect_and_echo(story, &server, &["--reset"])?;
    let child = child_for(&server, &local)?;
    story.see(&observer, "the client's end ESTABLISHED", |e| {
        reaches(e, "ESTABLISHED", "client") && on_conn(e, &local)
    })?;
    story.see(&observer, "the server's end ESTABLISHED", |e| {
        reaches(e, "ESTABLISHED", "server") && on_conn(e, &local)
    })?;
    let out = client.finish(PATIENCE)?;
    story.check(
        "client",
        "closes with RST (SO_LINGER 0) and exits 0",
        out.status.success(),
        || out.stderr.clone(),
    )?;
    story.see(&observer, "the client's end gone at once", |e| {
        e.str("event") == "gone" && e.str("role") == "client" && on_conn(e, &local)
    })?;
    story.see(&observer, "the server's end gone at once", |e| {
        e.str("event") == "gone" && e.str("role") == "server" && on_conn(e, &local)
    })?;
    let peer = local.to_string();
    let error = server.wait_events("the child's read error", 1, PATIENCE, |l| {
        l.event == "connection-error" && l.get("peer") == Some(peer.as_str())
    })?;
    story.check(
        "server",
        "the child's read() returned ECONNRESET",
        error[0].get("errno") == Some("ECONNRESET"),
        || format!("{:?}", error[0]),
    )?;
    expect_reaped(story, &server, child, "exited:0")?;
    no_time_wait(story, &observer, &local, "")?;
    server.stop()?;
    Ok(())
}

/// The server's child is killed while the lockstep client waits on stdin
/// (UNP 5.12): the child's kernel sends FIN (client: CLOSE_WAIT, unnoticed);
/// the client writes its next line, the server's kernel answers RST, and
/// the client reports that the server terminated prematurely.
pub fn server_killed(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&[])?;
    let observer = story.observer(server.port())?;
    let (mut client, local) = connect_and_echo(story, &server, &[])?;
    let child = child_for(&server, &local)?;
    kill(Pid::from_raw(child), Signal::SIGKILL).map_err(anyhow::Error::from)?;
    story.say(
        "harness",
        format!("kill -9 {child}: the server's child dies"),
    );
    expect_reaped(story, &server, child, "killed:SIGKILL")?;
    story.see(
        &observer,
        "the client's end in CLOSE_WAIT: the dead child's FIN arrived",
        |e| reaches(e, "CLOSE_WAIT", "client") && on_conn(e, &local),
    )?;
    client.proc.write_stdin(b"second line\n")?;
    story.say(
        "client",
        "writes its next line into the half-dead connection",
    );
    let out = client.finish(PATIENCE)?;
    story.check(
        "client",
        "exit 1: \"server terminated prematurely\", naming the RST",
        out.status.code() == Some(1)
            && out.stderr.contains("server terminated prematurely")
            && out.stderr.contains("RST"),
        || out.stderr.clone(),
    )?;
    let msg = out.stderr.lines().last().unwrap_or("").to_string();
    story.say("client", msg.trim_start_matches("echo-client: "));
    story.see(
        &observer,
        "the client's end gone from CLOSE_WAIT: reset, no LAST_ACK",
        |e| e.str("event") == "gone" && e.str("role") == "client" && on_conn(e, &local),
    )?;
    no_time_wait(story, &observer, &local, "")?;
    server.stop()?;
    Ok(())
}
