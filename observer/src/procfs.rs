//! Which processes own a socket, and what those processes are doing: /proc.
//!
//! inet_diag gives each socket's inode. A process holds the socket if one
//! of its descriptors is a link to `socket:[INODE]` in `/proc/PID/fd`.
//! After fork() both parent and child hold it, each through its own
//! descriptor, until one closes it: we show every holder, `comm[pid]/fd`.
//!
//! `/proc/PID/stat` gives the state (R running, S sleeping, Z zombie...)
//! and parent; `/proc/PID/wchan` the kernel function a sleeping process
//! waits in, which says *what* it waits for (see [`wchan_meaning`]).
//! Without root, the fd directories of other users' processes are
//! unreadable: their sockets show no owner.

use std::collections::{HashMap, HashSet};
use std::fs;

use echo_lab_cli::proc_stat;

/// One holder of a socket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    pub pid: i32,
    pub comm: String,
    pub fd: i32,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]/{}", self.comm, self.pid, self.fd)
    }
}

/// Socket inode -> its holders, from one scan.
#[derive(Debug, Default, Clone)]
pub struct Owners {
    pub by_inode: HashMap<u32, Vec<Owner>>,
    /// Some process's fd directory could not be read (not root).
    pub denied: bool,
}

impl Owners {
    pub fn of(&self, inode: u32) -> &[Owner] {
        self.by_inode.get(&inode).map_or(&[], Vec::as_slice)
    }

    /// Every pid holding any socket.
    pub fn pids(&self) -> HashSet<i32> {
        self.by_inode.values().flatten().map(|o| o.pid).collect()
    }
}

/// All pids in /proc.
pub use echo_lab_cli::proc_stat::pids as all_pids;

/// One process's fd directory, open, and the descriptor numbers in it.
struct FdDir {
    pid: i32,
    dir: std::os::fd::OwnedFd,
    fds: Vec<i32>,
}

/// Open `/proc/PID/fd` and list its entries; `None` if it cannot be read.
fn open_fd_dir(pid: i32) -> Option<FdDir> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    let path = format!("/proc/{pid}/fd");
    let mut dir = nix::dir::Dir::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .ok()?;
    let fds: Vec<i32> = dir
        .iter()
        .flatten()
        .filter_map(|e| e.file_name().to_str().ok()?.parse().ok())
        .collect();
    // A second descriptor on the same directory, for readlinkat() below;
    // the listing's own handle closes with `dir`.
    let dir = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .ok()?;
    Some(FdDir { pid, dir, fds })
}

/// readlinkat(dir, "FD") into a stack buffer: the socket inode, if the
/// descriptor is a socket. No allocation, and no path walk from /proc down
/// for each descriptor: on a process with 10,000 descriptors this loop is
/// the whole cost of finding owners.
fn socket_inode_at(dir: &std::os::fd::OwnedFd, fd: i32) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut name = [0u8; 16];
    let digits = fd.to_string();
    name[..digits.len()].copy_from_slice(digits.as_bytes());
    let mut target = [0u8; 64];
    // SAFETY: `name` is NUL-terminated (zero-filled, at most 10 digits);
    // `target` is a live buffer of the length we pass; readlinkat does not
    // terminate it and returns how many bytes it wrote.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr().cast(),
            target.as_mut_ptr().cast(),
            target.len(),
        )
    };
    if n <= 0 {
        return None;
    }
    socket_inode(&target[..n as usize])
}

/// Find the holders of `inodes` among `pids`.
pub fn scan(pids: impl IntoIterator<Item = i32>, inodes: &HashSet<u32>) -> Owners {
    if inodes.is_empty() {
        return Owners::default();
    }
    scan_where(pids, |inode| inodes.contains(&inode))
}

/// The holders of every socket among `pids`, before knowing which sockets
/// are wanted: `snapshot` runs this while the kernel answers its dump
/// (`ss -p` also reads /proc first, then dumps).
pub fn scan_all(pids: impl IntoIterator<Item = i32>) -> Owners {
    scan_where(pids, |_| true)
}

