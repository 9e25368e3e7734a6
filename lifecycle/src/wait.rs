//! Wait for a condition with a deadline: the only way tests wait.
//!
//! Nothing in the harness, the grader or the transcript runner sleeps and
//! hopes: each wait names the condition it waits for and how long it is
//! willing to wait, and is one of the two calls below.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How often conditions are re-checked.
pub const POLL: Duration = Duration::from_millis(5);

/// Call `check` until it returns `Some`, or return `None` once `timeout`
/// has passed (after one last check at the deadline): for a caller that
/// says in its own words what did not happen.
pub fn within<T>(timeout: Duration, check: impl FnMut() -> Option<T>) -> Option<T> {
    by(Instant::now() + timeout, check)
}

/// The same, with the deadline given as a moment.
pub fn by<T>(deadline: Instant, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(POLL.min(left));
    }
}

/// Call `check` until it returns `Some`, or fail after `timeout`, naming
/// `what` was waited for.
pub fn until<T>(what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> Result<T> {
    match within(timeout, check) {
        Some(value) => Ok(value),
        None => bail!("timed out after {timeout:?} waiting for {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_comes_true_ends_the_wait() {
        let mut calls = 0;
        let got = within(Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Some(3));
    }

    #[test]
    fn a_condition_that_never_comes_true_times_out_and_is_checked_last_at_the_deadline() {
        let start = Instant::now();
        let mut last = start;
        let got: Option<()> = within(Duration::from_millis(30), || {
            last = Instant::now();
            None
        });
        assert_eq!(got, None);
        assert!(
            last - start >= Duration::from_millis(30),
            "{:?}",
            last - start
        );
        assert!(until("nothing", Duration::from_millis(1), || None::<()>).is_err());
    }
}
