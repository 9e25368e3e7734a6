//! The tutorial's transcripts, run against the real programs and compared.
//!
//! A lesson's ```` ```console ```` block is a transcript, as a person
//! would see it on a terminal:
//!
//! - `$ CMD` starts a command (`# CMD`: the same, as root);
//! - the lines after it are what it prints, stdout and stderr in the order
//!   written, and the lines the person types;
//! - `^D` is Ctrl-D (end of input), `^C` is Ctrl-C (SIGINT).
//!
//! Words after `console` say how the block is run:
//!
//! - none: each command runs to completion, and everything it prints
//!   must match.
//! - `terminal=N`: terminal N of a session of several terminals. A block
//!   with a `$` line starts the command there; a block without one goes
//!   on with the program already running there (more output, more typing).
//!   The block is done once its lines have appeared; the program goes on
//!   running while the next blocks run, as in a real terminal.
//! - `stdin="..."`: what is typed (`\n` for Enter). The typed lines appear
//!   in the block, as on a terminal, and are not expected from the program.
//! - `wait=SECS`: how long the block may take (default 20 s).
//! - `any-order`: the lines of each command's output may come in any
//!   order (the kernel lists sockets in hash-table order); on a terminal's
//!   block, the lines shown must all appear, in any order, among what the
//!   program prints (a sampler's lines from different polls).
//! - `skip="why"`: shown, not run (a kernel module, a build).
//!
//! After `^C` or `^D` the lines are what the program prints in answer
//! (what it printed before the key and the lesson does not show is passed
//! over); the program must then end. A block that ends with the key
//! shows nothing of the answer, and only the ending is checked.
//!
//! All blocks of a lesson run in the order written. At the end, programs
//! still running are stopped as a person would: Ctrl-D, then Ctrl-C; what
//! they print then is not checked. A program that ended by itself must
//! have printed nothing that the lesson does not show.
//!
//! Expected lines may hold placeholders for what varies between runs:
//! `{n}` a number (a pid, a port, an inode), `{t}` a time (`12 ms`,
//! `0.405`, `59s`), `{*}` any text (at the end of a line, after a blank,
//! also none), and `{NAME}` (a lower-case word, digits allowed after its
//! first letter), a number remembered under NAME: the first time it is
//! read, after that it must be the same, and a command may use it (`kill
//! -9 {child}`; a name not yet bound stays as written, as in `lifecycle
//! --server-cmd 'CMD {port}'`). A line `...` stands for any number of
//! lines. Runs of blanks match runs of blanks, and blanks at either end
//! are not counted: alignment is not checked.
//!
//! Every lesson runs in a network namespace of its own (see
//! [`check_lesson_isolated`]): port 6666 is always free, and `ss` and
//! `observer` show only the lesson's own sockets. A lesson that fails in
//! a sampling observer's lines runs once more (ibid.).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;

use crate::spawn::Proc;

/// One console block of a lesson.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based line of the opening fence, for messages.
    pub line: usize,
    pub attrs: HashMap<String, String>,
    pub lines: Vec<Line>,
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `$ CMD` or `# CMD` (root).
    Command(String),
    /// `^C` or `^D`.
    Key(Key),
    /// Anything else: printed by the program, or typed.
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Ctrl-C: SIGINT to the terminal's process group.
    CtrlC,
    /// Ctrl-D: the program reads end of file.
    CtrlD,
}

impl Block {
    pub fn terminal(&self) -> Option<&str> {
        self.attrs.get("terminal").map(String::as_str)
    }

    pub fn skipped(&self) -> bool {
        self.attrs.contains_key("skip")
    }

    fn stdin(&self) -> String {
        self.attrs
            .get("stdin")
            .map(|s| s.replace("\\n", "\n"))
            .unwrap_or_default()
    }

    fn deadline(&self) -> Duration {
        let secs = self.attrs.get("wait").and_then(|w| w.parse().ok());
        Duration::from_secs(secs.unwrap_or(20))
    }

    /// The commands, each with the lines that follow it.
    fn commands(&self) -> Vec<(String, Vec<Line>)> {
        let mut out: Vec<(String, Vec<Line>)> = Vec::new();
        for line in &self.lines {
            match line {
                Line::Command(cmd) => out.push((cmd.clone(), Vec::new())),
                other => {
                    if let Some((_, lines)) = out.last_mut() {
                        lines.push(other.clone());
                    }
                }
            }
        }
        out
    }
}

