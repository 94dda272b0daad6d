//! MSI-X style interrupt vectors (datasheet §9). Vector 0: admin completions, events and
//! errors. Vector 1 + q: queue pair q.

use super::{header, reg32};
use crate::reg::{Access, Block, Register};

pub const BASE: u32 = 0x0300;
pub const BLOCK_TYPE: u32 = 0x0000_E504;
pub const VECTORS: u32 = 5;
const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::admin::BASE);
pub const VECTOR_COUNT: Register = reg32(
    BASE,
    0,
    0x10,
    "VECTOR_COUNT",
    Access::Ro,
    VECTORS as u64,
    &[],
    "Interrupt vectors.",
);
pub const INT_MASK: Register = reg32(
    BASE,
    0,
    0x14,
    "INT_MASK",
    Access::Rw,
    (1 << VECTORS) - 1,
    &[],
    "Bit v masks vector v. A masked vector sets its INT_PENDING bit instead of firing; unmasking fires it.",
);
pub const INT_PENDING: Register = reg32(
    BASE,
    0,
    0x18,
    "INT_PENDING",
    Access::W1c,
    0,
    &[],
    "Bit v: vector v is pending (masked when due).",
);
pub const COAL_PACKETS: Register = reg32(
    BASE,
    0,
    0x1C,
    "COAL_PACKETS",
    Access::Rw,
    1,
    &[],
    "Queue vectors fire after this many unsignalled completions (0 and 1: every completion).",
);
pub const COAL_CYCLES: Register = reg32(
    BASE,
    0,
    0x20,
    "COAL_CYCLES",
    Access::Rw,
    0,
    &[],
    "Queue vectors fire at most this many cycles after their first unsignalled completion (0: no timer).",
);
pub const BLOCK: Block = Block {
    name: "IRQ",
    block_type: BLOCK_TYPE,
    version: super::VERSION_1_0,
    base: BASE,
    size: 0x24,
    instances: 1,
    stride: 0,
    regs: &[
        HDR[0],
        HDR[1],
        HDR[2],
        VECTOR_COUNT,
        INT_MASK,
        INT_PENDING,
        COAL_PACKETS,
        COAL_CYCLES,
    ],
    doc: "Interrupt vectors: mask, pending, coalescing.",
};
