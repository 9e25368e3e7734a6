//! Durations, one rule for every program: a number and its unit.
//!
//! `300us`, `10ms`, `0.5s`, `2m`. A bare `1` is refused: it was seconds to
//! echo-server and milliseconds to observer before this rule, and a
//! student cannot guess which.

use std::time::Duration;

/// The units a duration may carry, and what each is worth in seconds.
const UNITS: [(&str, f64); 4] = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0)];

/// A duration with its unit: `300us`, `10ms`, `0.5s`, `2m`.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    // Longest suffix first: `ms` before `s`, `us` before `s`.
    let unit = UNITS
        .iter()
        .filter(|(unit, _)| text.ends_with(unit))
        .max_by_key(|(unit, _)| unit.len());
    let Some((unit, scale)) = unit else {
        return Err(if text.parse::<f64>().is_ok() {
            format!("`{text}` needs a unit: us, ms, s or m (for example 10ms or 2s)")
        } else {
            format!("`{text}` is not a duration (a number and a unit: us, ms, s or m, as in 10ms)")
        });
    };
    let number = text[..text.len() - unit.len()].trim();
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (a number and a unit, as in 10ms)"))?;
    if value < 0.0 {
        return Err(format!("`{text}` must not be negative"));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|_| format!("`{text}` is too long"))
}

/// A duration of at least `min` (and at most `max`), for flags where 0 or
/// a huge value means nothing.
pub fn duration_between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| {
        let d = duration(text)?;
        if d < min || d > max {
            return Err(format!(
                "`{text}` must be between {} and {}",
                shown(min),
                shown(max)
            ));
        }
        Ok(d)
    }
}

/// A duration as a person writes it: `100us`, `10ms`, `2s`.
pub fn shown(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_needs_its_unit() {
        assert_eq!(duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("300us"), Ok(Duration::from_micros(300)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        let bare = duration("1").unwrap_err();
        assert!(bare.contains("needs a unit: us, ms, s or m"), "{bare}");
        assert!(
            duration("-1s")
                .unwrap_err()
                .contains("must not be negative")
        );
        assert!(duration("soon").unwrap_err().contains("is not a duration"));
        assert!(duration("ms").unwrap_err().contains("is not a duration"));
    }

    #[test]
    fn a_range_is_said_in_the_units_a_person_writes() {
        let interval = duration_between(Duration::from_micros(100), Duration::from_secs(60));
        assert_eq!(interval("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(
            interval("0ms").unwrap_err(),
            "`0ms` must be between 100us and 60s"
        );
    }
}
