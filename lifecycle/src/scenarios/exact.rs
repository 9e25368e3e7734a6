//! `exact-handshake`: every transition of both ends, from the kernel's
//! tracepoint (root), with inet_diag's TIME_WAIT after FIN_WAIT2.

use serde_json::Value;

use crate::observer::{EventExt, Observer};
use crate::spawn::Input;
use crate::story::{Failure, PATIENCE, Story};

/// The tracepoint's transitions of one end, in order.
fn path(events: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.str("source") == "trace" && pred(e))
        .map(|e| format!("{} -> {}", e.str("prev_state"), e.str("state")))
        .collect()
}

pub fn exact_handshake(story: &mut Story) -> Result<(), Failure> {
    let server = story.server(&["--close-delay", "0.2s"])?;
    let observer = Observer::watch(server.port(), &["--exact"])?;
    story.outputs.push((
        "observer --exact".to_string(),
        observer.proc.stdout.clone(),
        observer.proc.stderr.clone(),
    ));
    let traced = observer.proc.stderr.text().contains("--exact: tracing");
    story.check(
        "observer",
        "a private tracefs instance traces sock:inet_sock_set_state",
        traced,
        || observer.proc.stderr.text(),
    )?;
    let mut client = story.client(server.addr, &[], Input::Pipe)?;
    let local = story.connected(&client)?;
    client.proc.write_stdin(b"hi\n")?;
    let out = client.finish(PATIENCE)?;
    story.check(
        "client",
        "\"hi\" echoed, then close()",
        out.stdout == b"hi\n",
        || out.stderr.clone(),
    )?;
    let l = local.to_string();
    story.see(
        &observer,
        "the client's TIME_WAIT (from inet_diag: the tracepoint never shows it)",
        |e| e.str("source") == "poll" && e.str("state") == "TIME_WAIT" && e.str("local") == l,
    )?;
    story.see(
        &observer,
        "the server's LAST_ACK -> CLOSE (from the tracepoint)",
        |e| e.str("source") == "trace" && e.str("prev_state") == "LAST_ACK",
    )?;
    let events = observer.stop()?;
    let s = server.addr.to_string();
    let unbound = format!("{}:0", local.ip());
    let client_path = path(&events, |e| {
        e.str("remote") == s && (e.str("local") == l || e.str("local") == unbound)
    });
    let expected_client = [
        "CLOSE -> SYN_SENT",
        "SYN_SENT -> ESTABLISHED",
        "ESTABLISHED -> FIN_WAIT1",
        "FIN_WAIT1 -> FIN_WAIT2",
        "FIN_WAIT2 -> CLOSE",
    ];
    story.check(
        "observer",
        &format!(
            "client, every transition in order: {}",
            expected_client.join(", ")
        ),
        client_path == expected_client,
        || format!("{client_path:?}"),
    )?;
    let server_path = path(&events, |e| e.str("local") == s && e.str("remote") == l);
    let expected_server = [
        "LISTEN -> SYN_RECV",
        "SYN_RECV -> ESTABLISHED",
        "ESTABLISHED -> CLOSE_WAIT",
        "CLOSE_WAIT -> LAST_ACK",
        "LAST_ACK -> CLOSE",
    ];
    story.check(
        "observer",
        &format!(
            "server, every transition in order: {}",
            expected_server.join(", ")
        ),
        server_path == expected_server,
        || format!("{server_path:?}"),
    )?;
    let t_of = |pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .and_then(|e| e["t"].as_f64())
    };
    let fin_wait2 = t_of(&|e| {
        e.str("source") == "trace" && e.str("state") == "FIN_WAIT2" && e.str("local") == l
    });
    let time_wait = t_of(&|e| {
        e.str("source") == "poll" && e.str("state") == "TIME_WAIT" && e.str("local") == l
    });
    story.check(
        "observer",
        "on the active closer, TIME_WAIT (inet_diag) follows FIN_WAIT2 (tracepoint)",
        matches!((fin_wait2, time_wait), (Some(a), Some(b)) if a <= b),
        || format!("FIN_WAIT2 at {fin_wait2:?}, TIME_WAIT at {time_wait:?}"),
    )?;
    if let Some(e) = events
        .iter()
        .find(|e| e.str("source") == "trace" && e.str("prev_state") == "SYN_SENT")
    {
        story.say(
            "observer",
            format!("the client spent {} us in SYN_SENT", e["prev_us"]),
        );
    }
    server.stop()?;
    Ok(())
}
