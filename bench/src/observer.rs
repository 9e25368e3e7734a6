//! The observer against `ss`, with a known crowd of loopback sockets.
//!
//! The crowd: this process connects to its own listener on 127.0.0.1.
//! Kept pairs stay ESTABLISHED (two sockets each); closed pairs leave the
//! client's end in TIME_WAIT (the active closer, for 60 s). Every dump
//! walks the whole connection hash (262,144 buckets here) whatever the
//! filter, so the crowd matters even to a one-port snapshot.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use lifecycle::bins::binaries;
use lifecycle::spawn::{Input, Proc};

use crate::report::{Better, Report};
use crate::{Size, raise_fd_limit};

/// Sockets held open by this process, and TIME_WAITs left in the kernel.
pub struct Crowd {
    _listener: TcpListener,
    _held: Vec<TcpStream>,
}

/// `established` sockets in pairs, plus `time_wait` client ends closed first.
pub fn crowd(established: usize, time_wait: usize) -> Result<Crowd> {
    raise_fd_limit(established as u64 + 1024);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut held = Vec::with_capacity(established);
    for _ in 0..established / 2 {
        let client = TcpStream::connect(addr)?;
        let (server, _) = listener.accept()?;
        held.push(client);
        held.push(server);
    }
    for _ in 0..time_wait {
        let client = TcpStream::connect(addr)?;
        let (server, _) = listener.accept()?;
        drop(client); // the active close: this end goes to TIME_WAIT
        drop(server);
    }
    Ok(Crowd {
        _listener: listener,
        _held: held,
    })
}

/// (all TCP sockets, of which TIME_WAIT) in this network namespace, by ss.
fn census() -> (usize, usize) {
    let count = |args: &[&str]| {
        lifecycle::spawn::output_tracked(Command::new("ss").args(args).stdout(Stdio::piped()))
            .map(|o| {
                o.stdout
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count()
                    .saturating_sub(1)
            })
            .unwrap_or(0)
    };
    (count(&["-tan"]), count(&["-tan", "state", "time-wait"]))
}

/// Wall time of one run of a command, output discarded, in ms.
fn time_once(program: &str, args: &[String]) -> Result<f64> {
    let start = Instant::now();
    let status = lifecycle::spawn::status_tracked(
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    ensure!(status.success(), "{program} {args:?}: {status}");
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

/// CPU share (% of one core) of `observer watch` at its default interval
/// over `seconds`.
fn watch_cpu(observer: &Path, port: u16, seconds: f64) -> Result<f64> {
    let port = port.to_string();
    observer_cpu(observer, &["watch", "--port", &port, "--json"], seconds)
}

/// CPU share (% of one core) of `observer ARGS --duration SECONDS`: its
/// user + system time, all threads, from the rusage of our reaped
/// children (getrusage(RUSAGE_CHILDREN) before and after; nothing else of
/// ours exits meanwhile). Start-up (and a lab's set-up) is included.
fn observer_cpu(observer: &Path, args: &[&str], seconds: f64) -> Result<f64> {
    use nix::sys::resource::{UsageWho, getrusage};
    let cpu = || -> Result<f64> {
        let u = getrusage(UsageWho::RUSAGE_CHILDREN)?;
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        Ok(t(u.user_time()) + t(u.system_time()))
    };
    let duration = format!("{}ms", (seconds * 1000.0) as u64);
    let before = cpu()?;
    let start = Instant::now();
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--duration", &duration])
        .collect();
    let mut watch = Proc::spawn(observer, &args, Input::Null)?;
    let status = watch.wait_exit(Duration::from_secs_f64(seconds + 10.0))?;
    let wall = start.elapsed().as_secs_f64();
    ensure!(
        status.success(),
        "observer {}: {status}: {}",
        args.join(" "),
        watch.stderr.text()
    );
    Ok(100.0 * (cpu()? - before) / wall)
}

/// A command timed against its peers: (name in the table, program, arguments).
type Timed = (String, String, Vec<String>);

/// As root, in a network namespace of its own: `ss` and the observer see
/// exactly the crowd (the kernel still walks one connection hash shared by
/// every namespace, as on a real host). Otherwise among the host's sockets.
pub fn run(report: &mut Report, size: &Size) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        lifecycle::isolate::in_new_netns(|| run_here(report, size))
    } else {
        report.notes.push(
            "not root: the observer workloads ran among the host's own sockets (counted in the census)".into(),
        );
        run_here(report, size)
    }
}

