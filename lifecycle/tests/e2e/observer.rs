//! The observer against real echo-server/echo-client processes.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use lifecycle::bins::binaries;
use lifecycle::echo::{Client, Server};
use lifecycle::observer::{EventExt, Observer, Timeline, snapshot};
use lifecycle::spawn::{Input, Proc};
use lifecycle::wait;
use serde_json::Value;

use crate::setup;

const T: Duration = Duration::from_secs(20);

/// (state, recv_q, send_q, local, peer, inode, uid) as ss prints them.
type Row = (String, u64, u64, String, String, u64, u64);

/// `*:6666`, `[::]:6666`, `0.0.0.0:6666` all mean "any address".
fn norm_addr(addr: &str) -> String {
    for any in ["*:", "[::]:", "0.0.0.0:"] {
        if let Some(port) = addr.strip_prefix(any) {
            return format!("any:{port}");
        }
    }
    addr.to_string()
}

/// `ss -tane [FILTER]`, parsed.
fn ss(filter: &[&str]) -> BTreeSet<Row> {
    let out = Command::new("ss")
        .args(["-tanHe"])
        .args(filter)
        .output()
        .unwrap();
    assert!(out.status.success(), "ss failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let state = match f[0] {
                "ESTAB" => "ESTABLISHED".to_string(),
                "UNCONN" => "CLOSE".to_string(),
                other => other.replace('-', "_").replace("FIN_WAIT_", "FIN_WAIT"),
            };
            let field = |name: &str| {
                f.iter()
                    .find_map(|x| x.strip_prefix(name))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            Some((
                state,
                f[1].parse().ok()?,
                f[2].parse().ok()?,
                norm_addr(f[3]),
                norm_addr(f[4]),
                field("ino:"),
                field("uid:"),
            ))
        })
        .collect()
}

fn ours(rows: &[Value]) -> BTreeSet<Row> {
    rows.iter()
        .map(|r| {
            let peer = if r.str("state") == "LISTEN" {
                // ss prints a listener's peer as `*` (v4: 0.0.0.0:*).
                "any:*".to_string()
            } else {
                norm_addr(r.str("remote"))
            };
            (
                r.str("state").to_string(),
                r.int("recv_q") as u64,
                r.int("send_q") as u64,
                norm_addr(r.str("local")),
                peer,
                r.int("inode") as u64,
                r.int("uid") as u64,
            )
        })
        .collect()
}

/// Take ours, ss's, ours again until the world held still for all three,
/// then the sets must be equal.
fn assert_same_as_ss(observer_args: &[&str], ss_filter: &[&str]) {
    let mut last = None;
    for _ in 0..50 {
        let before = ours(&snapshot(observer_args).unwrap());
        let theirs = ss(ss_filter);
        let after = ours(&snapshot(observer_args).unwrap());
        if before == after && before == theirs {
            assert!(!before.is_empty());
            return;
        }
        last = Some((before, theirs, after));
    }
    let (before, theirs, after) = last.unwrap();
    let only_ours: Vec<_> = before.difference(&theirs).collect();
    let only_ss: Vec<_> = theirs.difference(&before).collect();
    panic!(
        "observer and ss disagree:\nonly observer: {only_ours:#?}\nonly ss: {only_ss:#?}\n(second observer: {} rows)",
        after.len()
    );
}

/// A port with something in every interesting state: LISTEN, ESTABLISHED
/// pairs, FIN_WAIT2/CLOSE_WAIT held, a server-side TIME_WAIT.
fn busy_port() -> (Server, Server, Vec<Client>) {
    let server = Server::start(&["--close-delay", "30s"]).unwrap();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let client = Client::start(server.addr, &[], Input::Pipe).unwrap();
        client.connected().unwrap();
        clients.push(client);
    }
    // One client closes: its end FIN_WAIT2, the server's CLOSE_WAIT.
    let closing = clients.pop().unwrap();
    closing.finish(T).unwrap();
    server.wait_event("holding", T).unwrap();
    // A second server that closes first: TIME_WAIT on its side.
    let closer = Server::start(&["--close-after", "0"]).unwrap();
    let out = Client::run(closer.addr, &[], b"", T).unwrap();
    assert!(out.status.success() || out.status.code() == Some(1));
    (server, closer, clients)
}