/// The descriptors of all processes are cut into chunks that the machine's
/// cores read in parallel. Each descriptor costs a readlinkat() that looks
/// the number up in /proc/PID/fd (never in RCU mode: the fd entries
/// revalidate under a lock), so this is the most expensive part of any
/// owner lookup, here and in `ss -p`.
fn scan_where(pids: impl IntoIterator<Item = i32>, wanted: impl Fn(u32) -> bool + Sync) -> Owners {
    let mut owners = Owners::default();
    let mut dirs = Vec::new();
    for pid in pids {
        match open_fd_dir(pid) {
            Some(dir) => dirs.push(dir),
            // Gone already, or another user's process without root.
            None => owners.denied |= fs::metadata(format!("/proc/{pid}")).is_ok(),
        }
    }
    const CHUNK: usize = 1024;
    let tasks: Vec<(&FdDir, &[i32])> = dirs
        .iter()
        .flat_map(|d| d.fds.chunks(CHUNK).map(move |chunk| (d, chunk)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(tasks.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let found: Vec<(i32, i32, u32)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut found = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((dir, fds)) = tasks.get(i) else {
                            return found;
                        };
                        for &fd in *fds {
                            if let Some(inode) = socket_inode_at(&dir.dir, fd) {
                                if wanted(inode) {
                                    found.push((dir.pid, fd, inode));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut comms: std::collections::HashMap<i32, String> = std::collections::HashMap::new();
    for (pid, fd, inode) in found {
        let comm = comms.entry(pid).or_insert_with(|| read_comm(pid)).clone();
        owners
            .by_inode
            .entry(inode)
            .or_default()
            .push(Owner { pid, comm, fd });
    }
    for list in owners.by_inode.values_mut() {
        list.sort();
    }
    owners
}

/// Owners across the polls of a watch, re-reading as little as possible.
///
/// A full scan of every process's descriptors happens when a socket inode
/// appears that we have not seen (a new connection), and every
/// [`OwnerCache::FULL_EVERY`] as a safety net. In between, each known
/// holder is re-checked by its one descriptor (did the parent close its
/// copy after fork?), and processes we have never scanned (a child just
/// forked) are scanned whole. What this misses until the next full scan:
/// a process that gains an existing socket by dup() or fd passing.
#[derive(Debug, Default)]
pub struct OwnerCache {
    inodes: HashSet<u32>,
    owners: Owners,
    scanned: HashSet<i32>,
    last_full: Option<std::time::Instant>,
}

impl OwnerCache {
    pub const FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

    /// Owners of `inodes`; `watched` are the processes of interest (their
    /// children included), scanned whole the first time they are seen.
    ///
    /// A known holder's descriptor is looked at again only if `ran` says
    /// its process ran since the last poll: a process that has not run
    /// cannot have closed anything. (A process's other threads can, and
    /// [`ProcCache`] sees only the main thread: a multi-threaded holder
    /// that closes its copy in another thread, while another process
    /// still holds the socket, is seen at the next full scan. When the
    /// last holder closes, the socket's inode goes, and that is seen at
    /// once.)
    pub fn update(
        &mut self,
        now: std::time::Instant,
        inodes: HashSet<u32>,
        watched: &HashSet<i32>,
        ran: &dyn Fn(i32) -> bool,
    ) -> &Owners {
        let full = self.last_full.is_none_or(|t| now - t >= Self::FULL_EVERY)
            || !inodes.is_subset(&self.inodes);
        if full {
            let pids = all_pids();
            self.owners = scan(pids.iter().copied(), &inodes);
            self.scanned = pids.into_iter().collect();
            self.last_full = Some(now);
        } else {
            for (inode, list) in self.owners.by_inode.iter_mut() {
                list.retain(|o| {
                    inodes.contains(inode) && (!ran(o.pid) || still_holds(o.pid, o.fd, *inode))
                });
            }
            self.owners.by_inode.retain(|_, list| !list.is_empty());
            let new: Vec<i32> = watched.difference(&self.scanned).copied().collect();
            if !new.is_empty() {
                let found = scan(new.iter().copied(), &inodes);
                self.owners.denied |= found.denied;
                for (inode, list) in found.by_inode {
                    let entry = self.owners.by_inode.entry(inode).or_default();
                    entry.extend(list);
                    entry.sort();
                    entry.dedup();
                }
                self.scanned.extend(new);
            }
        }
        self.inodes = inodes;
        &self.owners
    }
}

/// Does `pid`'s descriptor `fd` still refer to socket `inode`?
fn still_holds(pid: i32, fd: i32, inode: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .is_ok_and(|link| socket_inode(link.as_os_str().as_encoded_bytes()) == Some(inode))
}

/// `socket:[12345]` -> 12345.
fn socket_inode(link: &[u8]) -> Option<u32> {
    let inner = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

fn read_comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// What `ps -o pid,ppid,stat,wchan,comm` shows about a process, and the
/// system call it is blocked in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    /// R running, S sleeping, D disk sleep, T stopped, Z zombie.
    pub state: char,
    pub comm: String,
    /// Where it sleeps; empty while running.
    pub wchan: String,
    /// The system call it is blocked in, with its descriptor where it has
    /// one: `read(4)`. Empty while running, or if /proc/PID/syscall is not
    /// readable (another user's process, without root).
    pub syscall: String,
    /// The command line (`ps -o args`), read once when the process is
    /// first seen (empty until then, and for zombies, which have none).
    pub args: String,
    /// What it waits for, in words ([`waiting_for`]), worked out when an
    /// event reports it (None until then).
    pub meaning: Option<String>,
}

/// `/proc/PID/cmdline`, its NUL-separated arguments joined by spaces.
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Read a process from /proc; `None` if it no longer exists.
pub fn process(pid: i32) -> Option<Process> {
    let proc_stat::Stat {
        comm, state, ppid, ..
    } = proc_stat::read(pid)?;
    let wchan = fs::read_to_string(format!("/proc/{pid}/wchan"))
        .map(|w| if w == "0" { String::new() } else { w })
        .unwrap_or_default();
    let syscall = if state == 'Z' {
        String::new()
    } else {
        syscall(pid)
    };
    Some(Process {
        pid,
        ppid,
        state,
        comm,
        wchan,
        syscall,
        args: String::new(),
        meaning: None,
    })
}

/// The watched processes, read again only when they have run.
///
/// A process that has not been on a CPU since we last looked cannot have
/// changed its state, its wchan, its system call or its children: all of
/// those change only by running (even exiting: do_exit runs in the
/// process). `/proc/PID/schedstat` says whether it ran: its CPU time, its
/// time waiting for a CPU, and how many times it was scheduled in
/// (`sched_info`, Documentation/scheduler/sched-stats.rst). One read of
/// that line (kept open, read from offset 0) replaces three files and a
/// children listing per process per poll.
///
/// What this cannot see: a process's *other* threads. The line is the
/// main thread's; what we show (state, wchan, syscall) is also the main
/// thread's, but a child forked by another thread appears only when the
/// main thread runs or at the next full rescan ([`ProcCache::RESCAN`]).
/// Where the kernel keeps no sched_info (the line reads `0 0 0`), every
/// process is read every time, as before.
#[derive(Debug)]
pub struct ProcCache {
    entries: HashMap<i32, Cached>,
    /// Does schedstat count here? Checked once, on ourselves.
    gated: bool,
    round: u64,
    look: bool,
}

#[derive(Debug)]
struct Cached {
    schedstat: Option<fs::File>,
    last: Vec<u8>,
    process: Option<Process>,
    children: Vec<i32>,
    /// The round it was last checked in, and when it was last read whole.
    checked: u64,
    read_at: std::time::Instant,
    /// Read whole at its last check: it had run (or it was new).
    fresh: bool,
}

impl Default for ProcCache {
    fn default() -> ProcCache {
        let own = fs::read("/proc/thread-self/schedstat").unwrap_or_default();
        ProcCache {
            entries: HashMap::new(),
            // We have run (we are running): a line of zeros means the
            // kernel does not keep the counts.
            gated: !own.is_empty() && !own.starts_with(b"0 0 0"),
            round: 0,
            look: true,
        }
    }
}

impl ProcCache {
    /// However quiet a process, it is read whole this often (a safety net
    /// for what the main thread's line cannot see).
    pub const RESCAN: std::time::Duration = std::time::Duration::from_secs(1);

    /// Start a poll: each process is checked at most once per round, and
    /// not at all if `look` is false (its last reading stands; a process
    /// never seen is read all the same).
    pub fn begin_round(&mut self, look: bool) {
        self.round += 1;
        self.look = look;
    }

    /// The process now (None once it is gone) and its children.
    pub fn read(&mut self, pid: i32) -> (Option<Process>, Vec<i32>) {
        let now = std::time::Instant::now();
        let round = self.round;
        let gated = self.gated;
        let entry = self.entries.entry(pid).or_insert_with(|| Cached {
            schedstat: None,
            last: Vec::new(),
            process: None,
            children: Vec::new(),
            checked: 0,
            read_at: now,
            fresh: true,
        });
        let first = entry.checked == 0;
        if (entry.checked == round || !self.look) && !first {
            if entry.checked != round {
                entry.checked = round;
                entry.fresh = false;
            }
            return (entry.process.clone(), entry.children.clone());
        }
        entry.checked = round;
        let line = if gated {
            schedstat_line(entry, pid)
        } else {
            None
        };
        let unchanged = !first
            && line.as_ref().is_some_and(|l| *l == entry.last)
            && now - entry.read_at < Self::RESCAN;
        entry.fresh = !unchanged;
        if !unchanged {
            entry.process = process(pid);
            entry.children = if entry.process.is_some() {
                children(pid)
            } else {
                Vec::new()
            };
            entry.read_at = now;
            // The line *after* the reading: if the process ran while we
            // read it (its wchan read as it woke), the line moves when it
            // stops running, and the next poll reads it again.
            if gated {
                entry.last = schedstat_line(entry, pid).unwrap_or_default();
            }
        }
        (entry.process.clone(), entry.children.clone())
    }

    /// Did `pid` run since its previous check? True if it was not checked
    /// this round, or the kernel does not say.
    pub fn ran(&self, pid: i32) -> bool {
        self.entries
            .get(&pid)
            .is_none_or(|e| e.checked != self.round || e.fresh)
    }

    /// Forget (and close) the processes no longer watched.
    pub fn retain(&mut self, watched: &HashSet<i32>) {
        self.entries.retain(|pid, _| watched.contains(pid));
    }
}

/// The process's schedstat line now; `None` once it is gone (a read of a
/// reaped process's file fails with ESRCH, even if its pid was reused:
/// the open file belongs to the old process).
fn schedstat_line(entry: &mut Cached, pid: i32) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    if entry.schedstat.is_none() {
        entry.schedstat = fs::File::open(format!("/proc/{pid}/schedstat")).ok();
    }
    let mut buf = [0u8; 96];
    let n = entry.schedstat.as_ref()?.read_at(&mut buf, 0).ok()?;
    Some(buf[..n].to_vec())
}

/// How long ago process `pid` started: field 22 of /proc/PID/stat
/// (`starttime`, clock ticks after boot) against /proc/uptime. A zombie
/// keeps it; its exit time is nowhere in /proc.
pub fn started_ago(pid: i32) -> Option<std::time::Duration> {
    let ticks = proc_stat::read(pid)?.starttime as f64;
    // SAFETY: sysconf reads a system constant and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let uptime: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let started = ticks / hz.max(1) as f64;
    std::time::Duration::try_from_secs_f64((uptime - started).max(0.0)).ok()
}

/// System calls worth naming, by number (this architecture's numbers).
const SYSCALLS: &[(i64, &str)] = &[
    (libc::SYS_read, "read"),
    (libc::SYS_write, "write"),
    (libc::SYS_recvfrom, "recvfrom"),
    (libc::SYS_sendto, "sendto"),
    (libc::SYS_recvmsg, "recvmsg"),
    (libc::SYS_sendmsg, "sendmsg"),
    (libc::SYS_accept4, "accept4"),
    (libc::SYS_connect, "connect"),
    (libc::SYS_ppoll, "ppoll"),
    (libc::SYS_pselect6, "pselect6"),
    (libc::SYS_epoll_pwait, "epoll_pwait"),
    (libc::SYS_nanosleep, "nanosleep"),
    (libc::SYS_clock_nanosleep, "clock_nanosleep"),
    (libc::SYS_wait4, "wait4"),
    (libc::SYS_waitid, "waitid"),
    (libc::SYS_futex, "futex"),
    (libc::SYS_rt_sigsuspend, "rt_sigsuspend"),
    (libc::SYS_rt_sigtimedwait, "rt_sigtimedwait"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_accept, "accept"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_poll, "poll"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_select, "select"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_epoll_wait, "epoll_wait"),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_pause, "pause"),
];

/// Calls whose first argument is the descriptor they wait on.
const FD_CALLS: &[&str] = &[
    "read", "write", "recvfrom", "sendto", "recvmsg", "sendmsg", "accept", "accept4", "connect",
];

/// `/proc/PID/syscall`: the number of the call it is blocked in and its
/// arguments (`0 0x4 ...` is read(4, ...)), or `running`.
fn syscall(pid: i32) -> String {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/syscall")) else {
        return String::new();
    };
    let mut fields = text.split_whitespace();
    let Some(nr) = fields.next().and_then(|n| n.parse::<i64>().ok()) else {
        return String::new(); // "running" (or "-1": not in a system call)
    };
    let Some(&(_, name)) = SYSCALLS.iter().find(|(n, _)| *n == nr) else {
        return format!("syscall {nr}");
    };
    let fd = fields
        .next()
        .and_then(|a| i64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
    match fd {
        Some(fd) if FD_CALLS.contains(&name) => format!("{name}({fd})"),
        _ => name.to_string(),
    }
}

/// What a blocked process waits for, in words: from its system call and
/// the descriptor it names (a socket, a pipe, the terminal), else from the
/// kernel function in wchan.
pub fn waiting_for(process: &Process) -> Option<String> {
    let call = process.syscall.as_str();
    let (name, fd) = match call.split_once('(') {
        Some((name, rest)) => (name, rest.trim_end_matches(')').parse::<i32>().ok()),
        None => (call, None),
    };
    let what = fd.map(|fd| descriptor_kind(process.pid, fd));
    let text = match (name, what.as_deref()) {
        ("read" | "recvfrom" | "recvmsg", Some(kind)) => {
            format!("{name}(): waiting for data on {kind}")
        }
        ("write" | "sendto" | "sendmsg", Some(kind)) => {
            format!("{name}(): {kind} is full, waiting for room")
        }
        ("accept" | "accept4", _) => format!("{name}(): waiting for a connection"),
        ("connect", _) => "connect(): waiting for the SYN+ACK".to_string(),
        ("poll" | "ppoll" | "select" | "pselect6" | "epoll_wait" | "epoll_pwait", _) => {
            format!("{name}(): waiting on several descriptors")
        }
        ("nanosleep" | "clock_nanosleep", _) => "sleep()".to_string(),
        ("wait4" | "waitid", _) => format!("{name}(): waiting for a child to exit"),
        ("futex", _) => "a futex: a lock, condvar or thread join".to_string(),
        ("pause" | "rt_sigsuspend" | "rt_sigtimedwait", _) => "waiting for a signal".to_string(),
        _ => return wchan_meaning(&process.wchan).map(str::to_string),
    };
    Some(text)
}

/// "a socket", "a pipe", "the terminal", from /proc/PID/fd/FD.
fn descriptor_kind(pid: i32, fd: i32) -> String {
    let link = fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default();
    if link.starts_with("socket:") {
        format!("socket fd {fd}")
    } else if link.starts_with("pipe:") {
        format!("pipe fd {fd}")
    } else if link.starts_with("/dev/pts") || link.starts_with("/dev/tty") {
        format!("the terminal (fd {fd})")
    } else {
        format!("fd {fd}")
    }
}

/// The children of `pid`, zombies included (see [`proc_stat::children`]).
pub use echo_lab_cli::proc_stat::children;

/// What a sleeping process waits for, from the kernel function in wchan.
pub fn wchan_meaning(wchan: &str) -> Option<&'static str> {
    Some(match wchan {
        "inet_csk_accept" | "inet_csk_wait_for_connect" => "accept(): waiting for a connection",
        "wait_woken" | "sk_wait_data" | "tcp_recvmsg" | "tcp_recvmsg_locked" => {
            "read(): waiting for data on a socket"
        }
        "sk_stream_wait_memory" => "write(): the socket send buffer is full",
        "inet_wait_for_connect" | "__inet_stream_connect" => "connect(): waiting for SYN+ACK",
        "n_tty_read" | "wait_woken_tty" => "read(): waiting at the terminal",
        "pipe_read" | "anon_pipe_read" | "pipe_wait_readable" => "read(): waiting on a pipe",
        "pipe_write" | "anon_pipe_write" | "pipe_wait_writable" => "write(): a pipe is full",
        "hrtimer_nanosleep" | "do_nanosleep" | "clock_nanosleep" => "sleep()",
        "do_sys_poll" | "do_poll" | "do_select" | "core_sys_select" => {
            "poll()/select(): waiting on several descriptors"
        }
        "ep_poll" | "do_epoll_wait" => "epoll_wait()",
        "do_wait" | "kernel_wait4" => "wait(): waiting for a child to exit",
        "futex_wait_queue" | "futex_wait_queue_me" | "futex_wait" => {
            "a futex: a lock, condvar or join"
        }
        "do_sigtimedwait" | "sigsuspend" => "waiting for a signal",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_give_their_inode() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
    }

    /// This test process holds a socket; the scan finds it, with its fd.
    #[test]
    fn a_scan_finds_our_own_socket() {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_raw_fd();
        let inode = fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino() as u32;
        let me = std::process::id() as i32;
        let owners = scan([me], &HashSet::from([inode]));
        assert_eq!(owners.of(inode).len(), 1);
        assert_eq!(owners.of(inode)[0].pid, me);
        assert_eq!(owners.of(inode)[0].fd, fd);
        let info = process(me).unwrap();
        assert_eq!(info.pid, me);
    }

    /// A child sleeping in nanosleep: its system call says so.
    #[test]
    fn a_sleeping_child_is_seen_in_its_system_call() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut seen = None;
        for _ in 0..500 {
            let p = process(pid).unwrap();
            if p.state == 'S' && !p.syscall.is_empty() {
                seen = Some(p);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
        let p = seen.expect("sleep(1) never seen sleeping");
        assert!(p.syscall.contains("nanosleep"), "{p:?}");
        assert_eq!(waiting_for(&p).as_deref(), Some("sleep()"));
    }
}
