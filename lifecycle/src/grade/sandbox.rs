//! A submission's processes, kept in bounds and ended with it.
//!
//! A student's server that forks without bound, or a client that never
//! exits, must not take the rest of the class down with it. Every process
//! a submission starts (its build, its server, its client) is moved,
//! between fork and exec, into a cgroup of its own with a pid limit: past
//! `pids.max`, fork() and clone() fail with EAGAIN (the pids controller,
//! Documentation/admin-guide/cgroup-v1/pids.rst; the same file in v2), and
//! `pids.events` counts each refusal, which is how the grader knows a
//! submission hit the limit. When the submission is done, or its time is
//! up, everything in the cgroup is killed (`cgroup.kill` in v2, SIGKILL
//! to each member otherwise, until none is left) and the cgroup removed.
//!
//! The harness's own processes (the echo-server a client is graded
//! against, the echo-clients a server is graded with) stay outside: the
//! limit is the student's alone.
//!
//! Where no cgroup can be made (not root, no pids controller), the limit
//! is RLIMIT_NPROC, set in each student process before exec. It counts
//! every process of the user, so it is set to what the user runs now plus
//! the allowance; root is exempt from it, and a fork bomb is then ended
//! only by the check's time limit. Simplified: no memory or CPU limit
//! (the checks' deadlines bound the time, `Capture::LIMIT` the output).

use std::fs;
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How many processes (threads count: each is a task) one submission may
/// have at once: a forking server serving the grader's 20 simultaneous
/// clients needs 21, and a shell or two may sit in between.
pub const MAX_PIDS: u64 = 100;

/// Where a cgroup with the pids controller can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hierarchy {
    /// cgroup v2, mounted at /sys/fs/cgroup, the pids controller enabled.
    V2,
    /// cgroup v1's pids hierarchy, /sys/fs/cgroup/pids.
    V1,
}

impl Hierarchy {
    fn root(self) -> &'static Path {
        match self {
            Hierarchy::V2 => Path::new("/sys/fs/cgroup"),
            Hierarchy::V1 => Path::new("/sys/fs/cgroup/pids"),
        }
    }

    fn find() -> Option<Hierarchy> {
        let v2 = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
        if v2.split_whitespace().any(|c| c == "pids") {
            Some(Hierarchy::V2)
        } else if Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
            Some(Hierarchy::V1)
        } else {
            None
        }
    }
}

/// The class's cgroup, `echo-lab-grade-PID`, parent of one per
/// submission; removed when dropped.
pub struct ClassCgroup {
    hierarchy: Option<(Hierarchy, PathBuf)>,
}

impl ClassCgroup {
    /// Make it if we can (root, a pids controller); otherwise the jails
    /// fall back to RLIMIT_NPROC.
    pub fn new() -> ClassCgroup {
        let made = Hierarchy::find().and_then(|h| {
            let dir = h
                .root()
                .join(format!("echo-lab-grade-{}", std::process::id()));
            if h == Hierarchy::V2 {
                // A v2 cgroup offers a controller to its children only if
                // its parent does: enable pids on the way down.
                let _ = fs::write(h.root().join("cgroup.subtree_control"), "+pids");
            }
            fs::create_dir(&dir).ok()?;
            crate::interrupt::track_cgroup(dir.clone());
            if h == Hierarchy::V2 && fs::write(dir.join("cgroup.subtree_control"), "+pids").is_err()
            {
                let _ = fs::remove_dir(&dir);
                crate::interrupt::untrack_cgroup(&dir);
                return None;
            }
            Some((h, dir))
        });
        ClassCgroup { hierarchy: made }
    }

    /// How submissions are confined, in words, for the report's header.
    pub fn describe(&self) -> String {
        match &self.hierarchy {
            Some((Hierarchy::V2, _)) => format!("a cgroup v2 each, pids.max {MAX_PIDS}"),
            Some((Hierarchy::V1, _)) => format!("a pids cgroup (v1) each, pids.max {MAX_PIDS}"),
            None if nix::unistd::geteuid().is_root() => {
                "no pids cgroup here: no pid limit (root ignores RLIMIT_NPROC)".to_string()
            }
            None => format!("RLIMIT_NPROC: the user's processes now + {MAX_PIDS}"),
        }
    }

