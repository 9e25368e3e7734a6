//! Handles on a running echo-server and echo-client.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use echo_server::events::Line;
use nix::sys::signal::Signal;

use crate::bins::binaries;
use crate::procfs;
use crate::spawn::{Input, Proc};

/// How long a program gets to print its ready line or to exit.
pub const STARTUP: Duration = Duration::from_secs(10);

/// A running echo-server, started on a free port.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Server {
    /// Start echo-server with `args` (plus `--port 0` unless a port is
    /// given) and wait for its `listening on` line.
    pub fn start(args: &[&str]) -> Result<Server> {
        let mut all: Vec<&str> = args.to_vec();
        if !args.contains(&"--port") {
            all.extend(["--port", "0"]);
        }
        let proc = Proc::spawn(&binaries()?.server, &all, Input::Null)?;
        let addr = proc
            .stdout
            .wait_for("the listening line", STARTUP, |lines| {
                lines.iter().find_map(|l| {
                    let line = Line::parse(l)?;
                    (line.event == "listening").then(|| line.get("addr")?.parse().ok())?
                })
            });
        let addr = match addr {
            Ok(addr) => addr,
            Err(err) => bail!("{err:#}\nstderr: {}", proc.stderr.text()),
        };
        Ok(Server { proc, addr })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid()
    }

    /// The event lines printed so far, parsed.
    pub fn events(&self) -> Vec<Line> {
        self.proc
            .stdout
            .lines()
            .iter()
            .filter_map(|l| Line::parse(l))
            .collect()
    }

    /// Wait until at least `count` event lines satisfy `pred`.
    pub fn wait_events(
        &self,
        what: &str,
        count: usize,
        timeout: Duration,
        pred: impl Fn(&Line) -> bool,
    ) -> Result<Vec<Line>> {
        self.proc.stdout.wait_for(what, timeout, |lines| {
            let matching: Vec<Line> = lines
                .iter()
                .filter_map(|l| Line::parse(l))
                .filter(|l| pred(l))
                .collect();
            (matching.len() >= count).then_some(matching)
        })
    }

    /// Wait for one event named `event`.
    pub fn wait_event(&self, event: &str, timeout: Duration) -> Result<Line> {
        let mut found = self.wait_events(event, 1, timeout, |l| l.event == event)?;
        Ok(found.remove(0))
    }

    /// Its children that are zombies right now (from /proc).
    pub fn zombies(&self) -> Vec<i32> {
        procfs::zombie_children(self.pid())
    }

    /// SIGTERM, then wait for the clean exit; returns the status and the
    /// events it printed.
    pub fn stop(mut self) -> Result<(ExitStatus, Vec<Line>)> {
        self.proc.signal(Signal::SIGTERM)?;
        let status = self.proc.wait_exit(STARTUP)?;
        Ok((status, self.events()))
    }
}

/// What an echo-client run produced.
#[derive(Debug)]
pub struct ClientOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// A running echo-client.
pub struct Client {
    pub proc: Proc,
}

impl Client {
    /// Start echo-client against `addr` with extra `args`.
    pub fn start(addr: SocketAddr, args: &[&str], input: Input<'_>) -> Result<Client> {
        let host = addr.ip().to_string();
        let port = addr.port().to_string();
        let mut all = vec![host.as_str(), port.as_str()];
        all.extend_from_slice(args);
        Ok(Client {
            proc: Proc::spawn(&binaries()?.client, &all, input)?,
        })
    }

    /// Wait for the `connected LOCAL -> PEER` line; returns LOCAL.
    pub fn connected(&self) -> Result<SocketAddr> {
        self.proc
            .stderr
            .wait_for("the client's connected line", STARTUP, |lines| {
                lines.iter().find_map(|l| {
                    let rest = l.strip_prefix("echo-client: connected ")?;
                    rest.split(" -> ").next()?.parse().ok()
                })
            })
    }

    /// Close stdin (if piped) and wait for the exit.
    pub fn finish(mut self, timeout: Duration) -> Result<ClientOutput> {
        self.proc.close_stdin();
        let status = self.proc.wait_exit(timeout)?;
        Ok(ClientOutput {
            status,
            stdout: self.proc.stdout.bytes(),
            stderr: self.proc.stderr.text(),
        })
    }

    /// Run a client to completion with `data` on stdin.
    pub fn run(
        addr: SocketAddr,
        args: &[&str],
        data: &[u8],
        timeout: Duration,
    ) -> Result<ClientOutput> {
        let mut client = Client::start(addr, args, Input::Pipe)?;
        let feeder = client.proc.feed_stdin(data.to_vec());
        let out = client.finish(timeout);
        let _ = feeder.join();
        out.context("echo-client")
    }
}
