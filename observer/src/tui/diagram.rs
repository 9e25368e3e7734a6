//! The TCP state diagram, drawn in a terminal, with the real sockets on it.
//!
//! RFC 9293's Figure 5 (UNP's Figure 2.4) with the kernel's names:
//!
//! ```text
//!              ╭────────── listen() ───[CLOSED]─── connect(), SYN out ──╮
//!              ▼                                                        ▼
//!           [LISTEN]                                               [SYN_SENT]
//!              ▼ SYN in, SYN+ACK out                                    │ SYN+ACK in,
//!           [SYN_RECV]                                                  │ ACK out
//!              ╰──────── ACK in ───────▼   ▼───────────────────────────╯
//!                                  [ESTABLISHED]
//!              ▼──── close(), FIN out ─╯  ╰──── FIN in, ACK out ──▼
//!           [FIN_WAIT1]                                       [CLOSE_WAIT]
//!     ▼── ACK in ──╯ ╰── FIN in ──▼                               ▼ close(), FIN out
//!  [FIN_WAIT2]                [CLOSING]                       [LAST_ACK]
//!     ╰─ FIN in ─▼    ▼── ACK in ─╯                               ▼ ACK in
//!           [TIME_WAIT]                                          ...
//!              ╰──────────── 2MSL: 60 s on Linux ──────────► [CLOSED]
//! ```
//!
//! The layout is data: each box is a state at a place ([`BOXES`]), each
//! arrow a polyline ([`EDGES`]). After each box comes a field of markers:
//! `1c` is connection #1's client end, `1s` its server end, the numbers the
//! timeline uses. An arrow an end took lights up for a moment (heavy
//! lines); one the state machine says it must have taken unseen is drawn
//! dashed, and the states it passed unseen carry its marker in
//! parentheses, `(1c)`. Without colour the three stay apart: plain, heavy,
//! dashed.
//!
//! Simplified: the simultaneous open (SYN_SENT -> SYN_RECV) and an abort
//! from any state straight to CLOSED have no arrow; the marker moves all
//! the same.

use std::time::Duration;

use super::model::{ARROW_LIT, End, EndRole, Picture};
use crate::tcp_state::TcpState;

/// Rows and columns the diagram needs.
pub const HEIGHT: u16 = 14;
pub const WIDTH: u16 = 78;

/// Which of the two CLOSED boxes: where openers start, where ends finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    State(TcpState),
    /// The closing CLOSED, at the bottom.
    End,
}

/// A box: its state, row, column of its `[`.
pub const BOXES: [(Place, u16, u16); 12] = [
    (Place::State(TcpState::Close), 0, 30),
    (Place::State(TcpState::Listen), 2, 10),
    (Place::State(TcpState::SynSent), 2, 55),
    (Place::State(TcpState::SynRecv), 4, 10),
    (Place::State(TcpState::Established), 6, 31),
    (Place::State(TcpState::FinWait1), 8, 10),
    (Place::State(TcpState::CloseWait), 8, 53),
    (Place::State(TcpState::FinWait2), 10, 1),
    (Place::State(TcpState::Closing), 10, 27),
    (Place::State(TcpState::LastAck), 10, 55),
    (Place::State(TcpState::TimeWait), 12, 10),
    (Place::End, 13, 57),
];

/// An arrow: from, to, its polyline (row, column), the last point being
/// its head, and its label, written along its first horizontal run.
pub struct Edge {
    pub from: TcpState,
    pub to: Place,
    pub points: &'static [(u16, u16)],
    pub label: &'static str,
    /// Drawn on the last point: `▼` into the box below, `►` into the box
    /// to the right.
    pub head: char,
}

const fn edge(
    from: TcpState,
    to: Place,
    points: &'static [(u16, u16)],
    label: &'static str,
    head: char,
) -> Edge {
    Edge {
        from,
        to,
        points,
        label,
        head,
    }
}

use TcpState::*;

