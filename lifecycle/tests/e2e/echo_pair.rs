//! echo-server and echo-client together (issue: the echo pair).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use lifecycle::echo::{Client, Server};
use lifecycle::procfs;
use lifecycle::spawn::{Input, Proc};
use lifecycle::{bins::binaries, random_bytes, wait};
use nix::sys::signal::Signal;

use crate::setup;

const T: Duration = Duration::from_secs(30);

/// Echo `data` through a fresh client and assert it comes back unchanged.
fn assert_echo(server: &Server, args: &[&str], data: &[u8]) {
    let out = Client::run(server.addr, args, data, T).unwrap();
    assert!(out.status.success(), "client failed: {}", out.stderr);
    assert_eq!(
        out.stdout.len(),
        data.len(),
        "length differs; stderr: {}",
        out.stderr
    );
    assert!(out.stdout == data, "bytes differ");
}

/// 10 MiB of random binary (NUL bytes, no final newline) comes back byte for
/// byte, through the seed's lockstep str_cli.
#[test]
fn ten_mib_of_random_binary_echo_exactly_in_lockstep_mode() {
    setup();
    let server = Server::start(&[]).unwrap();
    assert_echo(&server, &["--mode", "lockstep"], &random_bytes(1, 10 << 20));
}

/// The same through the poll() client, which half-closes at EOF.
#[test]
fn ten_mib_of_random_binary_echo_exactly_in_poll_mode() {
    setup();
    let server = Server::start(&[]).unwrap();
    assert_echo(&server, &["--mode", "poll"], &random_bytes(2, 10 << 20));
}

/// Lines of megabytes, no final newline, NUL bytes, the empty input.
#[test]
fn awkward_inputs_echo_exactly_in_both_modes() {
    setup();
    let server = Server::start(&[]).unwrap();
    let mut long_line = vec![b'x'; 3 << 20];
    long_line.push(b'\n');
    for data in [
        &long_line[..],
        b"no final newline",
        b"nul\0in\0the\0middle\n\0",
        b"",
    ] {
        for mode in ["lockstep", "poll"] {
            assert_echo(&server, &["--mode", mode], data);
        }
    }
}

