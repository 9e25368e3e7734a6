//! The two root-only benchmarks: what sampling sees against the kernel's
//! tracepoint (`fidelity`), and what the lab's user-space wire adds to
//! loopback (`relay`).

use std::net::SocketAddr;
use std::time::Duration;

use lifecycle::bins::binaries;
use lifecycle::echo::Server;
use lifecycle::spawn::{Input, Proc};

/// Which true state visits (from the tracepoint) the sampling watch saw.
///
/// N loopback connections (connect, echo a line, close), watched by
/// `observer --exact --json`; the tracepoint's transitions are the truth.
/// A visit is (socket end, state entered), CLOSE excluded (the sampler
/// reports a departure instead) and TIME_WAIT never in the truth (the
/// tracepoint does not show it).
pub fn bench_fidelity() -> anyhow::Result<()> {
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
        // All N server ends closed, as the tracepoint saw it; then the
        // sampling side has told each server end's departure too (the
        // last polls have landed).
        let count = |pick: &dyn Fn(&serde_json::Value) -> bool| {
            observer.events().iter().filter(|e| pick(e)).count()
        };
        lifecycle::wait::until(
            &format!("the tracepoint to report {N} closes"),
            Duration::from_secs(30),
            || {
                (count(&|e| e.str("source") == "trace" && e.str("prev_state") == "LAST_ACK") >= N)
                    .then_some(())
            },
        )?;
        lifecycle::wait::until(
            &format!("the watch to report {N} server ends gone"),
            Duration::from_secs(10),
            || {
                (count(&|e| e.str("event") == "gone" && e.str("role") == "server") >= N)
                    .then_some(())
            },
        )?;
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

/// Round trips of one byte (median, p99 in microseconds) and MB/s of
/// 64 MiB echoed and verified through one connection to an echo server
/// at `addr`, printed as one JSON line.
pub fn relay_probe(addr: &str) -> anyhow::Result<()> {
    let addr: SocketAddr = addr.parse()?;
    let (median, p99) = crate::servers::round_trips(addr, 2000, 1)?;
    let mbs = crate::servers::throughput_verified(addr, 64 << 20)?;
    println!(
        "{}",
        serde_json::json!({"median_us": median, "p99_us": p99, "mb_s": mbs})
    );
    Ok(())
}

/// What the lab's relay adds on its own: the same probe through the lab
/// (delay 0 ms) and over loopback, in one run.
pub fn bench_relay() -> anyhow::Result<()> {
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
