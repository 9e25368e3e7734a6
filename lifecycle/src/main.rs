//! `lifecycle`: run the lessons as checked scenarios, grade any echo
//! server or client, or grade a whole class.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use echo_lab_cli::{at_least, duration};
use lifecycle::grade::{self, class, report};
use lifecycle::procfs;
use lifecycle::scenarios::{self, Scenario};
use lifecycle::story::Report;
use serde_json::json;

const EXAMPLES: &str = "\
Examples:
  lifecycle                                  run every scenario
  lifecycle --scenario handshake --verbose   one scenario, with the programs' raw output
  lifecycle --list
  lifecycle --json > report.json
  lifecycle --server-cmd './tcpserv04 {port}'
  lifecycle --server-cmd 'socat TCP-LISTEN:{port},fork,reuseaddr EXEC:cat'
  lifecycle --client-cmd './tcpcli04 {host} {port}'
  lifecycle --client-cmd 'echo-client {host} {port} --mode poll'
  lifecycle grade class.toml --junit grades.xml   a whole class (see lifecycle grade --help)

Exit status: 0 if every scenario (or check) passed, 1 if any failed,
2 for a usage error.";

const GRADE_EXAMPLES: &str = "\
Examples:
  lifecycle grade --init                      write an example class.toml
  lifecycle grade class.toml                  grade every student, a table
  lifecycle grade class.toml --verbose        the reason of every check that did not pass
  lifecycle grade class.toml --student alice  grade alice alone, every step shown
  lifecycle grade submissions/ -j 4           a folder of folders, each with a submission.toml
  lifecycle grade class.toml --junit grades.xml --markdown feedback.md --json > grades.json

Each submission is graded in a network namespace of its own (as root;
otherwise on free loopback ports), its processes in a pids cgroup that is
killed at the end, under a time limit.

Exit status: 0 if every check of every student passed, 1 if any did not,
2 for a usage error or a bad manifest (one line naming the entry).";

/// lifecycle: drive echo-server, echo-client and observer through every
/// lesson and check each step against the kernel's account.
#[derive(Debug, Parser)]
#[command(
    name = "lifecycle",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Run only this scenario (repeatable).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// A machine-readable report (one JSON document) instead of text.
    #[arg(long)]
    json: bool,
    /// Also print every program's raw stdout and stderr.
    #[arg(long)]
    verbose: bool,
    /// Grade any echo server: CMD is run by /bin/sh with {port} replaced by
    /// a free port.
    #[arg(long, value_name = "CMD")]
    server_cmd: Option<String>,
    /// Grade any str_cli client: CMD is run by /bin/sh with {host} and
    /// {port} replaced by the server's address; it reads standard input
    /// and writes the echo to standard output.
    #[arg(long, value_name = "CMD")]
    client_cmd: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Grade a whole class: every student's server and client, each
    /// isolated; a table, JSON, JUnit XML, Markdown.
    Grade(GradeArgs),
}

