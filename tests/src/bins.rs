//! Where the programs under test are: built by cargo, found by cargo.
//!
//! Cargo gives an integration test the path of its own package's binaries
//! only (`CARGO_BIN_EXE_<name>`); echo-server, echo-client and observer
//! belong to other packages. Rather than guess `target/debug/...` (wrong
//! under `--release`, a custom `CARGO_TARGET_DIR`, or cross builds), we ask
//! cargo to build each one, through escargot, and it tells us the path.
//! When they are already built this takes a few tens of milliseconds.
//!
//! `ECHO_LAB_BIN_DIR=/some/dir` skips cargo and takes the binaries from
//! that directory (for a lifecycle binary copied away from the workspace).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};

/// Paths of the three programs of echo-lab.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub server: PathBuf,
    pub client: PathBuf,
    pub observer: PathBuf,
}

static BINARIES: OnceLock<Result<Binaries, String>> = OnceLock::new();

/// Build (once per process) and return the binaries.
pub fn binaries() -> Result<&'static Binaries> {
    BINARIES
        .get_or_init(|| locate().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow!("cannot build the programs under test: {e}"))
}

fn locate() -> Result<Binaries> {
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
    Ok(Binaries {
        server: build("echo-server")?,
        client: build("echo-client")?,
        observer: build("observer")?,
    })
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
