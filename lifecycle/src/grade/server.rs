//! `lifecycle --server-cmd 'CMD {port}'`: check any echo server, a
//! student's C program, socat, ours, against what a correct one does.
//!
//! We do not trust its output: it is "listening" when the kernel says a
//! socket listens on the port (inet_diag), and its zombies are what /proc
//! says about its children.

use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use observer::diag::{DiagSocket, Query};
use observer::tcp_state::TcpState;

use super::{Check, Jail, Outcome, Setting, free_port, not_run, run_check};
use crate::echo::Client;
use crate::procfs;
use crate::random_bytes;
use crate::spawn::{Input, Proc};
use crate::story::{Failure, PATIENCE, Report, Story, Verdict};

/// A running server under grading.
pub struct Candidate {
    proc: Proc,
    addr: SocketAddr,
    /// The process holding the listening socket (the shell's exec target,
    /// or whatever the command started).
    pid: i32,
}

/// The checks after `start`, in order: name, what it checks, the check.
pub const CHECKS: [(&str, &str, Check<Candidate>); 6] = [
    (
        "echo",
        "small, large and binary data come back byte for byte",
        |s, c| check_echo(s, c).map(|()| Outcome::Pass),
    ),
    (
        "many-clients",
        "20 clients at once, each gets its own data back",
        |s, c| check_many(s, c).map(|()| Outcome::Pass),
    ),
    (
        "zombies",
        "no zombie children after 5 simultaneous closes",
        check_zombies,
    ),
    (
        "reset",
        "a client's RST does not stop the server",
        |s, c| check_reset(s, c).map(|()| Outcome::Pass),
    ),
    ("alive", "still serving after all that", |s, c| {
        check_alive(s, c).map(|()| Outcome::Pass)
    }),
    (
        "sigterm",
        "SIGTERM: it exits, leaving no process behind",
        |s, c| check_sigterm(s, c).map(|()| Outcome::Pass),
    ),
];

/// Every check's name, `start` first: the columns of a class's table.
pub fn check_names() -> Vec<&'static str> {
    std::iter::once("start")
        .chain(CHECKS.iter().map(|(name, ..)| *name))
        .collect()
}

/// Grade the server `cmd` where it stands, with no jail: one report per
/// check, `start` first.
pub fn grade(cmd: &str) -> Vec<Report> {
    grade_in(Setting::here(&Jail::none()), cmd)
}

/// The same, run in the student's folder and jail.
pub fn grade_in(setting: Setting<'_>, cmd: &str) -> Vec<Report> {
    let start = Instant::now();
    let mut story = Story::new();
    let about = format!("start `{cmd}` and see it listen");
    let candidate = match start_candidate(&mut story, setting, cmd) {
        Ok(c) => c,
        Err(failure) => {
            let mut reports = vec![Report {
                name: "start".to_string(),
                about,
                verdict: Verdict::Fail(failure),
                wall: start.elapsed(),
                story,
            }];
            for (name, about, _) in CHECKS {
                reports.push(not_run(name, about, "the server did not start"));
            }
            return reports;
        }
    };
    let mut reports = vec![Report {
        name: "start".to_string(),
        about,
        verdict: Verdict::Pass,
        wall: start.elapsed(),
        story,
    }];
    for (name, about, check) in CHECKS {
        if let Some(why) = setting.halted() {
            reports.push(not_run(name, about, &why));
            continue;
        }
        let mut report = run_check(name, about, &candidate, check);
        flood_note(&mut report, &candidate.proc);
        reports.push(report);
    }
    drop(candidate);
    reports
}

/// A failure by a server that flooded its output says so: the grader
/// stopped reading at [`Capture::LIMIT`](crate::spawn::Capture::LIMIT),
/// and its next write met EPIPE or SIGPIPE.
fn flood_note(report: &mut Report, proc: &Proc) {
    if let Verdict::Fail(failure) = &mut report.verdict {
        if proc.stdout.flooded() || proc.stderr.flooded() {
            failure.evidence.push_str(&format!(
                "\n(it wrote more than {} MiB of output: the grader stopped reading it, and its \
                 next write met EPIPE or SIGPIPE)",
                crate::spawn::Capture::LIMIT >> 20
            ));
        }
    }
}

