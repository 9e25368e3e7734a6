//! echo-client's entry point: parse the flags, hand them to the library.

use std::process::ExitCode;

use clap::Parser;
use echo_client::config::Config;

fn main() -> ExitCode {
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(err) if !err.use_stderr() => {
            // --help or --version: print it, exit 0.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // A usage error: one line (clap's first), then exit 2.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.trim_start_matches("error: ");
            eprintln!("echo-client: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    match echo_client::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            echo_client::say(format_args!("{err}"));
            ExitCode::FAILURE
        }
    }
}
