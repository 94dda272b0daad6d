//! The narrow interface the card driver sits on, implemented by each backend (VFIO; the card
//! model in `crate::model`).
//!
//! Registers are reached by BAR and offset through bounds-checked accessors; DMA memory comes
//! back as a [`DmaRegion`] that is already mapped at an IOVA and unmaps itself on drop;
//! interrupts are vectors that are waited on with a timeout. Nothing above this trait needs
//! `unsafe`.
//!
//! Time: a driver measures its timeouts on the device's clock ([`Device::now`]) and calls
//! [`Device::relax`] when it polled host memory and found nothing new. On hardware the clock
//! is the host's monotonic clock and relaxing is a spin-loop hint; a simulated device
//! answers with its simulated time and uses the call to move that time on, so the same
//! driver code runs deterministically against the card model.

use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::dma::DmaRegion;
use crate::error::DeviceError;

/// The outcome of waiting for an interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqWait {
    /// The vector fired `count` times since the last wait (at least once).
    Fired {
        /// Interrupts coalesced into this wake-up.
        count: u64,
    },
    /// The timeout passed with no interrupt.
    TimedOut,
}

/// What the card driver needs from a PCIe function.
pub trait Device: Send + Sync {
    /// Length of a memory BAR, or `None` if the BAR is absent or not mapped.
    fn bar_len(&self, bar: u8) -> Option<u64>;
    /// Reads the 32-bit register at `offset` of `bar`.
    fn read32(&self, bar: u8, offset: u64) -> Result<u32, DeviceError>;
    /// Writes the 32-bit register at `offset` of `bar`.
    fn write32(&self, bar: u8, offset: u64, value: u32) -> Result<(), DeviceError>;
    /// Reads the 64-bit register at `offset` of `bar` (one 8-byte access).
    fn read64(&self, bar: u8, offset: u64) -> Result<u64, DeviceError>;
    /// Writes the 64-bit register at `offset` of `bar` (one 8-byte access).
    fn write64(&self, bar: u8, offset: u64, value: u64) -> Result<(), DeviceError>;

    /// Allocates at least `len_bytes` of DMA memory and maps it for the device.
    fn alloc_dma(&self, len_bytes: usize) -> Result<DmaRegion, DeviceError>;

    /// Enables up to `vectors` interrupt vectors; returns how many were enabled. MSI and MSI-X
    /// messages are memory writes by the device: they arrive only with bus mastering enabled.
    fn enable_irqs(&self, vectors: u32) -> Result<u32, DeviceError>;
    /// Waits up to `timeout` for `vector` (zero: just check).
    fn wait_irq(&self, vector: u32, timeout: Duration) -> Result<IrqWait, DeviceError>;
    /// Masks `vector`: its interrupts stay pending until it is unmasked.
    fn mask_irq(&self, vector: u32) -> Result<(), DeviceError>;
    /// Unmasks `vector`; a pending interrupt is returned by the next wait.
    fn unmask_irq(&self, vector: u32) -> Result<(), DeviceError>;
    /// A descriptor that is readable while `vector` has fired (a duplicate of its eventfd),
    /// for a caller that waits on it together with other descriptors; [`wait_irq`] takes
    /// the interrupts it signals. `None` where interrupts have no descriptor (the in-process
    /// model) or `vector` is not enabled.
    ///
    /// [`wait_irq`]: Device::wait_irq
    fn irq_wake_fd(&self, vector: u32) -> Option<OwnedFd> {
        let _ = vector;
        None
    }

    /// Resets the function (FLR or whatever reset the platform offers for it).
    fn reset(&self) -> Result<(), DeviceError>;
    /// Enables or disables bus mastering (the device's ability to DMA).
    fn set_bus_master(&self, enable: bool) -> Result<(), DeviceError>;

    /// Time on the device's clock since an arbitrary, fixed origin: what driver timeouts are
    /// measured in. The default is the host's monotonic clock.
    fn now(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }

    /// Called by a driver that polled host memory and found no new work. The default is a
    /// spin-loop hint; a simulated device advances its clock.
    fn relax(&self) {
        std::hint::spin_loop();
    }
}

/// The interface stays object-safe: backends can be chosen at run time.
const _: Option<&dyn Device> = None;
