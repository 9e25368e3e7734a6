//! `--mode lockstep`: the seed's str_cli (UNP 5.5).
//!
//! ```text
//! while (Fgets(sendline, MAXLINE, fp) != NULL) {
//!     Writen(sockfd, sendline, strlen(sendline));
//!     if (Readline(sockfd, recvline, MAXLINE) == 0)
//!         err_quit("str_cli: server terminated prematurely");
//!     Fputs(recvline, stdout);
//! }
//! ```
//!
//! Two things differ from the seed, both so that any byte stream survives:
//! we read back exactly as many bytes as we sent (not "a line", which breaks
//! on NUL bytes and on input without a final newline), and we count bytes,
//! not strlen(). Like fgets with MAXLINE, a line longer than 4096 bytes is
//! sent in 4096-byte pieces: one request, one echo, never more in flight.
//!
//! The flaw the seed teaches with it (UNP 5.12): while we sleep in the read
//! of stdin, the server may die; its FIN arrives and we do not notice until
//! we write the next line and read. `poll.rs` is the cure.

use std::io::BufRead;
use std::os::fd::AsFd;

use nix::errno::Errno;
use socket2::Socket;

use crate::config::Config;
use crate::error::{ClientError, reset_after_eof};
use crate::output::write_stdout;

/// UNP's MAXLINE.
pub const MAXLINE: usize = 4096;

pub fn str_cli(socket: &Socket, _config: &Config) -> Result<(), ClientError> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::with_capacity(MAXLINE);
    let mut echo = vec![0u8; MAXLINE];
    loop {
        line.clear();
        read_line_max(&mut input, &mut line, MAXLINE).map_err(|err| ClientError::Io {
            op: "read stdin",
            errno: Errno::from_raw(err.raw_os_error().unwrap_or(0)),
        })?;
        if line.is_empty() {
            return Ok(()); // stdin EOF
        }
        write_all(socket, &line).map_err(|errno| ClientError::on_connection("write", errno))?;
        let got = readn(socket, &mut echo[..line.len()])
            .map_err(|errno| ClientError::on_connection("read", errno))?;
        if got < line.len() {
            write_stdout(&echo[..got])?;
            return Err(ClientError::ServerTerminated {
                detail: reset_after_eof(socket),
            });
        }
        write_stdout(&echo[..got])?;
    }
}

/// Like fgets: up to and including the next `\n`, at most `max` bytes.
fn read_line_max(input: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<()> {
    while line.len() < max {
        let available = input.fill_buf()?;
        if available.is_empty() {
            break; // EOF
        }
        let room = max - line.len();
        let window = &available[..available.len().min(room)];
        let (take, done) = match window.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (window.len(), false),
        };
        line.extend_from_slice(&window[..take]);
        input.consume(take);
        if done {
            break;
        }
    }
    Ok(())
}

/// UNP's writen: every byte, across partial writes and EINTR.
fn write_all(socket: &Socket, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match nix::unistd::write(socket.as_fd(), buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// UNP's readn: read until `buf` is full or EOF; returns the count read.
fn readn(socket: &Socket, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(socket.as_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fgets semantics: stop after a newline, or at MAXLINE, or at EOF.
    #[test]
    fn lines_are_cut_like_fgets() {
        let mut input: &[u8] = b"ab\ncd\0\nlast";
        let mut line = Vec::new();
        read_line_max(&mut input, &mut line, 8).unwrap();
        assert_eq!(line, b"ab\n");
        line.clear();
        read_line_max(&mut input, &mut line, 8).unwrap();
        assert_eq!(line, b"cd\0\n");
        line.clear();
        read_line_max(&mut input, &mut line, 8).unwrap();
        assert_eq!(line, b"last");
        line.clear();
        read_line_max(&mut input, &mut line, 8).unwrap();
        assert!(line.is_empty());

        let long = vec![b'x'; 10];
        let mut input: &[u8] = &long;
        read_line_max(&mut input, &mut line, 4).unwrap();
        assert_eq!(line, b"xxxx");
    }
}