/// Batch mode from a file: `echo-client < f` loses nothing.
#[test]
fn batch_input_from_a_file_loses_nothing() {
    setup();
    let server = Server::start(&["--mode", "thread"]).unwrap();
    let data = random_bytes(3, 1 << 20);
    let path = std::env::temp_dir().join(format!("echo-lab-batch-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    for mode in ["lockstep", "poll"] {
        let client = Client::start(server.addr, &["--mode", mode], Input::File(&path));
        let out = client.and_then(|c| c.finish(T));
        let out = out.unwrap_or_else(|e| {
            let _ = std::fs::remove_file(&path);
            panic!("{e:#}")
        });
        assert!(out.stdout == data, "mode {mode}: {}", out.stderr);
    }
    std::fs::remove_file(&path).unwrap();
}

/// IPv6: the server on ::1, the client to ::1.
#[test]
fn ipv6_loopback_works() {
    setup();
    let server = Server::start(&["--bind", "::1"]).unwrap();
    assert!(server.addr.is_ipv6());
    assert_echo(&server, &[], b"over IPv6\n");
}

/// 50 clients at once, each with its own data, each gets its own back.
#[test]
fn fifty_clients_at_once_each_get_their_own_data() {
    setup();
    for mode in ["fork", "thread"] {
        let server = Server::start(&["--mode", mode]).unwrap();
        let mut running = Vec::new();
        for i in 0..50u64 {
            let data = random_bytes(100 + i, 64 * 1024);
            let mut client = Client::start(server.addr, &["--mode", "poll"], Input::Pipe).unwrap();
            let feeder = client.proc.feed_stdin(data.clone());
            running.push((client, feeder, data));
        }
        for (i, (client, feeder, data)) in running.into_iter().enumerate() {
            let out = client.finish(T).unwrap();
            feeder.join().unwrap();
            assert!(
                out.stdout == data,
                "{mode}: client {i} got other bytes: {}",
                out.stderr
            );
        }
        let served = server.stop().unwrap().1;
        let summary = served.iter().find(|l| l.event == "summary").unwrap();
        assert_eq!(summary.num("served"), Some(50));
    }
}

/// Open `total` connections against the server: `together` of them from
/// one client that closes them all at the same moment, the rest one client
/// each, in parallel batches.
fn open_and_close(server: &Server, total: usize, together: u32) {
    let many = Client::start(
        server.addr,
        &["--connections", &together.to_string()],
        Input::Pipe,
    )
    .unwrap();
    let singles = total - together as usize;
    for batch in (0..singles).collect::<Vec<_>>().chunks(25) {
        let clients: Vec<Client> = batch
            .iter()
            .map(|_| Client::start(server.addr, &[], Input::Null).unwrap())
            .collect();
        for client in clients {
            assert!(client.finish(T).unwrap().status.success());
        }
    }
    // All 50 of its connections close in one burst at its exit.
    assert!(many.finish(T).unwrap().status.success());
}

/// 200 connections, 50 of them closed at the same moment: with the waitpid
/// loop every child is reaped and no zombie remains (UNP 5.10).
#[test]
fn two_hundred_connections_leave_no_zombie_with_reap_waitpid() {
    setup();
    let server = Server::start(&["--reap", "waitpid"]).unwrap();
    open_and_close(&server, 200, 50);
    server
        .wait_events("200 reaped children", 200, T, |l| l.event == "reaped")
        .unwrap();
    assert_eq!(server.zombies(), Vec::<i32>::new());
    assert!(procfs::children(server.pid()).is_empty());
    let (status, events) = server.stop().unwrap();
    assert!(status.success());
    let summary = events.iter().find(|l| l.event == "summary").unwrap();
    assert_eq!(summary.num("reaped"), Some(200));
    assert_eq!(summary.num("zombies-at-shutdown"), Some(0));
}

/// The same load in thread mode: no child process ever exists.
#[test]
fn two_hundred_connections_in_thread_mode_make_no_child_at_all() {
    setup();
    let server = Server::start(&["--mode", "thread"]).unwrap();
    open_and_close(&server, 200, 50);
    server
        .wait_events("200 closes", 200, T, |l| l.event == "client-closed")
        .unwrap();
    assert!(procfs::children(server.pid()).is_empty());
    let (status, events) = server.stop().unwrap();
    assert!(status.success());
    let summary = events.iter().find(|l| l.event == "summary").unwrap();
    assert_eq!(summary.num("served"), Some(200));
    assert_eq!(summary.num("joined"), Some(200));
}

/// `--reap none`: nobody waits for the children, so each one that exits
/// stays a zombie, as /proc shows (UNP 5.9). SIGTERM still cleans up.
#[test]
fn reap_none_leaves_a_zombie_per_closed_connection() {
    setup();
    let server = Server::start(&["--reap", "none"]).unwrap();
    let client = Client::start(server.addr, &["--connections", "5"], Input::Null).unwrap();
    assert!(client.finish(T).unwrap().status.success());
    let zombies = wait::until("5 zombie children", T, || {
        let z = server.zombies();
        (z.len() == 5).then_some(z)
    })
    .unwrap();
    assert_eq!(zombies.len(), 5);
    assert!(server.events().iter().all(|l| l.event != "reaped"));
    let (status, events) = server.stop().unwrap();
    assert!(status.success());
    let summary = events.iter().find(|l| l.event == "summary").unwrap();
    assert_eq!(summary.num("zombies-at-shutdown"), Some(5));
    assert_eq!(summary.num("zombies-left"), Some(0));
}

/// A client that sends a lot, reads nothing, and resets: the server's
/// child logs the error; the server itself serves the next client.
#[test]
fn a_client_that_resets_mid_stream_does_not_stop_the_server() {
    setup();
    for mode in ["fork", "thread"] {
        let server = Server::start(&["--mode", mode]).unwrap();
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // Write until the server, unable to echo into our full receive
        // buffer, stops reading and our send buffer fills too.
        let chunk = vec![7u8; 256 * 1024];
        while stream.write(&chunk).is_ok() {}
        let socket = socket2::Socket::from(stream);
        socket.set_linger(Some(Duration::ZERO)).unwrap();
        drop(socket); // RST
        let error = server.wait_event("connection-error", T).unwrap();
        assert!(
            matches!(error.get("errno"), Some("ECONNRESET" | "EPIPE")),
            "{error:?}"
        );
        assert_echo(&server, &[], b"still here\n");
        assert!(server.stop().unwrap().0.success());
    }
}

/// A client that vanishes while the server's child is blocked writing to
/// it. The client stops reading; the child's send buffer fills and it
/// sleeps in write() (its system call, read from /proc/PID/syscall); then
/// the client's socket is closed with unread data, which is what the
/// kernel does for a process that dies: it answers with RST. The child's
/// write fails (ECONNRESET/EPIPE), the server goes on.
#[test]
fn a_client_that_vanishes_while_the_server_writes_does_not_stop_the_server() {
    setup();
    let server = Server::start(&[]).unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream = TcpStream::from(socket);
    let child = server
        .wait_event("accepted", T)
        .unwrap()
        .num("child")
        .unwrap() as i32;
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let chunk = vec![9u8; 64 * 1024];
    wait::until("the server's child blocked in write()", T, || {
        let _ = stream.write(&chunk);
        procfs::blocked_in(child, libc::SYS_write).then_some(())
    })
    .unwrap();
    drop(stream); // unread data: RST, as at a process's death
    let error = server.wait_event("connection-error", T).unwrap();
    assert_eq!(error.get("op"), Some("write"), "{error:?}");
    assert!(
        matches!(error.get("errno"), Some("ECONNRESET" | "EPIPE")),
        "{error:?}"
    );
    assert_echo(&server, &[], b"next client\n");
}

/// SIGTERM with clients connected: every child ended and reaped, no
/// process left behind, exit 0.
#[test]
fn sigterm_leaves_no_process_behind() {
    setup();
    for mode in ["fork", "thread"] {
        let server = Server::start(&["--mode", mode, "--close-delay", "60s"]).unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let client = Client::start(server.addr, &[], Input::Pipe).unwrap();
            client.connected().unwrap();
            clients.push(client);
        }
        server
            .wait_events("3 accepted", 3, T, |l| l.event == "accepted")
            .unwrap();
        let before: Vec<i32> = procfs::descendants(server.pid())
            .iter()
            .map(|p| p.pid)
            .collect();
        assert_eq!(before.len(), if mode == "fork" { 3 } else { 0 });
        let server_pid = server.pid();
        let (status, events) = server.stop().unwrap();
        assert!(status.success(), "{mode}: {status:?}");
        for pid in before {
            assert!(procfs::info(pid).is_none(), "{mode}: child {pid} survived");
        }
        assert!(procfs::info(server_pid).is_none());
        let summary = events.iter().find(|l| l.event == "summary").unwrap();
        assert_eq!(summary.num("zombies-left"), Some(0));
        if mode == "thread" {
            // The server ended those connections: it says it closed first.
            let closed = events.iter().filter(|l| l.event == "server-closed").count();
            assert_eq!(closed, 3, "{events:?}");
        }
        for client in clients {
            // The server's end closed: the lockstep client exits at EOF of stdin.
            let _ = client.finish(T).unwrap();
        }
    }
}

