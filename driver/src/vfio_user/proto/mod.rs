//! The vfio-user wire format (QEMU `docs/interop/vfio-user.rst`, protocol 0.1): the
//! 16-byte message header and the payload of every command espo sends or serves, each a
//! typed value with `parse` (bounds-checked, never panics, oversized input refused) and
//! `emit`.
//!
//! All fields are in host byte order (the protocol's rule for `AF_UNIX`); espo runs on
//! little-endian hosts, and the fields are written little-endian.

use thiserror::Error;

/// Bytes of the message header.
pub const HEADER_BYTES: usize = 16;
/// Largest data transfer in one REGION/DMA read or write that espo sends or accepts (the
/// protocol's default `max_data_xfer_size`).
pub const MAX_DATA_XFER_BYTES: u32 = 1 << 20;
/// Largest message espo accepts: a header, a read/write header and the largest transfer.
pub const MAX_MESSAGE_BYTES: u32 = (HEADER_BYTES as u32) + 16 + MAX_DATA_XFER_BYTES;
/// Most file descriptors espo accepts in one message.
pub const MAX_MESSAGE_FDS: usize = 8;
/// Longest version JSON espo accepts.
pub const MAX_VERSION_JSON_BYTES: usize = 4096;
/// The protocol version espo speaks.
pub const VERSION_MAJOR: u16 = 0;
/// The protocol version espo speaks.
pub const VERSION_MINOR: u16 = 1;

/// Region indices of a vfio-user PCI device (as VFIO's `VFIO_PCI_*_REGION_INDEX`).
pub mod region {
    /// BAR0: the ESPO-1 register file.
    pub const BAR0: u32 = 0;
    /// BAR2: the MSI-X table and pending-bit array.
    pub const BAR2: u32 = 2;
    /// PCI configuration space.
    pub const CONFIG: u32 = 7;
    /// Device-specific: fault injection into the served card model (espo's own region).
    pub const FAULTS: u32 = 9;
    /// Regions a served ESPO-1 reports.
    pub const COUNT: u32 = 10;
}

/// Interrupt indices (as VFIO's `VFIO_PCI_*_IRQ_INDEX`).
pub mod irq_index {
    /// Legacy INTx.
    pub const INTX: u32 = 0;
    /// MSI.
    pub const MSI: u32 = 1;
    /// MSI-X.
    pub const MSIX: u32 = 2;
    /// Indices a PCI device reports (INTx, MSI, MSI-X, error, request).
    pub const COUNT: u32 = 5;
}

/// `VFIO_DEVICE_FLAGS_RESET`.
pub const DEVICE_FLAGS_RESET: u32 = 1 << 0;
/// `VFIO_DEVICE_FLAGS_PCI`.
pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;
/// `VFIO_REGION_INFO_FLAG_READ`.
pub const REGION_READ: u32 = 1 << 0;
/// `VFIO_REGION_INFO_FLAG_WRITE`.
pub const REGION_WRITE: u32 = 1 << 1;
/// `VFIO_IRQ_INFO_EVENTFD`.
pub const IRQ_INFO_EVENTFD: u32 = 1 << 0;
/// `VFIO_IRQ_INFO_MASKABLE`.
pub const IRQ_INFO_MASKABLE: u32 = 1 << 1;
/// `VFIO_IRQ_INFO_NORESIZE`.
pub const IRQ_INFO_NORESIZE: u32 = 1 << 3;
/// `VFIO_IRQ_SET_DATA_NONE`.
pub const IRQ_SET_DATA_NONE: u32 = 1 << 0;
/// `VFIO_IRQ_SET_DATA_BOOL`.
pub const IRQ_SET_DATA_BOOL: u32 = 1 << 1;
/// `VFIO_IRQ_SET_DATA_EVENTFD`.
pub const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
/// `VFIO_IRQ_SET_ACTION_MASK`.
pub const IRQ_SET_ACTION_MASK: u32 = 1 << 3;
/// `VFIO_IRQ_SET_ACTION_UNMASK`.
pub const IRQ_SET_ACTION_UNMASK: u32 = 1 << 4;
/// `VFIO_IRQ_SET_ACTION_TRIGGER`.
pub const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
/// DMA_MAP flags: the server may read / write the window.
pub const DMA_READABLE: u32 = 1 << 0;
/// See [`DMA_READABLE`].
pub const DMA_WRITEABLE: u32 = 1 << 1;

