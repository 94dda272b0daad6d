//! A bus between the driver and the model that a test can tamper with: override register
//! reads, swallow register writes, and count every BAR access.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use espo_driver::error::DeviceError;
use espo_driver::model::ModelDevice;
use espo_driver::{Device, DmaRegion, IrqWait};

/// What the test changes on the bus.
#[derive(Debug, Default)]
pub struct Tamper {
    /// BAR0 offsets whose reads return the given value instead.
    pub reads: Vec<(u64, u32)>,
    /// BAR0 offsets whose writes never reach the card.
    pub swallow_writes: Vec<u64>,
}

/// The test's side of the bus.
#[derive(Debug, Default)]
pub struct BusControl {
    pub tamper: Mutex<Tamper>,
    /// Register reads and writes that reached the bus.
    pub accesses: AtomicU64,
    /// Register reads that reached the bus.
    pub reads: AtomicU64,
}

impl BusControl {
    pub fn accesses(&self) -> u64 {
        self.accesses.load(Ordering::SeqCst)
    }
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }
    pub fn override_read(&self, offset: u64, value: u32) {
        self.tamper.lock().unwrap().reads.push((offset, value));
    }
    pub fn swallow_writes(&self, offset: u64) {
        self.tamper.lock().unwrap().swallow_writes.push(offset);
    }
    pub fn clear(&self) {
        *self.tamper.lock().unwrap() = Tamper::default();
    }
}

/// A [`Device`] that forwards to a model through a [`BusControl`].
pub struct TestBus {
    inner: ModelDevice,
    control: Arc<BusControl>,
}

impl TestBus {
    pub fn new(inner: ModelDevice) -> (Self, Arc<BusControl>) {
        let control = Arc::new(BusControl::default());
        (
            Self {
                inner,
                control: control.clone(),
            },
            control,
        )
    }

    fn read_override(&self, offset: u64) -> Option<u32> {
        let t = self.control.tamper.lock().unwrap();
        t.reads.iter().find(|(o, _)| *o == offset).map(|&(_, v)| v)
    }

    fn swallowed(&self, offset: u64) -> bool {
        let t = self.control.tamper.lock().unwrap();
        t.swallow_writes.contains(&offset)
    }

    fn count(&self) {
        self.control.accesses.fetch_add(1, Ordering::SeqCst);
    }
}

impl Device for TestBus {
    fn bar_len(&self, bar: u8) -> Option<u64> {
        self.inner.bar_len(bar)
    }
    fn read32(&self, bar: u8, offset: u64) -> Result<u32, DeviceError> {
        self.count();
        self.control.reads.fetch_add(1, Ordering::SeqCst);
        match self.read_override(offset) {
            Some(v) => Ok(v),
            None => self.inner.read32(bar, offset),
        }
    }
    fn write32(&self, bar: u8, offset: u64, value: u32) -> Result<(), DeviceError> {
        self.count();
        if self.swallowed(offset) {
            return Ok(());
        }
        self.inner.write32(bar, offset, value)
    }
    fn read64(&self, bar: u8, offset: u64) -> Result<u64, DeviceError> {
        self.count();
        self.control.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read64(bar, offset)
    }
    fn write64(&self, bar: u8, offset: u64, value: u64) -> Result<(), DeviceError> {
        self.count();
        self.inner.write64(bar, offset, value)
    }
    fn alloc_dma(&self, len_bytes: usize) -> Result<DmaRegion, DeviceError> {
        self.inner.alloc_dma(len_bytes)
    }
    fn enable_irqs(&self, vectors: u32) -> Result<u32, DeviceError> {
        self.inner.enable_irqs(vectors)
    }
    fn wait_irq(&self, vector: u32, timeout: Duration) -> Result<IrqWait, DeviceError> {
        self.inner.wait_irq(vector, timeout)
    }
    fn mask_irq(&self, vector: u32) -> Result<(), DeviceError> {
        self.inner.mask_irq(vector)
    }
    fn unmask_irq(&self, vector: u32) -> Result<(), DeviceError> {
        self.inner.unmask_irq(vector)
    }
    fn reset(&self) -> Result<(), DeviceError> {
        self.inner.reset()
    }
    fn set_bus_master(&self, enable: bool) -> Result<(), DeviceError> {
        self.inner.set_bus_master(enable)
    }
    fn now(&self) -> Duration {
        self.inner.now()
    }
    fn relax(&self) {
        self.inner.relax()
    }
}
