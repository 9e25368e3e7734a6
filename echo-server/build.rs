//! How echo-server is linked: statically, so that fork() has less to copy.
//!
//! A dynamically linked program maps the loader (ld-linux) and the C
//! library (libc.so.6) at start-up: ten mappings of code, read-only data,
//! relocations and data, and their written pages, that every fork() copies
//! and every child's exit tears down, once per connection (src/fork.rs).
//! A static program carries the parts of the C library it calls inside its
//! own image: echo-server's parent has 14 mappings instead of 26, and the
//! fork server serves about 14% more connections a second (src/fork.rs).
//!
//! Rust links statically with `-C target-feature=+crt-static`, but Cargo
//! cannot give that flag to one program of a workspace: it would reach the
//! procedural macros too (clap's derive), which must be shared libraries.
//! So we do here, for this package's program only, what that flag does at
//! the link: ask the C compiler driver for a static position-independent
//! executable (`-static-pie`: still loaded at a random address), and put a
//! directory first on the library path that holds only the static archives
//! (libc.a and its companions), so that the `-lc` the standard library
//! asks for finds the archive and not libc.so.6. `ldd` then says
//! "statically linked".
//!
//! Where the archives are missing (no static glibc, e.g. no libc6-dev),
//! echo-server is linked the usual, dynamic way, and the build warns that
//! it is; with ECHO_SERVER_DYNAMIC=1 set (to measure what static linking
//! buys) it is linked dynamically without a word.
//!
//! The unwinder (libgcc's `_Unwind_*`, which panics and backtraces use) is
//! linked in from libgcc_eh.a in both cases: named here, it comes first on
//! the link line and the linker (`--as-needed`) drops libgcc_s.so.1, four
//! mappings fewer in a dynamic build.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The libraries the standard library's `-l` flags name on Linux/glibc,
/// and the archive each is to be found in. Since glibc 2.34 all but libc
/// and libm are empty placeholders. `-lgcc_s` (the shared unwinder) is
/// answered with libgcc_eh.a, the same unwinder as an archive.
const ARCHIVES: [(&str, &str); 7] = [
    ("c", "libc.a"),
    ("m", "libm.a"),
    ("pthread", "libpthread.a"),
    ("dl", "libdl.a"),
    ("rt", "librt.a"),
    ("util", "libutil.a"),
    ("gcc_s", "libgcc_eh.a"),
];

fn main() {
    println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=ECHO_SERVER_DYNAMIC");
    println!("cargo:rerun-if-env-changed=CC");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu || std::env::var_os("ECHO_SERVER_DYNAMIC").is_some_and(|v| v == "1") {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("static-libs");
    match static_archives(&dir) {
        Ok(()) => {
            println!("cargo:rustc-link-arg-bins=-static-pie");
            println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
        }
        Err(why) => println!("cargo:warning=echo-server is linked dynamically: {why}"),
    }
}

/// Fill `dir` with a link to each static archive, found by asking the C
/// compiler where it would take it from (`cc -print-file-name=libc.a`).
fn static_archives(dir: &Path) -> Result<(), String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, file) in ARCHIVES {
        let found = Command::new(&cc)
            .arg(format!("-print-file-name={file}"))
            .output()
            .map_err(|e| format!("{cc}: {e}"))?;
        // The driver prints the bare name back when it has no such file.
        let path = PathBuf::from(String::from_utf8_lossy(&found.stdout).trim());
        if !path.is_absolute() || !path.exists() {
            if matches!(name, "c" | "m" | "gcc_s") {
                return Err(format!("{cc} finds no {file}, which a static link needs"));
            }
            continue; // a placeholder this glibc does not ship: not needed
        }
        std::os::unix::fs::symlink(&path, dir.join(format!("lib{name}.a")))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}
