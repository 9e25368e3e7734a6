//! The tui's state: the history of events, where the class is in it, and
//! what the keys do. No terminal here: [`App::key`] takes a key, the
//! clock is passed in, so that tests drive it like a class would.
//!
//! ```text
//!   history: e1 e2 e3 e4 e5 e6 e7 e8 e9 ...   (every event, in order)
//!                     ^cursor                 (the picture shows e1..e3)
//! ```
//!
//! Live, the cursor follows the newest event. Paused, it stays; new events
//! are still recorded behind it ("5 behind"). Left and right move it one
//! event; space plays from it at the chosen speed until it catches up
//! (live) or the recording ends (replay).

use std::time::{Duration, Instant};

use super::model::{Picture, picture_at};
use crate::event::Event;

/// Pictures kept along the history, one every this many events, so that a
/// step back does not replay a long recording from its start.
const CHECKPOINT_EVERY: usize = 4096;

/// Where the cursor goes by itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Follows the newest event (live only).
    Live,
    /// Stays until a key moves it.
    Paused,
    /// Moves through the events as the clock runs, `speed` times as fast:
    /// at `since` the cursor's time was `from`.
    Playing { since: Instant, from: Duration },
}

/// The source the events come from, as the status line says it.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// A live watch (or lab), polling every `interval`.
    Live { interval: Duration },
    /// A recording, by its file name.
    Replay { file: String },
}

/// A key the tui understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Space,
    Left,
    Right,
    Faster,
    Slower,
    Pick,
    Help,
    Quit,
}

/// The tui's whole state.
pub struct App {
    pub history: Vec<Event>,
    /// How many events of the history the picture shows.
    pub cursor: usize,
    pub picture: Picture,
    checkpoints: Vec<Picture>,
    pub mode: Mode,
    pub speed: f64,
    /// The connection the class follows (`c`), by number.
    pub picked: Option<u32>,
    pub help: bool,
    pub origin: Origin,
    /// The live source has ended (stopped, or the lab torn down).
    pub ended: bool,
    pub quit: bool,
}

impl App {
    /// A live tui: follows the events as they come.
    pub fn live(interval: Duration) -> App {
        App::new(Vec::new(), Mode::Live, Origin::Live { interval })
    }

    /// A replay: every event known, the cursor at the start, paused (a
    /// class steps through it).
    pub fn replay(events: Vec<Event>, file: String) -> App {
        App::new(events, Mode::Paused, Origin::Replay { file })
    }

    fn new(history: Vec<Event>, mode: Mode, origin: Origin) -> App {
        let mut app = App {
            history: Vec::new(),
            cursor: 0,
            picture: Picture::default(),
            checkpoints: vec![Picture::default()],
            mode,
            speed: 1.0,
            picked: None,
            help: false,
            origin,
            ended: false,
            quit: false,
        };
        app.extend(history);
        app
    }

    /// New events arrived (live). Returns whether the picture changed.
    pub fn extend(&mut self, events: Vec<Event>) -> bool {
        self.history.extend(events);
        match self.mode {
            Mode::Live => self.seek(self.history.len()),
            _ => false,
        }
    }

    /// How many events are recorded beyond the picture.
    pub fn behind(&self) -> usize {
        self.history.len() - self.cursor
    }

    /// The events' time the picture is at, `now` on the wall clock: the
    /// time of the newest event applied, or, playing, the moving clock;
    /// live, the live clock `live_now`.
    pub fn time(&self, now: Instant, live_now: Duration) -> Duration {
        match self.mode {
            Mode::Live => live_now.max(self.picture.now),
            Mode::Paused => self.picture.now,
            Mode::Playing { since, from } => {
                from + now.saturating_duration_since(since).mul_f64(self.speed)
            }
        }
    }

