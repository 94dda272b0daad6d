//! The buffer pool: fixed-size packet buffers in one DMA region, named by index, and a
//! free list of them. Nothing is allocated per packet. A ring takes a free buffer for each
//! descriptor it posts and gives it back when the card is done with it; a buffer lent to
//! the caller (a zero-copy TX frame being filled, an RX frame being delivered) is off the
//! free list until the caller returns it. Each buffer's state is tracked, so a handle
//! posted or returned twice is refused instead of corrupting the list.

use std::io;
use std::os::fd::BorrowedFd;

use super::error::CardError;
use crate::device::Device;
use crate::dma::DmaRegion;
use crate::error::AccessError;

/// Buffers start on this boundary (a cache line).
const ALIGN_BYTES: usize = 64;

/// Where a buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufState {
    /// On the free list.
    Free,
    /// Posted to the card (a descriptor names it).
    Ring,
    /// With the caller.
    Lent,
}

pub(crate) struct BufferPool {
    mem: DmaRegion,
    count: u32,
    stride: usize,
    buf_bytes: usize,
    free: Vec<u32>,
    state: Vec<BufState>,
}

impl BufferPool {
    pub(crate) fn new(
        device: &dyn Device,
        count: u32,
        buf_bytes: usize,
    ) -> Result<Self, CardError> {
        let stride = buf_bytes.next_multiple_of(ALIGN_BYTES);
        let len = stride.checked_mul(count as usize).ok_or(CardError::Config(
            "buffer pool larger than the address space",
        ))?;
        Ok(Self {
            mem: device.alloc_dma(len)?,
            count,
            stride,
            buf_bytes,
            // Popped from the end: buffer 0 first.
            free: (0..count).rev().collect(),
            state: vec![BufState::Free; count as usize],
        })
    }

    /// Bytes one buffer holds.
    pub(crate) fn buf_bytes(&self) -> usize {
        self.buf_bytes
    }

    /// Buffers on the free list.
    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Takes a free buffer into state `to` (`Ring` or `Lent`).
    #[inline]
    pub(crate) fn take(&mut self, to: BufState) -> Option<u32> {
        let id = self.free.pop()?;
        if let Some(s) = self.state.get_mut(id as usize) {
            *s = to;
        }
        Some(id)
    }

    /// Moves buffer `id` from state `from` to `to` (to `Free`: back on the free list);
    /// false, and nothing changed, when `id` is not in state `from`.
    #[inline]
    pub(crate) fn move_buf(&mut self, id: u32, from: BufState, to: BufState) -> bool {
        match self.state.get_mut(id as usize) {
            Some(s) if *s == from => {
                *s = to;
                if to == BufState::Free {
                    self.free.push(id);
                }
                true
            }
            _ => false,
        }
    }

