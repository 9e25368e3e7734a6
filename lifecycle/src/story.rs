//! A scenario's story: what each actor did or saw, when, and whether each
//! expectation held. The runner prints it as a narrated timeline and a
//! verdict; `--json` gives the same as data.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::echo::{Client, Server};
use crate::observer::{EventExt, Observer, Timeline};
use crate::spawn::{Capture, Input};

/// How long any single expectation may take to come true.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One line of the story.
#[derive(Debug, Clone)]
pub struct Step {
    pub t: Duration,
    /// Who: `server`, `client`, `observer`, `/proc`, `harness`.
    pub actor: String,
    pub text: String,
    /// Some(true) for an expectation met.
    pub check: bool,
}

/// An expectation that was not met, with what was seen instead.
#[derive(Debug, Clone)]
pub struct Failure {
    pub expectation: String,
    pub evidence: String,
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Failure {
        Failure {
            expectation: "the harness could drive the programs".to_string(),
            evidence: format!("{err:#}"),
        }
    }
}

/// The steps of one scenario run, and the outputs of its processes.
pub struct Story {
    start: Instant,
    pub steps: Vec<Step>,
    /// (label, stdout, stderr) of every process started, for `--verbose`.
    pub outputs: Vec<(String, Arc<Capture>, Arc<Capture>)>,
}

impl Default for Story {
    fn default() -> Self {
        Story::new()
    }
}

impl Story {
    pub fn new() -> Story {
        Story {
            start: Instant::now(),
            steps: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Narrate something that happened.
    pub fn say(&mut self, actor: &str, text: impl Into<String>) {
        self.steps.push(Step {
            t: self.start.elapsed(),
            actor: actor.to_string(),
            text: text.into(),
            check: false,
        });
    }

    /// An expectation: narrated with a tick when it holds, the failure
    /// (with `evidence`) when it does not.
    pub fn check(
        &mut self,
        actor: &str,
        expectation: &str,
        ok: bool,
        evidence: impl FnOnce() -> String,
    ) -> Result<(), Failure> {
        if !ok {
            return Err(Failure {
                expectation: expectation.to_string(),
                evidence: evidence(),
            });
        }
        self.steps.push(Step {
            t: self.start.elapsed(),
            actor: actor.to_string(),
            text: expectation.to_string(),
            check: true,
        });
        Ok(())
    }

    /// Wait (with a deadline) until `found` gives a value; fail with
    /// `expectation` and the last `evidence` otherwise.
    pub fn wait<T>(
        &mut self,
        actor: &str,
        expectation: &str,
        mut found: impl FnMut() -> Option<T>,
        evidence: impl FnOnce() -> String,
    ) -> Result<T, Failure> {
        match crate::wait::within(PATIENCE, &mut found) {
            Some(value) => {
                self.check(actor, expectation, true, String::new)?;
                Ok(value)
            }
            None => Err(Failure {
                expectation: format!("{expectation} (within {PATIENCE:?})"),
                evidence: evidence(),
            }),
        }
    }

    fn keep(&mut self, label: String, stdout: &Arc<Capture>, stderr: &Arc<Capture>) {
        self.outputs
            .push((label, Arc::clone(stdout), Arc::clone(stderr)));
    }

    /// Start an echo-server and narrate its listening line.
    pub fn server(&mut self, args: &[&str]) -> Result<Server, Failure> {
        let server = Server::start(args)?;
        self.keep(
            format!("echo-server {}", args.join(" ")),
            &server.proc.stdout,
            &server.proc.stderr,
        );
        let first = server
            .proc
            .stdout
            .lines()
            .into_iter()
            .next()
            .unwrap_or_default();
        self.say("server", first);
        Ok(server)
    }

    /// Start an echo-client; narrate its connected line once it appears.
    pub fn client(
        &mut self,
        addr: SocketAddr,
        args: &[&str],
        input: Input<'_>,
    ) -> Result<Client, Failure> {
        let client = Client::start(addr, args, input)?;
        self.keep(
            format!("echo-client {}", args.join(" ")),
            &client.proc.stdout,
            &client.proc.stderr,
        );
        Ok(client)
    }

    /// Wait for the client's connected line and narrate it.
    pub fn connected(&mut self, client: &Client) -> Result<SocketAddr, Failure> {
        let local = client.connected()?;
        let line = client
            .proc
            .stderr
            .lines()
            .into_iter()
            .find(|l| l.contains("connected"))
            .unwrap_or_default();
        self.say("client", line.trim_start_matches("echo-client: "));
        Ok(local)
    }

    /// Start an observer watching `port`.
    pub fn observer(&mut self, port: u16) -> Result<Observer, Failure> {
        let observer = Observer::watch(port, &[])?;
        self.keep(
            format!("observer --port {port}"),
            &observer.proc.stdout,
            &observer.proc.stderr,
        );
        Ok(observer)
    }

    /// Wait for an observer event matching `pred`; narrate it as seen.
    pub fn see(
        &mut self,
        observer: &Observer,
        expectation: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value, Failure> {
        match observer.wait_for(expectation, PATIENCE, &pred) {
            Ok(event) => {
                self.steps.push(Step {
                    t: self.start.elapsed(),
                    actor: "observer".to_string(),
                    text: format!("{expectation}: {}", describe(&event)),
                    check: true,
                });
                Ok(event)
            }
            Err(_) => Err(Failure {
                expectation: format!("the observer sees {expectation} (within {PATIENCE:?})"),
                evidence: observer
                    .events()
                    .iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join("\n"),
            }),
        }
    }
}

/// An observer event in a few words: `client 127.0.0.1:51230 ESTABLISHED
/// [echo-client[4120]/3]`.
pub fn describe(event: &Value) -> String {
    let owners: Vec<String> = event["owners"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| format!("{}[{}]/{}", o.str("comm"), o.int("pid"), o.int("fd")))
                .collect()
        })
        .unwrap_or_default();
    let owners = if owners.is_empty() {
        String::new()
    } else {
        format!(" [{}]", owners.join(" "))
    };
    match event.str("event") {
        "process" | "zombie" | "reaped" => format!(
            "{} pid {} ({}) {} {}",
            event.str("event"),
            event.int("pid"),
            event.str("comm"),
            event.str("state"),
            event.str("meaning")
        ),
        kind => {
            let prev = event["prev_state"]
                .as_str()
                .map_or(String::new(), |p| format!("{p} -> "));
            let extra = if event.str("state") == "TIME_WAIT" {
                format!(" ({} ms to go)", event.int("expires_ms"))
            } else {
                String::new()
            };
            format!(
                "{kind}: {} {} > {} {prev}{}{extra}{owners}",
                event.str("role"),
                event.str("local"),
                event.str("remote"),
                event.str("state")
            )
        }
    }
}

/// How a scenario (or a grading check) ended.
#[derive(Debug, Clone)]
pub enum Verdict {
    Pass,
    Fail(Failure),
    Skipped(String),
    /// Passed, with something worth knowing that is not a fault: a
    /// lockstep client never has data in flight at EOF, so it never needs
    /// the half-close it does not do.
    Finding(String),
    /// Could not run (the server never listened, the build failed, the
    /// submission was stopped): not a pass.
    NotRun(String),
}

impl Verdict {
    /// One word for tables: `PASS`, `FAIL`, `SKIPPED`, `NOTE`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "FAIL",
            Verdict::Skipped(_) => "SKIPPED",
            Verdict::Finding(_) => "NOTE",
            Verdict::NotRun(_) => "NOT RUN",
        }
    }
}

