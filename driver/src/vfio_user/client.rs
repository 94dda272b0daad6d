//! The vfio-user client: a card served by another process as a [`Device`].
//!
//! - BAR accesses are `REGION_READ` (waits for the reply) and `REGION_WRITE` sent as a posted
//!   write (`No_reply`, like a PCIe memory write); the server handles messages in order, so
//!   a read returns after every earlier write took effect.
//! - DMA memory is a sealed memfd mapped here and passed to the server with `DMA_MAP`
//!   (`SCM_RIGHTS`) at an IOVA from the same bookkeeping VFIO uses; the server maps it, and
//!   the card model reaches only those windows (anything else is a DMA fault the card
//!   reports). Dropping a region sends `DMA_UNMAP` before the memory is freed; if the
//!   server cannot confirm, the memory is leaked, as with VFIO.
//! - MSI-X vectors are eventfds handed over with `SET_IRQS`; waits poll the eventfd and the
//!   socket together, so a server that dies is noticed while waiting.
//! - Every reply is awaited for at most [`VfioUserOptions::reply_timeout`]. A server that
//!   closes the connection, stays silent, or answers with something malformed is gone:
//!   the connection is shut and every later call fails with an error for which
//!   [`DeviceError::device_gone`] holds, which the card driver handles as surprise removal.

use std::fs::File;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::channel;
use super::error::VfioUserError;
use super::memory::shared_dma_memory;
use super::proto::{
    self, Capabilities, Command, DeviceInfo, DmaMap, DmaUnmap, FaultRecord, Header, IrqInfo, Kind,
    RegionAccess, RegionInfo, SetIrqs, Version, irq_index, region,
};
use crate::device::{Device, IrqWait};
use crate::dma::{DmaMapper, DmaRegion};
use crate::error::{AccessError, DeviceError};
use crate::iova::{DEFAULT_IOVA_WINDOWS, IovaSpace};
use crate::pci::{COMMAND_BUS_MASTER, CONFIG_COMMAND};

/// Most regions espo asks a server about.
const MAX_REGIONS: u32 = 64;
/// Largest BAR espo accepts from a server (the card's BAR0 is 8 KiB).
const MAX_BAR_BYTES: u64 = 1 << 30;

/// How to connect to a vfio-user server.
#[derive(Debug, Clone)]
pub struct VfioUserOptions {
    /// How long a reply may take before the server is taken for gone.
    pub reply_timeout: Duration,
    /// IOVA windows DMA memory is mapped in.
    pub iova_windows: Vec<Range<u64>>,
}

impl Default for VfioUserOptions {
    fn default() -> Self {
        Self {
            reply_timeout: Duration::from_secs(2),
            iova_windows: DEFAULT_IOVA_WINDOWS.to_vec(),
        }
    }
}

/// `POLLRDHUP`: the peer shut its end (not among nix's named flags).
fn rdhup() -> PollFlags {
    PollFlags::from_bits_retain(libc::POLLRDHUP)
}

struct Vector {
    event: EventFd,
    masked: AtomicBool,
}

struct Conn {
    stream: UnixStream,
    next_id: u16,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Conn>,
    /// A second handle on the socket, polled for hang-up while waiting for interrupts.
    watch: UnixStream,
    alive: AtomicBool,
    options: VfioUserOptions,
    regions: Vec<RegionInfo>,
    device_flags: u32,
    iova: Mutex<IovaSpace>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn command_name(c: Command) -> &'static str {
    match c {
        Command::Version => "VERSION",
        Command::DmaMap => "DMA_MAP",
        Command::DmaUnmap => "DMA_UNMAP",
        Command::DeviceGetInfo => "DEVICE_GET_INFO",
        Command::DeviceGetRegionInfo => "DEVICE_GET_REGION_INFO",
        Command::DeviceGetIrqInfo => "DEVICE_GET_IRQ_INFO",
        Command::DeviceSetIrqs => "DEVICE_SET_IRQS",
        Command::RegionRead => "REGION_READ",
        Command::RegionWrite => "REGION_WRITE",
        Command::DmaRead => "DMA_READ",
        Command::DmaWrite => "DMA_WRITE",
        Command::DeviceReset => "DEVICE_RESET",
        Command::Unknown(_) => "unknown command",
    }
}

impl Inner {
    /// Marks the device gone and shuts the socket, so that the server sees the end too.
    fn lose(&self) {
        self.alive.store(false, Ordering::Release);
        let _ = self.watch.shutdown(std::net::Shutdown::Both);
    }

