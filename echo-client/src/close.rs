//! How the client ends the connection at stdin EOF: a FIN (close), a
//! half-close (shutdown SHUT_WR, then read until the server's FIN), or an
//! RST (SO_LINGER 0).

use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use socket2::Socket;

use crate::config::{Config, Mode};
use crate::error::ClientError;
use crate::output::{say, write_stdout};

/// At stdin EOF in lockstep mode (poll mode has already half-closed):
/// end the connection the way the flags ask.
pub fn at_eof(socket: Socket, config: &Config) {
    if config.reset {
        say(format_args!("closing with RST (SO_LINGER 0)"));
        arm_reset(&socket);
    } else if config.mode == Mode::Poll {
        // The poll loop sent our FIN at stdin EOF and read the server's.
        say(format_args!("both FINs exchanged: closing"));
    } else if config.half_close {
        say(format_args!(
            "stdin EOF: shutdown(SHUT_WR), FIN sent, waiting for the server's FIN"
        ));
        let _ = socket.shutdown(std::net::Shutdown::Write);
        let _ = drain_to_stdout(&socket);
    } else {
        say(format_args!("closing (FIN)"));
    }
    // close(): with linger 0, an RST and the socket is gone at once;
    // otherwise a FIN (ESTABLISHED -> FIN_WAIT1; if the server has closed
    // already, CLOSE_WAIT -> LAST_ACK).
    drop(socket);
}

/// SO_LINGER with l_onoff = 1, l_linger = 0: close() will abort the
/// connection with RST and skip TIME_WAIT (UNP 7.5, figure 7.12).
pub fn arm_reset(socket: &Socket) {
    let _ = socket.set_linger(Some(Duration::ZERO));
}

/// Read until the server's EOF, copying everything to stdout.
fn drain_to_stdout(socket: &Socket) -> Result<u64, ClientError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match nix::unistd::read(socket.as_fd(), &mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                write_stdout(&buf[..n])?;
                total += n as u64;
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(ClientError::on_connection("read", errno)),
        }
    }
}
