//! Interrupt messages of the card model, collected per vector the way VFIO's eventfds
//! collect them: a counter per vector that a wait reads and clears, and a host-side mask
//! under which messages keep accumulating.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use espo_fpga::regs::irq::VECTORS;
use espo_model::InterruptSink;

use crate::error::DeviceError;

#[derive(Debug, Default)]
struct Vectors {
    /// Vectors the host enabled (messages to others are discarded, as with MSI-X off).
    enabled: u32,
    /// Messages not yet taken by a wait, per vector.
    pending: [u64; VECTORS as usize],
    /// Messages delivered in total, per vector.
    delivered: [u64; VECTORS as usize],
    /// Bit v: vector v is masked on the host side.
    masked: u32,
    /// Messages that arrived for a vector that was not enabled.
    discarded: u64,
}

/// The model's interrupt sink.
#[derive(Debug, Default)]
pub(super) struct VectorLatch {
    state: Mutex<Vectors>,
    fired: Condvar,
}

impl VectorLatch {
    fn lock(&self) -> MutexGuard<'_, Vectors> {
        // Every update is a few integer stores: a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn enable(&self, wanted: u32) -> u32 {
        let mut s = self.lock();
        s.enabled = wanted.clamp(1, VECTORS);
        s.enabled
    }

    fn check(s: &Vectors, vector: u32) -> Result<(), DeviceError> {
        if vector >= s.enabled {
            return Err(DeviceError::NoSuchVector {
                vector,
                enabled: s.enabled,
            });
        }
        if s.masked & (1 << vector) != 0 {
            return Err(DeviceError::VectorMasked { vector });
        }
        Ok(())
    }

    /// Takes the messages pending on `vector` (0 if none).
    pub(super) fn take(&self, vector: u32) -> Result<u64, DeviceError> {
        let mut s = self.lock();
        Self::check(&s, vector)?;
        Ok(s.pending.get_mut(vector as usize).map_or(0, std::mem::take))
    }

    /// Waits in real time for a message on `vector`; returns how many were taken.
    pub(super) fn wait(&self, vector: u32, timeout: Duration) -> Result<u64, DeviceError> {
        let s = self.lock();
        Self::check(&s, vector)?;
        let idx = vector as usize;
        let (mut s, _) = self
            .fired
            .wait_timeout_while(s, timeout, |s| s.pending.get(idx).is_some_and(|&n| n == 0))
            .unwrap_or_else(|p| p.into_inner());
        Ok(s.pending.get_mut(idx).map_or(0, std::mem::take))
    }

    pub(super) fn set_masked(&self, vector: u32, masked: bool) -> Result<(), DeviceError> {
        let mut s = self.lock();
        if vector >= s.enabled {
            return Err(DeviceError::NoSuchVector {
                vector,
                enabled: s.enabled,
            });
        }
        if masked {
            s.masked |= 1 << vector;
        } else {
            s.masked &= !(1 << vector);
        }
        Ok(())
    }

    /// Messages delivered on `vector` since the device was made.
    pub(super) fn delivered(&self, vector: u32) -> u64 {
        self.lock()
            .delivered
            .get(vector as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Messages discarded because their vector was not enabled.
    pub(super) fn discarded(&self) -> u64 {
        self.lock().discarded
    }
}

impl InterruptSink for VectorLatch {
    fn fire(&self, vector: u32) {
        let mut s = self.lock();
        if vector >= s.enabled {
            s.discarded += 1;
            return;
        }
        if let Some(n) = s.pending.get_mut(vector as usize) {
            *n += 1;
        }
        if let Some(n) = s.delivered.get_mut(vector as usize) {
            *n += 1;
        }
        self.fired.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_accumulate_per_vector_and_under_the_mask() {
        let latch = VectorLatch::default();
        latch.fire(1);
        assert_eq!(latch.discarded(), 1, "no vector enabled yet");
        assert_eq!(latch.enable(9), VECTORS);
        latch.fire(1);
        latch.fire(1);
        latch.fire(2);
        assert_eq!(latch.take(1).unwrap(), 2);
        assert_eq!(latch.take(1).unwrap(), 0);
        latch.set_masked(2, true).unwrap();
        latch.fire(2);
        assert!(matches!(
            latch.take(2),
            Err(DeviceError::VectorMasked { vector: 2 })
        ));
        latch.set_masked(2, false).unwrap();
        assert_eq!(latch.wait(2, Duration::ZERO).unwrap(), 2);
        assert_eq!(latch.delivered(2), 2);
        assert!(matches!(
            latch.take(7),
            Err(DeviceError::NoSuchVector { vector: 7, .. })
        ));
    }
}
