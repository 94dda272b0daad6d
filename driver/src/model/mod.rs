//! The model backend: the [`Device`] interface over the cycle-level card model
//! (`espo-model`), in-process.
//!
//! - BAR0 accesses are the model's `bar0_read32/64` and `bar0_write32/64`.
//! - DMA memory is the driver's own [`DmaMemory`], exactly as with VFIO; each region is
//!   mapped into the model's IOMMU at an IOVA from the same bookkeeping VFIO uses
//!   ([`IovaSpace`]), so a card that reaches outside a mapped region takes a DMA fault.
//! - Interrupt messages arrive through the model's `InterruptSink` and are counted per
//!   vector, like VFIO's eventfds.
//! - Simulated time is moved on according to [`Pacing`]: by the backend itself while the
//!   driver polls or waits ([`Pacing::Inline`], deterministic, the default for tests), by a
//!   thread that keeps simulated time in step with the wall clock ([`Pacing::RealTime`], for
//!   a gateway), or only by whoever holds the [`ModelHandle`] ([`Pacing::External`], for
//!   benches that time the model separately).
//!
//! The card driver sees only [`Device`]. Tests, `espo validate` and the demo reach the model
//! itself — fault injection, the port's link, performance counters, running time — through
//! [`ModelHandle`].

mod device;
mod handle;
mod irq;
mod memory;
mod runner;

/// The model's own types that this backend's interface takes and returns (fault injection,
/// the port, timing parameters, performance), so that its users need no direct dependency
/// on `espo-model`.
pub use espo_model::{
    FaultKind, FaultTrigger, Frame, Link, MemLink, ModelParams, NullLink, PerfReport, Stage,
};
pub use handle::ModelHandle;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use espo_fpga::regs::BAR0_SIZE;
use espo_model::{MapError, Model};
use thiserror::Error;

use self::irq::VectorLatch;
use crate::device::IrqWait;
use crate::error::{AccessError, DeviceError};
use crate::iova::{DEFAULT_IOVA_WINDOWS, IovaSpace};
use crate::sys::OsSys;

/// Who moves the model's simulated time on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// The backend: [`Device::relax`] runs the model to its next event (and
    /// [`ModelOptions::relax_horizon_cycles`] beyond), or, when nothing is scheduled, by
    /// [`ModelOptions::idle_step_cycles`]; [`Device::wait_irq`] runs it until the vector fires
    /// or the timeout, measured in simulated time, passes. Deterministic.
    #[default]
    Inline,
    /// A thread owned by the device keeps simulated time in step with the wall clock (never
    /// ahead of it; behind it when the model is slower than real time). Waits are in real time.
    RealTime,
    /// Nobody but the holder of the [`ModelHandle`]: relaxing is a spin hint, and the
    /// device's clock, waits and timeouts are the host's real time, as for hardware (so that
    /// a driver waiting on a model nobody runs times out rather than waiting forever).
    External,
}

/// How to build a [`ModelDevice`].
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The card's timing parameters.
    pub params: ModelParams,
    /// Who moves simulated time on.
    pub pacing: Pacing,
    /// [`Pacing::Inline`]: how far past its next event the model runs on each relax, cycles.
    pub relax_horizon_cycles: u64,
    /// [`Pacing::Inline`]: how far an idle model's clock moves on each relax, cycles.
    pub idle_step_cycles: u64,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            params: ModelParams::default(),
            pacing: Pacing::Inline,
            relax_horizon_cycles: 1_000,
            idle_step_cycles: 2_500,
        }
    }
}

impl ModelOptions {
    /// Default options with these timing parameters.
    pub fn with_params(params: ModelParams) -> Self {
        Self {
            params,
            ..Self::default()
        }
    }
}

