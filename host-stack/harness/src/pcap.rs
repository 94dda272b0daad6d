//! Classic pcap capture files (the libpcap format): a streaming reader and writer.
//!
//! Both byte orders and both timestamp resolutions (micro- and nanoseconds) are read; the
//! writer keeps the reader's header so that an output file has the input's link type,
//! resolution and snap length. pcapng is recognised and refused with a clear error.
//! The reader reuses one buffer for every record, so reading allocates nothing per packet.

use std::io::{self, Read, Write};

/// Link types espo reads and writes (the values of the pcap header's `network` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101): raw IPv4 or IPv6, told apart by the version nibble.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
}

impl LinkType {
    pub fn from_network(network: u32) -> Option<LinkType> {
        match network {
            1 => Some(LinkType::Ethernet),
            101 => Some(LinkType::RawIp),
            228 => Some(LinkType::Ipv4),
            229 => Some(LinkType::Ipv6),
            _ => None,
        }
    }

    pub fn network(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::RawIp => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
        }
    }
}

impl core::fmt::Display for LinkType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            LinkType::Ethernet => "Ethernet",
            LinkType::RawIp => "raw IP",
            LinkType::Ipv4 => "raw IPv4",
            LinkType::Ipv6 => "raw IPv6",
        })
    }
}

/// Why a capture could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("reading the capture failed")]
    Read(#[source] io::Error),
    #[error("writing the capture failed")]
    Write(#[source] io::Error),
    #[error("the file is empty or shorter than a pcap header ({0} bytes)")]
    ShortHeader(usize),
    #[error(
        "this is a pcapng file; espo reads classic pcap (convert with `editcap -F pcap IN OUT`)"
    )]
    Pcapng,
    #[error("not a pcap file (magic number {0:#010x})")]
    BadMagic(u32),
    #[error("unsupported pcap version {major}.{minor} (espo reads 2.4)")]
    BadVersion { major: u16, minor: u16 },
    #[error(
        "unsupported link type {0} (espo reads Ethernet (1), raw IP (101), IPv4 (228), IPv6 (229))"
    )]
    UnsupportedLinkType(u32),
    #[error("record {index} is truncated: the file ends inside it")]
    TruncatedRecord { index: u64 },
    #[error("record {index} claims {len} captured bytes, more than the limit of {limit}")]
    OversizedRecord { index: u64, len: u32, limit: u32 },
}

/// The per-file header: what the writer needs to produce a file like the one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub link_type: LinkType,
    pub snap_len: u32,
    pub nanosecond: bool,
}

/// One record: its timestamp, its original length and the captured bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub ts_sec: u32,
    /// Microseconds or nanoseconds, as the file header says.
    pub ts_frac: u32,
    /// Length of the packet on the wire; larger than the data when the capture snapped it.
    pub orig_len: u32,
}

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
const MAGIC_PCAPNG: u32 = 0x0a0d_0d0a;
const FILE_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// Largest record accepted, whatever the file's snap length claims (a hostile header must
/// not make the reader allocate gigabytes).
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

/// Streaming pcap reader.
pub struct Reader<R: Read> {
    input: R,
    header: FileHeader,
    swapped: bool,
    buf: Vec<u8>,
    index: u64,
}

