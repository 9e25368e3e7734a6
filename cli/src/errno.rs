//! An errno as the kernel's headers spell it.

use nix::errno::Errno;

/// `ECONNRESET`, not "Connection reset by peer": the name a student can
/// look up in errno(3), in `include/uapi/asm-generic/errno.h`, and in the
/// man page of the call that failed. (`Errno::desc()` gives the words.)
pub fn errno_name(errno: Errno) -> String {
    format!("{errno:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_headers_names() {
        assert_eq!(errno_name(Errno::ECONNRESET), "ECONNRESET");
        assert_eq!(errno_name(Errno::EINTR), "EINTR");
    }
}