    /// The buffers lent to the caller, in increasing order.
    pub(crate) fn lent_ids(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count).filter(|&id| self.state(id) == Some(BufState::Lent))
    }

    /// `id`, if it is lent to the caller; refused (naming `queue`, whose pool this is)
    /// otherwise.
    pub(crate) fn lent(&self, queue: u16, id: u32) -> Result<u32, CardError> {
        match self.state(id) {
            Some(BufState::Lent) => Ok(id),
            _ => Err(CardError::NotLent { queue, buf: id }),
        }
    }

    /// [`write_at`](Self::write_at) into a buffer lent to the caller.
    pub(crate) fn write_lent(
        &self,
        queue: u16,
        id: u32,
        at: usize,
        data: &[u8],
    ) -> Result<(), CardError> {
        Ok(self.write_at(self.lent(queue, id)?, at, data)?)
    }

    /// [`read_at`](Self::read_at) from a buffer lent to the caller.
    pub(crate) fn read_lent(
        &self,
        queue: u16,
        id: u32,
        at: usize,
        dst: &mut [u8],
    ) -> Result<(), CardError> {
        Ok(self.read_at(self.lent(queue, id)?, at, dst)?)
    }

    /// `N` 8-byte words of a buffer lent to the caller from byte `at` (a multiple of 8) on.
    #[inline]
    pub(crate) fn read_lent_words<const N: usize>(
        &self,
        queue: u16,
        id: u32,
        at: usize,
    ) -> Result<[u64; N], CardError> {
        let off = self.range(self.lent(queue, id)?, at, 8 * N)?;
        Ok(self.mem.read_words(off)?)
    }

    /// `words` into a buffer lent to the caller from byte `at` (a multiple of 8) on.
    #[inline]
    pub(crate) fn write_lent_words(
        &self,
        queue: u16,
        id: u32,
        at: usize,
        words: &[u64],
    ) -> Result<(), CardError> {
        let off = self.range(self.lent(queue, id)?, at, 8 * words.len())?;
        Ok(self.mem.write_words(off, words)?)
    }

    /// [`read_from_fd`](Self::read_from_fd) into a buffer lent to the caller.
    pub(crate) fn read_fd_lent(
        &self,
        queue: u16,
        id: u32,
        at: usize,
        fd: BorrowedFd<'_>,
    ) -> io::Result<usize> {
        let id = self.lent(queue, id).map_err(invalid)?;
        self.read_from_fd(id, at, fd)
    }

    /// One `readv(2)` from `fd` into `head`, a buffer lent to the caller from byte `at` on
    /// (at most `len` bytes, and not past its end), and `tail`
    /// ([`DmaMemory::read_from_fd_parts`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_fd_lent_parts(
        &self,
        queue: u16,
        id: u32,
        at: usize,
        len: usize,
        fd: BorrowedFd<'_>,
        head: &mut [u8],
        tail: &mut [u8],
    ) -> io::Result<usize> {
        let id = self.lent(queue, id).map_err(invalid)?;
        let room = self.buf_bytes.saturating_sub(at).min(len);
        let off = self.range(id, at, room).map_err(invalid)?;
        self.mem.read_from_fd_parts(fd, head, off, room, tail)
    }

    /// The one's-complement sum of bytes `[at, at + len)` of a buffer lent to the caller
    /// ([`DmaMemory::ones_sum`]).
    pub(crate) fn ones_sum_lent(
        &self,
        queue: u16,
        id: u32,
        at: usize,
        len: usize,
    ) -> Result<u16, CardError> {
        let off = self.range(self.lent(queue, id)?, at, len)?;
        Ok(self.mem.ones_sum(off, len)?)
    }

    /// [`write_to_fd`](Self::write_to_fd) from a buffer lent to the caller.
    pub(crate) fn write_fd_lent(
        &self,
        queue: u16,
        id: u32,
        fd: BorrowedFd<'_>,
        head: &[u8],
        at: usize,
        len: usize,
    ) -> io::Result<usize> {
        let id = self.lent(queue, id).map_err(invalid)?;
        self.write_to_fd(id, fd, head, at, len)
    }

    /// The state of buffer `id` (`None`: no such buffer).
    pub(crate) fn state(&self, id: u32) -> Option<BufState> {
        self.state.get(id as usize).copied()
    }

    fn refuse(&self, id: u32, len: usize) -> AccessError {
        AccessError::OutOfBounds {
            offset: u64::from(id) * self.stride as u64,
            width_bytes: len as u64,
            len_bytes: self.buf_bytes as u64,
        }
    }

    fn offset(&self, id: u32, len: usize) -> Result<usize, AccessError> {
        if id >= self.count || len > self.buf_bytes {
            return Err(self.refuse(id, len));
        }
        Ok(id as usize * self.stride)
    }

    /// `[at, at + len)` of buffer `id`, as an offset in the region.
    fn range(&self, id: u32, at: usize, len: usize) -> Result<usize, AccessError> {
        let end = at.checked_add(len).ok_or(self.refuse(id, usize::MAX))?;
        Ok(self.offset(id, end)? + at)
    }

    /// The IOVA of buffer `id`.
    pub(crate) fn iova(&self, id: u32) -> Result<u64, AccessError> {
        Ok(self.mem.iova() + self.offset(id, 0)? as u64)
    }

    /// Copies `data` into buffer `id`.
    #[inline]
    pub(crate) fn write(&self, id: u32, data: &[u8]) -> Result<(), AccessError> {
        self.write_at(id, 0, data)
    }

    /// Copies `data` into buffer `id` from byte `at` on.
    #[inline]
    pub(crate) fn write_at(&self, id: u32, at: usize, data: &[u8]) -> Result<(), AccessError> {
        let off = self.range(id, at, data.len())?;
        self.mem.write_bytes(off, data)
    }

    /// Replaces `dst` with the first `len` bytes of buffer `id`.
    #[inline]
    pub(crate) fn read(&self, id: u32, len: usize, dst: &mut Vec<u8>) -> Result<(), AccessError> {
        let at = self.offset(id, len)?;
        dst.clear();
        dst.resize(len, 0);
        self.mem.read_bytes(at, dst)
    }

    /// Copies `dst.len()` bytes of buffer `id` from byte `at` on into `dst`.
    #[inline]
    pub(crate) fn read_at(&self, id: u32, at: usize, dst: &mut [u8]) -> Result<(), AccessError> {
        let off = self.range(id, at, dst.len())?;
        self.mem.read_bytes(off, dst)
    }

    /// One `read(2)` from `fd` into buffer `id` from byte `at` on, at most to its end.
    pub(crate) fn read_from_fd(&self, id: u32, at: usize, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let room = self.buf_bytes.saturating_sub(at);
        let off = self.range(id, at, room).map_err(invalid)?;
        self.mem.read_from_fd(fd, off, room)
    }

    /// One `writev(2)` to `fd`: `head`, then bytes `[at, at + len)` of buffer `id`.
    pub(crate) fn write_to_fd(
        &self,
        id: u32,
        fd: BorrowedFd<'_>,
        head: &[u8],
        at: usize,
        len: usize,
    ) -> io::Result<usize> {
        let off = self.range(id, at, len).map_err(invalid)?;
        self.mem.write_to_fd(fd, head, off, len)
    }
}

