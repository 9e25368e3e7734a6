//! Grading: any echo server, any str_cli client, a whole class of them.
//!
//! The grader trusts the kernel, not the program: a server "listens" when
//! inet_diag shows its socket in LISTEN, a client "half-closed" when its
//! end is in FIN_WAIT2 and still owned, a process "is blocked in read() on
//! standard input" when `/proc/PID/syscall` says so. Every check reports
//! on its own, with its evidence and the UNP section it comes from.
//!
//! # Layout
//! - [`server`]: `--server-cmd 'CMD {port}'`, the checks of a server.
//! - [`client`]: `--client-cmd 'CMD {host} {port}'`, the checks of a client.
//! - [`peer`]: the grader's own echo peer, which can hold its echo back.
//! - [`sandbox`]: a submission's processes in bounds: a pids cgroup.
//! - [`class`]: `lifecycle grade`: the manifest, builds, isolation, workers.
//! - [`report`]: a class's results as a table, JSON, JUnit XML, Markdown.

pub mod class;
pub mod client;
pub mod peer;
pub mod report;
pub mod sandbox;
pub mod server;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

pub use sandbox::Jail;
pub use server::grade;

use crate::story::{Failure, Report, Story, Verdict};

/// Where and how a submission's programs run: in the student's folder,
/// inside the submission's jail.
#[derive(Clone, Copy)]
pub struct Setting<'a> {
    /// The student's folder; `None`: the current directory.
    pub dir: Option<&'a Path>,
    pub jail: &'a Jail,
    /// Set when the class's watchdog stopped the submission.
    pub halt: Option<&'a Halt>,
}

/// Why a submission was stopped (its time ran out, it forked without
/// bound): set by the class's watchdog. Checks not yet begun are then
/// not run, and say why.
#[derive(Debug, Default)]
pub struct Halt(std::sync::Mutex<Option<String>>);

impl Halt {
    /// The first reason given stands.
    pub fn set(&self, why: String) {
        let mut reason = self.0.lock().unwrap_or_else(|e| e.into_inner());
        reason.get_or_insert(why);
    }

    pub fn why(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Setting<'_> {
    /// Here, unconfined: a single `--server-cmd` or `--client-cmd`.
    pub fn here(jail: &Jail) -> Setting<'_> {
        Setting {
            dir: None,
            jail,
            halt: None,
        }
    }

    /// Why the submission was stopped, if it was.
    pub fn halted(&self) -> Option<String> {
        self.halt.and_then(Halt::why)
    }

    /// A student's command line as a shell runs it: `/bin/sh -c 'exec
    /// LINE'`. With exec the program replaces the shell, so signals reach
    /// it directly and its pid is the one we hold.
    pub fn command(&self, line: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(format!("exec {line}"));
        if let Some(dir) = self.dir {
            command.current_dir(dir);
        }
        self.jail.confine(&mut command);
        command
    }
}

/// A check that did not fail.
#[derive(Debug, Clone)]
pub enum Outcome {
    Pass,
    /// Does not apply to this program, and why.
    Skipped(String),
    /// Passed, with something worth knowing (see [`Verdict::Finding`]).
    Finding(String),
}

/// One check against a running program (or a command to start).
pub type Check<C> = fn(&mut Story, &C) -> Result<Outcome, Failure>;

/// Run one check: a report of its own, so one failure hides no other.
pub fn run_check<C: ?Sized>(
    name: &str,
    about: &str,
    c: &C,
    check: impl FnOnce(&mut Story, &C) -> Result<Outcome, Failure>,
) -> Report {
    let start = Instant::now();
    let mut story = Story::new();
    let verdict = match check(&mut story, c) {
        Ok(Outcome::Pass) => Verdict::Pass,
        Ok(Outcome::Skipped(why)) => Verdict::Skipped(why),
        Ok(Outcome::Finding(what)) => Verdict::Finding(what),
        Err(failure) => Verdict::Fail(failure),
    };
    Report {
        name: name.to_string(),
        about: about.to_string(),
        verdict,
        wall: start.elapsed(),
        story,
    }
}

/// A check that could not run (the server never listened, the build
/// failed): reported, so every student's report has the same rows.
pub fn not_run(name: &str, about: &str, why: &str) -> Report {
    Report {
        name: name.to_string(),
        about: about.to_string(),
        verdict: Verdict::NotRun(why.to_string()),
        wall: std::time::Duration::ZERO,
        story: Story::new(),
    }
}

/// A port nothing listens on now (bound, then closed). Another program
/// may take it before ours does; in a namespace of its own (`lifecycle
/// grade` as root) nothing else is there to.
pub fn free_port() -> Result<u16, Failure> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(anyhow::Error::from)?;
    Ok(listener.local_addr().map_err(anyhow::Error::from)?.port())
}

/// What a process is doing, from /proc, in words: `read(0): waiting for
/// data on pipe fd 0 (wchan pipe_read)`, for evidence.
pub fn doing(pid: i32) -> String {
    let Some(p) = crate::procfs::info(pid) else {
        return format!("pid {pid} is gone");
    };
    if p.state == 'Z' {
        return format!("pid {pid} is a zombie");
    }
    let meaning = observer::procfs::waiting_for(&p);
    let call = if p.syscall.is_empty() {
        format!("state {}", p.state)
    } else {
        format!("blocked in {}", p.syscall)
    };
    let wchan = if p.wchan.is_empty() || p.wchan == "0" {
        String::new()
    } else {
        format!(", wchan {}", p.wchan)
    };
    match meaning {
        Some(m) => format!("pid {pid} ({}) {call}{wchan}: {m}", p.comm),
        None => format!("pid {pid} ({}) {call}{wchan}", p.comm),
    }
}
