//! The command line of echo-client.

use clap::{Parser, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  echo-client                        talk to 127.0.0.1:6666 line by line (UNP str_cli)
  echo-client ::1 6666 --mode poll   IPv6, watching stdin and the socket at once (UNP 6.7)
  echo-client < big.bin > copy.bin   batch mode: copy.bin is identical to big.bin
  echo-client --connections 5        five connections, closed together at exit (UNP tcpcli04)
  echo-client --reset                end with an RST instead of a FIN: no TIME_WAIT
  echo-client --half-close           shutdown(SHUT_WR) at EOF, then wait for the server

stdout carries the echoed bytes and nothing else; messages go to stderr.
Exit status: 0 when every byte came back, 1 for a network error or a server
that went away (\"server terminated prematurely\"), 2 for a usage error.";

/// How the client drives the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Send a line, read back exactly as many bytes, repeat (UNP 5.5). Blocked
    /// on stdin, it does not notice the server going away (UNP 5.12).
    Lockstep,
    /// poll() stdin and the socket together, shutdown(SHUT_WR) at stdin EOF,
    /// read until the server's EOF (UNP 6.7, with non-blocking writes).
    Poll,
}

/// echo-client: send stdin to an echo server, print what comes back.
#[derive(Debug, Clone, Parser)]
#[command(name = "echo-client", version, after_help = EXAMPLES)]
pub struct Config {
    /// Server host name or address (IPv4 or IPv6).
    #[arg(default_value = "127.0.0.1")]
    pub host: String,

    /// Server port.
    #[arg(default_value_t = 6666, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// lockstep: the seed's str_cli. poll: the select()/poll() version.
    #[arg(long, value_enum, default_value_t = Mode::Lockstep)]
    pub mode: Mode,

    /// Open N connections, use the first for data, close all of them
    /// together at exit: N server children exit at once (UNP 5.10).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub connections: u32,

    /// Close with SO_LINGER {on, 0}: close() sends RST instead of FIN, and
    /// no TIME_WAIT is left on either side (UNP 7.5).
    #[arg(long, conflicts_with = "half_close")]
    pub reset: bool,

    /// At stdin EOF, shutdown(SHUT_WR) and wait for the server's FIN before
    /// closing: we sit in FIN_WAIT2 while the server finishes (UNP 6.6).
    /// Poll mode always does this.
    #[arg(long)]
    pub half_close: bool,
}
