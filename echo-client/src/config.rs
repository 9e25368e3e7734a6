//! The command line of echo-client.

use std::net::IpAddr;

use clap::{Parser, ValueEnum};
use echo_lab_cli::between;

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
#[command(name = "echo-client", version, after_help = EXAMPLES, allow_negative_numbers = true)]
pub struct Config {
    /// Server host name (localhost) or address (127.0.0.1, ::1), without a
    /// port or brackets: the port is the next argument.
    #[arg(default_value = "127.0.0.1", value_parser = host)]
    pub host: String,

    /// Server port.
    #[arg(default_value_t = echo_lab_cli::LESSON_PORT, value_parser = between::<u16>(1, u16::MAX))]
    pub port: u16,

    /// lockstep: the seed's str_cli. poll: the select()/poll() version.
    #[arg(long, value_enum, default_value_t = Mode::Lockstep)]
    pub mode: Mode,

    /// Open N connections, use the first for data, close all of them
    /// together at exit: N server children exit at once (UNP 5.10).
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = between::<u32>(1, 1000))]
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

/// A host as getaddrinfo() will take it: an IPv4 or IPv6 address, or a
/// name. What is neither is a usage error here (exit 2), said plainly;
/// only a well-formed name that does not resolve reaches the resolver and
/// fails there (exit 1).
pub fn host(text: &str) -> Result<String, String> {
    const WHAT: &str = "a host is a name (localhost) or an address (127.0.0.1, ::1)";
    if text.parse::<IpAddr>().is_ok() {
        return Ok(text.to_string());
    }
    if text.is_empty() {
        return Err(format!("the host is empty: {WHAT}"));
    }
    if text.starts_with('[') {
        let inner = text.trim_start_matches('[').split(']').next().unwrap_or("");
        return Err(format!(
            "`{text}`: brackets belong in URLs; give the address alone ({inner}) and the port as the next argument"
        ));
    }
    if let Some((addr, port)) = text.rsplit_once(':') {
        if addr.parse::<std::net::Ipv4Addr>().is_ok() || !addr.contains(':') {
            return Err(format!(
                "`{text}` has a port in it: give it as the next argument (echo-client {addr} {port})"
            ));
        }
        return Err(format!("`{text}` is not an IPv6 address: {WHAT}"));
    }
    if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "`{text}` is not an IPv4 address (four numbers from 0 to 255, as in 127.0.0.1)"
        ));
    }
    let name_ok = text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !name_ok {
        return Err(format!(
            "`{text}` is not a host name (letters, digits and '-', in labels joined by '.'): {WHAT}"
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::host;

    #[test]
    fn a_malformed_host_is_refused_with_what_a_host_may_be() {
        for ok in [
            "127.0.0.1",
            "::1",
            "localhost",
            "echo-lab.invalid",
            "fe80::1",
        ] {
            assert_eq!(host(ok).as_deref(), Ok(ok));
        }
        let refused = |text: &str| host(text).unwrap_err();
        assert!(refused("999.1.1.1").contains("is not an IPv4 address"));
        assert!(refused("[::1]").contains("brackets belong in URLs"));
        assert!(refused("[::1]").contains("(::1)"));
        assert!(refused("127.0.0.1:6666").contains("echo-client 127.0.0.1 6666"));
        assert!(refused("").contains("the host is empty"));
        assert!(refused("a b").contains("is not a host name"));
        assert!(refused("1::2::3").contains("is not an IPv6 address"));
    }
}
