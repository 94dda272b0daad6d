//! The card model served as a vfio-user PCI device (`espo card serve`).
//!
//! One thread runs everything: it keeps the model's simulated time in step with the wall
//! clock (as [`Pacing::RealTime`](crate::model::Pacing::RealTime) does in-process), and
//! between runs it waits — until the model's next event, a message from the client or a
//! frame on the port — for at most [`MAX_IDLE`]. Clients are served one at a time; when a
//! client goes, its DMA windows and eventfds go with it and the card keeps its state, as
//! the protocol asks.
//!
//! What the client sees: configuration space (`ConfigSpace`), BAR0 (the model's register
//! file, 4- and 8-byte accesses), BAR2 (MSI-X table and PBA, stored only: interrupts go to
//! the eventfds the client set), MSI-X with one vector per card interrupt, device reset
//! (the card's full reset, datasheet §5.2), DMA through windows the client mapped with a
//! sealed memory file (anything else, windows mapped without a file included, is a DMA
//! fault the card reports), and a
//! device-specific region for fault injection ([`FaultRecord`]).
//!
//! Everything from the client is untrusted: each message is parsed and checked, a refused
//! one gets an error reply with an errno, a malformed or oversized one ends the connection.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use espo_fpga::regs::irq::VECTORS;
use espo_fpga::regs::{BAR0_SIZE, ctrl};
use espo_model::{FaultKind, FaultTrigger, HostMemory, MapError, Model, ModelParams};
use nix::poll::{PollFd, PollFlags};

use super::channel::{self, Message, RecvError};
use super::config::{BAR2_BYTES, CONFIG_BYTES, ConfigSpace};
use super::error::VfioUserError;
use super::memory::map_client_window;
use super::proto::{
    self, Capabilities, Command, DeviceInfo, DmaMap, DmaUnmap, FaultRecord, Header, IrqInfo, Kind,
    RegionAccess, RegionInfo, Version, irq_index, region,
};
use crate::dma::DmaMemory;

mod irqs;
mod port;

use irqs::Irqs;
pub use port::{PortPump, ServedPort};

/// Longest wait between two runs of the model.
pub const MAX_IDLE: Duration = Duration::from_millis(2);
/// Most DMA windows a client may map at once.
pub const MAX_DMA_WINDOWS: usize = 4096;
/// How long the rest of a message may take once its first byte arrived.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One client window as the model's IOMMU reaches it.
struct Window(DmaMemory);

impl HostMemory for Window {
    fn len(&self) -> usize {
        self.0.len_bytes()
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        if self.0.read_bytes(offset, buf).is_err() {
            buf.fill(0xff);
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let _ = self.0.write_bytes(offset, data);
    }
}

/// A DMA window the client mapped.
struct ClientWindow {
    len: u64,
    /// Mapped into the card's IOMMU (the client shared its memory).
    reachable: bool,
}

/// Counters of what the server did, for its log line and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServeStats {
    /// Clients served.
    pub clients: u64,
    /// Messages handled.
    pub messages: u64,
    /// Commands refused with an error reply.
    pub refused: u64,
    /// Connections ended because a message was malformed.
    pub malformed: u64,
}

/// What ended one client's session.
#[derive(Debug)]
pub enum SessionEnd {
    /// The client closed the connection.
    Closed,
    /// The client sent something malformed; the connection was dropped.
    Malformed(RecvError),
    /// The caller asked the server to stop.
    Stopped,
    /// An injected fault asked the process to end (see [`FaultRecord::EXIT`]).
    Exit,
}

/// The card model served over vfio-user.
pub struct CardServer {
    path: PathBuf,
    listener: UnixListener,
    model: Model,
    irqs: Arc<Irqs>,
    config: ConfigSpace,
    msix: Vec<u8>,
    windows: BTreeMap<u64, ClientWindow>,
    wake: Option<OwnedFd>,
    pump: Option<PortPump>,
    exit_on_removal: bool,
    origin: Instant,
    origin_cycle: u64,
    clock_hz: u64,
    /// What the server did so far.
    pub stats: ServeStats,
}

