//! echo-lab's end-to-end tests: real processes, real sockets, the real
//! kernel, on ephemeral loopback ports. One binary, one module per topic.
//!
//! Every wait has a deadline; no test sleeps and hopes.

mod docs;
mod echo_pair;
mod exact;
mod grading;
mod lab;
mod lessons;
mod observer;
mod tui;
mod tutorial;

use std::sync::Once;

/// The repository's top directory (the workspace).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lifecycle/ is inside the repository")
        .to_path_buf()
}

/// Once per test binary: become the subreaper of our descendants, so that
/// children orphaned by a killed server are ours to count and reap.
pub fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(lifecycle::procfs::become_subreaper);
}

/// Root-only tests are marked `#[ignore = "needs root: ..."]`: cargo
/// lists them as ignored, with the reason, and runs them only when asked
/// (`cargo test -- --include-ignored`, as `.ci/run` does as root). Asked
/// without root, they fail here, saying why, rather than pass having
/// checked nothing.
pub fn needs_root(why: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root: {why} (run as root, or without --include-ignored)"
    );
}

/// `runuser`, to switch to an ordinary user (util-linux; root only).
pub fn runuser() -> &'static str {
    ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("runuser (util-linux) is needed to run a test as an ordinary user")
}

/// Run the observer with `args` as the ordinary user `nobody` (root only:
/// runuser), from a copy in a fresh world-readable directory, since the
/// build directory may sit where nobody cannot enter (/root). The copy is
/// removed when the returned guard is dropped.
pub fn observer_as_nobody(args: &[&str]) -> (lifecycle::spawn::Proc, TempDir) {
    use std::os::unix::fs::PermissionsExt;
    needs_root("switching to the ordinary user nobody");
    let runuser = runuser();
    let dir = TempDir(std::env::temp_dir().join(format!(
        "echo-lab-nobody-{}-{}",
        std::process::id(),
        args.join("_").replace(['/', ' '], "")
    )));
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.0.join("observer");
    std::fs::copy(&lifecycle::bins::binaries().unwrap().observer, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = std::process::Command::new(runuser);
    command
        .args(["-u", "nobody", "--"])
        .arg(&copy)
        .args(args)
        .current_dir(&dir.0);
    let proc =
        lifecycle::spawn::Proc::spawn_command(command, lifecycle::spawn::Input::Null).unwrap();
    (proc, dir)
}

/// A directory removed, with its contents, when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
