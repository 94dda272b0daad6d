//! Rings in DMA memory (datasheet §7.1, §7.2): descriptor rings the host fills and
//! completion rings the card fills, read by phase bit with an acquire fence after it.

use std::sync::atomic::{Ordering, fence};

use espo_fpga::LayoutField;
use espo_fpga::desc::phase_for;

use super::error::CardError;
use crate::device::Device;
use crate::dma::DmaRegion;
use crate::error::AccessError;

/// A field of a DMA structure that lies inside one little-endian 64-bit word, located
/// from the contract's layout table (checked when the constant is built).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WordField {
    pub word: usize,
    shift: u32,
    mask: u64,
}

impl WordField {
    pub(crate) const fn of(f: LayoutField) -> Self {
        let word = (f.offset_bits / 64) as usize;
        assert!(f.width_bits >= 1 && f.width_bits <= 64);
        assert!((f.offset_bits + f.width_bits - 1) / 64 == f.offset_bits / 64);
        let mask = if f.width_bits == 64 {
            u64::MAX
        } else {
            (1u64 << f.width_bits) - 1
        };
        Self {
            word,
            shift: f.offset_bits % 64,
            mask,
        }
    }

    #[inline]
    pub(crate) fn get(&self, words: &[u64]) -> u64 {
        words
            .get(self.word)
            .map_or(0, |w| (w >> self.shift) & self.mask)
    }

    #[inline]
    pub(crate) fn is_set(&self, words: &[u64]) -> bool {
        self.get(words) != 0
    }

    #[inline]
    pub(crate) fn put(&self, words: &mut [u64], value: u64) {
        if let Some(w) = words.get_mut(self.word) {
            *w = (*w & !(self.mask << self.shift)) | ((value & self.mask) << self.shift);
        }
    }
}

/// A ring the host writes and the card reads (TX descriptors, RX buffers, admin commands).
pub(crate) struct DescRing {
    pub mem: DmaRegion,
    pub log2: u32,
    entry_bytes: usize,
}

impl DescRing {
    pub(crate) fn new(
        device: &dyn Device,
        log2: u32,
        entry_bytes: usize,
    ) -> Result<Self, CardError> {
        let mem = device.alloc_dma(entry_bytes << log2)?;
        Ok(Self {
            mem,
            log2,
            entry_bytes,
        })
    }

    /// Byte offset of the slot of free-running index `index`.
    #[inline]
    pub(crate) fn offset(&self, index: u32) -> usize {
        (index & ((1 << self.log2) - 1)) as usize * self.entry_bytes
    }

    /// Writes the words of the entry at `index`.
    #[inline]
    pub(crate) fn write(&self, index: u32, words: &[u64]) -> Result<(), AccessError> {
        let base = self.offset(index);
        for (i, &w) in words.iter().enumerate() {
            self.mem.write_u64(base + 8 * i, w)?;
        }
        Ok(())
    }

    pub(crate) fn clear(&self) -> Result<(), AccessError> {
        self.mem.fill(0, self.mem.len_bytes(), 0)
    }
}

/// A ring the card writes and the host reads (completions, events), `W` words per entry,
/// the phase bit in bit 63 of the last word.
pub(crate) struct CplRing<const W: usize> {
    pub mem: DmaRegion,
    pub log2: u32,
    /// Free-running consumer index: the next entry the host expects.
    pub head: u32,
}

impl<const W: usize> CplRing<W> {
    const ENTRY_BYTES: usize = 8 * W;

    pub(crate) fn new(device: &dyn Device, log2: u32) -> Result<Self, CardError> {
        let mem = device.alloc_dma(Self::ENTRY_BYTES << log2)?;
        let ring = Self { mem, log2, head: 0 };
        ring.mem.fill(0, ring.mem.len_bytes(), 0)?;
        Ok(ring)
    }

    /// Zero-fills the ring (phase 0 everywhere: nothing looks valid) and restarts at index 0,
    /// as datasheet §5.5 and §5.9 require before the ring is (re-)enabled.
    pub(crate) fn reset(&mut self) -> Result<(), AccessError> {
        self.head = 0;
        self.mem.fill(0, self.mem.len_bytes(), 0)
    }

    /// The entry at `head` if the card has written it: its phase bit is the one expected for
    /// this pass (§7.2). The other words are read after an acquire fence.
    #[inline]
    pub(crate) fn peek(&self) -> Result<Option<[u64; W]>, AccessError> {
        let base = (self.head & ((1 << self.log2) - 1)) as usize * Self::ENTRY_BYTES;
        let last = self.mem.read_u64(base + 8 * (W - 1))?;
        if (last >> 63 != 0) != phase_for(self.head, self.log2) {
            return Ok(None);
        }
        fence(Ordering::Acquire);
        let mut words = [0u64; W];
        for (i, w) in words.iter_mut().enumerate().take(W - 1) {
            *w = self.mem.read_u64(base + 8 * i)?;
        }
        words[W - 1] = last;
        Ok(Some(words))
    }
}

/// The phase bit of every completion structure is bit 63 of its last word.
const _: () = {
    use espo_fpga::admin::{admin_cpl, event_entry};
    use espo_fpga::desc::{rx_cpl, tx_cpl};
    let phases = [
        (tx_cpl::PHASE, 2),
        (rx_cpl::PHASE, 4),
        (admin_cpl::PHASE, 2),
        (event_entry::PHASE, 2),
    ];
    let mut i = 0;
    while i < phases.len() {
        let (f, words) = phases[i];
        assert!(f.offset_bits == 64 * words - 1 && f.width_bits == 1);
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;
    use espo_fpga::desc::tx_cpl;
    use espo_fpga::{Status, TxCompletion};

    #[test]
    fn word_fields_read_what_the_contract_encodes() {
        let c = TxCompletion {
            seq: 0x0102_0304_0506_0708,
            sa_index: 0xAABB_CCDD,
            desc_index: 0x1234,
            status: Status::TooBig,
            phase: true,
        };
        let b = c.encode();
        let mut words = [0u64; 2];
        for (i, w) in words.iter_mut().enumerate() {
            let mut le = [0u8; 8];
            le.copy_from_slice(&b[8 * i..8 * i + 8]);
            *w = u64::from_le_bytes(le);
        }
        assert_eq!(WordField::of(tx_cpl::SEQ).get(&words), c.seq);
        assert_eq!(WordField::of(tx_cpl::SA_INDEX).get(&words), 0xAABB_CCDD);
        assert_eq!(WordField::of(tx_cpl::DESC_INDEX).get(&words), 0x1234);
        assert_eq!(WordField::of(tx_cpl::STATUS).get(&words), 9);
        assert!(WordField::of(tx_cpl::PHASE).is_set(&words));
        let mut again = [0u64; 2];
        for f in [
            tx_cpl::SEQ,
            tx_cpl::SA_INDEX,
            tx_cpl::DESC_INDEX,
            tx_cpl::STATUS,
        ] {
            let wf = WordField::of(f);
            wf.put(&mut again, wf.get(&words));
        }
        WordField::of(tx_cpl::PHASE).put(&mut again, 1);
        assert_eq!(again, words);
    }
}