    /// Let the clock move the cursor (playing). Returns whether the
    /// picture changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let Mode::Playing { .. } = self.mode else {
            return false;
        };
        let t = self.time(now, Duration::ZERO);
        let target = self.cursor
            + self.history[self.cursor..]
                .iter()
                .take_while(|e| e.t <= t)
                .count();
        let changed = self.seek(target);
        if self.cursor == self.history.len() {
            // Caught up: live follows again; a replay stops at its end.
            self.mode = match self.origin {
                Origin::Live { .. } if !self.ended => Mode::Live,
                _ => Mode::Paused,
            };
        }
        changed
    }

    /// Move the cursor to `n` events. Returns whether the picture changed.
    pub fn seek(&mut self, n: usize) -> bool {
        let n = n.min(self.history.len());
        if n == self.cursor {
            return false;
        }
        if n < self.cursor {
            // Back: from the nearest checkpoint at or before n.
            let k = (n / CHECKPOINT_EVERY).min(self.checkpoints.len() - 1);
            self.picture = self.checkpoints[k].clone();
            self.cursor = k * CHECKPOINT_EVERY;
        }
        while self.cursor < n {
            self.picture.apply(&self.history[self.cursor]);
            self.cursor += 1;
            if self.cursor % CHECKPOINT_EVERY == 0
                && self.checkpoints.len() == self.cursor / CHECKPOINT_EVERY
            {
                self.checkpoints.push(self.picture.clone());
            }
        }
        true
    }

    /// A key. Returns whether the screen changed.
    pub fn key(&mut self, key: Key, now: Instant) -> bool {
        match key {
            Key::Quit => {
                self.quit = true;
            }
            Key::Help => self.help = !self.help,
            Key::Space => {
                self.mode = match self.mode {
                    Mode::Live | Mode::Playing { .. } => Mode::Paused,
                    Mode::Paused if self.cursor < self.history.len() => Mode::Playing {
                        since: now,
                        from: self.picture.now,
                    },
                    Mode::Paused => match self.origin {
                        Origin::Live { .. } if !self.ended => Mode::Live,
                        _ => Mode::Paused,
                    },
                };
            }
            Key::Right => {
                self.mode = Mode::Paused;
                self.seek(self.cursor + 1);
            }
            Key::Left => {
                self.mode = Mode::Paused;
                self.seek(self.cursor.saturating_sub(1));
            }
            Key::Faster | Key::Slower => {
                // Keep the playing clock where it is at the change.
                let at = self.time(now, Duration::ZERO);
                self.speed = if key == Key::Faster {
                    (self.speed * 2.0).min(1000.0)
                } else {
                    (self.speed / 2.0).max(0.001)
                };
                if let Mode::Playing { .. } = self.mode {
                    self.mode = Mode::Playing {
                        since: now,
                        from: at,
                    };
                }
            }
            Key::Pick => {
                let at = self.picture.now;
                let numbers: Vec<u32> = (self.picture.pairs.iter())
                    .filter(|(_, pair)| !pair.over(at))
                    .map(|(n, _)| *n)
                    .collect();
                self.picked = match self.picked {
                    None => numbers.first().copied(),
                    Some(n) => numbers.iter().copied().find(|m| *m > n),
                };
            }
        }
        true
    }

    /// The picture as it would be after `n` events (for tests).
    pub fn picture_at(&self, n: usize) -> Picture {
        picture_at(&self.history, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Kind;

    fn note(ms: u64) -> Event {
        Event::new(
            Duration::from_millis(ms),
            Kind::Note {
                text: format!("at {ms}"),
            },
        )
    }

    /// A replay starts paused at the start; right and left step one event.
    #[test]
    fn a_replay_steps_event_by_event() {
        let now = Instant::now();
        let mut app = App::replay((1..=5).map(|i| note(i * 10)).collect(), "r".into());
        assert_eq!((app.cursor, app.behind()), (0, 5));
        app.key(Key::Right, now);
        app.key(Key::Right, now);
        assert_eq!(app.cursor, 2);
        assert_eq!(app.picture.now, Duration::from_millis(20));
        app.key(Key::Left, now);
        assert_eq!(app.cursor, 1);
        assert_eq!(app.picture, app.picture_at(1));
    }

    /// Live and paused, events keep coming and are counted behind; space
    /// plays them, and the cursor is live again once caught up.
    #[test]
    fn paused_live_events_wait_behind_and_catch_up() {
        let start = Instant::now();
        let mut app = App::live(Duration::from_millis(10));
        app.extend(vec![note(10)]);
        assert_eq!(app.cursor, 1);
        app.key(Key::Space, start);
        app.extend(vec![note(20), note(30)]);
        assert_eq!(app.behind(), 2);
        app.key(Key::Space, start);
        assert!(matches!(app.mode, Mode::Playing { .. }));
        app.tick(start + Duration::from_millis(25));
        assert_eq!(app.cursor, 3);
        assert_eq!(app.mode, Mode::Live);
    }

    /// Stepping back past a checkpoint gives the same picture as going
    /// there from the start.
    #[test]
    fn stepping_back_over_checkpoints_is_exact() {
        let now = Instant::now();
        let events: Vec<Event> = (0..(CHECKPOINT_EVERY as u64 * 2 + 10)).map(note).collect();
        let mut app = App::replay(events, "r".into());
        app.seek(CHECKPOINT_EVERY * 2 + 5);
        app.key(Key::Left, now);
        app.seek(CHECKPOINT_EVERY - 1);
        assert_eq!(app.picture, app.picture_at(CHECKPOINT_EVERY - 1));
    }
}
