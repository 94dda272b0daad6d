//! The payloads of the vfio-user commands espo sends or serves, each with `parse`
//! (bounds-checked, never panics) and `emit`.

use super::{
    IRQ_SET_DATA_BOOL, MAX_DATA_XFER_BYTES, MAX_MESSAGE_FDS, MAX_VERSION_JSON_BYTES, ProtoError,
    Reader, Writer,
};

/// Capabilities exchanged in `VFIO_USER_VERSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// File descriptors the sender accepts in one message.
    pub max_msg_fds: u32,
    /// Largest REGION/DMA transfer the sender accepts.
    pub max_data_xfer_bytes: u32,
    /// DMA windows the sender accepts at once.
    pub max_dma_maps: u32,
    /// Page sizes of DMA maps, or'ed.
    pub pgsizes: u64,
}

impl Default for Capabilities {
    /// The protocol's defaults for absent fields.
    fn default() -> Self {
        Self {
            max_msg_fds: 1,
            max_data_xfer_bytes: MAX_DATA_XFER_BYTES,
            max_dma_maps: 65535,
            pgsizes: 4096,
        }
    }
}

impl Capabilities {
    /// What espo offers.
    pub fn espo() -> Self {
        Self {
            max_msg_fds: MAX_MESSAGE_FDS as u32,
            max_data_xfer_bytes: MAX_DATA_XFER_BYTES,
            max_dma_maps: 4096,
            pgsizes: 4096,
        }
    }
}

/// `VFIO_USER_VERSION` request and reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// The sender's capabilities.
    pub capabilities: Capabilities,
}

impl Version {
    /// Parses the payload: versions, then optional NUL-terminated JSON. Unknown JSON keys are
    /// ignored; numbers out of range are refused.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new("VERSION", payload, 4)?;
        let major = r.u16();
        let minor = r.u16();
        let data = r.rest();
        let mut capabilities = Capabilities::default();
        if !data.is_empty() {
            if data.len() > MAX_VERSION_JSON_BYTES {
                return Err(ProtoError::BadVersionData);
            }
            let text = match data.split_last() {
                Some((0, text)) => text,
                _ => return Err(ProtoError::BadVersionData),
            };
            let json: serde_json::Value =
                serde_json::from_slice(text).map_err(|_| ProtoError::BadVersionData)?;
            let caps = json.get("capabilities");
            let num = |key: &str| caps.and_then(|c| c.get(key)).map(|v| v.as_u64());
            let field32 = |key: &str, default: u32| match num(key) {
                None => Ok(default),
                Some(Some(v)) => u32::try_from(v).map_err(|_| ProtoError::BadVersionData),
                Some(None) => Err(ProtoError::BadVersionData),
            };
            capabilities.max_msg_fds = field32("max_msg_fds", capabilities.max_msg_fds)?;
            capabilities.max_data_xfer_bytes =
                field32("max_data_xfer_size", capabilities.max_data_xfer_bytes)?;
            capabilities.max_dma_maps = field32("max_dma_maps", capabilities.max_dma_maps)?;
            capabilities.pgsizes = match num("pgsizes") {
                None => capabilities.pgsizes,
                Some(Some(v)) => v,
                Some(None) => return Err(ProtoError::BadVersionData),
            };
        }
        Ok(Self {
            major,
            minor,
            capabilities,
        })
    }

    /// The payload: versions and the capabilities as JSON.
    pub fn emit(&self) -> Vec<u8> {
        let c = &self.capabilities;
        let json = format!(
            "{{\"capabilities\":{{\"max_msg_fds\":{},\"max_data_xfer_size\":{},\"max_dma_maps\":{},\"pgsizes\":{}}}}}",
            c.max_msg_fds, c.max_data_xfer_bytes, c.max_dma_maps, c.pgsizes
        );
        let mut w = Writer::default();
        w.u16(self.major)
            .u16(self.minor)
            .bytes(json.as_bytes())
            .bytes(&[0]);
        w.0
    }
}

/// `VFIO_USER_DMA_MAP` request (the window's file descriptor travels as `SCM_RIGHTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaMap {
    /// [`DMA_READABLE`](super::DMA_READABLE) | [`DMA_WRITEABLE`](super::DMA_WRITEABLE).
    pub flags: u32,
    /// Offset of the window in the file.
    pub offset: u64,
    /// IOVA of the window.
    pub address: u64,
    /// Length of the window.
    pub size: u64,
}

impl DmaMap {
    /// Bytes of the payload.
    pub const BYTES: usize = 32;

    /// Parses the payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new("DMA_MAP", payload, Self::BYTES)?;
        let _argsz = r.u32();
        Ok(Self {
            flags: r.u32(),
            offset: r.u64(),
            address: r.u64(),
            size: r.u64(),
        })
    }

    /// The payload.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(Self::BYTES as u32)
            .u32(self.flags)
            .u64(self.offset)
            .u64(self.address)
            .u64(self.size);
        w.0
    }
}

