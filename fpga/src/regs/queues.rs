//! Where the queue-pair register blocks are.

use super::{header, reg32};
use crate::reg::{Access, Block, Register};

pub const BASE: u32 = 0x0800;
pub const BLOCK_TYPE: u32 = 0x0000_E508;
const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::queue::BASE);
pub const Q_COUNT: Register = reg32(BASE, 0, 0x10, "Q_COUNT", Access::Ro, 4, &[], "Queue pairs.");
pub const Q_STRIDE: Register = reg32(
    BASE,
    0,
    0x14,
    "Q_STRIDE",
    Access::Ro,
    super::queue::STRIDE as u64,
    &[],
    "Bytes between queue-pair blocks.",
);
pub const Q_BASE: Register = reg32(
    BASE,
    0,
    0x18,
    "Q_BASE",
    Access::Ro,
    super::queue::BASE as u64,
    &[],
    "BAR0 offset of queue pair 0.",
);
pub const BLOCK: Block = Block {
    name: "QUEUES",
    block_type: BLOCK_TYPE,
    version: super::VERSION_1_0,
    base: BASE,
    size: 0x1C,
    instances: 1,
    stride: 0,
    regs: &[HDR[0], HDR[1], HDR[2], Q_COUNT, Q_STRIDE, Q_BASE],
    doc: "Directory of the queue-pair blocks.",
};