/// The server's child dies while the lockstep client waits on stdin: the
/// next line is answered with RST, and the client says so (UNP 5.12-5.13).
#[test]
fn client_reports_a_server_that_terminated_prematurely() {
    setup();
    let server = Server::start(&[]).unwrap();
    let mut client = Client::start(server.addr, &[], Input::Pipe).unwrap();
    client.proc.write_stdin(b"first\n").unwrap();
    wait::until("the first echo", T, || {
        (client.proc.stdout.bytes() == b"first\n").then_some(())
    })
    .unwrap();
    let accepted = server.wait_event("accepted", T).unwrap();
    let child = accepted.num("child").unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), Signal::SIGKILL).unwrap();
    server
        .wait_events("the child reaped", 1, T, |l| l.event == "reaped")
        .unwrap();
    client.proc.write_stdin(b"second\n").unwrap();
    let out = client.finish(T).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.contains("server terminated prematurely"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("RST"), "{}", out.stderr);
}

/// `--max-clients 1`: the second client is told and closed; the server goes on.
#[test]
fn max_clients_turns_the_next_client_away() {
    setup();
    let server = Server::start(&["--max-clients", "1"]).unwrap();
    let first = Client::start(server.addr, &[], Input::Pipe).unwrap();
    server.wait_event("accepted", T).unwrap();
    let second = Client::run(server.addr, &["--mode", "poll"], b"", T).unwrap();
    assert!(String::from_utf8_lossy(&second.stdout).contains("busy"));
    server.wait_event("busy", T).unwrap();
    drop(first);
    server
        .wait_events("the first child reaped", 1, T, |l| l.event == "reaped")
        .unwrap();
    assert_echo(&server, &[], b"my turn\n");
}