/// `VFIO_USER_DMA_UNMAP` request and reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaUnmap {
    /// Unused in this protocol version.
    pub flags: u32,
    /// IOVA of the window (must match a map exactly).
    pub address: u64,
    /// Length of the window.
    pub size: u64,
}

impl DmaUnmap {
    /// Bytes of the payload.
    pub const BYTES: usize = 24;

    /// Parses the payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new("DMA_UNMAP", payload, Self::BYTES)?;
        let _argsz = r.u32();
        Ok(Self {
            flags: r.u32(),
            address: r.u64(),
            size: r.u64(),
        })
    }

    /// The payload.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(Self::BYTES as u32)
            .u32(self.flags)
            .u64(self.address)
            .u64(self.size);
        w.0
    }
}

/// `VFIO_USER_DEVICE_GET_INFO` reply (the request is the same structure, zeroed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// [`DEVICE_FLAGS_RESET`](super::DEVICE_FLAGS_RESET) | [`DEVICE_FLAGS_PCI`](super::DEVICE_FLAGS_PCI).
    pub flags: u32,
    /// Regions the device has.
    pub num_regions: u32,
    /// Interrupt indices the device has.
    pub num_irqs: u32,
}

impl DeviceInfo {
    /// Bytes of the payload.
    pub const BYTES: usize = 16;

    /// Parses the payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new("DEVICE_GET_INFO", payload, Self::BYTES)?;
        let _argsz = r.u32();
        Ok(Self {
            flags: r.u32(),
            num_regions: r.u32(),
            num_irqs: r.u32(),
        })
    }

    /// The payload.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(Self::BYTES as u32)
            .u32(self.flags)
            .u32(self.num_regions)
            .u32(self.num_irqs);
        w.0
    }
}

/// `VFIO_USER_DEVICE_GET_REGION_INFO` request (index only) and reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionInfo {
    /// [`REGION_READ`](super::REGION_READ) | [`REGION_WRITE`](super::REGION_WRITE) (espo never offers mmap).
    pub flags: u32,
    /// Region index.
    pub index: u32,
    /// Offset of region capabilities (0: none).
    pub cap_offset: u32,
    /// Size of the region (0: absent).
    pub size: u64,
    /// mmap offset (unused: no region is mappable).
    pub offset: u64,
}

impl RegionInfo {
    /// Bytes of the payload.
    pub const BYTES: usize = 32;

    /// Parses the payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new("DEVICE_GET_REGION_INFO", payload, Self::BYTES)?;
        let _argsz = r.u32();
        Ok(Self {
            flags: r.u32(),
            index: r.u32(),
            cap_offset: r.u32(),
            size: r.u64(),
            offset: r.u64(),
        })
    }

    /// The payload.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(Self::BYTES as u32)
            .u32(self.flags)
            .u32(self.index)
            .u32(self.cap_offset)
            .u64(self.size)
            .u64(self.offset);
        w.0
    }
}

/// `VFIO_USER_DEVICE_GET_IRQ_INFO` request (index only) and reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IrqInfo {
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// Interrupt index.
    pub index: u32,
    /// Vectors of that index.
    pub count: u32,
}

impl IrqInfo {
    /// Bytes of the payload.
    pub const BYTES: usize = 16;

    /// Parses the payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new("DEVICE_GET_IRQ_INFO", payload, Self::BYTES)?;
        let _argsz = r.u32();
        Ok(Self {
            flags: r.u32(),
            index: r.u32(),
            count: r.u32(),
        })
    }

    /// The payload.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(Self::BYTES as u32)
            .u32(self.flags)
            .u32(self.index)
            .u32(self.count);
        w.0
    }
}

/// `VFIO_USER_DEVICE_SET_IRQS` request (eventfds travel as `SCM_RIGHTS`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetIrqs {
    /// One `DATA_*` flag and one `ACTION_*` flag.
    pub flags: u32,
    /// Interrupt index.
    pub index: u32,
    /// First vector.
    pub start: u32,
    /// Vectors.
    pub count: u32,
    /// `DATA_BOOL`: one byte per vector.
    pub bools: Vec<u8>,
}

impl SetIrqs {
    /// Bytes of the fixed part.
    pub const BYTES: usize = 20;

