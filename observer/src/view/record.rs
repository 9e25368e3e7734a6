//! `--record FILE`: the event stream as JSON lines in a file, for
//! `observer replay` (and for anyone with `jq`).
//!
//! The first line is a header: what made the recording and how, so that a
//! replay can say what it shows. Every other line is one event, exactly
//! as `--json` prints it (schema: observer/README.md). Each batch is
//! flushed as it comes: a recording cut short by a kill is still a
//! recording, up to its last whole line.
//!
//! ```text
//! {"format":"echo-lab observer recording","version":1,"kernel":"6.18.44", ...}
//! {"t":0.000412,"event":"new","state":"LISTEN", ...}
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::View;
use crate::event::Event;

/// The header's `format` field: what a recording says it is.
pub const FORMAT: &str = "echo-lab observer recording";

/// The version of the format this observer writes and reads. A change to
/// the events that an older replay could not read bumps it.
pub const VERSION: u64 = 1;

/// What a recording says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// `watch`, `tui` or `lab`.
    pub command: String,
    /// The kernel it was recorded on (`uname -r`).
    pub kernel: String,
    /// Which sockets: `port`, `states`, `family`, `netns`.
    pub filter: Value,
    /// The sampling interval asked for.
    pub interval: Duration,
    /// Where the events came from: `poll`, `destroy`, `proc`, `trace`, `wire`.
    pub sources: Vec<String>,
}

impl Header {
    pub fn json(&self) -> Value {
        json!({
            "format": FORMAT,
            "version": VERSION,
            "observer": env!("CARGO_PKG_VERSION"),
            "kernel": self.kernel,
            "command": self.command,
            "filter": self.filter,
            "interval_ms": self.interval.as_secs_f64() * 1000.0,
            "interval_us": self.interval.as_micros() as u64,
            "sources": self.sources,
        })
    }
}

/// The running kernel's release, as `uname -r` prints it.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A view that writes every event to a file.
pub struct Recorder {
    out: BufWriter<File>,
    path: String,
    /// A write failed (a full disk): said once, and the recording stops
    /// while the other views go on.
    failed: bool,
}

impl Recorder {
    /// Create (or truncate) `path` and write the header.
    pub fn create(path: &Path, header: &Header) -> std::io::Result<Recorder> {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "{}", header.json())?;
        out.flush()?;
        Ok(Recorder {
            out,
            path: path.display().to_string(),
            failed: false,
        })
    }
}

impl View for Recorder {
    fn show(&mut self, events: &[Event]) -> bool {
        if self.failed {
            return true;
        }
        let written = events
            .iter()
            .try_for_each(|e| writeln!(self.out, "{}", e.json()))
            .and_then(|()| self.out.flush());
        if let Err(e) = written {
            eprintln!("observer: recording to {} stopped: {e}", self.path);
            self.failed = true;
        }
        true
    }
}
