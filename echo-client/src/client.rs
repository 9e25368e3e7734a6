//! The client's life: connect (with `--connections N`, N times), run
//! str_cli in the chosen mode on the first connection, close them all.

use crate::config::{Config, Mode};
use crate::error::ClientError;
use crate::output::say;
use crate::{close, connect, lockstep, poll};

/// Connect, copy stdin to the server and the echo to stdout, close.
pub fn run(config: &Config) -> Result<(), ClientError> {
    let pid = std::process::id();
    let mut connections = Vec::new();
    for _ in 0..config.connections {
        let (socket, local, peer) = connect::connect(&config.host, config.port)?;
        say(format_args!("connected {local} -> {peer} pid={pid}"));
        connections.push(socket);
    }
    let data = connections.remove(0);
    let result = match config.mode {
        Mode::Lockstep => lockstep::str_cli(&data, config),
        Mode::Poll => poll::str_cli(&data, config),
    };
    if result.is_ok() {
        close::at_eof(data, config);
    }
    // The extra connections (--connections N) close together, right now: at
    // the server, N children see EOF and exit within a few microseconds.
    if config.reset {
        connections.iter().for_each(close::arm_reset);
    }
    drop(connections);
    result
}
