//! Host memory as the card sees it: windows of IOVA space mapped by the driver onto
//! host buffers. Every DMA the model performs goes through [`Iommu`]; an access not
//! wholly inside one window is refused, and the card reports a DMA fault.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Host memory the card may reach by DMA. Implemented by the driver for its own DMA
/// buffers; [`VecMemory`] is a safe implementation for tests. Offsets are relative to
/// the start of the memory; the model never calls with an out-of-range offset.
pub trait HostMemory: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn read(&self, offset: usize, buf: &mut [u8]);
    fn write(&self, offset: usize, data: &[u8]);
}

/// Host memory in a `Vec`, for tests and tools.
#[derive(Debug, Default)]
pub struct VecMemory {
    bytes: Mutex<Vec<u8>>,
}

impl VecMemory {
    pub fn new(len: usize) -> Arc<Self> {
        Arc::new(VecMemory {
            bytes: Mutex::new(vec![0; len]),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut guard = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

impl HostMemory for VecMemory {
    fn len(&self) -> usize {
        self.with(|v| v.len())
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.with(|v| {
            if let Some(src) = v.get(offset..offset + buf.len()) {
                buf.copy_from_slice(src);
            }
        })
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.with(|v| {
            if let Some(dst) = v.get_mut(offset..offset + data.len()) {
                dst.copy_from_slice(data);
            }
        })
    }
}

/// Why a mapping was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    #[error("IOVA window {iova:#x}+{len:#x} is empty or wraps around")]
    BadWindow { iova: u64, len: u64 },
    #[error("IOVA window {iova:#x}+{len:#x} overlaps a mapped window")]
    Overlap { iova: u64, len: u64 },
    #[error(
        "IOVA window of {len:#x} bytes at offset {offset:#x} exceeds host memory of {mem_len:#x} bytes"
    )]
    BeyondMemory { offset: u64, len: u64, mem_len: u64 },
    #[error("no window is mapped at IOVA {0:#x}")]
    NotMapped(u64),
}

struct Window {
    len: u64,
    mem_offset: usize,
    mem: Arc<dyn HostMemory>,
}

/// The IOMMU: IOVA windows onto host memory.
#[derive(Default)]
pub struct Iommu {
    windows: BTreeMap<u64, Window>,
}

impl std::fmt::Debug for Iommu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.windows.iter().map(|(iova, w)| (iova, w.len)))
            .finish()
    }
}

impl Iommu {
    /// Maps `len` bytes of `mem`, from `mem_offset`, at `iova`.
    pub fn map(
        &mut self,
        iova: u64,
        len: u64,
        mem: Arc<dyn HostMemory>,
        mem_offset: usize,
    ) -> Result<(), MapError> {
        let end = iova
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(MapError::BadWindow { iova, len })?;
        if (mem_offset as u64).saturating_add(len) > mem.len() as u64 {
            return Err(MapError::BeyondMemory {
                offset: mem_offset as u64,
                len,
                mem_len: mem.len() as u64,
            });
        }
        let before = self.windows.range(..end).next_back();
        if before.is_some_and(|(&start, w)| start + w.len > iova) {
            return Err(MapError::Overlap { iova, len });
        }
        self.windows.insert(
            iova,
            Window {
                len,
                mem_offset,
                mem,
            },
        );
        Ok(())
    }

    /// Removes the window that starts at `iova`.
    pub fn unmap(&mut self, iova: u64) -> Result<(), MapError> {
        self.windows
            .remove(&iova)
            .map(|_| ())
            .ok_or(MapError::NotMapped(iova))
    }

    fn locate(&self, iova: u64, len: usize) -> Option<(&Window, usize)> {
        let (&start, w) = self.windows.range(..=iova).next_back()?;
        let end = iova.checked_add(len as u64)?;
        if end > start + w.len {
            return None;
        }
        Some((w, w.mem_offset + (iova - start) as usize))
    }

    /// Reads `buf.len()` bytes at `iova`; `false` (nothing read) outside every window.
    pub fn read(&self, iova: u64, buf: &mut [u8]) -> bool {
        match self.locate(iova, buf.len()) {
            Some((w, off)) => {
                w.mem.read(off, buf);
                true
            }
            None => false,
        }
    }

    /// Writes `data` at `iova`; `false` (nothing written) outside every window.
    pub fn write(&self, iova: u64, data: &[u8]) -> bool {
        match self.locate(iova, data.len()) {
            Some((w, off)) => {
                w.mem.write(off, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_must_lie_inside_one_window() {
        let mem = VecMemory::new(0x3000);
        let mut mmu = Iommu::default();
        mmu.map(0x10_0000, 0x1000, mem.clone(), 0).expect("map");
        mmu.map(0x20_0000, 0x1000, mem.clone(), 0x1000)
            .expect("map");
        assert!(mmu.write(0x10_0FFC, &[1, 2, 3, 4]));
        assert!(
            !mmu.write(0x10_0FFD, &[1, 2, 3, 4]),
            "crosses the end of the window"
        );
        assert!(!mmu.read(0x0F_FFFF, &mut [0; 1]), "below the window");
        assert!(mmu.write(0x20_0000, &[9]));
        let mut b = [0u8; 1];
        mem.read(0x1000, &mut b);
        assert_eq!(b, [9], "second window maps memory offset 0x1000");
        assert_eq!(
            mmu.map(0x10_0800, 0x1000, mem.clone(), 0),
            Err(MapError::Overlap {
                iova: 0x10_0800,
                len: 0x1000
            })
        );
        assert!(matches!(
            mmu.map(0x30_0000, 0x4000, mem.clone(), 0),
            Err(MapError::BeyondMemory { .. })
        ));
        mmu.unmap(0x10_0000).expect("unmap");
        assert!(!mmu.read(0x10_0000, &mut [0; 4]));
        assert_eq!(mmu.unmap(0x10_0000), Err(MapError::NotMapped(0x10_0000)));
    }
}