/// What the model backend reports when an operation fails.
#[derive(Debug, Error)]
pub enum ModelError {
    /// Host memory for DMA could not be allocated.
    #[error("allocating {len_bytes} bytes of DMA memory failed")]
    AllocDma {
        /// Bytes asked for.
        len_bytes: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No IOVA range of that size is free.
    #[error("no free IOVA range of {len_bytes} bytes")]
    IovaExhausted {
        /// Bytes asked for.
        len_bytes: usize,
    },
    /// The model's IOMMU refused a mapping.
    #[error("mapping IOVA {iova:#x} in the model's IOMMU failed")]
    Map {
        /// The IOVA of the window.
        iova: u64,
        /// The model's reason.
        #[source]
        source: MapError,
    },
    /// The model's IOMMU refused to remove a window.
    #[error("unmapping IOVA {iova:#x} from the model's IOMMU failed")]
    Unmap {
        /// The IOVA of the window.
        iova: u64,
        /// The model's reason.
        #[source]
        source: MapError,
    },
}

/// State shared by the device, its DMA regions, its handles and its time-keeping thread.
struct Shared {
    model: Mutex<Model>,
    irqs: VectorLatch,
    iova: Mutex<IovaSpace>,
    sys: OsSys,
    options: ModelOptions,
    /// The model's clock, cycles, published after every run so that `now` takes no lock.
    now_cycles: AtomicU64,
    bus_master: AtomicBool,
    /// Set by BAR writes, cleared by the time-keeping thread: work may be waiting.
    kicked: Mutex<bool>,
    kick: Condvar,
    /// When the device was made: the origin of its real-time clock.
    origin: std::time::Instant,
    /// [`Pacing::Inline`]: the driver's relax calls leave the model where it is
    /// ([`ModelHandle::hold`]).
    held: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The model and the IOVA table stay consistent across a panic in a caller's closure
    // (every model operation completes before control returns), so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn cycles_to_duration(&self, cycles: u64) -> Duration {
        let hz = u128::from(self.options.params.clock_hz.max(1));
        let ns = u128::from(cycles) * 1_000_000_000 / hz;
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    fn duration_to_cycles(&self, d: Duration) -> u64 {
        let hz = u128::from(self.options.params.clock_hz);
        u64::try_from(d.as_nanos() * hz / 1_000_000_000).unwrap_or(u64::MAX)
    }

    /// Runs `f` on the model and publishes its clock afterwards.
    fn with_model<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        let mut m = lock(&self.model);
        let r = f(&mut m);
        self.now_cycles.store(m.now_cycles(), Ordering::Release);
        r
    }

    fn kick(&self) {
        if self.options.pacing == Pacing::RealTime {
            *lock(&self.kicked) = true;
            self.kick.notify_one();
        }
    }

    fn unmap(&self, iova: u64) -> Result<(), DeviceError> {
        self.with_model(|m| m.unmap(iova))
            .map_err(|source| ModelError::Unmap { iova, source })?;
        lock(&self.iova).release(iova);
        Ok(())
    }

    /// One inline step: the next event and the horizon after it, or an idle step. The clock
    /// always moves on, so timeouts measured on it expire even if the card is stuck.
    fn step(&self) {
        if self.held.load(Ordering::Relaxed) {
            return;
        }
        let horizon = self.options.relax_horizon_cycles.max(1);
        let idle = self.options.idle_step_cycles.max(1);
        self.with_model(|m| {
            let now = m.now_cycles();
            let target = match m.next_event_cycle() {
                Some(next) => next.max(now).saturating_add(horizon),
                None => now.saturating_add(idle),
            };
            m.run_until(target);
        });
    }

    /// Runs simulated time until `vector` fires or `timeout` (simulated) has passed.
    fn wait_inline(&self, vector: u32, timeout: Duration) -> Result<IrqWait, DeviceError> {
        let deadline = self
            .now_cycles
            .load(Ordering::Acquire)
            .saturating_add(self.duration_to_cycles(timeout));
        loop {
            let count = self.irqs.take(vector)?;
            if count > 0 {
                return Ok(IrqWait::Fired { count });
            }
            let reached = self.with_model(|m| {
                let now = m.now_cycles();
                if now >= deadline {
                    return true;
                }
                // Everything due now first; then the next event, or the deadline.
                m.run_until(now);
                match m.next_event_cycle() {
                    Some(next) if next > now && next <= deadline => m.run_until(next),
                    _ => m.run_until(deadline),
                }
                false
            });
            if reached {
                return Ok(IrqWait::TimedOut);
            }
        }
    }
}