/// `observer snapshot --port P` lists exactly what `ss -tane` does for the
/// same port: states, queues, addresses, inodes, uids.
#[test]
fn snapshot_of_a_port_equals_ss() {
    setup();
    let (server, closer, _clients) = busy_port();
    let p = server.port().to_string();
    let filter = format!("( sport = :{p} or dport = :{p} )");
    assert_same_as_ss(&["--port", &p], &[&filter]);
    let p = closer.port().to_string();
    let filter = format!("( sport = :{p} or dport = :{p} )");
    assert_same_as_ss(&["--port", &p], &[&filter]);
}

/// With `--all`, every TCP socket of the machine, as `ss -tane`.
#[test]
fn snapshot_of_everything_equals_ss() {
    setup();
    let _busy = busy_port();
    assert_same_as_ss(&["--all"], &[]);
}

/// Owners: the listener belongs to the server; the server's end of a
/// connection to the child that serves it; the client's end to the client.
#[test]
fn snapshot_names_every_owner() {
    setup();
    let server = Server::start(&[]).unwrap();
    let client = Client::start(server.addr, &[], Input::Pipe).unwrap();
    let local = client.connected().unwrap();
    let accepted = server.wait_event("accepted", T).unwrap();
    let child = accepted.num("child").unwrap();
    let rows = wait::until("the parent to close its copy", T, || {
        let rows = snapshot(&["--port", &server.port().to_string()]).unwrap();
        let server_end = rows.iter().find(|r| r.str("role") == "server")?;
        (server_end.owner_pids() == vec![child]).then_some(rows)
    })
    .unwrap();
    let listener = rows.iter().find(|r| r.str("state") == "LISTEN").unwrap();
    assert_eq!(listener.owner_pids(), vec![server.pid() as i64]);
    assert_eq!(listener.str("role"), "listener");
    let client_end = rows.iter().find(|r| r.str("role") == "client").unwrap();
    assert_eq!(client_end.str("local"), local.to_string());
    assert_eq!(client_end.owner_pids(), vec![client.proc.pid() as i64]);
    assert_eq!(client_end["owners"][0]["comm"], "echo-client");
}

/// IPv6, and IPv4 clients of a dual-stack listener seen as v4-mapped
/// addresses (::ffff:127.0.0.1), with roles still right.
#[test]
fn ipv6_and_v4_mapped_addresses() {
    setup();
    let server = Server::start(&["--bind", "::"]).unwrap();
    let v6 = Client::start(
        "[::1]:0"
            .parse::<std::net::SocketAddr>()
            .map(|a| std::net::SocketAddr::new(a.ip(), server.port()))
            .unwrap(),
        &[],
        Input::Pipe,
    )
    .unwrap();
    let v4 = Client::start(
        std::net::SocketAddr::new("127.0.0.1".parse().unwrap(), server.port()),
        &[],
        Input::Pipe,
    )
    .unwrap();
    v6.connected().unwrap();
    v4.connected().unwrap();
    let port = server.port().to_string();
    let rows = wait::until("four connection ends", T, || {
        let rows = snapshot(&["--port", &port]).unwrap();
        (rows
            .iter()
            .filter(|r| r.str("state") == "ESTABLISHED")
            .count()
            == 4)
            .then_some(rows)
    })
    .unwrap();
    let mapped = format!("[::ffff:127.0.0.1]:{port}");
    let server_mapped = rows
        .iter()
        .find(|r| r.str("local") == mapped)
        .expect("a v4-mapped server end");
    assert_eq!(server_mapped.str("role"), "server");
    assert_eq!(server_mapped["family"], 6);
    let client_v4 = rows
        .iter()
        .find(|r| r.str("remote") == format!("127.0.0.1:{port}"))
        .unwrap();
    assert_eq!(client_v4.str("role"), "client");
    assert_eq!(client_v4["family"], 4);
    let client_v6 = rows
        .iter()
        .find(|r| r.str("remote") == format!("[::1]:{port}"))
        .unwrap();
    assert_eq!(client_v6.str("role"), "client");
    assert_same_as_ss(
        &["--port", &port],
        &[&format!("( sport = :{port} or dport = :{port} )")],
    );
}

