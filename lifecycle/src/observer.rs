//! Handles on the observer: a live `watch --json` whose timeline tests can
//! wait on, and one-shot snapshots.

use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::bins::binaries;
use crate::echo::STARTUP;
use crate::spawn::{Capture, Input, Proc};

/// A running observer whose stdout is a timeline of JSON lines
/// (`watch --json`, `lab --json`): what a test reads and waits on.
pub trait Timeline {
    fn proc(&self) -> &Proc;

    /// The timeline so far.
    fn events(&self) -> Vec<Value> {
        parse_lines(&self.proc().stdout.lines())
    }

    /// Wait for the first event that satisfies `pred`.
    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        wait_json(&self.proc().stdout, what, timeout, pred)
    }
}

impl Timeline for Observer {
    fn proc(&self) -> &Proc {
        &self.proc
    }
}

/// A running `observer watch --json`.
pub struct Observer {
    pub proc: Proc,
}

impl Observer {
    /// Watch `port` with `extra` flags; returns once the first dump is done.
    pub fn watch(port: u16, extra: &[&str]) -> Result<Observer> {
        let port = port.to_string();
        let mut args = vec!["watch", "--json", "--port", &port];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(&binaries()?.observer, &args, Input::Null)?;
        proc.stderr
            .wait_for("the observer's watching line", STARTUP, |lines| {
                lines
                    .iter()
                    .any(|l| l.starts_with("observer: watching"))
                    .then_some(())
            })?;
        Ok(Observer { proc })
    }

    /// Stop it (SIGTERM) and return the whole timeline.
    pub fn stop(mut self) -> Result<Vec<Value>> {
        self.proc.signal(Signal::SIGTERM)?;
        let status = self.proc.wait_exit(STARTUP)?;
        anyhow::ensure!(
            status.success(),
            "observer exited with {status}: {}",
            self.proc.stderr.text()
        );
        Ok(self.events())
    }
}

/// The JSON objects among captured lines.
pub fn parse_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Wait until a JSON line of `capture` satisfies `pred`.
pub fn wait_json(
    capture: &Capture,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    capture.wait_for(what, timeout, |lines| {
        parse_lines(lines).into_iter().find(|e| pred(e))
    })
}

/// Run `observer snapshot --json ARGS` and return its rows.
pub fn snapshot(args: &[&str]) -> Result<Vec<Value>> {
    let mut all = vec!["snapshot", "--json"];
    all.extend_from_slice(args);
    let mut proc = Proc::spawn(&binaries()?.observer, &all, Input::Null)?;
    let status = proc.wait_exit(STARTUP)?;
    anyhow::ensure!(
        status.success(),
        "observer snapshot: {}",
        proc.stderr.text()
    );
    proc.stdout
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).context("a snapshot line is not JSON"))
        .collect()
}

/// Field helpers for JSON events.
pub trait EventExt {
    fn str(&self, key: &str) -> &str;
    fn int(&self, key: &str) -> i64;
    /// The pids of the `owners` array.
    fn owner_pids(&self) -> Vec<i64>;
}

impl EventExt for Value {
    fn str(&self, key: &str) -> &str {
        self[key].as_str().unwrap_or("")
    }

    fn int(&self, key: &str) -> i64 {
        self[key].as_i64().unwrap_or(-1)
    }

    fn owner_pids(&self) -> Vec<i64> {
        self["owners"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["pid"].as_i64()).collect())
            .unwrap_or_default()
    }
}
