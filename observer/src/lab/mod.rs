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

pub mod segment;
pub mod wire;

use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::diag::{DiagSocket, EventSocket, Query};
use crate::netns;
use crate::render::{self, Style};
use crate::roles::Role;
use crate::watch::{Event, Poller, Tracker};
use segment::{Ladder, Segment};
use wire::{Dir, Fate, Wire};

/// The two hosts' addresses on the lab's wire.
pub const CLIENT_ADDR: &str = "10.66.0.1";
pub const SERVER_ADDR: &str = "10.66.0.2";
const PREFIX_LEN: &str = "24";
/// The TUN device, the same name in both namespaces.
const IFNAME: &str = "echolab0";
/// Where a running lab records its pid.
const STATE_DIR: &str = "/run/echolab";

/// Why the lab could not run.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "the lab needs root: it creates network namespaces and TUN devices (try: sudo observer lab)"
    )]
    NotRoot,
    #[error(
        "a lab named {name} is already running (pid {pid}); stop it first (Ctrl-C in its terminal)"
    )]
    Busy { name: String, pid: i32 },
    #[error("no lab named {0} is running: start `observer lab` first")]
    NoLab(String),
    #[error("{0}")]
    Setup(String),
}

impl LabError {
    /// 2 when the user must change how it is run (root), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::NotRoot => 2,
            _ => 1,
        }
    }
}

/// Which host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }

    pub fn addr(self) -> &'static str {
        match self {
            Side::Client => CLIENT_ADDR,
            Side::Server => SERVER_ADDR,
        }
    }
}

/// The names of one lab's namespaces and state file.
#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn netns(&self, side: Side) -> String {
        format!("{}-{}", self.prefix, side.name())
    }

    fn state_file(&self) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{}.pid", self.prefix))
    }
}