/// Connection refused: one line, exit 1.
#[test]
fn connection_refused_is_one_line_and_exit_1() {
    setup();
    // Bind a port, then free it: nothing listens there afterwards.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Proc::spawn(
        &binaries().unwrap().client,
        ["127.0.0.1", &port.to_string()],
        Input::Null,
    )
    .and_then(|mut p| {
        let status = p.wait_exit(T)?;
        Ok((status, p.stderr.text()))
    })
    .unwrap();
    assert_eq!(out.0.code(), Some(1));
    assert_eq!(out.1.lines().count(), 1, "{}", out.1);
    assert!(out.1.contains("ECONNREFUSED"));
}

/// Every bad argument: exit 2 and exactly one line on stderr, no panic.
#[test]
fn every_bad_argument_gives_exit_2_and_one_line() {
    setup();
    let bins = binaries().unwrap();
    // (program, arguments, what the one line must say; "" for any reason)
    let long_text = "a".repeat(100_000);
    let cases: &[(&std::path::Path, &[&str], &str)] = &[
        (&bins.server, &["--port", "x"], ""),
        (&bins.server, &["--port", "70000"], ""),
        (&bins.server, &["--bind", "not-an-address"], ""),
        (&bins.server, &["--mode", "spoon"], ""),
        (&bins.server, &["--reap", "never"], ""),
        (&bins.server, &["--backlog", "-1"], ""),
        (&bins.server, &["--close-delay", "soon"], ""),
        (&bins.server, &["--max-clients", "0"], ""),
        (&bins.server, &["--bogus"], ""),
        (&bins.server, &["extra"], ""),
        (&bins.client, &["127.0.0.1", "0"], ""),
        (&bins.client, &["127.0.0.1", "port"], ""),
        (&bins.client, &["--mode", "spoon"], ""),
        (&bins.client, &["--connections", "0"], ""),
        (&bins.client, &["--reset", "--half-close"], ""),
        (&bins.client, &["a", "1", "extra"], ""),
        (&bins.client, &["--bogus"], ""),
        (&bins.observer, &["--port", "0"], ""),
        (&bins.observer, &["--port", "x"], ""),
        (&bins.observer, &["--interval", "fast"], ""),
        (&bins.observer, &["--interval", "0ms"], ""),
        (&bins.observer, &["--state", "HAPPY"], ""),
        (&bins.observer, &["--all", "--port", "1"], ""),
        (&bins.observer, &["snapshot", "--bogus"], ""),
        (&bins.observer, &["frobnicate"], ""),
        // Negative numbers say so (allow_negative_numbers + a range check).
        (&bins.server, &["--port", "-1"], "must not be negative"),
        (&bins.server, &["--backlog", "-1"], "must not be negative"),
        (&bins.observer, &["--port", "-1"], "must not be negative"),
        (
            &bins.observer,
            &["--interval", "-1s"],
            "must not be negative",
        ),
        (
            &bins.observer,
            &["lab", "--loss", "-1"],
            "must not be negative",
        ),
        // A duration needs its unit, in every program.
        (
            &bins.server,
            &["--close-delay", "20"],
            "needs a unit: us, ms, s or m",
        ),
        (
            &bins.server,
            &["--idle-timeout", "0s"],
            "must be between 1ms and",
        ),
        (
            &bins.observer,
            &["--interval", "1"],
            "needs a unit: us, ms, s or m",
        ),
        (
            &bins.observer,
            &["--duration", "0s"],
            "must be between 1ms and",
        ),
        // A choice lists the valid values.
        (
            &bins.server,
            &["--reap", "maybe"],
            "'maybe' is not one of: waitpid, wait, none",
        ),
        // A malformed host is a usage error, not a failed lookup.
        (&bins.client, &["999.1.1.1", "1"], "is not an IPv4 address"),
        (&bins.client, &["[::1]"], "give the address alone (::1)"),
        (
            &bins.client,
            &["127.0.0.1:6666"],
            "echo-client 127.0.0.1 6666",
        ),
        (&bins.client, &[""], "the host is empty"),
        // Processes that cannot be watched; a text the answer cannot carry.
        (&bins.observer, &["--pid", "0"], "must be at least 1"),
        (&bins.observer, &["--pid", "999999999"], "no such process"),
        (
            &bins.observer,
            &["kernel-echo", &long_text],
            "at most 65499 bytes",
        ),
    ];
    for (program, args, says) in cases {
        let mut proc = Proc::spawn(program, *args, Input::Null).unwrap();
        let status = proc.wait_exit(T).unwrap();
        let stderr = proc.stderr.text();
        let args = &args[..args.len().min(3)];
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stderr.len() < 300, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(proc.stdout.text().is_empty(), "{args:?}");
    }
}

