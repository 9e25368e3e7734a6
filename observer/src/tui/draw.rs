//! One frame: the diagram, the timeline, the processes, the lab's ladder,
//! the status line; laid out for the terminal's size.
//!
//! ```text
//!   80x24 and up, stacked:            150x30 and up, side by side:
//!   +----------------------------+    +-------------------+--------------+
//!   | state diagram (14 rows)    |    | state diagram     | timeline     |
//!   | timeline                   |    | processes         | ladder (lab) |
//!   | ladder (lab)               |    +-------------------+--------------+
//!   | processes                  |    | status                           |
//!   | status                     |    +----------------------------------+
//!   +----------------------------+
//! ```
//!
//! Lines are cut at the pane's edge, never wrapped, so nothing overlaps
//! at any size; below 78x16 the frame says how large it needs to be.

use std::collections::VecDeque;
use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::app::{App, Mode, Origin};
use super::diagram::{self, Ink};
use super::model::Picture;
use crate::event::{Event, Kind};
use crate::render;

/// Colour, or none (NO_COLOR): the picture stays readable either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    pub color: bool,
}

impl Palette {
    /// Colour unless NO_COLOR is set (no-color.org).
    pub fn detect() -> Palette {
        Palette {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn ink(self, ink: Ink) -> Style {
        let base = Style::default();
        let bold = base.add_modifier(Modifier::BOLD);
        if !self.color {
            return match ink {
                Ink::Name | Ink::Marker => bold,
                Ink::Picked => base.add_modifier(Modifier::REVERSED),
                _ => base,
            };
        }
        match ink {
            Ink::Plain => base.fg(Color::DarkGray),
            Ink::Name => bold,
            Ink::Seen => bold.fg(Color::Yellow),
            Ink::Implied => base.fg(Color::Magenta),
            Ink::Marker => bold.fg(Color::Green),
            Ink::Picked => bold.fg(Color::Black).bg(Color::Green),
            Ink::ImpliedMarker => base.fg(Color::Magenta),
            Ink::Gone => base.fg(Color::DarkGray),
        }
    }

    fn alarm(self) -> Style {
        let bold = Style::default().add_modifier(Modifier::BOLD);
        if self.color {
            bold.fg(Color::Red)
        } else {
            bold
        }
    }

    fn title(self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        }
    }
}

/// The smallest frame drawn in full.
pub const MIN_WIDTH: u16 = diagram::WIDTH;
pub const MIN_HEIGHT: u16 = 16;

/// Draw `app` at the events' time `t`.
pub fn frame(f: &mut Frame<'_>, app: &App, t: Duration, palette: Palette) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "observer tui needs {MIN_WIDTH}x{MIN_HEIGHT} at least (this is {}x{}); q quits",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(text), area);
        return;
    }
    let picture = &app.picture;
    let lab = picture.lab.is_some() || !picture.ladder.is_empty();
    let [body, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
    if body.width >= 150 && body.height >= 29 {
        let [left, right] =
            Layout::horizontal([Constraint::Length(diagram::WIDTH), Constraint::Min(0)])
                .areas(body);
        let [top, procs] =
            Layout::vertical([Constraint::Length(diagram::HEIGHT + 1), Constraint::Min(0)])
                .areas(left);
        draw_diagram(f, top, app, t, palette);
        draw_processes(f, procs, picture, t, palette);
        if lab {
            let [timeline, ladder] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(right);
            draw_timeline(f, timeline, picture, palette);
            draw_ladder(f, ladder, picture, palette);
        } else {
            draw_timeline(f, right, picture, palette);
        }
    } else {
        let rest = body.height.saturating_sub(diagram::HEIGHT);
        let mut constraints = vec![Constraint::Length(diagram::HEIGHT)];
        // What is left is shared: the timeline first, then the ladder,
        // then the processes (their count is on the status line anyway).
        let panes: Vec<(&str, u16)> = if lab {
            let ladder = rest / 2;
            vec![("timeline", rest - ladder), ("ladder", ladder)]
        } else {
            let procs = (rest * 2 / 5).max(2);
            vec![("timeline", rest - procs), ("processes", procs)]
        };
        constraints.extend(panes.iter().map(|(_, h)| Constraint::Length(*h)));
        let areas = Layout::default()
            .direction(Direction::Vertical)
            .constraints(constraints)
            .split(body);
        draw_diagram(f, areas[0], app, t, palette);
        for ((name, _), area) in panes.iter().zip(areas.iter().skip(1)) {
            match *name {
                "timeline" => draw_timeline(f, *area, picture, palette),
                "ladder" => draw_ladder(f, *area, picture, palette),
                _ => draw_processes(f, *area, picture, t, palette),
            }
        }
    }
    draw_status(f, status, app, palette);
    if app.help {
        draw_help(f, area, palette);
    }
}

fn draw_diagram(f: &mut Frame<'_>, area: Rect, app: &App, t: Duration, palette: Palette) {
    let grid = diagram::draw(&app.picture, t, app.picked);
    let lines: Vec<Line<'_>> = grid
        .cells
        .iter()
        .map(|row| {
            // One span per run of the same ink.
            let mut spans: Vec<Span<'_>> = Vec::new();
            let mut run = String::new();
            let mut ink = row.first().map_or(Ink::Plain, |c| c.1);
            for (c, i) in row {
                if *i != ink {
                    spans.push(Span::styled(std::mem::take(&mut run), palette.ink(ink)));
                    ink = *i;
                }
                run.push(*c);
            }
            spans.push(Span::styled(run, palette.ink(ink)));
            Line::from(spans)
        })
        .collect();
    f.render_widget(Paragraph::new(lines), area);
}

/// A pane: a title line, then its lines (the newest at the bottom).
fn pane<'a>(title: String, lines: Vec<Line<'a>>, area: Rect, palette: Palette) -> Paragraph<'a> {
    let room = area.height.saturating_sub(1) as usize;
    let skip = lines.len().saturating_sub(room);
    Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).block(
        Block::default()
            .borders(Borders::TOP)
            .title(Span::styled(title, palette.title())),
    )
}

