//! The lessons, as scenarios: each drives real programs through one story
//! of a connection and checks every step against the kernel's account.
//!
//! - [`handshake`]: LISTEN, connect, ESTABLISHED on both ends, who sleeps where.
//! - [`echo`]: every byte comes back.
//! - [`teardown`]: who closes first decides where TIME_WAIT lands;
//!   half-close, reset, a server that dies.
//! - [`zombies`]: five children exit at once (UNP tcpcli04).
//! - [`queues`]: SYN_SENT behind a full accept queue, SYN_RECV held by
//!   TCP_DEFER_ACCEPT, SO_REUSEADDR against TIME_WAIT.
//! - [`threads`]: the same lifecycle with threads: no children at all.
//! - [`slow_wire`]: the lab's slow wire (root): every state, every segment.
//! - [`exact`]: every transition from the tracepoint (root).

pub mod echo;
pub mod exact;
pub mod handshake;
pub mod queues;
pub mod slow_wire;
pub mod teardown;
pub mod threads;
pub mod zombies;

use std::time::Instant;

use crate::story::{Failure, Report, Story, Verdict};

/// One named scenario.
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    /// Why it needs root, if it does (namespaces, tracefs).
    pub needs_root: Option<&'static str>,
    pub run: fn(&mut Story) -> Result<(), Failure>,
}

/// Every scenario, in teaching order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "handshake",
            about: "LISTEN, then both ends ESTABLISHED; the child serves, the parent accepts",
            needs_root: None,
            run: handshake::fork_mode,
        },
        Scenario {
            name: "echo",
            about: "lines, a 1 MiB line, NUL bytes, no final newline, batch from a file: byte for byte",
            needs_root: None,
            run: echo::byte_for_byte,
        },
        Scenario {
            name: "client-closes-first",
            about: "client FIN_WAIT2 then TIME_WAIT; server CLOSE_WAIT then gone; child reaped",
            needs_root: None,
            run: teardown::client_closes_first,
        },
        Scenario {
            name: "server-closes-first",
            about: "the server closes first: TIME_WAIT lands on the server's side",
            needs_root: None,
            run: teardown::server_closes_first,
        },
        Scenario {
            name: "half-close",
            about: "shutdown(SHUT_WR): FIN_WAIT2 and CLOSE_WAIT held while the server finishes",
            needs_root: None,
            run: teardown::half_close,
        },
        Scenario {
            name: "reset",
            about: "SO_LINGER 0: an RST, no TIME_WAIT anywhere; the child ends cleanly",
            needs_root: None,
            run: teardown::reset,
        },
        Scenario {
            name: "five-clients",
            about: "five connections closed at once (UNP tcpcli04): waitpid, wait, none",
            needs_root: None,
            run: zombies::five_clients,
        },
        Scenario {
            name: "syn-sent",
            about: "a full accept queue: a client waits in SYN_SENT",
            needs_root: None,
            run: queues::syn_sent,
        },
        Scenario {
            name: "syn-recv",
            about: "TCP_DEFER_ACCEPT: the server's end waits in SYN_RECV",
            needs_root: None,
            run: queues::syn_recv,
        },
        Scenario {
            name: "reuseaddr",
            about: "restart over a TIME_WAIT: EADDRINUSE without SO_REUSEADDR, fine with it",
            needs_root: None,
            run: queues::reuseaddr,
        },
        Scenario {
            name: "server-killed",
            about: "the server's child dies: the client's next write meets an RST",
            needs_root: None,
            run: teardown::server_killed,
        },
        Scenario {
            name: "thread-mode",
            about: "handshake and client-closes-first with threads: no child process at all",
            needs_root: None,
            run: threads::thread_mode,
        },
        Scenario {
            name: "slow-wire",
            about: "two hosts, a 300 ms wire: every state of both sides and every segment, in order",
            needs_root: Some("the lab creates network namespaces and TUN devices"),
            run: slow_wire::slow_wire,
        },
        Scenario {
            name: "lost-syn",
            about: "a lossy wire: the SYN lost twice, retried after 1 s then 2 s, SYN_SENT for seconds",
            needs_root: Some("the lab creates network namespaces and TUN devices"),
            run: slow_wire::lost_syn,
        },
        Scenario {
            name: "exact-handshake",
            about: "every transition of both ends from the kernel's tracepoint; TIME_WAIT from inet_diag",
            needs_root: Some("the tracepoint is read through tracefs"),
            run: exact::exact_handshake,
        },
    ]
}

pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

/// Run one scenario; root-only ones are skipped (with the reason) without root.
pub fn run(scenario: &Scenario) -> Report {
    let start = Instant::now();
    let mut story = Story::new();
    let verdict = match scenario.needs_root {
        Some(why) if !nix::unistd::geteuid().is_root() => {
            Verdict::Skipped(format!("needs root: {why}"))
        }
        _ => match (scenario.run)(&mut story) {
            Ok(()) => Verdict::Pass,
            Err(failure) => Verdict::Fail(failure),
        },
    };
    Report {
        name: scenario.name.to_string(),
        about: scenario.about.to_string(),
        verdict,
        wall: start.elapsed(),
        story,
    }
}

/// Shorthands for matching observer events.
pub mod matching {
    use serde_json::Value;

    use crate::observer::EventExt;

    /// An event of `kind` (new, state...) putting a `role` socket in `state`.
    pub fn is(e: &Value, kind: &str, state: &str, role: &str) -> bool {
        (kind.is_empty() || e.str("event") == kind)
            && e.str("state") == state
            && e.str("role") == role
    }

    /// Any socket event that leaves a `role` socket in `state`.
    pub fn reaches(e: &Value, state: &str, role: &str) -> bool {
        matches!(e.str("event"), "new" | "state") && is(e, "", state, role)
    }

    pub fn owned_by(e: &Value, pid: i32) -> bool {
        e.owner_pids().contains(&(pid as i64))
    }

    /// The event is about the connection whose client end is `client`.
    pub fn on_conn(e: &Value, client: &std::net::SocketAddr) -> bool {
        let c = client.to_string();
        e.str("local") == c || e.str("remote") == c
    }
}
