//! `observer lab` (root): two hosts joined by a slow wire, so that every
//! handshake and teardown state lasts long enough to be seen.
//!
//! On loopback a handshake takes about 100 microseconds. Here:
//!
//! ```text
//!  netns echolab-client                          netns echolab-server
//!  10.66.0.1/24  echolab0 (TUN)                  echolab0 (TUN)  10.66.0.2/24
//!        |                                              |
//!        +------ relay (this process): each packet -----+
//!                waits --delay, may be lost (--loss),
//!                and is shown as a TCP segment
//! ```
//!
//! A TUN device hands every IP packet the namespace sends to the process
//! holding it, and injects every packet that process writes. The relay
//! holds both (opened with setns into each namespace) and copies packets
//! across after the delay. Meanwhile it asks inet_diag in each namespace
//! which sockets exist there, so one timeline shows the segments on the
//! wire and the states on both sides. Ctrl-C or SIGTERM tears it all down,
//! processes left inside included; a lab left by a killed run is removed
//! at the next start.

pub mod delay;
pub mod segment;
pub mod setup;

use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::diag::{DiagSocket, EventSocket, Query};
use crate::netns;
use crate::render::{self, Style};
use crate::roles::Role;
use crate::watch::{Event, Poller, Tracker};
use delay::{DelayLine, Dir, Fate};
use segment::{Ladder, Segment};
pub use setup::{CLIENT_ADDR, Lab, LabError, Names, SERVER_ADDR, Side, clean_stale, exec};

/// What `observer lab` is asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    /// net.ipv4.tcp_syn_linear_timeouts inside the lab (None: the kernel's).
    pub syn_linear_timeouts: Option<u32>,
    pub delay: Duration,
    pub loss_percent: f64,
    pub seed: u64,
    pub interval: Duration,
    pub json: bool,
    pub duration: Option<Duration>,
}

/// A program next to this one (target/debug/echo-server), for the
/// commands we print; the bare name if it is not there.
fn sibling(name: &str) -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(name)))
        .filter(|p| p.exists())
        .map_or(name.to_string(), |p| p.display().to_string())
}

/// One side of the lab, seen through inet_diag (a netlink socket opened
/// inside its namespace), polled the way the watch polls.
struct Host {
    side: Side,
    events: Option<EventSocket>,
    poller: Poller,
}

impl Host {
    fn open(names: &Names, side: Side, start: Instant) -> Result<Host, LabError> {
        let ns = names.netns(side);
        let diag = DiagSocket::open_in(Some(&ns)).map_err(|e| LabError::Setup(e.to_string()))?;
        let fallback = match side {
            Side::Client => Role::Client,
            Side::Server => Role::Server,
        };
        let tracker = Tracker::new(start, None).with_fallback_role(fallback);
        Ok(Host {
            side,
            events: EventSocket::open(Some(&ns)),
            poller: Poller::new(diag, tracker, Vec::new()),
        })
    }

    fn poll(&mut self, now: Instant) -> Result<Vec<Event>, LabError> {
        if let Some(ev) = self.events.as_mut() {
            for info in ev.drain().destroyed {
                self.poller.tracker.destroyed(now, info);
            }
        }
        self.poller
            .poll(now, &Query::all())
            .map(|polled| polled.events)
            .map_err(|e| LabError::Setup(e.to_string()))
    }
}

/// Print lines, human or JSON; false once stdout is gone.
struct Out<'a> {
    json: bool,
    style: Style,
    out: std::io::StdoutLock<'a>,
}

impl Out<'_> {
    fn line(&mut self, human: String, json: Value) -> bool {
        let text = if self.json { json.to_string() } else { human };
        writeln!(self.out, "{text}")
            .and_then(|()| self.out.flush())
            .is_ok()
    }

    fn events(&mut self, side: Side, events: Vec<Event>) -> bool {
        for event in events {
            let mut json = event.json();
            json["ns"] = json!(side.name());
            let human = event.human(self.style);
            // "    1.234  rest" -> "    1.234  server  rest"
            let (time, rest) = human.split_at(human.len().min(9));
            if !self.line(format!("{time}  {:<6}{rest}", side.name()), json) {
                return false;
            }
        }
        true
    }
}