/// The newest events' lines that fit in `area`, oldest first. Only those
/// are formatted, from the newest back: formatting all 200 kept events,
/// ten times a second, was most of a busy lesson's frame.
fn newest_lines<'a>(
    events: &VecDeque<Event>,
    area: Rect,
    style_of: impl Fn(&Event) -> Style,
) -> Vec<Line<'a>> {
    let plain = render::Style::plain();
    let room = area.height.saturating_sub(1) as usize;
    let mut lines = Vec::with_capacity(room);
    for e in events.iter().rev() {
        if lines.len() >= room {
            break;
        }
        let style = style_of(e);
        for l in e.human(plain).lines().rev() {
            lines.push(Line::styled(l.to_string(), style));
        }
    }
    lines.reverse();
    lines
}

fn draw_timeline(f: &mut Frame<'_>, area: Rect, picture: &Picture, palette: Palette) {
    let lines = newest_lines(&picture.lines, area, |e| match e.kind {
        Kind::Zombie { .. } => palette.alarm(),
        _ => Style::default(),
    });
    f.render_widget(pane(" timeline ".into(), lines, area, palette), area);
}

fn draw_ladder(f: &mut Frame<'_>, area: Rect, picture: &Picture, palette: Palette) {
    let lines = newest_lines(&picture.ladder, area, |_| Style::default());
    f.render_widget(
        pane(" the wire: every segment ".into(), lines, area, palette),
        area,
    );
}

