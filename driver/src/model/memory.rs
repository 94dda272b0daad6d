//! DMA memory as the card model reaches it: the driver's own [`DmaMemory`] behind the
//! model's [`HostMemory`] trait, and the unmapping side of a model IOMMU window.

use std::sync::Arc;

use espo_model::HostMemory;

use super::Shared;
use crate::dma::{DmaMapper, DmaMemory};
use crate::error::DeviceError;

/// One mapped [`DmaMemory`] as the model's IOMMU sees it. It holds its own handle to the
/// memory ([`DmaMemory::share`]), so the memory outlives the window.
pub(super) struct ModelMemory(pub(super) DmaMemory);

impl HostMemory for ModelMemory {
    fn len(&self) -> usize {
        self.0.len_bytes()
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        // The model's IOMMU only calls inside the window it mapped, which is inside the
        // memory; should that ever fail, the read returns all ones, as an aborted PCIe read.
        if self.0.read_bytes(offset, buf).is_err() {
            buf.fill(0xFF);
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        // As in `read`: only called inside the memory; a refused write changes nothing.
        let _ = self.0.write_bytes(offset, data);
    }
}

/// Removes a window from the model's IOMMU and returns its IOVA range to the allocator.
pub(super) struct ModelMapper(pub(super) Arc<Shared>);

impl DmaMapper for ModelMapper {
    fn unmap(&self, iova: u64, _len_bytes: usize) -> Result<(), DeviceError> {
        self.0.unmap(iova)
    }
}
