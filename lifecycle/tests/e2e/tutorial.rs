//! The tutorial is checked, not trusted: every console block of every
//! lesson runs against the real programs, in the lesson's order, in a
//! network namespace of the lesson's own, and what they print must match
//! (see `lifecycle::transcript` for the notation). A lesson whose output
//! drifts from the programs fails here, with the printed text to paste
//! back.

use std::path::{Path, PathBuf};

use lifecycle::bins::binaries;
use lifecycle::transcript;

use crate::{needs_root, repo_root, setup};

fn check(file: &str) {
    setup();
    needs_root("each lesson runs in a network namespace of its own");
    let bins = binaries().unwrap();
    let dirs: Vec<PathBuf> = [
        bins.server.as_path(),
        Path::new(env!("CARGO_BIN_EXE_lifecycle")),
    ]
    .iter()
    .filter_map(|p| p.parent().map(Path::to_path_buf))
    .collect();
    let lesson = repo_root().join("tutorial").join(file);
    let failures = transcript::check_lesson_isolated(&lesson, &dirs, &repo_root()).unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

macro_rules! lessons {
    ($($test:ident => $file:literal),* $(,)?) => {
        $(
            #[test]
            #[ignore = "needs root: each lesson runs in a network namespace of its own"]
            fn $test() {
                check($file);
            }
        )*
        /// A lesson added without its test fails here.
        #[test]
        fn every_lesson_is_checked() {
            let checked = [$($file),*];
            for entry in std::fs::read_dir(repo_root().join("tutorial")).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".md") && name.as_bytes()[0].is_ascii_digit() {
                    assert!(checked.contains(&name.as_str()), "{name} is not checked");
                }
            }
        }
    };
}

lessons! {
    lesson_01_three_terminals => "01-three-terminals.md",
    lesson_02_netlink_structures => "02-netlink-structures.md",
    lesson_03_asking_for_sockets => "03-asking-for-sockets.md",
    lesson_04_kernel_conversation => "04-kernel-conversation.md",
    lesson_05_handshake => "05-handshake.md",
    lesson_06_echo => "06-echo.md",
    lesson_07_teardown => "07-teardown.md",
    lesson_08_many_clients => "08-many-clients.md",
    lesson_09_when_things_go_wrong => "09-when-things-go-wrong.md",
    lesson_10_grading => "10-grading.md",
}