/// Why bytes are not a valid vfio-user message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProtoError {
    /// Fewer bytes than the structure needs.
    #[error("{what}: {got} bytes, at least {need} needed")]
    Truncated {
        /// The structure being parsed.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// The header's size is smaller than a header or larger than espo accepts.
    #[error("message size {size} is outside 16..={max} bytes")]
    BadSize {
        /// The size in the header.
        size: u32,
        /// The largest accepted.
        max: u32,
    },
    /// The header's type bits are neither command nor reply.
    #[error("message type {0} is neither command (0) nor reply (1)")]
    BadType(u32),
    /// A transfer larger than the protocol maximum, or a count that disagrees with the data.
    #[error("{what}: count {count} does not match {data} data bytes (at most {max})")]
    BadCount {
        /// The structure being parsed.
        what: &'static str,
        /// The count field.
        count: u64,
        /// Data bytes present.
        data: usize,
        /// The largest transfer accepted.
        max: u32,
    },
    /// The version data is not UTF-8 JSON with a terminating NUL, or is too long.
    #[error("version data is not a NUL-terminated JSON object of at most 4096 bytes")]
    BadVersionData,
}

/// A message's type (flags bits 0–3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A command.
    Command,
    /// A reply to the command with the same id.
    Reply,
}

/// vfio-user commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `VFIO_USER_VERSION`.
    Version,
    /// `VFIO_USER_DMA_MAP`.
    DmaMap,
    /// `VFIO_USER_DMA_UNMAP`.
    DmaUnmap,
    /// `VFIO_USER_DEVICE_GET_INFO`.
    DeviceGetInfo,
    /// `VFIO_USER_DEVICE_GET_REGION_INFO`.
    DeviceGetRegionInfo,
    /// `VFIO_USER_DEVICE_GET_IRQ_INFO`.
    DeviceGetIrqInfo,
    /// `VFIO_USER_DEVICE_SET_IRQS`.
    DeviceSetIrqs,
    /// `VFIO_USER_REGION_READ`.
    RegionRead,
    /// `VFIO_USER_REGION_WRITE`.
    RegionWrite,
    /// `VFIO_USER_DMA_READ` (server to client).
    DmaRead,
    /// `VFIO_USER_DMA_WRITE` (server to client).
    DmaWrite,
    /// `VFIO_USER_DEVICE_RESET`.
    DeviceReset,
    /// Any other command number (espo replies `ENOTSUP`).
    Unknown(u16),
}

impl Command {
    /// The command number on the wire.
    pub fn code(self) -> u16 {
        match self {
            Command::Version => 1,
            Command::DmaMap => 2,
            Command::DmaUnmap => 3,
            Command::DeviceGetInfo => 4,
            Command::DeviceGetRegionInfo => 5,
            Command::DeviceGetIrqInfo => 7,
            Command::DeviceSetIrqs => 8,
            Command::RegionRead => 9,
            Command::RegionWrite => 10,
            Command::DmaRead => 11,
            Command::DmaWrite => 12,
            Command::DeviceReset => 13,
            Command::Unknown(c) => c,
        }
    }

    fn from_code(code: u16) -> Self {
        match code {
            1 => Command::Version,
            2 => Command::DmaMap,
            3 => Command::DmaUnmap,
            4 => Command::DeviceGetInfo,
            5 => Command::DeviceGetRegionInfo,
            7 => Command::DeviceGetIrqInfo,
            8 => Command::DeviceSetIrqs,
            9 => Command::RegionRead,
            10 => Command::RegionWrite,
            11 => Command::DmaRead,
            12 => Command::DmaWrite,
            13 => Command::DeviceReset,
            c => Command::Unknown(c),
        }
    }
}

/// The message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message id, echoed in the reply.
    pub id: u16,
    /// The command (also set in its reply).
    pub command: Command,
    /// Size of the whole message, header included.
    pub size: u32,
    /// Command or reply.
    pub kind: Kind,
    /// A command that wants no reply.
    pub no_reply: bool,
    /// A reply reporting failure; `error` holds the errno (may be 0).
    pub failed: bool,
    /// errno of a failed reply.
    pub error: u32,
}

const FLAG_NO_REPLY: u32 = 1 << 4;
const FLAG_ERROR: u32 = 1 << 5;

impl Header {
    /// A command header for `payload_len` bytes of payload.
    pub fn command(id: u16, command: Command, payload_len: usize, no_reply: bool) -> Self {
        Self {
            id,
            command,
            size: (HEADER_BYTES + payload_len) as u32,
            kind: Kind::Command,
            no_reply,
            failed: false,
            error: 0,
        }
    }

    /// The reply header to `self` for `payload_len` bytes of payload.
    pub fn reply(&self, payload_len: usize) -> Self {
        Self {
            size: (HEADER_BYTES + payload_len) as u32,
            kind: Kind::Reply,
            no_reply: false,
            failed: false,
            error: 0,
            ..*self
        }
    }

    /// The failure reply to `self` with `errno` (a failed reply carries no payload).
    pub fn error_reply(&self, errno: i32) -> Self {
        Self {
            failed: true,
            error: errno as u32,
            ..self.reply(0)
        }
    }

