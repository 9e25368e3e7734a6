//! # echo-server: UNP's concurrent echo server (tcpserv04), done right
//!
//! The first terminal of the lesson. It listens, accepts, and echoes every
//! byte back, one client per child process (or thread), and prints one line
//! per event so that students (and tests) can follow it.
//!
//! # Layout (read in this order)
//! - [`config`]: the flags; each one holds a TCP state still so a class can
//!   see it, or switches a classic bug on.
//! - [`listener`]: socket(), SO_REUSEADDR, bind(), listen().
//! - [`signals`]: SIGCHLD and the three reaping strategies, SIGINT/SIGTERM,
//!   SIGPIPE.
//! - [`accept`]: accept() and its errors: EINTR, ECONNABORTED, EMFILE.
//! - [`fork`] and [`thread`]: the two ways to serve a connection.
//! - [`echo`]: str_echo, the loop that serves one client.
//! - [`events`]: the stdout lines, their format, and a parser for them.
//!
//! Next: `echo-client` (the other end), then `observer` (watch both).

pub mod accept;
pub mod config;
pub mod echo;
pub mod events;
pub mod fork;
pub mod listener;
pub mod signals;
pub mod thread;

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use config::{Config, Mode};
use echo::EchoEnd;
use events::Event;

pub use listener::ListenError;

/// What the server did, printed as the last line at shutdown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub served: u64,
    pub reaped: u64,
    pub joined: u64,
    pub zombies_at_shutdown: u64,
    pub zombies_left: u64,
}

/// Listen, serve until SIGINT or SIGTERM, clean up, return the summary.
///
/// Fails only if the server cannot start (bind, listen, signal set-up).
pub fn run(config: &Config) -> Result<Summary, ListenError> {
    let pid = nix::unistd::getpid().as_raw();
    let reap = match config.mode {
        Mode::Fork => Some(config.reap),
        Mode::Thread => None,
    };
    signals::install(reap).map_err(|errno| ListenError::setup(errno, config))?;

    let (listener, bound) = listener::listen(config)?;
    events::emit(&Event::Listening {
        addr: bound,
        pid,
        mode: config.mode.name(),
        // Threads are joined, not reaped.
        reap: reap.map_or("join", |r| r.name()),
        backlog: config.backlog,
    });

    if let Some(delay) = config.accept_delay {
        // Not calling accept() does not stop the kernel: it keeps completing
        // handshakes into the accept queue until BACKLOG+1 wait there.
        events::emit(&Event::NotAccepting {
            pid,
            secs: delay.as_secs_f64(),
        });
        signals::sleep(delay);
        // Cut short by SIGINT/SIGTERM: we will not accept at all (the
        // serve loop sees the signal first and shuts down).
        if signals::stop_requested().is_none() {
            events::emit(&Event::Accepting {
                pid,
                queued: listener::accept_queue_len(&listener),
            });
        }
    }

    let mut summary = match config.mode {
        Mode::Fork => fork::serve(listener, config),
        Mode::Thread => thread::serve(listener, config),
    };
    summary.reaped += signals::unlogged() as u64;
    events::emit(&Event::Summary {
        pid,
        served: summary.served,
        reaped: summary.reaped,
        joined: summary.joined,
        zombies_at_shutdown: summary.zombies_at_shutdown,
        zombies_left: summary.zombies_left,
    });
    Ok(summary)
}

/// End a connection after str_echo returned: log why, hold CLOSE_WAIT if
/// asked (`--close-delay`), then close.
///
/// `hold` waits: a plain sleep in a child process, a wait that shutdown
/// can cut short in a thread.
pub fn finish(
    conn: impl AsFd,
    peer: SocketAddr,
    pid: i32,
    end: EchoEnd,
    config: &Config,
    hold: impl FnOnce(Duration),
) {
    match end {
        EchoEnd::PeerClosed { bytes } => {
            events::emit(&Event::ClientClosed { peer, pid, bytes });
            if let Some(delay) = config.close_delay {
                // The client's FIN is ACKed; it waits in FIN_WAIT2 for ours,
                // and we sit in CLOSE_WAIT until we close (RFC 9293 3.6).
                events::emit(&Event::Holding {
                    peer,
                    pid,
                    secs: delay.as_secs_f64(),
                });
                hold(delay);
            }
        }
        EchoEnd::Idle { bytes } => {
            // The same active close, with its reason.
            events::emit(&Event::Idle {
                peer,
                pid,
                bytes,
                secs: config.idle_timeout.unwrap_or_default().as_secs_f64(),
            });
        }
        EchoEnd::LimitReached { bytes } | EchoEnd::Stopped { bytes } => {
            // We close first: we are the active closer, and it is on this
            // side that the connection will spend TIME_WAIT.
            events::emit(&Event::ServerClosed { peer, pid, bytes });
        }
        EchoEnd::Failed { bytes, op, errno } => {
            events::emit(&Event::ConnectionError {
                peer,
                pid,
                bytes,
                op,
                errno,
            });
        }
    }
    // close(): our FIN goes out (CLOSE_WAIT -> LAST_ACK, or
    // ESTABLISHED -> FIN_WAIT1 if we close first).
    drop(conn);
}
