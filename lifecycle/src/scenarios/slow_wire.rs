//! `slow-wire` and `lost-syn` (root): the lab's two hosts and the 300 ms
//! wire between them, where every state lasts long enough to be sampled.

use std::time::Duration;

use serde_json::Value;

use crate::bins::binaries;
use crate::echo::STARTUP;
use crate::lab::{LabRun, namespaces};
use crate::observer::EventExt;
use crate::observer::Timeline;
use crate::spawn::{Input, Proc};
use crate::story::{Failure, PATIENCE, Story};

const SERVER: &str = "10.66.0.2";

/// Start the lab, an echo-server in its server namespace, and narrate.
fn lab_with_server(
    story: &mut Story,
    lab_args: &[&str],
    server_args: &[&str],
) -> Result<(LabRun, Proc), Failure> {
    let lab = LabRun::start(lab_args)?;
    story.outputs.push((
        format!("observer lab {}", lab_args.join(" ")),
        lab.proc.stdout.clone(),
        lab.proc.stderr.clone(),
    ));
    story.say(
        "harness",
        format!(
            "lab {}: {}-client 10.66.0.1 <-> {}-server {SERVER}",
            lab.name, lab.name, lab.name
        ),
    );
    let mut args = vec!["--bind", "0.0.0.0"];
    args.extend_from_slice(server_args);
    let server = lab.exec("server", &binaries()?.server, &args, Input::Null)?;
    story.outputs.push((
        "echo-server (in the lab)".to_string(),
        server.stdout.clone(),
        server.stderr.clone(),
    ));
    server
        .stdout
        .wait_for("the server's listening line", STARTUP, |l| {
            l.iter().any(|x| x.starts_with("listening")).then_some(())
        })?;
    story.say(
        "server",
        format!("echo-server {} in {}-server", args.join(" "), lab.name),
    );
    Ok((lab, server))
}

/// An echo-client in the lab's client namespace, talking to the server.
fn client_in_lab(story: &mut Story, lab: &LabRun) -> Result<Proc, Failure> {
    let client = lab.exec(
        "client",
        &binaries()?.client,
        &[SERVER, "6666"],
        Input::Pipe,
    )?;
    story.outputs.push((
        "echo-client (in the lab)".to_string(),
        client.stdout.clone(),
        client.stderr.clone(),
    ));
    Ok(client)
}

/// States one side went through, as the lab's sampler saw them, with any
/// states it reports as missed.
fn states(events: &[Value], ns: &str) -> (Vec<String>, Vec<String>) {
    let mut seen = Vec::new();
    let mut missed = Vec::new();
    for e in events
        .iter()
        .filter(|e| e.str("ns") == ns && e.str("role") != "listener")
    {
        match e.str("event") {
            "new" | "state" => {
                seen.push(e.str("state").to_string());
                for m in e["missed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(e["missed_either"].as_array().into_iter().flatten())
                {
                    missed.push(m.as_str().unwrap_or("").to_string());
                }
            }
            "gone" => seen.push("gone".to_string()),
            _ => {}
        }
    }
    (seen, missed)
}

/// One expected segment: direction, flags, and named numbers.
struct Expect {
    what: &'static str,
    dir: &'static str,
    flags: &'static [&'static str],
    no_flags: &'static [&'static str],
    seq: Option<&'static str>,
    ack: Option<&'static str>,
    len: Option<u64>,
}

fn matches(e: &Value, x: &Expect) -> bool {
    let flags: Vec<&str> = e.str("flags").split('+').collect();
    e.str("dir") == x.dir
        && x.flags.iter().all(|f| flags.contains(f))
        && !x.no_flags.iter().any(|f| flags.contains(f))
        && x.seq.is_none_or(|s| e.str("rel_seq") == s)
        && x.ack.is_none_or(|a| e["rel_ack"].as_str() == Some(a))
        && x.len.is_none_or(|l| e["len"].as_u64() == Some(l))
        && e.str("fate") == "sent"
}

