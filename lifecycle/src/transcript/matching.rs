//! Matching printed lines against a lesson's: the placeholders (`{n}`,
//! `{t}`, `{*}`, `{name}`), `...` for any lines, and, when a block does
//! not match, the line that was missed and the printed line most like it.

use std::collections::HashMap;

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
pub(super) fn first_miss(expected: &[String], actual: &[String], vars: &Vars) -> String {
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
pub(super) fn substitute(cmd: &str, vars: &Vars) -> String {
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
pub(super) fn without_typed(expected: &[String], typed: &str) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::test_lines as lines;
    use std::path::Path;

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
}