/// The card model as a [`Device`]. See the module documentation.
pub struct ModelDevice {
    shared: Arc<Shared>,
    runner: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl std::fmt::Debug for ModelDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelDevice")
            .field("pacing", &self.shared.options.pacing)
            .field("cycle", &self.shared.now_cycles.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ModelDevice {
    /// A powered-on card model with an unconnected port.
    pub fn new(options: ModelOptions) -> Self {
        let model = Model::new(options.params.clone());
        let shared = Arc::new(Shared {
            model: Mutex::new(model),
            irqs: VectorLatch::default(),
            iova: Mutex::new(IovaSpace::new(&DEFAULT_IOVA_WINDOWS)),
            sys: OsSys::default(),
            options,
            now_cycles: AtomicU64::new(0),
            bus_master: AtomicBool::new(false),
            kicked: Mutex::new(false),
            kick: Condvar::new(),
            origin: std::time::Instant::now(),
            held: AtomicBool::new(false),
        });
        let sink: Arc<dyn espo_model::InterruptSink> = Arc::new(SinkRef(Arc::downgrade(&shared)));
        lock(&shared.model).set_interrupt_sink(sink);
        let runner = (shared.options.pacing == Pacing::RealTime).then(|| runner::spawn(&shared));
        Self { shared, runner }
    }

    /// The model with default options and these timing parameters.
    pub fn with_params(params: ModelParams) -> Self {
        Self::new(ModelOptions::with_params(params))
    }

    /// A handle on the model itself, for tests, validation and the demo.
    pub fn handle(&self) -> ModelHandle {
        ModelHandle(Arc::clone(&self.shared))
    }

    fn check(&self, bar: u8, offset: u64, width: u64) -> Result<u32, DeviceError> {
        if bar != 0 {
            return Err(DeviceError::NoSuchBar { bar });
        }
        if !offset.is_multiple_of(width) {
            return Err(AccessError::Misaligned {
                offset,
                width_bytes: width,
            }
            .into());
        }
        match offset.checked_add(width) {
            Some(end) if end <= u64::from(BAR0_SIZE) => Ok(offset as u32),
            _ => Err(AccessError::OutOfBounds {
                offset,
                width_bytes: width,
                len_bytes: u64::from(BAR0_SIZE),
            }
            .into()),
        }
    }
}

impl Drop for ModelDevice {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.runner.take() {
            stop.store(true, Ordering::Release);
            self.shared.kick.notify_one();
            let _ = thread.join();
        }
    }
}

/// The interrupt sink the model holds: a weak reference, so that the model (inside the
/// shared state) does not keep the shared state alive.
struct SinkRef(std::sync::Weak<Shared>);

impl espo_model::InterruptSink for SinkRef {
    fn fire(&self, vector: u32) {
        if let Some(shared) = self.0.upgrade() {
            shared.irqs.fire(vector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use espo_fpga::regs::ident;

    #[test]
    fn bar_accesses_are_checked_and_reach_the_model() {
        let dev = ModelDevice::with_params(ModelParams::zero_latency());
        assert_eq!(dev.bar_len(0), Some(u64::from(BAR0_SIZE)));
        assert_eq!(dev.bar_len(1), None);
        assert_eq!(
            dev.read32(0, u64::from(ident::DEVICE_ID.addr())).unwrap(),
            ident::DEVICE_ID_VALUE
        );
        dev.write32(0, u64::from(ident::SCRATCH.addr()), 0x5a5a)
            .unwrap();
        assert_eq!(
            dev.read32(0, u64::from(ident::SCRATCH.addr())).unwrap(),
            0x5a5a
        );
        assert!(matches!(
            dev.read32(0, u64::from(BAR0_SIZE)),
            Err(DeviceError::Access(AccessError::OutOfBounds { .. }))
        ));
        assert!(matches!(
            dev.write64(0, 4, 0),
            Err(DeviceError::Access(AccessError::Misaligned { .. }))
        ));
        assert!(matches!(
            dev.read32(2, 0),
            Err(DeviceError::NoSuchBar { bar: 2 })
        ));
    }

    #[test]
    fn dma_regions_are_mapped_in_the_model_iommu_and_unmapped_on_drop() {
        let dev = ModelDevice::with_params(ModelParams::zero_latency());
        let handle = dev.handle();
        let a = dev.alloc_dma(100).unwrap();
        let b = dev.alloc_dma(8192).unwrap();
        assert_eq!(a.len_bytes(), 4096);
        assert!(b.iova() >= a.iova() + 4096, "no overlap");
        assert_eq!(handle.dma_mappings(), 2);
        drop(a);
        assert_eq!(handle.dma_mappings(), 1);
        drop(b);
        assert_eq!(handle.dma_mappings(), 0);
    }

    #[test]
    fn inline_pacing_moves_the_clock_on_every_relax() {
        let dev = ModelDevice::with_params(ModelParams::default());
        let t0 = dev.now();
        dev.relax();
        let t1 = dev.now();
        assert_eq!(
            t1 - t0,
            Duration::from_nanos(2_500 * 4),
            "an idle model moves by the idle step (2500 cycles at 250 MHz)"
        );
        dev.enable_irqs(2).unwrap();
        assert_eq!(
            dev.wait_irq(1, Duration::from_micros(20)).unwrap(),
            IrqWait::TimedOut
        );
        assert_eq!(dev.now() - t1, Duration::from_micros(20));
        dev.mask_irq(1).unwrap();
        assert!(matches!(
            dev.wait_irq(1, Duration::ZERO),
            Err(DeviceError::VectorMasked { vector: 1 })
        ));
    }

    #[test]
    fn external_pacing_leaves_simulated_time_to_the_handle() {
        let dev = ModelDevice::new(ModelOptions {
            pacing: Pacing::External,
            ..ModelOptions::default()
        });
        let handle = dev.handle();
        dev.relax();
        assert_eq!(handle.now_cycles(), 0, "relaxing runs nothing");
        handle.advance(250);
        assert_eq!(handle.now_cycles(), 250);
    }
}
