//! `lifecycle --client-cmd 'CMD {host} {port}'`: check any str_cli-style
//! client (it reads standard input, sends it, and writes what comes back
//! to standard output) against what UNP chapters 5 and 6 ask of one.
//!
//! The client talks to an echo-server the grader starts (fork mode: each
//! connection has a child the grader can kill, as UNP 5.12 does by hand),
//! or, for the half-close, to the grader's own peer that holds its echo
//! back ([`super::peer`]). What the client did is read from the kernel:
//! its end's state and byte counters (inet_diag, `tcp_info`), the system
//! call it sleeps in (`/proc/PID/syscall`), its exit status.
//!
//! Simplified: the client is started once per check, with a fresh
//! connection; IPv4 loopback only (`{host}` is 127.0.0.1).

use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use observer::diag::{DiagSocket, Query};
use observer::tcp_state::TcpState;

use super::peer::HoldingPeer;
use super::{Jail, Outcome, Setting, doing, free_port, not_run, run_check};
use crate::echo::Server;
use crate::interrupt::TempFile;
use crate::random::{random_bytes, random_lines};
use crate::spawn::{Input, Proc};
use crate::story::{Failure, PATIENCE, Report, Story};

/// The checks, in order: name, what each asks.
pub const CHECKS: [(&str, &str); 7] = [
    (
        "echo",
        "typed lines, a 1 MiB line, NUL bytes, no final newline: every byte back, in order",
    ),
    (
        "batch",
        "10 MB on standard input, then EOF: every echoed byte arrives before it exits (UNP 6.7)",
    ),
    (
        "half-close",
        "at EOF it sends its FIN and keeps reading: FIN_WAIT2, still its own (UNP 6.6)",
    ),
    (
        "server-fin-while-idle",
        "the server's child dies while it waits for input: it notices within 2 s (UNP 5.12, 6.4)",
    ),
    (
        "server-rst",
        "it writes to a server that is gone: an error and a non-zero exit (UNP 5.13)",
    ),
    ("refused", "nothing listens: it says so and exits non-zero"),
    (
        "exit",
        "after EOF and the server's FIN: exit 0, no process left, its end in TIME_WAIT only",
    ),
];

/// How long a client has to notice the server's FIN while idle.
pub const NOTICE: Duration = Duration::from_secs(2);

/// How long the holding peer waits for more data before it decides the
/// client is waiting for an echo (lockstep).
const QUIET: Duration = Duration::from_secs(1);

/// Every check's name: the columns of a class's table.
pub fn check_names() -> Vec<&'static str> {
    CHECKS.iter().map(|(name, _)| *name).collect()
}

/// The client under grading, and the echo-server it is graded against.
pub struct Subject<'a> {
    setting: Setting<'a>,
    cmd: String,
    server: Server,
}

/// Grade the client `cmd` where it stands, with no jail.
pub fn grade(cmd: &str) -> Vec<Report> {
    grade_in(Setting::here(&Jail::none()), cmd)
}

/// The same, in the student's folder and jail: one report per check.
pub fn grade_in(setting: Setting<'_>, cmd: &str) -> Vec<Report> {
    let server = match Server::start(&[]) {
        Ok(server) => server,
        Err(e) => {
            return CHECKS
                .iter()
                .map(|(name, about)| not_run(name, about, &format!("echo-server: {e:#}")))
                .collect();
        }
    };
    let subject = Subject {
        setting,
        cmd: cmd.to_string(),
        server,
    };
    CHECKS
        .iter()
        .map(|(name, about)| {
            if let Some(why) = setting.halted() {
                return not_run(name, about, &why);
            }
            run_check(name, about, &subject, |story, s| match *name {
                "echo" => check_echo(story, s),
                "batch" => check_batch(story, s),
                "half-close" => check_half_close(story, s),
                "server-fin-while-idle" => check_fin_while_idle(story, s),
                "server-rst" => check_server_rst(story, s),
                "refused" => check_refused(story, s),
                _ => check_exit(story, s),
            })
        })
        .collect()
}

/// The connection the server accepted: the client's address, and the
/// server's child serving it (from echo-server's `accepted` line).
struct Accepted {
    client: SocketAddr,
    child: i32,
}