    /// Sends a command and, unless `posted`, waits for its reply; returns the reply payload.
    fn request(
        &self,
        command: Command,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
        posted: bool,
    ) -> Result<Vec<u8>, VfioUserError> {
        let name = command_name(command);
        if !self.alive.load(Ordering::Acquire) {
            return Err(VfioUserError::Disconnected);
        }
        let mut conn = lock(&self.conn);
        let id = conn.next_id;
        conn.next_id = conn.next_id.wrapping_add(1);
        let header = Header::command(id, command, payload.len(), posted);
        let result = channel::send(&conn.stream, &header, payload, fds)
            .map_err(|source| VfioUserError::Send {
                command: name,
                source,
            })
            .and_then(|()| {
                if posted {
                    return Ok(Vec::new());
                }
                self.await_reply(&conn.stream, &header, name)
            });
        drop(conn);
        if let Err(e) = &result
            && e.is_gone()
        {
            self.lose();
        }
        result
    }

    fn await_reply(
        &self,
        stream: &UnixStream,
        sent: &Header,
        name: &'static str,
    ) -> Result<Vec<u8>, VfioUserError> {
        let deadline = Instant::now() + self.options.reply_timeout;
        let msg = channel::recv(stream, deadline).map_err(|source| VfioUserError::Receive {
            command: name,
            source,
        })?;
        // espo's DMA windows are all mappable: a server has no reason to send commands
        // of its own, and one that does is not following the protocol espo negotiated.
        let h = msg.header;
        if h.kind != Kind::Reply || h.id != sent.id || h.command != sent.command {
            return Err(VfioUserError::BadReply {
                command: name,
                source: None,
            });
        }
        if h.failed {
            return Err(VfioUserError::Refused {
                command: name,
                errno: h.error,
            });
        }
        Ok(msg.payload)
    }

    fn region(&self, index: u32, offset: u64, len: usize) -> Result<(), VfioUserError> {
        let size = self.regions.get(index as usize).map_or(0, |r| r.size);
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(()),
            _ => Err(VfioUserError::RegionBounds {
                region: index,
                offset,
                len_bytes: len,
                size,
            }),
        }
    }

    fn region_read(&self, index: u32, offset: u64, buf: &mut [u8]) -> Result<(), VfioUserError> {
        self.region(index, offset, buf.len())?;
        let req = RegionAccess {
            offset,
            region: index,
            count: buf.len() as u32,
            data: Vec::new(),
        };
        let reply = self.request(Command::RegionRead, &req.emit(), &[], false)?;
        let bad = |source| {
            self.lose();
            VfioUserError::BadReply {
                command: "REGION_READ",
                source,
            }
        };
        let r = RegionAccess::parse(&reply, true).map_err(|e| bad(Some(e)))?;
        if r.offset != offset || r.region != index || r.data.len() != buf.len() {
            return Err(bad(None));
        }
        buf.copy_from_slice(&r.data);
        Ok(())
    }

    fn region_write(
        &self,
        index: u32,
        offset: u64,
        data: &[u8],
        posted: bool,
    ) -> Result<(), VfioUserError> {
        self.region(index, offset, data.len())?;
        let req = RegionAccess {
            offset,
            region: index,
            count: data.len() as u32,
            data: data.to_vec(),
        };
        self.request(Command::RegionWrite, &req.emit(), &[], posted)?;
        Ok(())
    }
}

/// A card served over vfio-user (see the module documentation).
pub struct VfioUserDevice {
    inner: Arc<Inner>,
    irqs: RwLock<Option<Vec<Vector>>>,
}

