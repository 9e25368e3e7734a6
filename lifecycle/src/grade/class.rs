//! `lifecycle grade`: a whole class in one run.
//!
//! A class is a manifest (`class.toml`, one `[[student]]` table each) or a
//! folder with one folder per student, each holding a `submission.toml`.
//! Every submission is graded in isolation:
//!
//! - **its own network namespace** when we are root (unshare(CLONE_NEWNET)
//!   on the worker thread, `isolate.rs`): ports, sockets and inet_diag's
//!   answers are that student's alone, and the kernel frees the namespace
//!   with its last socket. Otherwise free loopback ports, chosen apart.
//! - **its own jail** (`sandbox.rs`): a pids cgroup that every process of
//!   the student's joins before exec, killed and removed at the end.
//! - **a watchdog**: past the submission's time limit, or at the first
//!   fork the pid limit refused, it kills everything in the jail; the
//!   checks not yet begun are reported as not run, with the reason.
//!
//! `-j N` grades N submissions at once, one worker thread each; the
//! results are reported in the manifest's order whatever the finishing
//! order.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::sandbox::{ClassCgroup, Jail, MAX_PIDS};
use super::{Halt, Setting, client, not_run, server};
use crate::spawn::{Input, Proc};
use crate::story::{Failure, Report};

/// The file `lifecycle grade --init` writes, and its contents.
pub const EXAMPLE_NAME: &str = "class.toml";

pub const EXAMPLE: &str = r#"# An echo-lab class: `lifecycle grade class.toml` grades every student.
#
# One [[student]] table per submission. Its commands run with /bin/sh in
# the student's folder: `dir`, relative to this file (default: the folder
# named after the student, if there is one, else this file's folder).
# {port} is replaced by the port, and in a client's command {host} by the
# address (127.0.0.1). `build` runs first, once. A student may hand in a
# server, a client, or both.
#
# Instead of a manifest, `lifecycle grade DIR` reads DIR/*/submission.toml:
# the same keys but `name` and `dir` (the folder is the student).

[[student]]
name = "alice"
dir = "alice"
build = "cc -Wall -o tcpserv tcpserv.c && cc -Wall -o tcpcli tcpcli.c"
server = "./tcpserv {port}"
client = "./tcpcli {host} {port}"

[[student]]
name = "bob"
dir = "bob"
build = "make"
server = "./server {port}"
"#;

/// One student's submission, as the manifest gives it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub name: String,
    /// Where its commands run.
    pub dir: PathBuf,
    pub build: Option<String>,
    pub server: Option<String>,
    pub client: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    student: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<String>,
    dir: Option<PathBuf>,
    build: Option<String>,
    server: Option<String>,
    client: Option<String>,
}

/// Read a class: a manifest file, or a folder (its `class.toml`, or its
/// folders' `submission.toml`). The error is one line naming the entry
/// and what is wrong with it.
pub fn load(path: &Path) -> Result<Vec<Submission>, String> {
    let shown = path.display();
    if path.is_dir() {
        let manifest = path.join(EXAMPLE_NAME);
        if manifest.is_file() {
            return load(&manifest);
        }
        return load_folders(path);
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let manifest: Manifest = parse(&text).map_err(|e| format!("{shown}: {e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    if manifest.student.is_empty() {
        return Err(format!(
            "{shown}: no [[student]] tables (see lifecycle grade --init)"
        ));
    }
    let mut out = Vec::new();
    for (i, entry) in manifest.student.into_iter().enumerate() {
        let label = match &entry.name {
            Some(name) => format!("{shown}: student \"{name}\""),
            None => format!("{shown}: student {}", i + 1),
        };
        let name = entry
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or(format!("{label}: no `name`"))?;
        let dir = match &entry.dir {
            Some(dir) => base.join(dir),
            None if base.join(&name).is_dir() => base.join(&name),
            None => base.to_path_buf(),
        };
        out.push(submission(&label, name, dir, entry)?);
    }
    unique(&out, &shown.to_string())?;
    Ok(out)
}

/// A folder of folders, each with a `submission.toml`.
fn load_folders(path: &Path) -> Result<Vec<Submission>, String> {
    let shown = path.display();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut out = Vec::new();
    for folder in folders {
        let file = folder.join("submission.toml");
        let label = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{label}: {e}"))?;
        let entry: Entry = parse(&text).map_err(|e| format!("{label}: {e}"))?;
        if entry.name.is_some() || entry.dir.is_some() {
            return Err(format!(
                "{label}: `name` and `dir` come from the folder, not from the file"
            ));
        }
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push(submission(&label, name, folder.clone(), entry)?);
    }
    if out.is_empty() {
        return Err(format!(
            "{shown}: neither a class.toml nor folders with a submission.toml"
        ));
    }
    Ok(out)
}

/// TOML, its error made one line: `line 4: invalid string`.
fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let message = e.message().lines().next().unwrap_or("").trim().to_string();
        match line {
            Some(n) => format!("line {n}: {message}"),
            None => message,
        }
    })
}