pub const EDGES: [Edge; 14] = [
    edge(
        Close,
        Place::State(Listen),
        &[(0, 29), (0, 13), (1, 13)],
        "listen()",
        '▼',
    ),
    edge(
        Close,
        Place::State(SynSent),
        &[(0, 38), (0, 59), (1, 59)],
        "connect()",
        '▼',
    ),
    edge(Listen, Place::State(SynRecv), &[(3, 13)], "", '▼'),
    edge(
        SynSent,
        Place::State(Established),
        &[(3, 59), (5, 59), (5, 41), (5, 40)],
        "",
        '▼',
    ),
    edge(
        SynRecv,
        Place::State(Established),
        &[(5, 13), (5, 33), (5, 34)],
        "ACK in",
        '▼',
    ),
    edge(
        Established,
        Place::State(FinWait1),
        &[(7, 34), (7, 14), (7, 13)],
        "close(), FIN out",
        '▼',
    ),
    edge(
        Established,
        Place::State(CloseWait),
        &[(7, 38), (7, 58), (7, 59)],
        "FIN in, ACK out",
        '▼',
    ),
    edge(
        FinWait1,
        Place::State(FinWait2),
        &[(9, 12), (9, 5), (9, 4)],
        "ACK",
        '▼',
    ),
    edge(
        FinWait1,
        Place::State(Closing),
        &[(9, 17), (9, 30), (9, 31)],
        "FIN",
        '▼',
    ),
    edge(CloseWait, Place::State(LastAck), &[(9, 59)], "", '▼'),
    edge(
        FinWait2,
        Place::State(TimeWait),
        &[(11, 4), (11, 12), (11, 13)],
        "FIN",
        '▼',
    ),
    edge(
        Closing,
        Place::State(TimeWait),
        &[(11, 30), (11, 17), (11, 16)],
        "ACK",
        '▼',
    ),
    edge(LastAck, Place::End, &[(11, 59), (12, 59)], "", '▼'),
    edge(
        TimeWait,
        Place::End,
        &[(13, 13), (13, 55), (13, 56)],
        "2MSL: 60 s on Linux",
        '►',
    ),
];

/// Text beside arrows that have no horizontal run to carry it.
const SIDE_LABELS: [(u16, u16, &str); 6] = [
    (1, 61, "SYN out"),
    (3, 15, "SYN in, SYN+ACK out"),
    (3, 61, "SYN+ACK in,"),
    (4, 61, "ACK out"),
    (9, 61, "close(), FIN out"),
    (11, 61, "ACK in"),
];

/// How a cell is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ink {
    /// Lines and labels at rest.
    #[default]
    Plain,
    /// A state's name.
    Name,
    /// An arrow taken, seen (heavy lines).
    Seen,
    /// An arrow the state machine says was taken, unseen (dashed lines).
    Implied,
    /// A marker of an end in this state.
    Marker,
    /// The picked connection's marker.
    Picked,
    /// A marker of a state passed unseen, `(1c)`.
    ImpliedMarker,
    /// An end that has left the table, on CLOSED.
    Gone,
}

/// The drawn diagram: a grid of characters with their ink.
pub struct Grid {
    pub cells: Vec<Vec<(char, Ink)>>,
}

impl Grid {
    fn new() -> Grid {
        Grid {
            cells: vec![vec![(' ', Ink::Plain); WIDTH as usize]; HEIGHT as usize],
        }
    }

    fn put(&mut self, row: u16, col: u16, c: char, ink: Ink) {
        if let Some(cell) = self
            .cells
            .get_mut(row as usize)
            .and_then(|r| r.get_mut(col as usize))
        {
            *cell = (c, ink);
        }
    }

    /// Write `text` from (row, col), clipped at the right edge.
    fn text(&mut self, row: u16, col: u16, text: &str, ink: Ink) {
        for (i, c) in text.chars().enumerate() {
            self.put(row, col + i as u16, c, ink);
        }
    }

