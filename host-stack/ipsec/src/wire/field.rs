//! Bounds-checked big-endian field access shared by the wire views.
//!
//! Every function here tolerates a buffer shorter than the field: reads yield zero (or an
//! empty slice) and writes are dropped. The views validate lengths in `check_len`, so on a
//! checked view these fallbacks are never taken; they exist so that no accessor can panic.

use core::ops::{Range, RangeFrom};

/// A fixed byte range inside a header.
pub(crate) type Field = Range<usize>;
/// The bytes from an offset to the end of the buffer.
pub(crate) type Rest = RangeFrom<usize>;

pub(crate) fn read_u8(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

pub(crate) fn read_u16(buf: &[u8], field: Field) -> u16 {
    u16::from_be_bytes(read_array(buf, field))
}

pub(crate) fn read_u32(buf: &[u8], field: Field) -> u32 {
    u32::from_be_bytes(read_array(buf, field))
}

pub(crate) fn read_array<const N: usize>(buf: &[u8], field: Field) -> [u8; N] {
    buf.get(field)
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .unwrap_or([0; N])
}

pub(crate) fn slice(buf: &[u8], range: Field) -> &[u8] {
    buf.get(range).unwrap_or(&[])
}

pub(crate) fn slice_mut(buf: &mut [u8], range: Field) -> &mut [u8] {
    buf.get_mut(range).unwrap_or(&mut [])
}

pub(crate) fn write_u8(buf: &mut [u8], at: usize, value: u8) {
    if let Some(byte) = buf.get_mut(at) {
        *byte = value;
    }
}

pub(crate) fn write_u16(buf: &mut [u8], field: Field, value: u16) {
    write_bytes(buf, field, &value.to_be_bytes());
}

pub(crate) fn write_u32(buf: &mut [u8], field: Field, value: u32) {
    write_bytes(buf, field, &value.to_be_bytes());
}

pub(crate) fn write_bytes(buf: &mut [u8], field: Field, value: &[u8]) {
    if let Some(dst) = buf.get_mut(field)
        && dst.len() == value.len()
    {
        dst.copy_from_slice(value);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_and_writes_in_bounds() {
        let mut buf = [0u8; 6];
        write_u16(&mut buf, 0..2, 0x1234);
        write_u32(&mut buf, 2..6, 0xdead_beef);
        assert_eq!(buf, [0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(read_u16(&buf, 0..2), 0x1234);
        assert_eq!(read_u32(&buf, 2..6), 0xdead_beef);
        assert_eq!(read_u8(&buf, 5), 0xef);
        assert_eq!(slice(&buf, 1..3), &[0x34, 0xde]);
    }

    #[test]
    fn out_of_bounds_reads_zero_and_writes_nothing() {
        let mut buf = [0xa5u8; 3];
        assert_eq!(read_u8(&buf, 3), 0);
        assert_eq!(read_u16(&buf, 2..4), 0);
        assert_eq!(read_u32(&buf, 0..4), 0);
        assert_eq!(slice(&buf, 2..8), &[] as &[u8]);
        write_u8(&mut buf, 7, 1);
        write_u16(&mut buf, 2..4, 0x0102);
        write_u32(&mut buf, 0..4, 0x0102_0304);
        assert_eq!(buf, [0xa5; 3]);
        assert!(slice_mut(&mut buf, 1..9).is_empty());
    }
}
