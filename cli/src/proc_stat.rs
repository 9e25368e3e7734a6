//! `/proc/PID/stat`: one process's state, parent and start time, and the
//! process tree they give.
//!
//! The line is `pid (comm) state ppid pgrp ...` (proc(5)). comm is the
//! command's name between parentheses and may itself hold spaces and `)`,
//! so the fields after it are found after the **last** `)`.

use std::fs;

/// A process as one read of its `/proc/PID/stat` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    /// The command's name, at most 15 bytes (TASK_COMM_LEN - 1).
    pub comm: String,
    /// R running, S sleeping, D uninterruptible, T stopped, Z zombie, ...
    pub state: char,
    pub ppid: i32,
    /// Field 5: the process group (a shell's job; `setpgid`).
    pub pgrp: i32,
    /// Field 22: when it started, in clock ticks after boot. A zombie
    /// keeps it; its exit time is nowhere in /proc.
    pub starttime: u64,
}

/// Take a stat line apart; `None` if it is not one.
pub fn parse(pid: i32, line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_string();
    let mut fields = line[close + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // pgrp was field 5; starttime is field 22, 17 further on.
    let starttime = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        pid,
        comm,
        state,
        ppid,
        pgrp,
        starttime,
    })
}

/// Read `/proc/PID/stat`; `None` once the process is gone (and reaped).
pub fn read(pid: i32) -> Option<Stat> {
    parse(pid, &fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The same for one thread (task) of a process.
pub fn read_task(pid: i32, tid: i32) -> Option<Stat> {
    let line = fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    parse(tid, &line)
}

/// Every process id in /proc now.
pub fn pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every process, one read of its stat each.
pub fn all() -> Vec<Stat> {
    pids().into_iter().filter_map(read).collect()
}

/// The children of `pid`, zombies included: a zombie stays on its parent's
/// list until it is reaped.
///
/// `/proc/PID/task/TID/children` lists them directly, but only on kernels
/// built with CONFIG_PROC_CHILDREN (this project's CI kernel is not); else
/// a scan of every process's stat finds those whose parent is `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(list) = fs::read_to_string(task.path().join("children")) else {
            // No such file: the kernel cannot list them; scan instead.
            return all()
                .into_iter()
                .filter(|s| s.ppid == pid)
                .map(|s| s.pid)
                .collect();
        };
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line (from `cat /proc/4242/stat`, shortened after field 22),
    /// with a comm that holds a space and a `)`.
    #[test]
    fn comm_may_hold_spaces_and_parentheses() {
        let line = "4242 (echo) server) Z 4100 4100 4000 34816 4100 4194604 \
                    91 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
        let stat = parse(4242, line).unwrap();
        assert_eq!(stat.comm, "echo) server");
        assert_eq!(stat.state, 'Z');
        assert_eq!(stat.ppid, 4100);
        assert_eq!(stat.starttime, 123456);
    }

    #[test]
    fn we_are_our_parents_child() {
        let me = std::process::id() as i32;
        let stat = read(me).unwrap();
        // The process's line is its main thread's: the test harness's
        // main thread sleeps while this test runs on another.
        assert!("RS".contains(stat.state), "{stat:?}");
        assert!(children(stat.ppid).contains(&me));
        assert!(!children(me).contains(&me));
    }
}
