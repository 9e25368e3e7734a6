//! `observer replay FILE`: a recording read back, a source like any other.
//!
//! The file is what `--record` wrote: a header line, then one event per
//! line (see [`crate::view::record`]). Everything is read and checked
//! before anything is shown, so a damaged file says which line is wrong
//! and shows nothing half-way: `recording.jsonl line 7: no field `t``.

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
pub fn read(path: &Path) -> Result<Recording, BadRecording> {
    let shown = path.display().to_string();
    let bad = |line: Option<usize>, reason: String| BadRecording {
        path: shown.clone(),
        line,
        reason,
    };
    let text = std::fs::read(path).map_err(|e| bad(None, e.to_string()))?;
    let text = String::from_utf8(text).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        bad(Some(line), "not UTF-8 text".to_string())
    })?;
    parse(&text).map_err(|(line, reason)| bad(line, reason))
}

/// Parse a recording's text; the error carries its line number.
pub fn parse(text: &str) -> Result<Recording, (Option<usize>, String)> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let (n, first) = lines
        .next()
        .ok_or((None, "empty: not a recording".to_string()))?;
    let header = header(first).map_err(|reason| (Some(n), reason))?;
    let mut events = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| (Some(n), format!("not a JSON line ({e})")))?;
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
