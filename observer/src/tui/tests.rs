//! Frames drawn on ratatui's test backend, compared with the expected
//! frames in `observer/tests/frames/`: the diagram with a pair in every
//! state, arrows seen and implied, a zombie; at 80x24 and 160x48; with
//! and without colour.
//!
//! After a deliberate change to the picture: run
//! `UPDATE_FRAMES=1 cargo test -p observer tui::tests`, read the new
//! frames (`git diff observer/tests/frames`), and commit them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};

use super::app::{App, Key};
use super::draw::{self, Palette};
use crate::diag::{SockInfo, Timer};
use crate::event::{Event, Kind, SockView};
use crate::procfs::Process;
use crate::roles::Role;
use crate::tcp_state::{Missed, TcpState};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sock(conn: u32, role: Role, state: TcpState) -> SockView {
    let client: SocketAddr = format!("127.0.0.1:{}", 50000 + conn).parse().unwrap();
    let server: SocketAddr = "127.0.0.1:6666".parse().unwrap();
    let (local, remote) = match role {
        Role::Client => (client, server),
        _ => (server, client),
    };
    SockView {
        info: SockInfo {
            family: crate::layout::AF_INET,
            state,
            local,
            remote,
            recv_q: 0,
            send_q: 0,
            timer: Timer::Off,
            expires_ms: if state == TcpState::TimeWait {
                53_400
            } else {
                0
            },
            retrans: 0,
            uid: 0,
            inode: 0,
            cookie: 0,
            tcp_info: None,
        },
        role,
        conn: Some(conn),
        owners: Vec::new(),
    }
}

fn new(t: u64, s: SockView, existing: bool) -> Event {
    Event::new(
        ms(t),
        Kind::New {
            sock: s,
            missed: Missed::default(),
            gap: ms(10),
            existing,
        },
    )
}

fn process(pid: i32, state: char, comm: &str) -> Process {
    Process {
        pid,
        ppid: 4100,
        state,
        comm: comm.into(),
        wchan: if state == 'S' {
            "wait_woken".into()
        } else {
            String::new()
        },
        syscall: String::new(),
        args: String::new(),
        meaning: (state == 'S').then(|| "read(): waiting for data on socket fd 4".to_string()),
    }
}

/// A lesson frozen at 5.2 s: the listener; connection 1 ESTABLISHED
/// (both ends); 2 in the handshake; 3 to 6 in every teardown state; 7's
/// client just jumped ESTABLISHED -> TIME_WAIT (FIN_WAIT1 implied, and
/// FIN_WAIT2 or CLOSING); its server end gone; a zombie child.
fn lesson() -> Vec<Event> {
    use Role::{Client, Server};
    use TcpState::*;
    let mut listener = sock(0, Role::Listener, Listen);
    listener.conn = None;
    listener.info.remote = "0.0.0.0:0".parse().unwrap();
    let mut events = vec![
        new(0, listener, true),
        new(0, sock(1, Client, Established), true),
        new(0, sock(1, Server, Established), true),
        new(100, sock(2, Client, SynSent), false),
        new(100, sock(2, Server, SynRecv), false),
    ];
    for (n, client, server) in [
        (3, FinWait1, CloseWait),
        (4, FinWait2, LastAck),
        (5, Closing, Closing),
        (6, TimeWait, Close),
    ] {
        events.push(new(200, sock(n, Client, client), true));
        if server != Close {
            events.push(new(200, sock(n, Server, server), true));
        }
    }
    events.push(new(300, sock(7, Client, Established), true));
    events.push(new(300, sock(7, Server, Established), true));
    events.push(Event::new(
        ms(5_000),
        Kind::State {
            sock: sock(7, Client, TimeWait),
            prev: Established,
            prev_for: ms(4_700),
            missed: Missed {
                certain: vec![FinWait1],
                either: vec![FinWait2, Closing],
            },
            gap: ms(10),
            freed: None,
        },
    ));
    events.push(Event::new(
        ms(5_000),
        Kind::Gone {
            sock: sock(7, Server, Established),
            prev_for: ms(4_700),
            how: crate::event::Gone::PassiveClose {
                missed: Missed {
                    certain: vec![CloseWait, LastAck],
                    either: vec![],
                },
                tcp: None,
            },
            gap: ms(10),
        },
    ));
    events.push(Event::new(
        ms(0),
        Kind::Process {
            process: process(4100, 'S', "echo-server"),
            change: crate::event::ProcChange::New,
        },
    ));
    events.push(Event::new(
        ms(5_100),
        Kind::Zombie {
            process: process(4107, 'Z', "echo-server"),
            zombie_for: ms(60),
            parent: Some(process(4100, 'S', "echo-server")),
            before_start: None,
        },
    ));
    // In time order, as a source gives them.
    events.sort_by_key(|e| e.t);
    events
}

/// The frame's text, one line per row.
fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        for x in 0..area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render(app: &App, t: Duration, width: u16, height: u16, palette: Palette) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| draw::frame(f, app, t, palette)).unwrap();
    terminal.backend().buffer().clone()
}

/// Compare with `observer/tests/frames/NAME.txt` (or write it, with
/// UPDATE_FRAMES set).
fn expect_frame(name: &str, frame: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/frames")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_FRAMES").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, frame).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no {}: run with UPDATE_FRAMES=1 once", path.display()));
    assert!(
        expected == frame,
        "the frame differs from {}:\n--- expected\n{expected}--- drawn\n{frame}",
        path.display()
    );
}

fn frozen() -> App {
    let events = lesson();
    let mut app = App::replay(events, "lesson.jsonl".into());
    app.seek(app.history.len());
    app
}

