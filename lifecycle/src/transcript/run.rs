//! Running a lesson: each block's commands in a shell, or as the
//! programs of a terminal session with typed input and keys, compared
//! with [`super::matching`]; the whole lesson in a namespace of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;

use super::matching::{
    Vars, first_miss, lines_contained, lines_match, lines_match_any_order, substitute,
    without_typed,
};
use super::parse::{Block, Key, Line, blocks, segments};
use crate::spawn::Proc;

/// Where the programs run: the directories of our binaries first on the
/// PATH, a scratch directory as the working directory, and `ECHO_LAB`
/// naming the repository (lesson 01 has the reader set all three).
pub struct Setting {
    pub bin_dirs: Vec<PathBuf>,
    pub work_dir: PathBuf,
    pub repo: PathBuf,
}

impl Setting {
    fn command(&self, cmd: &str) -> Command {
        let mut path = std::env::join_paths(&self.bin_dirs).unwrap_or_default();
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        let mut c = Command::new("sh");
        c.args(["-c", cmd])
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .env("ECHO_LAB", &self.repo)
            .current_dir(&self.work_dir);
        c
    }
}

/// A program running in one terminal of a lesson.
struct Terminal {
    name: String,
    cmd: String,
    proc: Proc,
    /// How many of its output lines earlier blocks have accounted for.
    cursor: usize,
}

impl Terminal {
    fn exited(&mut self) -> bool {
        self.proc.try_status().is_some()
    }

    /// Wait until `expected` matches the output after the cursor (or all
    /// of it, once the program has exited: see [`Match`]), then move the
    /// cursor.
    fn expect(
        &mut self,
        expected: &[String],
        how: Match,
        vars: &mut Vars,
        deadline: Instant,
    ) -> Result<(), String> {
        // Each look: matched (how many lines, the bindings), or it has
        // exited without a match (`Err`), or not yet (`None`).
        let outcome = crate::wait::by(deadline, || {
            let exited = self.exited();
            if exited {
                // Its last lines may still be in the pipe (or in the pipe
                // of a child it left running: a bounded wait).
                self.proc.stdout.wait_closed(Duration::from_secs(2));
            }
            let lines = self.proc.stdout.lines();
            let after = &lines[self.cursor.min(lines.len())..];
            let found = match how {
                Match::Prefix => lines_match(expected, after, vars, false),
                Match::Contains => lines_contained(expected, after, vars),
                Match::Whole if exited => lines_match(expected, after, vars, true),
                Match::AnyOrder if exited => {
                    lines_match_any_order(expected, after, vars).map(|v| (after.len(), v))
                }
                Match::Exit if exited => Some((after.len(), vars.clone())),
                _ => None,
            };
            match found {
                Some(found) => Some(Ok(found)),
                None if exited => Some(Err(())),
                None => None,
            }
        });
        if let Some(Ok((n, found))) = outcome {
            self.cursor += n;
            *vars = found;
            return Ok(());
        }
        // Say what really happened: it exited, or it is still running.
        let why = if outcome.is_some() {
            match self.proc.try_status() {
                Some(status) => format!(
                    "it exited ({status}), and its output does not match the lesson's lines"
                ),
                None => "its output does not match the lesson's lines".to_string(),
            }
        } else {
            "it is still running, and what it printed by the deadline does not match the lesson's lines"
                .to_string()
        };
        let lines = self.proc.stdout.lines();
        let after = &lines[self.cursor.min(lines.len())..];
        Err(format!(
            "`{}` (terminal {}): {why}.\n{}\n--- expected\n{}\n--- printed (paste it back, with placeholders, after a deliberate change)\n{}",
            self.cmd,
            self.name,
            first_miss(expected, after, vars),
            expected.join("\n"),
            after.join("\n")
        ))
    }