impl std::fmt::Debug for VfioUserDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VfioUserDevice")
            .field("path", &self.inner.path)
            .field("alive", &self.inner.alive.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl VfioUserDevice {
    /// Connects to the server at `path`, negotiates the version and reads the device's
    /// description (a PCI device with BAR0, configuration space and MSI-X).
    pub fn connect(path: &Path, options: VfioUserOptions) -> Result<Self, VfioUserError> {
        let connect_err = |source| VfioUserError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(connect_err)?;
        stream
            .set_write_timeout(Some(options.reply_timeout))
            .map_err(connect_err)?;
        let watch = stream.try_clone().map_err(connect_err)?;
        let mut inner = Inner {
            path: path.to_path_buf(),
            conn: Mutex::new(Conn { stream, next_id: 0 }),
            watch,
            alive: AtomicBool::new(true),
            options,
            regions: Vec::new(),
            device_flags: 0,
            iova: Mutex::new(IovaSpace::new(&[])),
        };
        inner.iova = Mutex::new(IovaSpace::new(&inner.options.iova_windows));
        let ours = Version {
            major: proto::VERSION_MAJOR,
            minor: proto::VERSION_MINOR,
            capabilities: Capabilities::espo(),
        };
        let reply = inner.request(Command::Version, &ours.emit(), &[], false)?;
        let theirs = Version::parse(&reply).map_err(|e| VfioUserError::BadReply {
            command: "VERSION",
            source: Some(e),
        })?;
        if theirs.major != proto::VERSION_MAJOR || theirs.minor > proto::VERSION_MINOR {
            return Err(VfioUserError::Version {
                major: theirs.major,
                minor: theirs.minor,
            });
        }
        let reply = inner.request(
            Command::DeviceGetInfo,
            &DeviceInfo::default().emit(),
            &[],
            false,
        )?;
        let info = DeviceInfo::parse(&reply).map_err(|e| VfioUserError::BadReply {
            command: "DEVICE_GET_INFO",
            source: Some(e),
        })?;
        if info.flags & proto::DEVICE_FLAGS_PCI == 0 {
            return Err(VfioUserError::BadDevice("not a PCI device".into()));
        }
        if info.num_regions <= region::CONFIG || info.num_regions > MAX_REGIONS {
            return Err(VfioUserError::BadDevice(format!(
                "{} regions (a PCI device has {}..={MAX_REGIONS})",
                info.num_regions,
                region::CONFIG + 1
            )));
        }
        inner.device_flags = info.flags;
        for index in 0..info.num_regions {
            let ask = RegionInfo {
                index,
                ..RegionInfo::default()
            };
            let reply = inner.request(Command::DeviceGetRegionInfo, &ask.emit(), &[], false)?;
            let r = RegionInfo::parse(&reply).map_err(|e| VfioUserError::BadReply {
                command: "DEVICE_GET_REGION_INFO",
                source: Some(e),
            })?;
            if r.index != index {
                return Err(VfioUserError::BadReply {
                    command: "DEVICE_GET_REGION_INFO",
                    source: None,
                });
            }
            inner.regions.push(r);
        }
        let bar0 = inner.regions[region::BAR0 as usize].size;
        if !(16..=MAX_BAR_BYTES).contains(&bar0) || !bar0.is_multiple_of(8) {
            return Err(VfioUserError::BadDevice(format!(
                "BAR0 of {bar0} bytes (expected 16 bytes to 1 GiB, a multiple of 8)"
            )));
        }
        let config = inner.regions[region::CONFIG as usize].size;
        if !(64..=4096).contains(&config) {
            return Err(VfioUserError::BadDevice(format!(
                "configuration space of {config} bytes (expected 64 to 4096)"
            )));
        }
        Ok(Self {
            inner: Arc::new(inner),
            irqs: RwLock::new(None),
        })
    }

    /// The server's socket.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the connection to the server still stands.
    pub fn is_connected(&self) -> bool {
        self.inner.alive.load(Ordering::Acquire)
    }

    /// Reads configuration space.
    pub fn read_config(&self, offset: u64, buf: &mut [u8]) -> Result<(), VfioUserError> {
        self.inner.region_read(region::CONFIG, offset, buf)
    }

    /// Writes configuration space (and waits for the server to take it).
    pub fn write_config(&self, offset: u64, data: &[u8]) -> Result<(), VfioUserError> {
        self.inner.region_write(region::CONFIG, offset, data, false)
    }

    /// Reads the card's identification register (`DEVICE_ID`, datasheet §3): whether the
    /// device answers as an ESPO-1, and the value read.
    pub fn identify(&self) -> Result<(bool, u32), DeviceError> {
        use espo_fpga::regs::ident;
        let v = self.read32(0, u64::from(ident::DEVICE_ID.addr()))?;
        Ok((v == ident::DEVICE_ID_VALUE, v))
    }

    /// Schedules a fault in a served card model (its device-specific fault region).
    pub fn inject_fault(&self, record: FaultRecord) -> Result<(), VfioUserError> {
        self.inner
            .region_write(region::FAULTS, 0, &record.emit(), false)
    }

    /// The interrupt information the server gives for `index`.
    pub fn irq_info(&self, index: u32) -> Result<IrqInfo, VfioUserError> {
        let ask = IrqInfo {
            index,
            ..IrqInfo::default()
        };
        let reply = self
            .inner
            .request(Command::DeviceGetIrqInfo, &ask.emit(), &[], false)?;
        let info = IrqInfo::parse(&reply).map_err(|e| VfioUserError::BadReply {
            command: "DEVICE_GET_IRQ_INFO",
            source: Some(e),
        })?;
        if info.index != index {
            return Err(VfioUserError::BadReply {
                command: "DEVICE_GET_IRQ_INFO",
                source: None,
            });
        }
        Ok(info)
    }

    fn bar(&self, bar: u8, offset: u64, width: u64) -> Result<u32, DeviceError> {
        let size = match self.inner.regions.get(usize::from(bar)) {
            Some(r) if bar < 6 && r.size > 0 => r.size,
            _ => return Err(DeviceError::NoSuchBar { bar }),
        };
        if !offset.is_multiple_of(width) {
            return Err(AccessError::Misaligned {
                offset,
                width_bytes: width,
            }
            .into());
        }
        match offset.checked_add(width) {
            Some(end) if end <= size => Ok(u32::from(bar)),
            _ => Err(AccessError::OutOfBounds {
                offset,
                width_bytes: width,
                len_bytes: size,
            }
            .into()),
        }
    }

    fn with_vector<T>(
        &self,
        vector: u32,
        f: impl FnOnce(&Vector) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let guard = self.irqs.read().unwrap_or_else(|p| p.into_inner());
        let vectors = guard.as_deref().unwrap_or_default();
        match vectors.get(vector as usize) {
            Some(v) => f(v),
            None => Err(DeviceError::NoSuchVector {
                vector,
                enabled: vectors.len() as u32,
            }),
        }
    }

    fn set_irqs(&self, set: &SetIrqs, fds: &[BorrowedFd<'_>]) -> Result<(), VfioUserError> {
        self.inner
            .request(Command::DeviceSetIrqs, &set.emit(), fds, false)?;
        Ok(())
    }
}

impl Device for VfioUserDevice {
    fn bar_len(&self, bar: u8) -> Option<u64> {
        self.inner
            .regions
            .get(usize::from(bar))
            .filter(|r| bar < 6 && r.size > 0)
            .map(|r| r.size)
    }

    fn read32(&self, bar: u8, offset: u64) -> Result<u32, DeviceError> {
        let index = self.bar(bar, offset, 4)?;
        let mut b = [0u8; 4];
        self.inner.region_read(index, offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn write32(&self, bar: u8, offset: u64, value: u32) -> Result<(), DeviceError> {
        let index = self.bar(bar, offset, 4)?;
        Ok(self
            .inner
            .region_write(index, offset, &value.to_le_bytes(), true)?)
    }

    fn read64(&self, bar: u8, offset: u64) -> Result<u64, DeviceError> {
        let index = self.bar(bar, offset, 8)?;
        let mut b = [0u8; 8];
        self.inner.region_read(index, offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn write64(&self, bar: u8, offset: u64, value: u64) -> Result<(), DeviceError> {
        let index = self.bar(bar, offset, 8)?;
        Ok(self
            .inner
            .region_write(index, offset, &value.to_le_bytes(), true)?)
    }

    fn alloc_dma(&self, len_bytes: usize) -> Result<DmaRegion, DeviceError> {
        let (memory, file) = shared_dma_memory(len_bytes)
            .map_err(|source| VfioUserError::AllocDma { len_bytes, source })?;
        let len = memory.len_bytes();
        let iova = lock(&self.inner.iova)
            .allocate(len as u64, memory.page_bytes() as u64)
            .map_err(|_| VfioUserError::IovaExhausted { len_bytes: len })?;
        let map = DmaMap {
            flags: proto::DMA_READABLE | proto::DMA_WRITEABLE,
            offset: 0,
            address: iova,
            size: len as u64,
        };
        if let Err(e) = self
            .inner
            .request(Command::DmaMap, &map.emit(), &[file.as_fd()], false)
        {
            lock(&self.inner.iova).release(iova);
            return Err(e.into());
        }
        drop::<File>(file);
        Ok(DmaRegion::new(
            memory,
            iova,
            Arc::new(Mapper(Arc::clone(&self.inner))),
        ))
    }

    fn enable_irqs(&self, vectors: u32) -> Result<u32, DeviceError> {
        let mut guard = self.irqs.write().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return Err(VfioUserError::IrqsAlreadyEnabled.into());
        }
        let info = self.irq_info(irq_index::MSIX)?;
        if info.count == 0 || info.flags & proto::IRQ_INFO_EVENTFD == 0 {
            return Err(VfioUserError::BadDevice(
                "no MSI-X vectors with eventfd signalling".into(),
            )
            .into());
        }
        let count = vectors
            .clamp(1, info.count)
            .min(proto::MAX_MESSAGE_FDS as u32);
        let mut made = Vec::new();
        for _ in 0..count {
            let event = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                .map_err(|e| VfioUserError::EventFd(e.into()))?;
            made.push(Vector {
                event,
                masked: AtomicBool::new(false),
            });
        }
        let fds: Vec<BorrowedFd<'_>> = made.iter().map(|v| v.event.as_fd()).collect();
        let set = SetIrqs {
            flags: proto::IRQ_SET_DATA_EVENTFD | proto::IRQ_SET_ACTION_TRIGGER,
            index: irq_index::MSIX,
            start: 0,
            count,
            bools: Vec::new(),
        };
        self.set_irqs(&set, &fds)?;
        drop(fds);
        *guard = Some(made);
        Ok(count)
    }

    fn wait_irq(&self, vector: u32, timeout: Duration) -> Result<IrqWait, DeviceError> {
        self.with_vector(vector, |v| {
            if v.masked.load(Ordering::Acquire) {
                return Err(DeviceError::VectorMasked { vector });
            }
            if !self.inner.alive.load(Ordering::Acquire) {
                return Err(VfioUserError::Disconnected.into());
            }
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let mut fds = [
                    PollFd::new(v.event.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.inner.watch.as_fd(), rdhup()),
                ];
                channel::poll_for(&mut fds, left).map_err(VfioUserError::EventFd)?;
                let hung_up = fds[1].revents().is_some_and(|r| {
                    r.intersects(rdhup() | PollFlags::POLLHUP | PollFlags::POLLERR)
                });
                match v.event.read() {
                    Ok(count) if count > 0 => return Ok(IrqWait::Fired { count }),
                    Ok(_) | Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(VfioUserError::EventFd(e.into()).into()),
                }
                if hung_up {
                    self.inner.lose();
                    return Err(VfioUserError::Disconnected.into());
                }
                if Instant::now() >= deadline {
                    return Ok(IrqWait::TimedOut);
                }
            }
        })
    }

    fn mask_irq(&self, vector: u32) -> Result<(), DeviceError> {
        self.with_vector(vector, |v| {
            v.masked.store(true, Ordering::Release);
            Ok(())
        })
    }

    fn unmask_irq(&self, vector: u32) -> Result<(), DeviceError> {
        self.with_vector(vector, |v| {
            v.masked.store(false, Ordering::Release);
            Ok(())
        })
    }

    fn irq_wake_fd(&self, vector: u32) -> Option<OwnedFd> {
        let guard = self.irqs.read().unwrap_or_else(|p| p.into_inner());
        let v = guard.as_deref()?.get(vector as usize)?;
        v.event.as_fd().try_clone_to_owned().ok()
    }

    fn reset(&self) -> Result<(), DeviceError> {
        if self.inner.device_flags & proto::DEVICE_FLAGS_RESET == 0 {
            return Err(DeviceError::ResetUnsupported);
        }
        self.inner.request(Command::DeviceReset, &[], &[], false)?;
        Ok(())
    }

    fn set_bus_master(&self, enable: bool) -> Result<(), DeviceError> {
        let mut word = [0u8; 2];
        self.read_config(CONFIG_COMMAND, &mut word)?;
        let command = u16::from_le_bytes(word);
        let command = if enable {
            command | COMMAND_BUS_MASTER
        } else {
            command & !COMMAND_BUS_MASTER
        };
        self.write_config(CONFIG_COMMAND, &command.to_le_bytes())?;
        Ok(())
    }
}

impl Drop for VfioUserDevice {
    fn drop(&mut self) {
        if self.inner.alive.load(Ordering::Acquire) {
            let _ = self.set_bus_master(false);
            let set = SetIrqs {
                flags: proto::IRQ_SET_DATA_NONE | proto::IRQ_SET_ACTION_TRIGGER,
                index: irq_index::MSIX,
                ..SetIrqs::default()
            };
            if self.irqs.read().is_ok_and(|g| g.is_some()) {
                let _ = self.set_irqs(&set, &[]);
            }
        }
        // DMA regions keep the connection (through their mapper) until they are unmapped.
    }
}

/// Unmaps a window from the server's view before its memory is freed.
struct Mapper(Arc<Inner>);

impl DmaMapper for Mapper {
    fn unmap(&self, iova: u64, len_bytes: usize) -> Result<(), DeviceError> {
        let req = DmaUnmap {
            flags: 0,
            address: iova,
            size: len_bytes as u64,
        };
        self.0.request(Command::DmaUnmap, &req.emit(), &[], false)?;
        lock(&self.0.iova).release(iova);
        Ok(())
    }
}
