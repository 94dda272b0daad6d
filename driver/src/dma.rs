//! DMA memory: host memory the device reads and writes, and its IOMMU mapping.
//!
//! [`DmaMemory`] is an anonymous, page-aligned, pre-faulted mapping. It is backed by 2 MiB
//! hugepages when the request is at least 2 MiB and hugepages are free, and by 4 KiB pages
//! otherwise (the fallback is silent but visible through [`DmaMemory::page_bytes`]).
//! Alignment guarantees: the start is aligned to the page size that backs it (4 KiB or 2 MiB)
//! and the length is a whole number of those pages.
//!
//! [`DmaRegion`] is that memory mapped at an IOVA; dropping it removes the IOMMU mapping
//! *before* the memory is freed. If the unmap fails, the memory is deliberately leaked: the
//! device might still reach it, so it must never be reused.
//!
//! # Concurrency
//!
//! The device writes this memory at any time, and the card model (which runs on its own
//! thread) reads and writes it through the same accessors. Therefore no Rust reference into
//! the memory is ever created and every access is an atomic operation of 1, 4 or 8 bytes with
//! `Relaxed` ordering: each access happens exactly once at its width (like a volatile access)
//! and two threads touching the same bytes is not a data race. Ordering between accesses is the
//! caller's: an `Acquire` fence after reading a completion's phase bit, a `Release` fence
//! before ringing a doorbell. Both types are `Send + Sync`; every method takes `&self`.
//! That is what lets the card model use DMA memory as the host memory it reaches: an
//! adapter over `Arc<DmaRegion>` maps the model's length/read/write-by-offset calls to
//! [`DmaMemory::len_bytes`], [`DmaMemory::read_bytes`] and [`DmaMemory::write_bytes`], from the
//! model's thread, while the driver keeps using the same region.
//! Multi-byte values are little-endian in memory, as PCIe devices expect.
//!
//! The mapping itself is reference-counted: the card model's IOMMU holds its own handle to
//! the memory of every window it maps ([`DmaMemory::share`]), so the memory outlives the
//! window whatever order the two are dropped in.

use std::fmt;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use memmap2::MmapRaw;

use crate::error::{AccessError, DeviceError};

/// Size of a base page.
pub const PAGE_BYTES: usize = 4096;
/// Size of a 2 MiB hugepage.
pub const HUGEPAGE_BYTES: usize = 2 << 20;

/// Host memory for DMA (see the module documentation for alignment and concurrency rules).
pub struct DmaMemory {
    map: Arc<MmapRaw>,
    page_bytes: usize,
}

impl fmt::Debug for DmaMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaMemory")
            .field("len_bytes", &self.len_bytes())
            .field("page_bytes", &self.page_bytes)
            .finish()
    }
}

impl DmaMemory {
    /// Wraps a fresh anonymous mapping made by the syscall layer.
    pub(crate) fn from_mapping(map: MmapRaw, page_bytes: usize) -> Self {
        Self {
            map: Arc::new(map),
            page_bytes,
        }
    }

    /// A second handle to the same memory, for a backend whose IOMMU keeps a reference to
    /// what it maps (the card model). The memory is freed when the last handle is dropped.
    #[cfg_attr(not(feature = "model"), allow(dead_code))]
    pub(crate) fn share(&self) -> DmaMemory {
        DmaMemory {
            map: Arc::clone(&self.map),
            page_bytes: self.page_bytes,
        }
    }

    /// Length in bytes (a multiple of [`page_bytes`](Self::page_bytes)).
    pub fn len_bytes(&self) -> usize {
        self.map.len()
    }

    /// Size of the pages backing this memory: 4096 or 2 MiB.
    pub fn page_bytes(&self) -> usize {
        self.page_bytes
    }