    /// Press a key. What the program printed before it cannot be its
    /// answer: the lines after the key are looked for in what comes next
    /// (what came between the blocks and the lesson does not show is
    /// passed over).
    fn press(&mut self, key: Key) {
        self.cursor = self.proc.stdout.lines().len();
        match key {
            Key::CtrlD => self.proc.close_stdin(),
            Key::CtrlC => {
                let _ = self.proc.interrupt(Signal::SIGINT);
            }
        }
    }

    /// The end of the lesson: Ctrl-D, then Ctrl-C, as a person would.
    /// False if it had to be killed.
    fn stop(&mut self) -> bool {
        // A program that reads its input ends at once on Ctrl-D; a server
        // or an observer ignores it and waits for Ctrl-C.
        for (key, patience) in [(Key::CtrlD, 500), (Key::CtrlC, 5000)] {
            self.press(key);
            if crate::wait::within(Duration::from_millis(patience), || {
                self.exited().then_some(())
            })
            .is_some()
            {
                return true;
            }
        }
        self.proc.kill_tree();
        false
    }
}

/// How a block's lines are matched against what a program printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The start of what it printed so far (it goes on running).
    Prefix,
    /// Somewhere in what it printed so far, in any order (`any-order`
    /// on a terminal's block).
    Contains,
    /// All of it, once it has exited.
    Whole,
    /// All of it, once it has exited, lines in any order (`any-order`).
    AnyOrder,
    /// Nothing: it must only exit.
    Exit,
}

/// What one run of a lesson found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The failures, one text each; none if the lesson held.
    pub failures: Vec<String>,
    /// The block that failed showed a sampling observer's lines: which
    /// of them appear depends on where its polls fell.
    pub sampled: bool,
}

/// Does `cmd` start an observer that samples the kernel's table every
/// few milliseconds (`observer`, `observer watch`, `observer lab`, with
/// or without `--exact`)? Its lines depend on where the polls fall: a
/// dump is not one atomic picture, and one that straddles a handshake
/// can list the client in SYN_SENT beside a server end already
/// ESTABLISHED.
fn is_sampler(cmd: &str) -> bool {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let Some((program, args)) = words.split_first() else {
        return false;
    };
    let one_shot = args
        .iter()
        .any(|w| matches!(*w, "snapshot" | "explain" | "kernel-echo"))
        || args.windows(2).any(|w| w == ["lab", "exec"]);
    program.rsplit('/').next() == Some("observer") && !one_shot
}

/// Run a whole lesson in document order.
pub fn check_lesson(lesson: &Path, setting: &Setting) -> Result<Outcome> {
    let markdown =
        std::fs::read_to_string(lesson).with_context(|| format!("{}", lesson.display()))?;
    let at = |block: &Block| format!("{}:{}", lesson.display(), block.line);
    let mut failures = Vec::new();
    let mut sampled = false;
    let mut vars = Vars::new();
    let mut terminals: Vec<Terminal> = Vec::new();
    for block in blocks(&markdown).iter().filter(|b| !b.skipped()) {
        let result = match block.terminal() {
            None => run_commands(block, setting, &mut vars),
            Some(name) => run_in_terminal(block, name, setting, &mut terminals, &mut vars),
        };
        if let Err(e) = result {
            failures.push(format!("{}: {e}", at(block)));
            sampled = block.terminal().is_some_and(|name| {
                terminals
                    .iter()
                    .any(|t| t.name == name && is_sampler(&t.cmd))
            });
            // The blocks after this one build on it.
            break;
        }
    }
    // Last started, first stopped: the client before the server.
    while let Some(mut t) = terminals.pop() {
        if t.exited() {
            let lines = t.proc.stdout.lines();
            if t.cursor < lines.len() {
                failures.push(format!(
                    "{}: `{}` (terminal {}) printed more than the lesson shows:\n{}",
                    lesson.display(),
                    t.cmd,
                    t.name,
                    lines[t.cursor..].join("\n")
                ));
            }
        } else if !t.stop() {
            failures.push(format!(
                "{}: `{}` (terminal {}) did not stop on Ctrl-D or Ctrl-C",
                lesson.display(),
                t.cmd,
                t.name
            ));
        }
    }
    Ok(Outcome { failures, sampled })
}

