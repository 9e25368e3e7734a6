//! A class's results, for the teacher (a table), for scripts (JSON), for
//! CI systems and autograders (JUnit XML, through quick-junit: one
//! testsuite per student, one testcase per check) and for the students
//! (Markdown to hand back).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::class::{Graded, Results};
use super::{client, server};
use crate::story::{Report, Verdict};

/// A check's name with its program: `server zombies`; the build is just
/// `build`.
pub fn label(program: &str, r: &Report) -> String {
    if program == r.name {
        r.name.clone()
    } else {
        format!("{program} {}", r.name)
    }
}

/// A check's mark in the table.
fn mark(report: Option<&Report>) -> &'static str {
    match report.map(|r| &r.verdict) {
        None => "",
        Some(Verdict::Pass) => "ok",
        Some(Verdict::Fail(_)) => "FAIL",
        Some(Verdict::Skipped(_)) => "skip",
        Some(Verdict::Finding(_)) => "note",
        Some(Verdict::NotRun(_)) => "--",
    }
}

/// Short column headings, and the names they stand for.
const SERVER_HEADS: [&str; 7] = ["start", "echo", "many", "zomb", "reset", "alive", "term"];
const CLIENT_HEADS: [&str; 7] = ["echo", "batch", "half", "idle", "rst", "refus", "exit"];

