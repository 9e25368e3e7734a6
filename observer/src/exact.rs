//! `observer --exact`: every TCP state change, from the kernel's own
//! tracepoint `sock:inet_sock_set_state`, read as text through tracefs.
//!
//! The kernel calls this tracepoint each time a socket changes state
//! (inet_sk_state_store and friends, include/trace/events/sock.h): it sees
//! the 80 microseconds a loopback socket spends in SYN_SENT, which no
//! sampler does. bcc's tcpstates reads the same tracepoint through eBPF;
//! here a root process reads it as text, with no BPF at all:
//!
//! 1. a private tracefs instance (`instances/echolab-PID`): its own ring
//!    buffer, never the global one another tool may be using;
//! 2. trace_clock `mono`: timestamps on CLOCK_MONOTONIC, the clock our own
//!    polls use, so both sources merge into one ordered timeline;
//! 3. only `sock/inet_sock_set_state`, filtered on the port;
//! 4. `trace_pipe`, read as it fills (buffer_percent 0: wake on any data).
//!
//! What the tracepoint does not show, inet_diag does: a socket entering
//! TIME_WAIT is replaced by a timewait entry and the tracepoint says
//! FIN_WAIT2 -> CLOSE; queues, inode, uid and owners are not in it either.
//! The instance is removed on exit and, if a killed run left one, at the
//! next start.

use std::fs;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use crate::tcp_state::TcpState;

/// Where tracefs lives on a modern system.
pub const TRACEFS: &str = "/sys/kernel/tracing";
const EVENT: &str = "events/sock/inet_sock_set_state";
const PREFIX: &str = "echolab-";

/// One state change, as the tracepoint reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// CLOCK_MONOTONIC time of the change.
    pub at: Duration,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub old: TcpState,
    pub new: TcpState,
    /// The task running when it happened (in softirq: whoever was on the CPU).
    pub pid: i32,
    pub comm: String,
}

/// Why the exact source is not available: one line for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

/// The private tracefs instance, removed when dropped.
pub struct Instance {
    dir: PathBuf,
    /// True if we mounted tracefs ourselves (said once).
    pub mounted: bool,
}

fn write(path: &Path, value: &str) -> Result<(), Unavailable> {
    fs::write(path, value).map_err(|e| Unavailable(format!("cannot write {}: {e}", path.display())))
}

/// Mount tracefs if it is not there. Returns whether we mounted it.
fn ensure_mounted() -> Result<bool, Unavailable> {
    if Path::new(TRACEFS).join("instances").is_dir() {
        return Ok(false);
    }
    nix::mount::mount(
        Some("nodev"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| {
        Unavailable(format!(
            "tracefs is not mounted and mounting it failed: {e}"
        ))
    })?;
    Ok(true)
}

/// Remove instances left by runs that were killed (their pid is gone, or
/// no longer an observer).
pub fn remove_stale() -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(Path::new(TRACEFS).join("instances")) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive =
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "observer");
        if !alive && fs::remove_dir(entry.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

impl Instance {
    /// Set up a private instance tracing state changes on `port` (or all).
    pub fn create(port: Option<u16>) -> Result<Instance, Unavailable> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Unavailable("--exact needs root (tracefs)".to_string()));
        }
        let mounted = ensure_mounted()?;
        remove_stale();
        let dir = Path::new(TRACEFS)
            .join("instances")
            .join(format!("{PREFIX}{}", std::process::id()));
        fs::create_dir(&dir)
            .map_err(|e| Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let instance = Instance { dir, mounted };
        let event = instance.dir.join(EVENT);
        if !event.is_dir() {
            return Err(Unavailable(
                "this kernel has no sock:inet_sock_set_state tracepoint".to_string(),
            ));
        }
        write(&instance.dir.join("trace_clock"), "mono")?;
        // Wake readers on any data, not when the buffer is half full.
        let _ = write(&instance.dir.join("buffer_percent"), "0");
        if let Some(p) = port {
            write(
                &event.join("filter"),
                &format!("sport == {p} || dport == {p}"),
            )?;
        }
        write(&event.join("enable"), "1")?;
        Ok(instance)
    }

    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Start a thread that reads trace_pipe and sends each transition.
    pub fn read(
        &self,
        stop: Arc<AtomicBool>,
    ) -> Result<(Receiver<Transition>, std::thread::JoinHandle<()>), Unavailable> {
        use std::os::unix::fs::OpenOptionsExt;
        let pipe = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.dir.join("trace_pipe"))
            .map_err(|e| Unavailable(format!("cannot open trace_pipe: {e}")))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || pump(pipe, tx, &stop));
        Ok((rx, handle))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = fs::write(self.dir.join(EVENT).join("enable"), "0");
        // rmdir fails while trace_pipe is open: the reader thread must have
        // been joined first.
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The trace names a task from the tracer's small cache of names
/// (saved_cmdlines), kept by pid: `<...>` when the pid is not in it yet (a
/// process that just started), and the wrong name when the pid belonged
/// to another program before (pids wrap at kernel.pid_max, 32,768 on this
/// project's machines: a thousand forks a second reuse them within a
/// minute). While the task lives, /proc/PID/comm is the truth: ask it.
fn name_task(t: &mut Transition) {
    if t.pid > 0 {
        if let Ok(comm) = fs::read_to_string(format!("/proc/{}/comm", t.pid)) {
            t.comm = comm.trim().to_string();
        }
    }
}

