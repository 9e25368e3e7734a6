//! `observer lab --pcap FILE`: the wire's segments, for tcpdump and
//! Wireshark.
//!
//! A pcap file (the format of libpcap, tcpdump -w) is a header, then each
//! packet with its time and length. The TUN devices hand the relay whole
//! IP packets with no link-layer header, so the file's link type is
//! LINKTYPE_RAW (101: "raw IP; the packet begins with an IPv4 or IPv6
//! header"). Each TCP segment is written as it enters the wire, with the
//! wall-clock time it did, lost or not: what a tap on the sending host's
//! interface would capture. So the file holds as many segments as the
//! ladder shows. The format itself is pcap-file's business, not ours.

use std::fs::File;
use std::path::Path;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

/// An open capture file.
pub struct Capture {
    /// Unbuffered: each packet goes to the kernel as it is written, so a
    /// lab stopped by a signal leaves a complete file behind.
    writer: PcapWriter<File>,
}

impl Capture {
    /// Create (or truncate) `path` and write the pcap header.
    pub fn create(path: &Path) -> std::io::Result<Capture> {
        let file = File::create(path)?;
        let header = PcapHeader {
            datalink: DataLink::RAW,
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(file, header).map_err(std::io::Error::other)?;
        Ok(Capture { writer })
    }

    /// Write one IP packet, stamped with the time now.
    pub fn write(&mut self, packet: &[u8]) -> std::io::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let record = PcapPacket::new(now, packet.len() as u32, packet);
        self.writer
            .write_packet(&record)
            .map(|_| ())
            .map_err(std::io::Error::other)
    }
}
