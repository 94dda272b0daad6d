//! BAR0 access: discovery of the self-describing register blocks (datasheet §3, §5.1) and
//! register reads and writes that stop for good once the card is seen to be gone (§10.4).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use espo_fpga::Register;
use espo_fpga::reg::{BLOCK_NEXT_OFFSET, BLOCK_TYPE_OFFSET, BLOCK_VERSION_OFFSET};
use espo_fpga::regs::{admin, cap, ctrl, event, ident, irq, queue, queues, stats};

use super::error::CardError;
use crate::device::Device;
use crate::error::DeviceError;

/// The BAR every ESPO-1 register lives in.
const BAR: u8 = 0;
/// Most blocks a chain may have before it is taken for a loop.
const MAX_BLOCKS: usize = 64;

/// BAR0 of one card. After an all-ones read of `STATUS` (or of any register, confirmed by
/// `STATUS`), or an access the device interface reports as reaching a device that is gone
/// ([`DeviceError::device_gone`]: a vfio-user server that died), the card is taken as
/// removed: from then on no access reaches the device and every call returns
/// [`CardError::Removed`].
pub(crate) struct Bar0 {
    device: Arc<dyn Device>,
    removed: AtomicBool,
    /// BAR0 offset of `STATUS`, the register that can never read all ones on a present card
    /// (bits 3–31 are undefined and read 0).
    status_at: u64,
}

impl Bar0 {
    pub(crate) fn new(device: Arc<dyn Device>) -> Self {
        Self {
            device,
            removed: AtomicBool::new(false),
            status_at: u64::from(ctrl::STATUS.addr()),
        }
    }

    pub(crate) fn device(&self) -> &dyn Device {
        self.device.as_ref()
    }

    /// Whether the card was seen to be gone.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    fn gone(&self) -> CardError {
        self.removed.store(true, Ordering::Relaxed);
        CardError::Removed
    }

    /// A device error as the card driver sees it: a device that is gone is a removed card.
    pub(crate) fn checked<T>(&self, r: Result<T, DeviceError>) -> Result<T, CardError> {
        match r {
            Err(e) if e.device_gone() => Err(self.gone()),
            r => Ok(r?),
        }
    }

    /// An all-ones value: the card is gone if `STATUS` reads all ones too.
    fn confirm(&self, offset: u64) -> Result<(), CardError> {
        if offset == self.status_at
            || self.checked(self.device.read32(BAR, self.status_at))? == u32::MAX
        {
            return Err(self.gone());
        }
        Ok(())
    }

    pub(crate) fn read32(&self, offset: u64) -> Result<u32, CardError> {
        if self.is_removed() {
            return Err(CardError::Removed);
        }
        let v = self.checked(self.device.read32(BAR, offset))?;
        if v == u32::MAX {
            self.confirm(offset)?;
        }
        Ok(v)
    }

    pub(crate) fn read64(&self, offset: u64) -> Result<u64, CardError> {
        if self.is_removed() {
            return Err(CardError::Removed);
        }
        let v = self.checked(self.device.read64(BAR, offset))?;
        if v == u64::MAX {
            self.confirm(offset)?;
        }
        Ok(v)
    }

    pub(crate) fn write32(&self, offset: u64, value: u32) -> Result<(), CardError> {
        if self.is_removed() {
            return Err(CardError::Removed);
        }
        self.checked(self.device.write32(BAR, offset, value))
    }

    pub(crate) fn write64(&self, offset: u64, value: u64) -> Result<(), CardError> {
        if self.is_removed() {
            return Err(CardError::Removed);
        }
        self.checked(self.device.write64(BAR, offset, value))
    }
}

/// Where each register block was found (BAR0 offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blocks {
    pub ident: u64,
    pub cap: u64,
    pub ctrl: u64,
    pub irq: u64,
    pub admin: u64,
    pub event: u64,
    pub stats: u64,
    pub queues: u64,
    /// Queue pair 0, the stride between pairs and how many there are (QUEUES block).
    pub queue0: u64,
    pub queue_stride: u64,
    pub queue_count: u32,
}

impl Blocks {
    /// BAR0 offset of a register of a single block found at `base`.
    pub(crate) fn at(base: u64, reg: &Register) -> u64 {
        base + u64::from(reg.offset)
    }

    /// BAR0 offset of a register of queue pair `q`.
    pub(crate) fn queue_reg(&self, q: u16, reg: &Register) -> u64 {
        self.queue0 + u64::from(q) * self.queue_stride + u64::from(reg.offset)
    }

    pub(crate) fn ctrl(&self, reg: &Register) -> u64 {
        Self::at(self.ctrl, reg)
    }
    pub(crate) fn cap(&self, reg: &Register) -> u64 {
        Self::at(self.cap, reg)
    }
    pub(crate) fn irq(&self, reg: &Register) -> u64 {
        Self::at(self.irq, reg)
    }
    pub(crate) fn admin(&self, reg: &Register) -> u64 {
        Self::at(self.admin, reg)
    }
    pub(crate) fn event(&self, reg: &Register) -> u64 {
        Self::at(self.event, reg)
    }
    pub(crate) fn ident(&self, reg: &Register) -> u64 {
        Self::at(self.ident, reg)
    }