/// Run `ip ARGS`, the iproute2 tool every teacher knows; its error text is
/// kept for the message.
fn ip(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| LabError::Setup(format!("cannot run `ip` (install iproute2): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Setup(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// How many buckets each lab namespace's TCP established hash gets.
///
/// A new namespace shares the host's hash (262,144 buckets here) unless
/// `net.ipv4.tcp_child_ehash_entries` is set when it is created (Linux
/// 6.1, net/ipv4/inet_hashtables.c: inet_pernet_hashinfo_alloc). An
/// inet_diag dump walks every bucket of the hash the namespace uses,
/// whatever it finds: with the shared one, the lab's two polls every
/// 10 ms cost a fifth of a core while nothing happens. A lab holds a
/// handful of connections; 256 buckets is plenty.
const LAB_EHASH_ENTRIES: &str = "256";
const CHILD_EHASH: &str = "/proc/sys/net/ipv4/tcp_child_ehash_entries";

/// `ip netns add NAME`, with a TCP hash of its own (see
/// [`LAB_EHASH_ENTRIES`]).
///
/// The sysctl is read from the namespace that *creates* the new one, so
/// it is set in a throwaway namespace (`unshare --net`) from which `ip`
/// then creates the lab's: the host's own setting is never touched (two
/// labs starting at once cannot leave it changed). Where the sysctl does
/// not exist (before 6.1) the write fails quietly and the namespace shares
/// the host's hash, as it would anyway: the lab works the same, dearer.
fn add_netns(name: &str) -> Result<(), LabError> {
    let script =
        format!("echo {LAB_EHASH_ENTRIES} > {CHILD_EHASH} 2>/dev/null; exec ip netns add \"$0\"");
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &script, name])
        .output();
    match out {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(LabError::Setup(format!(
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        // No unshare(1) (util-linux): the plain way.
        Err(_) => ip(&["netns", "add", name]),
    }
}

/// SIGTERM every process inside the namespace, then SIGKILL the rest.
fn empty_namespace(name: &str) {
    let Some(ino) = netns::inode(name) else {
        return;
    };
    let signal = |sig| {
        for pid in netns::processes_in(ino) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    };
    signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !netns::processes_in(ino).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(nix::sys::signal::Signal::SIGKILL);
}

fn remove(names: &Names) {
    for side in [Side::Client, Side::Server] {
        let ns = names.netns(side);
        if netns::exists(&ns) {
            empty_namespace(&ns);
            let _ = ip(&["netns", "delete", &ns]);
        }
    }
    let _ = fs::remove_file(names.state_file());
}

/// If a lab of this name exists: refuse if it is running, remove it if
/// its process is gone (a killed run). Returns a note when it removed one.
pub fn clean_stale(names: &Names) -> Result<Option<String>, LabError> {
    let present = [Side::Client, Side::Server]
        .iter()
        .any(|s| netns::exists(&names.netns(*s)));
    let pid: Option<i32> = fs::read_to_string(names.state_file())
        .ok()
        .and_then(|s| s.trim().parse().ok());
    if let Some(pid) = pid {
        let alive =
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "observer");
        if alive && pid != std::process::id() as i32 {
            return Err(LabError::Busy {
                name: names.prefix.clone(),
                pid,
            });
        }
    }
    if !present && pid.is_none() {
        return Ok(None);
    }
    remove(names);
    Ok(Some(format!(
        "removed a lab named {} left behind by a killed run{}",
        names.prefix,
        pid.map_or(String::new(), |p| format!(" (pid {p})"))
    )))
}

/// Open a TUN device inside the namespace; the device lives as long as
/// the descriptor.
fn open_tun(ns: &str) -> Result<OwnedFd, LabError> {
    let opened = netns::run_in(ns, || -> std::io::Result<OwnedFd> {
        let path = c"/dev/net/tun";
        // SAFETY: a valid NUL-terminated path; the flags are plain integers.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by open() and is owned by no one else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is a plain C struct: all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(IFNAME.bytes()) {
            *dst = src as libc::c_char;
        }
        // IFF_TUN: IP packets, no Ethernet header; IFF_NO_PI: no extra
        // 4-byte packet-information prefix either.
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads an ifreq; `ifr` is a live, initialised one.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &ifr) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // No IPv6 on the wire: no router solicitations crossing it. (This
        // thread is in the namespace, so /proc/sys/net is the namespace's.)
        let _ = fs::write(
            format!("/proc/sys/net/ipv6/conf/{IFNAME}/disable_ipv6"),
            "1",
        );
        Ok(fd)
    });
    match opened {
        Ok(Ok(fd)) => Ok(fd),
        Ok(Err(e)) => Err(LabError::Setup(format!(
            "TUN device in {ns}: {e} (is /dev/net/tun there?)"
        ))),
        Err(e) => Err(LabError::Setup(e)),
    }
}

/// A running lab: two namespaces, a TUN device in each. Dropping it tears
/// everything down.
pub struct Lab {
    pub names: Names,
    /// [client, server]
    tun: Vec<OwnedFd>,
}

impl Lab {
    pub fn create(names: Names) -> Result<Lab, LabError> {
        let mut lab = Lab {
            names,
            tun: Vec::new(),
        };
        fs::create_dir_all(STATE_DIR).map_err(|e| LabError::Setup(format!("{STATE_DIR}: {e}")))?;
        fs::write(lab.names.state_file(), std::process::id().to_string())
            .map_err(|e| LabError::Setup(format!("state file: {e}")))?;
        for side in [Side::Client, Side::Server] {
            let ns = lab.names.netns(side);
            add_netns(&ns)?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            lab.tun.push(open_tun(&ns)?);
            let addr = format!("{}/{PREFIX_LEN}", side.addr());
            ip(&["-n", &ns, "addr", "add", &addr, "dev", IFNAME])?;
            ip(&["-n", &ns, "link", "set", IFNAME, "up"])?;
        }
        Ok(lab)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Processes first (they keep a namespace alive after its name is
        // gone), then the devices (closing the descriptors removes them),
        // then the names.
        for side in [Side::Client, Side::Server] {
            empty_namespace(&self.names.netns(side));
        }
        self.tun.clear();
        remove(&self.names);
    }
}

/// `observer lab exec client|server -- CMD`: run CMD inside the lab.
/// Returns only on error (on success the process becomes CMD).
pub fn exec(names: &Names, side: Side, argv: &[String]) -> LabError {
    let ns = names.netns(side);
    if !netns::exists(&ns) {
        return LabError::NoLab(names.prefix.clone());
    }
    if !nix::unistd::geteuid().is_root() {
        return LabError::NotRoot;
    }
    let file = match fs::File::open(netns::path(&ns)) {
        Ok(f) => f,
        Err(e) => return LabError::Setup(format!("{ns}: {e}")),
    };
    // This process is single-threaded here: setns moves all of it.
    if let Err(e) = nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET) {
        return LabError::Setup(format!("setns({ns}): {e:?}"));
    }
    let Some(program) = argv.first() else {
        return LabError::Setup("no command given after --".to_string());
    };
    let err = std::os::unix::process::CommandExt::exec(Command::new(program).args(&argv[1..]));
    LabError::Setup(format!("cannot run {program}: {err}"))
}

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
    let mut wire = Wire::new(options.delay, options.loss_percent, options.seed);
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