/// The pid holding a socket listening on `port`, per inet_diag and /proc.
fn listener_owner(port: u16) -> Option<i32> {
    let mut diag = DiagSocket::open().ok()?;
    let query = Query {
        states: TcpState::Listen.bit(),
        ..Query::port(port)
    };
    let sockets = diag.dump(&query).ok()?;
    let listener = sockets.iter().find(|s| s.local.port() == port)?;
    let inodes = HashSet::from([listener.inode]);
    let owners = observer::procfs::scan(observer::procfs::all_pids(), &inodes);
    owners.of(listener.inode).iter().map(|o| o.pid).min()
}

fn start_candidate(
    story: &mut Story,
    setting: Setting<'_>,
    cmd: &str,
) -> Result<Candidate, Failure> {
    let port = free_port()?;
    let line = cmd.replace("{port}", &port.to_string());
    let mut proc = Proc::spawn_command(setting.command(&line), Input::Null)?;
    story
        .outputs
        .push((line.clone(), proc.stdout.clone(), proc.stderr.clone()));
    story.say("harness", format!("started: {line}"));
    // It listens (inet_diag says whose socket it is), or it exited.
    let listening = crate::wait::within(PATIENCE, || match listener_owner(port) {
        Some(pid) => Some(Ok(pid)),
        None => proc.try_status().map(Err),
    });
    let pid = match listening {
        Some(Ok(pid)) => pid,
        Some(Err(status)) => {
            return Err(Failure {
                expectation: format!("the server listens on port {port}"),
                evidence: format!(
                    "it exited ({status}) without listening: {}",
                    crate::spawn::tail(proc.stderr.text().trim(), 5)
                ),
            });
        }
        None => {
            return Err(Failure {
                expectation: format!("the server listens on port {port} (within {PATIENCE:?})"),
                evidence: format!(
                    "inet_diag shows no LISTEN socket there; {}{}. (A socket that is bound but \
                     never listen()ed is in no table inet_diag walks, and the kernel answers a \
                     SYN to its port with an RST: was listen() forgotten?)",
                    super::doing(proc.pid()),
                    match proc.stderr.text().trim() {
                        "" => String::new(),
                        text => format!("; its stderr: {}", crate::spawn::tail(text, 5)),
                    }
                ),
            });
        }
    };
    story.check(
        "observer",
        &format!("inet_diag: pid {pid} listens on port {port}"),
        true,
        String::new,
    )?;
    Ok(Candidate {
        proc,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        pid,
    })
}

fn echo_once(
    story: &mut Story,
    c: &Candidate,
    what: &str,
    mode: &str,
    data: &[u8],
) -> Result<(), Failure> {
    let out = Client::run(c.addr, &["--mode", mode], data, PATIENCE)?;
    story.check(
        "client",
        &format!("{what}: {} bytes came back byte for byte", data.len()),
        out.status.success() && out.stdout == data,
        || {
            format!(
                "sent {} bytes, got {}; client: {}",
                data.len(),
                out.stdout.len(),
                out.stderr.trim()
            )
        },
    )
}

fn check_echo(story: &mut Story, c: &Candidate) -> Result<(), Failure> {
    echo_once(story, c, "small", "lockstep", b"hello, world\n")?;
    echo_once(
        story,
        c,
        "binary with NUL bytes",
        "lockstep",
        &random_bytes(3, 64 * 1024),
    )?;
    echo_once(story, c, "large", "poll", &random_bytes(4, 4 << 20))
}

fn check_many(story: &mut Story, c: &Candidate) -> Result<(), Failure> {
    let mut running = Vec::new();
    for i in 0..20u64 {
        let data = random_bytes(1000 + i, 32 * 1024);
        let mut client = Client::start(c.addr, &["--mode", "poll"], Input::Pipe)?;
        let feeder = client.proc.feed_stdin(data.clone());
        running.push((client, feeder, data));
    }
    let mut wrong = Vec::new();
    for (i, (client, feeder, data)) in running.into_iter().enumerate() {
        let out = client.finish(PATIENCE)?;
        let _ = feeder.join();
        if out.stdout != data {
            wrong.push(format!(
                "client {i}: sent {} got {}: {}",
                data.len(),
                out.stdout.len(),
                out.stderr.trim()
            ));
        }
    }
    story.check(
        "client",
        "all 20 got exactly their own bytes back",
        wrong.is_empty(),
        || wrong.join("\n"),
    )
}