    /// Host virtual address of the first byte, for the IOMMU mapping call.
    pub(crate) fn host_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    fn checked(
        &self,
        offset: usize,
        width: usize,
        align: usize,
    ) -> Result<NonNull<u8>, AccessError> {
        let len = self.len_bytes();
        if !offset.is_multiple_of(align) {
            return Err(AccessError::Misaligned {
                offset: offset as u64,
                width_bytes: width as u64,
            });
        }
        match offset.checked_add(width) {
            Some(end) if end <= len => {}
            _ => {
                return Err(AccessError::OutOfBounds {
                    offset: offset as u64,
                    width_bytes: width as u64,
                    len_bytes: len as u64,
                });
            }
        }
        let base = NonNull::new(self.host_ptr()).ok_or(AccessError::OutOfBounds {
            offset: offset as u64,
            width_bytes: width as u64,
            len_bytes: 0,
        })?;
        // SAFETY: `offset + width <= len` was checked, so the result points inside the mapping.
        Ok(unsafe { base.add(offset) })
    }

    fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32, AccessError> {
        let ptr = self.checked(offset, 4, 4)?;
        // SAFETY: the 4 bytes are inside the live mapping (which outlives `&self`) and 4-byte
        // aligned (page-aligned start, aligned offset); this memory is only ever accessed
        // atomically from Rust, and the device's accesses are outside Rust's memory model.
        Ok(unsafe { AtomicU32::from_ptr(ptr.as_ptr().cast()) })
    }

    fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64, AccessError> {
        let ptr = self.checked(offset, 8, 8)?;
        // SAFETY: as in `atomic_u32`, for 8 aligned bytes.
        Ok(unsafe { AtomicU64::from_ptr(ptr.as_ptr().cast()) })
    }

    /// Reads the little-endian `u32` at `offset` (which must be 4-byte aligned).
    pub fn read_u32(&self, offset: usize) -> Result<u32, AccessError> {
        Ok(u32::from_le(
            self.atomic_u32(offset)?.load(Ordering::Relaxed),
        ))
    }

    /// Writes a little-endian `u32` at `offset` (which must be 4-byte aligned).
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<(), AccessError> {
        self.atomic_u32(offset)?
            .store(value.to_le(), Ordering::Relaxed);
        Ok(())
    }

    /// Reads the little-endian `u64` at `offset` (which must be 8-byte aligned).
    pub fn read_u64(&self, offset: usize) -> Result<u64, AccessError> {
        Ok(u64::from_le(
            self.atomic_u64(offset)?.load(Ordering::Relaxed),
        ))
    }

    /// Writes a little-endian `u64` at `offset` (which must be 8-byte aligned).
    pub fn write_u64(&self, offset: usize, value: u64) -> Result<(), AccessError> {
        self.atomic_u64(offset)?
            .store(value.to_le(), Ordering::Relaxed);
        Ok(())
    }

    /// The `N` 8-byte words from `offset` (8-byte aligned), each read atomically; native
    /// byte order, so that a word's bytes are the region's bytes in memory order.
    #[inline]
    pub fn read_words<const N: usize>(&self, offset: usize) -> Result<[u64; N], AccessError> {
        let base = self.checked(offset, 8 * N, 8)?;
        let mut words = [0u64; N];
        for (i, w) in words.iter_mut().enumerate() {
            // SAFETY: the 8 bytes at `offset + 8 i` lie inside the range `checked` proved in
            // bounds and are 8-byte aligned (page-aligned mapping, aligned `offset`).
            *w = unsafe { AtomicU64::from_ptr(base.as_ptr().add(8 * i).cast()) }
                .load(Ordering::Relaxed);
        }
        Ok(words)
    }

