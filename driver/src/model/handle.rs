//! The model itself, for callers that drive or inspect the card: tests, `espo validate`,
//! the demo.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use espo_fpga::Counter;
use espo_model::{FaultKind, FaultTrigger, Link, Model, PerfReport};

use super::{Shared, lock};

/// The model behind a [`ModelDevice`]: fault injection, the port, performance counters and
/// simulated time, for callers that drive or inspect the card itself. Cheap to clone.
#[derive(Clone)]
pub struct ModelHandle(pub(super) Arc<Shared>);

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ModelHandle")
            .field(&self.0.now_cycles.load(Ordering::Relaxed))
            .finish()
    }
}

impl ModelHandle {
    /// Runs `f` on the model (under its lock) — anything the handle does not cover.
    pub fn with<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        self.0.with_model(f)
    }

    /// Schedules a fault (datasheet §10.4).
    pub fn inject(&self, kind: FaultKind, trigger: FaultTrigger) {
        self.with(|m| m.inject(kind, trigger));
    }

    /// Attaches the card's port to `link`.
    pub fn attach_link(&self, link: Box<dyn Link>) {
        self.with(|m| m.attach_link(link));
    }

    /// The model's performance report since the last [`reset_perf`](Self::reset_perf).
    pub fn perf(&self) -> PerfReport {
        self.with(|m| m.perf())
    }

    /// Starts a new performance measurement period.
    pub fn reset_perf(&self) {
        self.with(Model::reset_perf);
    }

    /// A STATS counter.
    pub fn counter(&self, counter: Counter) -> u64 {
        self.with(|m| m.counter(counter))
    }

    /// The model's clock, cycles.
    pub fn now_cycles(&self) -> u64 {
        self.0.now_cycles.load(Ordering::Acquire)
    }

    /// [`Pacing::Inline`]: while held, the driver's relax calls do not move the model on —
    /// only [`run_until_idle`](Self::run_until_idle) and the other explicit runs do. For
    /// benchmarks and tests that measure the host apart from the card. Release it before
    /// anything that waits for the card: admin commands, and the card's shutdown when it
    /// is dropped.
    pub fn hold(&self, held: bool) {
        self.0.held.store(held, Ordering::Relaxed);
    }

    /// Runs until nothing is scheduled; returns the cycle reached.
    pub fn run_until_idle(&self) -> u64 {
        self.with(Model::run_until_idle)
    }

    /// Runs everything due up to `cycle` and sets the clock there.
    pub fn run_until(&self, cycle: u64) {
        self.with(|m| m.run_until(cycle));
    }

    /// Runs for `cycles` more cycles.
    pub fn advance(&self, cycles: u64) {
        self.with(|m| m.advance(cycles));
    }

    /// Interrupt messages delivered to the host on `vector` so far.
    pub fn interrupts_delivered(&self, vector: u32) -> u64 {
        self.0.irqs.delivered(vector)
    }

    /// Interrupt messages discarded because the host had not enabled their vector.
    pub fn interrupts_discarded(&self) -> u64 {
        self.0.irqs.discarded()
    }

    /// Whether the driver left bus mastering enabled.
    pub fn bus_master(&self) -> bool {
        self.0.bus_master.load(Ordering::Acquire)
    }

    /// DMA regions currently mapped in the model's IOMMU.
    pub fn dma_mappings(&self) -> usize {
        lock(&self.0.iova).mappings()
    }
}
