//! Wait for a condition with a deadline: the only way tests wait.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How often conditions are re-checked.
pub const POLL: Duration = Duration::from_millis(5);

/// Call `check` until it returns `Some`, or fail after `timeout` with
/// `what` and the last value `describe` gives of the state.
pub fn until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}