/// 80x24: everything stacked, nothing cut in the middle of a line.
#[test]
fn a_lesson_at_80x24() {
    let app = frozen();
    let buffer = render(&app, ms(5_200), 80, 24, Palette { color: false });
    expect_frame("lesson-80x24", &text(&buffer));
}

/// 160x48: the diagram and the timeline side by side.
#[test]
fn a_lesson_at_160x48() {
    let app = frozen();
    let buffer = render(&app, ms(5_200), 160, 48, Palette { color: false });
    expect_frame("lesson-160x48", &text(&buffer));
}

/// After the arrow's moment, the implied states lose their markers and
/// the strokes are plain again; TIME_WAIT counts down.
#[test]
fn arrows_go_out_and_time_wait_counts_down() {
    let app = frozen();
    let lit = text(&render(&app, ms(5_200), 80, 24, Palette { color: false }));
    let later = text(&render(&app, ms(10_200), 80, 24, Palette { color: false }));
    assert!(lit.contains("(7c)"), "{lit}");
    assert!(!later.contains("(7c)"), "{later}");
    assert!(lit.contains("┄"), "an implied stroke:\n{lit}");
    assert!(!later.contains("┄"), "{later}");
    assert!(lit.contains("7c 53s"), "{lit}");
    assert!(later.contains("7c 48s"), "{later}");
}

/// Without colour the three kinds stay apart by their characters (heavy,
/// dashed, parentheses) and the zombie by its word; with colour, the
/// zombie is red and the implied strokes magenta.
#[test]
fn colour_and_no_colour_both_tell_seen_implied_and_zombie_apart() {
    let app = frozen();
    let mono = render(&app, ms(5_200), 80, 24, Palette { color: false });
    let colour = render(&app, ms(5_200), 80, 24, Palette { color: true });
    assert_eq!(text(&mono), text(&colour), "the same characters either way");
    let cells = |buffer: &Buffer, what: &str| -> Vec<(u16, u16)> {
        let area = buffer.area;
        let mut found = Vec::new();
        for y in 0..area.height {
            let line: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
            if let Some(at) = line.find(what) {
                let x = line[..at].chars().count() as u16;
                found.push((x, y));
            }
        }
        found
    };
    let zombie = cells(&colour, "ZOMBIE")[0];
    assert_eq!(colour[zombie].fg, Color::Red);
    assert!(mono[zombie].modifier.contains(Modifier::BOLD));
    assert_eq!(mono[zombie].fg, Color::Reset);
    let implied = cells(&colour, "┄")[0];
    assert_eq!(colour[implied].fg, Color::Magenta);
}

/// Replay is deterministic: the same events and the same keys give the
/// same frames.
#[test]
fn the_same_keys_give_the_same_frames() {
    let keys = [
        Key::Right,
        Key::Right,
        Key::Pick,
        Key::Right,
        Key::Left,
        Key::Right,
    ];
    let frames = || {
        let mut app = App::replay(lesson(), "lesson.jsonl".into());
        let now = Instant::now();
        keys.iter()
            .map(|k| {
                app.key(*k, now);
                let t = app.time(now, Duration::ZERO);
                text(&render(&app, t, 80, 24, Palette { color: false }))
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (frames(), frames());
    assert_eq!(a, b);
    assert!(a[2].contains("following #1"), "{}", a[2]);
}

/// Too small a terminal is told so, not garbled.
#[test]
fn a_small_terminal_is_told_its_size() {
    let app = frozen();
    let frame = text(&render(&app, ms(5_200), 60, 12, Palette { color: false }));
    assert!(
        frame.contains("needs 78x16 at least (this is 60x12)"),
        "{frame}"
    );
}

/// A busy lesson: 3,000 connections in TIME_WAIT. The box shows the
/// first that fit and counts the rest, every one of them: "+N" is right
/// whether an end was formatted or only counted.
#[test]
fn thousands_in_one_state_are_counted_not_all_drawn() {
    let mut picture = super::model::Picture::default();
    for n in 1..=3000 {
        picture.apply(&new(0, sock(n, Role::Client, TcpState::TimeWait), true));
    }
    let lines = super::diagram::draw(&picture, ms(60_000), None).lines();
    let row = lines
        .iter()
        .find(|l| l.contains("[TIME_WAIT]"))
        .expect("the TIME_WAIT box");
    let shown = row.matches('c').count();
    let plus: usize = row
        .rsplit('+')
        .next()
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no +N: {row}"));
    assert!(shown >= 1, "{row}");
    assert_eq!(shown + plus, 3000, "{row}");
}

/// An end that left the table waits on CLOSED for three seconds and then
/// leaves the picture, whether or not another event comes to move it.
#[test]
fn a_closed_pair_leaves_after_three_seconds_without_another_event() {
    let mut picture = super::model::Picture::default();
    let gone = |t: u64, role: Role| {
        Event::new(
            ms(t),
            Kind::Gone {
                sock: sock(9, role, TcpState::Established),
                prev_for: ms(100),
                how: crate::event::Gone::Destroyed(None),
                gap: ms(10),
            },
        )
    };
    picture.apply(&new(0, sock(9, Role::Client, TcpState::Established), false));
    picture.apply(&new(0, sock(9, Role::Server, TcpState::Established), false));
    picture.apply(&gone(2_000, Role::Client));
    picture.apply(&gone(2_000, Role::Server));
    let drawn = |t: u64| {
        super::diagram::draw(&picture, ms(t), None)
            .lines()
            .join("\n")
    };
    assert!(drawn(4_900).contains("9c"), "{}", drawn(4_900));
    assert!(!drawn(5_000).contains("9c"), "{}", drawn(5_000));
    assert!(!drawn(5_000).contains("9s"), "{}", drawn(5_000));
}
