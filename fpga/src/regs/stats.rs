//! Statistics block: 64-bit read-only counters indexed by `Counter` (datasheet §12).

use super::{header, reg32, reg64};
use crate::codes::Counter;
use crate::reg::{Access, Block, Register};

pub const BASE: u32 = 0x0600;
pub const BLOCK_TYPE: u32 = 0x0000_E507;
/// BAR0 offset of counter 0; counter i is at `COUNTERS_BASE + 8 * i`.
pub const COUNTERS_OFFSET: u32 = 0x40;
const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::queues::BASE);
pub const STAT_COUNT: Register = reg32(
    BASE,
    0,
    0x10,
    "STAT_COUNT",
    Access::Ro,
    Counter::TABLE.len() as u64,
    &[],
    "Number of counters.",
);
pub const COUNTER0: Register = reg64(
    BASE,
    0,
    COUNTERS_OFFSET,
    "COUNTER0",
    Access::Ro,
    0,
    "First of STAT_COUNT 64-bit counters; counter i (Counter code) at 0x40 + 8 * i. Cleared by reset only.",
);
pub const BLOCK: Block = Block {
    name: "STATS",
    block_type: BLOCK_TYPE,
    version: super::VERSION_1_0,
    base: BASE,
    size: 0x200,
    instances: 1,
    stride: 0,
    regs: &[HDR[0], HDR[1], HDR[2], STAT_COUNT, COUNTER0],
    doc: "Frame, byte and drop-reason counters.",
};

/// BAR0 offset of a counter.
pub const fn counter_addr(counter: Counter) -> u32 {
    BASE + COUNTERS_OFFSET + 8 * counter.value() as u32
}

const _: () = assert!(
    COUNTERS_OFFSET + 8 * Counter::TABLE.len() as u32 <= 0x200,
    "counters overflow the STATS block"
);
