//! The one-line usage error and numbers that say why they are refused.

use std::fmt::Display;
use std::process::ExitCode;
use std::str::FromStr;

/// Parse the arguments into `T`, or print why not and give the exit code.
pub fn parse<T: clap::Parser>(program: &str) -> Result<T, ExitCode> {
    parse_from(program, std::env::args_os())
}

/// The same, from given arguments (the first is the program's name).
pub fn parse_from<T, I, A>(program: &str, args: I) -> Result<T, ExitCode>
where
    T: clap::Parser,
    I: IntoIterator<Item = A>,
    A: Into<std::ffi::OsString> + Clone,
{
    match T::try_parse_from(args) {
        Ok(cli) => Ok(cli),
        Err(err) if !err.use_stderr() => {
            // --help or --version: print it, exit 0.
            let _ = err.print();
            Err(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{}", usage_line(program, &err));
            Err(ExitCode::from(2))
        }
    }
}

/// clap's error, as one line of ours.
///
/// clap says `invalid value 'V' for '--flag <X>': REASON` and, for a
/// choice, lists the possible values on a later line. Ours names the flag,
/// then the reason (which quotes the value itself: a 100 kB argument is
/// not repeated), or the value and the choices.
pub fn usage_line(program: &str, err: &clap::Error) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.trim_start_matches("error: ");
    let what = match invalid_value(first) {
        Some((_, arg, Some(reason))) if reason.contains('`') => format!("{arg}: {reason}"),
        Some((value, arg, reason)) => {
            let value = short(value);
            let choices = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("[possible values: "))
                .map(|l| l.trim_end_matches(']'));
            match (choices, reason) {
                (Some(choices), _) => format!("{arg}: '{value}' is not one of: {choices}"),
                (None, Some(reason)) => format!("{arg}: '{value}': {reason}"),
                (None, None) => format!("{arg}: '{value}' is not valid"),
            }
        }
        None => first.to_string(),
    };
    format!("{program}: {what} (see --help)")
}

/// `invalid value 'V' for 'ARG'[: REASON]`, taken apart.
fn invalid_value(line: &str) -> Option<(&str, &str, Option<&str>)> {
    let rest = line.strip_prefix("invalid value '")?;
    let (value, rest) = rest.rsplit_once("' for '")?;
    match rest.split_once("': ") {
        Some((arg, reason)) => Some((value, arg, Some(reason))),
        None => Some((value, rest.strip_suffix('\'')?, None)),
    }
}

/// A value as quoted back: at most 40 characters.
fn short(value: &str) -> String {
    match value.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &value[..at]),
        None => value.to_string(),
    }
}

/// An unsigned number of at least `min`: `--port -1` is told it must not
/// be negative, `--port 0` that it must be at least 1, `--port 70000` how
/// large it may be.
pub fn at_least<T>(min: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + Display + Copy + Bounded + Send + Sync + 'static,
{
    between(min, T::MAX)
}

/// An unsigned number from `min` to `max`, refused as [`at_least`] says.
pub fn between<T>(
    min: T,
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + Display + Copy + Bounded + Send + Sync + 'static,
{
    move |text| {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(format!("`{text}` must not be negative"));
        }
        let n: T = text.parse().map_err(|_| {
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                format!("`{text}` is too large (at most {})", T::MAX)
            } else {
                format!("`{text}` is not a whole number")
            }
        })?;
        if n < min {
            return Err(format!("`{text}` must be at least {min}"));
        }
        if n > max {
            return Err(format!("`{text}` is too large (at most {max})"));
        }
        Ok(n)
    }
}

/// The largest value of an unsigned integer type, for [`at_least`]'s
/// message.
pub trait Bounded {
    const MAX: Self;
}

macro_rules! bounded {
    ($($t:ty),*) => { $(impl Bounded for $t { const MAX: Self = <$t>::MAX; })* };
}
bounded!(u8, u16, u32, u64, usize, i32);

/// The lesson's port: where echo-server listens, echo-client connects and
/// observer watches when no port is given.
pub const LESSON_PORT: u16 = 6666;

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use crate::duration;

    #[derive(Debug, clap::Parser)]
    #[command(name = "t", allow_negative_numbers = true)]
    struct Cli {
        #[arg(long, value_parser = at_least::<u16>(1))]
        port: Option<u16>,
        #[arg(long, value_parser = ["waitpid", "wait", "none"])]
        reap: Option<String>,
        #[arg(long, value_parser = duration)]
        delay: Option<Duration>,
    }

    fn refused(args: &[&str]) -> String {
        use clap::Parser;
        let err =
            Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap_err();
        usage_line("t", &err)
    }

    #[test]
    fn a_usage_error_is_one_line_that_names_the_flag_and_the_reason() {
        assert_eq!(
            refused(&["--port", "-1"]),
            "t: --port <PORT>: `-1` must not be negative (see --help)"
        );
        assert_eq!(
            refused(&["--reap", "maybe"]),
            "t: --reap <REAP>: 'maybe' is not one of: waitpid, wait, none (see --help)"
        );
        assert_eq!(
            refused(&["--delay", "1"]),
            "t: --delay <DELAY>: `1` needs a unit: us, ms, s or m (for example 10ms or 2s) (see --help)"
        );
        assert_eq!(
            refused(&["--bogus"]),
            "t: unexpected argument '--bogus' found (see --help)"
        );
        for line in [refused(&["--port", "-1"]), refused(&["--reap", "maybe"])] {
            assert_eq!(line.lines().count(), 1);
        }
    }

    #[test]
    fn numbers_say_why_they_are_refused() {
        let port = at_least::<u16>(1);
        assert_eq!(port("6666"), Ok(6666));
        assert_eq!(port("-1").unwrap_err(), "`-1` must not be negative");
        assert_eq!(port("0").unwrap_err(), "`0` must be at least 1");
        assert_eq!(
            port("70000").unwrap_err(),
            "`70000` is too large (at most 65535)"
        );
        assert_eq!(port("six").unwrap_err(), "`six` is not a whole number");
        let connections = between::<u32>(1, 1000);
        assert_eq!(
            connections("1001").unwrap_err(),
            "`1001` is too large (at most 1000)"
        );
    }
}
