//! `five-clients`: UNP's tcpcli04 (5.10). One client opens five
//! connections and closes them at the same moment: five children of the
//! server exit together, and five SIGCHLDs become fewer.
//!
//! Whether the signals really merge depends on timing. To show it every
//! time, the harness stops the server (SIGSTOP) while the five children
//! exit, so all five SIGCHLDs arrive while it cannot run: a standard
//! signal is not queued, so the five become one pending signal, delivered
//! once at SIGCONT. What the handler does with that one call is the lesson.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::echo::Server;
use crate::procfs;
use crate::spawn::Input;
use crate::story::{Failure, PATIENCE, Story};

pub fn five_clients(story: &mut Story) -> Result<(), Failure> {
    for (reap, zombies, why) in [
        (
            "waitpid",
            0,
            "the handler's waitpid(-1, WNOHANG) loop collects all five",
        ),
        (
            "wait",
            4,
            "one wait() per signal: one reaped, four zombies (UNP's bug, shown)",
        ),
        ("none", 5, "no handler: all five stay zombies (shown)"),
    ] {
        round(story, reap, zombies, why)?;
    }
    Ok(())
}

fn signal(server: &Server, signal: Signal) -> Result<(), Failure> {
    kill(Pid::from_raw(server.pid()), signal).map_err(|e| anyhow::anyhow!("kill: {e}"))?;
    Ok(())
}

fn round(story: &mut Story, reap: &str, zombies: usize, why: &str) -> Result<(), Failure> {
    let server = story.server(&["--reap", reap])?;
    let client = story.client(server.addr, &["--connections", "5"], Input::Pipe)?;
    story.connected(&client)?;
    let accepted = server.wait_events("five accepted", 5, PATIENCE, |l| l.event == "accepted")?;
    let children: Vec<i32> = accepted
        .iter()
        .filter_map(|l| l.num("child"))
        .map(|c| c as i32)
        .collect();
    story.say(
        "server",
        format!("five children serve the five connections: {children:?}"),
    );

    signal(&server, Signal::SIGSTOP)?;
    story.say(
        "harness",
        "SIGSTOP the server: its SIGCHLDs will pile up as one pending signal",
    );
    let pid = server.pid();
    // kill() returns before the target stops: wait until it has (state T),
    // or a SIGCHLD could still be handled on its way to stopping.
    story.wait(
        "/proc",
        "the server is stopped (state T)",
        || (procfs::info(pid)?.state == 'T').then_some(()),
        || format!("{:?}", procfs::info(pid)),
    )?;
    client.finish(PATIENCE)?;
    story.say(
        "client",
        "exits: its five connections close at the same moment",
    );
    story.wait(
        "/proc",
        "all five children have exited (state Z, the parent cannot run)",
        || (procfs::zombie_children(pid).len() == 5).then_some(()),
        || format!("children: {:?}", procfs::children(pid)),
    )?;
    signal(&server, Signal::SIGCONT)?;
    story.say(
        "harness",
        "SIGCONT: one SIGCHLD is delivered, for five exits",
    );

    let reaped = 5 - zombies;
    if reaped > 0 {
        server.wait_events("reaped lines", reaped, PATIENCE, |l| l.event == "reaped")?;
    } else {
        // Nothing will ever be reaped: make sure the server ran after
        // SIGCONT before counting (it wakes from accept within a second).
        story.wait(
            "/proc",
            "the server runs again (back asleep in accept)",
            || {
                let calls = super::handshake::accept_calls();
                calls
                    .iter()
                    .any(|&nr| procfs::blocked_in(pid, nr))
                    .then_some(())
            },
            || format!("{:?}", procfs::info(pid)),
        )?;
    }
    let left = procfs::zombie_children(pid);
    story.check(
        "/proc",
        &format!("--reap {reap}: {zombies} zombies left; {why}"),
        left.len() == zombies,
        || {
            format!(
                "zombies: {left:?}; reaped lines: {}",
                server
                    .events()
                    .iter()
                    .filter(|l| l.event == "reaped")
                    .count()
            )
        },
    )?;
    let reaped_lines = server
        .events()
        .iter()
        .filter(|l| l.event == "reaped")
        .count();
    story.check(
        "server",
        &format!("it logged {reaped} reaped children"),
        reaped_lines == reaped,
        || format!("{reaped_lines} reaped lines"),
    )?;
    let (status, events) = server.stop()?;
    let summary = events.iter().find(|l| l.event == "summary").cloned();
    story.check(
        "server",
        "SIGTERM: it collects the zombies, exits 0, leaves none",
        status.success() && summary.as_ref().and_then(|s| s.num("zombies-left")) == Some(0),
        || format!("{status:?} {summary:?}"),
    )?;
    if let Some(summary) = summary {
        story.say(
            "server",
            format!(
                "summary: zombies at shutdown {}, left {}",
                summary.get("zombies-at-shutdown").unwrap_or("?"),
                summary.get("zombies-left").unwrap_or("?")
            ),
        );
    }
    Ok(())
}
