//! A handle on `observer lab` (root): start a lab under a unique name, run
//! programs inside it, read its JSON timeline, tear it down.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::bins::binaries;
use crate::echo::STARTUP;
use crate::observer::Timeline;
use crate::spawn::{Input, Proc};

/// A running lab.
pub struct LabRun {
    pub proc: Proc,
    pub name: String,
}

static COUNT: AtomicU32 = AtomicU32::new(0);

impl LabRun {
    /// Start `observer lab --json` with `extra` flags under a name no other
    /// test uses, and wait until it is ready.
    pub fn start(extra: &[&str]) -> Result<LabRun> {
        let name = format!(
            "echolab-t{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let mut args = vec!["lab", "--json", "--name", name.as_str()];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(&binaries()?.observer, &args, Input::Null)?;
        proc.stderr
            .wait_for("the lab's ready line", STARTUP, |lines| {
                lines.iter().any(|l| l.contains("ready")).then_some(())
            })?;
        Ok(LabRun { proc, name })
    }

    /// Run `program args` inside the lab's `side` ("client" or "server").
    pub fn exec(
        &self,
        side: &str,
        program: &Path,
        args: &[&str],
        input: Input<'_>,
    ) -> Result<Proc> {
        let program = program.display().to_string();
        let mut all = vec![
            "lab",
            "exec",
            side,
            "--name",
            self.name.as_str(),
            "--",
            program.as_str(),
        ];
        all.extend_from_slice(args);
        Proc::spawn(&binaries()?.observer, &all, input)
    }

    /// SIGTERM, wait for the teardown, return the whole timeline.
    pub fn stop(mut self) -> Result<Vec<Value>> {
        self.proc.signal(Signal::SIGTERM)?;
        let status = self
            .proc
            .wait_exit(Duration::from_secs(20))
            .context("the lab's teardown")?;
        anyhow::ensure!(
            status.success(),
            "observer lab exited with {status}: {}",
            self.proc.stderr.text()
        );
        Ok(self.events())
    }
}

/// The network namespaces that exist, by name (`ip netns list`).
pub fn namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl Timeline for LabRun {
    fn proc(&self) -> &Proc {
        &self.proc
    }
}
