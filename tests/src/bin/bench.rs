//! `bench`: speed, measured against a peer in the same run, printed as
//! ratios. Not a test: tests assert behaviour only.
//!
//! ```text
//! cargo run --release -p lifecycle --bin bench -- echo       # vs socat
//! cargo run --release -p lifecycle --bin bench -- observer   # vs ss, 10,000 sockets
//! cargo run --release -p lifecycle --bin bench -- fidelity   # sampling vs the tracepoint (root)
//! cargo run --release -p lifecycle --bin bench -- relay      # the lab's wire vs loopback (root)
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use lifecycle::bins::binaries;
use lifecycle::echo::Server;
use lifecycle::spawn::{Input, Proc};

fn main() -> ExitCode {
    let what = std::env::args().nth(1).unwrap_or_default();
    let result = match what.as_str() {
        "echo" => bench_echo(),
        "observer" => bench_observer(),
        "fidelity" => bench_fidelity(),
        "relay" => bench_relay(),
        // Run by `relay` inside the lab's client namespace.
        "relay-probe" => relay_probe(&std::env::args().nth(2).unwrap_or_default()),
        _ => {
            eprintln!("bench: say `echo`, `observer` or `fidelity` (see the file's header)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A server under measurement: ours (fork or thread mode) or socat.
struct Peer {
    name: String,
    addr: SocketAddr,
    _server: Option<Server>,
    _proc: Option<Proc>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn socat() -> anyhow::Result<Peer> {
    anyhow::ensure!(
        Command::new("socat")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok(),
        "socat is not installed (apt-get install socat)"
    );
    let port = free_port()?;
    let listen = format!("TCP-LISTEN:{port},fork,reuseaddr,bind=127.0.0.1");
    let proc = Proc::spawn(
        std::path::Path::new("socat"),
        [listen.as_str(), "EXEC:cat"],
        Input::Null,
    )?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "socat did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Peer {
        name: "socat fork EXEC:cat".into(),
        addr,
        _server: None,
        _proc: Some(proc),
    })
}

fn ours(mode: &str) -> anyhow::Result<Peer> {
    let server = Server::start(&["--mode", mode])?;
    Ok(Peer {
        name: format!("echo-server --mode {mode}"),
        addr: server.addr,
        _server: Some(server),
        _proc: None,
    })
}

/// connect, write 32 bytes, read them back, close; two threads, bounded
/// in time and count. Returns connections per second.
fn conns_per_second(addr: SocketAddr, seconds: f64) -> f64 {
    const MAX_PER_THREAD: usize = 40_000;
    let start = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let msg = [b'x'; 32];
                let mut back = [0u8; 32];
                let mut n = 0;
                while n < MAX_PER_THREAD && start.elapsed().as_secs_f64() < seconds {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    if s.write_all(&msg).is_ok() && s.read_exact(&mut back).is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// MB/s through one connection: a writer and a reader thread, 256 MiB.
fn megabytes_per_second(addr: SocketAddr) -> anyhow::Result<f64> {
    megabytes_per_second_n(addr, 256 << 20)
}

fn bench_echo() -> anyhow::Result<()> {
    println!("echo: connections per second (connect, 32-byte echo, close; 2 client threads, 3 s)");
    println!("      and MB/s through one connection (256 MiB), all in this run\n");
    let peers = [socat()?, ours("fork")?, ours("thread")?];
    let mut rows = Vec::new();
    for peer in &peers {
        // Warm up (page cache, first forks), then measure.
        conns_per_second(peer.addr, 0.3);
        let cps = conns_per_second(peer.addr, 3.0);
        let mbs = megabytes_per_second(peer.addr)?;
        rows.push((peer.name.clone(), cps, mbs));
    }
    let (_, socat_cps, socat_mbs) = rows[0].clone();
    println!(
        "{:<26} {:>10} {:>8} {:>10} {:>8}",
        "server", "conn/s", "ratio", "MB/s", "ratio"
    );
    for (name, cps, mbs) in rows {
        println!(
            "{name:<26} {cps:>10.0} {:>8.2} {mbs:>10.0} {:>8.2}",
            cps / socat_cps,
            mbs / socat_mbs
        );
    }
    Ok(())
}

/// Median wall time of `runs` runs of a command, output discarded.
fn median_time(program: &str, args: &[&str], runs: usize) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let status = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "{program} {args:?} failed");
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[runs / 2])
}

/// Open `pairs` loopback connections: 2 x pairs sockets, plus a listener.
fn hold_connections(pairs: usize) -> anyhow::Result<(TcpListener, Vec<TcpStream>)> {
    raise_fd_limit(2 * pairs as u64 + 256);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut held = Vec::with_capacity(2 * pairs);
    for _ in 0..pairs {
        let client = TcpStream::connect(addr)?;
        let (server, _) = listener.accept()?;
        held.push(client);
        held.push(server);
    }
    Ok((listener, held))
}

fn raise_fd_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
        }
    }
}

