//! The syscall layer: every system call and ioctl the driver makes, behind one trait.
//!
//! [`Sys`] is what the rest of the driver calls; [`OsSys`] is the real implementation and
//! `mock::MockSys` (tests only) replaces it, so that container, group, device, region, IRQ
//! and DMA-mapping logic is tested on any machine. Resources are named by small handles; the
//! real implementation keeps the open objects in tables.
//!
//! The real implementation uses `vfio-ioctls` (rust-vmm) for the container/group/device
//! life cycle — opening `/dev/vfio/vfio`, checking the API version and the type1v2 extension,
//! opening and checking the group's viability, attaching it to the container, setting the
//! IOMMU type, getting the device fd, region discovery — for the iommufd cdev path (opening
//! `/dev/iommu`, allocating an IOAS, binding `/dev/vfio/devices/vfioN` and attaching it) and
//! for IOMMU map/unmap through either. The crate
//! keeps its own ioctls private and can be mocked only from inside itself, which is why it sits
//! behind this trait. A few calls are made here directly, with the uAPI layouts from
//! `vfio-bindings` (the crate `vfio-ioctls` is built on): `VFIO_DEVICE_GET_INFO` (the crate
//! does not expose the reset flag), `VFIO_DEVICE_SET_IRQS` and `VFIO_DEVICE_RESET` (the crate
//! drops their OS error), region mmap and config-space `pread`/`pwrite` on the device fd (the
//! crate has no mmap and logs, rather than returns, region I/O errors), anonymous DMA memory
//! (memmap2), eventfds and `poll`.

#[cfg(test)]
pub(crate) mod mock;
mod os;

use std::io;
use std::path::Path;
use std::time::Duration;

use memmap2::MmapRaw;

pub(crate) use os::OsSys;

use crate::vfio::IommuInterface;

/// An open VFIO container (or, later, iommufd IOAS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ContainerId(pub u32);
/// An open VFIO device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct DeviceId(pub u32);
/// An eventfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EventId(pub u32);

/// `VFIO_DEVICE_GET_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceInfo {
    pub flags: u32,
    pub num_regions: u32,
    pub num_irqs: u32,
}

/// `VFIO_DEVICE_GET_REGION_INFO` (size 0 means the region does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegionInfo {
    pub flags: u32,
    pub size: u64,
    pub offset: u64,
}

/// `VFIO_DEVICE_GET_IRQ_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IrqInfo {
    pub flags: u32,
    pub count: u32,
}

/// Every OS operation the driver performs.
pub(crate) trait Sys: Send + Sync {
    /// The IOMMU group number of the device at `device_sysfs` (its `iommu_group` link).
    fn iommu_group(&self, device_sysfs: &Path) -> io::Result<u32>;
    /// Reads a small text file (sysfs attributes).
    fn read_text(&self, path: &Path) -> io::Result<String>;
    /// Whether a file exists (used to pick the IOMMU interface).
    fn path_exists(&self, path: &Path) -> bool;
    /// Opens an IOMMU address space: `/dev/vfio/vfio` (checking the API version and type1v2
    /// support) or `/dev/iommu` with a fresh IOAS.
    fn open_container(&self, interface: IommuInterface) -> io::Result<ContainerId>;
    /// Closes the container (after all its devices).
    fn close_container(&self, container: ContainerId);
    /// Container: opens the device's group, attaches it to the container (setting the IOMMU
    /// type on the first group) and gets the device fd. iommufd: opens the device's cdev,
    /// binds it to the iommufd and attaches it to the IOAS.
    fn open_device(&self, container: ContainerId, device_sysfs: &Path) -> io::Result<DeviceId>;
    /// Closes the device fd and detaches its group from the container.
    fn close_device(&self, device: DeviceId);
    fn device_info(&self, device: DeviceId) -> io::Result<DeviceInfo>;
    fn region_info(&self, device: DeviceId, index: u32) -> io::Result<RegionInfo>;
    fn irq_info(&self, device: DeviceId, index: u32) -> io::Result<IrqInfo>;
    /// Maps `len` bytes of the device fd at `offset` (a region's offset) read-write, shared.
    fn map_region(&self, device: DeviceId, offset: u64, len: usize) -> io::Result<MmapRaw>;
    fn read_region(&self, device: DeviceId, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    fn write_region(&self, device: DeviceId, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// `VFIO_DEVICE_RESET`.
    fn reset(&self, device: DeviceId) -> io::Result<()>;
    /// `VFIO_DEVICE_SET_IRQS` with `DATA_EVENTFD | ACTION_TRIGGER` for vectors 0..n.
    fn set_irq_eventfds(&self, device: DeviceId, index: u32, events: &[EventId]) -> io::Result<()>;
    /// `VFIO_DEVICE_SET_IRQS` with `DATA_NONE | ACTION_TRIGGER`, count 0: disables the index.
    fn disable_irqs(&self, device: DeviceId, index: u32) -> io::Result<()>;
    /// `VFIO_IOMMU_MAP_DMA` (read and write).
    ///
    /// # Safety
    ///
    /// `[host, host + len)` must be a live mapping that stays mapped, and is accessed only
    /// through raw-pointer atomic or volatile operations, until `dma_unmap` of the same range
    /// succeeded.
    unsafe fn dma_map(
        &self,
        container: ContainerId,
        iova: u64,
        len: usize,
        host: *mut u8,
    ) -> io::Result<()>;
    /// `VFIO_IOMMU_UNMAP_DMA` of exactly one earlier mapping.
    fn dma_unmap(&self, container: ContainerId, iova: u64, len: usize) -> io::Result<()>;
    /// Anonymous, zeroed, pre-faulted memory; 2 MiB hugepages when `hugepage`.
    fn map_anonymous(&self, len: usize, hugepage: bool) -> io::Result<MmapRaw>;
    /// A non-blocking eventfd.
    fn eventfd(&self) -> io::Result<EventId>;
    fn close_eventfd(&self, event: EventId);
    /// A duplicate descriptor of the eventfd, for a caller that polls it with others.
    fn eventfd_dup(&self, event: EventId) -> io::Result<std::os::fd::OwnedFd>;
    /// Waits until the eventfd is signalled or `timeout` passes; returns the count read
    /// (0 on timeout).
    fn wait_eventfd(&self, event: EventId, timeout: Duration) -> io::Result<u64>;
}
