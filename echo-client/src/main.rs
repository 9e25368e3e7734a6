//! echo-client's entry point: parse the flags, hand them to the library.

use std::process::ExitCode;

use echo_client::config::Config;

fn main() -> ExitCode {
    // A usage error is one line and exit status 2 (echo-lab-cli).
    let config: Config = match echo_lab_cli::parse("echo-client") {
        Ok(config) => config,
        Err(code) => return code,
    };

    match echo_client::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            echo_client::say(format_args!("{err}"));
            ExitCode::FAILURE
        }
    }
}
