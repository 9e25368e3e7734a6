//! The server's life: install the signal handlers, listen, optionally
//! hold off accept() (`--accept-delay`), serve in the chosen mode until
//! SIGINT or SIGTERM, and print the summary line.

use crate::config::{Config, Mode};
use crate::events::{self, Event};
use crate::listener::{self, ListenError};
use crate::{fork, signals, thread};

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
