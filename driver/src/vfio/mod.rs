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

mod container;
mod device;
mod error;
mod irq;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::PathBuf;

use vfio_bindings::bindings::vfio::{
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

pub use container::VfioContainer;
pub use device::VfioDevice;
pub use error::VfioError;
pub use irq::IrqKind;

use crate::iova::DEFAULT_IOVA_WINDOWS;
use crate::sys::RegionInfo;

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
