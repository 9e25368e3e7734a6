//! The documentation stays true: every path it names exists, and every
//! flag it shows a program taking is in that program's --help.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lifecycle::bins::binaries;
use lifecycle::spawn::{Input, Proc};

use crate::{repo_root, setup};

/// The workspace's packages, by folder.
const PACKAGES: [&str; 6] = [
    "cli",
    "echo-server",
    "echo-client",
    "observer",
    "lifecycle",
    "bench",
];

/// README.md, every package's README.md, every lesson in both languages.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut docs = vec![root.join("README.md"), root.join("README.zh-CN.md")];
    for dir in PACKAGES {
        let readme = root.join(dir).join("README.md");
        if readme.exists() {
            docs.push(readme);
        }
    }
    // The translated lessons (and their indexes and pages) are checked
    // like the English ones.
    for dir in ["tutorial", "tutorial/zh"] {
        let mut lessons: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        lessons.sort();
        docs.extend(lessons);
    }
    docs
}

/// Text in backticks, and the lines of fenced blocks.
fn snippets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push(line.to_string());
        } else {
            out.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    out
}

fn help(program: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    let mut p = Proc::spawn(program, &all, Input::Null).unwrap();
    p.wait_exit(std::time::Duration::from_secs(10)).unwrap();
    p.stdout.text()
}

#[test]
fn every_path_and_flag_in_the_docs_is_real() {
    setup();
    let bins = binaries().unwrap();
    let lifecycle_bin = PathBuf::from(env!("CARGO_BIN_EXE_lifecycle"));
    let mut helps: HashMap<&str, String> = HashMap::new();
    helps.insert("echo-server", help(&bins.server, &[]));
    helps.insert("echo-client", help(&bins.client, &[]));
    helps.insert(
        "lifecycle",
        help(&lifecycle_bin, &[]) + &help(&lifecycle_bin, &["grade"]),
    );
    let observer_help = [
        "watch",
        "snapshot",
        "explain",
        "kernel-echo",
        "lab",
        "replay",
        "tui",
    ]
    .iter()
    .map(|sub| help(&bins.observer, &[sub]))
    .chain([help(&bins.observer, &["lab", "exec"])])
    .collect::<Vec<_>>()
    .join("\n");
    helps.insert("observer", observer_help);

    let mut problems = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let name = doc.strip_prefix(repo_root()).unwrap().display().to_string();
        for snippet in snippets(&text) {
            for token in snippet.split_whitespace() {
                let token = token.trim_matches(|c: char| "`,;:()".contains(c));
                let tops = [
                    "echo-server/",
                    "echo-client/",
                    "observer/",
                    "lifecycle/",
                    "bench/",
                    "cli/",
                    "tutorial/",
                    ".ci/",
                ];
                if tops.iter().any(|t| token.starts_with(t))
                    && !token.contains('<')
                    && !repo_root().join(token).exists()
                {
                    problems.push(format!("{name}: no such path {token}"));
                }
            }
            let tokens: Vec<&str> = snippet.split_whitespace().collect();
            for (i, token) in tokens.iter().enumerate() {
                // A program may open a quoted command line: its own flags
                // end where the quote closes.
                let opens = token.chars().next().filter(|c| *c == '\'' || *c == '"');
                let bare = token.trim_start_matches(['\'', '"']);
                let program = bare.rsplit('/').next().unwrap_or(bare);
                let Some(help) = helps.get(program) else {
                    continue;
                };
                if i > 0 && matches!(tokens[i - 1], "-p" | "--package" | "--bin") {
                    continue; // `cargo run -p echo-server`: cargo's flags follow
                }
                // A quoted argument is another command line (`lifecycle
                // --server-cmd 'echo-server --port {port}'`): its flags are
                // checked where its own program name is met.
                let mut quote: Option<char> = None;
                let mut closed = false;
                for flag in tokens[i + 1..]
                    .iter()
                    .take_while(|t| !matches!(**t, "|" | ";" | "&&" | "&" | "<" | ">" | "--"))
                {
                    if closed {
                        break;
                    }
                    closed = opens.is_some_and(|q| quote.is_none() && flag.ends_with(q));
                    let quoted = quote.is_some();
                    if let Some(q) = quote {
                        if flag.ends_with(q) {
                            quote = None;
                        }
                    } else if let Some(q) = flag.chars().next().filter(|c| *c == '\'' || *c == '"')
                    {
                        if flag.len() == 1 || !flag.ends_with(q) {
                            quote = Some(q);
                        }
                        continue;
                    }
                    if quoted {
                        continue;
                    }
                    let flag = flag.trim_matches(|c: char| "`,;:()'\"".contains(c));
                    let flag = flag.split('=').next().unwrap_or(flag);
                    if flag.starts_with("--") && flag.len() > 2 && !help.contains(flag) {
                        problems.push(format!(
                            "{name}: `{program} ... {flag}` is not in {program} --help"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the docs drifted:\n{}",
        problems.join("\n")
    );
}

/// `cargo run -p PACKAGE` (the README's first command) needs to know which
/// binary to run: a package with several has a `default-run`.
#[test]
fn cargo_run_of_each_package_picks_one_binary() {
    for dir in PACKAGES {
        let manifest = std::fs::read_to_string(repo_root().join(dir).join("Cargo.toml")).unwrap();
        let declared = manifest.matches("[[bin]]").count();
        let under_bin = std::fs::read_dir(repo_root().join(dir).join("src/bin"))
            .map(|d| d.count())
            .unwrap_or(0);
        let main = usize::from(repo_root().join(dir).join("src/main.rs").exists());
        let binaries = declared.max(main) + under_bin;
        assert!(
            binaries <= 1 || manifest.contains("default-run"),
            "{dir} has {binaries} binaries and no default-run: `cargo run -p` would refuse"
        );
    }
}