/// A refused buffer access as the I/O error of a call that does I/O.
fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

#[cfg(all(test, feature = "model"))]
mod tests {
    use super::*;
    use crate::model::ModelDevice;
    use espo_model::ModelParams;

    #[test]
    fn buffers_are_separate_and_bounded() {
        let dev = ModelDevice::with_params(ModelParams::zero_latency());
        let pool = BufferPool::new(&dev, 4, 100).unwrap();
        assert_eq!(pool.iova(1).unwrap() - pool.iova(0).unwrap(), 128);
        pool.write(1, &[7; 100]).unwrap();
        pool.write(2, &[9; 3]).unwrap();
        let mut back = Vec::new();
        pool.read(1, 100, &mut back).unwrap();
        assert_eq!(back, vec![7; 100]);
        pool.read(2, 4, &mut back).unwrap();
        assert_eq!(back, vec![9, 9, 9, 0]);
        assert!(pool.write(0, &[0; 101]).is_err());
        assert!(pool.read(4, 1, &mut back).is_err());
        assert!(pool.iova(4).is_err());
        assert!(pool.write_at(3, 99, &[1, 2]).is_err());
        assert!(pool.read_at(3, usize::MAX, &mut [0; 2]).is_err());
    }

    #[test]
    fn the_free_list_tracks_each_buffer() {
        let dev = ModelDevice::with_params(ModelParams::zero_latency());
        let mut pool = BufferPool::new(&dev, 3, 64).unwrap();
        let a = pool.take(BufState::Lent).unwrap();
        let b = pool.take(BufState::Ring).unwrap();
        let c = pool.take(BufState::Ring).unwrap();
        assert_eq!((a, b, c), (0, 1, 2));
        assert_eq!(pool.take(BufState::Lent), None);
        // A buffer is returned only from the state it is in, once.
        assert!(!pool.move_buf(a, BufState::Ring, BufState::Free));
        assert!(pool.move_buf(a, BufState::Lent, BufState::Free));
        assert!(!pool.move_buf(a, BufState::Lent, BufState::Free));
        assert!(!pool.move_buf(7, BufState::Lent, BufState::Free));
        assert_eq!(pool.free_count(), 1);
        assert_eq!(pool.take(BufState::Lent), Some(a));
    }

    #[test]
    fn fd_io_goes_straight_through_the_buffer() {
        use std::io::{Read, Write};
        use std::os::fd::AsFd;
        use std::os::unix::net::UnixStream;
        let dev = ModelDevice::with_params(ModelParams::zero_latency());
        let pool = BufferPool::new(&dev, 2, 100).unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(&[5; 40]).unwrap();
        assert_eq!(pool.read_from_fd(1, 10, b.as_fd()).unwrap(), 40);
        let mut back = [0u8; 42];
        pool.read_at(1, 9, &mut back).unwrap();
        assert_eq!(back[0], 0);
        assert_eq!(&back[1..41], &[5; 40]);
        assert_eq!(back[41], 0);
        assert_eq!(pool.write_to_fd(1, b.as_fd(), &[1, 2], 10, 40).unwrap(), 42);
        let mut got = [0u8; 42];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got[..2], &[1, 2]);
        assert_eq!(&got[2..], &[5; 40]);
        // Past the buffer's end: refused, nothing read or written.
        assert!(pool.write_to_fd(1, b.as_fd(), &[], 90, 11).is_err());
        assert!(pool.read_from_fd(1, 101, b.as_fd()).is_err());
    }
}
