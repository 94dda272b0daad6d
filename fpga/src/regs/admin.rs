//! Admin submission/completion queue pair (datasheet §8).

use super::{header, reg32, reg64};
use crate::reg::{Access, Block, Register};

pub const BASE: u32 = 0x0400;
pub const BLOCK_TYPE: u32 = 0x0000_E505;
const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::event::BASE);
pub const ASQ_BASE: Register = reg64(
    BASE,
    0,
    0x10,
    "ASQ_BASE",
    Access::Rw,
    0,
    "Admin submission ring IOVA (64-byte aligned).",
);
pub const ASQ_LOG2: Register = reg32(
    BASE,
    0,
    0x18,
    "ASQ_LOG2",
    Access::Rw,
    0,
    &[],
    "Admin submission ring entries, log2.",
);
pub const ASQ_TAIL: Register = reg32(
    BASE,
    0,
    0x1C,
    "ASQ_TAIL",
    Access::Rw,
    0,
    &[],
    "Doorbell: free-running producer index of the admin submission ring.",
);
pub const ACQ_BASE: Register = reg64(
    BASE,
    0,
    0x20,
    "ACQ_BASE",
    Access::Rw,
    0,
    "Admin completion ring IOVA (64-byte aligned).",
);
pub const ACQ_LOG2: Register = reg32(
    BASE,
    0,
    0x28,
    "ACQ_LOG2",
    Access::Rw,
    0,
    &[],
    "Admin completion ring entries, log2.",
);
pub const ACQ_HEAD: Register = reg32(
    BASE,
    0,
    0x2C,
    "ACQ_HEAD",
    Access::Rw,
    0,
    &[],
    "Doorbell: free-running consumer index of the admin completion ring.",
);
pub const ASQ_HEAD: Register = reg32(
    BASE,
    0,
    0x30,
    "ASQ_HEAD",
    Access::Ro,
    0,
    &[],
    "Card's consumer index of the admin submission ring (diagnostics; also in every admin completion).",
);
pub const BLOCK: Block = Block {
    name: "ADMIN",
    block_type: BLOCK_TYPE,
    version: super::VERSION_1_0,
    base: BASE,
    size: 0x34,
    instances: 1,
    stride: 0,
    regs: &[
        HDR[0], HDR[1], HDR[2], ASQ_BASE, ASQ_LOG2, ASQ_TAIL, ACQ_BASE, ACQ_LOG2, ACQ_HEAD,
        ASQ_HEAD,
    ],
    doc: "Admin queue: SA write, invalidate, read-back.",
};