impl Subject<'_> {
    /// Start the client against `addr`, reading `input`, in a process
    /// group of its own (what it leaves behind is found by its group).
    fn start(
        &self,
        story: &mut Story,
        addr: SocketAddr,
        input: Input<'_>,
    ) -> Result<Proc, Failure> {
        let line = self
            .cmd
            .replace("{host}", &addr.ip().to_string())
            .replace("{port}", &addr.port().to_string());
        let mut command = self.setting.command(&line);
        command.process_group(0);
        let proc = Proc::spawn_command(command, input)?;
        story
            .outputs
            .push((line.clone(), proc.stdout.clone(), proc.stderr.clone()));
        story.say("harness", format!("started: {line}"));
        Ok(proc)
    }

    /// How many connections the server has accepted so far.
    fn accepted_count(&self) -> usize {
        self.server
            .events()
            .iter()
            .filter(|l| l.event == "accepted")
            .count()
    }

    /// Wait for the server's `n`th connection (counting from 1).
    fn accepted(&self, n: usize, client: &mut Proc) -> Result<Accepted, Failure> {
        let found = crate::wait::within(PATIENCE, || {
            let events = self.server.events();
            let line = events.iter().filter(|l| l.event == "accepted").nth(n - 1)?;
            Some(Accepted {
                client: line.get("peer")?.parse().ok()?,
                child: line.num("child")? as i32,
            })
        });
        found.ok_or_else(|| Failure {
            expectation: format!(
                "the client connects to {} (within {PATIENCE:?})",
                self.server.addr
            ),
            evidence: match client.try_status() {
                Some(status) => format!("it exited ({status}): {}", client.stderr.text().trim()),
                None => format!("no connection; {}", doing(client.pid())),
            },
        })
    }

    /// The client's end of a connection to our server, now: its state and
    /// `tcp_info.bytes_received` (the echoed bytes its kernel received).
    fn client_end(&self, client: SocketAddr) -> Option<(TcpState, u64)> {
        let mut diag = DiagSocket::open().ok()?;
        let query = Query {
            extensions: observer::diag::EXT_INFO,
            ..Query::port(self.server.port())
        };
        let end = diag
            .dump(&query)
            .ok()?
            .into_iter()
            .find(|s| s.local == client)?;
        Some((end.state, end.tcp_info.map_or(0, |i| i.bytes_received)))
    }

    /// Wait until the client's kernel has received `bytes` echoed bytes.
    fn echoed(&self, client: SocketAddr, bytes: u64, what: &str) -> Result<(), Failure> {
        let mut last = None;
        let got = crate::wait::within(PATIENCE, || {
            last = self.client_end(client);
            last.filter(|(_, got)| *got >= bytes)
        });
        got.map(|_| ()).ok_or_else(|| Failure {
            expectation: format!("{what} reaches the server and its echo comes back"),
            evidence: match last {
                Some((state, got)) => format!(
                    "the client's end {client} is {state}, tcp_info bytes_received {got} of {bytes} \
                     (a client that reads all of its input before it sends anything sends nothing \
                     until EOF)"
                ),
                None => format!("the client's end {client} is gone"),
            },
        })
    }
}

/// Start the client with `data` on a pipe (written by a thread, then
/// closed: EOF), wait for it to exit; its status and standard output.
fn run_with(
    story: &mut Story,
    s: &Subject<'_>,
    addr: SocketAddr,
    data: &[u8],
    timeout: Duration,
) -> Result<(ExitStatus, Vec<u8>, String), Failure> {
    let mut proc = s.start(story, addr, Input::Pipe)?;
    let feeder = proc.feed_stdin(data.to_vec());
    let status = finish(&mut proc, timeout)?;
    let _ = feeder.join();
    Ok((status, proc.stdout.bytes(), proc.stderr.text()))
}

/// Wait for the client's exit; a hang is a failure naming where it hangs.
fn finish(proc: &mut Proc, timeout: Duration) -> Result<ExitStatus, Failure> {
    if let Some(status) = crate::wait::within(timeout, || proc.try_status()) {
        proc.stdout.wait_closed(Duration::from_secs(5));
        proc.stderr.wait_closed(Duration::from_secs(5));
        return Ok(status);
    }
    Err(Failure {
        expectation: format!("the client exits (within {timeout:?})"),
        evidence: format!("still running: {}", doing(proc.pid())),
    })
}

