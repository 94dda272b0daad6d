//! In-memory layouts of everything the card and the host exchange through DMA: one table
//! of named bit ranges per structure, checked at compile time, with little-endian
//! accessors that never panic (out-of-range reads give 0, writes are dropped).

/// A named bit range of a structure. Multi-byte fields are byte-aligned little-endian
/// integers (or byte arrays when wider than 64 bits); sub-byte fields sit inside one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutField {
    pub name: &'static str,
    pub offset_bits: u32,
    pub width_bits: u32,
    pub doc: &'static str,
}

impl LayoutField {
    pub const fn new(
        name: &'static str,
        offset_bits: u32,
        width_bits: u32,
        doc: &'static str,
    ) -> Self {
        LayoutField {
            name,
            offset_bits,
            width_bits,
            doc,
        }
    }

    /// Byte offset of the field (its first byte).
    pub const fn byte_offset(&self) -> usize {
        (self.offset_bits / 8) as usize
    }

    /// Width in bytes of a byte-aligned field.
    pub const fn byte_len(&self) -> usize {
        (self.width_bits / 8) as usize
    }

    const fn is_byte_aligned(&self) -> bool {
        self.offset_bits.is_multiple_of(8) && self.width_bits.is_multiple_of(8)
    }

    /// The field's value (fields up to 64 bits).
    pub fn get(&self, buf: &[u8]) -> u64 {
        if self.is_byte_aligned() {
            let start = self.byte_offset();
            let len = self.byte_len().min(8);
            let Some(bytes) = buf.get(start..start + len) else {
                return 0;
            };
            bytes
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        } else {
            let byte = buf.get(self.byte_offset()).copied().unwrap_or(0);
            let shift = self.offset_bits % 8;
            (u64::from(byte) >> shift) & ((1u64 << self.width_bits) - 1)
        }
    }

    /// Whether a one-bit field is set.
    pub fn is_set(&self, buf: &[u8]) -> bool {
        self.get(buf) != 0
    }

    /// Stores `value` (truncated to the field's width).
    pub fn put(&self, buf: &mut [u8], value: u64) {
        if self.is_byte_aligned() {
            let start = self.byte_offset();
            let len = self.byte_len().min(8);
            if let Some(bytes) = buf.get_mut(start..start + len) {
                for (i, b) in bytes.iter_mut().enumerate() {
                    *b = (value >> (8 * i)) as u8;
                }
            }
        } else if let Some(byte) = buf.get_mut(self.byte_offset()) {
            let shift = self.offset_bits % 8;
            let mask = (((1u16 << self.width_bits) - 1) as u8) << shift;
            *byte = (*byte & !mask) | (((value as u8) << shift) & mask);
        }
    }

    /// Stores a one-bit flag.
    pub fn put_flag(&self, buf: &mut [u8], set: bool) {
        self.put(buf, u64::from(set));
    }

    /// The bytes of a byte-aligned field (empty when `buf` is too short).
    pub fn bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let start = self.byte_offset();
        buf.get(start..start + self.byte_len()).unwrap_or(&[])
    }

    /// Copies `data` into a byte-aligned field (zero-filling when `data` is shorter).
    pub fn put_bytes(&self, buf: &mut [u8], data: &[u8]) {
        let start = self.byte_offset();
        if let Some(dst) = buf.get_mut(start..start + self.byte_len()) {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = data.get(i).copied().unwrap_or(0);
            }
        }
    }
}

/// The layout of one structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub name: &'static str,
    pub size_bytes: usize,
    pub fields: &'static [LayoutField],
    pub doc: &'static str,
}

/// Compile-time check: fields in increasing order, contiguous (gaps are named RSVD
/// fields), covering exactly `size_bytes`, multi-byte fields byte-aligned, sub-byte fields
/// inside one byte.
pub const fn layout_is_valid(l: &Layout) -> bool {
    let mut at = 0u32;
    let mut i = 0;
    while i < l.fields.len() {
        let f = &l.fields[i];
        if f.offset_bits != at || f.width_bits == 0 {
            return false;
        }
        let aligned = f.offset_bits.is_multiple_of(8) && f.width_bits.is_multiple_of(8);
        let in_one_byte = f.width_bits < 8 && (f.offset_bits % 8) + f.width_bits <= 8;
        if !aligned && !in_one_byte {
            return false;
        }
        at += f.width_bits;
        i += 1;
    }
    at as usize == l.size_bytes * 8
}

/// Compile-time check that a named field has the expected offset and width.
pub const fn field_at(f: &LayoutField, offset_bits: u32, width_bits: u32) -> bool {
    f.offset_bits == offset_bits && f.width_bits == width_bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_are_little_endian_and_bounded() {
        let f = LayoutField::new("X", 16, 32, "");
        let mut buf = [0xAAu8; 8];
        f.put(&mut buf, 0x1122_3344);
        assert_eq!(buf, [0xAA, 0xAA, 0x44, 0x33, 0x22, 0x11, 0xAA, 0xAA]);
        assert_eq!(f.get(&buf), 0x1122_3344);
        assert_eq!(f.get(&buf[..4]), 0, "short buffer reads as 0");
        f.put(&mut [0u8; 3], 1); // short buffer: dropped, no panic
        let bit = LayoutField::new("B", 13, 1, "");
        bit.put_flag(&mut buf, false);
        assert_eq!(buf[1], 0x8A);
        assert!(!bit.is_set(&buf));
        bit.put_flag(&mut buf, true);
        assert_eq!(buf[1], 0xAA);
    }
}
