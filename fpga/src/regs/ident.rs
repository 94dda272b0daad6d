//! Identification block at BAR0 offset 0 (datasheet §3, §5.1).

use super::{header, reg32};
use crate::reg::{Access, Block, Register};

pub const BASE: u32 = 0x0000;
pub const BLOCK_TYPE: u32 = 0x0000_E501;
/// "ESPO" in ASCII.
pub const DEVICE_ID_VALUE: u32 = 0x4553_504F;
const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::cap::BASE);
pub const DEVICE_ID: Register = reg32(
    BASE,
    0,
    0x10,
    "DEVICE_ID",
    Access::Ro,
    DEVICE_ID_VALUE as u64,
    &[],
    "0x4553504F (\"ESPO\").",
);
pub const REVISION: Register = reg32(
    BASE,
    0,
    0x14,
    "REVISION",
    Access::Ro,
    1,
    &[],
    "Hardware revision.",
);
pub const CLOCK_KHZ: Register = reg32(
    BASE,
    0,
    0x18,
    "CLOCK_KHZ",
    Access::Ro,
    250_000,
    &[],
    "Core clock in kHz; cycle counts in this datasheet are of this clock.",
);
pub const SCRATCH: Register = reg32(
    BASE,
    0,
    0x1C,
    "SCRATCH",
    Access::Rw,
    0,
    &[],
    "Free for software; used to check BAR access.",
);
pub const BLOCK: Block = Block {
    name: "IDENT",
    block_type: BLOCK_TYPE,
    version: super::VERSION_1_0,
    base: BASE,
    size: 0x20,
    instances: 1,
    stride: 0,
    regs: &[
        HDR[0], HDR[1], HDR[2], DEVICE_ID, REVISION, CLOCK_KHZ, SCRATCH,
    ],
    doc: "Identification: the start of the block chain.",
};
