//! What sampling sees against the kernel's tracepoint (`bench fidelity`,
//! root): the share of true state visits a 10 ms watch reports.

use std::time::Duration;

use lifecycle::echo::Server;

/// Which true state visits (from the tracepoint) the sampling watch saw.
///
/// N loopback connections (connect, echo a line, close), watched by
/// `observer --exact --json`; the tracepoint's transitions are the truth.
/// A visit is (socket end, state entered), CLOSE excluded (the sampler
/// reports a departure instead) and TIME_WAIT never in the truth (the
/// tracepoint does not show it).
pub fn bench_fidelity() -> anyhow::Result<()> {
    use lifecycle::observer::{EventExt, Observer, Timeline};
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