fn is(event: &Value, kind: &str, state: &str, role: &str) -> bool {
    event.str("event") == kind && event.str("state") == state && event.str("role") == role
}

/// An end first seen ESTABLISHED, or seen arriving there: a poll that
/// falls inside the handshake (about 100 us on loopback, longer on a
/// loaded machine) sees the client in SYN_SENT first, and that is right.
fn reached(event: &Value, state: &str, role: &str) -> bool {
    is(event, "new", state, role) || is(event, "state", state, role)
}

/// The life of one connection, as the watch tells it: LISTEN, both ends
/// ESTABLISHED with their owners, FIN_WAIT2 and CLOSE_WAIT held by
/// --close-delay, TIME_WAIT on the client (the active closer) with about
/// 60 s to go, the server's end gone after LAST_ACK.
#[test]
fn watch_tells_a_connection_from_listen_to_time_wait() {
    setup();
    let server = Server::start(&["--close-delay", "1s"]).unwrap();
    let observer = Observer::watch(server.port(), &[]).unwrap();
    let listen = observer
        .wait_for("LISTEN", T, |e| e.str("state") == "LISTEN")
        .unwrap();
    assert_eq!(listen.owner_pids(), vec![server.pid() as i64]);
    assert_eq!(listen.str("role"), "listener");

    let mut client = Client::start(server.addr, &[], Input::Pipe).unwrap();
    client.connected().unwrap();
    let c = observer
        .wait_for("client ESTABLISHED", T, |e| {
            reached(e, "ESTABLISHED", "client")
        })
        .unwrap();
    assert_eq!(c.owner_pids(), vec![client.proc.pid() as i64]);
    let s = observer
        .wait_for("server ESTABLISHED", T, |e| {
            reached(e, "ESTABLISHED", "server")
        })
        .unwrap();
    assert_eq!(c["conn"], s["conn"], "both ends are one connection");
    let child = server
        .wait_event("accepted", T)
        .unwrap()
        .num("child")
        .unwrap();
    // The child may hold it only after fork(), a poll or two later.
    observer
        .wait_for("the server's end held by the child", T, |e| {
            e.str("role") == "server"
                && e.str("remote") == c.str("local")
                && e.owner_pids().contains(&child)
        })
        .unwrap();

    client.proc.write_stdin(b"hello\n").unwrap();
    let out = client.finish(T).unwrap();
    assert_eq!(out.stdout, b"hello\n");

    // This connection's ends only: an earlier test's server may have had
    // this port, and its TIME_WAIT entries are still listed.
    let ours = |e: &Value| e.str("local") == c.str("local") || e.str("remote") == c.str("local");
    let fw2 = observer
        .wait_for("client FIN_WAIT2", T, |e| {
            ours(e) && e.str("state") == "FIN_WAIT2" && e.str("role") == "client"
        })
        .unwrap();
    let cw = observer
        .wait_for("server CLOSE_WAIT", T, |e| {
            ours(e) && is(e, "state", "CLOSE_WAIT", "server")
        })
        .unwrap();
    let tw = observer
        .wait_for("client TIME_WAIT", T, |e| {
            ours(e) && e.str("state") == "TIME_WAIT" && e.str("role") == "client"
        })
        .unwrap();
    // Held about a second by --close-delay 1s: seen, not guessed.
    assert!(
        tw["t"].as_f64().unwrap() - fw2["t"].as_f64().unwrap() > 0.5,
        "{fw2}\n{tw}"
    );
    assert!(cw["t"].as_f64().unwrap() <= tw["t"].as_f64().unwrap());
    let left = tw.int("expires_ms");
    assert!(
        (50_000..=60_000).contains(&left),
        "TIME_WAIT countdown {left} ms"
    );
    observer
        .wait_for("server end gone", T, |e| {
            ours(e) && e.str("event") == "gone" && e.str("role") == "server"
        })
        .unwrap();
    let events = observer.stop().unwrap();
    // Nothing claims TIME_WAIT on the server side.
    assert!(
        !events
            .iter()
            .any(|e| ours(e) && e.str("state") == "TIME_WAIT" && e.str("role") == "server")
    );
}

