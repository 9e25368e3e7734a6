//! Where the programs under test are.
//!
//! Cargo gives an integration test the path of its own package's binaries
//! only (`CARGO_BIN_EXE_<name>`); echo-server, echo-client and observer
//! belong to other packages. In order:
//!
//! 1. `ECHO_LAB_BIN_DIR=/some/dir`: the binaries in that directory, no
//!    questions asked (for a lifecycle binary copied away from the
//!    workspace).
//! 2. The binaries beside our own executable (`target/PROFILE/`), if all
//!    three are there and *fresh*: newer than every source file they are
//!    built from. No cargo is run, so a user who cannot write `target/`
//!    (`nobody`, against root's build) can still use them.
//! 3. Otherwise cargo builds them, through escargot (which gives the
//!    path, right under `--release` or a custom `CARGO_TARGET_DIR`), and
//!    [`binaries_said`] says so first: a build can take a minute. If that
//!    fails, the error names what was missing or stale.
//!
//! Freshness by modification time is what make(1) does; it is simpler
//! than cargo's fingerprints, and errs towards building: a file touched
//! but unchanged only costs a cargo run that finds nothing to do.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow};

/// Paths of the three programs of echo-lab.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub server: PathBuf,
    pub client: PathBuf,
    pub observer: PathBuf,
}

static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();

/// The programs (found or built once per process).
pub fn binaries() -> Result<&'static Binaries> {
    binaries_said(|_| {})
}

/// The same, telling `say` first what is about to happen when that is a
/// build (the lifecycle command prints it, so a first run does not sit
/// silent inside its first scenario).
pub fn binaries_said(say: impl FnOnce(&str)) -> Result<&'static Binaries> {
    BINARIES
        .get_or_init(|| locate(say).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("cannot find or build the programs under test: {e}"))
}

const PROGRAMS: [&str; 3] = ["echo-server", "echo-client", "observer"];

fn locate(say: impl FnOnce(&str)) -> Result<Binaries> {
    if let Some(dir) = std::env::var_os("ECHO_LAB_BIN_DIR") {
        let dir = PathBuf::from(dir);
        let find = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            anyhow::ensure!(path.is_file(), "ECHO_LAB_BIN_DIR has no {name}");
            Ok(path)
        };
        return Ok(Binaries {
            server: find("echo-server")?,
            client: find("echo-client")?,
            observer: find("observer")?,
        });
    }
    let stale = match built_dir() {
        Some(dir) => {
            let stale: Vec<String> = PROGRAMS
                .iter()
                .filter_map(|name| staleness(&dir.join(name), name))
                .collect();
            if stale.is_empty() {
                return Ok(Binaries {
                    server: dir.join("echo-server"),
                    client: dir.join("echo-client"),
                    observer: dir.join("observer"),
                });
            }
            stale.join("; ")
        }
        None => "no target directory beside this program".to_string(),
    };
    say(&format!(
        "building echo-server, echo-client and observer with cargo ({stale}) ..."
    ));
    let build_all = || -> Result<Binaries> {
        Ok(Binaries {
            server: build("echo-server")?,
            client: build("echo-client")?,
            observer: build("observer")?,
        })
    };
    build_all().with_context(|| {
        format!("they are not built or not fresh ({stale}), and building them failed")
    })
}

/// `target/PROFILE/`, where cargo put our own executable (a test binary
/// sits one level down, in `deps/`).
fn built_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let dir = if dir.file_name()? == "deps" {
        dir.parent()?
    } else {
        dir
    };
    Some(dir.to_path_buf())
}

/// Why `binary` cannot be used as it is, or `None` if it is fresh.
fn staleness(binary: &Path, name: &str) -> Option<String> {
    staleness_in(
        Path::new(env!("CARGO_MANIFEST_DIR")).parent()?,
        binary,
        name,
    )
}

/// The same, for the workspace at `root`.
fn staleness_in(root: &Path, binary: &Path, name: &str) -> Option<String> {
    let Some(built) = modified(binary) else {
        return Some(format!("{name} is not built"));
    };
    // Its package, the shared command-line crate, and what pins versions.
    let mut sources = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    for dir in [name, "cli"] {
        sources.push(root.join(dir).join("Cargo.toml"));
        collect(&root.join(dir).join("src"), &mut sources);
    }
    sources
        .into_iter()
        .find(|source| modified(source).is_some_and(|m| m > built))
        .map(|newer| {
            let shown = newer.strip_prefix(root).unwrap_or(&newer);
            format!("{name} is older than {}", shown.display())
        })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// Every file under `dir`.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn build(name: &str) -> Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .join("Cargo.toml");
    let run = escargot::CargoBuild::new()
        .manifest_path(&manifest)
        .package(name)
        .bin(name)
        // The same profile as ours: a release lifecycle tests release programs.
        .current_release()
        .run()
        .with_context(|| format!("cargo build -p {name}"))?;
    Ok(run.path().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A binary is fresh until a source of its own package, of the shared
    /// cli crate, or the workspace's manifest or lock file is newer.
    #[test]
    fn a_binary_older_than_a_source_is_stale() {
        let root = std::env::temp_dir().join(format!("echo-lab-bins-{}", std::process::id()));
        let files = [
            "Cargo.toml",
            "Cargo.lock",
            "observer/src/main.rs",
            "cli/src/lib.rs",
            "echo-server/src/main.rs",
        ];
        for f in files {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), "").unwrap();
        }
        let binary = root.join("observer-bin");
        assert_eq!(
            staleness_in(&root, &binary, "observer").as_deref(),
            Some("observer is not built")
        );
        let at = |path: &str, t: SystemTime| {
            std::fs::File::options()
                .write(true)
                .open(root.join(path))
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        let then = SystemTime::now() - Duration::from_secs(3600);
        for f in files {
            at(f, then);
        }
        std::fs::write(&binary, "").unwrap();
        assert_eq!(staleness_in(&root, &binary, "observer"), None);
        // Another package's source does not matter; the cli crate's does.
        at(
            "echo-server/src/main.rs",
            SystemTime::now() + Duration::from_secs(60),
        );
        assert_eq!(staleness_in(&root, &binary, "observer"), None);
        at(
            "cli/src/lib.rs",
            SystemTime::now() + Duration::from_secs(60),
        );
        assert_eq!(
            staleness_in(&root, &binary, "observer").as_deref(),
            Some("observer is older than cli/src/lib.rs")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
