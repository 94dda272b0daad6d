//! The VFIO backend: a PCIe function bound to `vfio-pci`, driven from user space.
//!
//! # Why `vfio-ioctls`
//!
//! `vfio-ioctls` (rust-vmm, used by Cloud Hypervisor) is chosen over `pci-driver`: it is the
//! maintained implementation of the container/group/device life cycle used in production
//! VMMs, shares its uAPI bindings (`vfio-bindings`) with the rest of rust-vmm, and will carry
//! the iommufd cdev path (`vfio_cdev`). `pci-driver` would give a higher-level PCI API that
//! espo does not need (the card's registers come from espo-fpga) and hides the IOMMU mapping
//! calls the DMA bookkeeping here is built around. The crate's own ioctls are private and can
//! only be mocked from inside it, so it sits behind the driver's syscall trait (`crate::sys`):
//! the real implementation calls the crate; tests substitute a simulated kernel.
//!
//! # Life cycle and teardown order
//!
//! [`VfioContainer::open`] opens the container; [`VfioContainer::open_device`] resolves the
//! device's IOMMU group from sysfs, attaches the group (the first one sets the type1v2 IOMMU),
//! gets the device fd, reads every region and maps the memory BARs. DMA memory is mapped
//! through the container with IOVA bookkeeping (no overlaps, page-aligned, inside the
//! configured windows). Every [`DmaRegion`] and [`VfioDevice`] holds the container, so
//! teardown runs in the one safe order: the device stops (bus mastering off, interrupts
//! detached, BARs unmapped), DMA regions unmap from the IOMMU and only then free their memory,
//! the device fd is closed and its group detached — at once when the device is dropped, unless
//! it is the container's last device and DMA mappings remain, then with the last mapping —
//! and the container closes when nothing holds it.
//!
//! # Container or iommufd
//!
//! Two kernel interfaces reach the IOMMU: the legacy VFIO container (`/dev/vfio/vfio` plus
//! `/dev/vfio/GROUP`, every kernel with VFIO) and iommufd (`/dev/iommu` plus the device cdev
//! `/dev/vfio/devices/vfioN`, Linux 6.6+ built with `CONFIG_IOMMUFD` and
//! `CONFIG_VFIO_DEVICE_CDEV`). [`IommuInterface::Auto`] uses the container where the kernel
//! has it — the path proven in the QEMU guest of `tests/vfio-qemu` — and iommufd where the
//! container is gone; either can be asked for. Everything after opening (regions, BARs,
//! interrupts, reset, DMA bookkeeping) is the same code for both. Debian 12's kernels are
//! built without `CONFIG_IOMMUFD`, so the iommufd path is exercised against the simulated
//! kernel only.

mod error;
mod irq;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use vfio_bindings::bindings::vfio::{
    VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

pub use error::VfioError;
pub use irq::IrqKind;

use crate::device::{Device, IrqWait};
use crate::dma::{DmaMapper, DmaRegion, allocate_dma_memory};
use crate::error::DeviceError;
use crate::iova::{DEFAULT_IOVA_WINDOWS, IovaRefusal, IovaSpace};
use crate::mmio::Mmio;
use crate::pci::{COMMAND_BUS_MASTER, CONFIG_COMMAND, PciAddress};
use crate::sys::{ContainerId, DeviceId, DeviceInfo, OsSys, RegionInfo, Sys};
use irq::Interrupts;

/// The kernel interface to the IOMMU (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IommuInterface {
    /// The container where `/dev/vfio/vfio` exists, iommufd otherwise.
    #[default]
    Auto,
    /// `/dev/vfio/vfio` and the device's group.
    Container,
    /// `/dev/iommu` and the device's cdev.
    Iommufd,
}

/// How to open VFIO devices.
#[derive(Debug, Clone)]
pub struct VfioOptions {
    /// Where sysfs is mounted (`/sys`).
    pub sysfs_root: PathBuf,
    /// IOVA windows DMA memory may be mapped in (a device with a narrow DMA mask needs a
    /// window below its limit).
    pub iova_windows: Vec<Range<u64>>,
    /// Back allocations of 2 MiB or more with hugepages when free ones exist.
    pub hugepages: bool,
    /// Container or iommufd.
    pub interface: IommuInterface,
}

impl Default for VfioOptions {
    fn default() -> Self {
        Self {
            sysfs_root: PathBuf::from("/sys"),
            iova_windows: DEFAULT_IOVA_WINDOWS.to_vec(),
            hugepages: true,
            interface: IommuInterface::Auto,
        }
    }
}

