//! `bench`: echo-lab measured against the peers a user would pick, in one
//! run, as ratios. Not a test: tests assert behaviour only; this prints
//! numbers and asserts nothing about speed (it fails only if a contender
//! gives a wrong answer: every echoed byte is checked).
//!
//! ```text
//! cargo build --release --workspace
//! target/release/bench                # everything, about 3 minutes
//! target/release/bench --quick        # small sizes, one short pass (CI)
//! target/release/bench --only observer --json
//! target/release/bench fidelity       # sampling vs the tracepoint (root)
//! target/release/bench relay          # the lab's wire vs loopback (root)
//! ```
//!
//! It builds nothing: the programs are taken from the directory the
//! bench itself is in (or `ECHO_LAB_BIN_DIR`), so the bench and the
//! programs are the same build and profile.

mod client;
mod fidelity;
mod observer;
mod relay;
mod report;
mod servers;

use std::net::TcpListener;
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  cargo build --release --workspace && target/release/bench
  target/release/bench --quick
  target/release/bench --only servers --json > servers.json
  target/release/bench --only servers --server 'cfork=./cfork {port}'

Exit status: 0 when every echo-lab program answered every workload
correctly (speed targets missed, and peers that failed, are reported, not
failed), 1 otherwise, 2 for a usage error or missing programs.";

/// bench: echo servers, the client's batch mode and the observer against
/// socat, ncat, nc and ss, on loopback, in one run.
#[derive(Debug, Parser)]
#[command(name = "bench", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Extra>,
    /// Small sizes and few rounds: proves the benchmark works (CI); the
    /// numbers mean little.
    #[arg(long)]
    quick: bool,
    /// Rounds per workload (default 5, quick 2; snapshots 21 / 3).
    #[arg(long, value_name = "N", value_parser = echo_lab_cli::between::<u32>(1, 1000))]
    rounds: Option<u32>,
    /// Only these groups (repeatable).
    #[arg(long, value_enum)]
    only: Vec<Group>,
    /// One JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// Also measure this echo server, `NAME=COMMAND` with `{port}` where
    /// its port goes (a student's C server, a reference): repeatable.
    #[arg(long, value_name = "NAME=CMD", value_parser = parse_server)]
    server: Vec<(String, String)>,
}

fn parse_server(text: &str) -> Result<(String, String), String> {
    let (name, cmd) = text
        .split_once('=')
        .ok_or("--server takes NAME=COMMAND, e.g. 'cfork=./cfork {port}'")?;
    if !cmd.contains("{port}") {
        return Err(format!(
            "--server {name}: the command needs {{port}} where the port goes"
        ));
    }
    Ok((name.to_string(), cmd.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Group {
    /// echo-server against socat and ncat
    Servers,
    /// echo-client batch mode against nc -N and socat -
    Client,
    /// observer snapshot and watch against ss
    Observer,
}

#[derive(Debug, Subcommand)]
enum Extra {
    /// How much of each connection the sampling watch sees, against the
    /// kernel's tracepoint (root).
    Fidelity,
    /// What the lab's user-space wire adds to loopback (root).
    Relay,
    /// Run by `relay` inside the lab's client namespace.
    #[command(hide = true)]
    RelayProbe { addr: String },
}

/// Sizes and counts of one run.
pub struct Size {
    pub rounds: usize,
    pub rate_seconds: f64,
    pub round_trips: usize,
    pub throughput: usize,
    pub throughput_rounds: usize,
    pub held: usize,
    pub batch: usize,
    pub batch_rounds: usize,
    pub crowd: usize,
    pub snapshot_rounds: usize,
    pub watch_seconds: f64,
    pub latency_probes: usize,
}

impl Size {
    fn full() -> Size {
        Size {
            rounds: 5,
            rate_seconds: 1.0,
            round_trips: 5_000,
            throughput: 1 << 30,
            throughput_rounds: 3,
            held: 1_000,
            batch: 100 << 20,
            batch_rounds: 3,
            crowd: 10_000,
            snapshot_rounds: 21,
            watch_seconds: 30.0,
            latency_probes: 20,
        }
    }

    fn quick() -> Size {
        Size {
            rounds: 2,
            rate_seconds: 0.2,
            round_trips: 300,
            throughput: 8 << 20,
            throughput_rounds: 2,
            held: 100,
            batch: 2 << 20,
            batch_rounds: 2,
            crowd: 1_000,
            snapshot_rounds: 3,
            watch_seconds: 1.0,
            latency_probes: 3,
        }
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Is `program` on the PATH (and runnable)?
pub fn installed(program: &str) -> bool {
    lifecycle::spawn::status_tracked(
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(Stdio::null()),
    )
    .is_ok_and(|s| s.success())
}

/// Raise the soft limit on open files (inherited by the servers we start:
/// the thread server holds every connection in one process).
pub fn raise_fd_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
        }
    }
}

/// Take the programs from beside this binary unless told otherwise; say
/// in one line how to build them if they are not there.
fn find_programs() -> Result<(), String> {
    if std::env::var_os("ECHO_LAB_BIN_DIR").is_none() {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_path_buf()))
            .ok_or("cannot tell where this binary is")?;
        // SAFETY: still single-threaded (first thing in main, before the
        // clean-up thread starts): nothing reads the environment concurrently.
        unsafe { std::env::set_var("ECHO_LAB_BIN_DIR", &dir) };
    }
    lifecycle::bins::binaries().map(|_| ()).map_err(|_| {
        let dir = std::env::var("ECHO_LAB_BIN_DIR").unwrap_or_default();
        format!(
            "echo-server, echo-client and observer are not built in {dir}: run `cargo build --release --workspace` first"
        )
    })
}

