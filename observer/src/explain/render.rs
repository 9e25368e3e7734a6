//! The renderer: annotated sections as 80 columns of text, or as JSON,
//! and the room kept beside numbers whose width varies, so that a line
//! breaks at the same word on every machine.

use std::time::Duration;

use serde_json::{Value, json};

use super::annotate::{Row, hex};

/// A titled group of rows, with notes in prose.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// Room kept beside a number whose width changes from run to run.
///
/// An inode is 5 digits on one machine and 9 on another, a port id is a
/// pid. Were the text around such a number wrapped by its printed width,
/// a line would break at a different word on each machine, and a lesson
/// that shows the output could not be checked. So a number keeps room for
/// its widest form: [`wide`] pads it with this character, which [`wrap`]
/// counts like any other and [`printed`] removes before anything is shown.
/// The lines then break where they would for the widest number, whatever
/// the number is (a shorter one leaves its line a little short).
const ROOM: char = '\u{E000}';

/// `n` with room for `widest` characters (see [`ROOM`]).
pub fn wide(n: impl std::fmt::Display, widest: usize) -> String {
    let mut text = n.to_string();
    let room = widest.saturating_sub(text.chars().count());
    text.extend(std::iter::repeat_n(ROOM, room));
    text
}

/// The text as shown: without the room kept by [`wide`].
pub fn printed(text: &str) -> String {
    text.replace(ROOM, "")
}

/// Lay out sections in 80 columns: offset, bytes (4 a line), field, then
/// the value and its meaning, wrapped.
pub fn render_text(sections: &[Section]) -> String {
    const VALUE_COL: usize = 39;
    const WIDTH: usize = 80;
    let mut out = String::new();
    for section in sections {
        let title = wrap(&section.title, WIDTH);
        out.push('\n');
        for line in &title {
            out.push_str(line);
            out.push('\n');
        }
        let underline = title
            .iter()
            .map(|l| printed(l).chars().count())
            .max()
            .unwrap_or(0);
        out.push_str(&format!("{}\n", "-".repeat(underline)));
        for row in &section.rows {
            let chunks: Vec<&[u8]> = if row.bytes.is_empty() {
                vec![&[][..]]
            } else {
                row.bytes.chunks(4).collect()
            };
            let shown = chunks.len().min(4);
            let text = if row.meaning.is_empty() {
                row.value.clone()
            } else {
                format!("{} - {}", row.value, row.meaning)
            };
            let value_lines = wrap(&text, WIDTH - VALUE_COL);
            let lines = shown.max(value_lines.len());
            for i in 0..lines {
                let offset = if i == 0 {
                    format!("{:>5}", row.offset)
                } else {
                    " ".repeat(5)
                };
                let bytes = match chunks.get(i) {
                    Some(c) if i + 1 == shown && chunks.len() > shown => {
                        format!("{} ..", hex(&c[..c.len().min(3)]))
                    }
                    Some(c) if i < shown => hex(c),
                    _ => String::new(),
                };
                let field = if i == 0 { row.field.as_str() } else { "" };
                let value = value_lines.get(i).map_or("", String::as_str);
                let line = format!("{offset}  {bytes:<12} {field:<17}{value}");
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        for note in &section.notes {
            for line in wrap(note, WIDTH - 2) {
                out.push_str(&format!("  {line}\n"));
            }
        }
    }
    // Lines were broken with room kept for the widest numbers; now show
    // the numbers as they are.
    printed(&out)
}

/// Word-wrap to `width` columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

pub fn render_json(sections: &[Section]) -> Value {
    Value::Array(
        sections
            .iter()
            .map(|s| {
                json!({
                    "title": printed(&s.title),
                    "rows": s.rows.iter().map(|r| json!({
                        "offset": r.offset,
                        "hex": hex(&r.bytes),
                        "field": r.field,
                        "value": printed(&r.value),
                        "meaning": printed(&r.meaning),
                    })).collect::<Vec<_>>(),
                    "notes": s.notes.iter().map(|n| printed(n)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// A time in microseconds, with room for 7 digits (see [`ROOM`]).
pub fn micros(d: Duration) -> String {
    format!("{} us", wide(d.as_micros(), 7))
}

/// An address in our memory, with room for all 16 hex digits.
pub fn pointer(at: usize) -> String {
    wide(format!("{at:#x}"), 18)
}
