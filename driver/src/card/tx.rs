//! One TX ring of a queue pair: descriptors, completions and the buffers frames are copied
//! into (datasheet §7.3, §7.4). Steady state: one doorbell per batch, no MMIO reads.

use std::sync::atomic::{Ordering, fence};

use espo_fpga::Status;
use espo_fpga::desc::tx_desc;
use espo_fpga::regs::queue;

use super::bar::{Bar0, Blocks};
use super::error::{CardError, TxRequestError};
use super::pool::BufferPool;
use super::ring::{CplRing, DescRing, WordField};
use super::sa_track::SaTrack;
use super::validate::{BadCompletion, BadCompletionCounts, TxPosted, check_tx};
use crate::device::Device;

/// What the card does with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxAction {
    /// Encapsulate with the outbound SA at this table index (§7.7).
    Encap {
        /// SA table index.
        sa_index: u32,
    },
    /// Send as posted (no ESP): software's own ESP packets and non-IPsec frames.
    Bypass,
}

/// A frame to transmit: an Ethernet header and the inner IP packet.
#[derive(Debug, Clone, Copy)]
pub struct TxRequest<'a> {
    /// The caller's cookie, returned with the packet's completion (or non-completion).
    pub tag: u64,
    /// The frame; copied into a DMA buffer by `tx_batch`.
    pub frame: &'a [u8],
    /// What the card does with it.
    pub action: TxAction,
}

/// How a transmitted packet ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// Encapsulated with sequence number `seq` and sent.
    Sent {
        /// The 64-bit sequence number (ESN high half included).
        seq: u64,
    },
    /// Sent as posted.
    SentBypass,
    /// Not sent and no sequence number used: `MALFORMED`, `SA_INVALID`, `SA_EXPIRED`,
    /// `SEQ_EXHAUSTED` or `TOO_BIG` (§7.4).
    Refused(Status),
    /// Not sent, but sequence number `seq` was used (ICV unit error, §10.3).
    EngineError {
        /// The sequence number consumed.
        seq: u64,
    },
    /// The completion failed validation: whether the packet was sent, and with which
    /// sequence number, is unknown. Counted under the reason.
    Unverified(BadCompletion),
}

/// The completion of one submitted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxDone {
    /// The tag the packet was submitted with.
    pub tag: u64,
    /// The SA it was submitted for (`None`: bypass).
    pub sa_index: Option<u32>,
    /// What happened to it.
    pub outcome: TxOutcome,
}

const DESC_ADDR: WordField = WordField::of(tx_desc::ADDR);
const DESC_LEN: WordField = WordField::of(tx_desc::LEN);
const DESC_BYPASS: WordField = WordField::of(tx_desc::BYPASS);
const DESC_SA_INDEX: WordField = WordField::of(tx_desc::SA_INDEX);

pub(crate) struct TxQueue {
    desc: DescRing,
    pub(crate) cpl: CplRing<2>,
    bufs: BufferPool,
    /// What was posted in each slot.
    posted: Vec<TxPosted>,
    /// Free-running producer index: the next descriptor.
    pub(crate) tail: u32,
    tail_reg: u64,
    head_reg: u64,
    base_reg: u64,
    log2_reg: u64,
    cpl_base_reg: u64,
    cpl_log2_reg: u64,
    /// Completions taken since the queue was made (for stall detection).
    pub(crate) completed_total: u64,
}

impl TxQueue {
    pub(crate) fn new(
        device: &dyn Device,
        blocks: &Blocks,
        q: u16,
        log2: u32,
        buf_bytes: usize,
    ) -> Result<Self, CardError> {
        Ok(Self {
            desc: DescRing::new(device, log2, 16)?,
            cpl: CplRing::new(device, log2)?,
            bufs: BufferPool::new(device, 1 << log2, buf_bytes)?,
            posted: vec![TxPosted::default(); 1 << log2],
            tail: 0,
            tail_reg: blocks.queue_reg(q, &queue::TXQ_TAIL),
            head_reg: blocks.queue_reg(q, &queue::TXCQ_HEAD),
            base_reg: blocks.queue_reg(q, &queue::TXQ_BASE),
            log2_reg: blocks.queue_reg(q, &queue::TXQ_LOG2),
            cpl_base_reg: blocks.queue_reg(q, &queue::TXCQ_BASE),
            cpl_log2_reg: blocks.queue_reg(q, &queue::TXCQ_LOG2),
            completed_total: 0,
        })
    }

    fn entries(&self) -> u32 {
        1 << self.desc.log2
    }

    /// Descriptors submitted and not yet completed.
    pub(crate) fn outstanding(&self) -> u32 {
        self.tail.wrapping_sub(self.cpl.head)
    }

    /// Slots free for new descriptors.
    pub(crate) fn free(&self) -> u32 {
        self.entries() - self.outstanding().min(self.entries())
    }

    /// §5.9 for this ring: host indices to 0, completions zero-filled, ring registers written.
    pub(crate) fn program(&mut self, bar: &Bar0) -> Result<(), CardError> {
        self.tail = 0;
        self.cpl.reset()?;
        bar.write64(self.base_reg, self.desc.mem.iova())?;
        bar.write32(self.log2_reg, self.desc.log2)?;
        bar.write64(self.cpl_base_reg, self.cpl.mem.iova())?;
        bar.write32(self.cpl_log2_reg, self.cpl.log2)?;
        Ok(())
    }