/// TCP_DEFER_ACCEPT holds the server's end in SYN_RECV (a request socket,
/// no owner yet) while the client already counts as ESTABLISHED.
#[test]
fn watch_sees_syn_recv_held_by_defer_accept() {
    setup();
    let server = Server::start(&["--defer-accept", "10s"]).unwrap();
    let observer = Observer::watch(server.port(), &[]).unwrap();
    let client = Client::start(server.addr, &[], Input::Pipe).unwrap();
    client.connected().unwrap();
    let syn_recv = observer
        .wait_for("server SYN_RECV", T, |e| e.str("state") == "SYN_RECV")
        .unwrap();
    assert_eq!(syn_recv.str("role"), "server");
    assert!(
        syn_recv.owner_pids().is_empty(),
        "a request socket has no file"
    );
    observer
        .wait_for("client ESTABLISHED", T, |e| {
            reached(e, "ESTABLISHED", "client")
        })
        .unwrap();
}

/// A full accept queue: SYNs are dropped and later clients sit in SYN_SENT.
#[test]
fn watch_sees_syn_sent_held_by_a_full_accept_queue() {
    setup();
    let server = Server::start(&["--backlog", "0", "--accept-delay", "30s"]).unwrap();
    let observer = Observer::watch(server.port(), &[]).unwrap();
    let clients: Vec<Client> = (0..3)
        .map(|_| Client::start(server.addr, &[], Input::Pipe).unwrap())
        .collect();
    let syn_sent = observer
        .wait_for("a client in SYN_SENT", T, |e| e.str("state") == "SYN_SENT")
        .unwrap();
    assert_eq!(syn_sent.str("role"), "client");
    assert_eq!(
        syn_sent.str("timer"),
        "on",
        "the SYN retransmission timer runs"
    );
    drop(clients);
}

/// The README's row, exactly: `--backlog 1 --accept-delay 60s` and three
/// clients: the accept queue holds backlog + 1 = 2 connections, so two
/// clients are ESTABLISHED (nobody accepted them) and the third sits in
/// SYN_SENT, its SYNs dropped.
#[test]
fn backlog_1_queues_two_and_the_third_client_sits_in_syn_sent() {
    use observer::tcp_state::TcpState;
    setup();
    let server = Server::start(&["--backlog", "1", "--accept-delay", "60s"]).unwrap();
    let mut clients = Vec::new();
    let client_ends = |state: TcpState| {
        let mut diag = observer::diag::DiagSocket::open().unwrap();
        let sockets = diag
            .dump(&observer::diag::Query::port(server.port()))
            .unwrap();
        sockets
            .iter()
            .filter(|s| s.remote.port() == server.port() && s.state == state)
            .count()
    };
    // One at a time, so that which one is refused is known.
    for n in 1..=2 {
        clients.push(Client::start(server.addr, &[], Input::Pipe).unwrap());
        wait::until(&format!("{n} client ends ESTABLISHED"), T, || {
            (client_ends(TcpState::Established) == n).then_some(())
        })
        .unwrap();
    }
    clients.push(Client::start(server.addr, &[], Input::Pipe).unwrap());
    wait::until("the third client in SYN_SENT", T, || {
        (client_ends(TcpState::SynSent) == 1).then_some(())
    })
    .unwrap();
    assert_eq!(client_ends(TcpState::Established), 2);
    drop(clients);
}

/// A zombie that existed before the observer started is reported as
/// such, at once, with its real age from /proc/PID/stat, not as "a
/// zombie for 0 ms".
#[test]
fn a_zombie_older_than_the_watch_is_reported_with_its_age() {
    setup();
    let server = Server::start(&["--reap", "none"]).unwrap();
    let out = Client::run(server.addr, &[], b"bye\n", T).unwrap();
    assert!(out.status.success());
    let child = server
        .wait_event("accepted", T)
        .unwrap()
        .num("child")
        .unwrap();
    wait::until("the child to be a zombie", T, || {
        lifecycle::procfs::info(child as i32)
            .is_some_and(|p| p.state == 'Z')
            .then_some(())
    })
    .unwrap();
    let made = std::time::Instant::now();
    // Old enough that an age measured from our look would be visibly wrong.
    wait::until("300 ms to pass", T, || {
        (made.elapsed() >= Duration::from_millis(300)).then_some(())
    })
    .unwrap();
    let observer = Observer::watch(server.port(), &[]).unwrap();
    let zombie = observer
        .wait_for("the zombie", T, |e| {
            e.str("event") == "zombie" && e.int("pid") == child
        })
        .unwrap();
    assert_eq!(zombie["before_start"], true);
    assert!(zombie.int("started_ms_ago") >= 300, "{zombie}");
    assert!(zombie.int("zombie_ms") < 300, "{zombie}");
}