/// CPU time (user + system) of a finished child, from /proc before reaping.
fn cpu_of(pid: i32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from 1; after the
    // comm we are at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()??
        .max(1) as u64;
    Some(Duration::from_millis(ticks * 1000 / hz))
}

fn bench_observer() -> anyhow::Result<()> {
    const PAIRS: usize = 5_000;
    let (_listener, _held) = hold_connections(PAIRS)?;
    // A quiet port: one connection among the 10,000 sockets.
    let quiet = TcpListener::bind("127.0.0.1:0")?;
    let quiet_port = quiet.local_addr()?.port();
    let _quiet_conn = TcpStream::connect(quiet.local_addr()?)?;
    let observer = binaries()?.observer.display().to_string();
    let port = quiet_port.to_string();
    let sport = format!("sport = :{port}");
    let either = format!("( sport = :{port} or dport = :{port} )");
    println!(
        "observer: {} loopback sockets held by this process (plus the system's)\n",
        2 * PAIRS + 1
    );
    const RUNS: usize = 21;
    let rows = [
        (
            "observer snapshot --all",
            median_time(&observer, &["snapshot", "--all"], RUNS)?,
        ),
        (
            "observer snapshot --all --no-owners",
            median_time(&observer, &["snapshot", "--all", "--no-owners"], RUNS)?,
        ),
        ("ss -tan", median_time("ss", &["-tan"], RUNS)?),
        (
            "ss -tanp (owners, as ours)",
            median_time("ss", &["-tanp"], RUNS)?,
        ),
        (
            "observer snapshot --port P",
            median_time(&observer, &["snapshot", "--port", &port], RUNS)?,
        ),
        (
            "observer snapshot --port P --no-owners",
            median_time(
                &observer,
                &["snapshot", "--port", &port, "--no-owners"],
                RUNS,
            )?,
        ),
        (
            "ss -tan sport = :P",
            median_time("ss", &["-tan", &sport], RUNS)?,
        ),
        (
            "ss -tan (sport or dport) = :P",
            median_time("ss", &["-tan", &either], RUNS)?,
        ),
        (
            "ss -tanp (sport or dport) = :P",
            median_time("ss", &["-tanp", &either], RUNS)?,
        ),
    ];
    for (name, t) in &rows {
        println!(
            "{name:<40} median of {RUNS}: {:>8.2} ms",
            t.as_secs_f64() * 1e3
        );
    }
    let ratio = |a: usize, b: usize| rows[a].1.as_secs_f64() / rows[b].1.as_secs_f64();
    println!();
    println!(
        "snapshot --all / ss -tan                          = {:.2}",
        ratio(0, 2)
    );
    println!(
        "snapshot --all --no-owners / ss -tan              = {:.2}",
        ratio(1, 2)
    );
    println!(
        "snapshot --all / ss -tanp                         = {:.2}",
        ratio(0, 3)
    );
    println!(
        "snapshot --port P / ss -tan sport = :P            = {:.2}",
        ratio(4, 6)
    );
    println!(
        "snapshot --port P --no-owners / ss sport = :P     = {:.2}",
        ratio(5, 6)
    );
    println!(
        "snapshot --port P / ss -tanp (s or d) = :P        = {:.2}",
        ratio(4, 8)
    );

    // CPU share of the watch at its default interval, 10 s, on the quiet
    // port: the kernel still walks all 10,000 sockets at every dump.
    for (label, watch_port) in [
        ("a quiet port", port.clone()),
        (
            "the port of all 10,000",
            _listener.local_addr()?.port().to_string(),
        ),
    ] {
        let mut watch = Proc::spawn(
            std::path::Path::new(&observer),
            [
                "watch",
                "--port",
                &watch_port,
                "--duration",
                "10s",
                "--json",
            ],
            Input::Null,
        )?;
        let start = Instant::now();
        // Read its CPU time just before it exits (afterwards /proc is gone).
        let mut cpu = Duration::ZERO;
        while start.elapsed() < Duration::from_millis(9_900) {
            cpu = cpu_of(watch.pid()).unwrap_or(cpu);
            std::thread::sleep(Duration::from_millis(50));
        }
        let wall = start.elapsed();
        watch.wait_exit(Duration::from_secs(10))?;
        println!(
            "observer watch on {label} (interval 10 ms): CPU {:.1}% of one core ({:.2} s in {:.1} s)",
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            cpu.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
    Ok(())
}

/// Which true state visits (from the tracepoint) the sampling watch saw.
///
/// N loopback connections (connect, echo a line, close), watched by
/// `observer --exact --json`; the tracepoint's transitions are the truth.
/// A visit is (socket end, state entered), CLOSE excluded (the sampler
/// reports a departure instead) and TIME_WAIT never in the truth (the
/// tracepoint does not show it).
fn bench_fidelity() -> anyhow::Result<()> {
    use lifecycle::observer::{EventExt, Observer};
    use std::collections::{BTreeMap, HashSet};
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "fidelity needs root (the tracepoint)"
    );
    const N: usize = 200;
    println!(
        "fidelity: {N} loopback connections (connect, echo a line, close), truth from the tracepoint\n"
    );
    for interval in ["10ms", "1ms"] {
        let server = Server::start(&[])?;
        let observer = Observer::watch(server.port(), &["--exact", "--interval", interval])?;
        for _ in 0..N {
            let out =
                lifecycle::echo::Client::run(server.addr, &[], b"hi\n", Duration::from_secs(10))?;
            anyhow::ensure!(out.status.success(), "client failed: {}", out.stderr);
        }
        // All N server ends closed, as the tracepoint saw it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while observer
            .events()
            .iter()
            .filter(|e| e.str("source") == "trace" && e.str("prev_state") == "LAST_ACK")
            .count()
            < N
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the tracepoint did not report {N} closes"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100)); // let the last polls land
        let events = observer.stop()?;
        let _ = server.stop();
        // Truth: (local, remote, state) visits. The client's CLOSE -> SYN_SENT
        // has port 0; it belongs to the end whose SYN_SENT -> ESTABLISHED follows.
        let trace: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e.str("source") == "trace")
            .collect();
        let mut truth: HashSet<(String, String, String)> = HashSet::new();
        for (i, e) in trace.iter().enumerate() {
            let state = e.str("state").to_string();
            if state == "CLOSE" {
                continue;
            }
            let mut local = e.str("local").to_string();
            if local.ends_with(":0") {
                if let Some(next) = trace[i..].iter().find(|n| {
                    n.str("prev_state") == "SYN_SENT" && n.str("remote") == e.str("remote")
                }) {
                    local = next.str("local").to_string();
                }
            }
            truth.insert((local, e.str("remote").to_string(), state));
        }
        let seen: HashSet<(String, String, String)> = events
            .iter()
            .filter(|e| e.str("source") == "poll" && matches!(e.str("event"), "new" | "state"))
            .map(|e| {
                (
                    e.str("local").to_string(),
                    e.str("remote").to_string(),
                    e.str("state").to_string(),
                )
            })
            .collect();
        let mut by_state: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for visit in &truth {
            let entry = by_state.entry(visit.2.clone()).or_default();
            entry.0 += 1;
            if seen.contains(visit) {
                entry.1 += 1;
            }
        }
        let total: usize = by_state.values().map(|v| v.0).sum();
        let hit: usize = by_state.values().map(|v| v.1).sum();
        println!(
            "interval {interval:>5}: the sampler saw {hit} of {total} true state visits ({:.1}%)",
            100.0 * hit as f64 / total.max(1) as f64
        );
        for (state, (t, h)) in by_state {
            println!(
                "    {state:<12} {h:>4} of {t:<4} ({:.0}%)",
                100.0 * h as f64 / t.max(1) as f64
            );
        }
    }
    Ok(())
}

