//! `observer --exact`: the kernel's tracepoint beside inet_diag (root).

use std::time::Duration;

use lifecycle::echo::{Client, Server};
use lifecycle::observer::{EventExt, Observer, Timeline};
use lifecycle::spawn::Input;
use serde_json::Value;

use crate::{needs_root, setup};

const T: Duration = Duration::from_secs(20);

fn instances() -> Vec<String> {
    std::fs::read_dir("/sys/kernel/tracing/instances")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("echolab-"))
                .collect()
        })
        .unwrap_or_default()
}

/// The trace transitions of one end, in order: ["CLOSE>SYN_SENT", ...].
fn path(events: &[Value], pred: impl Fn(&Value) -> bool) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.str("source") == "trace" && pred(e))
        .map(|e| format!("{}>{}", e.str("prev_state"), e.str("state")))
        .collect()
}

/// Every transition of both ends of a loopback connection, in order,
/// from the tracepoint; TIME_WAIT from inet_diag after FIN_WAIT2; the
/// tracefs instance gone after exit.
#[test]
#[ignore = "needs root: tracefs"]
fn exact_shows_every_transition_on_both_ends() {
    setup();
    needs_root("tracefs");
    let server = Server::start(&["--close-delay", "0.2s"]).unwrap();
    let observer = Observer::watch(server.port(), &["--exact"]).unwrap();
    assert!(
        observer.proc.stderr.text().contains("--exact: tracing"),
        "{}",
        observer.proc.stderr.text()
    );
    let mut client = Client::start(server.addr, &[], Input::Pipe).unwrap();
    let local = client.connected().unwrap();
    client.proc.write_stdin(b"hi\n").unwrap();
    let out = client.finish(T).unwrap();
    assert_eq!(out.stdout, b"hi\n");
    observer
        .wait_for("TIME_WAIT from inet_diag", T, |e| {
            e.str("state") == "TIME_WAIT" && e.str("local") == local.to_string()
        })
        .unwrap();
    observer
        .wait_for("the server's LAST_ACK -> CLOSE", T, |e| {
            e.str("source") == "trace" && e.str("prev_state") == "LAST_ACK"
        })
        .unwrap();
    let pid = observer.proc.pid();
    let events = observer.stop().unwrap();
    let s = server.addr.to_string();
    let l = local.to_string();
    let unbound = format!("{}:0", local.ip());
    let client_path = path(&events, |e| {
        e.str("remote") == s && (e.str("local") == l || e.str("local") == unbound)
    });
    assert_eq!(
        client_path,
        [
            "CLOSE>SYN_SENT",
            "SYN_SENT>ESTABLISHED",
            "ESTABLISHED>FIN_WAIT1",
            "FIN_WAIT1>FIN_WAIT2",
            "FIN_WAIT2>CLOSE"
        ],
        "{events:#?}"
    );
    let server_path = path(&events, |e| e.str("local") == s && e.str("remote") == l);
    assert_eq!(
        server_path,
        [
            "LISTEN>SYN_RECV",
            "SYN_RECV>ESTABLISHED",
            "ESTABLISHED>CLOSE_WAIT",
            "CLOSE_WAIT>LAST_ACK",
            "LAST_ACK>CLOSE"
        ],
        "{events:#?}"
    );
    // Ordered as one timeline, with the sampled TIME_WAIT after FIN_WAIT2.
    let ts: Vec<f64> = events.iter().map(|e| e["t"].as_f64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "timeline out of order");
    let t_of = |pred: &dyn Fn(&Value) -> bool| {
        events
            .iter()
            .find(|e| pred(e))
            .map(|e| e["t"].as_f64().unwrap())
            .unwrap()
    };
    let fin_wait2 = t_of(&|e| {
        e.str("source") == "trace" && e.str("state") == "FIN_WAIT2" && e.str("local") == l
    });
    let time_wait = t_of(&|e| {
        e.str("source") == "poll" && e.str("state") == "TIME_WAIT" && e.str("local") == l
    });
    assert!(fin_wait2 <= time_wait);
    // The time in SYN_SENT is measured, in microseconds.
    let est = events
        .iter()
        .find(|e| e.str("source") == "trace" && e.str("prev_state") == "SYN_SENT")
        .unwrap();
    assert!(est["prev_us"].as_u64().is_some(), "{est}");
    assert!(
        !instances().contains(&format!("echolab-{pid}")),
        "instance left: {:?}",
        instances()
    );
}

/// An instance left by a killed run (its pid gone) is removed at start.
#[test]
#[ignore = "needs root: tracefs"]
fn a_stale_instance_is_removed_at_start() {
    setup();
    needs_root("tracefs");
    let server = Server::start(&[]).unwrap();
    let observer = Observer::watch(server.port(), &["--exact"]).unwrap();
    let pid = observer.proc.pid();
    let mut observer = observer;
    observer.proc.kill_tree(); // SIGKILL: no cleanup
    let stale = format!("echolab-{pid}");
    assert!(instances().contains(&stale), "SIGKILL should leave {stale}");
    let next = Observer::watch(server.port(), &["--exact"]).unwrap();
    assert!(!instances().contains(&stale), "{stale} still there");
    next.stop().unwrap();
}

/// Without root: one line says why, and the sampling watch runs.
#[test]
#[ignore = "needs root: switching to an ordinary user"]
fn without_root_exact_falls_back_to_sampling() {
    setup();
    needs_root("switching to an ordinary user");
    let (mut proc, _dir) = crate::observer_as_nobody(&["--exact", "--duration", "0.3s", "--json"]);
    assert!(
        proc.wait_exit(T).unwrap().success(),
        "{}",
        proc.stderr.text()
    );
    let stderr = proc.stderr.text();
    assert!(stderr.contains("--exact needs root"), "{stderr}");
    assert!(
        stderr.contains("running as the sampling observer"),
        "{stderr}"
    );
}
