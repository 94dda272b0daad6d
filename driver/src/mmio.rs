//! Memory-mapped device registers (a BAR): bounds-checked volatile accessors.
//!
//! A [`Mmio`] window owns the mapping of one BAR. Every access goes through four helpers that
//! check bounds and natural alignment first and then perform exactly one volatile load or store
//! of the access's width through a raw pointer; no Rust reference into device memory is ever
//! created. PCI registers are little-endian; the helpers convert.

use std::ptr::NonNull;

use memmap2::MmapRaw;

use crate::error::AccessError;

/// One mapped BAR.
#[derive(Debug)]
pub struct Mmio {
    map: MmapRaw,
}

impl Mmio {
    /// Wraps a mapping of device memory (made by the backend's syscall layer).
    pub(crate) fn new(map: MmapRaw) -> Self {
        Self { map }
    }

    /// Length of the window in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    /// Checks that `width` bytes at `offset` lie inside the window and are naturally
    /// aligned; returns the pointer to the first byte.
    fn checked(&self, offset: u64, width: u64) -> Result<NonNull<u8>, AccessError> {
        let len = self.len_bytes();
        if !offset.is_multiple_of(width) {
            return Err(AccessError::Misaligned {
                offset,
                width_bytes: width,
            });
        }
        match offset.checked_add(width) {
            Some(end) if end <= len => {}
            _ => {
                return Err(AccessError::OutOfBounds {
                    offset,
                    width_bytes: width,
                    len_bytes: len,
                });
            }
        }
        // The mapping start is page aligned, so an aligned offset gives an aligned pointer.
        let base = NonNull::new(self.map.as_mut_ptr()).ok_or(AccessError::OutOfBounds {
            offset,
            width_bytes: width,
            len_bytes: 0,
        })?;
        // SAFETY: `offset + width <= len` was checked above, so the result points inside the
        // mapping (whose length is a `usize`, so the cast is lossless).
        Ok(unsafe { base.add(offset as usize) })
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read32(&self, offset: u64) -> Result<u32, AccessError> {
        let ptr = self.checked(offset, 4)?.cast::<u32>();
        // SAFETY: `checked` proved the 4 bytes lie inside the live mapping and are aligned;
        // device memory is only ever accessed through volatile raw-pointer operations.
        let raw = unsafe { ptr.as_ptr().read_volatile() };
        Ok(u32::from_le(raw))
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write32(&self, offset: u64, value: u32) -> Result<(), AccessError> {
        let ptr = self.checked(offset, 4)?.cast::<u32>();
        // SAFETY: as in `read32`; the mapping is writable (mapped read-write by the backend).
        unsafe { ptr.as_ptr().write_volatile(value.to_le()) };
        Ok(())
    }

    /// Reads the 64-bit register at `offset` with one 8-byte access.
    pub fn read64(&self, offset: u64) -> Result<u64, AccessError> {
        let ptr = self.checked(offset, 8)?.cast::<u64>();
        // SAFETY: `checked` proved the 8 bytes lie inside the live mapping and are aligned.
        let raw = unsafe { ptr.as_ptr().read_volatile() };
        Ok(u64::from_le(raw))
    }

    /// Writes the 64-bit register at `offset` with one 8-byte access.
    pub fn write64(&self, offset: u64, value: u64) -> Result<(), AccessError> {
        let ptr = self.checked(offset, 8)?.cast::<u64>();
        // SAFETY: as in `read64`; the mapping is writable.
        unsafe { ptr.as_ptr().write_volatile(value.to_le()) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memmap2::MmapOptions;

    fn window(len: usize) -> Mmio {
        Mmio::new(MmapRaw::from(
            MmapOptions::new().len(len).map_anon().unwrap(),
        ))
    }

    #[test]
    fn reads_back_what_was_written_little_endian() {
        let bar = window(4096);
        bar.write32(0x10, 0x1234_5678).unwrap();
        bar.write64(0x18, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(bar.read32(0x10).unwrap(), 0x1234_5678);
        assert_eq!(bar.read64(0x18).unwrap(), 0x0102_0304_0506_0708);
        // The low half of the 64-bit register is the first 32-bit word (little-endian).
        assert_eq!(bar.read32(0x18).unwrap(), 0x0506_0708);
        assert_eq!(bar.read32(0x1c).unwrap(), 0x0102_0304);
    }

    #[test]
    fn refuses_out_of_bounds_and_misaligned() {
        let bar = window(4096);
        assert_eq!(bar.read32(4092).unwrap(), 0);
        assert_eq!(
            bar.read32(4096),
            Err(AccessError::OutOfBounds {
                offset: 4096,
                width_bytes: 4,
                len_bytes: 4096
            })
        );
        assert_eq!(
            bar.write64(4092, 1),
            Err(AccessError::Misaligned {
                offset: 4092,
                width_bytes: 8
            })
        );
        assert_eq!(
            bar.read64(u64::MAX - 7),
            Err(AccessError::OutOfBounds {
                offset: u64::MAX - 7,
                width_bytes: 8,
                len_bytes: 4096
            })
        );
        assert_eq!(
            bar.write32(2, 1),
            Err(AccessError::Misaligned {
                offset: 2,
                width_bytes: 4
            })
        );
    }
}