fn run_here(report: &mut Report, size: &Size) -> Result<()> {
    let observer = binaries()?.observer.clone();
    let observer_s = observer.display().to_string();
    // A quiet port: a listener and one connection, the rest elsewhere.
    let quiet = TcpListener::bind("127.0.0.1:0")?;
    let port = quiet.local_addr()?.port();
    let _quiet_client = TcpStream::connect(quiet.local_addr()?)?;
    let _quiet_server = quiet.accept()?;

    // The watch with a small crowd first (the large one stays 60 s).
    let small = crowd(100, 0)?;
    push_watch_cpu(report, &observer, port, size.watch_seconds)?;
    drop(small);

    // The lab left idle: two namespaces polled every 10 ms, a wire that
    // carries nothing. (It once busy-looped on a poll() timeout rounded
    // down to 0 ms, and walked the host's 262,144-bucket TCP hash twice
    // a poll: a fifth of a core for nothing.)
    if nix::unistd::geteuid().is_root() {
        let cpu = observer_cpu(
            &observer,
            &["lab", "--name", "echolab-bench", "--json"],
            size.watch_seconds,
        )?;
        report.push(
            "observer lab, idle (two hosts polled every 10 ms, no traffic)",
            "observer lab",
            "% of a core",
            Better::Lower,
            cpu,
        );
    }

    let crowd = crowd(size.crowd * 6 / 10, size.crowd * 4 / 10)?;
    let (n, tw) = census();
    report.notes.push(format!(
        "observer workloads: {n} TCP sockets present ({tw} TIME_WAIT), most of them this benchmark's on 127.0.0.1"
    ));
    let p = port.to_string();
    let cases: Vec<(String, Vec<Timed>)> = vec![
        (
            format!("snapshot of all {n} sockets, no owners"),
            vec![
                ("ss -tan".into(), "ss".into(), vec!["-tan".into()]),
                (
                    "observer snapshot --all --no-owners".into(),
                    observer_s.clone(),
                    vec!["snapshot".into(), "--all".into(), "--no-owners".into()],
                ),
            ],
        ),
        (
            format!("snapshot of all {n} sockets, with owning processes"),
            vec![
                ("ss -tanp".into(), "ss".into(), vec!["-tanp".into()]),
                (
                    "observer snapshot --all".into(),
                    observer_s.clone(),
                    vec!["snapshot".into(), "--all".into()],
                ),
            ],
        ),
        (
            "snapshot of one port (P)".into(),
            vec![
                (
                    "ss -tan sport = :P".into(),
                    "ss".into(),
                    vec!["-tan".into(), format!("sport = :{p}")],
                ),
                (
                    "ss -tan ( sport = :P or dport = :P )".into(),
                    "ss".into(),
                    vec!["-tan".into(), format!("( sport = :{p} or dport = :{p} )")],
                ),
                (
                    "observer snapshot --port P --no-owners".into(),
                    observer_s.clone(),
                    vec![
                        "snapshot".into(),
                        "--port".into(),
                        p.clone(),
                        "--no-owners".into(),
                    ],
                ),
                (
                    "ss -tanp ( sport = :P or dport = :P )".into(),
                    "ss".into(),
                    vec!["-tanp".into(), format!("( sport = :{p} or dport = :{p} )")],
                ),
                (
                    "observer snapshot --port P".into(),
                    observer_s.clone(),
                    vec!["snapshot".into(), "--port".into(), p.clone()],
                ),
            ],
        ),
    ];
    // Round-robin: every command once per round.
    for _ in 0..size.snapshot_rounds {
        for (workload, commands) in &cases {
            for (name, program, args) in commands {
                let ms = time_once(program, args)?;
                report.push(workload, name, "ms", Better::Lower, ms);
            }
        }
    }
    for (workload, commands) in &cases {
        report.peer(workload, &commands[0].0);
    }
    report.target(
        "snapshot --all --no-owners <= 0.8x ss -tan",
        &cases[0].0,
        "observer snapshot --all --no-owners",
        "ss -tan",
        0.8,
    );
    report.target(
        "snapshot --all (owners) <= 0.5x ss -tanp",
        &cases[1].0,
        "observer snapshot --all",
        "ss -tanp",
        0.5,
    );
    report.target(
        "snapshot --port P --no-owners <= 1.0x ss sport = :P",
        &cases[2].0,
        "observer snapshot --port P --no-owners",
        "ss -tan sport = :P",
        1.0,
    );

    push_watch_cpu(report, &observer, port, size.watch_seconds)?;
    drop(crowd);
    Ok(())
}

/// The watch's CPU share with the sockets present now, as one row.
fn push_watch_cpu(report: &mut Report, observer: &Path, port: u16, seconds: f64) -> Result<()> {
    let (n, _) = census();
    let workload =
        format!("observer watch --port P, default interval (10 ms), {n} TCP sockets present");
    let cpu = watch_cpu(observer, port, seconds)?;
    report.push(
        &workload,
        "observer watch",
        "% of a core",
        Better::Lower,
        cpu,
    );
    Ok(())
}