fn submission(label: &str, name: String, dir: PathBuf, e: Entry) -> Result<Submission, String> {
    if e.server.is_none() && e.client.is_none() {
        return Err(format!("{label}: neither `server` nor `client`"));
    }
    for (key, cmd) in [("server", &e.server), ("client", &e.client)] {
        if let Some(cmd) = cmd {
            if !cmd.contains("{port}") {
                return Err(format!(
                    "{label}: `{key}` has no {{port}} where the port goes: {cmd:?}"
                ));
            }
        }
    }
    if !dir.is_dir() {
        return Err(format!("{label}: no folder {}", dir.display()));
    }
    Ok(Submission {
        name,
        dir,
        build: e.build,
        server: e.server,
        client: e.client,
    })
}

fn unique(subs: &[Submission], shown: &str) -> Result<(), String> {
    let mut seen = HashSet::new();
    for s in subs {
        if !seen.insert(&s.name) {
            return Err(format!("{shown}: student \"{}\" appears twice", s.name));
        }
    }
    Ok(())
}

/// One student's results.
pub struct Graded {
    pub name: String,
    pub dir: PathBuf,
    pub build: Option<Report>,
    /// Empty when no server was handed in (and likewise `client`).
    pub server: Vec<Report>,
    pub client: Vec<Report>,
    pub wall: Duration,
    /// Why the watchdog stopped it, if it did.
    pub halted: Option<String>,
}

impl Graded {
    /// Every report, labelled with its program.
    pub fn reports(&self) -> impl Iterator<Item = (&'static str, &Report)> {
        self.build
            .iter()
            .map(|r| ("build", r))
            .chain(self.server.iter().map(|r| ("server", r)))
            .chain(self.client.iter().map(|r| ("client", r)))
    }

    pub fn passed(&self) -> bool {
        self.reports().all(|(_, r)| r.passed())
    }
}

/// How a class is graded.
#[derive(Debug, Clone)]
pub struct Options {
    /// Submissions graded at once.
    pub jobs: usize,
    /// Each submission's time limit, build included.
    pub timeout: Duration,
}

/// How long a build may take.
pub const BUILD_LIMIT: Duration = Duration::from_secs(120);

/// A class's results, in the manifest's order.
pub struct Results {
    pub students: Vec<Graded>,
    /// How the submissions were kept apart, in words.
    pub isolation: String,
    pub wall: Duration,
}

/// Grade every submission, `opts.jobs` at a time.
pub fn grade(subs: &[Submission], opts: &Options) -> Results {
    let start = Instant::now();
    let cgroups = ClassCgroup::new();
    let netns = nix::unistd::geteuid().is_root();
    let isolation = format!(
        "{}; {}; {} s each at most",
        if netns {
            "a network namespace each"
        } else {
            "free loopback ports (not root: no namespaces)"
        },
        cgroups.describe(),
        opts.timeout.as_secs()
    );
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Graded>>> = Mutex::new((0..subs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1).min(subs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(sub) = subs.get(i) else { break };
                    if crate::interrupt::interrupted() {
                        break;
                    }
                    let graded = grade_one(sub, &cgroups, netns, opts);
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(graded);
                }
            });
        }
    });
    let students = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Results {
        students,
        isolation,
        wall: start.elapsed(),
    }
}

