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
        /// A lesson added without its test fails here, in English or in
        /// any translation (`tutorial/zh/`).
        #[test]
        fn every_lesson_is_checked() {
            let checked = [$($file),*];
            let dirs = std::iter::once(String::new())
                .chain(TRANSLATIONS.iter().map(|code| format!("{code}/")));
            for dir in dirs {
                for entry in std::fs::read_dir(repo_root().join("tutorial").join(&dir)).unwrap() {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    if name.ends_with(".md") && name.as_bytes()[0].is_ascii_digit() {
                        let file = format!("{dir}{name}");
                        assert!(checked.contains(&file.as_str()), "{file} is not checked");
                    }
                }
            }
        }
    };
}

/// The translations of the tutorial, each a folder of `tutorial/` (see
/// `tutorial/README.md`, "Adding a language").
const TRANSLATIONS: [&str; 1] = ["zh"];

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
    lesson_11_picture => "11-picture.md",
    zh_lesson_01_three_terminals => "zh/01-three-terminals.md",
    zh_lesson_02_netlink_structures => "zh/02-netlink-structures.md",
    zh_lesson_03_asking_for_sockets => "zh/03-asking-for-sockets.md",
    zh_lesson_04_kernel_conversation => "zh/04-kernel-conversation.md",
    zh_lesson_05_handshake => "zh/05-handshake.md",
    zh_lesson_06_echo => "zh/06-echo.md",
    zh_lesson_07_teardown => "zh/07-teardown.md",
    zh_lesson_08_many_clients => "zh/08-many-clients.md",
    zh_lesson_09_when_things_go_wrong => "zh/09-when-things-go-wrong.md",
    zh_lesson_10_grading => "zh/10-grading.md",
    zh_lesson_11_picture => "zh/11-picture.md",
}

/// A translated lesson runs the same console blocks, in the same order,
/// as its English twin: a change made to one and not the other fails
/// here. (The prose around them is the translator's; the programs'
/// output is English in both, as the programs print it.) And every
/// English lesson has its twin in every translation.
#[test]
fn each_translated_lesson_has_its_english_twins_blocks() {
    let tutorial = repo_root().join("tutorial");
    let numbered = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".md") && name.as_bytes()[0].is_ascii_digit())
            .collect();
        names.sort();
        names
    };
    let english = numbered(&tutorial);
    for code in TRANSLATIONS {
        let translated = numbered(&tutorial.join(code));
        assert_eq!(
            translated, english,
            "tutorial/{code}/ must hold every lesson, under its English name"
        );
        for name in &translated {
            let path = tutorial.join(code).join(name);
            let zh = transcript::blocks(&std::fs::read_to_string(&path).unwrap());
            let en = transcript::blocks(&std::fs::read_to_string(tutorial.join(name)).unwrap());
            let shown = |b: &transcript::Block| format!("{:?} {:?}", sorted(&b.attrs), b.lines);
            for (i, (z, e)) in zh.iter().zip(&en).enumerate() {
                assert_eq!(
                    shown(z),
                    shown(e),
                    "{code}/{name} block {} (line {}) differs from {name} block {} (line {})",
                    i + 1,
                    z.line,
                    i + 1,
                    e.line
                );
            }
            assert_eq!(
                zh.len(),
                en.len(),
                "{code}/{name} has {} console blocks, {name} has {}",
                zh.len(),
                en.len()
            );
        }
    }
}

fn sorted(attrs: &std::collections::HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut all: Vec<_> = attrs.iter().collect();
    all.sort();
    all
}
