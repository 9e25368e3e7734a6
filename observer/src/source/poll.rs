//! The inet_diag source: one network namespace's sockets and the
//! processes holding them, polled, and turned into events by the
//! [`Tracker`].
//!
//! What the watch runs, and what the lab runs on each of its two hosts.
//!
//! # What a poll costs, and how it is kept small
//!
//! A dump walks the kernel's whole connection hash (262,144 buckets here,
//! about 1 ms), however few sockets it returns. So a poll dumps only when
//! the namespace's TCP counters moved since the last dump (a connect, a
//! segment in or out, a new listener, a TIME_WAIT entry expiring: see
//! [`counters`](super::counters)), and at least every [`FULL_DUMP_EVERY`].
//! Otherwise it asks for the sockets it already knows, each by its
//! 4-tuple, all in one datagram: hash lookups, not a walk. If any of them
//! is not found as it was asked (gone, or in a state the query does not
//! want), the poll dumps after all, so that what disappears is always
//! seen by the same means as before.
//!
//! The processes are read again only when they have run
//! ([`procfs::ProcCache`]).
//!
//! Simplified: a busy host, whose counters move at every poll because of
//! other connections, gets a dump at every poll, as before; the watch then
//! costs what it always did (and stretches its interval if a dump takes
//! more than half of it, see [`crate::watch`]).

use std::time::{Duration, Instant};

use super::counters::{Counters, Reading};
use crate::diag::{DiagError, DiagSocket, Query, SockInfo};
use crate::event::Event;
use crate::procfs::{self, Owners, ProcCache};
use crate::track::Tracker;

/// However quiet the counters, a full dump this often: a safety net for
/// what they cannot show (a listener opened and another socket closed
/// within one interval leave `inuse` where it was).
pub const FULL_DUMP_EVERY: Duration = Duration::from_secs(5);

/// After this many polls in a row in which nothing moved, the watch is
/// calm: it polls at [`crate::watch::calm_interval`], and reads what only
/// changes slowly or rarely (the processes; sockstat, when the segment
/// counters are read too) at one poll in [`CALM_SLOW`], until something
/// moves.
pub const CALM_POLLS: u32 = 10;

/// While calm, one poll in this many looks at the processes (every 90 ms
/// at the default interval: a zombie is reported within about twice its
/// 50 ms of grace) and at sockstat beside the segment counters (a new
/// listener, which sends nothing, is seen within 90 ms).
pub const CALM_SLOW: u64 = 6;

/// A dump faster than this is not worth avoiding: the namespace has a
/// small connection hash of its own (the lab's namespaces do, see
/// net.ipv4.tcp_child_ehash_entries in [`crate::lab::setup`]), and
/// reading the counters would cost as much as the walk. Such a namespace
/// is dumped at every poll.
pub const CHEAP_DUMP: Duration = Duration::from_micros(100);

/// One network namespace's sockets and the processes holding them, polled:
/// what the watch runs, and what the lab runs on each of its two hosts.
pub struct Poller {
    pub diag: DiagSocket,
    pub tracker: Tracker,
    owners: procfs::OwnerCache,
    procs: ProcCache,
    /// Processes watched besides the sockets' owners (`--pid`).
    pids: Vec<i32>,
    /// The namespace's TCP counters (None: not readable; dump every time).
    counters: Option<Counters>,
    /// The counters as they were just before the last dump, and when.
    last_dump: Option<(Reading, Instant)>,
    /// How long the last dump took.
    dump_took: Duration,
    /// Who we are (for "owners not shown": other users' sockets).
    uid: u32,
    root: bool,
    /// When the sockets were last read from the kernel (dump or lookup).
    read_at: Option<Instant>,
    /// How many polls dumped, asked by 4-tuple, or asked nothing.
    pub dumps: u64,
    pub lookups: u64,
    pub quiet: u64,
    /// Polls in a row that found the counters where they were.
    calm: u32,
    tick: u64,
}

/// What one poll produced.
pub struct Polled {
    pub events: Vec<Event>,
    /// A socket of another user has no owner we could see (not root).
    pub owners_hidden: bool,
}

impl Poller {
    /// Open the netlink socket and the counters inside `netns` (ours if
    /// None): both stay in the namespace they were opened in.
    pub fn open(
        netns: Option<&str>,
        tracker: Tracker,
        pids: Vec<i32>,
    ) -> Result<Poller, DiagError> {
        let diag = DiagSocket::open_in(netns)?;
        let counters = match netns {
            None => Counters::open(),
            Some(name) => crate::diag::socket::in_netns(name, || Ok(Counters::open()))?,
        };
        Ok(Poller {
            diag,
            tracker,
            owners: procfs::OwnerCache::default(),
            procs: ProcCache::default(),
            pids,
            counters,
            last_dump: None,
            dump_took: Duration::MAX,
            uid: nix::unistd::getuid().as_raw(),
            root: nix::unistd::geteuid().is_root(),
            read_at: None,
            dumps: 0,
            lookups: 0,
            quiet: 0,
            calm: 0,
            tick: 0,
        })
    }

