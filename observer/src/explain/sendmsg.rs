//! The seed's way to send a netlink request: sendmsg() with a real
//! `msghdr`, one `iovec`, and a `sockaddr_nl` naming the kernel (nl_pid 0),
//! kept as bytes so that `explain` can show the envelope too.

use crate::diag::{DiagError, DiagSocket};

/// The envelope sendmsg() took, as bytes, and where its pieces were.
pub struct Sent {
    pub sockaddr: Vec<u8>,
    pub msghdr: Vec<u8>,
    pub iovec: Vec<u8>,
    pub sockaddr_at: usize,
    pub iovec_at: usize,
    pub request_at: usize,
}

/// sendmsg() with a real msghdr and iovec, as the seed does, keeping a
/// copy of both to show.
pub fn send_with_msghdr(socket: &DiagSocket, request: &[u8]) -> Result<Sent, DiagError> {
    // SAFETY: sockaddr_nl is a plain C struct: all-zero is a valid value.
    let mut dest: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    dest.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    dest.nl_pid = 0; // the kernel
    dest.nl_groups = 0; // unicast
    let mut iov = libc::iovec {
        iov_base: request.as_ptr() as *mut libc::c_void,
        iov_len: request.len(),
    };
    // SAFETY: msghdr is a plain C struct: all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut dest as *mut libc::sockaddr_nl).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: every pointer in `msg` points to a live local (`dest`, `iov`)
    // or to `request`, all alive until sendmsg returns; the kernel only
    // reads through them.
    let n = unsafe { libc::sendmsg(socket.raw_fd(), &msg, 0) };
    if n < 0 {
        return Err(DiagError::Io {
            op: "sendmsg",
            errno: nix::errno::Errno::last(),
        });
    }
    let as_bytes = |ptr: *const u8, len: usize| {
        // SAFETY: `ptr` points to a live local struct of exactly `len` bytes.
        unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
    };
    Ok(Sent {
        sockaddr: as_bytes(
            (&dest as *const libc::sockaddr_nl).cast(),
            std::mem::size_of_val(&dest),
        ),
        msghdr: as_bytes(
            (&msg as *const libc::msghdr).cast(),
            std::mem::size_of_val(&msg),
        ),
        iovec: as_bytes(
            (&iov as *const libc::iovec).cast(),
            std::mem::size_of_val(&iov),
        ),
        sockaddr_at: &dest as *const _ as usize,
        iovec_at: &iov as *const _ as usize,
        request_at: request.as_ptr() as usize,
    })
}
