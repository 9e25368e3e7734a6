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

pub mod capture;
pub mod delay;
pub mod segment;
pub mod setup;

use std::fs;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use crate::diag::{EventSocket, Query};
use crate::event::{Event, Kind, LabInfo, WireSegment, micros};
use crate::netns;
use crate::roles::Role;
use crate::source::poll::Poller;
use crate::track::Tracker;
use crate::view::View;
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
    pub duration: Option<Duration>,
    /// Also write every TCP segment entering the wire to this pcap file.
    pub pcap: Option<std::path::PathBuf>,
    /// Say nothing on stderr (the tui owns the terminal): notes go on the
    /// timeline instead.
    pub quiet: bool,
}

/// A program next to this one (target/debug/echo-server), for the
/// commands we print: its bare name if that is what the PATH finds (or if
/// it is not there at all), else its whole path.
fn sibling(name: &str) -> String {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(name)))
        .filter(|p| p.exists());
    let Some(beside) = beside else {
        return name.to_string();
    };
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.exists())
    });
    let same = |a: &std::path::Path, b: &std::path::Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|a| b.canonicalize().ok() == Some(a))
    };
    match on_path {
        Some(found) if same(&found, &beside) => name.to_string(),
        _ => beside.display().to_string(),
    }
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
        let fallback = match side {
            Side::Client => Role::Client,
            Side::Server => Role::Server,
        };
        let tracker = Tracker::new(start, None).with_fallback_role(fallback);
        Ok(Host {
            side,
            events: EventSocket::open(Some(&ns)),
            poller: Poller::open(Some(&ns), tracker, Vec::new())
                .map_err(|e| LabError::Setup(e.to_string()))?,
        })
    }

    fn poll(&mut self, now: Instant) -> Result<Vec<Event>, LabError> {
        if let Some(ev) = self.events.as_mut() {
            for info in ev.drain().destroyed {
                self.poller.tracker.destroyed(now, info);
            }
        }
        let mut events = self
            .poller
            .poll(now, &Query::all())
            .map(|polled| polled.events)
            .map_err(|e| LabError::Setup(e.to_string()))?;
        for event in &mut events {
            event.host = Some(self.side);
        }
        Ok(events)
    }
}

/// The lab creates network namespaces and TUN devices: root only.
/// (`observer lab --tui` asks before it takes over the screen.)
pub fn require_root() -> Result<(), LabError> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(LabError::NotRoot)
    }
}

/// Run the lab until SIGINT/SIGTERM (or `duration`), then tear it down.
pub fn run(
    options: &Options,
    view: &mut dyn View,
    stop: &dyn Fn() -> bool,
) -> Result<(), LabError> {
    require_root()?;
    let names = Names {
        prefix: options.name.clone(),
    };
    // The capture file first: a path that cannot be written stops us
    // before anything is built.
    let mut pcap = match &options.pcap {
        Some(path) => Some(
            capture::Capture::create(path)
                .map_err(|e| LabError::Usage(format!("--pcap {}: {e}", path.display())))?,
        ),
        None => None,
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
    view.show(&[announce(options, &names)]);
    if let Some(note) = stale {
        if options.quiet {
            view.show(&[Event::new(start.elapsed(), Kind::Note { text: note })]);
        } else {
            eprintln!("observer: {note}");
        }
    }
    if !options.quiet {
        eprintln!("observer: lab {} ready", names.prefix);
    }

    let mut next_poll = Instant::now();
    let mut buf = vec![0u8; 65536];
    loop {
        if stop() || options.duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let now = Instant::now();
        if now >= next_poll {
            for host in hosts.iter_mut() {
                if !view.show(&host.poll(now)?) {
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
                if let (Some(capture), Some(_)) = (pcap.as_mut(), &segment) {
                    // The segment as it enters the wire, lost or not: what a
                    // tap on the sending host would capture.
                    if let Err(e) = capture.write(&packet) {
                        return Err(LabError::Setup(format!("--pcap: {e}")));
                    }
                }
                let fate = wire.enter(dir, packet, segment.is_some(), at);
                if let Some(segment) = segment {
                    let t = micros(at - start);
                    let named = ladder.name(&segment, t);
                    let arrives = (fate == Fate::Sent).then(|| t + micros(options.delay));
                    let rung = WireSegment {
                        dir,
                        segment,
                        named,
                        fate,
                        arrives,
                    };
                    if !view.show(&[Event::new(t, Kind::Segment(Box::new(rung)))]) {
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
    let down = Kind::LabDown {
        name: names.prefix.clone(),
    };
    view.show(&[Event::new(start.elapsed(), down)]);
    Ok(())
}

/// The lab's first event: its hosts, its wire, the commands to type.
fn announce(options: &Options, names: &Names) -> Event {
    let lab = LabInfo {
        name: names.prefix.clone(),
        client_ns: names.netns(Side::Client),
        server_ns: names.netns(Side::Server),
        client_addr: CLIENT_ADDR.to_string(),
        server_addr: SERVER_ADDR.to_string(),
        delay: micros(options.delay),
        loss_percent: options.loss_percent,
        seed: options.seed,
        syn_linear_timeouts: options.syn_linear_timeouts,
        server_cmd: format!("{} --bind 0.0.0.0", sibling("echo-server")),
        client_cmd: format!("{} {SERVER_ADDR}", sibling("echo-client")),
        observer: sibling("observer"),
    };
    Event::new(Duration::ZERO, Kind::Lab(Box::new(lab)))
}