    /// The sockets now, find their owners, compare with the last poll,
    /// read the watched processes.
    pub fn poll(&mut self, now: Instant, query: &Query) -> Result<Polled, DiagError> {
        let read = self.sockets(now, query)?;
        // While calm, the processes are looked at one poll in CALM_SLOW:
        // a process that changes with nothing moving in TCP (a --pid one)
        // is seen within 90 ms.
        let look = !self.is_calm() || self.tick % CALM_SLOW == 0;
        let sockets = match read {
            Some(sockets) => sockets,
            None if look => self.tracker.known(),
            None => {
                // Nothing was read: nothing can have changed. The tracker
                // only learns that this moment was looked at (the bound of
                // what a later poll finds passed unseen).
                self.tracker.looked(now);
                return Ok(Polled {
                    events: Vec::new(),
                    owners_hidden: false,
                });
            }
        };
        self.procs.begin_round(look);
        let procs = &mut self.procs;
        let proc_set = self
            .tracker
            .watch_set(&Owners::default(), &self.pids, &mut |pid| procs.read(pid).1);
        let owners = self
            .owners
            .update(now, crate::diag::inodes(&sockets), &proc_set, &|pid| {
                procs.ran(pid)
            })
            .clone();
        let owners_hidden = owners.denied
            && !self.root
            && sockets
                .iter()
                .any(|s| s.inode != 0 && owners.of(s.inode).is_empty() && s.uid != self.uid);
        let mut events = self.tracker.poll(now, sockets, &owners);
        let watched = self
            .tracker
            .watch_set(&owners, &self.pids, &mut |pid| procs.read(pid).1);
        let readings = watched
            .iter()
            .map(|&pid| (pid, procs.read(pid).0))
            .collect();
        procs.retain(&watched);
        events.extend(self.tracker.processes(now, readings));
        events.sort_by_key(|e| (e.t, e.order()));
        Ok(Polled {
            events,
            owners_hidden,
        })
    }

    /// Has nothing moved for [`CALM_POLLS`] polls?
    pub fn is_calm(&self) -> bool {
        self.calm >= CALM_POLLS
    }

    /// The sockets the query asks for, now: by a dump, or by 4-tuple (for
    /// a TIME_WAIT countdown); `None` if nothing moved, and they are as
    /// they were.
    fn sockets(&mut self, now: Instant, query: &Query) -> Result<Option<Vec<SockInfo>>, DiagError> {
        // Which counters, this time? Sockstat alone shows every new socket
        // made here (connect() and listen() move `inuse`). The segment
        // counters are needed as well when a segment could change a
        // known socket or make one sockstat does not count (see
        // Tracker::segments_matter); then they are read at every poll,
        // and sockstat (a new listener, which sends nothing) at one poll in
        // CALM_SLOW while calm.
        let cheap = self.dump_took < CHEAP_DUMP;
        let segments = self.tracker.segments_matter();
        self.tick += 1;
        let sockstat = !segments || !self.is_calm() || self.tick % CALM_SLOW == 0;
        let reading = match self.counters.as_mut() {
            Some(counters) if !cheap => counters.read(sockstat, segments),
            _ => None,
        };
        let destroyed = self.tracker.take_destroyed();
        let quiet = match (&reading, &self.last_dump) {
            (Some(now_read), Some((base, at))) => {
                !destroyed
                    && now_read.same_as(base)
                    && now.saturating_duration_since(*at) < FULL_DUMP_EVERY
            }
            _ => false,
        };
        self.calm = if quiet {
            self.calm.saturating_add(1)
        } else {
            0
        };
        if quiet {
            // Nothing new, and nothing changed state: no segment moved, no
            // socket came or went. What runs on is the timers: the known
            // sockets are as they were, unless a TIME_WAIT entry's next
            // countdown line (one per 10 s) or its end is due; then they
            // are asked for again, by 4-tuple.
            let since = self
                .read_at
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
            if !self.tracker.countdown_due(since) {
                self.quiet += 1;
                return Ok(None);
            }
            let found = self.diag.lookup(&self.tracker.known())?;
            let wanted = |s: &Option<SockInfo>| {
                s.as_ref()
                    .is_some_and(|s| query.states & s.state.bit() != 0)
            };
            if found.iter().all(wanted) {
                self.lookups += 1;
                self.read_at = Some(now);
                return Ok(Some(found.into_iter().flatten().collect()));
            }
        }
        // The baseline for the polls to come: every counter they may read
        // (sockstat too, if this poll skipped it).
        let complete = sockstat && reading.is_some();
        let reading = match self.counters.as_mut() {
            Some(counters) if !cheap && !complete => counters.read(true, segments),
            _ => reading,
        };
        // One walk of the kernel's tables for both families (half the
        // kernel time per dump; `observer explain --legacy` shows why).
        let began = Instant::now();
        let sockets = self.diag.dump_one_walk(query)?;
        self.dump_took = began.elapsed();
        self.read_at = Some(now);
        self.dumps += 1;
        self.last_dump = reading.map(|r| (r, now));
        Ok(Some(sockets))
    }
}