/// The console blocks of a markdown text.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```console") else {
            continue;
        };
        let attrs = parse_attrs(info);
        let mut body = Vec::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            body.push(
                if let Some(cmd) = line.strip_prefix("$ ").or(line.strip_prefix("# ")) {
                    Line::Command(cmd.to_string())
                } else if line.trim() == "^C" {
                    Line::Key(Key::CtrlC)
                } else if line.trim() == "^D" {
                    Line::Key(Key::CtrlD)
                } else {
                    Line::Text(line.to_string())
                },
            );
        }
        out.push(Block {
            line: i + 1,
            attrs,
            lines: body,
        });
    }
    out
}

/// `key=value key="quoted value" flag` -> map (a flag maps to "").
fn parse_attrs(info: &str) -> HashMap<String, String> {
    let mut attrs = HashMap::new();
    let mut rest = info.trim();
    while !rest.is_empty() {
        let end = rest.find([' ', '=']).unwrap_or(rest.len());
        let key = rest[..end].to_string();
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix('=') {
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let close = quoted.find('"').unwrap_or(quoted.len());
                (&quoted[..close], quoted.get(close + 1..).unwrap_or(""))
            } else {
                let close = after.find(' ').unwrap_or(after.len());
                (&after[..close], &after[close..])
            };
            attrs.insert(key, value.to_string());
            rest = tail.trim_start();
        } else {
            attrs.insert(key, String::new());
            rest = rest.trim_start();
        }
    }
    attrs
}

/// Numbers remembered by name (`{child}`) across a lesson.
pub type Vars = HashMap<String, String>;

/// Does `actual` match the `pattern` line? The bindings it makes, if so.
pub fn line_matches(pattern: &str, actual: &str, vars: &Vars) -> Option<Vars> {
    let (p, a) = (squeeze(pattern), squeeze(actual));
    let mut vars = vars.clone();
    matches_at(p.as_bytes(), a.as_bytes(), &mut vars).then_some(vars)
}

/// Blanks trimmed at both ends, and each run of blanks made one space.
fn squeeze(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut blank = false;
    for c in line.trim().chars() {
        if c == ' ' || c == '\t' {
            if !blank {
                out.push(' ');
            }
            blank = true;
        } else {
            out.push(c);
            blank = false;
        }
    }
    out
}

/// `{name}` at the start of `p`: the name, and the rest after `}`.
fn placeholder(p: &[u8]) -> Option<(&str, &[u8])> {
    let body = p.strip_prefix(b"{")?;
    let close = body.iter().position(|&b| b == b'}')?;
    let name = std::str::from_utf8(&body[..close]).ok()?;
    let word = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let valid = name == "*" || word;
    valid.then(|| (name, &body[close + 1..]))
}

fn matches_at(p: &[u8], a: &[u8], vars: &mut Vars) -> bool {
    if p.is_empty() {
        return a.is_empty();
    }
    // ` {*}` at the end also matches nothing (trailing blanks are trimmed).
    if p == b" {*}" && a.is_empty() {
        return true;
    }
    if let Some((name, rest)) = placeholder(p) {
        let digits = a.iter().take_while(|b| b.is_ascii_digit()).count();
        match name {
            "*" => return (0..=a.len()).any(|k| matches_at(rest, &a[k..], vars)),
            "n" => return (1..=digits).rev().any(|k| matches_at(rest, &a[k..], vars)),
            "t" => return time_then(rest, a, vars),
            _ => {}
        }
        if let Some(value) = vars.get(name).cloned() {
            return a.starts_with(value.as_bytes()) && matches_at(rest, &a[value.len()..], vars);
        }
        for k in (1..=digits).rev() {
            let mut tried = vars.clone();
            tried.insert(
                name.to_string(),
                String::from_utf8_lossy(&a[..k]).into_owned(),
            );
            if matches_at(rest, &a[k..], &mut tried) {
                *vars = tried;
                return true;
            }
        }
        return false;
    }
    !a.is_empty() && p[0] == a[0] && matches_at(&p[1..], &a[1..], vars)
}

