//! A PCIe function opened through VFIO, and the device interface over it.

use std::sync::RwLock;
use std::time::Duration;

use vfio_bindings::bindings::vfio::VFIO_DEVICE_FLAGS_RESET;

use super::irq::Interrupts;
use super::{IrqKind, Region, VfioContainer, VfioError, VfioOptions};
use crate::device::{Device, IrqWait};
use crate::dma::DmaRegion;
use crate::error::DeviceError;
use crate::mmio::Mmio;
use crate::pci::{COMMAND_BUS_MASTER, CONFIG_COMMAND, PciAddress};
use crate::sys::{DeviceId, DeviceInfo, Sys};

/// A PCIe function opened through VFIO.
pub struct VfioDevice {
    pub(super) container: VfioContainer,
    pub(super) id: DeviceId,
    pub(super) address: PciAddress,
    pub(super) group: u32,
    pub(super) info: DeviceInfo,
    pub(super) regions: Vec<Region>,
    pub(super) config_offset: u64,
    pub(super) bars: [Option<Mmio>; 6],
    pub(super) irqs: RwLock<Option<Interrupts>>,
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

    fn irq_wake_fd(&self, vector: u32) -> Option<std::os::fd::OwnedFd> {
        let guard = self.irqs.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref()?.wake_fd(vector)
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