    /// Checks a batch before anything of it is written.
    pub(crate) fn check(
        requests: &[TxRequest<'_>],
        max_frame: usize,
        sa_table_size: u32,
    ) -> Result<(), CardError> {
        for (position, r) in requests.iter().enumerate() {
            let reason = if !(14..=max_frame).contains(&r.frame.len()) {
                TxRequestError::FrameLength {
                    len_bytes: r.frame.len(),
                    max_bytes: max_frame,
                }
            } else if let TxAction::Encap { sa_index } = r.action
                && sa_index >= sa_table_size
            {
                TxRequestError::SaIndex {
                    sa_index,
                    table_size: sa_table_size,
                }
            } else {
                continue;
            };
            return Err(CardError::TxRequest { position, reason });
        }
        Ok(())
    }

    /// Copies as many frames as there are free slots into their buffers, writes their
    /// descriptors and rings the doorbell once. Returns how many were taken (checked by
    /// [`check`](Self::check) first).
    #[inline]
    pub(crate) fn submit(
        &mut self,
        bar: &Bar0,
        requests: &[TxRequest<'_>],
        sas: &mut SaTrack,
    ) -> Result<usize, CardError> {
        let n = requests.len().min(self.free() as usize);
        if n == 0 {
            return Ok(0);
        }
        let mask = self.entries() - 1;
        for (i, r) in requests.iter().take(n).enumerate() {
            let index = self.tail.wrapping_add(i as u32);
            let slot = index & mask;
            self.bufs.write(slot, r.frame)?;
            let sa = match r.action {
                TxAction::Encap { sa_index } => Some(sa_index),
                TxAction::Bypass => None,
            };
            let mut words = [0u64; 2];
            DESC_ADDR.put(&mut words, self.bufs.iova(slot)?);
            DESC_LEN.put(&mut words, r.frame.len() as u64);
            DESC_BYPASS.put(&mut words, u64::from(sa.is_none()));
            DESC_SA_INDEX.put(&mut words, u64::from(sa.unwrap_or(0)));
            self.desc.write(index, &words)?;
            if let Some(p) = self.posted.get_mut(slot as usize) {
                *p = TxPosted { tag: r.tag, sa };
            }
            if let Some(sa) = sa {
                sas.submitted(sa);
            }
        }
        // Counted as outstanding before the doorbell: whatever the card sees of them, the
        // host accounts for every one.
        self.tail = self.tail.wrapping_add(n as u32);
        fence(Ordering::Release);
        bar.write32(self.tail_reg, self.tail)?;
        Ok(n)
    }

    /// Takes up to `budget` completions, checks each against what was posted, and returns
    /// the slots with one doorbell (`doorbell` false while recovering: the card is stopped).
    #[inline]
    pub(crate) fn complete(
        &mut self,
        bar: &Bar0,
        out: &mut Vec<TxDone>,
        budget: usize,
        sas: &mut SaTrack,
        bad: &mut BadCompletionCounts,
        doorbell: bool,
    ) -> Result<usize, CardError> {
        let mask = self.entries() - 1;
        let mut n = 0;
        while n < budget && self.cpl.head != self.tail {
            let Some(words) = self.cpl.peek()? else {
                break;
            };
            let index = self.cpl.head;
            let posted = self
                .posted
                .get((index & mask) as usize)
                .copied()
                .unwrap_or_default();
            let outcome = match check_tx(&words, index, &posted, sas) {
                Ok(c) => {
                    if let Some(sa) = posted.sa {
                        sas.completed(sa, c.seq);
                    }
                    match (c.status, c.seq) {
                        (Status::Ok, Some(seq)) => TxOutcome::Sent { seq },
                        (Status::EngineError, Some(seq)) => TxOutcome::EngineError { seq },
                        (Status::Bypass, _) => TxOutcome::SentBypass,
                        (status, _) => TxOutcome::Refused(status),
                    }
                }
                Err(reason) => {
                    bad.add(reason);
                    if let Some(sa) = posted.sa {
                        sas.unaccounted(sa);
                    }
                    TxOutcome::Unverified(reason)
                }
            };
            out.push(TxDone {
                tag: posted.tag,
                sa_index: posted.sa,
                outcome,
            });
            self.cpl.head = index.wrapping_add(1);
            n += 1;
        }
        if n > 0 {
            self.completed_total += n as u64;
            if doorbell {
                fence(Ordering::Release);
                bar.write32(self.head_reg, self.cpl.head)?;
            }
        }
        Ok(n)
    }

    /// Every descriptor still outstanding, oldest first, as (index, what was posted); the
    /// ring is left empty. Used by recovery once the card can no longer complete them.
    pub(crate) fn abandon(&mut self) -> Vec<(u32, TxPosted)> {
        let mask = self.entries() - 1;
        let mut left = Vec::with_capacity(self.outstanding() as usize);
        while self.cpl.head != self.tail {
            let index = self.cpl.head;
            if let Some(p) = self.posted.get((index & mask) as usize) {
                left.push((index, *p));
            }
            self.cpl.head = index.wrapping_add(1);
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_fpga::TxDescriptor;

    #[test]
    fn descriptor_words_are_the_contract_encoding() {
        let d = TxDescriptor {
            addr: 0x1234_5678_9abc,
            len: 1514,
            bypass: true,
            sa_index: 0x0102_0304,
        };
        let mut words = [0u64; 2];
        DESC_ADDR.put(&mut words, d.addr);
        DESC_LEN.put(&mut words, d.len.into());
        DESC_BYPASS.put(&mut words, 1);
        DESC_SA_INDEX.put(&mut words, d.sa_index.into());
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&words[0].to_le_bytes());
        bytes[8..].copy_from_slice(&words[1].to_le_bytes());
        assert_eq!(bytes, d.encode());
    }
}
