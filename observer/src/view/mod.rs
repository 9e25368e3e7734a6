//! The views: what consumes the event stream.
//!
//! - [`text`]: one line per event on standard output, for people or as
//!   JSON (`--json`): the classic watch.
//! - [`record`]: the same JSON lines into a file, after a header
//!   (`--record FILE`), for `observer replay`.
//! - [`crate::tui`]: the full-screen picture (`observer tui`).
//!
//! A source hands each view the events of one moment, in time order.

pub mod record;
pub mod text;

use crate::event::Event;

/// Something that shows events.
pub trait View {
    /// Show `events` (in time order). False once the view is gone: its
    /// reader left (stdout closed), or its person quit; the source then
    /// stops.
    fn show(&mut self, events: &[Event]) -> bool;
}

/// Several views fed the same events (`--record` beside the terminal).
pub struct Tee<'a>(pub Vec<&'a mut dyn View>);

impl View for Tee<'_> {
    fn show(&mut self, events: &[Event]) -> bool {
        // Every view sees every batch, even after one of them is gone.
        let mut alive = true;
        for view in self.0.iter_mut() {
            alive &= view.show(events);
        }
        alive
    }
}