/// Every state of both hosts, in order, and every segment of the story
/// on the wire, with sequence numbers that add up (UNP figures 2.5, 2.6).
pub fn slow_wire(story: &mut Story) -> Result<(), Failure> {
    // --close-delay: the server ACKs the client's FIN at once and sends its
    // own FIN half a second later, so the two cross the wire apart and both
    // FIN_WAIT2 and CLOSE_WAIT last long enough to be seen.
    let (lab, server) = lab_with_server(story, &["--delay", "300ms"], &["--close-delay", "0.5s"])?;
    let mut client = client_in_lab(story, &lab)?;
    client.write_stdin(b"hi\n")?;
    story.wait(
        "client",
        "\"hi\" comes back over the slow wire",
        || (client.stdout.bytes() == b"hi\n").then_some(()),
        || client.stderr.text(),
    )?;
    client.close_stdin();
    client.wait_exit(PATIENCE)?;
    story.say("client", "stdin EOF: close()");
    let tw = lab
        .wait_for("the client's TIME_WAIT", PATIENCE, |e| {
            e.str("ns") == "client" && e.str("state") == "TIME_WAIT"
        })
        .map_err(Failure::from)?;
    story.say(
        "observer",
        format!(
            "client TIME_WAIT at {:.3} s",
            tw["t"].as_f64().unwrap_or(0.0)
        ),
    );
    lab.wait_for("the server's end gone", PATIENCE, |e| {
        e.str("ns") == "server" && e.str("event") == "gone" && e.str("role") == "server"
    })
    .map_err(Failure::from)?;
    drop(server);
    let name = lab.name.clone();
    let events = lab.stop()?;

    let (client_states, client_missed) = states(&events, "client");
    let want_client = [
        "SYN_SENT",
        "ESTABLISHED",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
    ];
    story.check(
        "observer",
        &format!(
            "client, every state seen, in order: {}",
            want_client.join(" -> ")
        ),
        client_states.iter().take(5).eq(want_client.iter()) && client_missed.is_empty(),
        || format!("seen {client_states:?}, missed {client_missed:?}"),
    )?;
    let (server_states, server_missed) = states(&events, "server");
    let want_server = ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "gone"];
    story.check(
        "observer",
        &format!(
            "server, every state seen, in order: {}",
            want_server.join(" -> ")
        ),
        server_states == want_server && server_missed.is_empty(),
        || format!("seen {server_states:?}, missed {server_missed:?}"),
    )?;

    const C: &str = "client->server";
    const S: &str = "server->client";
    let ladder = [
        Expect {
            what: "SYN seq=J",
            dir: C,
            flags: &["SYN"],
            no_flags: &["ACK"],
            seq: Some("J"),
            ack: None,
            len: Some(0),
        },
        Expect {
            what: "SYN+ACK seq=K ack=J+1",
            dir: S,
            flags: &["SYN", "ACK"],
            no_flags: &[],
            seq: Some("K"),
            ack: Some("J+1"),
            len: Some(0),
        },
        Expect {
            what: "ACK seq=J+1 ack=K+1",
            dir: C,
            flags: &["ACK"],
            no_flags: &["SYN"],
            seq: Some("J+1"),
            ack: Some("K+1"),
            len: Some(0),
        },
        Expect {
            what: "data: seq=J+1, 3 bytes",
            dir: C,
            flags: &["ACK"],
            no_flags: &["SYN", "FIN"],
            seq: Some("J+1"),
            ack: None,
            len: Some(3),
        },
        Expect {
            what: "its echo: seq=K+1 ack=J+4, 3 bytes",
            dir: S,
            flags: &["ACK"],
            no_flags: &["FIN"],
            seq: Some("K+1"),
            ack: Some("J+4"),
            len: Some(3),
        },
        Expect {
            what: "client FIN seq=J+4",
            dir: C,
            flags: &["FIN"],
            no_flags: &[],
            seq: Some("J+4"),
            ack: None,
            len: Some(0),
        },
        Expect {
            what: "server ACK ack=J+5",
            dir: S,
            flags: &["ACK"],
            no_flags: &["FIN"],
            seq: None,
            ack: Some("J+5"),
            len: Some(0),
        },
        Expect {
            what: "server FIN seq=K+4",
            dir: S,
            flags: &["FIN"],
            no_flags: &[],
            seq: Some("K+4"),
            ack: Some("J+5"),
            len: Some(0),
        },
        Expect {
            what: "client ACK ack=K+5",
            dir: C,
            flags: &["ACK"],
            no_flags: &["FIN"],
            seq: Some("J+5"),
            ack: Some("K+5"),
            len: Some(0),
        },
    ];
    let segments: Vec<&Value> = events
        .iter()
        .filter(|e| e.str("event") == "segment")
        .collect();
    let mut from = 0;
    for x in &ladder {
        let found = segments[from..].iter().position(|e| matches(e, x));
        story.check(
            "wire",
            &format!("{:<16} {}", x.dir, x.what),
            found.is_some(),
            || {
                segments
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} seq={} ack={} len {}",
                            e.str("dir"),
                            e.str("flags"),
                            e.str("rel_seq"),
                            e["rel_ack"],
                            e["len"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        )?;
        from += found.unwrap_or(0) + 1;
    }
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&name))
        .collect();
    story.check(
        "harness",
        "the lab is gone: no namespace, device or process left",
        left.is_empty(),
        || format!("{left:?}"),
    )?;
    Ok(())
}