fn main() -> ExitCode {
    let cli: Cli = match echo_lab_cli::parse("bench") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Err(e) = find_programs() {
        eprintln!("bench: {e}");
        return ExitCode::from(2);
    }
    // Ctrl-C: stop every server and client we started, remove temp files.
    lifecycle::interrupt::cleanup_on_signal();
    // Orphans of the servers' children come to us (socat's and ncat's
    // `cat`s, thousands in a run), and a thread of ours reaps them.
    lifecycle::procfs::become_subreaper();
    lifecycle::spawn::reap_adopted_orphans();
    let result = match cli.command {
        Some(Extra::Fidelity) => fidelity::bench_fidelity(),
        Some(Extra::Relay) => relay::bench_relay(),
        Some(Extra::RelayProbe { addr }) => relay::relay_probe(&addr),
        None => compare(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn compare(cli: &Cli) -> anyhow::Result<()> {
    let mut size = if cli.quick {
        Size::quick()
    } else {
        Size::full()
    };
    if let Some(n) = cli.rounds {
        size.rounds = n as usize;
        size.throughput_rounds = n as usize;
        size.batch_rounds = n as usize;
        size.snapshot_rounds = n as usize;
    }
    let wanted = |g: Group| cli.only.is_empty() || cli.only.contains(&g);
    raise_fd_limit(4 * size.held as u64 + 1024);
    let mut report = report::Report::default();
    let started = std::time::Instant::now();
    // The observer first: the other groups leave tens of thousands of
    // TIME_WAIT sockets behind for 60 s, which every dump would walk.
    if wanted(Group::Observer) {
        progress(cli, "observer against ss");
        observer::run(&mut report, &size)?;
    }
    if wanted(Group::Client) {
        progress(cli, "echo-client batch mode against nc and socat");
        client::run(&mut report, &size)?;
    }
    if wanted(Group::Servers) {
        progress(cli, "echo servers against socat and ncat");
        servers::run(&mut report, &size, &cli.server)?;
    }
    report.notes.push(format!(
        "{} run on {}, {} cores, Linux {}; {} build; {:.0} s",
        if cli.quick { "quick" } else { "full" },
        hostname(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        started.elapsed().as_secs_f64()
    ));
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.text());
    }
    // A peer that stalls is its own story; ours must not.
    let ours_failed = report
        .failures
        .iter()
        .any(|f| f.starts_with("echo-") || f.starts_with("observer"));
    anyhow::ensure!(
        !ours_failed,
        "an echo-lab program failed (see FAILED above)"
    );
    Ok(())
}

fn progress(cli: &Cli, what: &str) {
    if !cli.json {
        eprintln!("bench: {what} ...");
    }
}

fn hostname() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default()
}
