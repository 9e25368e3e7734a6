//! What /proc says about a process: state, parent, where it sleeps.
//!
//! The harness asks the kernel, not the programs' own output, whether a
//! child is a zombie: `/proc/PID/stat` field 3 is the state (`Z`), field 4
//! the parent (see proc(5)).

use std::fs;

/// One line of `ps -o pid,ppid,stat,wchan,comm` (and the blocked system
/// call): the observer's reading of /proc, shared.
pub use observer::procfs::Process as ProcInfo;

/// Read `/proc/PID/stat`, `wchan` and `syscall`; `None` once it is gone.
pub fn info(pid: i32) -> Option<ProcInfo> {
    observer::procfs::process(pid)
}

/// Is the process blocked in system call `nr` (e.g. `libc::SYS_write`)?
/// `/proc/PID/syscall` starts with the call's number while it sleeps in it.
/// (wchan cannot tell: read() and write() on a socket both sleep in
/// wait_woken.)
/// (For a process, the question is asked of its main thread, as
/// `/proc/PID/syscall` does.)
pub fn blocked_in(pid: i32, nr: i64) -> bool {
    blocked_in_task(pid, pid, nr)
}

/// The same for one thread (task) of a process.
pub fn blocked_in_task(pid: i32, tid: i32, nr: i64) -> bool {
    let base = format!("/proc/{pid}/task/{tid}");
    let Ok(text) = fs::read_to_string(format!("{base}/syscall")) else {
        return false;
    };
    let state = echo_lab_cli::proc_stat::read_task(pid, tid).map(|s| s.state);
    state == Some('S') && text.split_whitespace().next() == Some(&nr.to_string())
}

/// The raw first line of `/proc/PID/syscall`, for evidence.
pub fn syscall_line(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/syscall"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A process as one read of its `/proc/PID/stat` gives it: enough to walk
/// a tree and count its zombies.
pub use echo_lab_cli::proc_stat::Stat;

/// Every process's [`Stat`]: one read of `/proc/PID/stat` each.
///
/// Only that one read: asking for wchan and the system call of every
/// process on the machine would cost three reads each, and a benchmark
/// holding 1,000 server children has over 2,000 processes.
fn stats() -> Vec<Stat> {
    echo_lab_cli::proc_stat::all()
}

/// Every process whose parent is `ppid`, zombies included.
pub fn children(ppid: i32) -> Vec<ProcInfo> {
    echo_lab_cli::proc_stat::children(ppid)
        .into_iter()
        .filter_map(info)
        .collect()
}

/// How many threads `pid` has (/proc/PID/task: one entry each).
pub fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// All the descendants of `pid` (not `pid` itself), parents before
/// children: one pass over /proc, then a walk down the tree it gives.
pub fn descendants(pid: i32) -> Vec<Stat> {
    let all = stats();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for s in all.iter().filter(|s| s.ppid == parent) {
            frontier.push(s.pid);
            out.push(s.clone());
        }
    }
    out
}

/// Children of `ppid` that are zombies: exited, never waited for.
pub fn zombie_children(ppid: i32) -> Vec<i32> {
    children(ppid)
        .into_iter()
        .filter(|p| p.state == 'Z')
        .map(|p| p.pid)
        .collect()
}

/// Where each thread of `pid` sleeps: `/proc/PID/task/TID/wchan`.
pub fn thread_wchans(pid: i32) -> Vec<(i32, String)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let tid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let wchan = fs::read_to_string(format!("/proc/{pid}/task/{tid}/wchan")).ok()?;
        Some((tid, wchan))
    })
    .collect()
}

/// Become the reaper of our orphaned descendants (PR_SET_CHILD_SUBREAPER).
///
/// When a server dies before its children, the kernel gives the orphans to
/// the nearest subreaper ancestor instead of PID 1, which here reaps only
/// late. As their new parent, the harness can wait for them itself and
/// count only its own descendants.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and
    // touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// A process held by a pidfd (pidfd_open(2), Linux 5.3) rather than by its
/// number. A pid is only a number: once its process is reaped the kernel
/// may give it to a new one, and `/proc/PID` then describes a stranger. A
/// pidfd names the one process it was opened for, until it is closed.
#[derive(Debug)]
pub struct Held {
    pub pid: i32,
    /// `None`: it was reaped before we could open it.
    fd: Option<std::os::fd::OwnedFd>,
}

impl Held {
    /// Hold `pid` now: a zombie can still be held; a pid already reaped
    /// is held as exited.
    pub fn new(pid: i32) -> Held {
        use std::os::fd::FromRawFd as _;
        // SAFETY: pidfd_open takes a pid and flags (none) and returns a new
        // descriptor or -1; no memory of ours is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let fd = (fd >= 0).then(|| {
            // SAFETY: the kernel has just returned this descriptor: it is
            // open, and no one else owns it.
            unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
        });
        Held { pid, fd }
    }

    /// Has it exited (a zombie now, or reaped)? poll(2) on a pidfd
    /// reports it readable once its process has exited (pidfd_open(2)).
    pub fn exited(&self) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd as _;
        let Some(fd) = &self.fd else { return true };
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A held process is running until it exits; a zombie counts as
    /// exited (nobody has waited for it yet), and so does a process
    /// reaped since: the pidfd still names it, whatever /proc shows under
    /// its number now.
    #[test]
    fn a_held_process_has_exited_once_it_is_a_zombie_and_after() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let held = Held::new(pid);
        assert!(!held.exited(), "sleep 30 has just started");
        child.kill().unwrap();
        let zombie = crate::wait::within(Duration::from_secs(10), || {
            info(pid).filter(|p| p.state == 'Z')
        });
        assert!(zombie.is_some(), "SIGKILLed and not waited for: a zombie");
        assert!(held.exited(), "a zombie has exited");
        child.wait().unwrap();
        assert!(held.exited(), "reaped: still exited");
        assert!(Held::new(pid).exited(), "a pid reaped before it is held");
    }
}