    /// BAR0 offset of STATS counter `i`.
    pub(crate) fn counter(&self, i: u8) -> u64 {
        self.stats + u64::from(stats::COUNTERS_OFFSET) + 8 * u64::from(i)
    }
}

/// The blocks this driver knows: (type, name, where to record the base).
const KNOWN: [(u32, &str); 9] = [
    (ident::BLOCK_TYPE, "IDENT"),
    (cap::BLOCK_TYPE, "CAP"),
    (ctrl::BLOCK_TYPE, "CTRL"),
    (irq::BLOCK_TYPE, "IRQ"),
    (admin::BLOCK_TYPE, "ADMIN"),
    (event::BLOCK_TYPE, "EVENT"),
    (stats::BLOCK_TYPE, "STATS"),
    (queues::BLOCK_TYPE, "QUEUES"),
    (queue::BLOCK_TYPE, "QUEUE"),
];

fn check_version(bar: &Bar0, base: u64, name: &'static str) -> Result<(), CardError> {
    let version = bar.read32(base + u64::from(BLOCK_VERSION_OFFSET))?;
    if version >> 16 != 1 {
        return Err(CardError::UnknownVersion { name, version });
    }
    Ok(())
}

/// Datasheet §5.1: checks `DEVICE_ID`, walks the block chain from offset 0, refuses unknown
/// block types and major versions, and finds every block the driver needs.
pub(crate) fn discover(bar: &Bar0, bar_len: u64) -> Result<Blocks, CardError> {
    let device_id = bar.read32(u64::from(ident::DEVICE_ID.addr()))?;
    if device_id != ident::DEVICE_ID_VALUE {
        return Err(CardError::NotEspo { device_id });
    }
    let mut found: [Option<u64>; KNOWN.len()] = [None; KNOWN.len()];
    let mut at = 0u64;
    for _ in 0..MAX_BLOCKS {
        if !at.is_multiple_of(4) || at.saturating_add(0x10) > bar_len {
            return Err(CardError::BlockChain("a NEXT pointer leaves BAR0"));
        }
        let block_type = bar.read32(at + u64::from(BLOCK_TYPE_OFFSET))?;
        let Some(i) = KNOWN.iter().position(|&(t, _)| t == block_type) else {
            // A block this driver does not know belongs to a card it was not written for.
            return Err(CardError::UnknownBlock {
                offset: at,
                block_type,
            });
        };
        let (_, name) = KNOWN[i];
        check_version(bar, at, name)?;
        if found[i].replace(at).is_some() {
            return Err(CardError::BlockChain("a block type appears twice"));
        }
        let next = u64::from(bar.read32(at + u64::from(BLOCK_NEXT_OFFSET))?);
        if next == 0 {
            return finish(bar, bar_len, &found);
        }
        if next <= at {
            return Err(CardError::BlockChain("NEXT points backwards"));
        }
        at = next;
    }
    Err(CardError::BlockChain("too many blocks"))
}

fn finish(bar: &Bar0, bar_len: u64, found: &[Option<u64>]) -> Result<Blocks, CardError> {
    let get = |i: usize| {
        found
            .get(i)
            .copied()
            .flatten()
            .ok_or(CardError::BlockChain("a required block is missing"))
    };
    let mut b = Blocks {
        ident: get(0)?,
        cap: get(1)?,
        ctrl: get(2)?,
        irq: get(3)?,
        admin: get(4)?,
        event: get(5)?,
        stats: get(6)?,
        queues: get(7)?,
        queue0: 0,
        queue_stride: 0,
        queue_count: 0,
    };
    let chained_queue0 = get(8)?;
    b.queue0 = u64::from(bar.read32(Blocks::at(b.queues, &queues::Q_BASE))?);
    b.queue_stride = u64::from(bar.read32(Blocks::at(b.queues, &queues::Q_STRIDE))?);
    b.queue_count = bar.read32(Blocks::at(b.queues, &queues::Q_COUNT))?;
    let block_size = u64::from(queue::BLOCK.size);
    let end = b
        .queue0
        .checked_add(u64::from(b.queue_count).saturating_mul(b.queue_stride));
    if b.queue0 != chained_queue0
        || b.queue_count == 0
        || b.queue_stride < block_size
        || end.is_none_or(|e| e > bar_len)
    {
        return Err(CardError::BlockChain(
            "the QUEUES directory is inconsistent",
        ));
    }
    // Only queue pair 0 is in the chain; every other instance must describe itself too.
    for q in 1..b.queue_count {
        let base = b.queue0 + u64::from(q) * b.queue_stride;
        if bar.read32(base + u64::from(BLOCK_TYPE_OFFSET))? != queue::BLOCK_TYPE {
            return Err(CardError::BlockChain("a queue-pair block is missing"));
        }
        check_version(bar, base, "QUEUE")?;
    }
    Ok(b)
}
