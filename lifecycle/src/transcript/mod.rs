//! The tutorial's transcripts, run against the real programs and compared.
//!
//! A lesson's ```` ```console ```` block is a transcript, as a person
//! would see it on a terminal:
//!
//! - `$ CMD` starts a command (`# CMD`: the same, as root);
//! - the lines after it are what it prints, stdout and stderr in the order
//!   written, and the lines the person types;
//! - `^D` is Ctrl-D (end of input), `^C` is Ctrl-C (SIGINT).
//!
//! Words after `console` say how the block is run:
//!
//! - none: each command runs to completion, and everything it prints
//!   must match.
//! - `terminal=N`: terminal N of a session of several terminals. A block
//!   with a `$` line starts the command there; a block without one goes
//!   on with the program already running there (more output, more typing).
//!   The block is done once its lines have appeared; the program goes on
//!   running while the next blocks run, as in a real terminal.
//! - `stdin="..."`: what is typed (`\n` for Enter). The typed lines appear
//!   in the block, as on a terminal, and are not expected from the program.
//! - `wait=SECS`: how long the block may take (default 20 s).
//! - `any-order`: the lines of each command's output may come in any
//!   order (the kernel lists sockets in hash-table order); on a terminal's
//!   block, the lines shown must all appear, in any order, among what the
//!   program prints (a sampler's lines from different polls).
//! - `skip="why"`: shown, not run (a kernel module, a build).
//!
//! After `^C` or `^D` the lines are what the program prints in answer
//! (what it printed before the key and the lesson does not show is passed
//! over); the program must then end. A block that ends with the key
//! shows nothing of the answer, and only the ending is checked.
//!
//! All blocks of a lesson run in the order written. At the end, programs
//! still running are stopped as a person would: Ctrl-D, then Ctrl-C; what
//! they print then is not checked. A program that ended by itself must
//! have printed nothing that the lesson does not show.
//!
//! Expected lines may hold placeholders for what varies between runs:
//! `{n}` a number (a pid, a port, an inode), `{t}` a time (`12 ms`,
//! `0.405`, `59s`), `{*}` any text (at the end of a line, after a blank,
//! also none), and `{NAME}` (a lower-case word, digits allowed after its
//! first letter), a number remembered under NAME: the first time it is
//! read, after that it must be the same, and a command may use it (`kill
//! -9 {child}`; a name not yet bound stays as written, as in `lifecycle
//! --server-cmd 'CMD {port}'`). A line `...` stands for any number of
//! lines. Runs of blanks match runs of blanks, and blanks at either end
//! are not counted: alignment is not checked.
//!
//! Every lesson runs in a network namespace of its own (see
//! [`check_lesson_isolated`]): port 6666 is always free, and `ss` and
//! `observer` show only the lesson's own sockets. A lesson that fails in
//! a sampling observer's lines runs once more (ibid.).
//!
//! # Layout
//! - [`parse`]: a lesson's console blocks.
//! - [`matching`]: printed lines against the lesson's, placeholders and all.
//! - [`run`]: the blocks run, a terminal session played, a lesson checked.

pub mod matching;
pub mod parse;
pub mod run;

pub use matching::{Vars, line_matches, lines_contained, lines_match, lines_match_any_order};
pub use parse::{Block, Key, Line, blocks};
pub use run::{Outcome, Setting, check_lesson, check_lesson_isolated};

/// A text's lines, owned: how the tests write expected and printed lines.
#[cfg(test)]
fn test_lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}
