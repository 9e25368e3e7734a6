//! echo-client in batch mode (`< file > out`) against `nc -N` and
//! `socat -`, all through the same echo-server.
//!
//! UNP 6.7: in lockstep mode the client waits for each line's echo before
//! sending the next, so a batch costs one round trip per line; poll mode
//! keeps the pipe full and shuts down its sending half at EOF. nc and
//! socat copy both directions at once, like poll mode.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lifecycle::bins::binaries;
use lifecycle::echo::Server;
use lifecycle::interrupt::TempFile;

use crate::report::{Better, Report};
use crate::{Size, installed};

/// `echo-lab-bench-PID-NAME` in the temporary directory.
fn temp_file(name: &str) -> TempFile {
    TempFile::new(
        std::env::temp_dir().join(format!("echo-lab-bench-{}-{name}", std::process::id())),
    )
}

/// Lines of 1,023 printable bytes and a newline (the client's lockstep
/// mode reads at most 4,096 bytes a line, like the seed's MAXLINE).
fn batch(bytes: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(bytes);
    let mut line = 0usize;
    while data.len() < bytes {
        let start = data.len();
        data.extend_from_slice(format!("{line:09} ").as_bytes());
        while data.len() - start < 1023 {
            data.push(b'a' + ((data.len() - start + line) % 26) as u8);
        }
        data.push(b'\n');
        line += 1;
    }
    data
}

/// Run `program args < input > output` with a deadline; seconds taken.
fn run_batch(program: &Path, args: &[String], input: &Path, output: &Path) -> Result<f64> {
    let start = Instant::now();
    let mut child = lifecycle::spawn::spawn_tracked(
        Command::new(program)
            .args(args)
            .stdin(std::fs::File::open(input)?)
            .stdout(std::fs::File::create(output)?)
            .stderr(Stdio::piped()),
    )
    .with_context(|| format!("cannot start {}", program.display()))?;
    let deadline = start + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            lifecycle::interrupt::untrack(child.id() as i32);
            anyhow::bail!("{} took over 300 s", program.display());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let seconds = start.elapsed().as_secs_f64();
    lifecycle::interrupt::untrack(child.id() as i32);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    ensure!(
        status.success(),
        "{} {args:?}: {status}: {}",
        program.display(),
        stderr.trim()
    );
    Ok(seconds)
}

pub const NC: &str = "nc -N";

pub fn run(report: &mut Report, size: &Size) -> Result<()> {
    let server = Server::start(&["--mode", "fork"])?;
    let (host, port) = (server.addr.ip().to_string(), server.port().to_string());
    let input = temp_file("batch.in");
    let output = temp_file("batch.out");
    let data = batch(size.batch);
    std::fs::write(&input.0, &data)?;
    let client = binaries()?.client.clone();
    let mut contenders: Vec<(String, PathBuf, Vec<String>)> = Vec::new();
    if installed("nc") {
        contenders.push((
            NC.into(),
            "nc".into(),
            vec!["-N".into(), host.clone(), port.clone()],
        ));
    } else {
        report
            .skipped
            .push("nc: not installed (apt-get install netcat-openbsd)".into());
    }
    if installed("socat") {
        contenders.push((
            "socat -".into(),
            "socat".into(),
            vec!["-".into(), format!("TCP:{host}:{port}")],
        ));
    }
    for mode in ["lockstep", "poll"] {
        contenders.push((
            format!("echo-client --mode {mode}"),
            client.clone(),
            vec!["--mode".into(), mode.into(), host.clone(), port.clone()],
        ));
    }
    let workload = format!(
        "batch: {} MiB of 1 KiB lines through echo-server --mode fork, output verified",
        size.batch >> 20
    );
    for _ in 0..size.batch_rounds {
        for (name, program, args) in &contenders {
            let run = || -> Result<f64> {
                let seconds = run_batch(program, args, &input.0, &output.0)?;
                let out = std::fs::read(&output.0)?;
                ensure!(
                    out == data,
                    "the output differs from the input ({} of {} bytes came back)",
                    out.len(),
                    data.len()
                );
                Ok(data.len() as f64 / 1e6 / seconds)
            };
            match run() {
                Ok(mbs) => report.push(&workload, name, "MB/s", Better::Higher, mbs),
                Err(e) => report.fail(&workload, name, e),
            }
        }
    }
    let peer = if installed("nc") {
        NC
    } else {
        "echo-client --mode poll"
    };
    report.peer(&workload, peer);
    Ok(())
}
