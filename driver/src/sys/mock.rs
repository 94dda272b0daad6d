//! A simulated kernel for tests: VFIO containers, groups and devices, IOMMU mappings with the
//! kernel's refusals, eventfds that tests signal, and injectable failures per operation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};
use vfio_bindings::bindings::vfio::{
    VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

use super::{ContainerId, DeviceId, DeviceInfo, EventId, IrqInfo, RegionInfo, Sys};
use crate::vfio::IommuInterface;

/// Region offsets inside the device fd, as vfio-pci lays them out.
pub(crate) const fn region_offset(index: u32) -> u64 {
    (index as u64) << 40
}

/// What a simulated device looks like.
#[derive(Debug, Clone)]
pub(crate) struct MockDevice {
    pub group: u32,
    pub flags: u32,
    /// BAR sizes (0 = absent) and whether each is mmap-able.
    pub bars: [(u64, bool); 6],
    /// IRQ counts per index: INTx, MSI, MSI-X, ERR, REQ.
    pub irqs: [u32; 5],
}

impl Default for MockDevice {
    fn default() -> Self {
        Self {
            group: 7,
            flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
            bars: [
                (1 << 20, true),
                (0, false),
                (0x4000, true),
                (0, false),
                (0, false),
                (0, false),
            ],
            irqs: [1, 1, 4, 1, 1],
        }
    }
}

struct OpenDevice {
    spec: MockDevice,
    config: [u8; 256],
}

#[derive(Default)]
struct State {
    next: u32,
    devices_by_path: HashMap<PathBuf, MockDevice>,
    existing_paths: HashSet<PathBuf>,
    files: HashMap<PathBuf, String>,
    failures: HashMap<&'static str, i32>,
    calls: Vec<String>,
    containers: HashSet<u32>,
    devices: HashMap<u32, OpenDevice>,
    groups_attached: HashMap<u32, u32>,
    dma: BTreeMap<(u32, u64), u64>,
    dma_entry_limit: usize,
    no_hugepages: bool,
    events: HashMap<u32, u64>,
    irq_bindings: HashMap<(u32, u32), Vec<EventId>>,
}

/// The simulated kernel.
pub(crate) struct MockSys {
    state: Mutex<State>,
}

impl MockSys {
    pub fn new() -> Self {
        let state = State {
            dma_entry_limit: 65535,
            ..State::default()
        };
        Self {
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a device at a sysfs path.
    pub fn add_device(&self, sysfs: &Path, device: MockDevice) {
        self.state()
            .devices_by_path
            .insert(sysfs.to_path_buf(), device);
    }

    /// Makes `path` exist (for `path_exists`).
    pub fn add_path(&self, path: &str) {
        self.state().existing_paths.insert(PathBuf::from(path));
    }

    /// Gives a file its contents (for `read_text`).
    pub fn add_file(&self, path: &str, text: &str) {
        self.state()
            .files
            .insert(PathBuf::from(path), text.to_string());
    }

    /// Makes every later call of `op` fail with `errno`.
    pub fn fail(&self, op: &'static str, errno: i32) {
        self.state().failures.insert(op, errno);
    }

    /// Limits the number of IOMMU mappings (the kernel's `dma_entry_limit`).
    pub fn set_dma_entry_limit(&self, limit: usize) {
        self.state().dma_entry_limit = limit;
    }

    /// Simulates a host without free hugepages.
    pub fn without_hugepages(&self) {
        self.state().no_hugepages = true;
    }

    /// The operations performed so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// Live IOMMU mappings as (iova, len).
    pub fn dma_mappings(&self) -> Vec<(u64, u64)> {
        self.state()
            .dma
            .iter()
            .map(|(&(_, iova), &len)| (iova, len))
            .collect()
    }

    /// Number of open containers, devices and eventfds.
    pub fn open_handles(&self) -> (usize, usize, usize) {
        let s = self.state();
        (s.containers.len(), s.devices.len(), s.events.len())
    }

    /// The device raises `vector` of IRQ `index`: signals the bound eventfd.
    pub fn raise_irq(&self, device: DeviceId, index: u32, vector: usize) {
        let mut s = self.state();
        let bound = s
            .irq_bindings
            .get(&(device.0, index))
            .and_then(|v| v.get(vector))
            .copied();
        if let Some(event) = bound
            && let Some(count) = s.events.get_mut(&event.0)
        {
            *count += 1;
        }
    }

    /// The config-space dword at `offset` of an open device.
    pub fn config_u16(&self, device: DeviceId, offset: usize) -> u16 {
        let s = self.state();
        let c = &s.devices[&device.0].config;
        u16::from_le_bytes([c[offset], c[offset + 1]])
    }

    /// Starts an operation: records it and returns the injected failure, if any.
    fn enter(&self, op: &'static str, detail: String) -> io::Result<MutexGuard<'_, State>> {
        let mut s = self.state();
        s.calls.push(if detail.is_empty() {
            op.to_string()
        } else {
            format!("{op} {detail}")
        });
        match s.failures.get(op) {
            Some(&errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(s),
        }
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn open_device(s: &mut State, device: DeviceId) -> io::Result<&mut OpenDevice> {
    s.devices
        .get_mut(&device.0)
        .ok_or_else(|| errno(libc::EBADF))
}

impl Sys for MockSys {
    fn iommu_group(&self, device_sysfs: &Path) -> io::Result<u32> {
        let s = self.enter("iommu_group", String::new())?;
        s.devices_by_path
            .get(device_sysfs)
            .map(|d| d.group)
            .ok_or_else(|| errno(libc::ENOENT))
    }

    fn read_text(&self, path: &Path) -> io::Result<String> {
        self.state()
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| errno(libc::ENOENT))
    }

    fn path_exists(&self, path: &Path) -> bool {
        self.state().existing_paths.contains(path)
    }

    fn open_container(&self, interface: IommuInterface) -> io::Result<ContainerId> {
        let mut s = self.enter("open_container", format!("{interface:?}"))?;
        s.next += 1;
        let id = s.next;
        s.containers.insert(id);
        Ok(ContainerId(id))
    }

    fn close_container(&self, container: ContainerId) {
        let mut s = self.state();
        s.calls.push("close_container".into());
        // Closing the container drops whatever the IOMMU still maps, as the kernel does.
        s.dma.retain(|&(c, _), _| c != container.0);
        s.containers.remove(&container.0);
    }

    fn open_device(&self, container: ContainerId, device_sysfs: &Path) -> io::Result<DeviceId> {
        let mut s = self.enter("open_device", String::new())?;
        if !s.containers.contains(&container.0) {
            return Err(errno(libc::EBADF));
        }
        let spec = s
            .devices_by_path
            .get(device_sysfs)
            .cloned()
            .ok_or_else(|| errno(libc::ENOENT))?;
        s.next += 1;
        let id = s.next;
        *s.groups_attached.entry(spec.group).or_default() += 1;
        let mut config = [0u8; 256];
        config[0..4].copy_from_slice(&0x11e8_1234u32.to_le_bytes());
        s.devices.insert(id, OpenDevice { spec, config });
        Ok(DeviceId(id))
    }

    fn close_device(&self, device: DeviceId) {
        let mut s = self.state();
        s.calls.push("close_device".into());
        if let Some(dev) = s.devices.remove(&device.0)
            && let Some(n) = s.groups_attached.get_mut(&dev.spec.group)
        {
            *n -= 1;
        }
        s.irq_bindings.retain(|&(d, _), _| d != device.0);
    }

    fn device_info(&self, device: DeviceId) -> io::Result<DeviceInfo> {
        let mut s = self.enter("device_info", String::new())?;
        let dev = open_device(&mut s, device)?;
        Ok(DeviceInfo {
            flags: dev.spec.flags,
            num_regions: 9,
            num_irqs: 5,
        })
    }

    fn region_info(&self, device: DeviceId, index: u32) -> io::Result<RegionInfo> {
        let mut s = self.enter("region_info", format!("{index}"))?;
        let dev = open_device(&mut s, device)?;
        let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        let (flags, size) = match index {
            0..=5 => {
                let (size, mmap) = dev.spec.bars[index as usize];
                let flags = if size == 0 {
                    0
                } else if mmap {
                    rw | VFIO_REGION_INFO_FLAG_MMAP
                } else {
                    rw
                };
                (flags, size)
            }
            VFIO_PCI_CONFIG_REGION_INDEX => (rw, 256),
            _ => (0, 0),
        };
        Ok(RegionInfo {
            flags,
            size,
            offset: region_offset(index),
        })
    }

    fn irq_info(&self, device: DeviceId, index: u32) -> io::Result<IrqInfo> {
        let mut s = self.enter("irq_info", format!("{index}"))?;
        let dev = open_device(&mut s, device)?;
        let count = *dev
            .spec
            .irqs
            .get(index as usize)
            .ok_or_else(|| errno(libc::EINVAL))?;
        Ok(IrqInfo { flags: 0, count })
    }

    fn map_region(&self, device: DeviceId, offset: u64, len: usize) -> io::Result<MmapRaw> {
        let mut s = self.enter("map_region", format!("{offset:#x}"))?;
        let dev = open_device(&mut s, device)?;
        let index = (offset >> 40) as usize;
        let &(size, mmap) = dev
            .spec
            .bars
            .get(index)
            .ok_or_else(|| errno(libc::EINVAL))?;
        if !mmap || len as u64 > size || offset & 0xff_ffff_ffff != 0 {
            return Err(errno(libc::EINVAL));
        }
        MmapOptions::new().len(len).map_anon().map(MmapRaw::from)
    }

    fn read_region(&self, device: DeviceId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut s = self.enter("read_region", format!("{offset:#x}"))?;
        let dev = open_device(&mut s, device)?;
        let at = offset
            .checked_sub(region_offset(VFIO_PCI_CONFIG_REGION_INDEX))
            .ok_or_else(|| errno(libc::EINVAL))?;
        let src = dev
            .config
            .get(at as usize..at as usize + buf.len())
            .ok_or_else(|| errno(libc::EINVAL))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_region(&self, device: DeviceId, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut s = self.enter("write_region", format!("{offset:#x}"))?;
        let dev = open_device(&mut s, device)?;
        let at = offset
            .checked_sub(region_offset(VFIO_PCI_CONFIG_REGION_INDEX))
            .ok_or_else(|| errno(libc::EINVAL))?;
        let dst = dev
            .config
            .get_mut(at as usize..at as usize + buf.len())
            .ok_or_else(|| errno(libc::EINVAL))?;
        dst.copy_from_slice(buf);
        Ok(())
    }

    fn reset(&self, device: DeviceId) -> io::Result<()> {
        let mut s = self.enter("reset", String::new())?;
        let dev = open_device(&mut s, device)?;
        if dev.spec.flags & VFIO_DEVICE_FLAGS_RESET == 0 {
            return Err(errno(libc::EINVAL));
        }
        Ok(())
    }

    fn set_irq_eventfds(&self, device: DeviceId, index: u32, events: &[EventId]) -> io::Result<()> {
        let mut s = self.enter("set_irq_eventfds", format!("{index} x{}", events.len()))?;
        let dev = open_device(&mut s, device)?;
        let count = *dev
            .spec
            .irqs
            .get(index as usize)
            .ok_or_else(|| errno(libc::EINVAL))?;
        if events.len() > count as usize || events.iter().any(|e| !s.events.contains_key(&e.0)) {
            return Err(errno(libc::EINVAL));
        }
        s.irq_bindings.insert((device.0, index), events.to_vec());
        Ok(())
    }

    fn disable_irqs(&self, device: DeviceId, index: u32) -> io::Result<()> {
        let mut s = self.enter("disable_irqs", format!("{index}"))?;
        s.irq_bindings.remove(&(device.0, index));
        Ok(())
    }

    unsafe fn dma_map(
        &self,
        container: ContainerId,
        iova: u64,
        len: usize,
        _host: *mut u8,
    ) -> io::Result<()> {
        let mut s = self.enter("dma_map", format!("{iova:#x}+{len:#x}"))?;
        let len = len as u64;
        if !s.containers.contains(&container.0) || s.groups_attached.values().all(|&n| n == 0) {
            // The kernel refuses mapping before a group (and so an IOMMU type) is attached.
            return Err(errno(libc::EINVAL));
        }
        let overlaps = s
            .dma
            .iter()
            .any(|(&(c, i), &l)| c == container.0 && i < iova + len && iova < i + l);
        if overlaps {
            return Err(errno(libc::EEXIST));
        }
        if s.dma.len() >= s.dma_entry_limit {
            return Err(errno(libc::ENOSPC));
        }
        s.dma.insert((container.0, iova), len);
        Ok(())
    }

    fn dma_unmap(&self, container: ContainerId, iova: u64, len: usize) -> io::Result<()> {
        let mut s = self.enter("dma_unmap", format!("{iova:#x}+{len:#x}"))?;
        match s.dma.get(&(container.0, iova)) {
            Some(&l) if l == len as u64 => {
                s.dma.remove(&(container.0, iova));
                Ok(())
            }
            _ => Err(errno(libc::EINVAL)),
        }
    }

    fn map_anonymous(&self, len: usize, hugepage: bool) -> io::Result<MmapRaw> {
        let s = self.enter("map_anonymous", format!("{len:#x} huge={hugepage}"))?;
        if hugepage && s.no_hugepages {
            return Err(errno(libc::ENOMEM));
        }
        drop(s);
        MmapOptions::new().len(len).map_anon().map(MmapRaw::from)
    }

    fn eventfd(&self) -> io::Result<EventId> {
        let mut s = self.enter("eventfd", String::new())?;
        s.next += 1;
        let id = s.next;
        s.events.insert(id, 0);
        Ok(EventId(id))
    }

    fn close_eventfd(&self, event: EventId) {
        let mut s = self.state();
        s.calls.push("close_eventfd".into());
        s.events.remove(&event.0);
    }

    /// Simulated eventfds have no descriptor.
    fn eventfd_dup(&self, _event: EventId) -> io::Result<std::os::fd::OwnedFd> {
        Err(errno(libc::ENOSYS))
    }

    fn wait_eventfd(&self, event: EventId, _timeout: Duration) -> io::Result<u64> {
        let mut s = self.enter("wait_eventfd", String::new())?;
        let count = s
            .events
            .get_mut(&event.0)
            .ok_or_else(|| errno(libc::EBADF))?;
        // The simulated clock runs out at once: no signal means a timeout.
        Ok(std::mem::take(count))
    }
}
