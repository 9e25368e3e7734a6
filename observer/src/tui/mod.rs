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

/// At most this many frames a second: keys, a resize, a replay playing.
pub const MAX_FPS: u32 = 30;

/// Live events redraw at most this often. The first event after a quiet
/// spell is drawn at once; a burst (a busy lesson: 100 connections a
/// second, 600 events) is drawn five times a second, which a class reads
/// as well as thirty: a 160x48 frame costs about 1.8 ms of CPU here, and
/// at ten a second the tui cost 1.7% of a core more than the watch.
pub const LIVE_GAP: Duration = Duration::from_millis(200);

/// What the clock alone changes (TIME_WAIT's seconds, a lit arrow going
/// out) is redrawn at most this often. With many connections in
/// TIME_WAIT, each counting down at its own phase, the seconds shown
/// change all the time; a quarter of a second late is not seen.
pub const CLOCK_GAP: Duration = Duration::from_millis(250);

/// With `ECHO_LAB_TUI_STATS` set, the tui says on standard error, once the
/// terminal is restored, how many frames it drew in how long: how its
/// cost was measured (observer/README.md, "What it costs").
struct FrameStats {
    start: Instant,
    frames: u64,
}

impl Drop for FrameStats {
    fn drop(&mut self) {
        if std::env::var_os("ECHO_LAB_TUI_STATS").is_some() {
            let secs = self.start.elapsed().as_secs_f64();
            eprintln!(
                "observer tui: {} frames in {secs:.1} s ({:.1} a second)",
                self.frames,
                self.frames as f64 / secs.max(1e-9)
            );
        }
    }
}

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
    // Declared before the guard: dropped after it, on the restored terminal.
    let mut stats = FrameStats {
        start: Instant::now(),
        frames: 0,
    };
    let _guard = TerminalGuard::enter()?;
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(io::stdout()))?;
    read_terminal(tx);
    let palette = Palette::detect();
    let start = Instant::now();
    let frame_gap = Duration::from_secs(1) / MAX_FPS;
    let mut last_frame: Option<Instant> = None;
    // Why the picture must be drawn again, the most urgent reason first.
    let mut dirty = Some(Dirty::Now);
    let mut shown_clock = None;
    let mut failure = None;
    loop {
        let now = Instant::now();
        if app.tick(now) {
            dirty = Some(Dirty::Now);
        }
        let t = app.time(now, start.elapsed());
        let since = last_frame.map_or(Duration::MAX, |at| now.duration_since(at));
        // What the clock alone changes, looked at only when a clock
        // redraw could be due: it walks every connection.
        if dirty.is_none() && since >= CLOCK_GAP {
            let clock = visible_clock(&app, t);
            if shown_clock != Some(clock) {
                dirty = Some(Dirty::Clock);
                shown_clock = Some(clock);
            }
        }
        let gap = dirty.map(|d| d.gap(frame_gap));
        if gap.is_some_and(|gap| since >= gap) {
            terminal.draw(|f| draw::frame(f, &app, t, palette))?;
            stats.frames += 1;
            last_frame = Some(now);
            dirty = None;
            shown_clock = Some(visible_clock(&app, t));
        }
        if app.quit || stop() {
            return Ok(failure);
        }
        // Sleep until something comes, the next frame may be drawn, or the
        // clock may change the picture (at most a quarter of a second, to
        // see SIGTERM's flag).
        let since = last_frame.map_or(Duration::ZERO, |at| at.elapsed());
        let wait = match dirty {
            Some(d) => d.gap(frame_gap).saturating_sub(since),
            None if matches!(app.mode, Mode::Playing { .. }) => frame_gap,
            None => CLOCK_GAP,
        };
        if matches!(dirty, Some(Dirty::Events | Dirty::Clock)) {
            // A frame is owed and has a time: sleep until then and take
            // what came meanwhile in one go, rather than wake for every
            // poll's events (a hundred times a second in a busy lesson,
            // each wake-up some 50 us of CPU). A key waits at most this
            // long, a fifth of a second.
            std::thread::sleep(wait);
        } else {
            match rx.recv_timeout(wait) {
                Ok(msg) => dirty = worse(dirty, handle(&mut app, msg, &mut failure)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(failure),
            }
        }
        // Take whatever else is waiting before drawing again.
        while let Ok(msg) = rx.try_recv() {
            dirty = worse(dirty, handle(&mut app, msg, &mut failure));
        }
    }
}

/// Why a frame is owed, and so how soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dirty {
    /// A key, a resize, a replay playing: at the next frame.
    Now,
    /// New live events: within [`LIVE_GAP`].
    Events,
    /// The clock alone: within [`CLOCK_GAP`].
    Clock,
}

impl Dirty {
    fn gap(self, frame_gap: Duration) -> Duration {
        match self {
            Dirty::Now => frame_gap,
            Dirty::Events => LIVE_GAP,
            Dirty::Clock => CLOCK_GAP,
        }
    }
}

/// The more urgent of two reasons.
fn worse(a: Option<Dirty>, b: Option<Dirty>) -> Option<Dirty> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn handle(app: &mut App, msg: Msg, failure: &mut Option<String>) -> Option<Dirty> {
    match msg {
        Msg::Events(events) => {
            let live = matches!(app.mode, Mode::Live);
            // Live, the picture moves; paused or playing, only the count
            // of events behind changes on the status line.
            (app.extend(events) || !live).then_some(Dirty::Events)
        }
        Msg::Ended(error) => {
            app.ended = true;
            if error.is_some() {
                *failure = error;
                app.quit = true;
            }
            Some(Dirty::Now)
        }
        Msg::Term(event) => match key_of(&event) {
            Some(key) => app.key(key, Instant::now()).then_some(Dirty::Now),
            None => matches!(event, TermEvent::Resize(..)).then_some(Dirty::Now),
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
