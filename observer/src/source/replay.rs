//! `observer replay FILE`: a recording read back, a source like any other.
//!
//! The file is what `--record` wrote: a header line, then one event per
//! line (see [`crate::view::record`]). Everything is read and checked
//! before anything is shown, so a damaged file says which line is wrong
//! and shows nothing half-way: `recording.jsonl line 7: no field `t``.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::event::Event;
use crate::view::record::{FORMAT, Header, VERSION};

/// A whole recording, in memory.
#[derive(Debug, Clone)]
pub struct Recording {
    pub header: Header,
    pub events: Vec<Event>,
}

/// Why a recording cannot be replayed: one line for the user.
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {reason}", line.map_or(String::new(), |n| format!(" line {n}")))]
pub struct BadRecording {
    pub path: String,
    pub line: Option<usize>,
    pub reason: String,
}

/// Read and check a recording.
///
/// Line by line from a buffered reader: the events are kept, the text is
/// not, so a 100,000-event recording (30 MB) costs its events (about
/// 40 MB) and not the file twice.
pub fn read(path: &Path) -> Result<Recording, BadRecording> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| BadRecording {
        path: shown.clone(),
        line: None,
        reason: e.to_string(),
    })?;
    parse_from(BufReader::new(file)).map_err(|(line, reason)| BadRecording {
        path: shown,
        line,
        reason,
    })
}

/// What is wrong, and on which line (none: the file as a whole).
type Bad = (Option<usize>, String);

/// Parse a recording's text; the error carries its line number.
pub fn parse(text: &str) -> Result<Recording, Bad> {
    parse_from(text.as_bytes())
}

/// The header, then one event per line, times never going backwards.
fn parse_from(mut input: impl BufRead) -> Result<Recording, Bad> {
    let mut raw = Vec::new();
    let mut n = 0;
    // One line at a time, its number kept for the error message.
    let mut next_line = |raw: &mut Vec<u8>| -> Result<Option<(usize, String)>, Bad> {
        raw.clear();
        let got = input
            .read_until(b'\n', raw)
            .map_err(|e| (None, e.to_string()))?;
        if got == 0 {
            return Ok(None);
        }
        n += 1;
        let line = std::str::from_utf8(raw).map_err(|_| (Some(n), "not UTF-8 text".to_string()))?;
        Ok(Some((n, line.trim_end_matches(['\n', '\r']).to_string())))
    };
    let (n, first) = next_line(&mut raw)?.ok_or((None, "empty: not a recording".to_string()))?;
    let header = header(&first).map_err(|reason| (Some(n), reason))?;
    let mut events = Vec::new();
    while let Some((n, line)) = next_line(&mut raw)? {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| (Some(n), format!("not a JSON line ({e})")))?;
        let event = Event::from_json(&value).map_err(|reason| (Some(n), reason))?;
        if events.last().is_some_and(|last: &Event| event.t < last.t) {
            return Err((Some(n), "time goes backwards".to_string()));
        }
        events.push(event);
    }
    Ok(Recording { header, events })
}

fn header(line: &str) -> Result<Header, String> {
    let value: Value = serde_json::from_str(line)
        .map_err(|_| "the first line is not a recording's header (JSON)".to_string())?;
    if value["format"] != FORMAT {
        return Err(format!(
            "not an observer recording (the header has no \"format\": \"{FORMAT}\")"
        ));
    }
    let version = value["version"].as_u64().unwrap_or(0);
    if version != VERSION {
        return Err(format!(
            "a recording of format version {version}, made by observer {}; this observer reads version {VERSION}",
            value["observer"].as_str().unwrap_or("?")
        ));
    }
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
    Ok(Header {
        command: text("command"),
        kernel: text("kernel"),
        filter: value["filter"].clone(),
        interval: Duration::from_micros(value["interval_us"].as_u64().unwrap_or(0)),
        sources: value["sources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"format":"echo-lab observer recording","version":1,"command":"watch","interval_us":10000}"#;

    #[test]
    fn a_line_that_is_not_utf8_is_named_by_its_number() {
        let mut bytes = format!("{HEADER}\n\n").into_bytes();
        bytes.extend_from_slice(b"{\"t\": 1.0, \"event\": \"\xff\"}\n");
        let err = parse_from(&bytes[..]).unwrap_err();
        assert_eq!(err, (Some(3), "not UTF-8 text".to_string()));
    }

    #[test]
    fn crlf_line_ends_and_a_missing_last_newline_are_read() {
        let text = format!("{HEADER}\r\n");
        let recording = parse(&text).unwrap();
        assert_eq!(recording.header.command, "watch");
        assert!(recording.events.is_empty());
        let err = parse(&format!("{HEADER}\r\nnot json")).unwrap_err();
        assert_eq!(err.0, Some(2));
        assert!(err.1.starts_with("not a JSON line"), "{}", err.1);
    }
}
