//! Has anything happened to TCP in this network namespace? The kernel's
//! own counters say so for a few microseconds, where a dump costs a
//! millisecond.
//!
//! A dump of inet_diag walks every bucket of the connection hash, 262,144
//! of them on this machine, whatever the filter: about 1 ms of kernel time
//! to find the three sockets of a lesson. Asked every 10 ms, that is a
//! tenth of a core spent finding nothing new. But nothing new can appear
//! without the namespace's counters moving:
//!
//! - `/proc/net/snmp`, the `Tcp:` line (RFC 1213's MIB-II, per namespace),
//!   read only while a listener is known (it is the costlier file, and
//!   without a listener no SYN from elsewhere can make a socket here):
//!   `ActiveOpens` (every connect()), `PassiveOpens`, `AttemptFails`,
//!   `EstabResets`, `CurrEstab`, `InSegs` and `OutSegs` (every segment in
//!   or out: a SYN that makes a request socket, a FIN...), `RetransSegs`,
//!   `InErrs`, `OutRsts`;
//! - `/proc/net/sockstat`, the `TCP:` line: `inuse` (full sockets in the
//!   namespace's tables: every connect(), every connection a listener
//!   completes, and a new listener, which sends nothing, move it) and
//!   `tw` (TIME_WAIT entries: one that expires moves it). Its other
//!   fields (`orphan`, `alloc`, `mem`) count the whole machine, so they
//!   are left out: another namespace's traffic must not wake us.
//!
//! So the watch dumps when these moved since its last dump, and otherwise
//! asks only for the sockets it knows, by their 4-tuples (a hash lookup
//! each, see [`crate::diag::DiagSocket::lookup`]). Both files are kept
//! open and read again from offset 0: the kernel regenerates a seq_file
//! on each read from the start, and we skip the path walk through /proc.
//! They are opened from inside the watched namespace
//! (`/proc/thread-self/net/...`), and a seq_file keeps the namespace it
//! was opened in.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// The two counter files of one namespace, open.
pub struct Counters {
    snmp: File,
    sockstat: File,
    buf: Vec<u8>,
}

/// One reading: sockstat's `inuse` and `tw`, and the `Tcp:` MIB's line,
/// each when it was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reading {
    sockstat: Option<[u64; 2]>,
    segments: Option<MibLine>,
}

/// The values of the `Tcp:` line, byte for byte: whether any moved is all
/// we ask, so they are compared, not parsed (and not allocated: this is
/// read every poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MibLine {
    bytes: [u8; MIB_LINE],
    len: usize,
}

/// Room for the line: 15 counters of up to 20 digits each.
const MIB_LINE: usize = 320;

impl Reading {
    /// Did nothing move since `base`? Every part read now must have been
    /// read then, with the same values.
    pub fn same_as(&self, base: &Reading) -> bool {
        let sockstat = self.sockstat.is_none_or(|v| base.sockstat == Some(v));
        let segments = self.segments.is_none_or(|v| base.segments == Some(v));
        (self.sockstat.is_some() || self.segments.is_some()) && sockstat && segments
    }
}

impl Counters {
    /// Open the files of the calling thread's namespace (call it inside
    /// the namespace to watch). `None` where /proc/net is not readable:
    /// the watch then dumps every time, as it always did.
    pub fn open() -> Option<Counters> {
        Some(Counters {
            snmp: File::open("/proc/thread-self/net/snmp").ok()?,
            sockstat: File::open("/proc/thread-self/net/sockstat").ok()?,
            buf: vec![0; 8192],
        })
    }

    /// Read sockstat if `sockstat`, the MIB if `segments` (see
    /// [`Poller`](super::poll::Poller) for which, when). `None` if a read
    /// fails.
    pub fn read(&mut self, sockstat: bool, segments: bool) -> Option<Reading> {
        let sockstat = if sockstat {
            let n = self.sockstat.read_at(&mut self.buf, 0).ok()?;
            Some(sockstat_tcp(&self.buf[..n])?)
        } else {
            None
        };
        let segments = if segments {
            let n = self.snmp.read_at(&mut self.buf, 0).ok()?;
            Some(tcp_mib(&self.buf[..n])?)
        } else {
            None
        };
        Some(Reading { sockstat, segments })
    }
}

/// The second `Tcp:` line of /proc/net/snmp (the first names the fields),
/// as it is: RtoAlgorithm, RtoMin, RtoMax and MaxConn (constants), then
/// the counters.
fn tcp_mib(text: &[u8]) -> Option<MibLine> {
    let line = text
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"Tcp:"))
        .nth(1)?;
    let mut bytes = [0u8; MIB_LINE];
    let len = line.len().min(MIB_LINE);
    bytes[..len].copy_from_slice(&line[..len]);
    Some(MibLine { bytes, len })
}

/// `TCP: inuse 4 orphan 1 tw 0 alloc 5 mem 66` -> [inuse, tw].
fn sockstat_tcp(text: &[u8]) -> Option<[u64; 2]> {
    let line = text
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(b"TCP:"))?;
    let line = std::str::from_utf8(line).ok()?;
    let field = |name: &str| -> Option<u64> {
        let mut words = line.split_whitespace();
        words.find(|w| *w == name)?;
        words.next()?.parse().ok()
    };
    Some([field("inuse")?, field("tw")?])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as this kernel writes them (Linux 6.18).
    const SNMP: &str = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
        Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
        Tcp: 1 200 120000 -1 57 29 3 1 2 1880 1893 0 0 9 0\n\
        Udp: InDatagrams\nUdp: 0\n";
    const SOCKSTAT: &str =
        "sockets: used 12\nTCP: inuse 4 orphan 1 tw 7 alloc 5 mem 66\nUDP: inuse 0 mem 0\n";

    /// The values' line is the second `Tcp:` line; one counter moved is a
    /// different line.
    #[test]
    fn the_tcp_mib_line_is_the_values_line() {
        let line = tcp_mib(SNMP.as_bytes()).unwrap();
        assert_eq!(
            &line.bytes[..line.len],
            b"Tcp: 1 200 120000 -1 57 29 3 1 2 1880 1893 0 0 9 0"
        );
        let moved = SNMP.replace(" 1880 ", " 1881 ");
        assert_ne!(tcp_mib(moved.as_bytes()), Some(line));
    }

    #[test]
    fn sockstat_gives_inuse_and_tw_only() {
        assert_eq!(sockstat_tcp(SOCKSTAT.as_bytes()).unwrap(), [4, 7]);
    }

    /// A connection made here moves the counters; nothing done moves none.
    #[test]
    fn a_connection_moves_the_counters() {
        let mut counters = Counters::open().expect("/proc/thread-self/net");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let before = counters.read(true, true).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(!counters.read(true, true).unwrap().same_as(&before));
        assert!(!counters.read(true, false).unwrap().same_as(&before));
    }
}