/// One table: a row per student who handed in this program.
fn table(out: &mut String, results: &Results, program: &str) {
    let (heads, names): (&[&str], Vec<&str>) = match program {
        "server" => (&SERVER_HEADS, server::check_names()),
        _ => (&CLIENT_HEADS, client::check_names()),
    };
    let rows: Vec<&Graded> = results
        .students
        .iter()
        .filter(|g| {
            !(if program == "server" {
                &g.server
            } else {
                &g.client
            })
            .is_empty()
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let width = rows
        .iter()
        .map(|g| g.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(program.len())
        + 2;
    let _ = write!(out, "{program:<width$}");
    for head in heads {
        let _ = write!(out, "{head:<6}");
    }
    let line = out.trim_end_matches(' ').len();
    out.truncate(line);
    out.push('\n');
    for g in rows {
        let reports = if program == "server" {
            &g.server
        } else {
            &g.client
        };
        let _ = write!(out, "{:<width$}", g.name);
        for name in &names {
            let m = mark(reports.iter().find(|r| r.name == *name));
            let _ = write!(out, "{m:<6}");
        }
        let line = out.trim_end_matches(' ').len();
        out.truncate(line);
        out.push('\n');
    }
    let _ = writeln!(out, "({})", names.join(", "));
}

/// The summary: both tables, builds that failed, submissions stopped, and
/// the count.
pub fn summary(results: &Results, class: &str, jobs: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "graded {} students from {class} in {:.1} s, {jobs} at a time; {}",
        results.students.len(),
        results.wall.as_secs_f64(),
        results.isolation
    );
    out.push('\n');
    for program in ["server", "client"] {
        let before = out.len();
        table(&mut out, results, program);
        if out.len() > before {
            out.push('\n');
        }
    }
    for g in &results.students {
        if let Some(build) = g.build.as_ref().filter(|b| !b.passed()) {
            let _ = writeln!(out, "build failed: {}: {}", g.name, build_error(build));
        }
        if let Some(why) = &g.halted {
            let _ = writeln!(out, "stopped: {}: {why}", g.name);
        }
    }
    let passed = results.students.iter().filter(|g| g.passed()).count();
    let failed_checks: usize = results
        .students
        .iter()
        .map(|g| g.reports().filter(|(_, r)| !r.passed()).count())
        .sum();
    let _ = writeln!(
        out,
        "{passed} of {} students passed every check; {failed_checks} checks did not pass. \
         Reasons: --verbose, or --student NAME",
        results.students.len()
    );
    out
}

/// A failed build's first line of complaint (the compiler's), or its
/// status.
fn build_error(build: &Report) -> String {
    match &build.verdict {
        Verdict::Fail(f) => f
            .evidence
            .lines()
            .skip(1)
            .find(|l| !l.trim().is_empty())
            .or_else(|| f.evidence.lines().next())
            .unwrap_or("")
            .trim_end_matches(':')
            .to_string(),
        _ => first_line(build),
    }
}

/// The reason a check did not simply pass, on one line.
fn first_line(r: &Report) -> String {
    match &r.verdict {
        Verdict::Pass => "passed".to_string(),
        Verdict::Fail(f) => format!(
            "expected {}; {}",
            f.expectation,
            f.evidence.lines().next().unwrap_or("")
        ),
        Verdict::Skipped(why) | Verdict::Finding(why) | Verdict::NotRun(why) => why.clone(),
    }
}

/// `--verbose`: every check that did not simply pass, with its reason.
pub fn reasons(results: &Results) -> String {
    let mut out = String::new();
    for g in &results.students {
        let notable: Vec<(&str, &Report)> = g
            .reports()
            .filter(|(_, r)| !matches!(r.verdict, Verdict::Pass))
            .collect();
        if notable.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{} ({})", g.name, g.dir.display());
        for (program, r) in notable {
            let _ = writeln!(out, "  {} {}", label(program, r), r.verdict.word());
            match &r.verdict {
                Verdict::Fail(f) => {
                    let _ = writeln!(out, "    expected: {}", f.expectation);
                    for line in f.evidence.lines().take(12) {
                        let _ = writeln!(out, "    | {line}");
                    }
                }
                Verdict::Skipped(why) | Verdict::Finding(why) | Verdict::NotRun(why) => {
                    let _ = writeln!(out, "    {why}");
                }
                Verdict::Pass => {}
            }
        }
    }
    out
}

/// `--student NAME`: that student's reports in full, timelines included.
pub fn student(g: &Graded, verbose: bool) -> String {
    let mut out = format!("{} ({})\n", g.name, g.dir.display());
    for (program, r) in g.reports() {
        let _ = write!(out, "[{program}] {}", r.text(verbose));
    }
    out
}

/// `--json`: everything, as one document.
pub fn json(results: &Results, class: &str, verbose: bool) -> Value {
    let students: Vec<Value> = results
        .students
        .iter()
        .map(|g| {
            json!({
                "name": g.name,
                "dir": g.dir.display().to_string(),
                "passed": g.passed(),
                "wall_ms": g.wall.as_millis() as u64,
                "stopped": g.halted,
                "build": g.build.as_ref().map(|r| r.json(verbose)),
                "server": g.server.iter().map(|r| r.json(verbose)).collect::<Vec<_>>(),
                "client": g.client.iter().map(|r| r.json(verbose)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "class": class,
        "isolation": results.isolation,
        "wall_ms": results.wall.as_millis() as u64,
        "passed": results.students.iter().filter(|g| g.passed()).count(),
        "failed": results.students.iter().filter(|g| !g.passed()).count(),
        "students": students,
    })
}

/// `--junit FILE`: JUnit XML, as GitLab, Jenkins, GitHub's test reporters
/// and autograders read it.
pub fn junit(results: &Results) -> Result<String, quick_junit::SerializeError> {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
    let mut report = quick_junit::Report::new("echo-lab grade");
    report.set_time(results.wall);
    for g in &results.students {
        let mut suite = TestSuite::new(g.name.as_str());
        suite.set_time(g.wall);
        for (program, r) in g.reports() {
            let status = match &r.verdict {
                Verdict::Pass => TestCaseStatus::success(),
                Verdict::Finding(_) => TestCaseStatus::success(),
                Verdict::Skipped(why) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(why.as_str());
                    s
                }
                Verdict::Fail(f) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(f.expectation.as_str());
                    s.set_type("check");
                    s.set_description(f.evidence.as_str());
                    s
                }
                Verdict::NotRun(why) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                    s.set_message(format!("not run: {why}"));
                    s.set_type("not-run");
                    s
                }
            };
            let mut case = TestCase::new(label(program, r), status);
            case.set_classname(format!("{}.{program}", g.name));
            case.set_time(r.wall);
            if let Verdict::Finding(note) = &r.verdict {
                case.set_system_out(note.as_str());
            }
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string()
}

/// `--markdown FILE`: feedback to hand back, a section per student.
pub fn markdown(results: &Results, class: &str) -> String {
    let mut out = String::from("# echo-lab grades\n\n");
    let _ = writeln!(
        out,
        "{} students from `{class}`; {}.\n",
        results.students.len(),
        results.isolation
    );
    out.push_str("| student | passed | did not pass |\n| --- | --- | --- |\n");
    for g in &results.students {
        let all = g.reports().count();
        let bad: Vec<String> = g
            .reports()
            .filter(|(_, r)| !r.passed())
            .map(|(p, r)| label(p, r))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} of {all} | {} |",
            g.name,
            all - bad.len(),
            bad.join(", ")
        );
    }
    for g in &results.students {
        let _ = writeln!(out, "\n## {}\n", g.name);
        out.push_str("| check | result | what it asks |\n| --- | --- | --- |\n");
        for (program, r) in g.reports() {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                label(program, r),
                r.verdict.word(),
                r.about.replace('|', "\\|")
            );
        }
        for (program, r) in g.reports() {
            match &r.verdict {
                Verdict::Fail(f) => {
                    let _ = writeln!(
                        out,
                        "\n### {}: FAIL\n\nExpected: {}.\n\n```text\n{}\n```",
                        label(program, r),
                        f.expectation,
                        f.evidence.trim_end()
                    );
                }
                Verdict::Finding(note) => {
                    let _ = writeln!(out, "\n### {}: note\n\n{note}", label(program, r));
                }
                Verdict::NotRun(why) => {
                    let _ = writeln!(out, "\n### {}: not run\n\n{why}", label(program, r));
                }
                Verdict::Pass | Verdict::Skipped(_) => {}
            }
        }
    }
    out
}