/// One VFIO region as the kernel describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Region index (BARs 0–5, ROM 6, config 7, VGA 8).
    pub index: u32,
    /// Size in bytes (0: absent).
    pub size: u64,
    /// Offset of the region in the device fd.
    pub offset: u64,
    /// Readable through the device fd.
    pub readable: bool,
    /// Writable through the device fd.
    pub writable: bool,
    /// Can be mmapped.
    pub mappable: bool,
}

impl Region {
    fn from_info(index: u32, info: RegionInfo) -> Self {
        Self {
            index,
            size: info.size,
            offset: info.offset,
            readable: info.flags & VFIO_REGION_INFO_FLAG_READ != 0,
            writable: info.flags & VFIO_REGION_INFO_FLAG_WRITE != 0,
            mappable: info.flags & VFIO_REGION_INFO_FLAG_MMAP != 0,
        }
    }
}

struct ContainerInner {
    sys: Arc<dyn Sys>,
    id: ContainerId,
    interface: IommuInterface,
    options: VfioOptions,
    iova: Mutex<IovaSpace>,
    /// Devices opened in this container, and whether their `VfioDevice` was dropped.
    devices: Mutex<Vec<OpenDevice>>,
}

struct OpenDevice {
    id: DeviceId,
    released: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a single bookkeeping update, so a poisoned lock is consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DmaMapper for ContainerInner {
    fn unmap(&self, iova: u64, len_bytes: usize) -> Result<(), DeviceError> {
        self.sys
            .dma_unmap(self.id, iova, len_bytes)
            .map_err(|source| VfioError::UnmapDma {
                iova,
                len_bytes,
                source,
            })?;
        lock(&self.iova).release(iova);
        self.close_released_devices();
        Ok(())
    }
}

impl ContainerInner {
    /// Marks a device as dropped and closes what can be closed.
    fn release_device(&self, id: DeviceId) {
        if let Some(device) = lock(&self.devices).iter_mut().find(|d| d.id == id) {
            device.released = true;
        }
        self.close_released_devices();
    }

    /// Closes dropped devices — unless that would detach the container's last group while
    /// DMA mappings remain (the kernel would tear the mappings down under the regions that
    /// still own them). Those devices close when the last mapping goes.
    fn close_released_devices(&self) {
        let mappings = lock(&self.iova).mappings();
        let mut devices = lock(&self.devices);
        let still_used = devices.iter().any(|d| !d.released);
        if mappings > 0 && !still_used {
            return;
        }
        devices.retain(|d| {
            if d.released {
                self.sys.close_device(d.id);
            }
            !d.released
        });
    }
}

impl Drop for ContainerInner {
    fn drop(&mut self) {
        for device in lock(&self.devices).drain(..) {
            self.sys.close_device(device.id);
        }
        self.sys.close_container(self.id);
    }
}

/// A VFIO container: one IOMMU address space shared by the devices opened in it.
#[derive(Clone)]
pub struct VfioContainer {
    inner: Arc<ContainerInner>,
}

impl VfioContainer {
    /// Opens `/dev/vfio/vfio`.
    pub fn open(options: VfioOptions) -> Result<Self, VfioError> {
        Self::with_sys(Arc::new(OsSys::default()), options)
    }