/// With `--loss 50 --seed 18` the first SYN and its first retransmission
/// are lost: the client retries after about 1 s, then after 2 s more (the
/// retransmission timeout doubles), and sits in SYN_SENT for seconds.
///
/// Since Linux 6.5 the first four SYN retransmissions wait a fixed second
/// each (net.ipv4.tcp_syn_linear_timeouts = 4); the lab sets it to 0 in
/// its namespaces to show the textbook doubling (UNP, RFC 6298 5.5).
pub fn lost_syn(story: &mut Story) -> Result<(), Failure> {
    let seed = observer::lab::delay::LOST_SYN_SEED.to_string();
    let lab_args = [
        "--delay",
        "100ms",
        "--loss",
        "50",
        "--seed",
        &seed,
        "--syn-linear-timeouts",
        "0",
    ];
    let (lab, server) = lab_with_server(story, &lab_args, &[])?;
    let client = client_in_lab(story, &lab)?;
    let established = lab
        .wait_for("the client ESTABLISHED", Duration::from_secs(15), |e| {
            e.str("ns") == "client" && e.str("event") == "state" && e.str("state") == "ESTABLISHED"
        })
        .map_err(Failure::from)?;
    let syns: Vec<Value> = lab
        .events()
        .into_iter()
        .filter(|e| e.str("event") == "segment" && e.str("flags") == "SYN")
        .collect();
    drop(client);
    drop(server);
    let name = lab.name.clone();
    lab.stop()?;
    for s in &syns {
        story.say(
            "wire",
            format!(
                "{:.3} s  SYN seq={}  retransmission {}  {}",
                s["t"].as_f64().unwrap_or(0.0),
                s.str("rel_seq"),
                s["retransmission"],
                s.str("fate")
            ),
        );
    }
    let fates: Vec<&str> = syns.iter().map(|s| s.str("fate")).collect();
    story.check(
        "wire",
        "the SYN is lost, and lost again, then gets through",
        fates == ["lost", "lost", "sent"],
        || format!("{fates:?}"),
    )?;
    let t: Vec<f64> = syns
        .iter()
        .map(|s| s["t"].as_f64().unwrap_or(0.0))
        .collect();
    let (first_gap, second_gap) = (t[1] - t[0], t[2] - t[1]);
    story.check(
        "wire",
        &format!("the retransmission timeout doubles: {first_gap:.2} s, then {second_gap:.2} s"),
        (0.8..1.5).contains(&first_gap) && (1.6..3.0).contains(&second_gap),
        || format!("{t:?}"),
    )?;
    let in_syn_sent = established["prev_ms"].as_u64().unwrap_or(0);
    story.check(
        "observer",
        &format!(
            "the client sat in SYN_SENT for {:.2} s",
            in_syn_sent as f64 / 1000.0
        ),
        established.str("prev_state") == "SYN_SENT" && in_syn_sent >= 2_900,
        || format!("{established}"),
    )?;
    let left: Vec<String> = namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&name))
        .collect();
    story.check("harness", "the lab is gone", left.is_empty(), || {
        format!("{left:?}")
    })?;
    Ok(())
}
