//! The command line: every flag is a lesson, and `--help` says which.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use echo_lab_cli::{at_least, duration, duration_between};

const EXAMPLES: &str = "\
Examples:
  echo-server                            fork per client, SIGCHLD reaped (UNP tcpserv04)
  echo-server --reap none                leave zombies behind (UNP 5.9), see them with observer
  echo-server --mode thread              one thread per client: no children at all
  echo-server --backlog 1 --accept-delay 60s
                                         a full accept queue (it holds 2): a third client sits in SYN_SENT
  echo-server --close-delay 20s          client FIN_WAIT2 / server CLOSE_WAIT for 20 s
  echo-server --close-after 0            the server closes first: TIME_WAIT lands here
  echo-server --idle-timeout 30s         a client silent for 30 s is closed (the server closes first)
  echo-server --die-with-parent          children end when the parent dies (kill -9 it and see)
  echo-server --bind ::1 --port 0        IPv6, on a free port (printed on the first line)

Durations take a unit: us, ms, s or m (30s, 0.5s, 2m).

Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 if the server
could not start (e.g. bind: EADDRINUSE), 2 for a usage error.";

/// How a connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// fork() a child per connection, as UNP's tcpserv01..04.
    Fork,
    /// spawn a thread per connection (UNP 26.4, tcpserv01 with threads).
    Thread,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Fork => "fork",
            Mode::Thread => "thread",
        }
    }
}

/// How the parent collects its dead children (fork mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Reap {
    /// SIGCHLD handler looping waitpid(-1, WNOHANG): correct (UNP 5.10).
    Waitpid,
    /// SIGCHLD handler calling wait() once: signals merge, zombies stay (UNP 5.10's bug).
    Wait,
    /// no handler at all: every child becomes a zombie (UNP 5.9).
    None,
}

impl Reap {
    pub fn name(self) -> &'static str {
        match self {
            Reap::Waitpid => "waitpid",
            Reap::Wait => "wait",
            Reap::None => "none",
        }
    }
}

/// echo-server: echo every byte back to each client.
///
/// One line per event on stdout (see echo-server/README.md for the format).
#[derive(Debug, Clone, Parser)]
#[command(name = "echo-server", version, after_help = EXAMPLES, allow_negative_numbers = true)]
pub struct Config {
    /// Address to listen on. 127.0.0.1 exposes nothing beyond this machine;
    /// `::1` is IPv6 loopback; `0.0.0.0` or `::` inside a lab namespace.
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: IpAddr,

    /// Port to listen on; 0 lets the kernel pick a free one (printed on the
    /// first line).
    #[arg(long, default_value_t = echo_lab_cli::LESSON_PORT, value_parser = at_least::<u16>(0))]
    pub port: u16,

    /// fork: a child per client (close the listener in the child, the
    /// connection in the parent). thread: a thread per client.
    #[arg(long, value_enum, default_value_t = Mode::Fork)]
    pub mode: Mode,

    /// How dead children are reaped (fork mode). waitpid is right; wait and
    /// none show the zombies UNP 5.9-5.10 warns about.
    #[arg(long, value_enum, default_value_t = Reap::Waitpid)]
    pub reap: Reap,

    /// listen() backlog: how many completed connections may wait in the
    /// accept queue (the kernel allows BACKLOG+1, capped by
    /// net.core.somaxconn). UNP's LISTENQ is 1024.
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = at_least::<u32>(0))]
    pub backlog: u32,

    /// Listen, but do not call accept() for this long: the kernel still
    /// completes handshakes into the accept queue; once it is full, new SYNs
    /// are dropped and those clients sit in SYN_SENT, retrying.
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION", value_parser = duration)]
    pub accept_delay: Option<Duration>,

    /// Set TCP_DEFER_ACCEPT: the kernel keeps a new connection in SYN_RECV
    /// (the client's final ACK is ignored) until the first data arrives or
    /// this long passes (whole seconds, rounded up: the option's unit).
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION", value_parser = duration)]
    pub defer_accept: Option<Duration>,

    /// After the client's FIN, wait this long before closing: the client
    /// sits in FIN_WAIT2 and this side in CLOSE_WAIT meanwhile.
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION", value_parser = duration)]
    pub close_delay: Option<Duration>,

    /// Close the connection ourselves once BYTES bytes were echoed (0: as
    /// soon as it is accepted). The server closes first, so TIME_WAIT lands
    /// here. Bytes that arrive after our close are answered with RST.
    #[arg(long, value_name = "BYTES", value_parser = at_least::<u64>(0))]
    pub close_after: Option<u64>,

    /// Close a connection whose client has sent nothing for this long
    /// (SO_RCVTIMEO on the connected socket): the server closes first.
    /// Default: wait for ever, as UNP's server does.
    #[arg(long, allow_hyphen_values = true, value_name = "DURATION",
          value_parser = duration_between(Duration::from_millis(1), Duration::from_secs(86_400)))]
    pub idle_timeout: Option<Duration>,

    /// Fork mode: each child asks the kernel for SIGTERM when the parent
    /// dies (prctl PR_SET_PDEATHSIG). Default: children outlive a killed
    /// parent as orphans, re-parented to init (or a subreaper), still
    /// serving their clients: how UNIX works (echo-server/README.md).
    #[arg(long)]
    pub die_with_parent: bool,

    /// Do not set SO_REUSEADDR: restarting while a connection on the port is
    /// in TIME_WAIT fails with EADDRINUSE (UNP 7.5).
    #[arg(long)]
    pub no_reuseaddr: bool,

    /// Serve at most N clients at once; the next one is told so and closed.
    /// In fork mode, children not yet reaped count (zombies too).
    #[arg(long, value_name = "N", value_parser = at_least::<u32>(1))]
    pub max_clients: Option<u32>,
}

impl Config {
    /// What ends an echo session besides the client's FIN.
    pub fn limits(&self) -> crate::echo::Limits {
        crate::echo::Limits {
            close_after: self.close_after,
            idle: self.idle_timeout,
        }
    }

    /// Defaults with a free port: what tests and the lifecycle harness start from.
    pub fn ephemeral() -> Config {
        Config::parse_from(["echo-server", "--port", "0"])
    }
}