/// Who serves the five connections of [`check_zombies`].
enum Serving {
    /// Child processes, one a connection (fork, UNP 5.2): these must be
    /// reaped.
    Children(HashSet<i32>),
    /// The server's own process (threads, or select/poll: UNP 6.8):
    /// nothing to reap.
    Itself { threads: usize },
}

/// The server ends of the connections to `port`, ESTABLISHED, and the
/// processes that hold them (inet_diag, then /proc/PID/fd).
fn server_ends(port: u16) -> (usize, HashSet<i32>) {
    let Ok(mut diag) = DiagSocket::open() else {
        return (0, HashSet::new());
    };
    let query = Query {
        states: TcpState::Established.bit(),
        ..Query::port(port)
    };
    let sockets = diag.dump(&query).unwrap_or_default();
    let inodes: HashSet<u32> = sockets
        .iter()
        .filter(|s| s.local.port() == port && s.inode != 0)
        .map(|s| s.inode)
        .collect();
    let owners = observer::procfs::scan(observer::procfs::all_pids(), &inodes);
    let pids = inodes
        .iter()
        .flat_map(|i| owners.of(*i).iter().map(|o| o.pid))
        .collect();
    (inodes.len(), pids)
}

/// Five connections closed at the same moment (UNP tcpcli04). Every child
/// that served them must be gone, not a zombie, once things settle.
///
/// The check must see what it checks: five new children, each holding a
/// server end. A server that serves in its own process (threads, select)
/// has no child to reap, and the check says so instead of passing
/// silently; one whose children we never see fails.
///
/// Whether five SIGCHLDs merge into one depends on timing: a server that
/// calls wait() once per signal passes when each child's signal comes
/// alone. A grade must not depend on timing, so the grader stops the
/// server (SIGSTOP) while the five children exit: their five SIGCHLDs
/// arrive while it cannot run and become one pending signal (standard
/// signals are not queued, UNP 5.9), as the lesson's `five-clients`
/// scenario does. On SIGCONT its handler runs once: a loop of
/// waitpid(-1, WNOHANG) reaps all five, a single wait() one of them.
fn check_zombies(story: &mut Story, c: &Candidate) -> Result<Outcome, Failure> {
    let before: HashSet<i32> = procfs::children(c.pid).iter().map(|p| p.pid).collect();
    let client = Client::start(c.addr, &["--connections", "5"], Input::Pipe)?;
    client.connected()?;
    let port = c.addr.port();
    let mut last = (0, HashSet::new(), HashSet::new());
    let serving = crate::wait::within(PATIENCE, || {
        let children: HashSet<i32> = procfs::children(c.pid)
            .iter()
            .map(|p| p.pid)
            .filter(|p| !before.contains(p))
            .collect();
        let (ends, holders) = server_ends(port);
        last = (ends, holders.clone(), children.clone());
        if ends < 5 {
            None
        } else if children.len() >= 5 {
            Some(Serving::Children(children))
        } else if holders == HashSet::from([c.pid]) {
            Some(Serving::Itself {
                threads: procfs::threads(c.pid),
            })
        } else {
            None
        }
    });
    let serving = match serving {
        Some(Serving::Children(children)) => children,
        Some(Serving::Itself { threads }) => {
            story.say(
                "inet_diag",
                format!(
                    "the 5 server ends are held by pid {} itself ({threads} threads)",
                    c.pid
                ),
            );
            client.finish(PATIENCE)?;
            return Ok(Outcome::Skipped(format!(
                "pid {} serves in its own process ({threads} threads): it has no child to reap",
                c.pid
            )));
        }
        None => {
            let (ends, holders, children) = last;
            return Err(Failure {
                expectation: format!(
                    "5 connections, served by 5 new children of pid {} (or by pid {} itself) within {PATIENCE:?}",
                    c.pid, c.pid
                ),
                evidence: format!(
                    "inet_diag shows {ends} server ends on port {port}, held by {holders:?}; \
                     /proc shows {} new children of pid {}: {children:?}",
                    children.len(),
                    c.pid
                ),
            });
        }
    };
    story.say(
        "/proc",
        format!(
            "{} new children of pid {} while 5 connections are open",
            serving.len(),
            c.pid
        ),
    );
    let stopped = Stopped::stop(c.pid)?;
    story.say(
        "harness",
        format!(
            "SIGSTOP to pid {}: its children's SIGCHLDs will wait, merged, until SIGCONT",
            c.pid
        ),
    );
    client.finish(PATIENCE)?;
    story.say("client", "closed its 5 connections at the same moment");
    // Each child either disappears (reaped: SIGCHLD ignored, or a
    // thread of the server's waits) or turns Z, while the server is
    // stopped.
    let settled = |pids: &HashSet<i32>| {
        pids.iter()
            .all(|&p| procfs::info(p).is_none_or(|i| i.state == 'Z'))
    };
    crate::wait::within(PATIENCE, || settled(&serving).then_some(()));
    drop(stopped);
    story.say(
        "harness",
        format!("the 5 children have exited; SIGCONT to pid {}", c.pid),
    );
    let zombies_now = || -> Vec<i32> {
        let mut zombies: Vec<i32> = serving
            .iter()
            .copied()
            .filter(|&p| procfs::info(p).is_some_and(|i| i.state == 'Z'))
            .collect();
        zombies.sort_unstable();
        zombies
    };
    // Its handler gets a moment to run once it is scheduled again.
    let zombies = crate::wait::within(Duration::from_secs(2), || {
        zombies_now().is_empty().then(Vec::new)
    })
    .unwrap_or_else(zombies_now);
    story.check(
        "/proc",
        "no zombie children after 5 simultaneous closes",
        zombies.is_empty(),
        || {
            format!(
                "zombies: {} children of pid {} left in state Z after 5 simultaneous closes: {:?}; {}",
                zombies.len(),
                c.pid,
                zombies,
                zombie_hint(c.pid)
            )
        },
    )?;
    Ok(Outcome::Pass)
}