/// Run the lab until SIGINT/SIGTERM (or `duration`), then tear it down.
pub fn run(options: &Options, style: Style, stop: &dyn Fn() -> bool) -> Result<(), LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    let names = Names {
        prefix: options.name.clone(),
    };
    let stale = clean_stale(&names)?;
    let lab = Lab::create(names.clone())?;
    if let Some(n) = options.syn_linear_timeouts {
        // Since Linux 6.5 the first SYN retransmissions wait a fixed second
        // each (net.ipv4.tcp_syn_linear_timeouts, 4 by default) before the
        // textbook doubling starts. The setting is per namespace: changing
        // it here touches nothing outside the lab.
        for side in [Side::Client, Side::Server] {
            let set = netns::run_in(&names.netns(side), || {
                fs::write("/proc/sys/net/ipv4/tcp_syn_linear_timeouts", n.to_string())
            });
            if !matches!(set, Ok(Ok(()))) {
                eprintln!(
                    "observer: this kernel has no net.ipv4.tcp_syn_linear_timeouts; SYN timeouts double from the start"
                );
                break;
            }
        }
    }
    let start = Instant::now();
    let mut hosts = [
        Host::open(&names, Side::Client, start)?,
        Host::open(&names, Side::Server, start)?,
    ];
    let mut wire = DelayLine::new(options.delay, options.loss_percent, options.seed);
    let mut ladder = Ladder::default();
    let mut out = Out {
        json: options.json,
        style,
        out: std::io::stdout().lock(),
    };
    if let Some(note) = stale {
        eprintln!("observer: {note}");
    }
    announce(&mut out, options, &names);

    let mut next_poll = Instant::now();
    let mut buf = vec![0u8; 65536];
    loop {
        if stop() || options.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let now = Instant::now();
        if now >= next_poll {
            for host in hosts.iter_mut() {
                let events = host.poll(now)?;
                if !out.events(host.side, events) {
                    return Ok(());
                }
            }
            next_poll = now + options.interval;
        }
        let wake = wire.next_due().map_or(next_poll, |due| due.min(next_poll));
        let timeout = wake.saturating_duration_since(Instant::now());
        {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            let mut fds = [
                PollFd::new(lab.tun[0].as_fd(), PollFlags::POLLIN),
                PollFd::new(lab.tun[1].as_fd(), PollFlags::POLLIN),
            ];
            // Rounded up: 0.4 ms left is a 1 ms wait, not poll(0), which
            // returns at once and turns the loop into a busy one until
            // the moment comes (3,300 wake-ups a second, measured).
            let ms = timeout.as_nanos().div_ceil(1_000_000).min(1000) as i32;
            let _ = poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::ZERO),
            );
        }
        // Packets leaving either host enter the wire.
        for (i, dir) in [Dir::ClientToServer, Dir::ServerToClient]
            .into_iter()
            .enumerate()
        {
            loop {
                let n = match nix::unistd::read(lab.tun[i].as_fd(), &mut buf) {
                    Ok(n) if n > 0 => n,
                    _ => break, // EAGAIN: nothing more
                };
                let packet = buf[..n].to_vec();
                let at = Instant::now();
                let segment = Segment::parse(&packet);
                let fate = wire.enter(dir, packet, segment.is_some(), at);
                if let Some(s) = segment {
                    let named = ladder.name(&s, at - start);
                    let (human, json) = describe(dir, &s, &named, fate, at - start, options.delay);
                    if !out.line(human, json) {
                        return Ok(());
                    }
                }
            }
        }
        // Packets whose delay is over arrive at the other host.
        for (dir, packet) in wire.due(Instant::now()) {
            let dst = match dir {
                Dir::ClientToServer => &lab.tun[1],
                Dir::ServerToClient => &lab.tun[0],
            };
            let _ = nix::unistd::write(dst.as_fd(), &packet);
        }
    }
    drop(hosts);
    drop(lab);
    let bye = format!(
        "observer lab: {} torn down (namespaces, devices, processes inside)",
        names.prefix
    );
    out.line(
        format!("{:>9.3}  {bye}", start.elapsed().as_secs_f64()),
        json!({"t": start.elapsed().as_secs_f64(), "event": "lab_down", "name": names.prefix}),
    );
    Ok(())
}

