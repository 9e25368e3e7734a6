//! How a served connection ends: after str_echo returns, log why, hold
//! CLOSE_WAIT if asked (`--close-delay`), then close() (RFC 9293 3.6).
//!
//! Shared by both modes: a child process and a thread end a connection
//! the same way; only how they wait differs.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::config::Config;
use crate::echo::EchoEnd;
use crate::events::{self, Event};

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
