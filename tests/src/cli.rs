//! The command line of the package's two commands, `lifecycle` and
//! `bench`, parsed the way every echo-lab program does it (see the
//! `echo-lab-cli` crate): `--help` and `--version` print and exit 0; a
//! usage error is one line, `PROGRAM: what was wrong (see --help)`, and
//! exit status 2.

pub use echo_lab_cli::parse;