/// A block outside the terminals: each command to completion.
fn run_commands(block: &Block, setting: &Setting, vars: &mut Vars) -> Result<(), String> {
    for (cmd, lines) in block.commands() {
        let cmd = substitute(&cmd, vars);
        let expected: Vec<String> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Text(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let proc = Proc::spawn_terminal(setting.command(&cmd)).map_err(|e| e.to_string())?;
        let mut t = Terminal {
            name: "-".into(),
            cmd: cmd.clone(),
            proc,
            cursor: 0,
        };
        let typed = block.stdin();
        if !typed.is_empty() {
            let _ = t.proc.write_stdin(typed.as_bytes());
        }
        t.proc.close_stdin();
        let expected = without_typed(&expected, &typed);
        let how = if block.attrs.contains_key("any-order") {
            Match::AnyOrder
        } else {
            Match::Whole
        };
        t.expect(&expected, how, vars, Instant::now() + block.deadline())?;
    }
    Ok(())
}

/// A block in terminal `name`: start its command, or go on with the one
/// running there; type; wait for each part of the output; press the keys.
fn run_in_terminal(
    block: &Block,
    name: &str,
    setting: &Setting,
    terminals: &mut Vec<Terminal>,
    vars: &mut Vars,
) -> Result<(), String> {
    let commands = block.commands();
    if commands.len() > 1 {
        return Err("a terminal block starts at most one command".into());
    }
    let index = match commands.first() {
        Some((cmd, _)) => {
            if let Some(busy) = terminals.iter_mut().find(|t| t.name == name) {
                if !busy.exited() {
                    return Err(format!("terminal {name} is still running `{}`", busy.cmd));
                }
            }
            terminals.retain(|t| t.name != name);
            let cmd = substitute(cmd, vars);
            let proc = Proc::spawn_terminal(setting.command(&cmd)).map_err(|e| e.to_string())?;
            terminals.push(Terminal {
                name: name.to_string(),
                cmd,
                proc,
                cursor: 0,
            });
            terminals.len() - 1
        }
        None => terminals
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| format!("nothing was started in terminal {name}"))?,
    };
    let t = &mut terminals[index];
    let typed = block.stdin();
    if !typed.is_empty() {
        t.proc
            .write_stdin(typed.as_bytes())
            .map_err(|e| format!("typing into `{}`: {e}", t.cmd))?;
    }
    let deadline = Instant::now() + block.deadline();
    let parts = segments(&block.lines);
    let pressed_any = parts.iter().any(|(_, key)| key.is_some());
    let last = parts.len() - 1;
    let any_order = block.attrs.contains_key("any-order");
    for (i, (expected, key)) in parts.iter().enumerate() {
        let expected = without_typed(expected, &typed);
        // After the last key the program is expected to end, and what it
        // prints then must be all shown (a block that ends with the key
        // shows nothing of it: the program must only end).
        let how = match (pressed_any && i == last, expected.is_empty()) {
            (false, _) if any_order => Match::Contains,
            (false, _) => Match::Prefix,
            (true, false) => Match::Whole,
            (true, true) => Match::Exit,
        };
        t.expect(&expected, how, vars, deadline)?;
        if let Some(key) = key {
            t.press(*key);
        }
    }
    Ok(())
}

