//! Event queue: card-produced entries with a phase bit (datasheet §10, §11).

use super::{header, reg32, reg64};
use crate::reg::{Access, Block, Register};

pub const BASE: u32 = 0x0500;
pub const BLOCK_TYPE: u32 = 0x0000_E506;
const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::stats::BASE);
pub const EQ_BASE: Register = reg64(
    BASE,
    0,
    0x10,
    "EQ_BASE",
    Access::Rw,
    0,
    "Event ring IOVA (64-byte aligned).",
);
pub const EQ_LOG2: Register = reg32(
    BASE,
    0,
    0x18,
    "EQ_LOG2",
    Access::Rw,
    0,
    &[],
    "Event ring entries, log2.",
);
pub const EQ_HEAD: Register = reg32(
    BASE,
    0,
    0x1C,
    "EQ_HEAD",
    Access::Rw,
    0,
    &[],
    "Doorbell: free-running consumer index of the event ring.",
);
pub const EQ_DROPPED: Register = reg32(
    BASE,
    0,
    0x20,
    "EQ_DROPPED",
    Access::Ro,
    0,
    &[],
    "Events lost because the event ring was full.",
);
pub const BLOCK: Block = Block {
    name: "EVENT",
    block_type: BLOCK_TYPE,
    version: super::VERSION_1_0,
    base: BASE,
    size: 0x24,
    instances: 1,
    stride: 0,
    regs: &[
        HDR[0], HDR[1], HDR[2], EQ_BASE, EQ_LOG2, EQ_HEAD, EQ_DROPPED,
    ],
    doc: "Event queue: lifetime, sequence, fault events.",
};
