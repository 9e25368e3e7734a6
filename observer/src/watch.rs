//! `observer watch` (the default): a live timeline of sockets and processes.
//!
//! Every `--interval` (10 ms by default) we ask the kernel for the sockets
//! on the port (the kernel filters them for us), compare with what we knew,
//! and report one event per change. Between polls we listen to the
//! kernel's destroy notifications, which catch sockets that close between
//! polls.
//!
//! Sampling is honest about what it missed: if a socket was ESTABLISHED
//! at one poll and TIME_WAIT at the next, the state machine says it went
//! through FIN_WAIT1 and then FIN_WAIT2 or CLOSING, too fast to be seen.
//! We say that, with the bound (`< 10 ms`), and never pretend we saw it.
//! `observer --exact` (root) shows every transition from the kernel's own
//! tracepoint instead.
//!
//! This file is the loop that joins the sources to the views: the poll
//! ([`crate::source::poll`]) and the tracepoint ([`crate::source::trace`])
//! produce [`Event`]s; a [`View`] shows them (the text lines, the JSON
//! lines, the recorder, the tui). The logic that turns dumps into events
//! is the [`Tracker`](crate::track::Tracker).

use std::time::{Duration, Instant};

use crate::diag::{DiagError, EventSocket, Query};
use crate::event::{Event, Kind};
use crate::render;
use crate::source::poll::Poller;
use crate::source::trace::Exact;
use crate::track::Tracker;
use crate::view::View;

/// Options of the watch loop.
#[derive(Debug, Clone)]
pub struct Options {
    pub query: Query,
    pub interval: Duration,
    pub pids: Vec<i32>,
    pub duration: Option<Duration>,
    pub netns: Option<String>,
    /// Also read the kernel's tracepoint (root): every transition.
    pub exact: bool,
    /// Say nothing on stderr (the tui owns the terminal): what would be
    /// said goes on the timeline as a note.
    pub quiet: bool,
}

/// How many slow polls in a row before the timeline says the sampling
/// is slower than asked.
const SLOW_POLLS: u32 = 5;

/// The interval while nothing moves (the poller is calm, see
/// [`crate::source::poll`]): half as long again. A poll costs little then,
/// but each wake-up of a process costs something too (about 45 us of CPU
/// on this project's 2-core VM, measured with a C loop doing nothing
/// else). A connect() is
/// still seen within 1.5 intervals (15 ms at the default): the counters
/// it moves wake the next poll to a dump, and the polls after it to the
/// full rate.
pub fn calm_interval(interval: Duration) -> Duration {
    interval + interval / 2
}

/// Events wait here briefly so that the two sources, which report with
/// different delays, come out in time order.
struct Reorder {
    pending: Vec<Event>,
    window: Duration,
}

impl Reorder {
    fn push(&mut self, events: Vec<Event>) {
        self.pending.extend(events);
    }

    /// The events older than the window (all of them if `all`), in order.
    fn ready(&mut self, now: Duration, all: bool) -> Vec<Event> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        self.pending.sort_by_key(|e| (e.t, e.order()));
        let cut = if all {
            self.pending.len()
        } else {
            self.pending.partition_point(|e| e.t + self.window <= now)
        };
        self.pending.drain(..cut).collect()
    }
}