    /// Parses the payload; `DATA_BOOL` needs exactly `count` bytes of data.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new("DEVICE_SET_IRQS", payload, Self::BYTES)?;
        let _argsz = r.u32();
        let flags = r.u32();
        let index = r.u32();
        let start = r.u32();
        let count = r.u32();
        let data = r.rest();
        let bools = if flags & IRQ_SET_DATA_BOOL != 0 {
            if data.len() != count as usize {
                return Err(ProtoError::BadCount {
                    what: "DEVICE_SET_IRQS",
                    count: u64::from(count),
                    data: data.len(),
                    max: u32::MAX,
                });
            }
            data.to_vec()
        } else {
            Vec::new()
        };
        Ok(Self {
            flags,
            index,
            start,
            count,
            bools,
        })
    }

    /// The payload.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32((Self::BYTES + self.bools.len()) as u32)
            .u32(self.flags)
            .u32(self.index)
            .u32(self.start)
            .u32(self.count)
            .bytes(&self.bools);
        w.0
    }
}

/// `VFIO_USER_REGION_READ`/`WRITE` request and reply: a read request and a write reply
/// carry no data, a read reply and a write request carry `count` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegionAccess {
    /// Offset in the region.
    pub offset: u64,
    /// Region index.
    pub region: u32,
    /// Bytes transferred.
    pub count: u32,
    /// The data (empty where the message carries none).
    pub data: Vec<u8>,
}

impl RegionAccess {
    /// Bytes of the fixed part.
    pub const BYTES: usize = 16;

    /// Parses the payload; `with_data`: the message carries exactly `count` data bytes
    /// (at most [`MAX_DATA_XFER_BYTES`]), otherwise none.
    pub fn parse(payload: &[u8], with_data: bool) -> Result<Self, ProtoError> {
        let mut r = Reader::new("REGION_READ/WRITE", payload, Self::BYTES)?;
        let offset = r.u64();
        let region = r.u32();
        let count = r.u32();
        let data = r.rest();
        let expected = if with_data { count as usize } else { 0 };
        if count > MAX_DATA_XFER_BYTES || data.len() != expected {
            return Err(ProtoError::BadCount {
                what: "REGION_READ/WRITE",
                count: u64::from(count),
                data: data.len(),
                max: MAX_DATA_XFER_BYTES,
            });
        }
        Ok(Self {
            offset,
            region,
            count,
            data: data.to_vec(),
        })
    }

    /// The payload.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u64(self.offset)
            .u32(self.region)
            .u32(self.count)
            .bytes(&self.data);
        w.0
    }
}

/// `VFIO_USER_DMA_READ`/`WRITE` request and reply (server to client), data as in
/// [`RegionAccess`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DmaAccess {
    /// IOVA accessed.
    pub address: u64,
    /// Bytes transferred.
    pub count: u64,
    /// The data (empty where the message carries none).
    pub data: Vec<u8>,
}

impl DmaAccess {
    /// Bytes of the fixed part.
    pub const BYTES: usize = 16;

    /// Parses the payload, as [`RegionAccess::parse`].
    pub fn parse(payload: &[u8], with_data: bool) -> Result<Self, ProtoError> {
        let mut r = Reader::new("DMA_READ/WRITE", payload, Self::BYTES)?;
        let address = r.u64();
        let count = r.u64();
        let data = r.rest();
        let expected = if with_data { count as usize } else { 0 };
        if count > u64::from(MAX_DATA_XFER_BYTES) || data.len() != expected {
            return Err(ProtoError::BadCount {
                what: "DMA_READ/WRITE",
                count,
                data: data.len(),
                max: MAX_DATA_XFER_BYTES,
            });
        }
        Ok(Self {
            address,
            count,
            data: data.to_vec(),
        })
    }

    /// The payload.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u64(self.address).u64(self.count).bytes(&self.data);
        w.0
    }
}

/// A fault-injection record written to the [`region::FAULTS`](super::region::FAULTS) region of a served card
/// model (16 bytes: kind, trigger, trigger value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    /// Fault kind code (see `server::fault_kind`): 0 DMA error, 1 engine hang, 2 ICV-engine
    /// error, 3 surprise reset, 4 surprise removal, 5 dropped interrupt, 6 corrupt
    /// completion, 7 stale sequence export; 0x100 | 4: surprise removal that also ends the
    /// server process at once.
    pub kind: u32,
    /// 0: at a simulated cycle; 1: at the n-th packet from now.
    pub trigger: u32,
    /// The cycle or packet count.
    pub value: u64,
}

impl FaultRecord {
    /// Bytes of a record.
    pub const BYTES: usize = 16;
    /// Set in `kind`: the server process exits when the fault strikes.
    pub const EXIT: u32 = 0x100;

    /// Parses a record.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new("fault record", bytes, Self::BYTES)?;
        Ok(Self {
            kind: r.u32(),
            trigger: r.u32(),
            value: r.u64(),
        })
    }

    /// The record.
    pub fn emit(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(self.kind).u32(self.trigger).u64(self.value);
        w.0
    }
}
