//! The tracepoint source of `--exact`: every state change the kernel
//! makes, read from `sock:inet_sock_set_state` ([`crate::exact`]) and
//! placed on the watch's timeline by the [`Tracker`].

use std::time::Duration;

use crate::event::Event;
use crate::exact::{Durations, Instance, Transition, Unavailable};
use crate::track::Tracker;

/// The tracepoint source of `--exact`, when it could be set up.
pub struct Exact {
    pub instance: Instance,
    events: std::sync::mpsc::Receiver<Transition>,
    reader: Option<std::thread::JoinHandle<()>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    durations: Durations,
    /// CLOCK_MONOTONIC when the watch started (trace timestamps use it).
    start_mono: Duration,
}

impl Exact {
    pub fn start(port: Option<u16>, start_mono: Duration) -> Result<Exact, Unavailable> {
        let instance = Instance::create(port)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (events, reader) = instance.read(std::sync::Arc::clone(&stop))?;
        Ok(Exact {
            instance,
            events,
            reader: Some(reader),
            stop,
            durations: Durations::default(),
            start_mono,
        })
    }

    /// The transitions that arrived, as events.
    pub fn drain(&mut self, tracker: &mut Tracker) -> Vec<Event> {
        let mut events = Vec::new();
        while let Ok(t) = self.events.try_recv() {
            let prev_for = self.durations.record(&t);
            events.push(tracker.transition(&t, prev_for, self.start_mono));
        }
        events
    }
}

impl Drop for Exact {
    fn drop(&mut self) {
        // Stop the reader (it closes trace_pipe), then the instance can go.
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let _ = &self.instance;
    }
}