    /// The grid as plain lines (tests, and the help screen's picture).
    pub fn lines(&self) -> Vec<String> {
        self.cells
            .iter()
            .map(|r| {
                r.iter()
                    .map(|(c, _)| c)
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }
}

/// The line characters of each kind of stroke: horizontal, vertical, and
/// the corners ╭ ╮ ╰ ╯.
struct Strokes {
    h: char,
    v: char,
    corners: [char; 4],
}

const PLAIN: Strokes = Strokes {
    h: '─',
    v: '│',
    corners: ['╭', '╮', '╰', '╯'],
};
const HEAVY: Strokes = Strokes {
    h: '━',
    v: '┃',
    corners: ['┏', '┓', '┗', '┛'],
};
const DASHED: Strokes = Strokes {
    h: '┄',
    v: '┆',
    corners: ['╭', '╮', '╰', '╯'],
};

/// Draw one edge's polyline with `strokes`; its last point is the head.
///
/// The points before the head are corners: straight runs between them,
/// and at each a corner character for the way the line turns. The first
/// point is under its box (then a run starting there turns out of the
/// vertical) or beside it (a plain run).
fn draw_edge(grid: &mut Grid, edge: &Edge, strokes: &Strokes, ink: Ink) {
    let (line, head) = edge.points.split_at(edge.points.len() - 1);
    let head = head[0];
    for w in line.windows(2) {
        let ((r0, c0), (r1, c1)) = (w[0], w[1]);
        if r0 == r1 {
            for c in c0.min(c1)..=c0.max(c1) {
                grid.put(r0, c, strokes.h, ink);
            }
        } else {
            for r in r0.min(r1)..=r0.max(r1) {
                grid.put(r, c0, strokes.v, ink);
            }
        }
    }
    if line.len() == 1 {
        grid.put(line[0].0, line[0].1, strokes.v, ink);
    }
    // Directions of travel: (row step, column step) of each run.
    let step = |a: (u16, u16), b: (u16, u16)| {
        (
            (b.0 as i32 - a.0 as i32).signum(),
            (b.1 as i32 - a.1 as i32).signum(),
        )
    };
    let [down_left, down_right, left_down, right_down] = [
        strokes.corners[3],
        strokes.corners[2],
        strokes.corners[0],
        strokes.corners[1],
    ];
    let corner = |into: (i32, i32), out: (i32, i32)| match (into, out) {
        ((1, 0), (0, -1)) => Some(down_left), // ╯
        ((1, 0), (0, 1)) => Some(down_right), // ╰
        ((0, -1), (1, 0)) => Some(left_down), // ╭
        ((0, 1), (1, 0)) => Some(right_down), // ╮
        _ => None,
    };
    // The first point: under its source box, the line comes from above.
    let source_row = BOXES
        .iter()
        .find(|(p, _, _)| *p == Place::State(edge.from))
        .map(|(_, row, _)| *row);
    if line.len() >= 2 && source_row.is_some_and(|r| r < line[0].0) {
        if let Some(c) = corner((1, 0), step(line[0], line[1])) {
            grid.put(line[0].0, line[0].1, c, ink);
        }
    }
    for w in edge.points.windows(3) {
        if let Some(c) = corner(step(w[0], w[1]), step(w[1], w[2])) {
            grid.put(w[1].0, w[1].1, c, ink);
        }
    }
    grid.put(head.0, head.1, edge.head, ink);
    if !edge.label.is_empty() && line.len() >= 2 && line[0].0 == line[1].0 {
        let (row, a, b) = (
            line[0].0,
            line[0].1.min(line[1].1),
            line[0].1.max(line[1].1),
        );
        let text = format!(" {} ", edge.label);
        let len = text.chars().count() as u16;
        if b > a + len + 1 {
            let start = a + (b - a - len) / 2 + 1;
            grid.text(row, start, &text, ink);
        }
    }
}

fn place_of(state: TcpState) -> Option<Place> {
    match state {
        TcpState::NewSynRecv => Some(Place::State(TcpState::SynRecv)),
        TcpState::Close => None,
        s => Some(Place::State(s)),
    }
}

fn box_of(place: Place) -> (u16, u16, &'static str) {
    let (_, row, col) = BOXES
        .iter()
        .find(|(p, _, _)| *p == place)
        .copied()
        .expect("every place has a box");
    let name = match place {
        Place::State(TcpState::Close) | Place::End => "CLOSED",
        Place::State(s) => s.name(),
    };
    (row, col, name)
}

/// The edges an arrow goes along, in order.
fn edges_of(path: &[TcpState], ends_closed: bool) -> Vec<&'static Edge> {
    let mut out = Vec::new();
    for w in path.windows(2) {
        let to = if w[1] == TcpState::Close && ends_closed {
            Place::End
        } else {
            Place::State(w[1])
        };
        if let Some(edge) = EDGES.iter().find(|e| e.from == w[0] && e.to == to) {
            out.push(edge);
        }
    }
    out
}

/// A marker to write after a box.
struct Marker {
    text: String,
    ink: Ink,
}

/// More markers than fit on any box's line (each takes 3 cells or more,
/// and a line is at most [`WIDTH`] wide).
const MARKERS_PER_BOX: usize = WIDTH as usize / 3;

/// How many markers each box has: a dozen places, looked up thousands of
/// times a frame, so a short list beats hashing.
#[derive(Default)]
struct Counts(Vec<(Place, usize)>);

impl Counts {
    fn get(&self, place: Place) -> usize {
        self.0
            .iter()
            .find(|(p, _)| *p == place)
            .map_or(0, |(_, n)| *n)
    }