fn announce(out: &mut Out<'_>, options: &Options, names: &Names) {
    let client_ns = names.netns(Side::Client);
    let server_ns = names.netns(Side::Server);
    let server_cmd = format!("{} --bind 0.0.0.0", sibling("echo-server"));
    let client_cmd = format!("{} {SERVER_ADDR}", sibling("echo-client"));
    let observer = sibling("observer");
    let name_flag = if names.prefix == "echolab" {
        String::new()
    } else {
        format!(" --name {}", names.prefix)
    };
    let human = format!(
        "observer lab: {client_ns} ({CLIENT_ADDR}) <-> {server_ns} ({SERVER_ADDR}), {} each way{}\n\
         \x20 server terminal:  ip netns exec {server_ns} {server_cmd}\n\
         \x20               or: {observer} lab exec server{name_flag} -- {server_cmd}\n\
         \x20 client terminal:  ip netns exec {client_ns} {client_cmd}\n\
         \x20               or: {observer} lab exec client{name_flag} -- {client_cmd}\n\
         \x20 one side only:    {observer} --netns {server_ns}\n\
         Ctrl-C here tears the lab down.",
        render::elapsed(options.delay),
        if options.loss_percent > 0.0 {
            format!(
                ", {}% of TCP segments lost (seed {})",
                options.loss_percent, options.seed
            )
        } else {
            String::new()
        }
    );
    let json = json!({
        "t": 0.0,
        "event": "lab",
        "name": names.prefix,
        "client_ns": client_ns,
        "server_ns": server_ns,
        "client_addr": CLIENT_ADDR,
        "server_addr": SERVER_ADDR,
        "delay_ms": options.delay.as_secs_f64() * 1000.0,
        "loss_percent": options.loss_percent,
        "seed": options.seed,
        "syn_linear_timeouts": options.syn_linear_timeouts,
    });
    out.line(human, json);
    eprintln!("observer: lab {} ready", names.prefix);
}

/// One line of the ladder.
fn describe(
    dir: Dir,
    s: &Segment,
    named: &segment::Named,
    fate: Fate,
    at: Duration,
    delay: Duration,
) -> (String, Value) {
    let ack = named
        .ack
        .as_ref()
        .map_or(String::new(), |a| format!("ack={a}"));
    let len = if s.len > 0 {
        format!("len {}", s.len)
    } else {
        String::new()
    };
    let retrans = if named.retransmission > 0 {
        format!(
            "  retransmission {} ({} after the first)",
            named.retransmission,
            render::elapsed(named.since_first)
        )
    } else {
        String::new()
    };
    let fate_text = match fate {
        Fate::Sent => format!("arrives {:.3}", (at + delay).as_secs_f64()),
        Fate::Lost => "LOST".to_string(),
    };
    let human = format!(
        "{:>9.3}  wire    {}  {:<8} seq={:<7} {:<9} {:<8} {fate_text}{retrans}",
        at.as_secs_f64(),
        dir.arrow(),
        s.flag_names(),
        named.seq,
        ack,
        len
    );
    let json = json!({
        "t": (at.as_secs_f64() * 1e6).round() / 1e6,
        "event": "segment",
        "source": "wire",
        "dir": dir.name(),
        "src": s.src.to_string(),
        "dst": s.dst.to_string(),
        "flags": s.flag_names(),
        "seq": s.seq,
        "ack": s.ack,
        "rel_seq": named.seq,
        "rel_ack": named.ack,
        "len": s.len,
        "win": s.window,
        "fate": match fate { Fate::Sent => "sent", Fate::Lost => "lost" },
        "retransmission": named.retransmission,
        "since_first_ms": named.since_first.as_secs_f64() * 1000.0,
    });
    (human, json)
}
