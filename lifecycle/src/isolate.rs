//! A network namespace of one's own, for as long as a piece of work runs.
//!
//! unshare(CLONE_NEWNET) moves only the calling thread into a new, empty
//! network namespace (with a loopback device, down). The work runs on a
//! thread of its own, so the caller stays where it was; every socket the
//! work opens and every program it starts live in the new namespace, which
//! the kernel frees when the last of them is gone: nothing is left behind,
//! whatever happens. Inside, port 6666 is free, and `ss` or `observer`
//! see only the work's own sockets.

use anyhow::{Context, Result};

/// Run `work` in a new network namespace, loopback up. Needs root
/// (CAP_SYS_ADMIN).
pub fn in_new_netns<T: Send>(work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .context("unshare(CLONE_NEWNET) (needs root)")?;
            let up = crate::spawn::status_tracked(
                std::process::Command::new("ip").args(["link", "set", "lo", "up"]),
            )
            .context("ip link set lo up (iproute2)")?;
            anyhow::ensure!(up.success(), "ip link set lo up: {up}");
            work()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread in the new namespace panicked"))?
    })
}
