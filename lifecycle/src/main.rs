//! `lifecycle`: run the lessons as checked scenarios, or grade any echo server.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use lifecycle::scenarios::{self, Scenario};
use lifecycle::story::Report;
use lifecycle::{grade, procfs};
use serde_json::json;

const EXAMPLES: &str = "\
Examples:
  lifecycle                                  run every scenario
  lifecycle --scenario handshake --verbose   one scenario, with the programs' raw output
  lifecycle --list
  lifecycle --json > report.json
  lifecycle --server-cmd './tcpserv04 {port}'
  lifecycle --server-cmd 'socat TCP-LISTEN:{port},fork,reuseaddr EXEC:cat'

Exit status: 0 if every scenario (or check) passed, 1 if any failed,
2 for a usage error.";

/// lifecycle: drive echo-server, echo-client and observer through every
/// lesson and check each step against the kernel's account.
#[derive(Debug, Parser)]
#[command(name = "lifecycle", version, after_help = EXAMPLES)]
struct Cli {
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

    if cli.list {
        for s in scenarios::all() {
            let root = s
                .needs_root
                .map_or(String::new(), |why| format!(" (root: {why})"));
            println!("{:<20} {}{root}", s.name, s.about);
        }
        return ExitCode::SUCCESS;
    }
    if let Some(cmd) = &cli.server_cmd {
        if !cmd.contains("{port}") {
            eprintln!("lifecycle: --server-cmd needs {{port}} where the port goes (see --help)");
            return ExitCode::from(2);
        }
        let reports = grade::grade(cmd);
        if lifecycle::interrupt::interrupted() {
            lifecycle::interrupt::wait_for_cleanup();
        }
        return finish(&reports, &cli);
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
    // The programs first: a first run builds them here, saying so, not
    // silently inside the first scenario's timeline.
    if let Err(e) = lifecycle::bins::binaries_said(|what| eprintln!("lifecycle: {what}")) {
        eprintln!("lifecycle: {e:#}");
        return ExitCode::FAILURE;
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
        if cli.server_cmd.is_some() {
            for r in reports {
                print!("{}", r.text(cli.verbose));
            }
        }
        println!("{passed} passed, {failed} failed, {skipped} skipped");
        for r in reports {
            println!(
                "  {:<20} {:>6.2} s  {}",
                r.name,
                r.wall.as_secs_f64(),
                verdict_word(r)
            );
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn verdict_word(r: &Report) -> &'static str {
    match r.verdict {
        lifecycle::story::Verdict::Pass => "PASS",
        lifecycle::story::Verdict::Fail(_) => "FAIL",
        lifecycle::story::Verdict::Skipped(_) => "SKIPPED",
    }
}
