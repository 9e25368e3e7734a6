//! # echo-client: UNP's str_cli, in its two classic shapes
//!
//! The second terminal of the lesson: read from stdin, send it to the echo
//! server, print what comes back. stdout carries exactly the echoed bytes,
//! so `echo-client < f > g` leaves `g` identical to `f`; every message goes
//! to stderr.
//!
//! # Layout (read in this order)
//! - [`config`]: the flags.
//! - [`connect`]: getaddrinfo and connect(): the client's half of the
//!   three-way handshake.
//! - [`lockstep`]: send a line, read its echo (UNP 5.5), and why it cannot
//!   see the server die while it waits on stdin (UNP 5.12).
//! - [`poll`]: watch stdin and the socket together, half-close at EOF
//!   (UNP 6.4-6.7).
//! - [`client`]: the client's life: connect, str_cli, close.
//! - [`close`]: how the connection ends: FIN, RST (SO_LINGER 0), half-close.
//! - [`error`]: the errors a client must explain, and the RST after EOF.
//! - [`output`]: stdout for echoed bytes only, stderr for messages.
//!
//! SIGPIPE: Rust's runtime sets it to SIG_IGN before main(), and we keep it
//! so. A write to a connection the server has reset then fails with EPIPE,
//! which we explain, instead of killing the client without a word as it
//! would a C program (UNP 5.13).

pub mod client;
pub mod close;
pub mod config;
pub mod connect;
pub mod error;
pub mod lockstep;
pub mod output;
pub mod poll;

pub use client::run;
pub use error::ClientError;
pub use output::{say, write_stdout};
