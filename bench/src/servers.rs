//! Echo servers side by side: echo-server (fork, thread), socat, ncat,
//! and a plain C fork server (`bench/c/cfork.c`, UNP's tcpserv04).
//!
//! Every contender listens on its own free loopback port; the workloads
//! run round by round, each round visiting every contender in turn, so a
//! slow minute of the machine hurts all of them alike.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lifecycle::bins::binaries;
use lifecycle::interrupt::TempFile;
use lifecycle::spawn::{Input, Proc};

use crate::report::{Better, Report};
use crate::{Size, free_port, installed};

/// A server under measurement.
pub struct Contender {
    pub name: String,
    pub addr: SocketAddr,
    /// The process whose tree holds the server (for memory and zombies).
    pub pid: i32,
    _handle: Handle,
}

/// Stopped (SIGTERM, then SIGKILL for what is left) when dropped.
struct Handle(#[allow(dead_code)] Proc);

fn ours(mode: &str) -> Result<Contender> {
    let server = binaries()?.server.display().to_string();
    contender(
        &format!("echo-server --mode {mode}"),
        &server,
        &["--mode", mode, "--bind", "127.0.0.1", "--port", "{port}"],
    )
}

/// Start `program args` (with `{port}` replaced) and wait until it echoes.
///
/// Its standard output goes to /dev/null, as in a terminal nobody reads:
/// echo-server prints a line per event (the lesson), and a pipe read by
/// this process would charge our own reading to the server's numbers.
fn contender(name: &str, program: &str, args: &[&str]) -> Result<Contender> {
    let port = free_port()?;
    let mut argv: Vec<String> = vec![
        "-c".into(),
        "exec \"$0\" \"$@\" >/dev/null".into(),
        program.into(),
    ];
    argv.extend(args.iter().map(|a| a.replace("{port}", &port.to_string())));
    // sh execs the program: the pid we hold is the server's.
    let proc = Proc::spawn(Path::new("sh"), &argv, Input::Null)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(5);
    // Probe with a connection that echoes: a connect alone could reach a
    // half-started server.
    while probe(addr).is_err() {
        ensure!(
            Instant::now() < deadline,
            "{name} did not answer on {addr}: {}",
            proc.stderr.text().trim()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Contender {
        name: name.into(),
        addr,
        pid: proc.pid(),
        _handle: Handle(proc),
    })
}

fn probe(addr: SocketAddr) -> Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(b"ping\n")?;
    let mut back = [0u8; 5];
    s.read_exact(&mut back)?;
    ensure!(&back == b"ping\n", "wrong echo");
    Ok(())
}

/// The C fork server's source, built into the bench (`bench/c/cfork.c`).
const CFORK_C: &str = include_str!("../c/cfork.c");

/// The C fork server, compiled now with the system's `cc -O2` into a
/// temporary file (removed when the returned guards are dropped).
fn build_cfork() -> Result<(TempFile, TempFile)> {
    let dir = std::env::temp_dir();
    let source = TempFile::new(dir.join(format!("echo-lab-cfork-{}.c", std::process::id())));
    let binary = TempFile::new(dir.join(format!("echo-lab-cfork-{}", std::process::id())));
    std::fs::write(&source.0, CFORK_C)?;
    let out = lifecycle::spawn::output_tracked(
        std::process::Command::new("cc")
            .arg("-O2")
            .arg("-o")
            .arg(&binary.0)
            .arg(&source.0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
    )?;
    ensure!(
        out.status.success(),
        "cc cfork.c: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok((source, binary))
}

/// The peers a user would pick, then ours. Missing programs are skipped
/// with a line in the report. The C fork server's files live as long as
/// `keep`.
pub fn contenders(
    report: &mut Report,
    held: usize,
    extra: &[(String, String)],
    keep: &mut Vec<TempFile>,
) -> Result<Vec<Contender>> {
    let mut all = Vec::new();
    if installed("socat") {
        all.push(contender(
            "socat fork EXEC:cat",
            "socat",
            &[
                "TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                "EXEC:cat",
            ],
        )?);
    } else {
        report
            .skipped
            .push("socat: not installed (apt-get install socat)".into());
    }
    if installed("ncat") {
        // ncat refuses connections beyond --max-conns (100 by default).
        let max = (held + 50).to_string();
        all.push(contender(
            "ncat -l -k --exec /bin/cat",
            "ncat",
            &[
                "-l",
                "-k",
                "-m",
                &max,
                "--exec",
                "/bin/cat",
                "127.0.0.1",
                "{port}",
            ],
        )?);
    } else {
        report
            .skipped
            .push("ncat: not installed (apt-get install ncat)".into());
    }
    if installed("cc") {
        let (source, binary) = build_cfork()?;
        let program = binary.0.display().to_string();
        keep.extend([source, binary]);
        all.push(contender(CFORK, &program, &["{port}"])?);
    } else {
        report
            .skipped
            .push("the C fork server: no C compiler (apt-get install gcc)".into());
    }
    all.push(ours("fork")?);
    all.push(ours("thread")?);
    for (name, cmd) in extra {
        // Through sh, like `lifecycle --server-cmd`: the command may carry
        // its own arguments and redirections.
        all.push(contender(name, "sh", &["-c", &format!("exec {cmd}")])?);
    }
    Ok(all)
}

pub const SOCAT: &str = "socat fork EXEC:cat";
pub const CFORK: &str = "C fork server (UNP tcpserv04)";
pub const FORK: &str = "echo-server --mode fork";
pub const THREAD: &str = "echo-server --mode thread";

/// Every workload on every contender, `size.rounds` rounds.
pub fn run(report: &mut Report, size: &Size, extra: &[(String, String)]) -> Result<()> {
    let mut keep = Vec::new();
    let servers = contenders(report, size.held, extra, &mut keep)?;
    let rate = |threads: usize| {
        format!("connection rate: connect, 32-byte echo, close; {threads} client thread(s)")
    };
    let rtt = "round trip of 64 bytes on one connection".to_string();
    let throughput = format!(
        "throughput of one connection, {} MiB echoed and verified",
        size.throughput >> 20
    );
    // Warm up: first forks, page cache, the listen queue.
    for s in &servers {
        connection_rate(s.addr, 1, size.rate_seconds / 4.0)?;
    }
    for _ in 0..size.rounds {
        for s in &servers {
            for threads in [1, 2] {
                match connection_rate(s.addr, threads, size.rate_seconds) {
                    Ok(cps) => report.push(&rate(threads), &s.name, "conn/s", Better::Higher, cps),
                    Err(e) => report.fail(&rate(threads), &s.name, e),
                }
            }
            match round_trips(s.addr, size.round_trips, 64) {
                Ok((median, p99)) => {
                    report.push(
                        &format!("{rtt}, median"),
                        &s.name,
                        "us",
                        Better::Lower,
                        median,
                    );
                    report.push(&format!("{rtt}, p99"), &s.name, "us", Better::Lower, p99);
                }
                Err(e) => report.fail(&rtt, &s.name, e),
            }
        }
    }
    for _ in 0..size.throughput_rounds {
        for s in &servers {
            match throughput_verified(s.addr, size.throughput) {
                Ok(mbs) => report.push(&throughput, &s.name, "MB/s", Better::Higher, mbs),
                Err(e) => report.fail(&throughput, &s.name, e),
            }
        }
    }
    let held = format!(
        "{} connections held open at once, each echoing, then closed",
        size.held
    );
    for s in &servers {
        let h = match hold_many(s, size.held) {
            Ok(h) => h,
            Err(e) => {
                report.fail(&held, &s.name, e);
                continue;
            }
        };
        report.push(
            &format!("{held}: echoed"),
            &s.name,
            "connections",
            Better::Higher,
            h.echoed as f64,
        );
        report.push(
            &format!("{held}: server memory (RSS of its processes)"),
            &s.name,
            "MiB",
            Better::Lower,
            h.rss_mib,
        );
        report.push(
            &format!("{held}: server memory (PSS: shared pages counted once)"),
            &s.name,
            "MiB",
            Better::Lower,
            h.pss_mib,
        );
        report.push(
            &format!("{held}: zombies after all closed"),
            &s.name,
            "processes",
            Better::Lower,
            h.zombies as f64,
        );
        report.push(
            &format!("{held}: time until every server process is gone"),
            &s.name,
            "ms",
            Better::Lower,
            h.gone_ms,
        );
    }
    let peer = if servers.iter().any(|s| s.name == SOCAT) {
        SOCAT
    } else {
        FORK
    };
    let workloads: Vec<String> = report.rows.iter().map(|r| r.workload.clone()).collect();
    for w in workloads {
        let ours = ["connection rate", "round trip", "throughput", held.as_str()]
            .iter()
            .any(|prefix| w.starts_with(prefix));
        if ours && !report.peers.iter().any(|(pw, _)| *pw == w) {
            report.peer(&w, peer);
        }
    }
    for threads in [1, 2] {
        report.target(
            &format!("fork conn/s >= 6x socat ({threads} thread(s))"),
            &rate(threads),
            FORK,
            SOCAT,
            6.0,
        );
        report.target(
            &format!("fork conn/s >= 1.0x the C fork server ({threads} thread(s))"),
            &rate(threads),
            FORK,
            CFORK,
            1.0,
        );
        report.target(
            &format!("thread conn/s >= 1.5x fork ({threads} thread(s))"),
            &rate(threads),
            THREAD,
            FORK,
            1.5,
        );
    }
    report.target(
        "fork throughput >= 1.8x socat",
        &throughput,
        FORK,
        SOCAT,
        1.8,
    );
    report.target(
        "thread throughput >= 1.8x socat",
        &throughput,
        THREAD,
        SOCAT,
        1.8,
    );
    Ok(())
}

/// connect, write 32 bytes, read them back, close; `threads` client
/// threads for `seconds`, at most 100,000 connections each. Connections
/// per second.
pub fn connection_rate(addr: SocketAddr, threads: usize, seconds: f64) -> Result<f64> {
    const MAX_PER_THREAD: usize = 100_000;
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || -> Result<usize> {
                let msg = [b'x'; 32];
                let mut back = [0u8; 32];
                let mut n = 0;
                while n < MAX_PER_THREAD && start.elapsed().as_secs_f64() < seconds {
                    let mut s = TcpStream::connect(addr)?;
                    s.write_all(&msg)?;
                    s.read_exact(&mut back)?;
                    ensure!(back == msg, "wrong echo");
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// `n` round trips of `len` bytes (TCP_NODELAY): median and p99 in us.
pub fn round_trips(addr: SocketAddr, n: usize, len: usize) -> Result<(f64, f64)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let msg = vec![b'r'; len];
    let mut back = vec![0u8; len];
    let mut rtts = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut back)?;
        rtts.push(start.elapsed().as_secs_f64() * 1e6);
    }
    ensure!(back == msg, "wrong echo");
    rtts.sort_by(f64::total_cmp);
    Ok((rtts[n / 2], rtts[(n * 99 / 100).min(n - 1)]))
}

/// The byte at offset `i` of the stream: a period of 251 (prime) never
/// lines up with buffer sizes, so a lost, repeated or reordered block
/// shows.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// MB/s of `total` bytes echoed through one connection: a writer thread
/// sends while this one reads back and checks every byte.
///
/// Both sides use one precomputed stretch of the pattern (251 * 262 >
/// CHUNK), entered at the right phase: the check is a memory compare of
/// each read against it. (Computing the pattern byte by byte in the
/// reader capped the measurement near 300 MB/s, below what a fast server
/// echoes.)
pub fn throughput_verified(addr: SocketAddr, total: usize) -> Result<f64> {
    let stream = TcpStream::connect(addr)?;
    let mut reader = stream.try_clone()?;
    reader.set_read_timeout(Some(Duration::from_secs(10)))?;
    const CHUNK: usize = 64 * 1024;
    let expected: std::sync::Arc<Vec<u8>> =
        std::sync::Arc::new((0..CHUNK + 251).map(pattern).collect());
    let start = Instant::now();
    let pattern_buf = expected.clone();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stream = stream;
        let mut sent = 0;
        while sent < total {
            let n = CHUNK.min(total - sent);
            let phase = sent % 251;
            stream.write_all(&pattern_buf[phase..phase + n])?;
            sent += n;
        }
        Ok(())
    });
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0;
    while got < total {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            // SO_RCVTIMEO ran out: EAGAIN.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                anyhow::bail!("stalled: nothing came back for 10 s after {got} of {total} bytes")
            }
            Err(e) => return Err(e.into()),
        };
        ensure!(n > 0, "EOF after {got} of {total} bytes");
        let phase = got % 251;
        let want = &expected[phase..phase + n];
        if buf[..n] != *want {
            let k = buf[..n].iter().zip(want).position(|(a, b)| a != b);
            anyhow::bail!("byte {} differs", got + k.unwrap_or(0));
        }
        got += n;
    }
    let seconds = start.elapsed().as_secs_f64();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    Ok(total as f64 / 1e6 / seconds)
}