/// Compare what came back with what was sent, in words.
fn same_bytes(sent: &[u8], got: &[u8]) -> Result<(), String> {
    if sent == got {
        return Ok(());
    }
    let at = sent.iter().zip(got).take_while(|(a, b)| a == b).count();
    if at == got.len() && got.len() < sent.len() {
        return Err(format!(
            "the last {} of {} bytes never came back: it exited at EOF on standard input while \
             their echo was still in flight. At EOF, shutdown(SHUT_WR) sends the FIN and keeps \
             the socket open for reading; exit only at the server's EOF (UNP 6.7)",
            sent.len() - got.len(),
            sent.len()
        ));
    }
    let mut why = format!(
        "sent {} bytes, got {} back; they differ from byte {at}",
        sent.len(),
        got.len()
    );
    if at == sent.len() {
        why.push_str(" (extra bytes: does it print something of its own on standard output?)");
    } else if sent[at..].iter().take(4096).any(|&b| b == 0) {
        why.push_str(
            " (a NUL byte is near there: string functions such as fputs() and strlen() \
             stop at NUL; write() with the count read() returned does not)",
        );
    }
    Err(why)
}

/// The program's standard error, if it said anything, for evidence.
fn stderr_note(stderr: &str) -> String {
    match stderr.trim() {
        "" => String::new(),
        text => format!("; its stderr: {}", crate::spawn::tail(text, 5)),
    }
}

fn check_echo(story: &mut Story, s: &Subject<'_>) -> Result<Outcome, Failure> {
    // Typed, as a person types: a line, then (once its echo is back) the
    // next. Its own stdout may be buffered (stdio buffers a pipe fully),
    // so "back" is what the kernel says: the client end's bytes_received.
    let lines: [&[u8]; 3] = [
        b"hello, world\n",
        b"a second line, typed once the first came back\n",
        b"3\n",
    ];
    let n = s.accepted_count() + 1;
    let mut proc = s.start(story, s.server.addr, Input::Pipe)?;
    let mut sent = 0u64;
    let mut conn = None;
    for (i, line) in lines.iter().enumerate() {
        proc.write_stdin(line).map_err(|e| Failure {
            expectation: "the client reads the typed lines".to_string(),
            evidence: format!("{e:#}: {}", doing(proc.pid())),
        })?;
        sent += line.len() as u64;
        let accepted = match &conn {
            Some(a) => a,
            None => conn.insert(s.accepted(n, &mut proc)?),
        };
        s.echoed(accepted.client, sent, &format!("typed line {}", i + 1))?;
    }
    story.check(
        "inet_diag",
        "each typed line went out at once and its echo came back (tcp_info bytes_received)",
        true,
        String::new,
    )?;
    proc.close_stdin();
    finish(&mut proc, PATIENCE)?;
    let typed = lines.concat();
    let got = proc.stdout.bytes();
    story.check(
        "client",
        "the 3 typed lines on standard output, in order",
        got == typed,
        || same_bytes(&typed, &got).unwrap_err(),
    )?;
    // One line: printable bytes and a single newline at the end.
    let big_line = random_lines(21, 1 << 20, 1 << 21);
    let cases: [(&str, Vec<u8>); 3] = [
        ("a 1 MiB line", big_line),
        (
            "64 KiB of binary with NUL bytes",
            random_bytes(22, 64 * 1024),
        ),
        (
            "input without a final newline",
            b"no newline at the end".to_vec(),
        ),
    ];
    for (what, data) in cases {
        let (_, got, stderr) = run_with(story, s, s.server.addr, &data, PATIENCE)?;
        story.check(
            "client",
            &format!("{what}: {} bytes back, byte for byte", data.len()),
            got == data,
            || {
                format!(
                    "{}{}",
                    same_bytes(&data, &got).unwrap_err(),
                    stderr_note(&stderr)
                )
            },
        )?;
    }
    Ok(Outcome::Pass)
}

