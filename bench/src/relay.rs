//! What the lab's user-space wire adds to loopback (`bench relay`, root):
//! the same probe through the lab's delay line (at 0 ms) and over loopback.

use std::net::SocketAddr;
use std::time::Duration;

use lifecycle::bins::binaries;
use lifecycle::echo::Server;
use lifecycle::spawn::{Input, Proc};

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
    use lifecycle::observer::Timeline;
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