pub struct Held {
    pub echoed: usize,
    pub rss_mib: f64,
    pub pss_mib: f64,
    pub zombies: usize,
    pub gone_ms: f64,
}

/// Open `n` connections one after another, each echoing 32 bytes, hold
/// them all, read the server's memory, close them all at once and wait
/// (up to 20 s) until the processes serving them are gone and no zombie
/// is left.
fn hold_many(server: &Contender, n: usize) -> Result<Held> {
    let before = tasks(server.pid);
    let mut held = Vec::with_capacity(n);
    let mut echoed = 0;
    for i in 0..n {
        let mut s = TcpStream::connect(server.addr).with_context(|| format!("connection {i}"))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let msg = format!("{i:031}\n");
        s.write_all(msg.as_bytes())?;
        let mut back = [0u8; 32];
        s.read_exact(&mut back)
            .with_context(|| format!("echo on connection {i}"))?;
        if back == msg.as_bytes() {
            echoed += 1;
        }
        held.push(s);
    }
    let tree: Vec<i32> = std::iter::once(server.pid)
        .chain(
            lifecycle::procfs::descendants(server.pid)
                .iter()
                .map(|p| p.pid),
        )
        .collect();
    let (rss_kb, pss_kb) = tree.iter().fold((0, 0), |(r, p), &pid| {
        (r + status_kb(pid, "VmRSS:"), p + rollup_kb(pid, "Pss:"))
    });
    let closed = Instant::now();
    drop(held);
    // Gone: no process or thread of the server's tree but the ones there
    // before the test (a zombie is still there: it counts until reaped).
    let deadline = closed + Duration::from_secs(20);
    let (zombies, gone_ms) = loop {
        let extra = tasks(server.pid).difference(&before).count();
        if extra == 0 || Instant::now() >= deadline {
            let zombies = lifecycle::procfs::descendants(server.pid)
                .iter()
                .filter(|p| p.state == 'Z')
                .count();
            break (zombies, closed.elapsed().as_secs_f64() * 1e3);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Held {
        echoed,
        rss_mib: rss_kb as f64 / 1024.0,
        pss_mib: pss_kb as f64 / 1024.0,
        zombies,
        gone_ms,
    })
}

/// Every process of `pid`'s tree and every thread of each: (pid, tid).
fn tasks(pid: i32) -> std::collections::HashSet<(i32, i32)> {
    std::iter::once(pid)
        .chain(lifecycle::procfs::descendants(pid).iter().map(|p| p.pid))
        .flat_map(|p| {
            std::fs::read_dir(format!("/proc/{p}/task"))
                .into_iter()
                .flatten()
                .filter_map(move |e| Some((p, e.ok()?.file_name().to_str()?.parse().ok()?)))
        })
        .collect()
}

/// A `Key:   123 kB` line of /proc/PID/status.
fn status_kb(pid: i32, key: &str) -> u64 {
    kb_field(&format!("/proc/{pid}/status"), key)
}

/// A line of /proc/PID/smaps_rollup (Pss: proportional set size).
fn rollup_kb(pid: i32, key: &str) -> u64 {
    kb_field(&format!("/proc/{pid}/smaps_rollup"), key)
}

fn kb_field(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection echo server on a thread that flips the byte at
    /// offset `bad` (if any) on its way back.
    fn echo_once(bad: Option<usize>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 8192];
            let mut at = 0;
            while let Ok(n @ 1..) = s.read(&mut buf) {
                if let Some(k) = bad.filter(|k| (at..at + n).contains(k)) {
                    buf[k - at] ^= 1;
                }
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
                at += n;
            }
        });
        addr
    }

    #[test]
    fn throughput_checks_every_byte() {
        assert!(throughput_verified(echo_once(None), 1 << 20).is_ok());
        let err = throughput_verified(echo_once(Some(300_001)), 1 << 20).unwrap_err();
        assert_eq!(err.to_string(), "byte 300001 differs");
    }
}
