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
    let mut text = String::new();
    push_remote(&mut text, socket);
    text
}

/// Append the peer as [`remote`] writes it.
pub fn push_remote(text: &mut String, socket: &SockInfo) {
    if socket.state == TcpState::Listen {
        text.push('*');
    } else {
        push_addr(text, socket.remote);
    }
}

pub fn addr(a: SocketAddr) -> String {
    let mut text = String::new();
    push_addr(&mut text, a);
    text
}

/// Append `a` as `1.2.3.4:80` or `[::1]:80`. IPv4 by hand: the standard
/// `Display` goes through the formatting machinery for each octet, and a
/// snapshot prints 20,000 addresses (it was a tenth of the snapshot's time).
pub fn push_addr(text: &mut String, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                push_decimal(text, octet.into());
            }
            text.push(':');
            push_decimal(text, v4.port().into());
        }
        // Writing to a String cannot fail.
        SocketAddr::V6(v6) => drop(std::fmt::Write::write_fmt(text, format_args!("{v6}"))),
    }
}

/// Append `n` in decimal.
pub fn push_decimal(text: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        text.push(char::from(d));
    }
}

/// Append the socket's timer: `timewait 58s`, `on 200ms`, `keepalive
/// 2h00m`, or `-`.
pub fn push_timer(text: &mut String, socket: &SockInfo) {
    use std::fmt::Write;
    let left = || millis(socket.expires_ms.into());
    // Writing to a String cannot fail.
    let _ = match socket.timer {
        Timer::Off => {
            text.push('-');
            Ok(())
        }
        Timer::On if socket.retrans > 0 => {
            write!(text, "on {} (retrans {})", left(), socket.retrans)
        }
        t => write!(text, "{} {}", t.name(), left()),
    };
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
    let mut t = Table::default();
    for row in rows {
        for cell in row {
            t.cell(cell);
        }
        t.end_row();
    }
    t.render()
}

/// An aligned table built cell by cell into one buffer.
///
/// A snapshot of 10,000 sockets is 100,000 cells; one `String` each made
/// allocation the largest part of the snapshot's own (user) time. Here
/// every cell is appended to one text, remembered by its end and visible
/// width, and written out padded once the column widths are known.
#[derive(Debug, Default)]
pub struct Table {
    text: String,
    /// (end of the cell in `text`, visible width)
    cells: Vec<(usize, usize)>,
    /// index in `cells` where each row ends
    rows: Vec<usize>,
}

impl Table {
    /// A table with room for `rows` rows of `columns` cells of about
    /// `row_bytes` bytes of text (growing a megabyte by doubling costs
    /// copies and page faults).
    pub fn with_capacity(rows: usize, columns: usize, row_bytes: usize) -> Table {
        Table {
            text: String::with_capacity(rows * row_bytes),
            cells: Vec::with_capacity(rows * columns),
            rows: Vec::with_capacity(rows),
        }
    }

    /// Append one cell.
    pub fn cell(&mut self, text: &str) {
        self.text.push_str(text);
        self.close_cell(self.text.len() - text.len());
    }

    /// Append one cell that `write` appends to the table's text.
    pub fn cell_with(&mut self, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        self.close_cell(start);
    }

    fn close_cell(&mut self, start: usize) {
        let cell = &self.text[start..];
        // Plain ASCII (the common case) is as wide as it is long.
        let visible = if cell.bytes().all(|b| b.is_ascii() && b != 0x1b) {
            cell.len()
        } else {
            width(cell)
        };
        self.cells.push((self.text.len(), visible));
    }

    pub fn end_row(&mut self) {
        self.rows.push(self.cells.len());
    }

    /// The rows, aligned; trailing blanks removed.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail, and only whole cells (UTF-8) go in.
        let _ = self.write_to(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Write the aligned rows to `out` (a buffered stdout: no second copy
    /// of the whole table in memory).
    pub fn write_to(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        const SPACES: &[u8] = &[b' '; 64];
        let mut widths: Vec<usize> = Vec::new();
        let mut first = 0;
        for &end in &self.rows {
            for (column, &(_, w)) in self.cells[first..end].iter().enumerate() {
                if widths.len() <= column {
                    widths.push(0);
                }
                widths[column] = widths[column].max(w);
            }
            first = end;
        }
        let (mut first, mut text_at) = (0, 0);
        for &end in &self.rows {
            let row = &self.cells[first..end];
            // The last non-empty cell ends the line: no trailing blanks.
            let last = row.iter().rposition(|&(_, w)| w > 0).unwrap_or(0);
            for (column, &(cell_end, w)) in row.iter().enumerate() {
                if column <= last {
                    out.write_all(&self.text.as_bytes()[text_at..cell_end])?;
                }
                text_at = cell_end;
                if column < last {
                    let mut pad = widths[column] - w + 2;
                    while pad > 0 {
                        let n = pad.min(SPACES.len());
                        out.write_all(&SPACES[..n])?;
                        pad -= n;
                    }
                }
            }
            out.write_all(b"\n")?;
            first = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_by_hand_match_display() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:6666",
            "255.255.255.255:65535",
            "[::1]:80",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(addr(a), a.to_string());
        }
        let mut text = String::new();
        push_decimal(&mut text, u64::MAX);
        assert_eq!(text, u64::MAX.to_string());
    }

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