#[derive(Debug, Args)]
#[command(after_help = GRADE_EXAMPLES)]
struct GradeArgs {
    /// The class: a manifest (class.toml), or a folder with one folder
    /// per student, each holding a submission.toml.
    #[arg(value_name = "CLASS", default_value = "class.toml")]
    class: PathBuf,
    /// Write an example manifest to CLASS and exit.
    #[arg(long)]
    init: bool,
    /// Grade N submissions at once [default: the number of cores].
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = at_least::<usize>(1))]
    jobs: Option<usize>,
    /// Each submission's time limit, its build included.
    #[arg(long, default_value = "180s", value_parser = duration)]
    timeout: Duration,
    /// Grade only this student, and show every step of every check.
    #[arg(long, value_name = "NAME")]
    student: Option<String>,
    /// After the table, the reason of every check that did not pass.
    #[arg(long)]
    verbose: bool,
    /// One JSON document on standard output instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write JUnit XML (a testsuite per student, a testcase per check).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write Markdown feedback, a section per student.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli: Cli = match echo_lab_cli::parse("lifecycle") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // Orphans of a server we kill come to us, not to PID 1 (which reaps
    // late): we count and reap only our own descendants.
    procfs::become_subreaper();
    lifecycle::interrupt::cleanup_on_signal();

    if let Some(Command::Grade(args)) = &cli.command {
        return grade_class(args);
    }
    if cli.list {
        for s in scenarios::all() {
            let root = s
                .needs_root
                .map_or(String::new(), |why| format!(" (root: {why})"));
            println!("{:<20} {}{root}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    if cli.server_cmd.is_some() || cli.client_cmd.is_some() {
        return grade_commands(&cli);
    }
    let chosen: Vec<Scenario> = if cli.scenarios.is_empty() {
        scenarios::all()
    } else {
        let mut chosen = Vec::new();
        for name in &cli.scenarios {
            match scenarios::find(name) {
                Some(s) => chosen.push(s),
                None => {
                    let names: Vec<&str> = scenarios::all().iter().map(|s| s.name).collect();
                    eprintln!(
                        "lifecycle: no scenario `{name}` (there are: {})",
                        names.join(", ")
                    );
                    return ExitCode::from(2);
                }
            }
        }
        chosen
    };
    if let Err(code) = programs_ready() {
        return code;
    }
    let mut reports = Vec::new();
    for scenario in &chosen {
        let report = scenarios::run(scenario);
        if lifecycle::interrupt::interrupted() {
            // Its programs were stopped under it: the verdict means nothing.
            lifecycle::interrupt::wait_for_cleanup();
        }
        if !cli.json {
            print!("{}", report.text(cli.verbose));
            println!();
            let _ = std::io::stdout().flush();
        }
        reports.push(report);
    }
    finish(&reports, &cli)
}

/// The programs first: a first run builds them here, saying so, not
/// silently inside the first scenario's timeline.
fn programs_ready() -> Result<(), ExitCode> {
    lifecycle::bins::binaries_said(|what| eprintln!("lifecycle: {what}"))
        .map(|_| ())
        .map_err(|e| {
            eprintln!("lifecycle: {e:#}");
            ExitCode::FAILURE
        })
}

/// `--server-cmd` and/or `--client-cmd`: the server's checks, then the
/// client's.
fn grade_commands(cli: &Cli) -> ExitCode {
    for (flag, cmd) in [
        ("--server-cmd", &cli.server_cmd),
        ("--client-cmd", &cli.client_cmd),
    ] {
        if cmd.as_ref().is_some_and(|c| !c.contains("{port}")) {
            eprintln!("lifecycle: {flag} needs {{port}} where the port goes (see --help)");
            return ExitCode::from(2);
        }
    }
    if cli.client_cmd.is_some() {
        if let Err(code) = programs_ready() {
            return code;
        }
    }
    // The orphans of a student's program are ours to reap (subreaper).
    lifecycle::spawn::reap_adopted_orphans();
    let mut reports = Vec::new();
    let both = cli.server_cmd.is_some() && cli.client_cmd.is_some();
    if let Some(cmd) = &cli.server_cmd {
        for mut r in grade::grade(cmd) {
            if both {
                r.name = format!("server {}", r.name);
            }
            reports.push(r);
        }
    }
    if let Some(cmd) = &cli.client_cmd {
        for mut r in grade::client::grade(cmd) {
            if both {
                r.name = format!("client {}", r.name);
            }
            reports.push(r);
        }
    }
    if lifecycle::interrupt::interrupted() {
        lifecycle::interrupt::wait_for_cleanup();
    }
    finish(&reports, cli)
}

fn finish(reports: &[Report], cli: &Cli) -> ExitCode {
    let failed = reports.iter().filter(|r| !r.passed()).count();
    let skipped = reports
        .iter()
        .filter(|r| matches!(r.verdict, lifecycle::story::Verdict::Skipped(_)))
        .count();
    let passed = reports.len() - failed - skipped;
    if cli.json {
        let doc = json!({
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "scenarios": reports.iter().map(|r| r.json(cli.verbose)).collect::<Vec<_>>(),
        });
        println!("{doc:#}");
    } else {
        if cli.server_cmd.is_some() || cli.client_cmd.is_some() {
            for r in reports {
                print!("{}", r.text(cli.verbose));
            }
        }
        println!("{passed} passed, {failed} failed, {skipped} skipped");
        let width = reports
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(20);
        for r in reports {
            println!(
                "  {:<width$} {:>6.2} s  {}",
                r.name,
                r.wall.as_secs_f64(),
                r.verdict.word()
            );
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `lifecycle grade`.
fn grade_class(args: &GradeArgs) -> ExitCode {
    if args.init {
        let path = if args.class.is_dir() {
            args.class.join(class::EXAMPLE_NAME)
        } else {
            args.class.clone()
        };
        if path.exists() {
            eprintln!(
                "lifecycle: {} exists already; not overwritten",
                path.display()
            );
            return ExitCode::from(2);
        }
        if let Err(e) = std::fs::write(&path, class::EXAMPLE) {
            eprintln!("lifecycle: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!(
            "wrote {}: edit it, then run lifecycle grade {}",
            path.display(),
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    let mut subs = match class::load(&args.class) {
        Ok(subs) => subs,
        Err(e) => {
            eprintln!("lifecycle: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(name) = &args.student {
        subs.retain(|s| &s.name == name);
        if subs.is_empty() {
            eprintln!(
                "lifecycle: no student \"{name}\" in {}",
                args.class.display()
            );
            return ExitCode::from(2);
        }
    }
    if let Err(code) = programs_ready() {
        return code;
    }
    lifecycle::spawn::reap_adopted_orphans();
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let options = class::Options {
        jobs,
        timeout: args.timeout,
    };
    if !args.json {
        eprintln!(
            "lifecycle: grading {} submissions, {jobs} at a time ...",
            subs.len()
        );
    }
    let results = class::grade(&subs, &options);
    if lifecycle::interrupt::interrupted() {
        lifecycle::interrupt::wait_for_cleanup();
    }
    let shown = args.class.display().to_string();
    if let Some(path) = &args.junit {
        let written = report::junit(&results)
            .map_err(|e| e.to_string())
            .and_then(|xml| std::fs::write(path, xml).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("lifecycle: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &args.markdown {
        if let Err(e) = std::fs::write(path, report::markdown(&results, &shown)) {
            eprintln!("lifecycle: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if args.json {
        println!("{:#}", report::json(&results, &shown, args.verbose));
    } else if args.student.is_some() {
        for g in &results.students {
            print!("{}", report::student(g, args.verbose));
        }
        print!("{}", report::summary(&results, &shown, jobs));
    } else {
        print!("{}", report::summary(&results, &shown, jobs));
        if args.verbose {
            println!();
            print!("{}", report::reasons(&results));
        }
    }
    if results.students.iter().all(|g| g.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
