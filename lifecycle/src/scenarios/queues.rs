//! The queues of a listening socket and the port it holds (UNP 4.5, 7.5).

use std::io::Read;
use std::net::TcpStream;

use crate::bins::binaries;
use crate::spawn::{Input, Proc};
use crate::story::{Failure, PATIENCE, Story};

use super::matching::is;
use crate::observer::EventExt;

/// backlog 0 and no accept(): one connection fits the accept queue; the
/// kernel drops the next SYNs, and those clients wait in SYN_SENT, their
/// SYN retransmission timer running.
pub fn syn_sent(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&["--backlog", "0", "--accept-delay", "30s"])?;
    let observer = story.observer(server.port())?;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(story.client(server.addr, &[], Input::Pipe)?);
    }
    story.say("client", "three clients call connect()");
    story.see(
        &observer,
        "a connection completed into the accept queue",
        |e| is(e, "new", "ESTABLISHED", "client"),
    )?;
    let syn_sent = story.see(
        &observer,
        "a client in SYN_SENT: its SYN was dropped",
        |e| e.str("state") == "SYN_SENT" && e.str("role") == "client",
    )?;
    story.check(
        "observer",
        "its retransmission timer is on",
        syn_sent.str("timer") == "on",
        || syn_sent.to_string(),
    )?;
    drop(clients);
    server.stop()?;
    Ok(())
}

/// TCP_DEFER_ACCEPT: the client is ESTABLISHED, but the server's end stays
/// a request socket in SYN_RECV (no file, no owner) until data arrives.
pub fn syn_recv(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&["--defer-accept", "10s"])?;
    let observer = story.observer(server.port())?;
    let mut client = story.client(server.addr, &[], Input::Pipe)?;
    story.connected(&client)?;
    story.see(&observer, "the client's end ESTABLISHED", |e| {
        is(e, "new", "ESTABLISHED", "client")
    })?;
    let syn_recv = story.see(&observer, "the server's end in SYN_RECV", |e| {
        is(e, "new", "SYN_RECV", "server")
    })?;
    story.check(
        "observer",
        "a request socket: no process holds it yet",
        syn_recv.owner_pids().is_empty(),
        || syn_recv.to_string(),
    )?;
    client.proc.write_stdin(b"data\n")?;
    story.say(
        "client",
        "sends data: the kernel completes the connection for accept()",
    );
    story.see(&observer, "the server's end ESTABLISHED", |e| {
        matches!(e.str("event"), "new" | "state")
            && e.str("state") == "ESTABLISHED"
            && e.str("role") == "server"
    })?;
    drop(client);
    server.stop()?;
    Ok(())
}

/// The server closes first, so its port is held by a TIME_WAIT. A new
/// server on that port: EADDRINUSE without SO_REUSEADDR (the error says
/// why), and fine with it.
pub fn reuseaddr(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&["--close-after", "0"])?;
    let port = server.port();
    let mut stream = TcpStream::connect(server.addr).map_err(anyhow::Error::from)?;
    let mut buf = [0u8; 16];
    let _ = stream.read(&mut buf); // the server's FIN: EOF
    drop(stream);
    server.wait_event("server-closed", PATIENCE)?;
    let (status, _) = server.stop()?;
    story.say(
        "server",
        format!("closed first, then stopped ({status}): its port {port} is held by TIME_WAIT"),
    );
    let rows = crate::observer::snapshot(&["--port", &port.to_string(), "--state", "TIME_WAIT"])?;
    story.check(
        "observer",
        "a TIME_WAIT holds the port",
        rows.iter()
            .any(|r| r.str("local").ends_with(&format!(":{port}"))),
        || format!("{rows:#?}"),
    )?;
    let port_arg = port.to_string();
    let mut refused = Proc::spawn(
        &binaries()?.server,
        ["--port", &port_arg, "--no-reuseaddr"],
        Input::Null,
    )?;
    let status = refused.wait_exit(PATIENCE)?;
    let stderr = refused.stderr.text();
    story.check(
        "server",
        "without SO_REUSEADDR: bind fails with EADDRINUSE, and says TIME_WAIT",
        status.code() == Some(1) && stderr.contains("EADDRINUSE") && stderr.contains("TIME_WAIT"),
        || format!("{status}: {stderr}"),
    )?;
    story.say("server", stderr.trim().trim_start_matches("echo-server: "));
    let again = story.server(&["--port", &port_arg])?;
    story.check(
        "server",
        "with SO_REUSEADDR (the default): it listens again",
        again.port() == port,
        || format!("port {}", again.port()),
    )?;
    again.stop()?;
    Ok(())
}
