//! The [`Device`] interface over the model.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use espo_fpga::regs::{BAR0_SIZE, ctrl};

use super::memory::{ModelMapper, ModelMemory};
use super::{ModelDevice, ModelError, Pacing, lock};
use crate::device::{Device, IrqWait};
use crate::dma::{DmaRegion, allocate_dma_memory};
use crate::error::DeviceError;

impl Device for ModelDevice {
    fn bar_len(&self, bar: u8) -> Option<u64> {
        (bar == 0).then_some(u64::from(BAR0_SIZE))
    }

    fn read32(&self, bar: u8, offset: u64) -> Result<u32, DeviceError> {
        let offset = self.check(bar, offset, 4)?;
        Ok(lock(&self.shared.model).bar0_read32(offset))
    }

    fn write32(&self, bar: u8, offset: u64, value: u32) -> Result<(), DeviceError> {
        let offset = self.check(bar, offset, 4)?;
        lock(&self.shared.model).bar0_write32(offset, value);
        self.shared.kick();
        Ok(())
    }

    fn read64(&self, bar: u8, offset: u64) -> Result<u64, DeviceError> {
        let offset = self.check(bar, offset, 8)?;
        Ok(lock(&self.shared.model).bar0_read64(offset))
    }

    fn write64(&self, bar: u8, offset: u64, value: u64) -> Result<(), DeviceError> {
        let offset = self.check(bar, offset, 8)?;
        lock(&self.shared.model).bar0_write64(offset, value);
        self.shared.kick();
        Ok(())
    }

    fn alloc_dma(&self, len_bytes: usize) -> Result<DmaRegion, DeviceError> {
        let shared = &self.shared;
        let memory = allocate_dma_memory(&shared.sys, len_bytes, false)
            .map_err(|source| ModelError::AllocDma { len_bytes, source })?;
        let len = memory.len_bytes();
        let iova = lock(&shared.iova)
            .allocate(len as u64, memory.page_bytes() as u64)
            .map_err(|_| ModelError::IovaExhausted { len_bytes: len })?;
        let window = Arc::new(ModelMemory(memory.share()));
        if let Err(source) = shared.with_model(|m| m.map(iova, len as u64, window)) {
            lock(&shared.iova).release(iova);
            return Err(ModelError::Map { iova, source }.into());
        }
        Ok(DmaRegion::new(
            memory,
            iova,
            Arc::new(ModelMapper(Arc::clone(shared))),
        ))
    }

    fn enable_irqs(&self, vectors: u32) -> Result<u32, DeviceError> {
        Ok(self.shared.irqs.enable(vectors))
    }

    fn wait_irq(&self, vector: u32, timeout: Duration) -> Result<IrqWait, DeviceError> {
        let count = match self.shared.options.pacing {
            Pacing::Inline => return self.shared.wait_inline(vector, timeout),
            Pacing::RealTime | Pacing::External => self.shared.irqs.wait(vector, timeout)?,
        };
        Ok(match count {
            0 => IrqWait::TimedOut,
            count => IrqWait::Fired { count },
        })
    }

    fn mask_irq(&self, vector: u32) -> Result<(), DeviceError> {
        self.shared.irqs.set_masked(vector, true)
    }

    fn unmask_irq(&self, vector: u32) -> Result<(), DeviceError> {
        self.shared.irqs.set_masked(vector, false)
    }

    /// The model has no function-level reset; the card's own full reset (CONTROL.RESET,
    /// datasheet §5.2) stands in for it.
    fn reset(&self) -> Result<(), DeviceError> {
        let reset = ctrl::control::RESET.mask() as u32;
        lock(&self.shared.model).bar0_write32(ctrl::CONTROL.addr(), reset);
        self.shared.kick();
        Ok(())
    }

    /// Recorded only: the model has no bus-master gate (see [`ModelHandle::bus_master`]).
    fn set_bus_master(&self, enable: bool) -> Result<(), DeviceError> {
        self.shared.bus_master.store(enable, Ordering::Release);
        Ok(())
    }

    fn now(&self) -> Duration {
        match self.shared.options.pacing {
            Pacing::Inline | Pacing::RealTime => self
                .shared
                .cycles_to_duration(self.shared.now_cycles.load(Ordering::Acquire)),
            Pacing::External => self.shared.origin.elapsed(),
        }
    }

    fn relax(&self) {
        match self.shared.options.pacing {
            Pacing::Inline => self.shared.step(),
            Pacing::RealTime | Pacing::External => std::hint::spin_loop(),
        }
    }
}
