//! The observer against `ss`, with a known crowd of loopback sockets.
//!
//! The crowd: this process connects to its own listener on 127.0.0.1.
//! Kept pairs stay ESTABLISHED (two sockets each); closed pairs leave the
//! client's end in TIME_WAIT (the active closer, for 60 s). Every dump
//! walks the whole connection hash (262,144 buckets here) whatever the
//! filter, so the crowd matters even to a one-port snapshot.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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

/// A lesson at rest: echo-server and one connected echo-client whose
/// standard input is a pipe nobody writes to (a student who has not typed
/// yet). The watch sees a listener, both ends of a connection, and three
/// processes: the server, its child, the client.
struct Lesson {
    server: lifecycle::echo::Server,
    _client: lifecycle::echo::Client,
}

impl Lesson {
    fn start() -> Result<Lesson> {
        let server = lifecycle::echo::Server::start(&[])?;
        let client = lifecycle::echo::Client::start(server.addr, &[], Input::Pipe)?;
        // Connected: the server has accepted and forked its child.
        server.wait_event("accepted", Duration::from_secs(5))?;
        Ok(Lesson {
            server,
            _client: client,
        })
    }

    fn port(&self) -> u16 {
        self.server.port()
    }
}

/// CPU share (% of one core) of `observer watch` at its default interval
/// over `seconds`, watching `port`, as root or (`as_nobody`) as the
/// ordinary user nobody.
fn watch_cpu(observer: &Path, port: u16, seconds: f64, as_nobody: bool) -> Result<f64> {
    let port = port.to_string();
    let args = ["watch", "--port", &port, "--json"];
    if as_nobody {
        let copy = NobodyCopy::of(observer)?;
        let runuser = runuser()?;
        let mut all = vec!["-u", "nobody", "--", copy.path()];
        all.extend(args);
        observer_cpu(Path::new(runuser), &all, seconds)
    } else {
        observer_cpu(observer, &args, seconds)
    }
}

/// `runuser`, to run the observer as an ordinary user (util-linux).
fn runuser() -> Result<&'static str> {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| anyhow::anyhow!("runuser (util-linux) is not installed"))
}

/// A copy of the observer that the user nobody can run (the build
/// directory may sit where nobody cannot enter, such as /root), removed
/// when dropped.
struct NobodyCopy {
    dir: PathBuf,
    file: String,
}

impl NobodyCopy {
    fn of(observer: &Path) -> Result<NobodyCopy> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("echo-lab-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let file = dir.join("observer");
        std::fs::copy(observer, &file)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))?;
        Ok(NobodyCopy {
            file: file.display().to_string(),
            dir,
        })
    }

    fn path(&self) -> &str {
        &self.file
    }
}

impl Drop for NobodyCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// CPU share (% of one core) of `PROGRAM ARGS --duration SECONDS` (the
/// observer, or runuser running it): its user + system time, all threads,
/// from the rusage of our reaped children (getrusage(RUSAGE_CHILDREN)
/// before and after; nothing else of ours exits meanwhile). Start-up (and
/// a lab's set-up) is included.
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
    // The watched port: a lesson at rest. Everything else is elsewhere.
    let lesson = Lesson::start()?;
    let port = lesson.port();

    // The watch on an otherwise idle host first (the crowd stays 60 s).
    push_watch_cpu(report, &observer, port, size.watch_seconds, 1.0)?;
    first_line_latency(report, &observer, &lesson, size.latency_probes)?;

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

    push_watch_cpu(report, &observer, port, size.watch_seconds, 3.0)?;
    drop(crowd);
    drop(lesson);
    Ok(())
}

/// The watch's CPU share with the sockets present now: as root and, when
/// root, also as the ordinary user nobody (who cannot read other users'
/// descriptors: the owners are not found, and cost nothing).
fn push_watch_cpu(
    report: &mut Report,
    observer: &Path,
    port: u16,
    seconds: f64,
    limit: f64,
) -> Result<()> {
    let (n, _) = census();
    let workload = format!(
        "observer watch --port P (a lesson at rest on P), default interval, {n} TCP sockets present"
    );
    let root = nix::unistd::geteuid().is_root();
    let name = if root {
        "observer watch (root)"
    } else {
        "observer watch"
    };
    let cpu = watch_cpu(observer, port, seconds, false)?;
    report.push(&workload, name, "% of a core", Better::Lower, cpu);
    report.limit(
        &format!("{name}, {n} sockets <= {limit}% of a core"),
        &workload,
        name,
        limit,
    );
    if root {
        let nobody = "observer watch (user nobody)";
        let cpu = watch_cpu(observer, port, seconds, true)?;
        report.push(&workload, nobody, "% of a core", Better::Lower, cpu);
        report.limit(
            &format!("{nobody}, {n} sockets <= {limit}% of a core"),
            &workload,
            nobody,
            limit,
        );
    }
    Ok(())
}

/// How long after a connect() its first line leaves the watch, with the
/// watch calm (nothing moved for a while): `probes` connections to the
/// lesson's server, 300 ms apart. The time is taken from just before
/// connect() to the moment this process reads the line from the watch's
/// standard output (a thread does nothing but read it).
fn first_line_latency(
    report: &mut Report,
    observer: &Path,
    lesson: &Lesson,
    probes: usize,
) -> Result<()> {
    use std::io::BufRead;
    use std::sync::mpsc;
    let mut child = lifecycle::spawn::spawn_tracked(
        Command::new(observer)
            .args(["watch", "--json", "--port", &lesson.port().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let result = (|| -> Result<Vec<f64>> {
        // The first dump has answered once the listener's line is out.
        lifecycle::wait::until("the watch's first lines", Duration::from_secs(5), || {
            rx.recv_timeout(Duration::from_millis(50))
                .ok()
                .filter(|(_, l)| l.contains("LISTEN"))
        })?;
        let mut latencies = Vec::with_capacity(probes);
        for _ in 0..probes {
            // Calm again: the previous probe's lines are long out.
            std::thread::sleep(Duration::from_millis(300));
            while rx.try_recv().is_ok() {}
            let started = Instant::now();
            let stream = TcpStream::connect(lesson.server.addr)?;
            let local = stream.local_addr()?.to_string();
            let wanted = format!("\"local\":\"{local}\"");
            let (at, _) = lifecycle::wait::until(
                "the new connection's first line",
                Duration::from_secs(5),
                || {
                    rx.recv_timeout(Duration::from_millis(50))
                        .ok()
                        .filter(|(_, l)| l.contains(&wanted))
                },
            )?;
            latencies.push(at.duration_since(started).as_secs_f64() * 1e3);
            drop(stream);
        }
        Ok(latencies)
    })();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    lifecycle::interrupt::untrack(child.id() as i32);
    let _ = reader.join();
    let mut latencies = result?;
    latencies.sort_by(f64::total_cmp);
    let workload = "a new connection's first line, from connect() (the watch calm)";
    for (name, value) in [
        ("observer watch, median", latencies[latencies.len() / 2]),
        ("observer watch, slowest", latencies[latencies.len() - 1]),
    ] {
        report.push(workload, name, "ms", Better::Lower, value);
    }
    report.limit(
        "a new connection's first line within 20 ms of connect() (slowest)",
        workload,
        "observer watch, slowest",
        20.0,
    );
    Ok(())
}