fn draw_processes(f: &mut Frame<'_>, area: Rect, picture: &Picture, t: Duration, palette: Palette) {
    let mut lines = Vec::new();
    for row in picture.procs.values() {
        let p = &row.process;
        let host = row.host.map_or(String::new(), |h| format!("{} ", h.name()));
        let head = format!("{host}pid {:<7} {:<12}", p.pid, p.comm);
        match &row.zombie {
            Some((since, parent)) => {
                let parent = parent
                    .as_ref()
                    .map_or(format!("{}", p.ppid), |q| format!("{} ({})", q.pid, q.comm));
                lines.push(Line::from(vec![
                    Span::raw(format!("{head} ")),
                    Span::styled("ZOMBIE", palette.alarm()),
                    Span::raw(format!(
                        " for {}: its parent {parent} has not called wait()",
                        render::elapsed(t.saturating_sub(*since))
                    )),
                ]));
            }
            None => {
                let wchan = if p.wchan.is_empty() { "-" } else { &p.wchan };
                let doing = p.meaning.clone().unwrap_or_default();
                lines.push(Line::raw(format!("{head} {} {wchan:<18} {doing}", p.state)));
            }
        }
    }
    let zombies = picture.zombies();
    let title = if zombies > 0 {
        format!(" processes: {}, {zombies} ZOMBIE ", picture.procs.len())
    } else {
        format!(" processes: {} ", picture.procs.len())
    };
    let block_title = if zombies > 0 {
        Span::styled(title, palette.alarm())
    } else {
        Span::styled(title, palette.title())
    };
    let room = area.height.saturating_sub(1) as usize;
    let shown: Vec<Line<'_>> = lines.into_iter().take(room).collect();
    f.render_widget(
        Paragraph::new(shown).block(Block::default().borders(Borders::TOP).title(block_title)),
        area,
    );
}

fn draw_status(f: &mut Frame<'_>, area: Rect, app: &App, palette: Palette) {
    let picture = &app.picture;
    // Most important first: the line is cut at the terminal's edge.
    let mut parts = vec![match app.mode {
        Mode::Live => "LIVE".to_string(),
        Mode::Paused => format!(
            "PAUSED at event {} of {} ({})",
            app.cursor,
            app.history.len(),
            render::elapsed(picture.now)
        ),
        Mode::Playing { .. } => format!("PLAYING at {}x", app.speed),
    }];
    let zombies = picture.zombies();
    if zombies > 0 {
        parts.push(format!("{zombies} ZOMBIE"));
    }
    if let Some(n) = app.picked {
        parts.push(format!("following #{n}"));
    }
    parts.push(format!("{} behind", app.behind()));
    parts.push("? keys, q quits".into());
    parts.push(match &app.origin {
        Origin::Live { interval } if app.ended => {
            format!(
                "the watch ended (it polled every {})",
                render::elapsed(*interval)
            )
        }
        Origin::Live { interval } => format!("polls every {}", render::elapsed(*interval)),
        Origin::Replay { file } => format!("replay of {file}"),
    });
    if app.speed != 1.0 && !matches!(app.mode, Mode::Playing { .. }) {
        parts.push(format!("speed {}x", app.speed));
    }
    let text = parts.join(" | ");
    let style = if zombies > 0 {
        palette.alarm()
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
    f.render_widget(Paragraph::new(Line::styled(text, style)), area);
}

/// The keys, over the picture.
pub const KEYS: [(&str, &str); 8] = [
    (
        "space",
        "pause, or play from here (events keep coming in meanwhile)",
    ),
    ("left / right", "one event back / forward"),
    ("+ / -", "play twice as fast / half as fast"),
    ("c", "follow the next connection (its markers stand out)"),
    ("?", "this help"),
    ("q", "quit (Ctrl-C too)"),
    ("1c, 1s", "connection #1's client end, its server end"),
    ("(1c) ━ ┄", "passed unseen; an arrow seen; an arrow implied"),
];

fn draw_help(f: &mut Frame<'_>, area: Rect, palette: Palette) {
    let width = 72.min(area.width);
    let height = (KEYS.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line<'_>> = KEYS
        .iter()
        .map(|(k, what)| Line::raw(format!(" {k:<13} {what}")))
        .collect();
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(Span::styled(" keys ", palette.title())),
        ),
        rect,
    );
}