    /// A jail for one submission (`name` is only part of its path).
    pub fn jail(&self, name: &str) -> Jail {
        let cgroup = self.hierarchy.as_ref().and_then(|(h, parent)| {
            let safe: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let dir = parent.join(format!("{safe}-{}", next_serial()));
            fs::create_dir(&dir).ok()?;
            crate::interrupt::track_cgroup(dir.clone());
            let ready = fs::write(dir.join("pids.max"), MAX_PIDS.to_string()).is_ok();
            let procs = fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
                .ok()
                .filter(|_| ready);
            match procs {
                Some(file) => Some(Cgroup {
                    dir,
                    v2: *h == Hierarchy::V2,
                    procs: OwnedFd::from(file),
                }),
                None => {
                    let _ = fs::remove_dir(&dir);
                    crate::interrupt::untrack_cgroup(&dir);
                    None
                }
            }
        });
        let nproc = match cgroup {
            Some(_) => None,
            None if nix::unistd::geteuid().is_root() => None,
            None => Some(user_processes() + MAX_PIDS),
        };
        Jail { cgroup, nproc }
    }
}

impl Default for ClassCgroup {
    fn default() -> Self {
        ClassCgroup::new()
    }
}

impl Drop for ClassCgroup {
    fn drop(&mut self) {
        if let Some((_, dir)) = &self.hierarchy {
            let _ = fs::remove_dir(dir);
            crate::interrupt::untrack_cgroup(dir);
        }
    }
}

fn next_serial() -> u64 {
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    SERIAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// The processes of our real user now (each /proc/PID directory belongs
/// to its process's user).
fn user_processes() -> u64 {
    let me = nix::unistd::getuid().as_raw();
    echo_lab_cli::proc_stat::pids()
        .into_iter()
        .filter(|pid| fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == me))
        .count() as u64
}

struct Cgroup {
    dir: PathBuf,
    v2: bool,
    /// `cgroup.procs`, open for writing: the child writes "0" to it.
    procs: OwnedFd,
}

/// One submission's bounds: its cgroup, or its RLIMIT_NPROC.
pub struct Jail {
    cgroup: Option<Cgroup>,
    nproc: Option<u64>,
}

impl Jail {
    /// No bounds at all: a single `--server-cmd` run by hand, where the
    /// process tree is followed by spawn.rs as for every program.
    pub fn none() -> Jail {
        Jail {
            cgroup: None,
            nproc: None,
        }
    }

    /// Make `command`'s process join the jail before it execs.
    pub fn confine(&self, command: &mut Command) {
        let procs = self.cgroup.as_ref().map(|c| c.procs.as_raw_fd());
        let nproc = self.nproc;
        // SAFETY: the closure runs in the forked child before exec and
        // calls only write(2) on a descriptor opened by the parent (the
        // cgroup's `cgroup.procs`) and setrlimit(2) with a local struct:
        // both async-signal-safe, no allocation, no lock.
        unsafe {
            command.pre_exec(move || {
                if let Some(fd) = procs {
                    // "0" moves the writing process itself.
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(n) = nproc {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NPROC, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// How many times a fork was refused for the pid limit
    /// (`pids.events`: `max N`).
    pub fn refused_forks(&self) -> u64 {
        let Some(c) = &self.cgroup else { return 0 };
        fs::read_to_string(c.dir.join("pids.events"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("max ")?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The processes in the jail now (empty without a cgroup).
    pub fn members(&self) -> Vec<i32> {
        let Some(c) = &self.cgroup else {
            return Vec::new();
        };
        fs::read_to_string(c.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kill everything in the jail, and wait (a little) until it is empty.
    /// A process that forks while we kill is killed on the next pass; the
    /// pid limit bounds how many passes that can take.
    pub fn kill_all(&self) {
        let Some(c) = &self.cgroup else { return };
        let kill_file = c.dir.join("cgroup.kill");
        if c.v2 && kill_file.exists() {
            let _ = fs::OpenOptions::new()
                .write(true)
                .open(&kill_file)
                .and_then(|mut f| f.write_all(b"1"));
        }
        crate::wait::within(Duration::from_secs(5), || {
            let members = self.members();
            for pid in &members {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            members.is_empty().then_some(())
        });
    }

    /// Where the jail is, for evidence.
    pub fn describe(&self) -> String {
        match (&self.cgroup, self.nproc) {
            (Some(c), _) => format!("cgroup {}", c.dir.display()),
            (None, Some(n)) => format!("RLIMIT_NPROC {n}"),
            (None, None) => "no pid limit".to_string(),
        }
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(c) = &self.cgroup {
            // The killed are reaped by their parents (or by us, as
            // subreaper) a moment later; until then the cgroup is busy.
            crate::wait::within(Duration::from_secs(5), || fs::remove_dir(&c.dir).ok());
            crate::interrupt::untrack_cgroup(&c.dir);
        }
    }
}