/// Check `lesson` in a network namespace of its own, on a thread of its
/// own (unshare(CLONE_NEWNET) moves only the calling thread; the programs
/// it starts inherit the namespace, and it disappears with the last of
/// them). Needs root.
///
/// A lesson that reads the kernel's tracepoint (`--exact`) or builds the
/// lab sees port 6666 in every namespace at once: it runs alone.
///
/// A lesson that failed in a sampling observer's lines (see
/// [`is_sampler`]) runs once more, from the start, in a new namespace:
/// the lessons show what a 10 ms poll shows on almost every run, and a
/// poll that fell inside a 100-microsecond handshake is not a drift. A
/// real drift fails both runs; both failures are reported then, and the
/// first is printed even when the second run holds.
pub fn check_lesson_isolated(
    lesson: &Path,
    bin_dirs: &[PathBuf],
    repo: &Path,
) -> Result<Vec<String>> {
    static ALONE: std::sync::RwLock<()> = std::sync::RwLock::new(());
    let text = std::fs::read_to_string(lesson)?;
    let alone = text.contains("--exact") || text.contains("observer lab");
    let _guard = if alone {
        (None, Some(ALONE.write().unwrap_or_else(|e| e.into_inner())))
    } else {
        (Some(ALONE.read().unwrap_or_else(|e| e.into_inner())), None)
    };
    // A directory of this check's own: a lesson and its translation have
    // the same file name (08-many-clients.md) and are checked at the same
    // time, and one's `strace -o accept.trace` must not write into the
    // other's file (nor its start remove the other's directory).
    static CHECKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let work_dir = std::env::temp_dir().join(format!(
        "echo-lab-lesson-{}-{}-{}",
        std::process::id(),
        CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        lesson.file_stem().unwrap_or_default().to_string_lossy()
    ));
    crate::interrupt::track_file(work_dir.clone());
    let setting = Setting {
        bin_dirs: bin_dirs.to_vec(),
        work_dir: work_dir.clone(),
        repo: repo.to_path_buf(),
    };
    let run = || -> Result<Outcome> {
        let _ = std::fs::remove_dir_all(&work_dir);
        std::fs::create_dir_all(&work_dir)?;
        crate::isolate::in_new_netns(|| check_lesson(lesson, &setting))
    };
    let result = run().and_then(|first| {
        if first.failures.is_empty() || !first.sampled {
            return Ok(first.failures);
        }
        let first = first.failures.join("\n\n");
        eprintln!("first run, failed in a sampler's lines; running the lesson once more:\n{first}");
        let mut second = run()?.failures;
        if !second.is_empty() {
            second.insert(0, format!("first run:\n{first}\n\nsecond run:"));
        }
        Ok(second)
    });
    let _ = std::fs::remove_dir_all(&work_dir);
    crate::interrupt::untrack_file(&work_dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_are_the_watching_observers() {
        for cmd in [
            "observer",
            "observer --port 7000",
            "/x/target/debug/observer --exact",
            "observer watch --interval 50ms",
            "observer lab",
            "observer lab --delay 300ms",
        ] {
            assert!(is_sampler(cmd), "{cmd}");
        }
        for cmd in [
            "observer snapshot",
            "observer --netns x snapshot",
            "observer explain --legacy",
            "observer kernel-echo",
            "observer lab exec client -- echo-client 10.66.0.2",
            "echo-server",
            "ss -tan",
        ] {
            assert!(!is_sampler(cmd), "{cmd}");
        }
    }

    /// "Exited" only when the program exited; a program still running at
    /// the deadline is said to be running. (Real processes: sh.)
    #[test]
    fn a_failure_says_whether_the_program_exited() {
        let dir = std::env::temp_dir().join(format!("echo-lab-miss-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lesson = dir.join("lesson.md");
        let setting = Setting {
            bin_dirs: vec![],
            work_dir: dir.clone(),
            repo: dir.clone(),
        };
        let run = |md: &str| {
            std::fs::write(&lesson, md).unwrap();
            check_lesson(&lesson, &setting).unwrap().failures.join("\n")
        };
        let exited =
            run("```console\n$ printf 'one\\ntwo three four\\n'\none\ntwo three five\n```\n");
        assert!(exited.contains("it exited (exit status: 0)"), "{exited}");
        assert!(
            exited.contains("nearest printed line is 2: `two three four`"),
            "{exited}"
        );
        let running =
            run("```console terminal=1 wait=1\n$ sh -c 'echo one; exec sleep 30'\none\ntwo\n```\n");
        assert!(running.contains("it is still running"), "{running}");
        assert!(!running.contains("exited"), "{running}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