/// A finished scenario.
pub struct Report {
    pub name: String,
    pub about: String,
    pub verdict: Verdict,
    pub wall: Duration,
    pub story: Story,
}

impl Report {
    pub fn passed(&self) -> bool {
        !matches!(self.verdict, Verdict::Fail(_) | Verdict::NotRun(_))
    }

    /// The narrated timeline and the verdict.
    pub fn text(&self, verbose: bool) -> String {
        let mut out = format!("== {}: {}\n", self.name, self.about);
        for step in &self.story.steps {
            let mark = if step.check { "ok" } else { "  " };
            let _ = writeln!(
                out,
                "  {:>7.3}s {mark} {:<8} {}",
                step.t.as_secs_f64(),
                step.actor,
                step.text
            );
        }
        let wall = format!("{:.2} s", self.wall.as_secs_f64());
        match &self.verdict {
            Verdict::Pass => {
                let _ = writeln!(out, "PASS {} ({wall})", self.name);
            }
            Verdict::Skipped(why) => {
                let _ = writeln!(out, "SKIPPED {}: {why}", self.name);
            }
            Verdict::Finding(what) => {
                let _ = writeln!(out, "NOTE {} ({wall}): {what}", self.name);
            }
            Verdict::NotRun(why) => {
                let _ = writeln!(out, "NOT RUN {}: {why}", self.name);
            }
            Verdict::Fail(f) => {
                let _ = writeln!(
                    out,
                    "FAIL {} ({wall})\n  expected: {}",
                    self.name, f.expectation
                );
                for line in f.evidence.lines().take(40) {
                    let _ = writeln!(out, "  | {line}");
                }
            }
        }
        if verbose {
            for (label, stdout, stderr) in &self.story.outputs {
                let _ = writeln!(out, "  --- {label}: stdout");
                for line in stdout.text().lines() {
                    let _ = writeln!(out, "  {line}");
                }
                let _ = writeln!(out, "  --- {label}: stderr");
                for line in stderr.text().lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
        out
    }

    pub fn json(&self, verbose: bool) -> Value {
        let (verdict, reason, evidence) = match &self.verdict {
            Verdict::Pass => ("pass", Value::Null, Value::Null),
            Verdict::Skipped(why) => ("skipped", json!(why), Value::Null),
            Verdict::Finding(what) => ("note", Value::Null, json!(what)),
            Verdict::NotRun(why) => ("not-run", json!(why), Value::Null),
            Verdict::Fail(f) => ("fail", json!(f.expectation), json!(f.evidence)),
        };
        let timeline: Vec<Value> = self
            .story
            .steps
            .iter()
            .map(|s| json!({"t": s.t.as_secs_f64(), "actor": s.actor, "text": s.text, "check": s.check}))
            .collect();
        let mut report = json!({
            "name": self.name,
            "about": self.about,
            "verdict": verdict,
            "expected": reason,
            "evidence": evidence,
            "wall_ms": self.wall.as_millis() as u64,
            "timeline": timeline,
        });
        if verbose {
            report["outputs"] = self
                .story
                .outputs
                .iter()
                .map(|(label, out, err)| json!({"program": label, "stdout": out.text(), "stderr": err.text()}))
                .collect();
        }
        report
    }
}
