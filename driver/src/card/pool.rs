//! The buffer pool: fixed-size packet buffers in one DMA region, named by index. Nothing is
//! allocated per packet; a buffer is bound to a ring slot, so its index is the slot's.

use super::error::CardError;
use crate::device::Device;
use crate::dma::DmaRegion;
use crate::error::AccessError;

/// Buffers start on this boundary (a cache line).
const ALIGN_BYTES: usize = 64;

pub(crate) struct BufferPool {
    mem: DmaRegion,
    count: u32,
    stride: usize,
    buf_bytes: usize,
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
        })
    }

    /// Bytes one buffer holds.
    pub(crate) fn buf_bytes(&self) -> usize {
        self.buf_bytes
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

    /// The IOVA of buffer `id`.
    pub(crate) fn iova(&self, id: u32) -> Result<u64, AccessError> {
        Ok(self.mem.iova() + self.offset(id, 0)? as u64)
    }

    /// Copies `data` into buffer `id`.
    #[inline]
    pub(crate) fn write(&self, id: u32, data: &[u8]) -> Result<(), AccessError> {
        let at = self.offset(id, data.len())?;
        self.mem.write_bytes(at, data)
    }

    /// Replaces `dst` with the first `len` bytes of buffer `id`.
    #[inline]
    pub(crate) fn read(&self, id: u32, len: usize, dst: &mut Vec<u8>) -> Result<(), AccessError> {
        let at = self.offset(id, len)?;
        dst.clear();
        dst.resize(len, 0);
        self.mem.read_bytes(at, dst)
    }
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
    }
}
