//! `observer tui`: the lesson as a picture the class can watch, pause and
//! step through.
//!
//! The same events as the text watch (see [`crate::event`]), drawn as the
//! TCP state diagram with each connection's two ends on it, the timeline
//! beneath, the processes and their zombies, and in the lab the segments
//! crossing the wire. Live, a source thread runs the watch (or the lab)
//! and hands the events over a channel ([`ChannelView`]); replayed, the
//! events come from a file and the class steps through them.
//!
//! - [`model`]: the picture, worked out from the events alone;
//! - [`diagram`]: the state diagram, drawn;
//! - [`app`]: the history, the cursor in it, and the keys;
//! - [`draw`]: one frame, laid out for the terminal's size;
//! - this file: the terminal itself (raw mode, the alternate screen, and
//!   restoring both on every way out), and the loop.

pub mod app;
pub mod diagram;
pub mod draw;
pub mod model;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{
    self as term, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers,
};
use ratatui::crossterm::{cursor, execute, terminal};

use crate::event::Event;
use crate::view::View;
use app::{App, Key, Mode};
use draw::Palette;

/// At most this many frames a second.
pub const MAX_FPS: u32 = 30;

/// What the loop waits for.
pub enum Msg {
    /// Events from the source thread.
    Events(Vec<Event>),
    /// The source thread ended; with the error that ended it, if one did.
    Ended(Option<String>),
    /// A key or a new size of the terminal.
    Term(TermEvent),
}

/// The view a source thread writes to: each batch of events goes to the
/// tui's loop. Gone (false) once the loop has ended.
pub struct ChannelView(pub Sender<Msg>);

impl View for ChannelView {
    fn show(&mut self, events: &[Event]) -> bool {
        self.0.send(Msg::Events(events.to_vec())).is_ok()
    }
}

/// The terminal in the state the tui needs, put back as it was when this
/// is dropped: raw mode off, the alternate screen left, the cursor shown.
/// A panic on the way out restores it too (see [`restore_on_panic`]).
pub struct TerminalGuard;

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        terminal::enable_raw_mode()?;
        // From here on, an error must undo what was done.
        let guard = TerminalGuard;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

fn restore() {
    let _ = execute!(io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
    let _ = terminal::disable_raw_mode();
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// A panic prints its message on a terminal left in raw mode, on the
/// alternate screen, where nobody would see it: restore first, then let
/// the usual hook print.
pub fn restore_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Read keys and resizes on a thread of their own, into the loop's channel.
/// (The thread blocks in read(); it ends with the process.)
fn read_terminal(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        while let Ok(event) = term::read() {
            if tx.send(Msg::Term(event)).is_err() {
                return;
            }
        }
    });
}

/// The key a terminal event means, if any.
pub fn key_of(event: &TermEvent) -> Option<Key> {
    let TermEvent::Key(key) = event else {
        return None;
    };
    if key.kind == KeyEventKind::Release {
        return None;
    }
    Some(match key.code {
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
        KeyCode::Char(' ') => Key::Space,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Char('+') | KeyCode::Char('=') => Key::Faster,
        KeyCode::Char('-') => Key::Slower,
        KeyCode::Char('c') => Key::Pick,
        KeyCode::Char('?') | KeyCode::Char('h') => Key::Help,
        KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
        _ => return None,
    })
}

/// Run the tui on this terminal until `q`, Ctrl-C, SIGTERM (`stop`), or a
/// failed source. `rx` brings the source's events (and the keys, which
/// this function reads itself); `tx` is its sending end, for the keys.
/// Returns the source's error, if it failed.
pub fn run(
    mut app: App,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    stop: &dyn Fn() -> bool,
) -> io::Result<Option<String>> {
    restore_on_panic();
    let _guard = TerminalGuard::enter()?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(io::stdout()))?;
    read_terminal(tx);
    let palette = Palette::detect();
    let start = Instant::now();
    let frame_gap = Duration::from_secs(1) / MAX_FPS;
    let mut last_frame: Option<Instant> = None;
    let mut dirty = true;
    let mut shown_clock = None;
    let mut failure = None;
    loop {
        let now = Instant::now();
        dirty |= app.tick(now);
        let t = app.time(now, start.elapsed());
        // What the clock alone changes: TIME_WAIT's seconds, lit arrows.
        let clock = visible_clock(&app, t);
        dirty |= shown_clock != Some(clock);
        let due = last_frame.is_none_or(|at| now.duration_since(at) >= frame_gap);
        if dirty && due {
            terminal.draw(|f| draw::frame(f, &app, t, palette))?;
            last_frame = Some(now);
            dirty = false;
            shown_clock = Some(clock);
        }
        if app.quit || stop() {
            return Ok(failure);
        }
        // Sleep until something comes, the next frame may be drawn, or the
        // clock changes the picture (at most a quarter of a second, to
        // see SIGTERM's flag).
        let wait = if dirty {
            frame_gap.saturating_sub(last_frame.map_or(Duration::ZERO, |at| at.elapsed()))
        } else if matches!(app.mode, Mode::Playing { .. }) {
            frame_gap
        } else {
            Duration::from_millis(250)
        };
        match rx.recv_timeout(wait) {
            Ok(msg) => dirty |= handle(&mut app, msg, &mut failure),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(failure),
        }
        // Take whatever else is waiting before drawing again.
        while let Ok(msg) = rx.try_recv() {
            dirty |= handle(&mut app, msg, &mut failure);
        }
    }
}

fn handle(app: &mut App, msg: Msg, failure: &mut Option<String>) -> bool {
    match msg {
        Msg::Events(events) => app.extend(events) || !matches!(app.mode, Mode::Live),
        Msg::Ended(error) => {
            app.ended = true;
            if error.is_some() {
                *failure = error;
                app.quit = true;
            }
            true
        }
        Msg::Term(event) => match key_of(&event) {
            Some(key) => app.key(key, Instant::now()),
            None => matches!(event, TermEvent::Resize(..)),
        },
    }
}

/// A number that changes when the clock alone changes what is drawn: the
/// seconds left of each TIME_WAIT, and which arrows are still lit.
fn visible_clock(app: &App, t: Duration) -> u64 {
    let mut key = 0u64;
    for pair in app.picture.pairs.values() {
        for end in [&pair.client, &pair.server].into_iter().flatten() {
            if let Some(left) = end.time_left(t) {
                key = key.wrapping_mul(31).wrapping_add(left.as_secs());
            }
            let lit = end
                .arrow
                .as_ref()
                .is_some_and(|a| t.saturating_sub(a.at) < model::ARROW_LIT);
            key = key.wrapping_mul(31).wrapping_add(u64::from(lit));
            let gone = end
                .gone
                .is_some_and(|g| t.saturating_sub(g) < model::GONE_SHOWN);
            key = key.wrapping_mul(31).wrapping_add(u64::from(gone));
        }
    }
    // Zombies' ages are shown to the tenth of a second under 10 ms and in
    // seconds beyond: redraw each second while there are any.
    if app.picture.zombies() > 0 {
        key = key.wrapping_mul(31).wrapping_add(t.as_secs());
    }
    key
}