    /// Payload bytes that follow the header.
    pub fn payload_len(&self) -> usize {
        (self.size as usize).saturating_sub(HEADER_BYTES)
    }

    /// Parses and checks a header: size within `16..=max_bytes`, a known type.
    pub fn parse(bytes: &[u8], max_bytes: u32) -> Result<Self, ProtoError> {
        let mut r = Reader::new("header", bytes, HEADER_BYTES)?;
        let id = r.u16();
        let command = Command::from_code(r.u16());
        let size = r.u32();
        let flags = r.u32();
        let error = r.u32();
        if (size as usize) < HEADER_BYTES || size > max_bytes {
            return Err(ProtoError::BadSize {
                size,
                max: max_bytes,
            });
        }
        let kind = match flags & 0xf {
            0 => Kind::Command,
            1 => Kind::Reply,
            t => return Err(ProtoError::BadType(t)),
        };
        Ok(Self {
            id,
            command,
            size,
            kind,
            no_reply: flags & FLAG_NO_REPLY != 0,
            failed: flags & FLAG_ERROR != 0,
            error,
        })
    }

    /// The 16 header bytes.
    pub fn emit(&self) -> [u8; HEADER_BYTES] {
        let mut flags = match self.kind {
            Kind::Command => 0,
            Kind::Reply => 1,
        };
        if self.no_reply {
            flags |= FLAG_NO_REPLY;
        }
        if self.failed {
            flags |= FLAG_ERROR;
        }
        let mut w = Writer::default();
        w.u16(self.id)
            .u16(self.command.code())
            .u32(self.size)
            .u32(flags)
            .u32(self.error);
        let mut out = [0u8; HEADER_BYTES];
        out.copy_from_slice(&w.0);
        out
    }
}

/// Little-endian field reader over a payload whose minimum length was checked once.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(
        what: &'static str,
        bytes: &'a [u8],
        need: usize,
    ) -> Result<Self, ProtoError> {
        if bytes.len() < need {
            return Err(ProtoError::Truncated {
                what,
                need,
                got: bytes.len(),
            });
        }
        Ok(Self { bytes, at: 0 })
    }

    pub(super) fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        // Callers read only within the length checked in `new`; past it, zeros.
        if let Some(src) = self.bytes.get(self.at..self.at + N) {
            out.copy_from_slice(src);
        }
        self.at += N;
        out
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    pub(super) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    pub(super) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }
}

#[derive(Default)]
pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

mod messages;

