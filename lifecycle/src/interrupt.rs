//! Ctrl-C (or SIGTERM) during a run: stop every program we started and
//! remove every temporary file, then exit 130. Nothing half-done stays.
//!
//! The signals are blocked in every thread and taken by one thread with
//! sigwait(), so no handler runs in the middle of the harness's work.
//! (Children do not inherit the blocked mask: std resets it before exec.)

use std::path::PathBuf;
use std::sync::Mutex;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, pthread_sigmask};
use nix::unistd::Pid;

static LIVE: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Has SIGINT/SIGTERM arrived? The runner stops starting scenarios, and
/// waits for the clean-up thread, which ends the process.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Called by the runner once interrupted: the clean-up thread exits the
/// process when it is done; a failing scenario must not exit first.
pub fn wait_for_cleanup() -> ! {
    loop {
        std::thread::park();
    }
}
static TEMP_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// The grader's cgroups, parents before children.
static CGROUPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A process was started / has ended.
pub fn track(pid: i32) {
    lock(&LIVE).push(pid);
}

pub fn untrack(pid: i32) {
    lock(&LIVE).retain(|&p| p != pid);
}

/// The programs started and not yet ended.
pub fn live() -> Vec<i32> {
    lock(&LIVE).clone()
}

/// A temporary file exists / was removed.
pub fn track_file(path: PathBuf) {
    lock(&TEMP_FILES).push(path);
}

pub fn untrack_file(path: &PathBuf) {
    lock(&TEMP_FILES).retain(|p| p != path);
}

/// A cgroup directory was made / removed (grade::sandbox).
pub fn track_cgroup(path: PathBuf) {
    lock(&CGROUPS).push(path);
}

pub fn untrack_cgroup(path: &PathBuf) {
    lock(&CGROUPS).retain(|p| p != path);
}

/// Kill every process in each cgroup we made and remove it, children
/// first.
fn remove_cgroups() {
    for dir in lock(&CGROUPS).iter().rev() {
        crate::wait::within(std::time::Duration::from_secs(2), || {
            let members: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            for pid in &members {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            // Reap what we killed, so that the cgroup empties.
            while let Ok(
                nix::sys::wait::WaitStatus::Exited(..) | nix::sys::wait::WaitStatus::Signaled(..),
            ) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
            {
            }
            std::fs::remove_dir(dir).ok()
        });
    }
}

/// A temporary file that removes itself when dropped, even when the work
/// fails half-way, and on Ctrl-C (it is tracked from the start).
#[derive(Debug)]
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// Track `path`; the file itself is made by whoever writes it.
    pub fn new(path: PathBuf) -> TempFile {
        track_file(path.clone());
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        untrack_file(&self.0);
    }
}

/// Call once, first thing in main(), before any thread starts.
pub fn cleanup_on_signal() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_err() {
        return;
    }
    std::thread::spawn(move || {
        let Ok(signal) = set.wait() else { return };
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
        let pids: Vec<i32> = lock(&LIVE).clone();
        // SIGTERM first: a lab removes its namespaces, an observer its
        // tracefs instance, a server reaps its children. Then SIGKILL.
        let descendants: Vec<i32> = pids
            .iter()
            .flat_map(|p| crate::procfs::descendants(*p))
            .map(|p| p.pid)
            .collect();
        for pid in &pids {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
        }
        crate::wait::within(crate::spawn::GRACE, || {
            let alive = |p: &i32| crate::procfs::info(*p).is_some_and(|i| i.state != 'Z');
            (!pids.iter().any(alive)).then_some(())
        });
        for pid in pids.iter().chain(&descendants) {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        for path in lock(&TEMP_FILES).iter() {
            let _ = std::fs::remove_file(path);
        }
        remove_cgroups();
        // Reap what we killed (we are their parent, or their subreaper).
        while nix::sys::wait::waitpid(None, None).is_ok() {}
        eprintln!(
            "lifecycle: interrupted by {}: stopped {} programs, removed temporary files",
            signal.as_str(),
            pids.len()
        );
        std::process::exit(130);
    });
}