/// `--reap none`: the child that served a connection becomes a zombie,
/// and the watch says so, naming the parent that should reap it.
#[test]
fn watch_reports_a_zombie_under_reap_none() {
    setup();
    let server = Server::start(&["--reap", "none"]).unwrap();
    let observer = Observer::watch(server.port(), &[]).unwrap();
    let out = Client::run(server.addr, &[], b"bye\n", T).unwrap();
    assert!(out.status.success());
    let child = server
        .wait_event("accepted", T)
        .unwrap()
        .num("child")
        .unwrap();
    let zombie = observer
        .wait_for("a zombie", T, |e| e.str("event") == "zombie")
        .unwrap();
    assert_eq!(zombie.int("pid"), child);
    assert_eq!(zombie.int("ppid"), server.pid() as i64);
    assert_eq!(zombie["parent"]["pid"], server.pid());
    // SIGTERM: the server reaps it at shutdown, and the watch sees that.
    server.stop().unwrap();
    observer
        .wait_for("the zombie reaped", T, |e| {
            e.str("event") == "reaped" && e.int("pid") == child
        })
        .unwrap();
}

/// `--reap waitpid`: five children exit together and are reaped at once;
/// the watch sees each one come and go, never as a zombie.
#[test]
fn watch_reports_no_zombie_under_reap_waitpid() {
    setup();
    let server = Server::start(&["--reap", "waitpid"]).unwrap();
    let observer = Observer::watch(server.port(), &[]).unwrap();
    let client = Client::start(server.addr, &["--connections", "5"], Input::Pipe).unwrap();
    let server_pid = server.pid() as i64;
    let child_of_server = |e: &Value| e.str("event") == "process" && e.int("ppid") == server_pid;
    wait::until("the watch to see 5 children", T, || {
        let seen = observer
            .events()
            .iter()
            .filter(|e| child_of_server(e) && e.str("change") == "new")
            .count();
        (seen >= 5).then_some(())
    })
    .unwrap();
    assert!(client.finish(T).unwrap().status.success());
    server
        .wait_events("5 reaped", 5, T, |l| l.event == "reaped")
        .unwrap();
    wait::until("the watch to see 5 exits", T, || {
        let exited = observer
            .events()
            .iter()
            .filter(|e| child_of_server(e) && e.str("change") == "exited")
            .count();
        (exited >= 5).then_some(())
    })
    .unwrap();
    let events = observer.stop().unwrap();
    assert!(
        !events.iter().any(|e| e.str("event") == "zombie"),
        "{events:#?}"
    );
}

/// `observer explain`: a real dump, annotated, within 80 columns, naming
/// the socket the filter selected; `--json` gives the same as data.
#[test]
fn explain_annotates_a_real_dump_in_80_columns() {
    setup();
    let server = Server::start(&[]).unwrap();
    let port = server.port().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["explain"];
        all.extend_from_slice(args);
        let mut p = lifecycle::spawn::Proc::spawn(
            &lifecycle::bins::binaries().unwrap().observer,
            &all,
            Input::Null,
        )
        .unwrap();
        assert!(p.wait_exit(T).unwrap().success(), "{}", p.stderr.text());
        p.stdout.text()
    };
    let text = run(&["--port", &port]);
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line}");
    }
    assert!(text.contains("INET_DIAG_REQ_BYTECODE"), "{text}");
    assert!(text.contains(&format!("if local port == {port}")), "{text}");
    assert!(text.contains(&format!("id.idiag_sport   {port}")), "{text}");
    assert!(text.contains("NLMSG_DONE"), "{text}");
    let json: Value = serde_json::from_str(&run(&["--port", &port, "--json"])).unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|s| s["title"].as_str().unwrap().contains("The request"))
    );
    let legacy = run(&["--legacy", "--port", &port]);
    assert!(legacy.contains("18 TCPDIAG_GETSOCK"), "{legacy}");
    assert!(legacy.contains("(1 << TCP_CLOSING + 1) - 1"), "{legacy}");
}