    fn add(&mut self, place: Place) {
        match self.0.iter_mut().find(|(p, _)| *p == place) {
            Some((_, n)) => *n += 1,
            None => self.0.push((place, 1)),
        }
    }
}

/// Draw the diagram with the picture's sockets at `now` (the events'
/// time), `picked` emphasised.
pub fn draw(picture: &Picture, now: Duration, picked: Option<u32>) -> Grid {
    let mut grid = Grid::new();
    for edge in &EDGES {
        draw_edge(&mut grid, edge, &PLAIN, Ink::Plain);
    }
    for (row, col, text) in SIDE_LABELS {
        grid.text(row, col, text, Ink::Plain);
    }
    // Lit arrows: implied first, so that a seen stroke wins where they meet.
    let lit: Vec<&End> = picture
        .pairs
        .values()
        .flat_map(|pair| {
            [EndRole::Client, EndRole::Server]
                .into_iter()
                .filter_map(move |role| pair.end(role))
        })
        .chain(picture.unnumbered.values())
        .filter(|end| {
            end.arrow
                .as_ref()
                .is_some_and(|a| now.saturating_sub(a.at) < ARROW_LIT)
        })
        .collect();
    for end in &lit {
        let arrow = end.arrow.as_ref().expect("filtered");
        // A path through unseen states was taken unseen all along: only
        // its two ends were seen.
        if !arrow.implied.is_empty() || !arrow.maybe.is_empty() {
            for edge in edges_of(&arrow.path(), true) {
                draw_edge(&mut grid, edge, &DASHED, Ink::Implied);
            }
            // "FIN_WAIT2 or CLOSING": both ways round are dashed, into the
            // state and out of it, from and to the path's states.
            let path = arrow.path();
            for maybe in &arrow.maybe {
                for edge in EDGES.iter().filter(|e| {
                    (e.to == Place::State(*maybe) && path.contains(&e.from))
                        || (e.from == *maybe && path.iter().any(|s| e.to == Place::State(*s)))
                }) {
                    draw_edge(&mut grid, edge, &DASHED, Ink::Implied);
                }
            }
        }
    }
    for end in &lit {
        let arrow = end.arrow.as_ref().expect("filtered");
        if arrow.implied.is_empty() && arrow.maybe.is_empty() {
            for edge in edges_of(&arrow.path(), true) {
                draw_edge(&mut grid, edge, &HEAVY, Ink::Seen);
            }
        }
    }

    // Markers, box by box.
    let mut markers: Vec<(Place, Marker)> = Vec::new();
    let listeners = picture.listeners.len();
    if listeners > 0 {
        let text = if listeners == 1 {
            "L".to_string()
        } else {
            format!("L×{listeners}")
        };
        markers.push((
            Place::State(TcpState::Listen),
            Marker {
                text,
                ink: Ink::Marker,
            },
        ));
    }
    for end in picture.unnumbered.values() {
        // A client end whose port connect() has not chosen yet: no number.
        if let Some(place) = place_of(end.state) {
            markers.push((
                place,
                Marker {
                    text: "c".into(),
                    ink: Ink::Marker,
                },
            ));
        }
    }
    // A box's line holds MARKERS_PER_BOX markers at most: past that, ends are
    // only counted ("+N"), not formatted, which a lesson with thousands
    // of connections in TIME_WAIT would otherwise pay for on every frame.
    let mut shown = Counts::default();
    let mut beyond = Counts::default();
    for (n, pair) in picture.pairs.iter().filter(|(_, p)| !p.over(now)) {
        for role in [EndRole::Client, EndRole::Server] {
            let Some(end) = pair.end(role) else { continue };
            let lit = end
                .arrow
                .as_ref()
                .is_some_and(|a| now.saturating_sub(a.at) < ARROW_LIT);
            let at = if end.gone.is_some() {
                Some(Place::End)
            } else {
                place_of(end.state)
            };
            if let Some(place) = at.filter(|p| !lit && shown.get(*p) >= MARKERS_PER_BOX) {
                beyond.add(place);
                continue;
            }
            let name = format!("{n}{}", role.letter());
            let ink = if picked == Some(*n) {
                Ink::Picked
            } else if end.gone.is_some() {
                Ink::Gone
            } else {
                Ink::Marker
            };
            let place = if end.gone.is_some() {
                Some(Place::End)
            } else {
                place_of(end.state)
            };
            if let Some(place) = place {
                let text = match end.time_left(now) {
                    Some(left) if end.state == TcpState::TimeWait => {
                        format!("{name} {}s", left.as_secs())
                    }
                    _ => name.clone(),
                };
                markers.push((place, Marker { text, ink }));
                shown.add(place);
            }
            // The states it passed unseen, while its arrow is lit.
            if let Some(arrow) = end
                .arrow
                .as_ref()
                .filter(|a| now.saturating_sub(a.at) < ARROW_LIT)
            {
                for state in &arrow.implied {
                    if let Some(place) = place_of(*state) {
                        markers.push((
                            place,
                            Marker {
                                text: format!("({name})"),
                                ink: Ink::ImpliedMarker,
                            },
                        ));
                    }
                }
                for state in &arrow.maybe {
                    if let Some(place) = place_of(*state) {
                        markers.push((
                            place,
                            Marker {
                                text: format!("({name}?)"),
                                ink: Ink::ImpliedMarker,
                            },
                        ));
                    }
                }
            }
        }
    }

    for (place, row, col) in BOXES {
        let (_, _, name) = box_of(place);
        let label = format!("[{name}]");
        grid.text(row, col, &label, Ink::Name);
        // The marker field: from after the box to the next drawn cell.
        let start = col + label.chars().count() as u16 + 1;
        let mut end = start;
        while end < WIDTH && grid.cells[row as usize][end as usize].0 == ' ' {
            end += 1;
        }
        let room = end.saturating_sub(start) as usize;
        let here: Vec<&Marker> = markers
            .iter()
            .filter(|(p, _)| *p == place)
            .map(|(_, m)| m)
            .collect();
        let counted = beyond.get(place);
        let mut at = start;
        let mut cut = false;
        for (i, marker) in here.iter().enumerate() {
            let used = (at - start) as usize;
            let left = here.len() - i + counted;
            let need = marker.text.chars().count() + 1;
            // Keep room for "+N" if more markers follow.
            let reserve = if left > 1 { 4 } else { 0 };
            if used + need + reserve > room {
                grid.text(row, at, &format!("+{left}"), Ink::Marker);
                cut = true;
                break;
            }
            grid.text(row, at, &marker.text, marker.ink);
            at += need as u16;
        }
        if counted > 0 && !cut {
            // Every formatted marker fitted: the counted ones follow.
            grid.text(row, at, &format!("+{counted}"), Ink::Marker);
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The empty diagram, as the module's doc shows it (more or less): every
    /// state's box, every arrow.
    #[test]
    fn every_state_has_a_box_and_every_box_fits() {
        let grid = draw(&Picture::default(), Duration::ZERO, None);
        let text = grid.lines().join("\n");
        for state in [
            "CLOSED",
            "LISTEN",
            "SYN_SENT",
            "SYN_RECV",
            "ESTABLISHED",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "CLOSING",
            "TIME_WAIT",
            "CLOSE_WAIT",
            "LAST_ACK",
        ] {
            assert!(text.contains(&format!("[{state}]")), "{state}:\n{text}");
        }
        assert!(
            grid.lines()
                .iter()
                .all(|l| l.chars().count() <= WIDTH as usize)
        );
        assert_eq!(grid.lines().len(), HEIGHT as usize);
    }
}

#[cfg(test)]
mod look {
    /// `cargo test -p observer tui::diagram::look -- --nocapture --ignored`
    /// prints the empty diagram.
    #[test]
    #[ignore = "prints the diagram, checks nothing"]
    fn print_the_diagram() {
        let grid = super::draw(&super::Picture::default(), super::Duration::ZERO, None);
        for line in grid.lines() {
            println!("|{line}");
        }
    }
}
