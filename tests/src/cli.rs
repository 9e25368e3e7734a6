//! The command line of the package's two commands, `lifecycle` and
//! `bench`, parsed the way every echo-lab program does it (ripgrep's
//! habit): `--help` and `--version` print and exit 0; a usage error is
//! one line, `PROGRAM: what was wrong (see --help)`, and exit status 2.

use std::process::ExitCode;

/// Parse the arguments into `T`, or say why not and give the exit code.
pub fn parse<T: clap::Parser>(program: &str) -> Result<T, ExitCode> {
    match T::try_parse() {
        Ok(cli) => Ok(cli),
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            Err(ExitCode::SUCCESS)
        }
        Err(err) => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "{program}: {} (see --help)",
                first.trim_start_matches("error: ")
            );
            Err(ExitCode::from(2))
        }
    }
}
