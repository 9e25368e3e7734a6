//! Building the lab and taking it down: two network namespaces, a TUN
//! device in each with its address and route, the state file a later run
//! finds a stale lab by, and `observer lab exec` to run a command inside.
//!
//! Everything is made with `ip` (iproute2) and undone in [`Lab`]'s Drop,
//! processes left inside included.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns;

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
    /// A flag's value cannot be used (a --pcap file that cannot be created).
    #[error("{0}")]
    Usage(String),
}

impl LabError {
    /// 2 when the user must change how it is run (root), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LabError::NotRoot | LabError::Usage(_) => 2,
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
    pub tun: Vec<OwnedFd>,
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