/// Read trace_pipe until `stop`, parsing complete lines.
fn pump(mut pipe: fs::File, tx: Sender<Transition>, stop: &AtomicBool) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut pending = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(100u16)), Ok(n) if n > 0) {
            continue;
        }
        let n = match pipe.read(&mut buf) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(_) => continue, // EAGAIN
        };
        pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(mut t) = parse_line(&line) {
                name_task(&mut t);
                if tx.send(t).is_err() {
                    return;
                }
            }
        }
    }
}

fn state(text: &str) -> Option<TcpState> {
    text.strip_prefix("TCP_")?.parse().ok()
}

/// Parse one trace_pipe line:
///
/// ```text
///  echo-client-25224 [001] ..s2.  3436.944489: inet_sock_set_state: family=AF_INET
///  protocol=IPPROTO_TCP sport=7333 dport=37548 saddr=127.0.0.1 daddr=127.0.0.1
///  saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 oldstate=TCP_SYN_RECV newstate=TCP_ESTABLISHED
/// ```
pub fn parse_line(line: &str) -> Option<Transition> {
    let (head, fields) = line.split_once(" inet_sock_set_state: ")?;
    let head = head.trim_end().strip_suffix(':')?;
    // "   comm-pid   [cpu] flags  secs.micros": comm may hold spaces and
    // dashes, so the pid is after the last '-' before the CPU column.
    let (task, rest) = head.split_once('[')?;
    let task = task.trim();
    let timestamp = rest.split_whitespace().last()?;
    let (secs, micros) = timestamp.split_once('.')?;
    let at = Duration::from_secs(secs.parse().ok()?) + Duration::from_micros(micros.parse().ok()?);
    let (comm, pid) = task.rsplit_once('-')?;
    let mut get = std::collections::HashMap::new();
    for pair in fields.split_whitespace() {
        if let Some((k, v)) = pair.split_once('=') {
            get.insert(k, v);
        }
    }
    if *get.get("protocol")? != "IPPROTO_TCP" {
        return None;
    }
    let v6 = *get.get("family")? == "AF_INET6";
    let addr = |a: &str, a6: &str, port: &str| -> Option<SocketAddr> {
        let ip: IpAddr = if v6 {
            get.get(a6)?.parse().ok()?
        } else {
            get.get(a)?.parse().ok()?
        };
        Some(SocketAddr::new(ip, get.get(port)?.parse().ok()?))
    };
    Some(Transition {
        at,
        local: addr("saddr", "saddrv6", "sport")?,
        remote: addr("daddr", "daddrv6", "dport")?,
        old: state(get.get("oldstate")?)?,
        new: state(get.get("newstate")?)?,
        pid: pid.parse().ok()?,
        comm: comm.trim().to_string(),
    })
}