/// `observer kernel-echo`: the kernel's NLMSG_ERROR carries our message
/// back byte for byte; with NETLINK_CAP_ACK only the header.
#[test]
fn kernel_echo_comes_back_byte_for_byte() {
    setup();
    let mut p = lifecycle::spawn::Proc::spawn(
        &lifecycle::bins::binaries().unwrap().observer,
        ["kernel-echo", "echo-lab was here", "--json"],
        Input::Null,
    )
    .unwrap();
    assert!(p.wait_exit(T).unwrap().success());
    let json: Value = serde_json::from_str(&p.stdout.text()).unwrap();
    let sections = json.as_array().unwrap();
    let payloads = |s: &Value| -> Vec<String> {
        s["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["field"] == "(payload)")
            .map(|r| r["hex"].as_str().unwrap().to_string())
            .collect()
    };
    // "echo-lab was here" and its NUL, in hex, sent and received.
    let sent: String = b"echo-lab was here\0"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(payloads(&sections[0]), vec![sent.clone()]);
    assert_eq!(payloads(&sections[1]), vec![sent]);
    let notes = |i: usize| sections[i]["notes"].to_string();
    assert!(notes(1).contains("byte for byte identical"), "{}", notes(1));
    assert!(notes(2).contains("NLM_F_CAPPED is set"), "{}", notes(2));
    assert!(payloads(&sections[2]).is_empty(), "capped: no payload");
    assert!(notes(3).contains("not the seed's"));
}

/// tcp_info's counters as the kernel keeps them, read when they are
/// final (the full socket freed as TIME_WAIT takes over): `x\n` echoed,
/// the client closing first. bytes_received = 2 data + 1 for the
/// server's FIN; bytes_acked = 2 data + 1 for the client's FIN + 1 for
/// its SYN (the end that connected).
#[test]
#[ignore = "needs root: destroy notifications (SKNLGRP_INET_TCP_DESTROY) need CAP_NET_ADMIN"]
fn counters_count_sequence_numbers_as_the_kernel_defines_them() {
    setup();
    crate::needs_root("destroy notifications need CAP_NET_ADMIN");
    let server = Server::start(&[]).unwrap();
    let observer = Observer::watch(server.port(), &[]).unwrap();
    let mut client = Client::start(server.addr, &[], Input::Pipe).unwrap();
    client.proc.write_stdin(b"x\n").unwrap();
    // Seen ESTABLISHED first, so that its TIME_WAIT is a change (with the
    // freed socket's counters), not a socket first seen in TIME_WAIT.
    observer
        .wait_for("the client ESTABLISHED", T, |e| {
            reached(e, "ESTABLISHED", "client")
        })
        .unwrap();
    client.proc.close_stdin();
    let out = client.finish(T).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout, b"x\n");
    let tw = observer
        .wait_for("the client's end freed into TIME_WAIT", T, |e| {
            e.str("role") == "client" && e.str("state") == "TIME_WAIT" && !e["freed"].is_null()
        })
        .unwrap();
    assert_eq!(tw["freed"]["bytes_received"], 3, "{tw}");
    assert_eq!(tw["freed"]["bytes_acked"], 4, "{tw}");
}

/// `echo-client --reset`: the client's end sent the RST (its destroy
/// notification has no remote address: tcp_disconnect ran), the
/// server's end received it; neither is "closed faster than we sample".
#[test]
#[ignore = "needs root: destroy notifications (SKNLGRP_INET_TCP_DESTROY) need CAP_NET_ADMIN"]
fn a_reset_is_named_on_both_ends() {
    setup();
    crate::needs_root("destroy notifications need CAP_NET_ADMIN");
    let server = Server::start(&[]).unwrap();
    let observer = Observer::watch(server.port(), &[]).unwrap();
    let mut client = Client::start(server.addr, &["--reset"], Input::Pipe).unwrap();
    client.connected().unwrap();
    // Both ends seen before the reset.
    for role in ["client", "server"] {
        observer
            .wait_for(role, T, |e| reached(e, "ESTABLISHED", role))
            .unwrap();
    }
    client.proc.close_stdin();
    let out = client.finish(T).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    for (role, how) in [("client", "reset_sent"), ("server", "reset_received")] {
        observer
            .wait_for(&format!("{role} {how}"), T, |e| {
                e.str("event") == "gone" && e.str("role") == role && e.str("how") == how
            })
            .unwrap();
    }
}