impl std::fmt::Debug for CardServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardServer")
            .field("path", &self.path)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl CardServer {
    /// A card model with `params` served at `path` (a stale socket file there is replaced;
    /// one a server still listens on is not), its port attached to `port`.
    pub fn bind(path: &Path, params: ModelParams, port: ServedPort) -> Result<Self, VfioUserError> {
        if UnixStream::connect(path).is_ok() {
            return Err(VfioUserError::Listen {
                path: path.to_path_buf(),
                source: io::Error::from(io::ErrorKind::AddrInUse),
            });
        }
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|source| VfioUserError::Listen {
            path: path.to_path_buf(),
            source,
        })?;
        let clock_hz = params.clock_hz.max(1);
        let mut model = Model::new(params);
        let irqs = Arc::new(Irqs::default());
        model.set_interrupt_sink(irqs.clone());
        model.attach_link(port.link);
        Ok(Self {
            path: path.to_path_buf(),
            listener,
            model,
            irqs,
            config: ConfigSpace::default(),
            msix: vec![0; BAR2_BYTES as usize],
            windows: BTreeMap::new(),
            wake: port.wake,
            pump: port.pump,
            exit_on_removal: false,
            origin: Instant::now(),
            origin_cycle: 0,
            clock_hz,
            stats: ServeStats::default(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Interrupt messages delivered to a client's eventfds so far.
    pub fn interrupts_delivered(&self) -> u64 {
        lock(&self.irqs.0).delivered
    }

    /// Serves clients one after another until `stop` is set or an injected fault ends the
    /// process's service ([`SessionEnd::Exit`], returned).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<SessionEnd, VfioUserError> {
        self.listener
            .set_nonblocking(true)
            .map_err(VfioUserError::Serve)?;
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(SessionEnd::Stopped);
            }
            match self.listener.accept() {
                Ok((stream, _)) => match self.serve(stream, stop)? {
                    SessionEnd::Exit => return Ok(SessionEnd::Exit),
                    SessionEnd::Stopped => return Ok(SessionEnd::Stopped),
                    SessionEnd::Closed | SessionEnd::Malformed(_) => {}
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.run_model();
                    let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
                    let _ = channel::poll_for(&mut fds, Duration::from_millis(20));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(VfioUserError::Serve(e)),
            }
        }
    }

    /// Serves one connected client until it goes (or `stop`).
    pub fn serve(
        &mut self,
        stream: UnixStream,
        stop: &AtomicBool,
    ) -> Result<SessionEnd, VfioUserError> {
        stream
            .set_nonblocking(false)
            .map_err(VfioUserError::Serve)?;
        stream
            .set_write_timeout(Some(MESSAGE_TIMEOUT))
            .map_err(VfioUserError::Serve)?;
        self.stats.clients += 1;
        let end = self.session(&stream, stop);
        // The client's windows and eventfds go with it; the card keeps its state.
        for (&iova, w) in std::mem::take(&mut self.windows).iter() {
            if w.reachable {
                let _ = self.model.unmap(iova);
            }
        }
        {
            let mut s = lock(&self.irqs.0);
            s.events.clear();
            s.masked = 0;
            s.pending = 0;
        }
        if let SessionEnd::Malformed(_) = end {
            self.stats.malformed += 1;
        }
        Ok(end)
    }

    fn session(&mut self, stream: &UnixStream, stop: &AtomicBool) -> SessionEnd {
        loop {
            if stop.load(Ordering::Acquire) {
                return SessionEnd::Stopped;
            }
            if self.run_model() {
                return SessionEnd::Exit;
            }
            let idle = self
                .model
                .next_event_cycle()
                .map(|c| self.cycles_to_duration(c.saturating_sub(self.model.now_cycles())))
                .unwrap_or(MAX_IDLE)
                .min(MAX_IDLE);
            let readable = {
                let mut fds = vec![PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
                if let Some(w) = &self.wake {
                    fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
                }
                let polled = channel::poll_for(&mut fds, idle);
                let ready = |i: usize| {
                    fds.get(i)
                        .and_then(PollFd::revents)
                        .is_some_and(|r| !r.is_empty())
                };
                if polled.is_ok()
                    && ready(1)
                    && let Some(pump) = self.pump.as_mut()
                {
                    pump();
                }
                polled.is_ok() && ready(0)
            };
            if !readable {
                continue;
            }
            // Everything queued, then the model again.
            loop {
                let msg = match channel::recv(stream, Instant::now() + MESSAGE_TIMEOUT) {
                    Ok(msg) => msg,
                    Err(RecvError::Closed) => return SessionEnd::Closed,
                    Err(e) => return SessionEnd::Malformed(e),
                };
                self.stats.messages += 1;
                if let Err(e) = self.handle(stream, msg) {
                    return SessionEnd::Malformed(RecvError::Io(e));
                }
                let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
                if !matches!(channel::poll_for(&mut fds, Duration::ZERO), Ok(n) if n > 0) {
                    break;
                }
                self.run_model();
            }
        }
    }

    fn cycles_to_duration(&self, cycles: u64) -> Duration {
        let ns = u128::from(cycles) * 1_000_000_000 / u128::from(self.clock_hz);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Runs the model up to the wall clock; true when an injected fault asks the process to
    /// end (the card was removed with [`FaultRecord::EXIT`]).
    fn run_model(&mut self) -> bool {
        let elapsed = self.origin.elapsed().as_nanos() * u128::from(self.clock_hz) / 1_000_000_000;
        let target = self
            .origin_cycle
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX));
        if target > self.model.now_cycles() {
            self.model.run_until(target);
        }
        self.exit_on_removal && self.model.bar0_read32(ctrl::STATUS.addr()) == u32::MAX
    }

    fn handle(&mut self, stream: &UnixStream, msg: Message) -> io::Result<()> {
        let h = msg.header;
        if h.kind != Kind::Command {
            // A reply nobody asked for: the server sends no commands.
            return Err(io::Error::from_raw_os_error(libc::EPROTO));
        }
        let reply = match self.execute(&h, &msg.payload, msg.fds) {
            Ok(payload) => (h.reply(payload.len()), payload),
            Err(errno) => {
                self.stats.refused += 1;
                (h.error_reply(errno), Vec::new())
            }
        };
        if h.no_reply {
            return Ok(());
        }
        channel::send(stream, &reply.0, &reply.1, &[])
    }

    /// Carries out one command; its reply payload, or the errno to refuse it with.
    fn execute(&mut self, h: &Header, payload: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<u8>, i32> {
        let einval = libc::EINVAL;
        let no_fds = |fds: &Vec<OwnedFd>| if fds.is_empty() { Ok(()) } else { Err(einval) };
        match h.command {
            Command::Version => {
                no_fds(&fds)?;
                let theirs = Version::parse(payload).map_err(|_| einval)?;
                if theirs.major != proto::VERSION_MAJOR {
                    return Err(libc::ENOTSUP);
                }
                Ok(Version {
                    major: proto::VERSION_MAJOR,
                    minor: theirs.minor.min(proto::VERSION_MINOR),
                    capabilities: Capabilities::espo(),
                }
                .emit())
            }
            Command::DmaMap => self.dma_map(payload, fds),
            Command::DmaUnmap => {
                no_fds(&fds)?;
                let req = DmaUnmap::parse(payload).map_err(|_| einval)?;
                let reachable = match self.windows.get(&req.address) {
                    Some(w) if w.len == req.size => w.reachable,
                    _ => return Err(libc::ENOENT),
                };
                if reachable {
                    self.model.unmap(req.address).map_err(|_| libc::ENOENT)?;
                }
                self.windows.remove(&req.address);
                Ok(req.emit())
            }
            Command::DeviceGetInfo => {
                no_fds(&fds)?;
                DeviceInfo::parse(payload).map_err(|_| einval)?;
                Ok(DeviceInfo {
                    flags: proto::DEVICE_FLAGS_PCI | proto::DEVICE_FLAGS_RESET,
                    num_regions: region::COUNT,
                    num_irqs: irq_index::COUNT,
                }
                .emit())
            }
            Command::DeviceGetRegionInfo => {
                no_fds(&fds)?;
                let req = RegionInfo::parse(payload).map_err(|_| einval)?;
                let rw = proto::REGION_READ | proto::REGION_WRITE;
                let (flags, size) = match req.index {
                    region::BAR0 => (rw, u64::from(BAR0_SIZE)),
                    region::BAR2 => (rw, u64::from(BAR2_BYTES)),
                    region::CONFIG => (rw, CONFIG_BYTES as u64),
                    region::FAULTS => (proto::REGION_WRITE, FaultRecord::BYTES as u64),
                    i if i < region::COUNT => (0, 0),
                    _ => return Err(einval),
                };
                Ok(RegionInfo {
                    flags,
                    index: req.index,
                    cap_offset: 0,
                    size,
                    offset: 0,
                }
                .emit())
            }
            Command::DeviceGetIrqInfo => {
                no_fds(&fds)?;
                let req = IrqInfo::parse(payload).map_err(|_| einval)?;
                let (flags, count) = match req.index {
                    irq_index::MSIX => (
                        proto::IRQ_INFO_EVENTFD
                            | proto::IRQ_INFO_MASKABLE
                            | proto::IRQ_INFO_NORESIZE,
                        VECTORS,
                    ),
                    i if i < irq_index::COUNT => (proto::IRQ_INFO_EVENTFD, 0),
                    _ => return Err(einval),
                };
                Ok(IrqInfo {
                    flags,
                    index: req.index,
                    count,
                }
                .emit())
            }
            Command::DeviceSetIrqs => self.set_irqs(payload, fds),
            Command::RegionRead => {
                no_fds(&fds)?;
                let req = RegionAccess::parse(payload, false).map_err(|_| einval)?;
                let mut data = vec![0u8; req.count as usize];
                self.region_read(req.region, req.offset, &mut data)?;
                Ok(RegionAccess { data, ..req }.emit())
            }
            Command::RegionWrite => {
                no_fds(&fds)?;
                let req = RegionAccess::parse(payload, true).map_err(|_| einval)?;
                self.region_write(req.region, req.offset, &req.data)?;
                Ok(RegionAccess {
                    data: Vec::new(),
                    ..req
                }
                .emit())
            }
            Command::DeviceReset => {
                no_fds(&fds)?;
                // The card's own full reset (CONTROL.RESET, datasheet §5.2), as the
                // in-process model backend resets it.
                self.model
                    .bar0_write32(ctrl::CONTROL.addr(), ctrl::control::RESET.mask() as u32);
                Ok(Vec::new())
            }
            Command::DmaRead | Command::DmaWrite | Command::Unknown(_) => Err(libc::ENOTSUP),
        }
    }

    fn dma_map(&mut self, payload: &[u8], mut fds: Vec<OwnedFd>) -> Result<Vec<u8>, i32> {
        let req = DmaMap::parse(payload).map_err(|_| libc::EINVAL)?;
        if fds.len() > 1 {
            return Err(libc::EINVAL);
        }
        if self.windows.len() >= MAX_DMA_WINDOWS {
            return Err(libc::ENOSPC);
        }
        let end = match req.address.checked_add(req.size) {
            Some(end) if req.size > 0 => end,
            _ => return Err(libc::EINVAL),
        };
        let Some(fd) = fds.pop() else {
            // A window the client shares no descriptor for (a VMM's ROM, say) would need
            // DMA_READ/WRITE messages for every card access: it is recorded, so that map
            // and unmap pair up, but the card cannot reach it — its accesses there are DMA
            // faults, as for any unmapped IOVA.
            let overlaps = self
                .windows
                .iter()
                .any(|(&at, w)| at < end && req.address < at.saturating_add(w.len));
            if overlaps {
                return Err(libc::EEXIST);
            }
            self.windows.insert(
                req.address,
                ClientWindow {
                    len: req.size,
                    reachable: false,
                },
            );
            return Ok(Vec::new());
        };
        let memory = map_client_window(fd, req.offset, req.size).map_err(|_| libc::EINVAL)?;
        match self
            .model
            .map(req.address, req.size, Arc::new(Window(memory)))
        {
            Ok(()) => {}
            Err(MapError::Overlap { .. }) => return Err(libc::EEXIST),
            Err(_) => return Err(libc::EINVAL),
        }
        self.windows.insert(
            req.address,
            ClientWindow {
                len: req.size,
                reachable: true,
            },
        );
        Ok(Vec::new())
    }

    fn region_read(&mut self, index: u32, offset: u64, data: &mut [u8]) -> Result<(), i32> {
        let len = data.len();
        match index {
            region::BAR0 => {
                let at = bar0_offset(offset, len)?;
                if len == 4 {
                    data.copy_from_slice(&self.model.bar0_read32(at).to_le_bytes());
                } else {
                    data.copy_from_slice(&self.model.bar0_read64(at).to_le_bytes());
                }
                Ok(())
            }
            region::BAR2 => {
                let src = slice(&self.msix, offset, len)?;
                data.copy_from_slice(src);
                Ok(())
            }
            region::CONFIG => {
                let at = within(offset, len, CONFIG_BYTES)?;
                self.config.read(at, data);
                Ok(())
            }
            _ => Err(libc::EINVAL),
        }
    }

    fn region_write(&mut self, index: u32, offset: u64, data: &[u8]) -> Result<(), i32> {
        match index {
            region::BAR0 => {
                let at = bar0_offset(offset, data.len())?;
                let mut word = [0u8; 8];
                word[..data.len()].copy_from_slice(data);
                let value = u64::from_le_bytes(word);
                if data.len() == 4 {
                    self.model.bar0_write32(at, value as u32);
                } else {
                    self.model.bar0_write64(at, value);
                }
                Ok(())
            }
            region::BAR2 => {
                let at = within(offset, data.len(), self.msix.len())?;
                self.msix[at..at + data.len()].copy_from_slice(data);
                Ok(())
            }
            region::CONFIG => {
                let at = within(offset, data.len(), CONFIG_BYTES)?;
                self.config.write(at, data);
                lock(&self.irqs.0).bus_master = self.config.bus_master();
                Ok(())
            }
            region::FAULTS => {
                if offset != 0 {
                    return Err(libc::EINVAL);
                }
                let record = FaultRecord::parse(data).map_err(|_| libc::EINVAL)?;
                self.inject(record)
            }
            _ => Err(libc::EINVAL),
        }
    }

    fn inject(&mut self, record: FaultRecord) -> Result<(), i32> {
        let kind = fault_kind(record.kind & !FaultRecord::EXIT).ok_or(libc::EINVAL)?;
        let trigger = match record.trigger {
            0 => FaultTrigger::AtCycle(record.value),
            1 => FaultTrigger::AtPacket(record.value),
            _ => return Err(libc::EINVAL),
        };
        if record.kind & FaultRecord::EXIT != 0 {
            if kind != FaultKind::SurpriseRemoval {
                return Err(libc::EINVAL);
            }
            self.exit_on_removal = true;
        }
        self.model.inject(kind, trigger);
        Ok(())
    }
}

/// The model's fault kind for a [`FaultRecord`] code.
pub fn fault_kind(code: u32) -> Option<FaultKind> {
    Some(match code {
        0 => FaultKind::DmaError,
        1 => FaultKind::EngineHang,
        2 => FaultKind::IcvEngineError,
        3 => FaultKind::SurpriseReset,
        4 => FaultKind::SurpriseRemoval,
        5 => FaultKind::DroppedInterrupt,
        6 => FaultKind::CorruptCompletion,
        7 => FaultKind::StaleSeqExport,
        _ => return None,
    })
}

/// The [`FaultRecord`] code of a fault kind.
pub fn fault_code(kind: FaultKind) -> u32 {
    match kind {
        FaultKind::DmaError => 0,
        FaultKind::EngineHang => 1,
        FaultKind::IcvEngineError => 2,
        FaultKind::SurpriseReset => 3,
        FaultKind::SurpriseRemoval => 4,
        FaultKind::DroppedInterrupt => 5,
        FaultKind::CorruptCompletion => 6,
        FaultKind::StaleSeqExport => 7,
    }
}

/// A BAR0 register access: 4 or 8 bytes, naturally aligned, inside BAR0.
fn bar0_offset(offset: u64, len: usize) -> Result<u32, i32> {
    if !(len == 4 || len == 8) || !offset.is_multiple_of(len as u64) {
        return Err(libc::EINVAL);
    }
    within(offset, len, BAR0_SIZE as usize).map(|at| at as u32)
}

fn within(offset: u64, len: usize, size: usize) -> Result<usize, i32> {
    let at = usize::try_from(offset).map_err(|_| libc::EINVAL)?;
    match at.checked_add(len) {
        Some(end) if end <= size => Ok(at),
        _ => Err(libc::EINVAL),
    }
}

fn slice(bytes: &[u8], offset: u64, len: usize) -> Result<&[u8], i32> {
    let at = within(offset, len, bytes.len())?;
    bytes.get(at..at + len).ok_or(libc::EINVAL)
}

/// Errors of a session end, for logs.
impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Closed => write!(f, "the client closed the connection"),
            SessionEnd::Malformed(e) => write!(f, "the client sent a malformed message ({e})"),
            SessionEnd::Stopped => write!(f, "stopped"),
            SessionEnd::Exit => write!(f, "an injected removal ended the server"),
        }
    }
}