impl<R: Read> Reader<R> {
    pub fn new(mut input: R) -> Result<Self, PcapError> {
        let mut hdr = [0u8; FILE_HEADER_LEN];
        let got = read_full(&mut input, &mut hdr).map_err(PcapError::Read)?;
        if got >= 4 && u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) == MAGIC_PCAPNG {
            return Err(PcapError::Pcapng);
        }
        if got < FILE_HEADER_LEN {
            return Err(PcapError::ShortHeader(got));
        }
        let magic_le = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let (swapped, nanosecond) = match magic_le {
            MAGIC_US => (false, false),
            MAGIC_NS => (false, true),
            m if m.swap_bytes() == MAGIC_US => (true, false),
            m if m.swap_bytes() == MAGIC_NS => (true, true),
            m => return Err(PcapError::BadMagic(m)),
        };
        let u16_at = |at: usize| {
            let v = u16::from_le_bytes([hdr[at], hdr[at + 1]]);
            if swapped { v.swap_bytes() } else { v }
        };
        let u32_at = |at: usize| {
            let v = u32::from_le_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
            if swapped { v.swap_bytes() } else { v }
        };
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != 2 {
            return Err(PcapError::BadVersion { major, minor });
        }
        let snap_len = u32_at(16);
        // The upper bits of `network` may carry FCS information (pcap-savefile(5)).
        let network = u32_at(20) & 0x0fff_ffff;
        let link_type =
            LinkType::from_network(network).ok_or(PcapError::UnsupportedLinkType(network))?;
        Ok(Reader {
            input,
            header: FileHeader {
                link_type,
                snap_len,
                nanosecond,
            },
            swapped,
            buf: Vec::with_capacity(16 * 1024),
            index: 0,
        })
    }

    pub fn header(&self) -> FileHeader {
        self.header
    }

    /// Number of records read so far.
    pub fn records_read(&self) -> u64 {
        self.index
    }

    /// The next record, or `None` at the end of the file. The data borrows the reader's
    /// buffer until the next call.
    pub fn next_record(&mut self) -> Result<Option<(RecordHeader, &[u8])>, PcapError> {
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.input, &mut hdr).map_err(PcapError::Read)?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER_LEN {
            return Err(PcapError::TruncatedRecord { index: self.index });
        }
        let u32_at = |at: usize| {
            let v = u32::from_le_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
            if self.swapped { v.swap_bytes() } else { v }
        };
        let record = RecordHeader {
            ts_sec: u32_at(0),
            ts_frac: u32_at(4),
            orig_len: u32_at(12),
        };
        let incl_len = u32_at(8);
        if incl_len > MAX_RECORD_LEN {
            return Err(PcapError::OversizedRecord {
                index: self.index,
                len: incl_len,
                limit: MAX_RECORD_LEN,
            });
        }
        self.buf.resize(incl_len as usize, 0);
        let got = read_full(&mut self.input, &mut self.buf).map_err(PcapError::Read)?;
        if got < self.buf.len() {
            return Err(PcapError::TruncatedRecord { index: self.index });
        }
        self.index += 1;
        Ok(Some((record, &self.buf)))
    }
}

/// Streaming pcap writer (native byte order is little-endian here, as libpcap writes it).
pub struct Writer<W: Write> {
    output: W,
    snap_len: u32,
}

