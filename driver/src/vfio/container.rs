//! The IOMMU address space: container or iommufd IOAS, its devices and its DMA mappings.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use vfio_bindings::bindings::vfio::{VFIO_DEVICE_FLAGS_PCI, VFIO_PCI_CONFIG_REGION_INDEX};

use super::{IommuInterface, Region, VfioDevice, VfioError, VfioOptions};
use crate::dma::{DmaMapper, DmaRegion, allocate_dma_memory};
use crate::error::DeviceError;
use crate::iova::{IovaRefusal, IovaSpace, parse_reserved_regions};
use crate::mmio::Mmio;
use crate::pci::PciAddress;
use crate::sys::{ContainerId, DeviceId, OsSys, Sys};

pub(super) struct ContainerInner {
    pub(super) sys: Arc<dyn Sys>,
    pub(super) id: ContainerId,
    pub(super) interface: IommuInterface,
    pub(super) options: VfioOptions,
    pub(super) iova: Mutex<IovaSpace>,
    /// Devices opened in this container, and whether their `VfioDevice` was dropped.
    devices: Mutex<Vec<OpenDevice>>,
}

struct OpenDevice {
    id: DeviceId,
    released: bool,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    pub(super) fn release_device(&self, id: DeviceId) {
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
    pub(super) inner: Arc<ContainerInner>,
}

impl VfioContainer {
    /// Opens the IOMMU interface `options.interface` names (`/dev/vfio/vfio` or `/dev/iommu`).
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
        // The kernel refuses mappings in the group's reserved ranges (MSI doorbell, RMRRs).
        // Kernels before 4.11 have no such file; their defaults already avoid the MSI window.
        let reserved = c
            .options
            .sysfs_root
            .join(format!("kernel/iommu_groups/{group}/reserved_regions"));
        if let Ok(text) = c.sys.read_text(&reserved) {
            let mut iova = lock(&c.iova);
            for range in parse_reserved_regions(&text) {
                iova.exclude(range);
            }
        }
        lock(&c.devices).push(OpenDevice {
            id,
            released: false,
        });
        // A device that fails to come up is closed again at once, releasing its group.
        self.describe(id, address, group)
            .inspect_err(|_| c.release_device(id))
    }

    /// Reads the device's information and regions and maps its BARs.
    fn describe(
        &self,
        id: DeviceId,
        address: PciAddress,
        group: u32,
    ) -> Result<VfioDevice, VfioError> {
        let c = &self.inner;
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

    pub(super) fn alloc_dma(&self, len_bytes: usize) -> Result<DmaRegion, VfioError> {
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