/// CLOCK_MONOTONIC now, the clock of the trace timestamps.
pub fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default()
}

/// Time spent in each state, per socket, from consecutive transitions.
///
/// A client's CLOSE -> SYN_SENT is reported before its port is chosen
/// (sport 0); its SYN_SENT -> ESTABLISHED then carries the real port. We
/// join the two by addresses and remote port (the earliest pending one if
/// several connect at once: a simplification).
#[derive(Debug, Default)]
pub struct Durations {
    since: std::collections::HashMap<(SocketAddr, SocketAddr), (TcpState, Duration)>,
}

impl Durations {
    /// Record `t`; return how long the socket was in `t.old`, if known.
    pub fn record(&mut self, t: &Transition) -> Option<Duration> {
        let key = (t.local, t.remote);
        let mut previous = self.since.remove(&key);
        if previous.is_none() && t.old == TcpState::SynSent {
            let unbound = (SocketAddr::new(t.local.ip(), 0), t.remote);
            previous = self.since.remove(&unbound);
        }
        if t.new == TcpState::Close {
            // A closed socket's 4-tuple may be reused by the next one.
        } else {
            self.since.insert(key, (t.new, t.at));
        }
        previous
            .filter(|(state, _)| *state == t.old)
            .map(|(_, at)| t.at.saturating_sub(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "     echo-client-25224   [001] ..s2.  3436.944489: inet_sock_set_state: \
        family=AF_INET protocol=IPPROTO_TCP sport=7333 dport=37548 saddr=127.0.0.1 daddr=127.0.0.1 \
        saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 oldstate=TCP_SYN_RECV newstate=TCP_ESTABLISHED\n";

    #[test]
    fn a_trace_line_parses() {
        let t = parse_line(LINE).unwrap();
        assert_eq!(t.comm, "echo-client");
        assert_eq!(t.pid, 25224);
        assert_eq!(t.at, Duration::from_micros(3_436_944_489));
        assert_eq!(t.local, "127.0.0.1:7333".parse().unwrap());
        assert_eq!(t.remote, "127.0.0.1:37548".parse().unwrap());
        assert_eq!((t.old, t.new), (TcpState::SynRecv, TcpState::Established));
    }

    #[test]
    fn ipv6_and_unknown_comm_parse() {
        let line = "           <...>-25312   [001] .....  3449.296061: inet_sock_set_state: family=AF_INET6 \
            protocol=IPPROTO_TCP sport=0 dport=6666 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 \
            oldstate=TCP_CLOSE newstate=TCP_SYN_SENT";
        let t = parse_line(line).unwrap();
        assert_eq!(t.comm, "<...>");
        assert_eq!(t.local, "[::1]:0".parse().unwrap());
        assert_eq!(t.new, TcpState::SynSent);
        assert!(parse_line("# tracer: nop").is_none());
    }

    /// SYN_SENT's duration joins the unbound (port 0) and bound reports.
    #[test]
    fn durations_join_the_unbound_syn_sent() {
        let mk = |at_us: u64, local: &str, old, new| Transition {
            at: Duration::from_micros(at_us),
            local: local.parse().unwrap(),
            remote: "127.0.0.1:6666".parse().unwrap(),
            old,
            new,
            pid: 1,
            comm: "c".into(),
        };
        let mut d = Durations::default();
        assert_eq!(
            d.record(&mk(100, "127.0.0.1:0", TcpState::Close, TcpState::SynSent)),
            None
        );
        let est = d.record(&mk(
            170,
            "127.0.0.1:40000",
            TcpState::SynSent,
            TcpState::Established,
        ));
        assert_eq!(est, Some(Duration::from_micros(70)));
        let fw1 = d.record(&mk(
            1170,
            "127.0.0.1:40000",
            TcpState::Established,
            TcpState::FinWait1,
        ));
        assert_eq!(fw1, Some(Duration::from_millis(1)));
    }
}
