//! Message-signalled interrupts through eventfds.
//!
//! MSI-X is used when the device has it, MSI otherwise (QEMU's `edu` has only MSI). Each
//! vector gets a non-blocking eventfd that the kernel signals (`VFIO_DEVICE_SET_IRQS`,
//! `DATA_EVENTFD | ACTION_TRIGGER`); waiting is `poll` with a timeout, then a read that
//! returns how many interrupts were coalesced.
//!
//! vfio-pci implements `ACTION_MASK`/`ACTION_UNMASK` for INTx only, so MSI/MSI-X vectors are
//! masked here, at the eventfd: a masked vector's interrupts accumulate in its counter (like
//! the PCI pending bit) and the first wait after unmasking returns them. To stop a device from
//! raising them at all, mask at the source (the card's interrupt-enable register).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vfio_bindings::bindings::vfio::{VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX};

use super::VfioError;
use crate::device::IrqWait;
use crate::error::DeviceError;
use crate::sys::{DeviceId, EventId, Sys};

/// Which message-signalled interrupt mechanism is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqKind {
    /// MSI-X.
    MsiX,
    /// Plain MSI.
    Msi,
}

struct Vector {
    event: EventId,
    masked: AtomicBool,
}

/// The enabled vectors of one device.
pub(crate) struct Interrupts {
    sys: Arc<dyn Sys>,
    device: DeviceId,
    kind: IrqKind,
    vectors: Vec<Vector>,
}

impl Interrupts {
    /// Enables up to `wanted` vectors (at least one) of MSI-X, or of MSI without MSI-X.
    pub fn enable(sys: Arc<dyn Sys>, device: DeviceId, wanted: u32) -> Result<Self, VfioError> {
        let count_of = |index: u32| match sys.irq_info(device, index) {
            Ok(info) => Ok(info.count),
            // An index the device does not have reads as zero vectors.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(0),
            Err(source) => Err(VfioError::IrqInfo { index, source }),
        };
        let (kind, index, available) = match count_of(VFIO_PCI_MSIX_IRQ_INDEX)? {
            0 => (
                IrqKind::Msi,
                VFIO_PCI_MSI_IRQ_INDEX,
                count_of(VFIO_PCI_MSI_IRQ_INDEX)?,
            ),
            n => (IrqKind::MsiX, VFIO_PCI_MSIX_IRQ_INDEX, n),
        };
        if available == 0 {
            return Err(VfioError::NoMessageInterrupts);
        }
        let count = wanted.clamp(1, available);
        let mut irqs = Self {
            sys: sys.clone(),
            device,
            kind,
            vectors: Vec::new(),
        };
        for _ in 0..count {
            // On an early return, `irqs` drops and closes the eventfds made so far.
            let event = sys
                .eventfd()
                .map_err(|source| VfioError::CreateEventFd { source })?;
            irqs.vectors.push(Vector {
                event,
                masked: AtomicBool::new(false),
            });
        }
        let events: Vec<EventId> = irqs.vectors.iter().map(|v| v.event).collect();
        sys.set_irq_eventfds(device, index, &events)
            .map_err(|source| VfioError::EnableIrqs {
                index,
                count,
                source,
            })?;
        Ok(irqs)
    }

    pub fn kind(&self) -> IrqKind {
        self.kind
    }

    pub fn count(&self) -> u32 {
        self.vectors.len() as u32
    }

    fn vector(&self, vector: u32) -> Result<&Vector, DeviceError> {
        self.vectors
            .get(vector as usize)
            .ok_or(DeviceError::NoSuchVector {
                vector,
                enabled: self.count(),
            })
    }

    pub fn wait(&self, vector: u32, timeout: Duration) -> Result<IrqWait, DeviceError> {
        let v = self.vector(vector)?;
        if v.masked.load(Ordering::Acquire) {
            return Err(DeviceError::VectorMasked { vector });
        }
        match self.sys.wait_eventfd(v.event, timeout) {
            Ok(0) => Ok(IrqWait::TimedOut),
            Ok(count) => Ok(IrqWait::Fired { count }),
            Err(source) => Err(VfioError::WaitIrq { vector, source }.into()),
        }
    }

    /// A duplicate of `vector`'s eventfd, where the OS layer has one.
    pub fn wake_fd(&self, vector: u32) -> Option<std::os::fd::OwnedFd> {
        let v = self.vectors.get(vector as usize)?;
        self.sys.eventfd_dup(v.event).ok()
    }

    pub fn set_masked(&self, vector: u32, masked: bool) -> Result<(), DeviceError> {
        self.vector(vector)?.masked.store(masked, Ordering::Release);
        Ok(())
    }

    fn index(&self) -> u32 {
        match self.kind {
            IrqKind::MsiX => VFIO_PCI_MSIX_IRQ_INDEX,
            IrqKind::Msi => VFIO_PCI_MSI_IRQ_INDEX,
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        // Detach the eventfds from the device before closing them. A failure here leaves the
        // kernel holding its own references to the eventfds, which is harmless.
        let _ = self.sys.disable_irqs(self.device, self.index());
        for v in &self.vectors {
            self.sys.close_eventfd(v.event);
        }
    }
}