/// Restarting on a port held by a TIME_WAIT: EADDRINUSE without
/// SO_REUSEADDR (explained), fine with it (UNP 7.5).
#[test]
fn no_reuseaddr_fails_over_time_wait_and_says_why() {
    setup();
    let server = Server::start(&["--close-after", "0"]).unwrap();
    let port = server.port();
    // The server closes first: its side of the connection enters TIME_WAIT.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(stream.read(&mut buf).unwrap(), 0); // the server's FIN
    stream.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    server.wait_event("server-closed", T).unwrap();
    assert!(server.stop().unwrap().0.success());

    let port_arg = port.to_string();
    let mut refused = Proc::spawn(
        &binaries().unwrap().server,
        ["--port", &port_arg, "--no-reuseaddr"],
        Input::Null,
    )
    .unwrap();
    assert_eq!(refused.wait_exit(T).unwrap().code(), Some(1));
    let stderr = refused.stderr.text();
    assert!(
        stderr.contains("EADDRINUSE") && stderr.contains("TIME_WAIT"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);

    let again = Server::start(&["--port", &port_arg]).unwrap();
    assert_eq!(again.port(), port);
}

/// Out of descriptors (EMFILE): the server says so, backs off instead of
/// spinning, and accepts the waiting client once a descriptor is free.
#[test]
fn emfile_is_logged_backed_off_and_recovered_from() {
    setup();
    // 8 descriptors: 0-2, the listener, and 4 connections (thread mode
    // keeps each connection's descriptor in the one process).
    let server_path = binaries().unwrap().server.display().to_string();
    let mut command = std::process::Command::new("/bin/sh");
    command.arg("-c").arg(format!(
        "ulimit -n 8 && exec {server_path} --mode thread --port 0"
    ));
    let proc = Proc::spawn_command(command, Input::Null).unwrap();
    let addr: std::net::SocketAddr = proc
        .stdout
        .wait_for("listening", T, |lines| {
            lines.iter().find_map(|l| {
                let line = echo_server::events::Line::parse(l)?;
                (line.event == "listening").then(|| line.get("addr")?.parse().ok())?
            })
        })
        .unwrap();
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut waiting = TcpStream::connect(addr).unwrap(); // completed by the kernel, queued
    proc.stdout
        .wait_for("the EMFILE line", T, |lines| {
            lines.iter().find(|l| l.contains("errno=EMFILE")).cloned()
        })
        .unwrap();
    // Backing off, not spinning: over a second, little CPU.
    let cpu = |pid: i32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = cpu(proc.pid());
    let start = std::time::Instant::now();
    wait::until("a second to pass", Duration::from_secs(5), || {
        (start.elapsed() >= Duration::from_secs(1)).then_some(())
    })
    .unwrap();
    let ticks = cpu(proc.pid()) - before; // clock ticks, usually 100 a second
    assert!(ticks < 20, "{ticks} ticks of CPU in one second: spinning");
    drop(held);
    waiting.write_all(b"finally\n").unwrap();
    let mut back = [0u8; 8];
    waiting.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"finally\n");
}