    pub(crate) fn with_sys(sys: Arc<dyn Sys>, options: VfioOptions) -> Result<Self, VfioError> {
        let has = |path: &str| sys.path_exists(Path::new(path));
        let interface = match options.interface {
            IommuInterface::Auto if !has("/dev/vfio/vfio") && has("/dev/iommu") => {
                IommuInterface::Iommufd
            }
            IommuInterface::Auto => IommuInterface::Container,
            chosen => chosen,
        };
        let id = sys
            .open_container(interface)
            .map_err(|source| VfioError::OpenContainer { interface, source })?;
        let iova = Mutex::new(IovaSpace::new(&options.iova_windows));
        let devices = Mutex::new(Vec::new());
        let inner = ContainerInner {
            sys,
            id,
            interface,
            options,
            iova,
            devices,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The IOMMU interface in use (never `Auto`).
    pub fn interface(&self) -> IommuInterface {
        self.inner.interface
    }

    /// Opens the device at `address` (bound to vfio-pci), reads its regions, maps its BARs.
    pub fn open_device(&self, address: PciAddress) -> Result<VfioDevice, VfioError> {
        let c = &self.inner;
        let sysfs = c
            .options
            .sysfs_root
            .join("bus/pci/devices")
            .join(address.to_string());
        let group = c
            .sys
            .iommu_group(&sysfs)
            .map_err(|source| VfioError::IommuGroup { address, source })?;
        let id = c
            .sys
            .open_device(c.id, &sysfs)
            .map_err(|source| VfioError::OpenDevice {
                address,
                group,
                source,
            })?;
        lock(&c.devices).push(OpenDevice {
            id,
            released: false,
        });

        let info = c
            .sys
            .device_info(id)
            .map_err(|source| VfioError::DeviceInfo { source })?;
        if info.flags & VFIO_DEVICE_FLAGS_PCI == 0 {
            return Err(VfioError::NotPci { flags: info.flags });
        }
        let mut regions = Vec::new();
        for index in 0..info.num_regions {
            match c.sys.region_info(id, index) {
                Ok(region) => regions.push(Region::from_info(index, region)),
                // Regions past config space (VGA, device-specific) are optional.
                Err(_) if index > VFIO_PCI_CONFIG_REGION_INDEX => {}
                Err(source) => return Err(VfioError::RegionInfo { index, source }),
            }
        }
        let mut bars: [Option<Mmio>; 6] = Default::default();
        for region in regions
            .iter()
            .filter(|r| r.index < 6 && r.size > 0 && r.mappable)
        {
            let bar = region.index as u8;
            let len = usize::try_from(region.size).map_err(|_| VfioError::MapBar {
                bar,
                source: std::io::Error::from_raw_os_error(libc::EFBIG),
            })?;
            let map = c
                .sys
                .map_region(id, region.offset, len)
                .map_err(|source| VfioError::MapBar { bar, source })?;
            bars[bar as usize] = Some(Mmio::new(map));
        }
        let config_offset = regions
            .iter()
            .find(|r| r.index == VFIO_PCI_CONFIG_REGION_INDEX)
            .map(|r| r.offset)
            .ok_or(VfioError::RegionInfo {
                index: VFIO_PCI_CONFIG_REGION_INDEX,
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            })?;
        Ok(VfioDevice {
            container: self.clone(),
            id,
            address,
            group,
            info,
            regions,
            config_offset,
            bars,
            irqs: RwLock::new(None),
        })
    }

    /// Number of live IOMMU mappings.
    pub fn dma_mappings(&self) -> usize {
        lock(&self.inner.iova).mappings()
    }

    fn alloc_dma(&self, len_bytes: usize) -> Result<DmaRegion, VfioError> {
        let c = &self.inner;
        let memory = allocate_dma_memory(c.sys.as_ref(), len_bytes, c.options.hugepages)
            .map_err(|source| VfioError::AllocDma { len_bytes, source })?;
        let len = memory.len_bytes();
        let iova = lock(&c.iova)
            .allocate(len as u64, memory.page_bytes() as u64)
            .map_err(|refusal| match refusal {
                IovaRefusal::Exhausted | IovaRefusal::Overlap => {
                    VfioError::IovaExhausted { len_bytes: len }
                }
            })?;
        // SAFETY: `memory` is a live anonymous mapping that is only accessed through atomic
        // raw-pointer operations; the returned `DmaRegion` owns it and unmaps the IOVA
        // (successfully, or else leaks the memory) before it is freed.
        let mapped = unsafe { c.sys.dma_map(c.id, iova, len, memory.host_ptr()) };
        if let Err(source) = mapped {
            lock(&c.iova).release(iova);
            return Err(VfioError::MapDma {
                iova,
                len_bytes: len,
                source,
            });
        }
        Ok(DmaRegion::new(memory, iova, c.clone()))
    }
}

/// A PCIe function opened through VFIO.
pub struct VfioDevice {
    container: VfioContainer,
    id: DeviceId,
    address: PciAddress,
    group: u32,
    info: DeviceInfo,
    regions: Vec<Region>,
    config_offset: u64,
    bars: [Option<Mmio>; 6],
    irqs: RwLock<Option<Interrupts>>,
}

impl VfioDevice {
    /// Opens the device at `address` in a container of its own.
    pub fn open(address: PciAddress, options: VfioOptions) -> Result<Self, VfioError> {
        VfioContainer::open(options)?.open_device(address)
    }

    /// The device's PCI address.
    pub fn address(&self) -> PciAddress {
        self.address
    }

    /// The device's IOMMU group.
    pub fn group(&self) -> u32 {
        self.group
    }

    /// Every region the kernel reported.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Whether the kernel offers a reset for this device.
    pub fn can_reset(&self) -> bool {
        self.info.flags & VFIO_DEVICE_FLAGS_RESET != 0
    }

    /// The container the device is in.
    pub fn container(&self) -> &VfioContainer {
        &self.container
    }

    /// Which interrupt mechanism is enabled, if any.
    pub fn irq_kind(&self) -> Option<IrqKind> {
        self.irqs
            .read()
            .ok()
            .and_then(|irqs| irqs.as_ref().map(Interrupts::kind))
    }

    fn sys(&self) -> &dyn Sys {
        self.container.inner.sys.as_ref()
    }

    fn bar(&self, bar: u8) -> Result<&Mmio, DeviceError> {
        self.bars
            .get(bar as usize)
            .and_then(Option::as_ref)
            .ok_or(DeviceError::NoSuchBar { bar })
    }

    /// Reads `buf.len()` bytes of configuration space at `offset`.
    pub fn read_config(&self, offset: u64, buf: &mut [u8]) -> Result<(), VfioError> {
        self.sys()
            .read_region(self.id, self.config_offset + offset, buf)
            .map_err(|source| VfioError::ReadConfig { offset, source })
    }

    /// Writes `buf` to configuration space at `offset`.
    pub fn write_config(&self, offset: u64, buf: &[u8]) -> Result<(), VfioError> {
        self.sys()
            .write_region(self.id, self.config_offset + offset, buf)
            .map_err(|source| VfioError::WriteConfig { offset, source })
    }

    fn with_irqs<T>(
        &self,
        f: impl FnOnce(&Interrupts) -> Result<T, DeviceError>,
    ) -> Result<T, DeviceError> {
        let guard = self.irqs.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(irqs) => f(irqs),
            None => Err(DeviceError::NoSuchVector {
                vector: 0,
                enabled: 0,
            }),
        }
    }
}

impl Device for VfioDevice {
    fn bar_len(&self, bar: u8) -> Option<u64> {
        self.bar(bar).ok().map(Mmio::len_bytes)
    }