pub use messages::{
    Capabilities, DeviceInfo, DmaAccess, DmaMap, DmaUnmap, FaultRecord, IrqInfo, RegionAccess,
    RegionInfo, SetIrqs, Version,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_refuses_bad_sizes_and_types() {
        let h = Header::command(7, Command::RegionWrite, 24, true);
        let bytes = h.emit();
        assert_eq!(Header::parse(&bytes, MAX_MESSAGE_BYTES).unwrap(), h);
        let r = h.error_reply(libc::EINVAL);
        let back = Header::parse(&r.emit(), MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(
            (back.kind, back.failed, back.error),
            (Kind::Reply, true, 22)
        );
        assert_eq!(back.size, 16);

        let mut big = bytes;
        big[4..8].copy_from_slice(&(MAX_MESSAGE_BYTES + 1).to_le_bytes());
        assert!(matches!(
            Header::parse(&big, MAX_MESSAGE_BYTES),
            Err(ProtoError::BadSize { .. })
        ));
        let mut small = bytes;
        small[4..8].copy_from_slice(&15u32.to_le_bytes());
        assert!(Header::parse(&small, MAX_MESSAGE_BYTES).is_err());
        let mut typ = bytes;
        typ[8] = 2;
        assert_eq!(
            Header::parse(&typ, MAX_MESSAGE_BYTES),
            Err(ProtoError::BadType(2))
        );
        assert!(matches!(
            Header::parse(&bytes[..15], MAX_MESSAGE_BYTES),
            Err(ProtoError::Truncated {
                need: 16,
                got: 15,
                ..
            })
        ));
        let unknown = Header::command(1, Command::Unknown(99), 0, false);
        assert_eq!(
            Header::parse(&unknown.emit(), 64).unwrap().command,
            Command::Unknown(99)
        );
    }

    #[test]
    fn version_json_round_trips_with_defaults_for_absent_fields() {
        let v = Version {
            major: 0,
            minor: 1,
            capabilities: Capabilities::espo(),
        };
        assert_eq!(Version::parse(&v.emit()).unwrap(), v);
        let bare = Version::parse(&[0, 0, 1, 0]).unwrap();
        assert_eq!(bare.capabilities, Capabilities::default());
        let mut qemu = vec![0, 0, 1, 0];
        qemu.extend_from_slice(
            b"{\"capabilities\":{\"max_msg_fds\":16,\"migration\":{\"pgsize\":4096}}}\0",
        );
        assert_eq!(Version::parse(&qemu).unwrap().capabilities.max_msg_fds, 16);
        for bad in [
            &b"{\"capabilities\":{}}"[..],                         // no NUL
            b"not json\0",                                         // not JSON
            b"{\"capabilities\":{\"max_msg_fds\":-1}}\0",          // negative
            b"{\"capabilities\":{\"max_msg_fds\":99999999999}}\0", // beyond u32
        ] {
            let mut p = vec![0, 0, 1, 0];
            p.extend_from_slice(bad);
            assert_eq!(
                Version::parse(&p),
                Err(ProtoError::BadVersionData),
                "{bad:?}"
            );
        }
        let mut long = vec![0, 0, 1, 0];
        long.extend(std::iter::repeat_n(b' ', MAX_VERSION_JSON_BYTES + 1));
        assert!(Version::parse(&long).is_err());
    }

    #[test]
    fn fixed_structures_round_trip_and_refuse_short_payloads() {
        let map = DmaMap {
            flags: DMA_READABLE | DMA_WRITEABLE,
            offset: 0,
            address: 0x10_0000,
            size: 8192,
        };
        assert_eq!(DmaMap::parse(&map.emit()).unwrap(), map);
        assert!(DmaMap::parse(&map.emit()[..31]).is_err());
        let unmap = DmaUnmap {
            flags: 0,
            address: 0x10_0000,
            size: 8192,
        };
        assert_eq!(DmaUnmap::parse(&unmap.emit()).unwrap(), unmap);
        let info = DeviceInfo {
            flags: DEVICE_FLAGS_PCI,
            num_regions: 10,
            num_irqs: 5,
        };
        assert_eq!(DeviceInfo::parse(&info.emit()).unwrap(), info);
        let region = RegionInfo {
            flags: REGION_READ,
            index: 7,
            cap_offset: 0,
            size: 256,
            offset: 0,
        };
        assert_eq!(RegionInfo::parse(&region.emit()).unwrap(), region);
        assert!(RegionInfo::parse(&[0; 8]).is_err());
        let irq = IrqInfo {
            flags: IRQ_INFO_EVENTFD,
            index: 2,
            count: 5,
        };
        assert_eq!(IrqInfo::parse(&irq.emit()).unwrap(), irq);
        let set = SetIrqs {
            flags: IRQ_SET_DATA_BOOL | IRQ_SET_ACTION_MASK,
            index: 2,
            start: 1,
            count: 2,
            bools: vec![1, 0],
        };
        assert_eq!(SetIrqs::parse(&set.emit()).unwrap(), set);
        let mut short = set.emit();
        short.pop();
        assert!(SetIrqs::parse(&short).is_err());
        let fault = FaultRecord {
            kind: FaultRecord::EXIT | 4,
            trigger: 1,
            value: 300,
        };
        assert_eq!(FaultRecord::parse(&fault.emit()).unwrap(), fault);
    }

    #[test]
    fn transfers_must_carry_exactly_their_count_and_stay_under_the_limit() {
        let w = RegionAccess {
            offset: 0x40,
            region: 0,
            count: 4,
            data: vec![1, 2, 3, 4],
        };
        assert_eq!(RegionAccess::parse(&w.emit(), true).unwrap(), w);
        assert!(
            RegionAccess::parse(&w.emit(), false).is_err(),
            "data where none belongs"
        );
        let mut lying = w.clone();
        lying.count = 8;
        assert!(RegionAccess::parse(&lying.emit(), true).is_err());
        let huge = RegionAccess {
            count: MAX_DATA_XFER_BYTES + 1,
            ..RegionAccess::default()
        };
        assert!(RegionAccess::parse(&huge.emit(), false).is_err());
        let d = DmaAccess {
            address: 0x1000,
            count: 3,
            data: vec![9, 9, 9],
        };
        assert_eq!(DmaAccess::parse(&d.emit(), true).unwrap(), d);
        let mut bad = d.emit();
        bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(DmaAccess::parse(&bad, true).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_input_makes_a_parser_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = Header::parse(&bytes, MAX_MESSAGE_BYTES);
            let _ = Version::parse(&bytes);
            let _ = DmaMap::parse(&bytes);
            let _ = DmaUnmap::parse(&bytes);
            let _ = DeviceInfo::parse(&bytes);
            let _ = RegionInfo::parse(&bytes);
            let _ = IrqInfo::parse(&bytes);
            let _ = SetIrqs::parse(&bytes);
            let _ = RegionAccess::parse(&bytes, true);
            let _ = RegionAccess::parse(&bytes, false);
            let _ = DmaAccess::parse(&bytes, true);
            let _ = FaultRecord::parse(&bytes);
        }
    }
}
