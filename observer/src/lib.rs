//! # observer: the kernel's own account of every TCP socket
//!
//! The third terminal of the lesson. It asks the kernel over netlink
//! (NETLINK_SOCK_DIAG, the seed's NETLINK_INET_DIAG) which TCP sockets
//! exist, in which state, with which queues and timers, and reads /proc to
//! say which processes hold them and what those processes are doing.
//!
//! # Layout (read in this order)
//! - [`tcp_state`]: the states, numbered and named as the kernel does, and
//!   what the state machine says about states passed unseen.
//! - [`layout`]: the byte layouts of every structure exchanged, as tables.
//! - [`diag`]: the request, its filter bytecode, the dump loop, the answer,
//!   the destroy notifications.
//! - [`procfs`]: socket owners and process state from /proc.
//! - [`roles`]: listener, server end, client end.
//! - [`snapshot`]: `observer snapshot`.
//! - [`event`]: the one story every source tells and every view shows:
//!   typed events, as text lines and as JSON.
//! - [`track`]: dumps and process readings in, events out.
//! - [`source`]: the poll, the tracepoint, a recording read back.
//! - [`view`]: the text lines, the JSON lines, the recorder.
//! - [`tui`]: `observer tui`, the same events as a picture.
//! - [`watch`]: `observer watch`, the loop from the sources to a view.
//! - [`exact`]: `--exact`, every transition from the kernel's tracepoint.
//! - [`render`]: colours, durations, tables.
//! - [`explain`]: `observer explain`, one conversation byte by byte.
//! - [`kernel_echo`]: `observer kernel-echo`, the kernel's own echo.
//! - [`lab`]: `observer lab`, two namespaces and a slow wire between them.
//! - [`netns`]: named network namespaces.
//!
//! The schema of `--json` is in observer/README.md.

pub mod diag;
pub mod event;
pub mod exact;
pub mod explain;
pub mod kernel_echo;
pub mod lab;
pub mod layout;
pub mod netns;
pub mod procfs;
pub mod render;
pub mod roles;
pub mod snapshot;
pub mod source;
pub mod tcp_state;
pub mod track;
pub mod tui;
pub mod view;
pub mod watch;
