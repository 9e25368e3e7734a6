//! The inet_diag source: one network namespace's sockets and the
//! processes holding them, polled, and turned into events by the
//! [`Tracker`].
//!
//! What the watch runs, and what the lab runs on each of its two hosts.

use std::time::Instant;

use crate::diag::{DiagError, DiagSocket, Query};
use crate::event::Event;
use crate::procfs::{self, Owners};
use crate::track::Tracker;
/// One network namespace's sockets and the processes holding them, polled:
/// what the watch runs, and what the lab runs on each of its two hosts.
pub struct Poller {
    pub diag: DiagSocket,
    pub tracker: Tracker,
    owners: procfs::OwnerCache,
    /// Processes watched besides the sockets' owners (`--pid`).
    pids: Vec<i32>,
}

/// What one poll produced.
pub struct Polled {
    pub events: Vec<Event>,
    /// A socket of another user has no owner we could see (not root).
    pub owners_hidden: bool,
}

impl Poller {
    pub fn new(diag: DiagSocket, tracker: Tracker, pids: Vec<i32>) -> Poller {
        Poller {
            diag,
            tracker,
            owners: procfs::OwnerCache::default(),
            pids,
        }
    }

    /// Dump the sockets, find their owners, compare with the last poll,
    /// read the watched processes.
    pub fn poll(&mut self, now: Instant, query: &Query) -> Result<Polled, DiagError> {
        // One walk of the kernel's tables for both families (half the
        // kernel time per poll; `observer explain --legacy` shows why).
        let sockets = self.diag.dump_one_walk(query)?;
        let proc_set = self.tracker.watch_set(&Owners::default(), &self.pids);
        let owners = self
            .owners
            .update(now, crate::diag::inodes(&sockets), &proc_set)
            .clone();
        let me = nix::unistd::getuid().as_raw();
        let owners_hidden = owners.denied
            && !nix::unistd::geteuid().is_root()
            && sockets
                .iter()
                .any(|s| s.inode != 0 && owners.of(s.inode).is_empty() && s.uid != me);
        let mut events = self.tracker.poll(now, sockets, &owners);
        let watched = self.tracker.watch_set(&owners, &self.pids);
        let readings = watched
            .into_iter()
            .map(|pid| (pid, procfs::process(pid)))
            .collect();
        events.extend(self.tracker.processes(now, readings));
        events.sort_by_key(|e| (e.t, e.order()));
        Ok(Polled {
            events,
            owners_hidden,
        })
    }
}
