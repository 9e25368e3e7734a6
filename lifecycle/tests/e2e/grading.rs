//! Grading clients and whole classes: real programs (echo-lab's own, and
//! C fixtures in `lifecycle/tests/fixtures/grade/`, built by the class's
//! own `build` steps), the real kernel. Each fixture must fail exactly
//! the checks its mistake deserves.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use lifecycle::bins::binaries;
use lifecycle::grade;
use lifecycle::spawn::{Input, Proc};
use lifecycle::story::{Report, Verdict};
use serde_json::Value;

use crate::{TempDir, repo_root, setup};

/// The checks of `reports` that did not simply pass, by verdict word:
/// `FAIL echo`, `NOTE half-close`.
fn notable(reports: &[Report]) -> BTreeSet<String> {
    reports
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Pass))
        .map(|r| format!("{} {}", r.verdict.word(), r.name))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn texts(reports: &[Report]) -> String {
    reports.iter().map(|r| r.text(true)).collect()
}

fn client_cmd(extra: &str) -> String {
    format!(
        "{} {{host}} {{port}} {extra}",
        binaries().unwrap().client.display()
    )
}

/// echo-client in poll mode is the client UNP 6.7 asks for: every check
/// passes, the half-close seen by the kernel.
#[test]
fn client_grading_passes_echo_client_in_poll_mode() {
    setup();
    let reports = grade::client::grade(&client_cmd("--mode poll"));
    assert_eq!(notable(&reports), set(&[]), "{}", texts(&reports));
    let half = reports.iter().find(|r| r.name == "half-close").unwrap();
    assert!(
        half.story
            .steps
            .iter()
            .any(|s| s.check && s.text.contains("is FIN_WAIT2, still held by echo-client[")),
        "{}",
        half.text(false)
    );
}

/// The lockstep str_cli (echo-client's default, UNP 5.5) cannot see the
/// server's FIN while it waits on standard input: exactly that check
/// fails, naming the read() on fd 0 it is blocked in, and the half-close
/// is a finding, not a failure.
#[test]
fn client_grading_of_lockstep_fails_only_the_fin_while_idle() {
    setup();
    let reports = grade::client::grade(&client_cmd(""));
    assert_eq!(
        notable(&reports),
        set(&["FAIL server-fin-while-idle", "NOTE half-close"]),
        "{}",
        texts(&reports)
    );
    let idle = reports
        .iter()
        .find(|r| r.name == "server-fin-while-idle")
        .unwrap();
    let Verdict::Fail(f) = &idle.verdict else {
        unreachable!()
    };
    assert!(
        f.evidence.contains("blocked in read(0)") && f.evidence.contains("CLOSE_WAIT"),
        "{}",
        f.evidence
    );
}

/// A C compiler, which the fixture class's builds need.
fn have_cc() -> bool {
    std::process::Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A class folder: the fixtures copied into each student's folder, as
/// students hand them in, and a class.toml.
/// A student of a fixture class: name, build, server, client.
type Student<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn fixture_class(dir: &Path, students: &[Student<'_>]) {
    let fixtures = repo_root().join("lifecycle/tests/fixtures/grade");
    let mut manifest = String::new();
    for (name, build, server, client) in students {
        let folder = dir.join(name);
        std::fs::create_dir_all(&folder).unwrap();
        for file in ["server.c", "client.c"] {
            std::fs::copy(fixtures.join(file), folder.join(file)).unwrap();
        }
        manifest.push_str(&format!("[[student]]\nname = \"{name}\"\n"));
        for (key, value) in [("build", build), ("server", server), ("client", client)] {
            if let Some(value) = value {
                manifest.push_str(&format!("{key} = {value:?}\n"));
            }
        }
        manifest.push('\n');
    }
    std::fs::write(dir.join("class.toml"), manifest).unwrap();
}

/// Our cgroups, and every process whose working directory is in `dir`.
fn left_behind(dir: &Path) -> Vec<String> {
    let mut left: Vec<String> = ["/sys/fs/cgroup", "/sys/fs/cgroup/pids"]
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flat_map(|d| d.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("echo-lab-grade-"))
        .collect();
    for pid in echo_lab_cli::proc_stat::pids() {
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) {
            if cwd.starts_with(dir) {
                left.push(format!("pid {pid} in {}", cwd.display()));
            }
        }
    }
    left.extend(
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("echo-lab-batch-")),
    );
    left
}

