//! Network namespaces by name, the way `ip netns` keeps them: a file in
//! /run/netns/NAME, bind-mounted on a namespace so that it lives on with
//! no process inside.
//!
//! A thread can enter a namespace with setns(); sockets and devices it
//! creates belong to that namespace for good, whichever thread uses them
//! later. We do that on a short-lived helper thread, so the rest of the
//! process never changes namespace.

use std::os::fd::AsFd;
use std::path::PathBuf;

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Run `f` on a helper thread that has entered namespace `name`.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let file =
        std::fs::File::open(path(name)).map_err(|e| format!("{}: {e}", path(name).display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("setns({name}): {e:?} ({})", e.desc()))?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err("helper thread panicked".to_string()))
    })
}

/// The inode that identifies a namespace (as in `/proc/PID/ns/net`).
pub fn inode(name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path(name)).ok().map(|m| m.ino())
}

/// Every process whose network namespace is the one with this inode.
pub fn processes_in(ns_inode: u64) -> Vec<i32> {
    let wanted = format!("net:[{ns_inode}]");
    crate::procfs::all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|link| link.to_string_lossy() == wanted)
        })
        .collect()
}
