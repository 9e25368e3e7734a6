//! Every scenario through the harness, and the grading of other servers.

use lifecycle::bins::binaries;
use lifecycle::grade;
use lifecycle::scenarios;
use lifecycle::spawn::{Input, Proc};
use lifecycle::story::Verdict;

use crate::setup;

fn run(name: &str) {
    setup();
    let scenario = scenarios::find(name).unwrap_or_else(|| panic!("no scenario {name}"));
    // A root-only scenario is skipped by the harness without root; its
    // test is marked #[ignore] and, asked for anyway, must not pass.
    if let Some(why) = scenario.needs_root {
        crate::needs_root(why);
    }
    let report = scenarios::run(&scenario);
    assert!(report.passed(), "{}", report.text(true));
}

macro_rules! scenario_tests {
    ($($(#[$attr:meta])* $test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            $(#[$attr])*
            fn $test() {
                run($name);
            }
        )*
        /// Adding a scenario without its test fails here.
        #[test]
        fn every_scenario_has_a_test() {
            let tested = [$($name),*];
            for s in scenarios::all() {
                assert!(tested.contains(&s.name), "scenario {} has no test", s.name);
            }
        }
    };
}

scenario_tests! {
    scenario_handshake => "handshake",
    scenario_echo => "echo",
    scenario_client_closes_first => "client-closes-first",
    scenario_server_closes_first => "server-closes-first",
    scenario_half_close => "half-close",
    scenario_reset => "reset",
    scenario_five_clients => "five-clients",
    scenario_syn_sent => "syn-sent",
    scenario_syn_recv => "syn-recv",
    scenario_reuseaddr => "reuseaddr",
    scenario_server_killed => "server-killed",
    scenario_thread_mode => "thread-mode",
    #[ignore = "needs root: the tracepoint is read through tracefs"]
    scenario_exact_handshake => "exact-handshake",
    #[ignore = "needs root: the lab creates network namespaces and TUN devices"]
    scenario_slow_wire => "slow-wire",
    #[ignore = "needs root: the lab creates network namespaces and TUN devices"]
    scenario_lost_syn => "lost-syn",
}

fn server_cmd(extra: &str) -> String {
    format!(
        "{} --port {{port}} {extra}",
        binaries().unwrap().server.display()
    )
}

/// The grader must be able to fail: echo-server --reap none leaves
/// zombies, and the zombie check says so, with the evidence.
#[test]
fn grading_catches_the_zombies_of_reap_none() {
    setup();
    let reports = grade::grade(&server_cmd("--reap none"));
    let zombies = reports.iter().find(|r| r.name == "zombies").unwrap();
    let Verdict::Fail(failure) = &zombies.verdict else {
        panic!("the zombie check passed:\n{}", zombies.text(true));
    };
    assert!(
        failure
            .evidence
            .contains("left in state Z after 5 simultaneous closes"),
        "{}",
        failure.evidence
    );
    for r in reports.iter().filter(|r| r.name != "zombies") {
        assert!(r.passed(), "{}", r.text(true));
    }
}

/// A server that serves in its own process has no child to reap: the
/// zombie check says so (skipped, with the reason) instead of passing on
/// having seen nothing.
#[test]
fn grading_a_threaded_server_skips_the_zombie_check_and_says_why() {
    setup();
    let reports = grade::grade(&server_cmd("--mode thread"));
    let zombies = reports.iter().find(|r| r.name == "zombies").unwrap();
    let Verdict::Skipped(why) = &zombies.verdict else {
        panic!("not skipped:\n{}", zombies.text(true));
    };
    assert!(why.contains("serves in its own process"), "{why}");
    for r in reports.iter().filter(|r| r.name != "zombies") {
        assert!(matches!(r.verdict, Verdict::Pass), "{}", r.text(true));
    }
}

/// echo-server with its defaults passes every check.
#[test]
fn grading_passes_echo_server_with_defaults() {
    setup();
    for r in grade::grade(&server_cmd("")) {
        assert!(r.passed(), "{}", r.text(true));
    }
}

/// The lifecycle command line: list, unknown scenario, bad --server-cmd,
/// --client-cmd or grade arguments.
#[test]
fn the_command_line_lists_and_refuses_clearly() {
    setup();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_lifecycle"));
    let mut list = Proc::spawn(bin, ["--list"], Input::Null).unwrap();
    assert!(
        list.wait_exit(std::time::Duration::from_secs(10))
            .unwrap()
            .success()
    );
    let listed = list.stdout.text();
    for s in scenarios::all() {
        assert!(listed.contains(s.name), "{listed}");
    }
    for args in [
        &["--scenario", "nope"][..],
        &["--server-cmd", "cat"],
        &["--client-cmd", "cat {host}"],
        &["grade", "-j", "0"],
        &["grade", "--server-cmd", "x"],
        &["--bogus"],
    ] {
        let mut p = Proc::spawn(bin, args, Input::Null).unwrap();
        let status = p.wait_exit(std::time::Duration::from_secs(10)).unwrap();
        let stderr = p.stderr.text();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}