/// Run until SIGINT/SIGTERM (or `--duration`, or the view is gone),
/// showing the timeline.
pub fn run(
    options: &Options,
    view: &mut dyn View,
    stop: &dyn Fn() -> bool,
) -> Result<(), DiagError> {
    let mut events_socket = EventSocket::open(options.netns.as_deref());
    let start = Instant::now();
    let start_mono = crate::exact::monotonic_now();
    let tracker = Tracker::new(start, options.query.port);
    let mut poller = Poller::open(options.netns.as_deref(), tracker, options.pids.clone())?;
    // What the watch has to say besides the timeline: on stderr, or (quiet)
    // as notes on the timeline.
    let mut said: Vec<Event> = Vec::new();
    let mut say = |text: String| {
        if options.quiet {
            said.push(Event::new(start.elapsed(), Kind::Note { text }));
        } else {
            eprintln!("observer: {text}");
        }
    };
    let mut exact = None;
    if options.exact {
        match Exact::start(options.query.port, start_mono) {
            Ok(e) => {
                if e.instance.mounted {
                    say(format!(
                        "mounted tracefs on {} (it keeps no state; left mounted)",
                        crate::exact::TRACEFS
                    ));
                }
                say(format!(
                    "--exact: tracing sock:inet_sock_set_state in tracefs instance {}",
                    e.instance.name()
                ));
                exact = Some(e);
            }
            Err(why) => say(format!("{}; running as the sampling observer", why.0)),
        }
    }
    let mut timeline = Reorder {
        pending: said,
        // Tracepoint lines arrive a few milliseconds late; hold everything
        // that long so both sources come out in order.
        window: if exact.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::ZERO
        },
    };
    let mut warned_hidden = false;
    let mut announced = false;
    let mut slowed = false;
    let mut slow_streak = 0;
    loop {
        if stop() || options.duration.is_some_and(|d| start.elapsed() >= d) {
            if let Some(e) = exact.as_mut() {
                timeline.push(e.drain(&mut poller.tracker));
            }
            view.show(&timeline.ready(start.elapsed(), true));
            return Ok(());
        }
        let now = Instant::now();
        let polled = poller.poll(now, &options.query)?;
        if polled.owners_hidden && !warned_hidden {
            let text = "not root: owners of other users' sockets are not shown";
            if options.quiet {
                timeline.push(vec![Event::new(
                    now - start,
                    Kind::Note { text: text.into() },
                )]);
            } else {
                eprintln!("observer: {text}");
            }
            warned_hidden = true;
        }
        timeline.push(polled.events);
        if let Some(e) = exact.as_mut() {
            timeline.push(e.drain(&mut poller.tracker));
        }
        let ready = timeline.ready(now - start, false);
        if !ready.is_empty() && !view.show(&ready) {
            return Ok(());
        }
        if !announced && !options.quiet {
            // After the first dump, so that a harness waiting for this line
            // knows the kernel answered and the watch is live.
            announced = true;
            let port = options
                .query
                .port
                .map_or("every TCP port".to_string(), |p| format!("TCP port {p}"));
            eprintln!(
                "observer: watching {port}{} every {} ({} while nothing moves; destroy events: {}); Ctrl-C to stop",
                options
                    .netns
                    .as_ref()
                    .map_or(String::new(), |n| format!(" in netns {n}")),
                render::elapsed(options.interval),
                render::elapsed(calm_interval(options.interval)),
                if events_socket.is_some() {
                    "on"
                } else {
                    "not available"
                }
            );
        }

        // A poll that takes longer than half the interval (thousands of
        // sockets on the port) stretches the interval, so that the watch
        // never takes more than about half a core. The timeline says so
        // once it has lasted: one slow poll (the first, which reads every
        // process's descriptors; a busy moment of the machine) is not news.
        let work = now.elapsed();
        let asked = if poller.is_calm() {
            calm_interval(options.interval)
        } else {
            options.interval
        };
        let interval = asked.max(2 * work);
        let slow = interval > asked + asked / 2;
        slow_streak = if slow { slow_streak + 1 } else { 0 };
        if slow_streak >= SLOW_POLLS && !slowed {
            slowed = true;
            let text = format!(
                "each poll takes {} here: sampling every {} instead of {}",
                render::elapsed(work),
                render::elapsed(interval),
                render::elapsed(options.interval)
            );
            timeline.push(vec![
                poller.tracker.event(Instant::now(), Kind::Note { text }),
            ]);
        }
        // Until the next poll: take the destroy notifications as they come.
        if wait_for_destroys(
            &mut events_socket,
            &mut poller.tracker,
            &mut timeline,
            now + interval,
            stop,
        ) {
            continue; // overflowed: dump again at once
        }
    }
}

/// Wait until `deadline`, handing destroy notifications to the tracker.
/// Returns true if the kernel dropped some (ENOBUFS): dump again now.
fn wait_for_destroys(
    events_socket: &mut Option<EventSocket>,
    tracker: &mut Tracker,
    timeline: &mut Reorder,
    deadline: Instant,
    stop: &dyn Fn() -> bool,
) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stop() {
            return false;
        }
        let Some(socket) = events_socket.as_mut() else {
            std::thread::sleep(left);
            return false;
        };
        let mut fds = [nix::poll::PollFd::new(
            socket.fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        // Rounded up: 9.6 ms left is a 10 ms wait. Rounded down, it would
        // wake 0.6 ms early and wait again: two wake-ups per poll.
        let ms = left.as_nanos().div_ceil(1_000_000).min(1000) as i32;
        let timeout = nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            // The deadline came (the timeout was rounded up to reach it).
            Ok(0) => return false,
            Ok(_) => {}
            Err(_) => continue, // EINTR: a signal; the loop looks at stop()
        }
        let drained = socket.drain();
        let at = Instant::now();
        for info in drained.destroyed {
            tracker.destroyed(at, info);
        }
        if drained.overflowed {
            let text = "destroy notifications overflowed (ENOBUFS): dumping again".to_string();
            timeline.push(vec![tracker.event(at, Kind::Note { text })]);
            return true;
        }
    }
}
