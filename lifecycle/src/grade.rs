//! `lifecycle --server-cmd 'CMD {port}'`: check any echo server, a
//! student's C program, socat, ours, against what a correct one does.
//!
//! We do not trust its output: it is "listening" when the kernel says a
//! socket listens on the port (inet_diag), and its zombies are what /proc
//! says about its children.

use std::collections::HashSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use observer::diag::{DiagSocket, Query};
use observer::tcp_state::TcpState;

use crate::echo::Client;
use crate::procfs;
use crate::random_bytes;
use crate::spawn::{Input, Proc};
use crate::story::{Failure, PATIENCE, Report, Story, Verdict};

/// A running server under grading.
struct Candidate {
    proc: Proc,
    addr: SocketAddr,
    /// The process holding the listening socket (the shell's exec target,
    /// or whatever the command started).
    pid: i32,
}

/// One check against a running candidate: passed (`None`), does not
/// apply to this server (`Some(why)`), or failed.
type Check = fn(&mut Story, &Candidate) -> Result<Option<String>, Failure>;

/// Run every check; one report each, so one failure does not hide another.
pub fn grade(cmd: &str) -> Vec<Report> {
    let start = Instant::now();
    let mut story = Story::new();
    let candidate = match start_candidate(&mut story, cmd) {
        Ok(c) => c,
        Err(failure) => {
            return vec![Report {
                name: "start".to_string(),
                about: format!("start `{cmd}` and see it listen"),
                verdict: Verdict::Fail(failure),
                wall: start.elapsed(),
                story,
            }];
        }
    };
    let mut reports = vec![Report {
        name: "start".to_string(),
        about: format!("start `{cmd}` and see it listen"),
        verdict: Verdict::Pass,
        wall: start.elapsed(),
        story,
    }];
    let checks: [(&str, &str, Check); 6] = [
        (
            "echo",
            "small, large and binary data come back byte for byte",
            |s, c| check_echo(s, c).map(|()| None),
        ),
        (
            "many-clients",
            "20 clients at once, each gets its own data back",
            |s, c| check_many(s, c).map(|()| None),
        ),
        (
            "zombies",
            "no zombie children after 5 simultaneous closes",
            check_zombies,
        ),
        (
            "reset",
            "a client's RST does not stop the server",
            |s, c| check_reset(s, c).map(|()| None),
        ),
        ("alive", "still serving after all that", |s, c| {
            check_alive(s, c).map(|()| None)
        }),
        (
            "sigterm",
            "SIGTERM: it exits, leaving no process behind",
            |s, c| check_sigterm(s, c).map(|()| None),
        ),
    ];
    for (name, about, check) in checks {
        let start = Instant::now();
        let mut story = Story::new();
        let verdict = match check(&mut story, &candidate) {
            Ok(None) => Verdict::Pass,
            Ok(Some(why)) => Verdict::Skipped(why),
            Err(f) => Verdict::Fail(f),
        };
        reports.push(Report {
            name: name.to_string(),
            about: about.to_string(),
            verdict,
            wall: start.elapsed(),
            story,
        });
    }
    drop(candidate);
    reports
}

fn free_port() -> Result<u16, Failure> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(anyhow::Error::from)?;
    Ok(listener.local_addr().map_err(anyhow::Error::from)?.port())
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

fn start_candidate(story: &mut Story, cmd: &str) -> Result<Candidate, Failure> {
    let port = free_port()?;
    let line = cmd.replace("{port}", &port.to_string());
    let mut command = Command::new("/bin/sh");
    // exec: the server replaces the shell, so signals reach it directly.
    command.arg("-c").arg(format!("exec {line}"));
    let mut proc = Proc::spawn_command(command, Input::Null)?;
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
                evidence: format!("it exited with {status}: {}", proc.stderr.text()),
            });
        }
        None => {
            return Err(Failure {
                expectation: format!("the server listens on port {port} (within {PATIENCE:?})"),
                evidence: format!(
                    "inet_diag shows no LISTEN socket there; stderr: {}",
                    proc.stderr.text()
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
fn check_zombies(story: &mut Story, c: &Candidate) -> Result<Option<String>, Failure> {
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
            return Ok(Some(format!(
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
    client.finish(PATIENCE)?;
    story.say("client", "closed its 5 connections at the same moment");
    // Each child either disappears (reaped) or turns Z; once all have,
    // the parent gets a moment to reap the zombies.
    let settled = |pids: &HashSet<i32>| {
        pids.iter()
            .all(|&p| procfs::info(p).is_none_or(|i| i.state == 'Z'))
    };
    crate::wait::within(PATIENCE, || settled(&serving).then_some(()));
    let zombies_now = || -> Vec<i32> {
        serving
            .iter()
            .copied()
            .filter(|&p| procfs::info(p).is_some_and(|i| i.state == 'Z'))
            .collect()
    };
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
                "zombies: {} children of pid {} left in state Z after 5 simultaneous closes: {:?}",
                zombies.len(),
                c.pid,
                zombies
            )
        },
    )?;
    Ok(None)
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

fn check_sigterm(story: &mut Story, c: &Candidate) -> Result<(), Failure> {
    let descendants: Vec<i32> = procfs::descendants(c.pid).iter().map(|p| p.pid).collect();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.pid), Signal::SIGTERM)
        .map_err(anyhow::Error::from)?;
    story.say("harness", format!("SIGTERM to pid {}", c.pid));
    crate::wait::within(PATIENCE, || {
        procfs::info(c.pid)
            .is_none_or(|p| p.state == 'Z')
            .then_some(())
    });
    story.check(
        "/proc",
        "it exited",
        procfs::info(c.pid).is_none_or(|p| p.state == 'Z'),
        || format!("{:?} still running", procfs::info(c.pid)),
    )?;
    let left: Vec<i32> = descendants
        .into_iter()
        .filter(|&p| procfs::info(p).is_some_and(|i| i.state != 'Z'))
        .collect();
    story.check(
        "/proc",
        "none of its processes is left",
        left.is_empty(),
        || format!("still running: {left:?}"),
    )?;
    let _ = c.proc.stdout.wait_closed(Duration::from_secs(1));
    Ok(())
}