/// A process stopped with SIGSTOP, continued (SIGCONT) when dropped,
/// whatever happens in between.
struct Stopped(i32);

impl Stopped {
    fn stop(pid: i32) -> Result<Stopped, Failure> {
        nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGSTOP).map_err(anyhow::Error::from)?;
        Ok(Stopped(pid))
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

fn check_reset(story: &mut Story, c: &Candidate) -> Result<(), Failure> {
    let socket = socket2::Socket::from(TcpStream::connect(c.addr).map_err(anyhow::Error::from)?);
    let mut stream = TcpStream::from(socket.try_clone().map_err(anyhow::Error::from)?);
    let _ = stream.write_all(&random_bytes(9, 256 * 1024));
    socket
        .set_linger(Some(Duration::ZERO))
        .map_err(anyhow::Error::from)?;
    drop(stream);
    drop(socket);
    story.say(
        "client",
        "sent 256 KiB, then reset the connection (SO_LINGER 0)",
    );
    let alive = procfs::info(c.pid).is_some_and(|p| p.state != 'Z');
    story.check(
        "/proc",
        &format!("pid {} is still alive", c.pid),
        alive,
        || format!("{:?}", procfs::info(c.pid)),
    )?;
    echo_once(
        story,
        c,
        "the next client",
        "lockstep",
        b"are you still there?\n",
    )
}

fn check_alive(story: &mut Story, c: &Candidate) -> Result<(), Failure> {
    echo_once(story, c, "one more client", "poll", b"last one\n")
}

/// How long a server has to exit after SIGTERM.
const SIGTERM_GRACE: Duration = Duration::from_secs(5);

fn check_sigterm(story: &mut Story, c: &Candidate) -> Result<(), Failure> {
    // Held by pidfds, not by their numbers (procfs::Held): whether each has
    // exited is then asked of the process itself, not of whatever /proc
    // shows under its number.
    let server = procfs::Held::new(c.pid);
    let descendants: Vec<procfs::Held> = procfs::descendants(c.pid)
        .iter()
        .map(|p| procfs::Held::new(p.pid))
        .collect();
    nix::sys::signal::kill(Pid::from_raw(c.pid), Signal::SIGTERM).map_err(anyhow::Error::from)?;
    story.say("harness", format!("SIGTERM to pid {}", c.pid));
    crate::wait::within(SIGTERM_GRACE, || server.exited().then_some(()));
    if !server.exited() {
        let doing = super::doing(c.pid);
        let disposition = sigterm_disposition(c.pid);
        // Nothing more to learn from it: SIGKILL it and its children now
        // rather than after the harness's own grace period. (A process
        // that has not exited cannot have been reaped: its pid is still
        // its own.)
        for held in std::iter::once(&server).chain(&descendants) {
            if !held.exited() {
                let _ = nix::sys::signal::kill(Pid::from_raw(held.pid), Signal::SIGKILL);
            }
        }
        return Err(Failure {
            expectation: format!("it exits on SIGTERM (within {SIGTERM_GRACE:?})"),
            evidence: format!(
                "{SIGTERM_GRACE:?} after SIGTERM it still runs, {doing}; {disposition}. The grader \
                 then killed it (SIGKILL, which cannot be caught or ignored)"
            ),
        });
    }
    story.check("/proc", "it exited", true, String::new)?;
    // A child whose client has just closed may still be on its way out.
    let still = || -> Vec<i32> {
        descendants
            .iter()
            .filter(|p| !p.exited())
            .map(|p| p.pid)
            .collect()
    };
    crate::wait::within(Duration::from_secs(2), || still().is_empty().then_some(()));
    let left = still();
    story.check(
        "/proc",
        "none of its processes is left",
        left.is_empty(),
        || {
            let what: Vec<String> = left.iter().map(|&p| super::doing(p)).collect();
            format!("still running: {}", what.join("; "))
        },
    )?;
    let _ = c.proc.stdout.wait_closed(Duration::from_secs(1));
    Ok(())
}

/// What a process does with a signal, from the masks in
/// `/proc/PID/status` (SigIgn, SigCgt, SigBlk: bit N-1 for signal N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Ignored,
    Caught,
    Blocked,
    Default,
}