    /// Writes `words` from `offset` (8-byte aligned) on, as [`read_words`](Self::read_words)
    /// reads them, in increasing address order.
    #[inline]
    pub fn write_words(&self, offset: usize, words: &[u64]) -> Result<(), AccessError> {
        let base = self.checked(offset, 8 * words.len(), 8)?;
        for (i, &w) in words.iter().enumerate() {
            // SAFETY: as in `read_words`.
            unsafe { AtomicU64::from_ptr(base.as_ptr().add(8 * i).cast()) }
                .store(w, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Bytes before the first 8-byte boundary at or after `offset`, at most `len`.
    fn head_bytes(offset: usize, len: usize) -> usize {
        ((8 - offset % 8) % 8).min(len)
    }

    /// Copies `dst.len()` bytes starting at `offset` out of the region: bytes up to an
    /// 8-byte boundary, whole aligned words, then the remaining bytes, each access atomic.
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        let len = dst.len();
        let base = self.checked(offset, len, 1)?;
        let (head, rest) = dst.split_at_mut(Self::head_bytes(offset, len));
        for (i, b) in head.iter_mut().enumerate() {
            // SAFETY: `offset + i` lies inside the range `checked` proved in bounds.
            *b = unsafe { AtomicU8::from_ptr(base.as_ptr().add(i)) }.load(Ordering::Relaxed);
        }
        let words_at = head.len();
        let mut words = rest.chunks_exact_mut(8);
        for (i, chunk) in words.by_ref().enumerate() {
            // SAFETY: the 8 bytes at `offset + words_at + 8 i` lie inside the checked range
            // and are 8-byte aligned (the mapping is page aligned, `offset + words_at` is a
            // multiple of 8).
            let word = unsafe { AtomicU64::from_ptr(base.as_ptr().add(words_at + 8 * i).cast()) }
                .load(Ordering::Relaxed);
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        let tail = words.into_remainder();
        let tail_at = len - tail.len();
        for (i, b) in tail.iter_mut().enumerate() {
            // SAFETY: inside the checked range, as above.
            *b = unsafe { AtomicU8::from_ptr(base.as_ptr().add(tail_at + i)) }
                .load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `src` into the region starting at `offset`, with atomic accesses as
    /// [`read_bytes`](Self::read_bytes) (so words are stored in increasing address order).
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), AccessError> {
        let base = self.checked(offset, src.len(), 1)?;
        let (head, rest) = src.split_at(Self::head_bytes(offset, src.len()));
        for (i, &b) in head.iter().enumerate() {
            // SAFETY: `offset + i` lies inside the range `checked` proved in bounds.
            unsafe { AtomicU8::from_ptr(base.as_ptr().add(i)) }.store(b, Ordering::Relaxed);
        }
        let words_at = head.len();
        let mut words = rest.chunks_exact(8);
        for (i, chunk) in words.by_ref().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            // SAFETY: as in `read_bytes`: inside the checked range, 8-byte aligned.
            unsafe { AtomicU64::from_ptr(base.as_ptr().add(words_at + 8 * i).cast()) }
                .store(u64::from_ne_bytes(word), Ordering::Relaxed);
        }
        let tail = words.remainder();
        let tail_at = src.len() - tail.len();
        for (i, &b) in tail.iter().enumerate() {
            // SAFETY: inside the checked range, as above.
            unsafe { AtomicU8::from_ptr(base.as_ptr().add(tail_at + i)) }
                .store(b, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Sets `len_bytes` bytes starting at `offset` to `byte`.
    pub fn fill(&self, offset: usize, len_bytes: usize, byte: u8) -> Result<(), AccessError> {
        self.checked(offset, len_bytes, 1)?;
        let chunk = [byte; 64];
        let mut done = 0;
        while done < len_bytes {
            let n = (len_bytes - done).min(chunk.len());
            self.write_bytes(offset + done, &chunk[..n])?;
            done += n;
        }
        Ok(())
    }

    /// One `read(2)` from `fd` of at most `len_bytes` straight into the region at `offset`:
    /// the kernel copies into memory the device can reach, and nothing else copies. Returns
    /// the bytes read. A range outside the region is refused with `InvalidInput`.
    pub fn read_from_fd(
        &self,
        fd: BorrowedFd<'_>,
        offset: usize,
        len_bytes: usize,
    ) -> io::Result<usize> {
        let at = self
            .checked(offset, len_bytes, 1)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: `[offset, offset + len_bytes)` lies inside the live mapping (checked), which
        // outlives the call. No Rust reference to that memory exists: the kernel writes it
        // through the raw pointer as the device writes it by DMA (module documentation).
        let n = unsafe { libc::read(fd.as_raw_fd(), at.as_ptr().cast(), len_bytes) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// One `readv(2)` from `fd`: its first `head.len()` bytes into `head` (host memory: a
    /// header the caller reads), the next at most `len_bytes` straight into the region at
    /// `offset`, and whatever follows, at most `tail.len()` bytes, into `tail` (host memory:
    /// what did not fit). Returns the bytes read, all three parts together. A range outside
    /// the region is refused with `InvalidInput`.
    pub fn read_from_fd_parts(
        &self,
        fd: BorrowedFd<'_>,
        head: &mut [u8],
        offset: usize,
        len_bytes: usize,
        tail: &mut [u8],
    ) -> io::Result<usize> {
        let at = self
            .checked(offset, len_bytes, 1)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let iov = [
            libc::iovec {
                iov_base: head.as_mut_ptr().cast(),
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: at.as_ptr().cast(),
                iov_len: len_bytes,
            },
            libc::iovec {
                iov_base: tail.as_mut_ptr().cast(),
                iov_len: tail.len(),
            },
        ];
        // SAFETY: the three iovecs describe writable memory that outlives the call: `head`
        // and `tail` are exclusively borrowed slices, the second range lies inside the live
        // mapping (checked). No Rust reference into the mapping exists: the kernel writes it
        // through the raw pointer as the device writes it by DMA (module documentation).
        let n = unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), 3) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The one's-complement sum (RFC 1071) of the region's bytes `[offset, offset + len)`
    /// taken as big-endian 16-bit words from `offset` on, an odd final byte padded with a
    /// zero byte; not complemented. Read in place, each access atomic as in
    /// [`read_bytes`](Self::read_bytes): a checksum over a packet in DMA memory without
    /// copying it out.
    pub fn ones_sum(&self, offset: usize, len: usize) -> Result<u16, AccessError> {
        let base = self.checked(offset, len, 1)?;
        // Every byte is weighed by its address: 1 at an even one, 256 at an odd one (a
        // sum of little-endian 16-bit words at even addresses). 2^16 ≡ 1 (mod 2^16 − 1),
        // so the 32-bit halves of aligned 64-bit words may be added as they are. A range
        // starting at an even address weighs its first byte 1 where RFC 1071 weighs it 256:
        // its sum is the byte-swapped one (RFC 1071 §2(B)).
        let byte = |i: usize| -> u64 {
            // SAFETY: callers pass `i < len`, inside the range `checked` proved in bounds.
            let b = unsafe { AtomicU8::from_ptr(base.as_ptr().add(i)) }.load(Ordering::Relaxed);
            let odd = (base.as_ptr() as usize + i) % 2 == 1;
            u64::from(b) << if odd { 8 } else { 0 }
        };
        let head = Self::head_bytes(offset, len);
        let mut sum = 0u64;
        for i in 0..head {
            sum += byte(i);
        }
        let words = (len - head) / 8;
        let (mut lo, mut hi) = (0u64, 0u64);
        for k in 0..words {
            // SAFETY: the 8 bytes at `offset + head + 8 k` lie inside the checked range and
            // are 8-byte aligned (the mapping is page aligned, `offset + head` is a multiple
            // of 8).
            let w = unsafe { AtomicU64::from_ptr(base.as_ptr().add(head + 8 * k).cast()) }
                .load(Ordering::Relaxed);
            let w = u64::from_le(w);
            lo += w & 0xffff_ffff;
            hi += w >> 32;
        }
        sum = fold(fold(sum) + fold(lo) + fold(hi));
        let mut tail = 0u64;
        for i in head + 8 * words..len {
            tail += byte(i);
        }
        let sum = fold(sum + fold(tail)) as u16;
        let starts_even = (base.as_ptr() as usize).is_multiple_of(2);
        Ok(if starts_even { sum.swap_bytes() } else { sum })
    }

    /// One `writev(2)` to `fd` of `head` (host memory: a header the caller checked or
    /// built) followed by the region's bytes `[offset, offset + len_bytes)`, which the
    /// kernel reads straight out of DMA memory. Returns the bytes written.
    pub fn write_to_fd(
        &self,
        fd: BorrowedFd<'_>,
        head: &[u8],
        offset: usize,
        len_bytes: usize,
    ) -> io::Result<usize> {
        let at = self
            .checked(offset, len_bytes, 1)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let iov = [
            libc::iovec {
                iov_base: head.as_ptr().cast_mut().cast(),
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: at.as_ptr().cast(),
                iov_len: len_bytes,
            },
        ];
        // SAFETY: both iovecs describe readable memory that outlives the call: `head` is a
        // borrowed slice, the second range lies inside the live mapping (checked); the kernel
        // only reads them. No Rust reference into the mapping is made.
        let n = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// `x` folded to at most 16 bits with end-around carries (its value mod 2^16 − 1, kept
/// one's-complement: a non-zero multiple gives 0xffff).
fn fold(mut x: u64) -> u64 {
    while x > 0xffff {
        x = (x & 0xffff) + (x >> 16);
    }
    x
}

/// Removes an IOMMU mapping; implemented by each backend.
pub trait DmaMapper: Send + Sync {
    /// Unmaps `[iova, iova + len_bytes)`, which this mapper mapped earlier.
    fn unmap(&self, iova: u64, len_bytes: usize) -> Result<(), DeviceError>;
}

/// DMA memory mapped at an IOVA. Dereferences to its [`DmaMemory`] for access.
pub struct DmaRegion {
    /// `None` only after the memory was handed out or leaked.
    memory: Option<DmaMemory>,
    iova: u64,
    mapper: Arc<dyn DmaMapper>,
}

impl fmt::Debug for DmaRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaRegion")
            .field("iova", &format_args!("{:#x}", self.iova))
            .field("memory", &self.memory)
            .finish()
    }
}

impl DmaRegion {
    /// Ties mapped memory to the mapper that will unmap it.
    pub(crate) fn new(memory: DmaMemory, iova: u64, mapper: Arc<dyn DmaMapper>) -> Self {
        Self {
            memory: Some(memory),
            iova,
            mapper,
        }
    }

    /// The IOVA of the first byte: what the device is told.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Removes the IOMMU mapping and returns the memory, which the device can no longer
    /// reach. On failure the memory is leaked (it may still be reachable) and the error
    /// returned.
    pub fn unmap(mut self) -> Result<DmaMemory, DeviceError> {
        let Some(memory) = self.memory.take() else {
            unreachable!("DmaRegion memory taken before the region was consumed")
        };
        match self.mapper.unmap(self.iova, memory.len_bytes()) {
            Ok(()) => Ok(memory),
            Err(err) => {
                std::mem::forget(memory);
                Err(err)
            }
        }
    }
}

impl Deref for DmaRegion {
    type Target = DmaMemory;

    fn deref(&self) -> &DmaMemory {
        // `memory` is `Some` for the whole life of a region: only `unmap(self)` and `drop`
        // take it out, and both consume the region.
        match &self.memory {
            Some(memory) => memory,
            None => unreachable!("DmaRegion memory taken before the region was consumed"),
        }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        let Some(memory) = self.memory.take() else {
            return;
        };
        if self.mapper.unmap(self.iova, memory.len_bytes()).is_err() {
            // The IOMMU may still translate this IOVA to the memory: never free it.
            std::mem::forget(memory);
        }
    }
}

/// Allocates DMA memory: 2 MiB hugepages for requests of at least 2 MiB when `hugepages` and
/// the kernel has free ones, 4 KiB pages otherwise. The length is rounded up to whole pages.
pub(crate) fn allocate_dma_memory(
    sys: &dyn crate::sys::Sys,
    len_bytes: usize,
    hugepages: bool,
) -> std::io::Result<DmaMemory> {
    let round = |page: usize| {
        len_bytes
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))
    };
    if hugepages && len_bytes >= HUGEPAGE_BYTES {
        let len = round(HUGEPAGE_BYTES)?;
        if let Ok(map) = sys.map_anonymous(len, true) {
            return Ok(DmaMemory::from_mapping(map, HUGEPAGE_BYTES));
        }
    }
    let len = round(PAGE_BYTES)?;
    Ok(DmaMemory::from_mapping(
        sys.map_anonymous(len, false)?,
        PAGE_BYTES,
    ))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::sync::Mutex;
    use std::thread;

    use super::*;
    use crate::sys::mock::MockSys;

    struct RecordingMapper(Mutex<Vec<(u64, usize)>>, bool);

    impl DmaMapper for RecordingMapper {
        fn unmap(&self, iova: u64, len_bytes: usize) -> Result<(), DeviceError> {
            self.0.lock().unwrap().push((iova, len_bytes));
            if self.1 {
                Ok(())
            } else {
                Err(DeviceError::ResetUnsupported)
            }
        }
    }

    fn memory(len: usize) -> DmaMemory {
        allocate_dma_memory(&MockSys::new(), len, false).unwrap()
    }

    #[test]
    fn rounds_to_pages_and_falls_back_from_hugepages() {
        let sys = MockSys::new();
        let small = allocate_dma_memory(&sys, 100, true).unwrap();
        assert_eq!(
            (small.len_bytes(), small.page_bytes()),
            (PAGE_BYTES, PAGE_BYTES)
        );
        let huge = allocate_dma_memory(&sys, HUGEPAGE_BYTES + 1, true).unwrap();
        assert_eq!(
            (huge.len_bytes(), huge.page_bytes()),
            (2 * HUGEPAGE_BYTES, HUGEPAGE_BYTES)
        );
        sys.without_hugepages();
        let fallback = allocate_dma_memory(&sys, HUGEPAGE_BYTES + 1, true).unwrap();
        assert_eq!(
            (fallback.len_bytes(), fallback.page_bytes()),
            (HUGEPAGE_BYTES + PAGE_BYTES, PAGE_BYTES)
        );
        assert_eq!(fallback.host_ptr() as usize % PAGE_BYTES, 0);
        let calls = sys.calls();
        assert!(calls.iter().any(|c| c.ends_with("huge=true")), "{calls:?}");
    }

    #[test]
    fn accessors_are_little_endian_and_bounds_checked() {
        let m = memory(4096);
        m.write_u64(8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.read_u32(8).unwrap(), 0x5566_7788);
        let mut bytes = [0u8; 3];
        m.read_bytes(8, &mut bytes).unwrap();
        assert_eq!(bytes, [0x88, 0x77, 0x66]);
        assert_eq!(
            m.read_u32(4096),
            Err(AccessError::OutOfBounds {
                offset: 4096,
                width_bytes: 4,
                len_bytes: 4096
            })
        );
        assert_eq!(
            m.write_u64(4, 0),
            Err(AccessError::Misaligned {
                offset: 4,
                width_bytes: 8
            })
        );
        assert!(m.write_bytes(4090, &[0; 7]).is_err());
        assert!(m.read_bytes(usize::MAX, &mut [0; 2]).is_err());
        // Nothing was written by the refused accesses.
        let mut tail = [1u8; 6];
        m.read_bytes(4090, &mut tail).unwrap();
        assert_eq!(tail, [0; 6]);
    }

    #[test]
    fn byte_copies_at_every_alignment_round_trip() {
        let m = memory(4096);
        let data: Vec<u8> = (0..61).map(|i| i as u8 ^ 0x5a).collect();
        for offset in 0..9 {
            m.fill(0, 128, 0xee).unwrap();
            m.write_bytes(offset, &data).unwrap();
            let mut back = vec![0u8; data.len()];
            m.read_bytes(offset, &mut back).unwrap();
            assert_eq!(back, data);
            let mut guard = [0u8; 1];
            m.read_bytes(offset + data.len(), &mut guard).unwrap();
            assert_eq!(guard, [0xee], "wrote past the end at offset {offset}");
        }
    }

    proptest::proptest! {
        #[test]
        fn copies_match_a_shadow_and_touch_nothing_else(
            offset in 0usize..4000,
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96),
            read_at in 0usize..4000,
            read_len in 0usize..96,
        ) {
            let m = memory(4096);
            m.fill(0, 4096, 0xee).unwrap();
            m.write_bytes(offset, &data).unwrap();
            let mut all = vec![0u8; 4096];
            m.read_bytes(0, &mut all).unwrap();
            let mut shadow = vec![0xeeu8; 4096];
            shadow[offset..offset + data.len()].copy_from_slice(&data);
            proptest::prop_assert_eq!(&all, &shadow);
            let mut back = vec![0u8; data.len()];
            m.read_bytes(offset, &mut back).unwrap();
            proptest::prop_assert_eq!(back, data);
            // Any other range reads what the shadow holds there.
            let mut some = vec![0u8; read_len];
            m.read_bytes(read_at, &mut some).unwrap();
            proptest::prop_assert_eq!(&some[..], &shadow[read_at..read_at + read_len]);
        }
    }

    #[test]
    fn shared_across_threads() {
        let m = Arc::new(memory(4096));
        let writer = {
            let m = m.clone();
            thread::spawn(move || {
                for i in 0..512u64 {
                    m.write_u64(i as usize * 8, i).unwrap();
                }
            })
        };
        writer.join().unwrap();
        for i in 0..512u64 {
            assert_eq!(m.read_u64(i as usize * 8).unwrap(), i);
        }
    }

    #[test]
    fn shared_handles_see_the_same_bytes_and_keep_the_memory_alive() {
        let first = memory(4096);
        let second = first.share();
        first.write_u64(64, 0xfeed).unwrap();
        assert_eq!(second.read_u64(64).unwrap(), 0xfeed);
        drop(first);
        second.write_u32(0, 9).unwrap();
        assert_eq!(second.read_u32(0).unwrap(), 9);
    }

    #[test]
    fn region_unmaps_on_drop_and_leaks_when_unmap_fails() {
        let mapper = Arc::new(RecordingMapper(Mutex::new(Vec::new()), true));
        drop(DmaRegion::new(memory(8192), 0x10_0000, mapper.clone()));
        assert_eq!(*mapper.0.lock().unwrap(), vec![(0x10_0000, 8192)]);

        let region = DmaRegion::new(memory(4096), 0x20_0000, mapper.clone());
        region.write_u32(0, 7).unwrap();
        let back = region.unmap().unwrap();
        assert_eq!(back.read_u32(0).unwrap(), 7);

        let failing = Arc::new(RecordingMapper(Mutex::new(Vec::new()), false));
        let region = DmaRegion::new(memory(4096), 0x30_0000, failing.clone());
        assert!(region.unmap().is_err());
        assert_eq!(failing.0.lock().unwrap().len(), 1);
    }

    /// RFC 1071's sum, byte by byte: big-endian 16-bit words, end-around carries.
    fn reference_sum(bytes: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn ones_sum_reads_in_place_what_rfc_1071_sums() {
        let mem = memory(4096);
        let mut bytes = vec![0u8; 4096];
        let mut x = 0x9e37_79b9_u32;
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        mem.write_bytes(0, &bytes).unwrap();
        // Every start parity and alignment, lengths across the word boundaries.
        for offset in 0..24 {
            for len in (0..80).chain([1499, 1500, 2047, 4096 - 24]) {
                let want = reference_sum(&bytes[offset..offset + len]);
                assert_eq!(
                    mem.ones_sum(offset, len).unwrap(),
                    want,
                    "offset {offset} len {len}"
                );
            }
        }
        // All ones and all zeroes, the two edges of the one's-complement zero.
        mem.write_bytes(100, &[0xff; 64]).unwrap();
        assert_eq!(mem.ones_sum(100, 64).unwrap(), 0xffff);
        mem.write_bytes(200, &[0; 64]).unwrap();
        assert_eq!(mem.ones_sum(201, 40).unwrap(), 0);
        assert!(mem.ones_sum(4000, 97).is_err());
    }

    #[test]
    fn a_read_in_three_parts_lands_in_host_memory_the_region_and_host_memory() {
        let mem = memory(4096);
        let (r, w) = nix::unistd::pipe().unwrap();
        let message: Vec<u8> = (0..100u8).collect();
        nix::unistd::write(&w, &message).unwrap();
        let mut head = [0u8; 10];
        let mut tail = [0u8; 64];
        let n = mem
            .read_from_fd_parts(r.as_fd(), &mut head, 8, 50, &mut tail)
            .unwrap();
        assert_eq!(n, 100);
        assert_eq!(head[..], message[..10]);
        let mut region = [0u8; 50];
        mem.read_bytes(8, &mut region).unwrap();
        assert_eq!(region[..], message[10..60]);
        assert_eq!(tail[..40], message[60..]);
        // A short read fills the parts in order and leaves the tail alone.
        nix::unistd::write(&w, &message[..20]).unwrap();
        let mut tail = [7u8; 4];
        let n = mem
            .read_from_fd_parts(r.as_fd(), &mut head, 8, 50, &mut tail)
            .unwrap();
        assert_eq!(n, 20);
        mem.read_bytes(8, &mut region[..10]).unwrap();
        assert_eq!(region[..10], message[10..20]);
        assert_eq!(tail, [7; 4]);
        let refused = mem.read_from_fd_parts(r.as_fd(), &mut head, 4090, 50, &mut tail);
        assert_eq!(refused.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
