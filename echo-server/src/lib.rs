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
//! - [`server`]: the server's life, from listen() to the summary line.
//! - [`fork`] and [`thread`]: the two ways to serve a connection.
//! - [`echo`]: str_echo, the loop that serves one client.
//! - [`close`]: how a served connection ends: CLOSE_WAIT held, then close().
//! - [`events`]: the stdout lines, their format, and a parser for them.
//!
//! Next: `echo-client` (the other end), then `observer` (watch both).

pub mod accept;
pub mod close;
pub mod config;
pub mod echo;
pub mod events;
pub mod fork;
pub mod listener;
pub mod server;
pub mod signals;
pub mod thread;

pub use listener::ListenError;
pub use server::{Summary, run};
