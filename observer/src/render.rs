//! Presentation: colours (only on a terminal, never with NO_COLOR),
//! durations, addresses, aligned tables.

use std::io::IsTerminal;
use std::net::SocketAddr;

use crate::diag::{SockInfo, Timer};
use crate::tcp_state::TcpState;

/// Whether to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and NO_COLOR is unset (no-color.org).
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: !no_color && std::io::stdout().is_terminal(),
        }
    }

    pub fn plain() -> Style {
        Style { color: false }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A state name in the colour of its phase.
    pub fn state(self, state: TcpState) -> String {
        let code = match state {
            TcpState::Listen => "34", // blue
            TcpState::SynSent | TcpState::SynRecv | TcpState::NewSynRecv => "36", // cyan
            TcpState::Established => "32", // green
            TcpState::TimeWait => "35", // magenta
            _ => "33",                // yellow: closing
        };
        self.paint(code, state.name())
    }

    pub fn alarm(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// Milliseconds as people read them: `200ms`, `58s`, `2h00m`.
pub fn millis(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=99_999 => format!("{}s", ms / 1000),
        100_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// A duration with sub-second precision where it matters: `0.8 ms`,
/// `12 ms`, `3.20 s`.
pub fn elapsed(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// The peer of a listener is `*`, as it has none.
pub fn remote(socket: &SockInfo) -> String {
    if socket.state == TcpState::Listen {
        "*".to_string()
    } else {
        addr(socket.remote)
    }
}

pub fn addr(a: SocketAddr) -> String {
    a.to_string()
}

/// `timewait 58s`, `on 200ms`, `keepalive 2h00m`, or `-`.
pub fn timer(socket: &SockInfo) -> String {
    match socket.timer {
        Timer::Off => "-".to_string(),
        Timer::On if socket.retrans > 0 => format!(
            "on {} (retrans {})",
            millis(socket.expires_ms.into()),
            socket.retrans
        ),
        t => format!("{} {}", t.name(), millis(socket.expires_ms.into())),
    }
}

/// Visible width of a string, not counting ANSI colour codes.
pub fn width(text: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Lay out rows in aligned columns; the last column is not padded.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cell_widths: Vec<Vec<usize>> = rows
        .iter()
        .map(|r| r.iter().map(|c| width(c)).collect())
        .collect();
    let mut widths = vec![0; columns];
    for row in &cell_widths {
        for (i, w) in row.iter().enumerate() {
            widths[i] = widths[i].max(*w);
        }
    }
    let mut out =
        String::with_capacity(rows.len() * (widths.iter().sum::<usize>() + 2 * columns + 1));
    for (row, row_widths) in rows.iter().zip(&cell_widths) {
        let start = out.len();
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                out.extend(std::iter::repeat_n(' ', widths[i] - row_widths[i] + 2));
            }
        }
        let trimmed = out[start..].trim_end().len();
        out.truncate(start + trimmed);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(millis(200), "200ms");
        assert_eq!(millis(58_208), "58s");
        assert_eq!(millis(7_200_000), "2h00m");
        assert_eq!(millis(300_000), "5m00s");
    }

    #[test]
    fn tables_align_without_counting_colour_codes() {
        let colored = Style { color: true }.state(TcpState::Listen);
        let rows = vec![
            vec![colored, "x".to_string()],
            vec!["ESTABLISHED".to_string(), "y".to_string()],
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(width(lines[0]), width(lines[1]));
    }
}