fn disposition(pid: i32, signal: i32) -> Disposition {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0)
    };
    let bit = 1u64 << (signal - 1);
    if mask("SigIgn:") & bit != 0 {
        Disposition::Ignored
    } else if mask("SigCgt:") & bit != 0 {
        Disposition::Caught
    } else if mask("SigBlk:") & bit != 0 {
        Disposition::Blocked
    } else {
        Disposition::Default
    }
}

/// Why a server still has SIGTERM after its grace period, in words.
fn sigterm_disposition(pid: i32) -> String {
    match disposition(pid, libc::SIGTERM) {
        Disposition::Ignored => {
            "/proc/PID/status shows SIGTERM ignored (SigIgn): signal(SIGTERM, SIG_IGN)".to_string()
        }
        Disposition::Caught => {
            "/proc/PID/status shows SIGTERM caught (SigCgt), by a handler that does not end it"
                .to_string()
        }
        Disposition::Blocked => "/proc/PID/status shows SIGTERM blocked (SigBlk)".to_string(),
        Disposition::Default => {
            "SIGTERM is neither ignored nor caught: it may be stuck in the kernel (state D)"
                .to_string()
        }
    }
}

/// Why a server's children stay zombies, from its SIGCHLD disposition.
fn zombie_hint(pid: i32) -> &'static str {
    match disposition(pid, libc::SIGCHLD) {
        Disposition::Caught => {
            "it has a SIGCHLD handler, which reaped fewer than exited: one SIGCHLD can stand for \
             several children (signals are not queued), so loop on waitpid(-1, &status, WNOHANG) \
             (UNP 5.10)"
        }
        _ => {
            "it has no SIGCHLD handler, and nothing else calls wait(): catch SIGCHLD and reap in \
             a loop with waitpid(-1, &status, WNOHANG) (UNP 5.9, 5.10)"
        }
    }
}