/// `{t}`: digits and dots, then a unit or none (`12 ms`, `0.405`, `59s`).
fn time_then(rest: &[u8], a: &[u8], vars: &mut Vars) -> bool {
    if !a.first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let number = a
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b'.')
        .count();
    let after = &a[number..];
    let units: [&[u8]; 8] = [b" ms", b" us", b" s", b"ms", b"us", b"s", b"m", b""];
    units
        .iter()
        .filter(|u| after.starts_with(u))
        .any(|u| matches_at(rest, &after[u.len()..], vars))
}

/// Match `expected` against the start of `actual` (`whole`: all of it).
/// On success: how many lines of `actual` it took (the fewest), and the
/// bindings.
pub fn lines_match(
    expected: &[String],
    actual: &[String],
    vars: &Vars,
    whole: bool,
) -> Option<(usize, Vars)> {
    match expected.split_first() {
        None => (!whole || actual.is_empty()).then(|| (0, vars.clone())),
        Some((first, rest)) if first.trim() == "..." => (0..=actual.len())
            .find_map(|k| lines_match(rest, &actual[k..], vars, whole).map(|(n, v)| (k + n, v))),
        Some((first, rest)) => {
            let vars = line_matches(first, actual.first()?, vars)?;
            lines_match(rest, &actual[1..], &vars, whole).map(|(n, v)| (n + 1, v))
        }
    }
}

/// The same, in any order: each expected line matches a line of its own,
/// and no line is left over but where a `...` allows it (for what the
/// kernel lists in hash-table order, which changes from run to run: `ss`,
/// `netstat`, /proc/net/tcp).
pub fn lines_match_any_order(expected: &[String], actual: &[String], vars: &Vars) -> Option<Vars> {
    let gap = expected.iter().any(|l| l.trim() == "...");
    if !gap && expected.len() != actual.len() {
        return None;
    }
    lines_contained(expected, actual, vars).map(|(_, vars)| vars)
}

/// Every expected line (`...` lines aside) matches a line of its own
/// somewhere in `actual`, in any order: for a terminal's lines that come
/// from different polls in an order no one controls. How many lines of
/// `actual` that takes (up to the last one used), and the bindings.
pub fn lines_contained(
    expected: &[String],
    actual: &[String],
    vars: &Vars,
) -> Option<(usize, Vars)> {
    fn search(
        expected: &[&String],
        actual: &[String],
        used: &mut Vec<bool>,
        vars: &Vars,
    ) -> Option<(usize, Vars)> {
        let Some((first, rest)) = expected.split_first() else {
            return Some((0, vars.clone()));
        };
        for i in 0..actual.len() {
            if used[i] {
                continue;
            }
            let Some(bound) = line_matches(first, &actual[i], vars) else {
                continue;
            };
            used[i] = true;
            let found = search(rest, actual, used, &bound);
            used[i] = false;
            if let Some((n, v)) = found {
                return Some((n.max(i + 1), v));
            }
        }
        None
    }
    let wanted: Vec<&String> = expected.iter().filter(|l| l.trim() != "...").collect();
    search(&wanted, actual, &mut vec![false; actual.len()], vars)
}

/// Why `expected` does not match: the first expected line that is not
/// found where it should be, and the printed line most like it (so that a
/// changed word or a moved line break is seen at once).
fn first_miss(expected: &[String], actual: &[String], vars: &Vars) -> String {
    let mut vars = vars.clone();
    let (mut at, mut gap) = (0, false);
    for (i, pattern) in expected.iter().enumerate() {
        if pattern.trim() == "..." {
            gap = true;
            continue;
        }
        let window = if gap {
            actual.len()
        } else {
            (at + 1).min(actual.len())
        };
        let found =
            (at..window).find_map(|k| line_matches(pattern, &actual[k], &vars).map(|v| (k, v)));
        match found {
            Some((k, v)) => {
                (at, vars, gap) = (k + 1, v, false);
            }
            None => {
                let nearest = (at..actual.len())
                    .max_by_key(|&k| (likeness(pattern, &actual[k]), std::cmp::Reverse(k)));
                let nearest = match nearest {
                    Some(k) => format!(
                        "the nearest printed line is {}: `{}`",
                        k + 1,
                        actual[k].trim_end()
                    ),
                    None if actual.is_empty() => "nothing was printed".to_string(),
                    None => format!("nothing was printed after line {at}"),
                };
                return format!(
                    "expected line {} not found: `{}`\n{nearest}",
                    i + 1,
                    pattern.trim_end(),
                );
            }
        }
    }
    "every expected line matches, but more was printed".to_string()
}

