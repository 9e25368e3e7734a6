//! The text view: one line per event on standard output, the way people
//! read it (`observer`) or as JSON objects (`observer --json`).

use std::io::Write;

use super::View;
use crate::event::Event;
use crate::render::Style;

/// Lines to a writer (standard output), flushed after each batch so
/// that a reader at the other end of a pipe sees them at once.
pub struct TextView<W: Write> {
    pub json: bool,
    pub style: Style,
    pub out: W,
}

impl<W: Write> TextView<W> {
    pub fn new(json: bool, style: Style, out: W) -> TextView<W> {
        TextView { json, style, out }
    }
}

impl<W: Write> View for TextView<W> {
    fn show(&mut self, events: &[Event]) -> bool {
        for event in events {
            let line = if self.json {
                event.json().to_string()
            } else {
                event.human(self.style)
            };
            // EPIPE: the reader went away (`observer | head`). Rust ignores
            // SIGPIPE, so the write fails instead of killing us: the watch
            // ends quietly, like a program killed by SIGPIPE.
            if writeln!(self.out, "{line}").is_err() {
                return false;
            }
        }
        self.out.flush().is_ok()
    }
}
