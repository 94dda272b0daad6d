//! Errors of the VFIO backend: one variant per failing operation, the OS error as the source.

use std::io;

use thiserror::Error;

use crate::pci::PciAddress;

/// A VFIO operation that failed.
#[derive(Debug, Error)]
pub enum VfioError {
    /// The device's `iommu_group` link could not be read: no such device, or no IOMMU.
    #[error(
        "{address} has no IOMMU group (no such device, or the IOMMU is off; run `espo probe --pci {address}`)"
    )]
    IommuGroup {
        /// The device.
        address: PciAddress,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `/dev/vfio/vfio` could not be opened or does not offer the type1v2 IOMMU, or
    /// `/dev/iommu` could not be opened or refused an IOAS.
    #[error("cannot open the IOMMU through {interface:?} (/dev/vfio/vfio or /dev/iommu)")]
    OpenContainer {
        /// The interface tried.
        interface: super::IommuInterface,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The group or the device in it could not be opened (not bound to vfio-pci, group not
    /// viable, group busy, no permission), or its cdev could not be bound to the iommufd.
    #[error("cannot open {address} (IOMMU group {group})")]
    OpenDevice {
        /// The device.
        address: PciAddress,
        /// Its IOMMU group.
        group: u32,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `VFIO_DEVICE_GET_INFO` failed.
    #[error("cannot read the device's VFIO information")]
    DeviceInfo {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The VFIO device is not a PCI device.
    #[error("the VFIO device is not a PCI device (flags {flags:#x})")]
    NotPci {
        /// `vfio_device_info.flags`.
        flags: u32,
    },
    /// `VFIO_DEVICE_GET_REGION_INFO` failed.
    #[error("cannot read VFIO region {index}")]
    RegionInfo {
        /// Region index.
        index: u32,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A BAR could not be mmapped.
    #[error("cannot map BAR {bar}")]
    MapBar {
        /// BAR index.
        bar: u8,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Configuration space could not be read.
    #[error("cannot read configuration space at {offset:#x}")]
    ReadConfig {
        /// Offset in configuration space.
        offset: u64,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Configuration space could not be written.
    #[error("cannot write configuration space at {offset:#x}")]
    WriteConfig {
        /// Offset in configuration space.
        offset: u64,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `VFIO_DEVICE_GET_IRQ_INFO` failed.
    #[error("cannot read VFIO IRQ index {index}")]
    IrqInfo {
        /// IRQ index (INTx 0, MSI 1, MSI-X 2).
        index: u32,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The device has neither MSI-X nor MSI.
    #[error("the device offers no MSI-X or MSI vectors")]
    NoMessageInterrupts,
    /// Interrupts are already enabled.
    #[error("interrupts are already enabled")]
    IrqsAlreadyEnabled,
    /// An eventfd could not be created.
    #[error("cannot create an eventfd")]
    CreateEventFd {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `VFIO_DEVICE_SET_IRQS` refused the eventfds.
    #[error("cannot enable {count} vectors of IRQ index {index}")]
    EnableIrqs {
        /// IRQ index.
        index: u32,
        /// Vectors asked for.
        count: u32,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Waiting on a vector's eventfd failed.
    #[error("cannot wait for interrupt vector {vector}")]
    WaitIrq {
        /// Vector.
        vector: u32,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `VFIO_DEVICE_RESET` failed.
    #[error("device reset failed")]
    Reset {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// DMA memory could not be allocated (even with 4 KiB pages).
    #[error("cannot allocate {len_bytes} bytes of DMA memory")]
    AllocDma {
        /// Bytes asked for.
        len_bytes: usize,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// No free IOVA range of that size is left.
    #[error("no free IOVA range of {len_bytes:#x} bytes")]
    IovaExhausted {
        /// Bytes asked for.
        len_bytes: usize,
    },
    /// `VFIO_IOMMU_MAP_DMA` failed (overlap, memlock limit, too many mappings).
    #[error("cannot map {len_bytes:#x} bytes at IOVA {iova:#x} (check the memlock limit)")]
    MapDma {
        /// IOVA.
        iova: u64,
        /// Length.
        len_bytes: usize,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// `VFIO_IOMMU_UNMAP_DMA` failed; the memory was leaked, not freed.
    #[error("cannot unmap {len_bytes:#x} bytes at IOVA {iova:#x}")]
    UnmapDma {
        /// IOVA.
        iova: u64,
        /// Length.
        len_bytes: usize,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}