/// A host name resolves (getaddrinfo), and each address is tried in turn:
/// `localhost` may give ::1 first, where nothing listens, then 127.0.0.1.
#[test]
fn a_host_name_resolves_and_each_address_is_tried() {
    setup();
    let server = Server::start(&["--bind", "127.0.0.1"]).unwrap();
    let port = server.port().to_string();
    let mut proc = Proc::spawn(
        &binaries().unwrap().client,
        ["localhost", &port],
        Input::Pipe,
    )
    .unwrap();
    proc.write_stdin(b"by name\n").unwrap();
    proc.close_stdin();
    assert!(
        proc.wait_exit(T).unwrap().success(),
        "{}",
        proc.stderr.text()
    );
    assert_eq!(proc.stdout.bytes(), b"by name\n");
    assert!(
        proc.stderr.text().contains(&format!("-> 127.0.0.1:{port}")),
        "{}",
        proc.stderr.text()
    );
}

/// `--idle-timeout`: a client that sends nothing is closed by the server
/// (its `idle` line), which closes first: the client reads EOF, and the
/// server's end is the one left in TIME_WAIT.
#[test]
fn idle_timeout_closes_a_silent_client_from_the_server_side() {
    setup();
    let server = Server::start(&["--idle-timeout", "300ms"]).unwrap();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 16];
    // One line echoed: the timeout counts silence, not the connection's age.
    stream.write_all(b"hi\n").unwrap();
    assert_eq!(stream.read(&mut buf).unwrap(), 3);
    assert_eq!(stream.read(&mut buf).unwrap(), 0, "the server's FIN");
    let idle = server.wait_event("idle", T).unwrap();
    assert_eq!(idle.num("bytes"), Some(3));
    assert_eq!(idle.get("secs"), Some("0.3"));
    let ours = stream.local_addr().unwrap();
    drop(stream);
    let diag = || {
        let mut diag = observer::diag::DiagSocket::open().unwrap();
        diag.dump(&observer::diag::Query::port(server.port()))
            .unwrap()
    };
    wait::until("the server's end in TIME_WAIT", T, || {
        diag()
            .into_iter()
            .find(|s| s.remote == ours && s.state == observer::tcp_state::TcpState::TimeWait)
    })
    .unwrap();
}