/// A watch recorded with `--record` replays to the very lines it printed;
/// `--json` to the very objects.
#[test]
fn a_recording_replays_to_the_lines_the_watch_printed() {
    setup();
    let dir =
        crate::TempDir(std::env::temp_dir().join(format!("echo-lab-rec-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("watch.jsonl");
    let server = Server::start(&["--close-delay", "300ms"]).unwrap();
    let port = server.port().to_string();
    let mut watch = Proc::spawn(
        &binaries().unwrap().observer,
        ["watch", "--port", &port, "--record", file.to_str().unwrap()],
        Input::Null,
    )
    .unwrap();
    watch
        .stderr
        .wait_for("watching", T, |l| {
            l.iter()
                .any(|x| x.starts_with("observer: watching"))
                .then_some(())
        })
        .unwrap();
    let out = Client::run(server.addr, &[], b"hello\n", T).unwrap();
    assert!(out.status.success());
    watch
        .stdout
        .wait_for("the client's TIME_WAIT", T, |l| {
            l.iter().any(|x| x.contains("TIME_WAIT")).then_some(())
        })
        .unwrap();
    watch.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(watch.wait_exit(T).unwrap().success());
    let live = watch.stdout.text();
    let replay = |args: &[&str]| {
        let mut all = vec!["replay", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut p = Proc::spawn(&binaries().unwrap().observer, &all, Input::Null).unwrap();
        assert!(p.wait_exit(T).unwrap().success(), "{}", p.stderr.text());
        p.stdout.text()
    };
    assert_eq!(replay(&[]), live);
    let json = replay(&["--json"]);
    let recorded = std::fs::read_to_string(&file).unwrap();
    let events: Vec<&str> = recorded.lines().skip(1).collect();
    assert_eq!(json.lines().collect::<Vec<_>>(), events);
    let _ = server.stop();
}

/// A damaged recording, or one from another version, is one error line
/// naming the line, exit status 1, and nothing printed; a --record file
/// that cannot be created is a usage error (2), before anything starts.
#[test]
fn a_damaged_recording_is_one_line_naming_the_line() {
    setup();
    let dir =
        crate::TempDir(std::env::temp_dir().join(format!("echo-lab-bad-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let good = std::fs::read_to_string(
        crate::repo_root().join("tutorial/recordings/handshake-exact.jsonl"),
    )
    .unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines[3] = "{\"t\": 1.5, \"event\": \"state\"";
    let cases = [
        ("damaged.jsonl", lines.join("\n"), "line 4: not a JSON line"),
        (
            "missing.jsonl",
            good.lines()
                .take(2)
                .chain(["{\"t\": 2.0, \"event\": \"gone\"}"])
                .collect::<Vec<_>>()
                .join("\n"),
            "line 3: no field `final`",
        ),
        (
            "version.jsonl",
            good.replacen("\"version\":1", "\"version\":9", 1),
            "line 1: a recording of format version 9",
        ),
        ("empty.jsonl", String::new(), "empty: not a recording"),
        (
            "text.jsonl",
            "hello\n".into(),
            "line 1: the first line is not",
        ),
    ];
    for (name, text, says) in cases {
        let path = dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        let mut p = Proc::spawn(
            &binaries().unwrap().observer,
            ["replay", path.to_str().unwrap()],
            Input::Null,
        )
        .unwrap();
        let status = p.wait_exit(T).unwrap();
        let stderr = p.stderr.text();
        assert_eq!(status.code(), Some(1), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(p.stdout.text().is_empty(), "{name} printed half a replay");
    }
    let mut p = Proc::spawn(
        &binaries().unwrap().observer,
        ["--record", "/nonexistent/dir/x.jsonl", "--duration", "1s"],
        Input::Null,
    )
    .unwrap();
    assert_eq!(
        p.wait_exit(T).unwrap().code(),
        Some(2),
        "{}",
        p.stderr.text()
    );
}