/// How alike a pattern and a printed line are: the length of their
/// longest common subsequence of characters, placeholders left out.
fn likeness(pattern: &str, actual: &str) -> usize {
    let mut literal = Vec::new();
    let mut rest = pattern.as_bytes();
    while let Some(&first) = rest.first() {
        match placeholder(rest) {
            Some((_, after)) => rest = after,
            None => {
                literal.push(first);
                rest = &rest[1..];
            }
        }
    }
    let literal = String::from_utf8_lossy(&literal);
    let (p, a): (Vec<char>, Vec<char>) = (literal.chars().collect(), actual.chars().collect());
    let mut row = vec![0usize; a.len() + 1];
    for pc in &p {
        let mut diagonal = 0;
        for (j, ac) in a.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if pc == ac {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[a.len()]
}

/// `{name}` in a command, replaced by the number remembered under it.
///
/// A name nothing has bound stays as it is: `lifecycle --server-cmd 'CMD
/// {port}'` has a `{port}` of its own.
fn substitute(cmd: &str, vars: &Vars) -> String {
    let mut out = String::new();
    let mut rest = cmd;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match placeholder(&rest.as_bytes()[open..]) {
            Some((name, after)) if vars.contains_key(name) => {
                out.push_str(&vars[name]);
                rest = &rest[rest.len() - after.len()..];
            }
            _ => {
                out.push('{');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The expected lines minus what is typed: each typed line is removed
/// once, at its first appearance, in order (it echoes on the terminal;
/// the program does not print it).
fn without_typed(expected: &[String], typed: &str) -> Vec<String> {
    let mut out = expected.to_vec();
    let mut from = 0;
    for t in typed.lines() {
        if let Some(i) = out[from..].iter().position(|l| l == t) {
            out.remove(from + i);
            from += i;
        }
    }
    out
}

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

/// Split a terminal block's lines at its keys: (lines, the key after them).
fn segments(lines: &[Line]) -> Vec<(Vec<String>, Option<Key>)> {
    let mut out = vec![(Vec::new(), None)];
    for line in lines {
        match line {
            Line::Text(t) => out.last_mut().expect("never empty").0.push(t.clone()),
            Line::Key(k) => {
                out.last_mut().expect("never empty").1 = Some(*k);
                out.push((Vec::new(), None));
            }
            Line::Command(_) => {}
        }
    }
    out
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
    let work_dir = std::env::temp_dir().join(format!(
        "echo-lab-lesson-{}-{}",
        std::process::id(),
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

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn placeholders_match_what_varies_and_nothing_else() {
        let none = Vars::new();
        let ok = |p: &str, a: &str| line_matches(p, a, &none).is_some();
        assert!(ok(
            "listening on 127.0.0.1:6666 pid={n} mode=fork",
            "listening on 127.0.0.1:6666 pid=4242 mode=fork"
        ));
        assert!(!ok(
            "listening on 127.0.0.1:6666 pid={n} mode=fork",
            "listening on 127.0.0.1:6666 pid= mode=fork"
        ));
        assert!(!ok("served=5", "served=4"));
        assert!(ok("after {t}, {n}s to go", "after 2.96 s, 59s to go"));
        assert!(ok("x {t} y", "x 12ms y"));
        assert!(ok("a {*} b", "a anything at all b"));
        assert!(ok("to go {*}", "to go (more)"));
        assert!(ok("to go {*}", "to go"));
        assert!(!ok("a {*} b", "a anything at all c"));
        // Alignment is not counted; words are.
        assert!(ok("State  Recv-Q Local", "State   Recv-Q      Local"));
        assert!(ok("{t} listener", "    0.000      listener"));
        assert!(!ok("State Recv-Q", "StateRecv-Q"));
        // JSON braces are text, not placeholders.
        assert!(ok(
            r#"{"event":"new","t":{t}}"#,
            r#"{"event":"new","t":0.25}"#
        ));
    }

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

    /// Lesson 01's line for the forked child, against both things the
    /// observer may print: asleep at first sight, or first seen running
    /// (as a CI run printed it) and asleep one poll later.
    #[test]
    fn a_process_first_seen_running_still_matches_lesson_01() {
        let none = Vars::new();
        let lesson = "{t} pid {child} echo-server ppid {server}: {*}S in wait_woken: \
                      read(): waiting for data on socket fd 4 {*}";
        let asleep = "    0.037  pid 13803         echo-server ppid 13792: watching \
                      `echo-server`: S in wait_woken: read(): waiting for data on socket fd 4";
        let woke = "    0.055  pid 13803         echo-server ppid 13792: S in wait_woken: \
                    read(): waiting for data on socket fd 4 (was R -)";
        let running = "    0.026  pid 13803         echo-server ppid 13792: watching \
                       `echo-server`: R in -";
        assert!(line_matches(lesson, asleep, &none).is_some());
        assert!(line_matches(lesson, woke, &none).is_some());
        assert!(line_matches(lesson, running, &none).is_none());
        let lesson_md = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tutorial/01-three-terminals.md"),
        )
        .unwrap();
        assert!(lesson_md.lines().any(|l| l == lesson));
    }

    #[test]
    fn a_named_number_is_remembered_and_must_repeat() {
        let v = line_matches(
            "accepted pid={pid} child={child}",
            "accepted pid=10 child=11",
            &Vars::new(),
        )
        .unwrap();
        assert_eq!(v["child"], "11");
        assert!(line_matches("reaped child={child}", "reaped child=11", &v).is_some());
        assert!(line_matches("reaped child={child}", "reaped child=12", &v).is_none());
        assert_eq!(substitute("kill -9 {child}", &v), "kill -9 11");
        assert_eq!(substitute("grade 'cmd {port}'", &v), "grade 'cmd {port}'");
        assert_eq!(substitute("awk '{print $1}'", &v), "awk '{print $1}'");
    }

    #[test]
    fn lines_match_in_order_with_gaps() {
        let none = Vars::new();
        assert!(
            lines_match(
                &lines("one\n...\nfour"),
                &lines("one\ntwo\nthree\nfour"),
                &none,
                true
            )
            .is_some()
        );
        assert!(lines_match(&lines("one\n...\nfour"), &lines("one\nfour"), &none, true).is_some());
        assert!(lines_match(&lines("one\nfour"), &lines("one\ntwo\nfour"), &none, true).is_none());
        // As a prefix: the fewest lines that do it.
        assert_eq!(
            lines_match(&lines("...\nb"), &lines("a\nb\nc\nb"), &none, false).map(|m| m.0),
            Some(2)
        );
        assert!(lines_match(&lines("one"), &lines("one\ntwo"), &none, true).is_none());
        // In any order, each line once, the names bound consistently.
        let v = lines_match_any_order(&lines("b {x}\na {x}"), &lines("a 1\nb 1"), &none).unwrap();
        assert_eq!(v["x"], "1");
        assert!(lines_match_any_order(&lines("b {x}\na {x}"), &lines("a 1\nb 2"), &none).is_none());
        assert!(lines_match_any_order(&lines("a\na"), &lines("a\nb"), &none).is_none());
        // A line left over fails, unless a `...` allows it.
        assert!(lines_match_any_order(&lines("a"), &lines("b\na"), &none).is_none());
        assert!(lines_match_any_order(&lines("a\n..."), &lines("b\na"), &none).is_some());
        // Contained: each somewhere, up to the last one used.
        let (n, v) =
            lines_contained(&lines("c {x}\n...\na {x}"), &lines("a 1\nb\nc 1\nd"), &none).unwrap();
        assert_eq!((n, v["x"].as_str()), (3, "1"));
        assert!(lines_contained(&lines("c\nc"), &lines("c\nd"), &none).is_none());
    }

    #[test]
    fn blocks_keys_and_attributes_are_read_as_written() {
        let md = "text\n```console terminal=2 stdin=\"hello\\n\" wait=5\n$ echo-client\nhello\nhello\n^D\necho-client: closing (FIN)\n```\n```console\n$ a\nx\n# b\n```\n";
        let b = blocks(md);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].terminal(), Some("2"));
        assert_eq!(b[0].stdin(), "hello\n");
        assert_eq!(b[0].deadline(), Duration::from_secs(5));
        let parts = segments(&b[0].lines);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], (lines("hello\nhello"), Some(Key::CtrlD)));
        assert_eq!(without_typed(&parts[0].0, "hello\n"), vec!["hello"]);
        assert_eq!(parts[1].0, vec!["echo-client: closing (FIN)"]);
        assert_eq!(b[1].commands().len(), 2);
        assert_eq!(b[1].commands()[1].0, "b");
    }

    /// A number's width must not move a line break: the explain lesson's
    /// listener row, rendered with inodes (and user ids) of 3, 6 and 9
    /// digits, matches the lesson's lines every time. (The observer keeps
    /// room for the widest value of a field: explain::ROOM.)
    #[test]
    fn lesson_03_inode_lines_hold_for_any_width() {
        use observer::{explain, layout};
        let lesson_md = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tutorial/03-asking-for-sockets.md"),
        )
        .unwrap();
        let all: Vec<&str> = lesson_md.lines().collect();
        let at = all
            .iter()
            .position(|l| l.contains("idiag_uid"))
            .expect("lesson 03 shows idiag_uid");
        // idiag_uid, idiag_inode and the inode's wrapped meaning.
        let expected: Vec<String> = all[at..at + 3].iter().map(|l| l.to_string()).collect();
        assert!(expected[1].contains("idiag_inode"), "{expected:?}");
        for (uid, inode) in [(0u32, 123u32), (1000, 550_493), (65534, 123_456_789)] {
            // struct inet_diag_msg (linux/inet_diag.h), a LISTEN socket.
            let mut msg = [0u8; 72];
            msg[0] = layout::AF_INET; // idiag_family
            msg[1] = 10; // idiag_state = TCP_LISTEN
            msg[4..6].copy_from_slice(&6666u16.to_be_bytes()); // idiag_sport
            msg[8..12].copy_from_slice(&[127, 0, 0, 1]); // idiag_src
            msg[60..64].copy_from_slice(&1024u32.to_ne_bytes()); // idiag_wqueue
            msg[64..68].copy_from_slice(&uid.to_ne_bytes()); // idiag_uid
            msg[68..72].copy_from_slice(&inode.to_ne_bytes()); // idiag_inode
            let ctx = explain::Ctx {
                family: layout::AF_INET,
                request: false,
                ack: false,
            };
            let section = explain::Section {
                title: "4.1 Answer 1".to_string(),
                rows: explain::annotate(&layout::inet_diag_msg::LAYOUT, &msg, 16, ctx),
                notes: vec![],
            };
            let text = lines(&explain::render_text(&[section]));
            let from = text.iter().position(|l| l.contains("idiag_uid")).unwrap();
            let got = lines_match(&expected, &text[from..], &Vars::new(), false);
            let (_, vars) = got.unwrap_or_else(|| {
                panic!(
                    "inode {inode}: {:#?}\ndoes not match {expected:#?}",
                    &text[from..].iter().take(3).collect::<Vec<_>>()
                )
            });
            assert_eq!(vars["listener"], inode.to_string());
        }
    }

    /// A failure names the expected line that was not found and quotes
    /// the printed line most like it, wherever it is.
    #[test]
    fn a_miss_names_the_line_and_quotes_the_nearest() {
        let expected = lines("header\n...\nport {n} is open\nthe end");
        let actual = lines("header\nsomething\nport 80 is closed\nother text\nthe end");
        let why = first_miss(&expected, &actual, &Vars::new());
        assert!(
            why.contains("expected line 3 not found: `port {n} is open`"),
            "{why}"
        );
        assert!(
            why.contains("nearest printed line is 3: `port 80 is closed`"),
            "{why}"
        );
        let why = first_miss(&lines("a"), &[], &Vars::new());
        assert!(why.contains("nothing was printed"), "{why}");
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