/// A fork-mode server killed with SIGKILL leaves its children running:
/// re-parented (to us: the test is their subreaper) and still echoing.
/// `--die-with-parent` makes the kernel end them (PR_SET_PDEATHSIG).
#[test]
fn orphans_outlive_a_killed_server_unless_die_with_parent() {
    setup();
    for die_with_parent in [false, true] {
        let args: &[&str] = if die_with_parent {
            &["--die-with-parent"]
        } else {
            &[]
        };
        let mut server = Server::start(args).unwrap();
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(T)).unwrap();
        let accepted = server.wait_event("accepted", T).unwrap();
        let child = accepted.num("child").unwrap() as i32;
        // kill -9 the parent only (its children are not signalled).
        // (Reaped, not waited for with its pipes: the child still holds
        // the parent's stdout.)
        server.proc.signal(Signal::SIGKILL).unwrap();
        wait::within(T, || server.proc.try_status()).unwrap();
        let alive = |pid: i32| procfs::info(pid).is_some_and(|p| p.state != 'Z');
        if die_with_parent {
            wait::until("the child to die with its parent", T, || {
                (!alive(child)).then_some(())
            })
            .unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(stream.read(&mut buf).unwrap(), 0, "the child's FIN");
        } else {
            let me = std::process::id() as i32;
            let orphan = wait::until("the orphan to be re-parented", T, || {
                procfs::info(child).filter(|p| p.ppid == me)
            })
            .unwrap();
            assert_ne!(orphan.state, 'Z');
            // Still serving its client.
            stream.write_all(b"still there?\n").unwrap();
            let mut buf = [0u8; 13];
            stream.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"still there?\n");
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), Signal::SIGKILL).unwrap();
        }
        // Ours to reap now (subreaper).
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child), None);
    }
}

/// The README's `--close-after 0` row, both ways. Ctrl-D before typing:
/// the client's FIN answers the server's, and TIME_WAIT lands on the
/// server (the active closer). A line typed instead arrives at a socket
/// the server has closed: its kernel answers RST, and no TIME_WAIT is
/// left on either side.
#[test]
fn close_after_0_gives_time_wait_on_the_server_only_if_nothing_is_typed() {
    use observer::tcp_state::TcpState;
    setup();
    let server = Server::start(&["--close-after", "0"]).unwrap();
    let time_waits = || {
        let mut diag = observer::diag::DiagSocket::open().unwrap();
        let query = observer::diag::Query {
            states: TcpState::TimeWait.bit(),
            ..observer::diag::Query::port(server.port())
        };
        diag.dump(&query).unwrap()
    };
    // Ctrl-D once the client is connected (and the server has closed,
    // as it does at once: a person cannot press Ctrl-D sooner).
    let mut client = Client::start(server.addr, &[], Input::Pipe).unwrap();
    let ours = client.connected().unwrap();
    wait::until(
        "the client's end in CLOSE_WAIT (the server's FIN)",
        T,
        || {
            let mut diag = observer::diag::DiagSocket::open().unwrap();
            let all = diag
                .dump(&observer::diag::Query::port(server.port()))
                .unwrap();
            all.into_iter()
                .find(|s| s.local == ours && s.state == TcpState::CloseWait)
        },
    )
    .unwrap();
    client.proc.close_stdin();
    let out = client.finish(T).unwrap();
    assert!(out.status.success(), "{}", out.stderr);
    let tw = wait::until("a TIME_WAIT", T, || {
        let tw = time_waits();
        (!tw.is_empty()).then_some(tw)
    })
    .unwrap();
    assert!(
        tw.iter().all(|s| s.local.port() == server.port()),
        "TIME_WAIT on the server's end only: {tw:?}"
    );
    let before = tw.len();
    // A typed line: RST, and the client says the server went away.
    let out = Client::run(server.addr, &[], b"hi\n", T).unwrap();
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("server terminated prematurely"),
        "{}",
        out.stderr
    );
    server
        .wait_events("two server-closed", 2, T, |l| l.event == "server-closed")
        .unwrap();
    assert_eq!(
        time_waits().len(),
        before,
        "no new TIME_WAIT: {:?}",
        time_waits()
    );
}
