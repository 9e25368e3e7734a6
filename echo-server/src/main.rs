//! echo-server's entry point: parse the flags, hand them to the library.

use std::process::ExitCode;

use echo_server::config::Config;

fn main() -> ExitCode {
    // A usage error is one line and exit status 2 (echo-lab-cli).
    let config: Config = match echo_lab_cli::parse("echo-server") {
        Ok(config) => config,
        Err(code) => return code,
    };

    match echo_server::run(&config) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo-server: {err}");
            ExitCode::FAILURE
        }
    }
}
