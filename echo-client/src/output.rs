//! The client's two outputs: stdout carries exactly the echoed bytes,
//! stderr every message (`echo-client: ...`), so `echo-client < f > g`
//! leaves `g` identical to `f`.

use nix::errno::Errno;

use crate::error::ClientError;

/// Print a message about the connection on stderr, as `echo-client: ...`.
pub fn say(message: std::fmt::Arguments<'_>) {
    eprintln!("echo-client: {message}");
}

/// Write echoed bytes to stdout, all of them.
pub fn write_stdout(bytes: &[u8]) -> Result<(), ClientError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|err| ClientError::Io {
            op: "write to stdout",
            errno: Errno::from_raw(err.raw_os_error().unwrap_or(0)),
        })
}