    fn read32(&self, bar: u8, offset: u64) -> Result<u32, DeviceError> {
        Ok(self.bar(bar)?.read32(offset)?)
    }

    fn write32(&self, bar: u8, offset: u64, value: u32) -> Result<(), DeviceError> {
        Ok(self.bar(bar)?.write32(offset, value)?)
    }

    fn read64(&self, bar: u8, offset: u64) -> Result<u64, DeviceError> {
        Ok(self.bar(bar)?.read64(offset)?)
    }

    fn write64(&self, bar: u8, offset: u64, value: u64) -> Result<(), DeviceError> {
        Ok(self.bar(bar)?.write64(offset, value)?)
    }

    fn alloc_dma(&self, len_bytes: usize) -> Result<DmaRegion, DeviceError> {
        Ok(self.container.alloc_dma(len_bytes)?)
    }

    fn enable_irqs(&self, vectors: u32) -> Result<u32, DeviceError> {
        let mut guard = self.irqs.write().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return Err(VfioError::IrqsAlreadyEnabled.into());
        }
        let irqs = Interrupts::enable(self.container.inner.sys.clone(), self.id, vectors)?;
        let count = irqs.count();
        *guard = Some(irqs);
        Ok(count)
    }

    fn wait_irq(&self, vector: u32, timeout: Duration) -> Result<IrqWait, DeviceError> {
        self.with_irqs(|irqs| irqs.wait(vector, timeout))
    }

    fn mask_irq(&self, vector: u32) -> Result<(), DeviceError> {
        self.with_irqs(|irqs| irqs.set_masked(vector, true))
    }

    fn unmask_irq(&self, vector: u32) -> Result<(), DeviceError> {
        self.with_irqs(|irqs| irqs.set_masked(vector, false))
    }

    fn reset(&self) -> Result<(), DeviceError> {
        if !self.can_reset() {
            return Err(DeviceError::ResetUnsupported);
        }
        self.sys()
            .reset(self.id)
            .map_err(|source| VfioError::Reset { source })?;
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

impl Drop for VfioDevice {
    fn drop(&mut self) {
        // Stop the device's DMA first; the memory it targeted may be freed right after.
        let _ = self.set_bus_master(false);
        // Detach and close the eventfds, then unmap the BARs (an mmap keeps the device
        // open, which would keep its group from detaching). Then the container closes the
        // device fd — at once, or after the last DMA mapping if this was its last device.
        if let Ok(mut irqs) = self.irqs.write() {
            irqs.take();
        }
        self.bars = Default::default();
        self.container.inner.release_device(self.id);
    }
}