impl<W: Write> Writer<W> {
    pub fn new(mut output: W, header: FileHeader) -> Result<Self, PcapError> {
        let mut hdr = [0u8; FILE_HEADER_LEN];
        let magic = if header.nanosecond {
            MAGIC_NS
        } else {
            MAGIC_US
        };
        hdr[0..4].copy_from_slice(&magic.to_le_bytes());
        hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
        hdr[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero.
        hdr[16..20].copy_from_slice(&header.snap_len.to_le_bytes());
        hdr[20..24].copy_from_slice(&header.link_type.network().to_le_bytes());
        output.write_all(&hdr).map_err(PcapError::Write)?;
        Ok(Writer {
            output,
            snap_len: header.snap_len,
        })
    }

    /// Writes one record. The original length is the data's length: espo writes whole
    /// packets it built itself. A snap length smaller than a packet is raised, not applied.
    pub fn write_record(
        &mut self,
        ts_sec: u32,
        ts_frac: u32,
        data: &[u8],
    ) -> Result<(), PcapError> {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.snap_len = self.snap_len.max(len);
        let mut hdr = [0u8; RECORD_HEADER_LEN];
        hdr[0..4].copy_from_slice(&ts_sec.to_le_bytes());
        hdr[4..8].copy_from_slice(&ts_frac.to_le_bytes());
        hdr[8..12].copy_from_slice(&len.to_le_bytes());
        hdr[12..16].copy_from_slice(&len.to_le_bytes());
        self.output.write_all(&hdr).map_err(PcapError::Write)?;
        self.output.write_all(data).map_err(PcapError::Write)
    }

    pub fn finish(mut self) -> Result<W, PcapError> {
        self.output.flush().map_err(PcapError::Write)?;
        Ok(self.output)
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod test {
    use super::*;

    fn file(swapped: bool, magic: u32, network: u32, records: &[(u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: u32| {
            if swapped {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if swapped {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w32(magic));
        out.extend_from_slice(&w16(2));
        out.extend_from_slice(&w16(4));
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&w32(65535));
        out.extend_from_slice(&w32(network));
        for (ts, data) in records {
            out.extend_from_slice(&w32(*ts));
            out.extend_from_slice(&w32(7));
            out.extend_from_slice(&w32(data.len() as u32));
            out.extend_from_slice(&w32(data.len() as u32 + 3));
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn reads_both_byte_orders_and_resolutions() {
        for (swapped, magic, ns) in [
            (false, MAGIC_US, false),
            (true, MAGIC_US, false),
            (false, MAGIC_NS, true),
            (true, MAGIC_NS, true),
        ] {
            let bytes = file(swapped, magic, 101, &[(5, &[0x45, 1, 2]), (6, &[])]);
            let mut r = Reader::new(&bytes[..]).unwrap();
            assert_eq!(
                r.header(),
                FileHeader {
                    link_type: LinkType::RawIp,
                    snap_len: 65535,
                    nanosecond: ns
                }
            );
            let (h, d) = r.next_record().unwrap().unwrap();
            assert_eq!((h.ts_sec, h.ts_frac, h.orig_len), (5, 7, 6));
            assert_eq!(d, &[0x45, 1, 2]);
            let (h, d) = r.next_record().unwrap().unwrap();
            assert_eq!((h.ts_sec, d.len()), (6, 0));
            assert!(r.next_record().unwrap().is_none());
            assert_eq!(r.records_read(), 2);
        }
    }

    #[test]
    fn write_then_read_round_trip() {
        let header = FileHeader {
            link_type: LinkType::Ethernet,
            snap_len: 100,
            nanosecond: true,
        };
        let mut w = Writer::new(Vec::new(), header).unwrap();
        w.write_record(1, 2, &[9; 60]).unwrap();
        w.write_record(3, 4, &[8; 300]).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(&bytes[..]).unwrap();
        assert_eq!(r.header().link_type, LinkType::Ethernet);
        assert!(r.header().nanosecond);
        let (h, d) = r.next_record().unwrap().unwrap();
        assert_eq!(
            (h.ts_sec, h.ts_frac, h.orig_len, d),
            (1, 2, 60, &[9u8; 60][..])
        );
        let (_, d) = r.next_record().unwrap().unwrap();
        assert_eq!(d, &[8u8; 300][..]);
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn refuses_bad_files_with_clear_errors() {
        assert!(matches!(
            Reader::new(&[][..]),
            Err(PcapError::ShortHeader(0))
        ));
        assert!(matches!(
            Reader::new(&[0xd4, 0xc3, 0xb2][..]),
            Err(PcapError::ShortHeader(3))
        ));
        let ng = [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0];
        assert!(matches!(Reader::new(&ng[..]), Err(PcapError::Pcapng)));
        let mut bad = file(false, MAGIC_US, 1, &[]);
        bad[0] = 0;
        assert!(matches!(Reader::new(&bad[..]), Err(PcapError::BadMagic(_))));
        let linux_sll = file(false, MAGIC_US, 113, &[]);
        assert!(matches!(
            Reader::new(&linux_sll[..]),
            Err(PcapError::UnsupportedLinkType(113))
        ));
        let mut v1 = file(false, MAGIC_US, 1, &[]);
        v1[4] = 1;
        assert!(matches!(
            Reader::new(&v1[..]),
            Err(PcapError::BadVersion { major: 1, .. })
        ));
    }

    #[test]
    fn truncated_and_oversized_records_are_errors() {
        let whole = file(false, MAGIC_US, 101, &[(1, &[1, 2, 3, 4])]);
        for cut in FILE_HEADER_LEN + 1..whole.len() {
            let mut r = Reader::new(&whole[..cut]).unwrap();
            assert!(
                matches!(
                    r.next_record(),
                    Err(PcapError::TruncatedRecord { index: 0 })
                ),
                "cut at {cut}"
            );
        }
        let mut huge = file(false, MAGIC_US, 101, &[(1, &[1])]);
        huge[FILE_HEADER_LEN + 8..FILE_HEADER_LEN + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut r = Reader::new(&huge[..]).unwrap();
        assert!(matches!(
            r.next_record(),
            Err(PcapError::OversizedRecord { index: 0, .. })
        ));
    }
}
