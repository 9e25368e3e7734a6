//! Reading a lesson: its console blocks, each with its attributes
//! (`terminal=1`, `wait=1`, `skip`...), its commands, the lines they
//! print, and the keys typed (^D, ^C).

use std::collections::HashMap;
use std::time::Duration;

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

    pub fn stdin(&self) -> String {
        self.attrs
            .get("stdin")
            .map(|s| s.replace("\\n", "\n"))
            .unwrap_or_default()
    }

    pub fn deadline(&self) -> Duration {
        let secs = self.attrs.get("wait").and_then(|w| w.parse().ok());
        Duration::from_secs(secs.unwrap_or(20))
    }

    /// The commands, each with the lines that follow it.
    pub fn commands(&self) -> Vec<(String, Vec<Line>)> {
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

/// Split a terminal block's lines at its keys: (lines, the key after them).
pub fn segments(lines: &[Line]) -> Vec<(Vec<String>, Option<Key>)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::matching::without_typed;
    use crate::transcript::test_lines as lines;

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
}