fn check_batch(story: &mut Story, s: &Subject<'_>) -> Result<Outcome, Failure> {
    const SIZE: usize = 10_000_000;
    let data = random_lines(31, SIZE, 2000);
    let file = TempFile::new(std::env::temp_dir().join(format!(
        "echo-lab-batch-{}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    )));
    std::fs::write(&file.0, &data).map_err(anyhow::Error::from)?;
    let start = Instant::now();
    let mut proc = s.start(story, s.server.addr, Input::File(&file.0))?;
    story.say(
        "harness",
        "10 MB of lines on its standard input, a file: EOF at the end",
    );
    let status = finish(&mut proc, 6 * PATIENCE)?;
    let got = proc.stdout.bytes();
    story.say(
        "client",
        format!(
            "exited ({status}) after {:.2} s with {} bytes on standard output",
            start.elapsed().as_secs_f64(),
            got.len()
        ),
    );
    story.check(
        "client",
        "all 10,000,000 bytes came back before it exited",
        got == data,
        || {
            format!(
                "{}{}",
                same_bytes(&data, &got).unwrap_err(),
                stderr_note(&proc.stderr.text())
            )
        },
    )?;
    Ok(Outcome::Pass)
}

fn check_half_close(story: &mut Story, s: &Subject<'_>) -> Result<Outcome, Failure> {
    let data = random_lines(41, 64 * 1024, 200);
    let peer = HoldingPeer::start(QUIET, PATIENCE)?;
    story.say(
        "harness",
        format!(
            "a peer on {} that holds its echo until the client's FIN (or {QUIET:?} of quiet)",
            peer.addr
        ),
    );
    let mut proc = s.start(story, peer.addr, Input::Pipe)?;
    let feeder = proc.feed_stdin(data.clone());
    let peer_addr = peer.addr;
    let Some(seen) = peer.finish() else {
        return Err(Failure {
            expectation: format!("the client connects to {peer_addr} (within {PATIENCE:?})"),
            evidence: doing(proc.pid()),
        });
    };
    let status = finish(&mut proc, PATIENCE);
    let _ = feeder.join();
    let got = proc.stdout.bytes();
    if let Some(error) = &seen.error {
        story.say("peer", error.clone());
    }
    if !seen.fin_while_holding {
        // Lockstep: it waits for each echo before it sends more.
        story.say(
            "peer",
            format!(
                "{} bytes came, then nothing for {QUIET:?}: it waits for their echo",
                seen.held
            ),
        );
        status?;
        story.check(
            "client",
            &format!("all {} bytes came back", data.len()),
            got == data,
            || same_bytes(&data, &got).unwrap_err(),
        )?;
        return Ok(Outcome::Finding(format!(
            "lockstep: it sent {} bytes and waited for their echo before reading more, so at EOF \
             nothing was in flight and close() loses nothing; a client that sends ahead (batch \
             input) needs shutdown(SHUT_WR) at EOF (UNP 6.6)",
            seen.held
        )));
    }
    story.say(
        "peer",
        format!(
            "the client's FIN arrived after {} bytes, all of them still owed to it",
            seen.held
        ),
    );
    match &seen.client_end {
        Some((state @ (TcpState::FinWait2 | TcpState::FinWait1), owners)) if !owners.is_empty() => {
            let who: Vec<String> = owners.iter().map(ToString::to_string).collect();
            story.check(
                "inet_diag",
                &format!(
                    "its end {} is {state}, still held by {}: shutdown(SHUT_WR), not close()",
                    seen.client,
                    who.join(" ")
                ),
                true,
                String::new,
            )?;
        }
        end => {
            let was = match end {
                Some((state, _)) => format!("{state}, held by no process (no descriptor)"),
                None => "already gone".to_string(),
            };
            return Err(Failure {
                expectation: "at EOF it calls shutdown(SHUT_WR): its FIN goes out, and its end \
                              stays its own (FIN_WAIT2) to read what the server still sends"
                    .to_string(),
                evidence: format!(
                    "its FIN came with {} bytes still owed to it, and its end {} was {was}: it \
                     closed the socket (close() or exit) instead. Standard output got {} of the \
                     {} bytes (UNP 6.6)",
                    seen.held,
                    seen.client,
                    got.len(),
                    data.len()
                ),
            });
        }
    }
    status?;
    story.check(
        "client",
        &format!(
            "all {} bytes came back after its FIN, then it exited",
            data.len()
        ),
        got == data,
        || same_bytes(&data, &got).unwrap_err(),
    )?;
    Ok(Outcome::Pass)
}

/// Start a client, have one line echoed, then kill the server's child
/// serving it (SIGKILL: the kernel closes its socket, and since the
/// child had read everything, sends a FIN, not an RST). Returns the
/// client, its end, and when the FIN reached it.
fn idle_then_server_dies(
    story: &mut Story,
    s: &Subject<'_>,
) -> Result<(Proc, SocketAddr, Instant), Failure> {
    let n = s.accepted_count() + 1;
    let mut proc = s.start(story, s.server.addr, Input::Pipe)?;
    let line = b"hello before the server goes\n";
    proc.write_stdin(line)?;
    let conn = s.accepted(n, &mut proc)?;
    s.echoed(conn.client, line.len() as u64, "the first line")?;
    story.say(
        "client",
        "got its echo; now it waits for the next line on standard input",
    );
    nix::sys::signal::kill(Pid::from_raw(conn.child), Signal::SIGKILL)
        .map_err(anyhow::Error::from)?;
    story.say(
        "harness",
        format!(
            "SIGKILL to the server's child {}: the kernel closes its socket and sends a FIN",
            conn.child
        ),
    );
    // The FIN has arrived when the client's end is CLOSE_WAIT (or the
    // client has already gone with it).
    let arrived = crate::wait::within(PATIENCE, || match s.client_end(conn.client) {
        Some((TcpState::CloseWait, _)) | None => Some(Instant::now()),
        Some(_) => proc.try_status().map(|_| Instant::now()),
    });
    let Some(arrived) = arrived else {
        return Err(Failure {
            expectation: "the server's FIN reaches the client".to_string(),
            evidence: format!("{:?}", s.client_end(conn.client)),
        });
    };
    Ok((proc, conn.client, arrived))
}

/// The last line the client wrote on stderr, quoted, or "without a word".
fn said(proc: &Proc) -> Option<String> {
    let text = proc.stderr.text();
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(format!("\"{}\"", last.trim()))
}

fn check_fin_while_idle(story: &mut Story, s: &Subject<'_>) -> Result<Outcome, Failure> {
    let (mut proc, client, arrived) = idle_then_server_dies(story, s)?;
    let exited = crate::wait::by(arrived + NOTICE, || proc.try_status());
    let Some(status) = exited else {
        let blocked = doing(proc.pid());
        let end = s
            .client_end(client)
            .map_or("gone".to_string(), |(state, _)| state.to_string());
        return Err(Failure {
            expectation: format!(
                "it notices the server's FIN within {NOTICE:?} and exits, saying so"
            ),
            evidence: format!(
                "{NOTICE:?} after the FIN it still runs, {blocked}. Its end {client} is {end}: the \
                 kernel has the FIN, the program has not read it. It will see it only when the \
                 next line is typed (UNP 5.12); select() or poll() on standard input and the \
                 socket together sees it at once (UNP 6.4)"
            ),
        });
    };
    proc.stderr.wait_closed(Duration::from_secs(1));
    let after = arrived.elapsed().as_millis();
    match said(&proc) {
        Some(words) => {
            story.check(
                "client",
                &format!("it noticed the FIN and exited ({status}) {after} ms after it: {words}"),
                true,
                String::new,
            )?;
            Ok(Outcome::Pass)
        }
        None => Ok(Outcome::Finding(format!(
            "it exited ({status}) at the server's FIN, but without a word: a user is owed \
             \"server terminated prematurely\" (UNP 5.12)"
        ))),
    }
}

fn check_server_rst(story: &mut Story, s: &Subject<'_>) -> Result<Outcome, Failure> {
    let (mut proc, client, _) = idle_then_server_dies(story, s)?;
    let status = match proc.try_status() {
        Some(status) => {
            story.say(
                "client",
                "it had already noticed the FIN and exited, before anything was written (select or poll, UNP 6.4)",
            );
            status
        }
        None => {
            // Two lines: the first write succeeds (the kernel sends it and
            // the peer, which has no socket, answers RST); the read after
            // it returns 0 (the FIN). A client that ignores that and
            // writes again gets SIGPIPE (UNP 5.13).
            let _ = proc.write_stdin(b"written after the server is gone\nand a second line\n");
            story.say(
                "harness",
                "typed two more lines: the server's end no longer exists, so the kernel answers RST",
            );
            finish(&mut proc, PATIENCE)?
        }
    };
    let end = s
        .client_end(client)
        .map_or("gone".to_string(), |(state, _)| state.to_string());
    story.say("inet_diag", format!("its end {client} is {end}"));
    if status.signal() == Some(libc::SIGPIPE) {
        return Err(Failure {
            expectation: "it reports the error and exits non-zero".to_string(),
            evidence: "it died of SIGPIPE without a word: it wrote to a socket that had already \
                       received an RST. Check read()'s 0 (the server's FIN) and say \"server \
                       terminated prematurely\"; ignore SIGPIPE and handle EPIPE (UNP 5.13)"
                .to_string(),
        });
    }
    let words = said(&proc);
    story.check(
        "client",
        &format!(
            "it exited ({status}) with a message: {}",
            words.clone().unwrap_or_default()
        ),
        !status.success() && words.is_some(),
        || {
            if status.success() {
                format!(
                    "it exited 0, as if all was well; stderr: {:?}",
                    proc.stderr.text()
                )
            } else {
                format!("it exited ({status}) without a word on standard error")
            }
        },
    )?;
    Ok(Outcome::Pass)
}

fn check_refused(story: &mut Story, s: &Subject<'_>) -> Result<Outcome, Failure> {
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    story.say(
        "harness",
        format!("nothing listens on port {port}: the kernel answers a SYN there with RST"),
    );
    let mut proc = s.start(story, addr, Input::Pipe)?;
    // A line waiting on its input, for a client that reads before it
    // connects; the pipe stays open.
    let _ = proc.write_stdin(b"hello?\n");
    let status = finish(&mut proc, Duration::from_secs(5))?;
    let words = said(&proc);
    story.check(
        "client",
        &format!(
            "it exited ({status}): {}",
            words.clone().unwrap_or_default()
        ),
        !status.success() && words.is_some(),
        || {
            format!(
                "exited ({status}) {}: connect() failed with ECONNREFUSED and it must say so, \
                 and exit non-zero",
                if words.is_none() {
                    "without a word"
                } else {
                    "with status 0"
                }
            )
        },
    )?;
    Ok(Outcome::Pass)
}

fn check_exit(story: &mut Story, s: &Subject<'_>) -> Result<Outcome, Failure> {
    let n = s.accepted_count() + 1;
    let mut proc = s.start(story, s.server.addr, Input::Pipe)?;
    let group = proc.pid();
    let line = b"the last line\n";
    proc.write_stdin(line)?;
    let conn = s.accepted(n, &mut proc)?;
    s.echoed(conn.client, line.len() as u64, "the line")?;
    proc.close_stdin();
    story.say("harness", "closed its standard input: EOF");
    let status = finish(&mut proc, PATIENCE)?;
    story.check(
        "client",
        &format!("it exited 0 with the line echoed ({status})"),
        status.success() && proc.stdout.bytes() == line,
        || {
            format!(
                "{status}, stdout {:?}, stderr {:?}",
                String::from_utf8_lossy(&proc.stdout.bytes()),
                proc.stderr.text()
            )
        },
    )?;
    let left: Vec<String> = echo_lab_cli::proc_stat::all()
        .into_iter()
        .filter(|p| p.pgrp == group && p.state != 'Z')
        .map(|p| format!("{} ({})", p.pid, p.comm))
        .chain(
            s.setting
                .jail
                .members()
                .into_iter()
                .map(|pid| format!("{pid} (in its cgroup)")),
        )
        .collect();
    story.check("/proc", "no process of it is left", left.is_empty(), || {
        format!("still running: {}", left.join(", "))
    })?;
    let mut last = None;
    let ended = crate::wait::within(Duration::from_secs(2), || {
        last = s.client_end(conn.client);
        match last {
            Some((TcpState::TimeWait, _)) | None => Some(()),
            Some(_) => None,
        }
    });
    story.check(
        "inet_diag",
        &format!(
            "its end {} is {} (it closed first: the active closer waits)",
            conn.client,
            last.map_or("gone".to_string(), |(state, _)| state.to_string())
        ),
        ended.is_some(),
        || {
            format!(
                "its end {} is still {:?} 2 s after it exited: a process holds it",
                conn.client, last
            )
        },
    )?;
    Ok(Outcome::Pass)
}