/// Round trips of one byte (median, p99 in microseconds) and MB/s through
/// one connection to an echo server at `addr`, printed as one JSON line.
fn relay_probe(addr: &str) -> anyhow::Result<()> {
    const ROUNDS: usize = 2000;
    let addr: SocketAddr = addr.parse()?;
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut byte = [0u8; 1];
    let mut rtts = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        stream.write_all(b"x")?;
        stream.read_exact(&mut byte)?;
        rtts.push(start.elapsed().as_secs_f64() * 1e6);
    }
    rtts.sort_by(f64::total_cmp);
    drop(stream);
    let mbs = megabytes_per_second_n(addr, 64 << 20)?;
    println!(
        "{}",
        serde_json::json!({"median_us": rtts[ROUNDS / 2], "p99_us": rtts[ROUNDS * 99 / 100], "mb_s": mbs})
    );
    Ok(())
}

/// MB/s of `total` bytes echoed through one connection: a writer thread
/// sends while this one reads the echo back.
fn megabytes_per_second_n(addr: SocketAddr, total: usize) -> anyhow::Result<f64> {
    let stream = TcpStream::connect(addr)?;
    let mut reader = stream.try_clone()?;
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut stream = stream;
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while sent < total && stream.write_all(&chunk).is_ok() {
            sent += chunk.len();
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < total {
        let n = reader.read(&mut buf)?;
        anyhow::ensure!(n > 0, "EOF after {got} bytes");
        got += n;
    }
    let _ = writer.join();
    Ok(total as f64 / 1e6 / start.elapsed().as_secs_f64())
}

/// What the lab's relay adds on its own: the same probe through the lab
/// (delay 0 ms) and over loopback, in one run.
fn bench_relay() -> anyhow::Result<()> {
    use lifecycle::lab::LabRun;
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "relay needs root (the lab)"
    );
    let me = std::env::current_exe()?;
    let parse = |text: &str| -> anyhow::Result<serde_json::Value> {
        let line = text.lines().last().unwrap_or("");
        Ok(serde_json::from_str(line)?)
    };
    // Baseline: loopback, same probe, this process.
    let server = Server::start(&[])?;
    let mut local = Proc::spawn(&me, ["relay-probe", &server.addr.to_string()], Input::Null)?;
    local.wait_exit(Duration::from_secs(120))?;
    let loopback = parse(&local.stdout.text())?;
    // Through the lab, ladder printed as a teacher would see it (--json).
    let lab = LabRun::start(&["--delay", "0ms"])?;
    let lab_server = lab.exec(
        "server",
        &binaries()?.server,
        &["--bind", "0.0.0.0"],
        Input::Null,
    )?;
    lab_server
        .stdout
        .wait_for("listening", Duration::from_secs(10), |l| {
            l.iter().any(|x| x.starts_with("listening")).then_some(())
        })?;
    let mut probe = lab.exec(
        "client",
        &me,
        &["relay-probe", "10.66.0.2:6666"],
        Input::Null,
    )?;
    probe.wait_exit(Duration::from_secs(300))?;
    let relay =
        parse(&probe.stdout.text()).map_err(|e| anyhow::anyhow!("{e}: {}", probe.stderr.text()))?;
    drop(lab_server);
    let segments = lab
        .events()
        .iter()
        .filter(|e| e["event"] == "segment")
        .count();
    lab.stop()?;
    let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!("relay: 1-byte round trips (2000) and 64 MiB through one connection, this run\n");
    println!(
        "{:<30} {:>12} {:>12} {:>10}",
        "path", "median RTT", "p99 RTT", "MB/s"
    );
    for (name, v) in [("loopback", &loopback), ("lab wire, delay 0 ms", &relay)] {
        println!(
            "{name:<30} {:>9.1} us {:>9.1} us {:>10.1}",
            f(v, "median_us"),
            f(v, "p99_us"),
            f(v, "mb_s")
        );
    }
    println!(
        "\nthe relay adds {:.1} us per crossing at the median, {:.1} us at p99 (a round trip crosses twice);",
        (f(&relay, "median_us") - f(&loopback, "median_us")) / 2.0,
        (f(&relay, "p99_us") - f(&loopback, "p99_us")) / 2.0
    );
    println!(
        "throughput is {:.3} of loopback's; {segments} segments were printed on the ladder.",
        f(&relay, "mb_s") / f(&loopback, "mb_s")
    );
    Ok(())
}