/// A class of students, each with the mistake of a fixture, graded end to
/// end by the `lifecycle grade` command: the table, the exit status, the
/// JSON, and the JUnit XML read back, each student failing exactly what
/// they should. Nothing is left behind.
#[test]
fn a_fixture_class_is_graded_end_to_end() {
    setup();
    assert!(have_cc(), "the fixture class is built with cc");
    let bins = binaries().unwrap();
    let dir = TempDir(std::env::temp_dir().join(format!("echo-lab-class-{}", std::process::id())));
    let echo_server = format!("{} --port {{port}}", bins.server.display());
    let poll_client = client_cmd("--mode poll");
    let lockstep_client = client_cmd("");
    let root = nix::unistd::geteuid().is_root();
    let mut students = vec![
        (
            "alice",
            None,
            Some(echo_server.as_str()),
            Some(poll_client.as_str()),
        ),
        (
            "bob",
            Some("cc -o server server.c && cc -o client client.c"),
            Some("./server {port}"),
            Some("./client {host} {port}"),
        ),
        (
            "carol",
            Some("cc -DREAP_NONE -o server server.c && cc -DLOCKSTEP -o client client.c"),
            Some("./server {port}"),
            Some("./client {host} {port}"),
        ),
        (
            "dave",
            Some("cc -DREAP_ONCE -o server server.c && cc -DCLOSE_AT_EOF -o client client.c"),
            Some("./server {port}"),
            Some("./client {host} {port}"),
        ),
        (
            "erin",
            Some("cc -DNEVER_LISTENS -o server server.c"),
            Some("./server {port}"),
            None,
        ),
        (
            "frank",
            Some("cc -DIGNORES_SIGTERM -o server server.c"),
            Some("./server {port}"),
            Some(lockstep_client.as_str()),
        ),
        (
            "hana",
            Some("cc -o client client.c -DNO_SUCH_MACRO && exit 3"),
            None,
            Some("./client {host} {port}"),
        ),
    ];
    if root {
        // Only a pids cgroup bounds a fork bomb run by root.
        students.push((
            "gina",
            Some("cc -DFORK_BOMB -o server server.c"),
            Some("./server {port}"),
            None,
        ));
    }
    fixture_class(&dir.0, &students);
    let junit = dir.0.join("grades.xml");
    let markdown = dir.0.join("feedback.md");
    let bin = Path::new(env!("CARGO_BIN_EXE_lifecycle"));
    let mut command = std::process::Command::new(bin);
    command
        .args(["grade", "class.toml", "--json", "--junit"])
        .arg(&junit)
        .arg("--markdown")
        .arg(&markdown)
        .current_dir(&dir.0);
    let mut run = Proc::spawn_command(command, Input::Null).unwrap();
    let status = run.wait_exit(Duration::from_secs(300)).unwrap();
    let stdout = run.stdout.text();
    assert_eq!(status.code(), Some(1), "{stdout}\n{}", run.stderr.text());
    let doc: Value = serde_json::from_str(&stdout).unwrap();

    // What each student should fail (and note), per program.
    let want: Vec<(&str, &[&str])> = vec![
        ("alice", &[]),
        ("bob", &[]),
        (
            "carol",
            &[
                "server FAIL zombies",
                "client FAIL server-fin-while-idle",
                "client NOTE half-close",
            ],
        ),
        (
            "dave",
            &[
                "server FAIL zombies",
                "client FAIL echo",
                "client FAIL batch",
                "client FAIL half-close",
            ],
        ),
        (
            "erin",
            &[
                "server FAIL start",
                "server NOT RUN echo",
                "server NOT RUN many-clients",
                "server NOT RUN zombies",
                "server NOT RUN reset",
                "server NOT RUN alive",
                "server NOT RUN sigterm",
            ],
        ),
        (
            "frank",
            &[
                "server FAIL sigterm",
                "client FAIL server-fin-while-idle",
                "client NOTE half-close",
            ],
        ),
        (
            "hana",
            &[
                "build FAIL build",
                "client NOT RUN echo",
                "client NOT RUN batch",
                "client NOT RUN half-close",
                "client NOT RUN server-fin-while-idle",
                "client NOT RUN server-rst",
                "client NOT RUN refused",
                "client NOT RUN exit",
            ],
        ),
    ];
    let by_name = |name: &str| -> &Value {
        doc["students"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {doc:#}"))
    };
    let word = |v: &str| match v {
        "fail" => "FAIL",
        "note" => "NOTE",
        "not-run" => "NOT RUN",
        "skipped" => "SKIPPED",
        other => panic!("{other}"),
    };
    for (name, expected) in &want {
        let student = by_name(name);
        let mut got = BTreeSet::new();
        for program in ["build", "server", "client"] {
            let reports: Vec<&Value> = match &student[program] {
                Value::Array(a) => a.iter().collect(),
                Value::Null => Vec::new(),
                one => vec![one],
            };
            for r in reports {
                if r["verdict"] != "pass" {
                    got.insert(format!(
                        "{program} {} {}",
                        word(r["verdict"].as_str().unwrap()),
                        r["name"].as_str().unwrap()
                    ));
                }
            }
        }
        assert_eq!(got, set(expected), "{name}: {:#}", student);
        let passed = expected.iter().all(|e| e.contains("NOTE"));
        assert_eq!(student["passed"], passed, "{name}");
    }
    if root {
        let gina = by_name("gina");
        assert!(
            gina["stopped"]
                .as_str()
                .is_some_and(|s| s.contains("forked without bound")),
            "{gina:#}"
        );
        assert_eq!(gina["passed"], false);
    }

    // The JUnit XML, read back: a testsuite per student, a testcase per
    // check, a failure for each check that failed.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(report.test_suites.len(), students.len());
    for (name, expected) in &want {
        let suite = report
            .test_suites
            .iter()
            .find(|s| s.name.as_str() == *name)
            .unwrap();
        let failed: BTreeSet<String> = suite
            .test_cases
            .iter()
            .filter(|c| !matches!(c.status, quick_junit::TestCaseStatus::Success { .. }))
            .map(|c| c.name.as_str().to_string())
            .collect();
        let expected_failed: BTreeSet<String> = expected
            .iter()
            .filter(|e| !e.contains("NOTE"))
            .map(|e| {
                let (program, rest) = e.split_once(' ').unwrap();
                let check = rest
                    .trim_start_matches("FAIL ")
                    .trim_start_matches("NOT RUN ");
                if program == check {
                    check.to_string()
                } else {
                    format!("{program} {check}")
                }
            })
            .collect();
        assert_eq!(failed, expected_failed, "{name}");
    }
    let dave = report
        .test_suites
        .iter()
        .find(|s| s.name.as_str() == "dave")
        .unwrap();
    let batch = dave
        .test_cases
        .iter()
        .find(|c| c.name.as_str() == "client batch")
        .unwrap();
    let quick_junit::TestCaseStatus::NonSuccess { description, .. } = &batch.status else {
        panic!("{batch:?}");
    };
    assert!(
        description
            .as_ref()
            .is_some_and(|d| d.as_str().contains("never came back")),
        "{description:?}"
    );
    let feedback = std::fs::read_to_string(&markdown).unwrap();
    assert!(feedback.contains("## carol"), "{feedback}");
    assert!(feedback.contains("### server zombies: FAIL"), "{feedback}");

    // The last processes are reaped a moment after the command exits.
    let nothing = lifecycle::wait::within(Duration::from_secs(5), || {
        left_behind(&dir.0).is_empty().then_some(())
    });
    assert!(nothing.is_some(), "left behind: {:?}", left_behind(&dir.0));
}

/// The table: one row per student, a column per check, the marks.
#[test]
fn the_class_table_marks_each_check() {
    setup();
    let dir = TempDir(std::env::temp_dir().join(format!("echo-lab-table-{}", std::process::id())));
    let server = format!("{} --port {{port}}", binaries().unwrap().server.display());
    let reap_none = format!("{server} --reap none");
    fixture_class(
        &dir.0,
        &[
            ("amy", None, Some(server.as_str()), None),
            ("ben", None, Some(reap_none.as_str()), None),
        ],
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_lifecycle"));
    let mut command = std::process::Command::new(bin);
    command
        .args(["grade", "-j", "2", "--verbose"])
        .current_dir(&dir.0);
    let mut run = Proc::spawn_command(command, Input::Null).unwrap();
    let status = run.wait_exit(Duration::from_secs(120)).unwrap();
    let out = run.stdout.text();
    assert_eq!(status.code(), Some(1), "{out}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}: {out}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("amy"), ["ok"; 7], "{out}");
    assert_eq!(
        row("ben"),
        ["ok", "ok", "ok", "FAIL", "ok", "ok", "ok"],
        "{out}"
    );
    assert!(out.contains("1 of 2 students passed every check"), "{out}");
    // --verbose: the reason, under the student.
    assert!(out.contains("  server zombies FAIL"), "{out}");
    assert!(out.contains("left in state Z"), "{out}");
}

/// A bad manifest is one line naming the entry and what is wrong, exit
/// status 2; `--init` writes an example that is itself a valid manifest,
/// and will not overwrite it.
#[test]
fn a_bad_manifest_is_one_line_and_exit_status_2() {
    setup();
    let dir =
        TempDir(std::env::temp_dir().join(format!("echo-lab-manifest-{}", std::process::id())));
    std::fs::create_dir_all(dir.0.join("alice")).unwrap();
    std::fs::create_dir_all(dir.0.join("bob")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_lifecycle"));
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(bin);
        command.args(args).current_dir(&dir.0);
        let mut p = Proc::spawn_command(command, Input::Null).unwrap();
        let status = p.wait_exit(Duration::from_secs(30)).unwrap();
        (status.code(), p.stdout.text(), p.stderr.text())
    };
    let cases: [(&str, &str); 6] = [
        (
            "[[student]]\nname = \"alice\"\nserver = \"./s 6666\"\n",
            "student \"alice\": `server` has no {port}",
        ),
        (
            "[[student]]\nname = \"alice\"\nserver = \"./s {port}\"\n[[student]]\nname = \"alice\"\nclient = \"./c {port}\"\n",
            "student \"alice\" appears twice",
        ),
        (
            "[[student]]\nname = \"alice\"\nsever = \"./s {port}\"\n",
            "line 3: unknown field `sever`",
        ),
        ("[[student]]\nname = \"alice\nserver = 1\n", "line 2:"),
        (
            "[[student]]\nname = \"carl\"\ndir = \"carl\"\nserver = \"./s {port}\"\n",
            "student \"carl\": no folder",
        ),
        (
            "[[student]]\nname = \"bob\"\n",
            "student \"bob\": neither `server` nor `client`",
        ),
    ];
    for (manifest, expected) in cases {
        std::fs::write(dir.0.join("bad.toml"), manifest).unwrap();
        let (code, _, stderr) = run(&["grade", "bad.toml"]);
        assert_eq!(code, Some(2), "{manifest}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{manifest}: {stderr}");
        assert!(
            stderr.starts_with("lifecycle: bad.toml: ") && stderr.contains(expected),
            "{manifest}: {stderr}"
        );
    }
    let (code, _, stderr) = run(&["grade", "missing.toml"]);
    assert_eq!((code, stderr.lines().count()), (Some(2), 1), "{stderr}");

    let (code, stdout, _) = run(&["grade", "--init"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("wrote class.toml"), "{stdout}");
    let subs = grade::class::load(&dir.0.join("class.toml")).unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].name, "alice");
    assert_eq!(subs[0].dir, dir.0.join("alice"));
    let (code, _, stderr) = run(&["grade", "--init"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not overwritten"), "{stderr}");
    let (code, _, stderr) = run(&["grade", "class.toml", "--student", "zoe"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no student \"zoe\""), "{stderr}");

    // The folder form: the folder is the student.
    std::fs::write(
        dir.0.join("alice/submission.toml"),
        "server = \"./s {port}\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.0.join("bob/submission.toml"),
        "client = \"./c {port}\"\n",
    )
    .unwrap();
    std::fs::remove_file(dir.0.join("class.toml")).unwrap();
    std::fs::remove_file(dir.0.join("bad.toml")).unwrap();
    let subs = grade::class::load(&dir.0).unwrap();
    let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(subs[1].server.is_none() && subs[1].client.is_some());
}

/// A program that floods its output loses its pipe at the harness's
/// limit: the harness stays bounded, and says so.
#[test]
fn a_flood_of_output_is_cut_off_at_the_limit() {
    setup();
    let mut proc = Proc::spawn(Path::new("/usr/bin/yes"), ["flood"], Input::Null).unwrap();
    let status = proc.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(proc.stdout.flooded());
    assert_eq!(proc.stdout.bytes().len(), lifecycle::spawn::Capture::LIMIT);
    // Its next write after we closed the pipe raised SIGPIPE.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status}");
}
