//! The ESPO-1 BAR0 register map. Blocks form a chain through their NEXT registers,
//! starting at offset 0 (datasheet §3). Offsets in [`Register`] are relative to the block.
//!
//! Every ring is a power-of-two array of fixed-size entries in host memory at an IOVA the
//! driver mapped. Producer and consumer indices are free-running 32-bit counters; the slot
//! is `index & (entries - 1)`. A `*_LOG2` register holds log2 of the entry count. Base and
//! size registers are latched when the owning ENABLE bit goes from 0 to 1 (datasheet §7).

use crate::reg::{Access, Block, Field, Register, block_is_valid};

pub mod admin;
pub mod cap;
pub mod ctrl;
pub mod event;
pub mod ident;
pub mod irq;
pub mod queue;
pub mod queues;
pub mod stats;

/// Major version this crate describes; minor versions only add registers or fields.
pub const VERSION_1_0: u32 = 0x0001_0000;

#[allow(
    clippy::too_many_arguments,
    reason = "one argument per column of the register table"
)]
pub(crate) const fn reg32(
    base: u32,
    stride: u32,
    offset: u32,
    name: &'static str,
    access: Access,
    reset: u64,
    fields: &'static [Field],
    doc: &'static str,
) -> Register {
    Register {
        name,
        block_base: base,
        stride,
        offset,
        width_bits: 32,
        access,
        reset,
        fields,
        doc,
    }
}

pub(crate) const fn reg64(
    base: u32,
    stride: u32,
    offset: u32,
    name: &'static str,
    access: Access,
    reset: u64,
    doc: &'static str,
) -> Register {
    Register {
        name,
        block_base: base,
        stride,
        offset,
        width_bits: 64,
        access,
        reset,
        fields: &[],
        doc,
    }
}

/// The three header registers every block starts with.
pub(crate) const fn header(base: u32, stride: u32, block_type: u32, next: u32) -> [Register; 3] {
    [
        reg32(
            base,
            stride,
            0x00,
            "TYPE",
            Access::Ro,
            block_type as u64,
            &[],
            "Block type.",
        ),
        reg32(
            base,
            stride,
            0x04,
            "VERSION",
            Access::Ro,
            VERSION_1_0 as u64,
            &[],
            "Block version, major << 16 | minor.",
        ),
        reg32(
            base,
            stride,
            0x08,
            "NEXT",
            Access::Ro,
            next as u64,
            &[],
            "BAR0 offset of the next block, 0 at the end of the chain.",
        ),
    ]
}

/// Every block in chain order.
pub const BLOCKS: &[Block] = &[
    ident::BLOCK,
    cap::BLOCK,
    ctrl::BLOCK,
    irq::BLOCK,
    admin::BLOCK,
    event::BLOCK,
    stats::BLOCK,
    queues::BLOCK,
    queue::BLOCK,
];

/// Size of BAR0 in bytes.
pub const BAR0_SIZE: u32 = 0x2000;

const fn chain_is_valid() -> bool {
    let mut i = 0;
    while i < BLOCKS.len() {
        let b = &BLOCKS[i];
        if !block_is_valid(b) || b.base + b.stride * (b.instances - 1) + b.size > BAR0_SIZE {
            return false;
        }
        let next = b.regs[2].reset as u32;
        let expected = if i + 1 < BLOCKS.len() {
            BLOCKS[i + 1].base
        } else {
            0
        };
        if next != expected {
            return false;
        }
        if i + 1 < BLOCKS.len()
            && b.base + b.stride * (b.instances - 1) + b.size > BLOCKS[i + 1].base
        {
            return false;
        }
        i += 1;
    }
    true
}

const _: () = assert!(
    chain_is_valid(),
    "register map: invalid block, overlap or broken NEXT chain"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_starts_at_zero_and_ends_with_zero() {
        assert_eq!(BLOCKS[0].base, 0);
        let mut at = 0u32;
        let mut seen = 0;
        loop {
            let b = BLOCKS
                .iter()
                .find(|b| b.base == at)
                .expect("NEXT names a block");
            seen += 1;
            at = b.regs[2].reset as u32;
            if at == 0 {
                break;
            }
        }
        assert_eq!(seen, BLOCKS.len());
    }

    #[test]
    fn block_types_are_distinct() {
        for (i, a) in BLOCKS.iter().enumerate() {
            for b in &BLOCKS[i + 1..] {
                assert_ne!(a.block_type, b.block_type, "{} and {}", a.name, b.name);
            }
        }
    }
}