/// One submission: build, server, client, under its jail and watchdog,
/// in its own network namespace when we can.
fn grade_one(sub: &Submission, cgroups: &ClassCgroup, netns: bool, opts: &Options) -> Graded {
    let start = Instant::now();
    let jail = cgroups.jail(&sub.name);
    let halt = Halt::default();
    let done = AtomicBool::new(false);
    let graded = std::thread::scope(|scope| {
        scope.spawn(|| watchdog(&jail, &halt, &done, start + opts.timeout, opts.timeout));
        let setting = Setting {
            dir: Some(&sub.dir),
            jail: &jail,
            halt: Some(&halt),
        };
        let work = || -> anyhow::Result<(Option<Report>, Vec<Report>, Vec<Report>)> {
            Ok(run_submission(sub, setting))
        };
        let result = if netns {
            crate::isolate::in_new_netns(work)
        } else {
            work()
        };
        done.store(true, Ordering::SeqCst);
        result
    });
    let (build, server, client) = graded.unwrap_or_else(|e| {
        // The namespace could not be made: say so in place of every check.
        let why = format!("the grader could not isolate it: {e:#}");
        (None, not_run_all(server::check_names(), &why), Vec::new())
    });
    Graded {
        name: sub.name.clone(),
        dir: sub.dir.clone(),
        build,
        server,
        client,
        wall: start.elapsed(),
        halted: halt.why(),
    }
}

fn not_run_all(names: Vec<&str>, why: &str) -> Vec<Report> {
    names.into_iter().map(|n| not_run(n, n, why)).collect()
}

fn run_submission(
    sub: &Submission,
    setting: Setting<'_>,
) -> (Option<Report>, Vec<Report>, Vec<Report>) {
    let build = sub.build.as_deref().map(|cmd| build(setting, cmd));
    if let Some(failed) = build.as_ref().filter(|b| !b.passed()) {
        let why = format!("the build failed ({})", failed.verdict.word());
        let server = sub
            .server
            .as_ref()
            .map(|_| not_run_all(server::check_names(), &why))
            .unwrap_or_default();
        let client = sub
            .client
            .as_ref()
            .map(|_| not_run_all(client::check_names(), &why))
            .unwrap_or_default();
        return (build, server, client);
    }
    let server = sub
        .server
        .as_deref()
        .map(|cmd| server::grade_in(setting, cmd))
        .unwrap_or_default();
    let client = sub
        .client
        .as_deref()
        .map(|cmd| client::grade_in(setting, cmd))
        .unwrap_or_default();
    (build, server, client)
}

/// Run the build step in the student's folder and jail.
fn build(setting: Setting<'_>, cmd: &str) -> Report {
    super::run_check("build", &format!("`{cmd}`"), &setting, |story, setting| {
        let mut command = std::process::Command::new("/bin/sh");
        command.arg("-c").arg(cmd);
        if let Some(dir) = setting.dir {
            command.current_dir(dir);
        }
        setting.jail.confine(&mut command);
        let mut proc = Proc::spawn_command(command, Input::Null)?;
        story
            .outputs
            .push((cmd.to_string(), proc.stdout.clone(), proc.stderr.clone()));
        story.say("harness", format!("build: {cmd}"));
        let Some(status) = crate::wait::within(BUILD_LIMIT, || proc.try_status()) else {
            return Err(Failure {
                expectation: format!("the build ends (within {BUILD_LIMIT:?})"),
                evidence: super::doing(proc.pid()),
            });
        };
        proc.stdout.wait_closed(Duration::from_secs(5));
        proc.stderr.wait_closed(Duration::from_secs(5));
        let output = format!("{}{}", proc.stdout.text(), proc.stderr.text());
        story.check(
            "harness",
            &format!("the build succeeded ({status})"),
            status.success(),
            || format!("{status}:\n{}", crate::spawn::tail(output.trim_end(), 20)),
        )?;
        Ok(super::Outcome::Pass)
    })
}

/// Watch one submission: stop it when its time is up, or at the first
/// fork its pid limit refused. Stopping is killing everything in its
/// jail, on every look from then on (a process started after the kill
/// dies too), until the submission's checks are done.
fn watchdog(jail: &Jail, halt: &Halt, done: &AtomicBool, deadline: Instant, limit: Duration) {
    while !done.load(Ordering::SeqCst) {
        let refused = jail.refused_forks();
        if refused > 0 {
            halt.set(format!(
                "it forked without bound: fork() was refused {refused} times at the pid limit \
                 ({MAX_PIDS} processes), and the grader killed all of it"
            ));
        } else if Instant::now() > deadline {
            halt.set(format!(
                "its time ran out ({} s for the submission): the grader killed all of it",
                limit.as_secs()
            ));
        }
        if halt.why().is_some() {
            jail.kill_all();
        }
        std::thread::sleep(crate::wait::POLL * 10);
    }
}
