//! Register description types: blocks that describe themselves, registers with offset,
//! width, access and reset value, and named bit fields. Every constant of the register
//! map is one of these values; the SystemVerilog package and the datasheet tables are
//! generated from them.

/// How software may access a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only: writes are ignored.
    Ro,
    /// Read-write: reads return the last value written (or the reset value).
    Rw,
    /// Write-one-to-clear: reads return status bits; writing 1 to a bit clears it,
    /// writing 0 leaves it unchanged, so a read-modify-write cannot clear status by accident.
    W1c,
}

impl Access {
    /// The abbreviation used in the datasheet tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Access::Ro => "RO",
            Access::Rw => "RW",
            Access::W1c => "W1C",
        }
    }
}

/// A bit field inside a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    /// Least significant bit.
    pub lsb: u32,
    /// Width in bits (1..=64).
    pub width: u32,
    pub doc: &'static str,
}

impl Field {
    pub const fn new(name: &'static str, lsb: u32, width: u32, doc: &'static str) -> Field {
        Field {
            name,
            lsb,
            width,
            doc,
        }
    }

    /// The field's bits, in place.
    pub const fn mask(&self) -> u64 {
        let ones = if self.width >= 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        };
        ones << self.lsb
    }

    /// The field's value extracted from a register value.
    pub const fn get(&self, reg: u64) -> u64 {
        (reg & self.mask()) >> self.lsb
    }

    /// `reg` with the field replaced by `value` (truncated to the field's width).
    pub const fn put(&self, reg: u64, value: u64) -> u64 {
        (reg & !self.mask()) | ((value << self.lsb) & self.mask())
    }

    /// True when a one-bit field is set in `reg`.
    pub const fn is_set(&self, reg: u64) -> bool {
        reg & self.mask() != 0
    }
}

/// One register. `offset` is relative to the start of its block (or of one instance of
/// an instanced block); [`Register::addr`] and [`Register::addr_in`] give BAR0 offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    pub name: &'static str,
    /// BAR0 offset of the block (of instance 0 for an instanced block).
    pub block_base: u32,
    /// Distance between instances of an instanced block, 0 for a single block.
    pub stride: u32,
    pub offset: u32,
    /// 32 or 64. A 64-bit register may be accessed as one 64-bit access or as two 32-bit
    /// accesses, low word first.
    pub width_bits: u32,
    pub access: Access,
    pub reset: u64,
    pub fields: &'static [Field],
    pub doc: &'static str,
}

impl Register {
    /// BAR0 offset of a register of a single (non-instanced) block.
    pub const fn addr(&self) -> u32 {
        self.block_base + self.offset
    }

    /// BAR0 offset of this register in instance `index` of an instanced block.
    pub const fn addr_in(&self, index: u32) -> u32 {
        self.block_base + index * self.stride + self.offset
    }

    /// Bits that exist in this register (the union of its fields, or all bits when it
    /// declares none).
    pub const fn defined_mask(&self) -> u64 {
        if self.fields.is_empty() {
            return if self.width_bits >= 64 {
                u64::MAX
            } else {
                (1u64 << self.width_bits) - 1
            };
        }
        let mut m = 0u64;
        let mut i = 0;
        while i < self.fields.len() {
            m |= self.fields[i].mask();
            i += 1;
        }
        m
    }
}

/// A self-describing register block: every block starts with TYPE, VERSION and NEXT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub name: &'static str,
    pub block_type: u32,
    /// `major << 16 | minor`. A driver refuses a major version it does not know.
    pub version: u32,
    pub base: u32,
    /// Bytes of BAR0 the block (one instance) occupies.
    pub size: u32,
    /// Number of instances (1 for a single block).
    pub instances: u32,
    pub stride: u32,
    pub regs: &'static [Register],
    pub doc: &'static str,
}

/// Register header offsets common to every block.
pub const BLOCK_TYPE_OFFSET: u32 = 0x00;
pub const BLOCK_VERSION_OFFSET: u32 = 0x04;
pub const BLOCK_NEXT_OFFSET: u32 = 0x08;

const fn fields_valid(r: &Register) -> bool {
    let mut i = 0;
    while i < r.fields.len() {
        let f = &r.fields[i];
        if f.width == 0 || f.lsb + f.width > r.width_bits {
            return false;
        }
        let mut j = i + 1;
        while j < r.fields.len() {
            if f.mask() & r.fields[j].mask() != 0 {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

/// Compile-time check of a block: registers aligned to their width, inside the block,
/// not overlapping, fields inside their register and disjoint, reset values inside the
/// defined bits, and the self-describing header in place.
pub const fn block_is_valid(b: &Block) -> bool {
    if b.regs.len() < 3
        || b.regs[0].offset != BLOCK_TYPE_OFFSET
        || b.regs[1].offset != BLOCK_VERSION_OFFSET
        || b.regs[2].offset != BLOCK_NEXT_OFFSET
        || b.regs[0].reset != b.block_type as u64
        || b.regs[1].reset != b.version as u64
    {
        return false;
    }
    if b.instances == 0 || (b.instances > 1 && b.stride < b.size) {
        return false;
    }
    let mut i = 0;
    while i < b.regs.len() {
        let r = &b.regs[i];
        let bytes = r.width_bits / 8;
        if (r.width_bits != 32 && r.width_bits != 64)
            || !r.offset.is_multiple_of(bytes)
            || r.offset + bytes > b.size
            || r.block_base != b.base
            || r.stride != b.stride
            || !fields_valid(r)
            || r.reset & !r.defined_mask() != 0
        {
            return false;
        }
        if i > 0 {
            let p = &b.regs[i - 1];
            if p.offset + p.width_bits / 8 > r.offset {
                return false;
            }
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_put_and_get_round_trip() {
        let f = Field::new("X", 8, 4, "");
        assert_eq!(f.mask(), 0xF00);
        let v = f.put(0xFFFF_FFFF, 0x5);
        assert_eq!(v, 0xFFFF_F5FF);
        assert_eq!(f.get(v), 5);
        assert_eq!(f.put(0, 0x1F), 0xF00, "value truncated to width");
    }
}
