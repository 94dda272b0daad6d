//! One TX ring of a queue pair: descriptors, completions and the buffers frames are in
//! (datasheet §7.3, §7.4). Steady state: one doorbell per batch, no MMIO reads.
//!
//! A frame reaches a buffer one of two ways: copied in by [`Card::tx_batch`](super::Card::tx_batch),
//! or written there by the caller into a buffer the queue lent it
//! ([`Card::tx_lend`](super::Card::tx_lend), then [`Card::tx_post`](super::Card::tx_post)):
//! zero-copy, the frame's source (a TUN read) lands where the card reads it. The pool
//! holds twice the ring's entries, so the ring always finds a buffer for each free slot
//! while the caller holds at most a ring's worth of lent ones.

use std::sync::atomic::{Ordering, fence};

use espo_fpga::Status;
use espo_fpga::desc::tx_desc;
use espo_fpga::regs::queue;

use super::bar::{Bar0, Blocks};
use super::error::{CardError, TxRequestError};
use super::pool::{BufState, BufferPool};
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
    /// Posted from a lent buffer: the buffer, lent to the caller again with the frame still
    /// in it (to post once more, read back, or return with
    /// [`Card::tx_return`](super::Card::tx_return)).
    pub lent: Option<TxBuf>,
}

/// A TX buffer lent to the caller ([`Card::tx_lend`](super::Card::tx_lend)): a handle
/// naming the queue and the buffer. The driver tracks each buffer's state, so a handle used
/// after it was posted or returned is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxBuf {
    pub(crate) queue: u16,
    pub(crate) id: u32,
}

impl TxBuf {
    /// The queue pair whose pool the buffer is in.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// A frame in a lent buffer, to post ([`Card::tx_post`](super::Card::tx_post)).
#[derive(Debug, Clone, Copy)]
pub struct TxLent {
    /// The caller's cookie, returned with the completion.
    pub tag: u64,
    /// The buffer the frame is in, from its first byte.
    pub buf: TxBuf,
    /// Length of the frame.
    pub len: usize,
    /// What the card does with it.
    pub action: TxAction,
}

const DESC_ADDR: WordField = WordField::of(tx_desc::ADDR);
const DESC_LEN: WordField = WordField::of(tx_desc::LEN);
const DESC_BYPASS: WordField = WordField::of(tx_desc::BYPASS);
const DESC_SA_INDEX: WordField = WordField::of(tx_desc::SA_INDEX);

pub(crate) struct TxQueue {
    desc: DescRing,
    pub(crate) cpl: CplRing<2>,
    pub(crate) bufs: BufferPool,
    /// Buffers with the caller (lent, or posted from a lent buffer).
    lent_out: u32,
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
            bufs: BufferPool::new(device, 2 << log2, buf_bytes)?,
            lent_out: 0,
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
            check_one(r.frame.len(), r.action, max_frame, sa_table_size)
                .map_err(|reason| CardError::TxRequest { position, reason })?;
        }
        Ok(())
    }

    /// Checks a batch of lent frames of queue `q` before anything of it is posted.
    pub(crate) fn check_lent(
        &self,
        q: u16,
        posts: &[TxLent],
        max_frame: usize,
        sa_table_size: u32,
    ) -> Result<(), CardError> {
        for (position, p) in posts.iter().enumerate() {
            let lent = p.buf.queue == q && self.bufs.state(p.buf.id) == Some(BufState::Lent);
            let reason = if lent {
                match check_one(p.len, p.action, max_frame, sa_table_size) {
                    Ok(()) => continue,
                    Err(reason) => reason,
                }
            } else {
                TxRequestError::NotLent {
                    queue: p.buf.queue,
                    buf: p.buf.id,
                }
            };
            return Err(CardError::TxRequest { position, reason });
        }
        Ok(())
    }

    /// Lends a free buffer to the caller; `None` while it holds a ring's worth.
    pub(crate) fn lend(&mut self, q: u16) -> Option<TxBuf> {
        if self.lent_out >= self.entries() {
            return None;
        }
        let id = self.bufs.take(BufState::Lent)?;
        self.lent_out += 1;
        Some(TxBuf { queue: q, id })
    }

    /// Takes a lent buffer back onto the free list.
    pub(crate) fn give_back(&mut self, buf: TxBuf) -> Result<(), CardError> {
        let id = self.bufs.lent(buf.queue, buf.id)?;
        self.bufs.move_buf(id, BufState::Lent, BufState::Free);
        self.lent_out -= 1;
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
        let n = requests
            .len()
            .min(self.free() as usize)
            .min(self.bufs.free_count());
        if n == 0 {
            return Ok(0);
        }
        for (i, r) in requests.iter().take(n).enumerate() {
            let Some(buf) = self.bufs.take(BufState::Ring) else {
                break;
            };
            if let Err(e) = self.bufs.write(buf, r.frame) {
                self.bufs.move_buf(buf, BufState::Ring, BufState::Free);
                return Err(e.into());
            }
            self.describe(i as u32, buf, r.frame.len(), r.tag, r.action, false, sas)?;
        }
        self.ring_doorbell(bar, n)
    }

    /// Posts as many of `posts` (checked by [`check_lent`](Self::check_lent)) as there
    /// are free slots, from their lent buffers, and rings the doorbell once. Returns how
    /// many were taken.
    #[inline]
    pub(crate) fn post_lent(
        &mut self,
        bar: &Bar0,
        posts: &[TxLent],
        sas: &mut SaTrack,
    ) -> Result<usize, CardError> {
        let n = posts.len().min(self.free() as usize);
        if n == 0 {
            return Ok(0);
        }
        // Each buffer leaves the caller's hands once: one named twice in the batch is no
        // longer lent the second time, and the batch is refused whole.
        for (position, p) in posts.iter().take(n).enumerate() {
            if !self.bufs.move_buf(p.buf.id, BufState::Lent, BufState::Ring) {
                for q in posts.iter().take(position) {
                    self.bufs.move_buf(q.buf.id, BufState::Ring, BufState::Lent);
                }
                let reason = TxRequestError::NotLent {
                    queue: p.buf.queue,
                    buf: p.buf.id,
                };
                return Err(CardError::TxRequest { position, reason });
            }
        }
        for (i, p) in posts.iter().take(n).enumerate() {
            self.describe(i as u32, p.buf.id, p.len, p.tag, p.action, true, sas)?;
        }
        self.ring_doorbell(bar, n)
    }

    /// Writes the descriptor `i` places after the tail: buffer `buf`, `len` bytes.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn describe(
        &mut self,
        i: u32,
        buf: u32,
        len: usize,
        tag: u64,
        action: TxAction,
        lent: bool,
        sas: &mut SaTrack,
    ) -> Result<(), CardError> {
        let index = self.tail.wrapping_add(i);
        let slot = index & (self.entries() - 1);
        let sa = match action {
            TxAction::Encap { sa_index } => Some(sa_index),
            TxAction::Bypass => None,
        };
        let mut words = [0u64; 2];
        DESC_ADDR.put(&mut words, self.bufs.iova(buf)?);
        DESC_LEN.put(&mut words, len as u64);
        DESC_BYPASS.put(&mut words, u64::from(sa.is_none()));
        DESC_SA_INDEX.put(&mut words, u64::from(sa.unwrap_or(0)));
        self.desc.write(index, &words)?;
        if let Some(p) = self.posted.get_mut(slot as usize) {
            *p = TxPosted { tag, sa, buf, lent };
        }
        if let Some(sa) = sa {
            sas.submitted(sa);
        }
        Ok(())
    }

    /// Counts `n` descriptors as outstanding and tells the card.
    #[inline]
    fn ring_doorbell(&mut self, bar: &Bar0, n: usize) -> Result<usize, CardError> {
        // Counted as outstanding before the doorbell: whatever the card sees of them, the
        // host accounts for every one.
        self.tail = self.tail.wrapping_add(n as u32);
        fence(Ordering::Release);
        bar.write32(self.tail_reg, self.tail)?;
        Ok(n)
    }

    /// The buffer of a finished descriptor: back to the caller when it was lent, to the
    /// free list otherwise.
    #[inline]
    fn release(&mut self, q: u16, posted: &TxPosted) -> Option<TxBuf> {
        if posted.lent {
            self.bufs
                .move_buf(posted.buf, BufState::Ring, BufState::Lent)
                .then_some(TxBuf {
                    queue: q,
                    id: posted.buf,
                })
        } else {
            self.bufs
                .move_buf(posted.buf, BufState::Ring, BufState::Free);
            None
        }
    }

    /// Takes up to `budget` completions, checks each against what was posted, and returns
    /// the slots with one doorbell (`doorbell` false while recovering: the card is stopped).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn complete(
        &mut self,
        q: u16,
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
            let lent = self.release(q, &posted);
            out.push(TxDone {
                tag: posted.tag,
                sa_index: posted.sa,
                outcome,
                lent,
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

    /// Every descriptor still outstanding, oldest first, as (index, what was posted, the
    /// buffer lent back to the caller); the ring is left empty. Used by recovery once the
    /// card can no longer complete them.
    pub(crate) fn abandon(&mut self, q: u16) -> Vec<(u32, TxPosted, Option<TxBuf>)> {
        let mask = self.entries() - 1;
        let mut left = Vec::with_capacity(self.outstanding() as usize);
        while self.cpl.head != self.tail {
            let index = self.cpl.head;
            if let Some(p) = self.posted.get((index & mask) as usize).copied() {
                let lent = self.release(q, &p);
                left.push((index, p, lent));
            }
            self.cpl.head = index.wrapping_add(1);
        }
        left
    }
}

/// Checks one frame's length and action.
fn check_one(
    len: usize,
    action: TxAction,
    max_frame: usize,
    sa_table_size: u32,
) -> Result<(), TxRequestError> {
    if !(14..=max_frame).contains(&len) {
        return Err(TxRequestError::FrameLength {
            len_bytes: len,
            max_bytes: max_frame,
        });
    }
    if let TxAction::Encap { sa_index } = action
        && sa_index >= sa_table_size
    {
        return Err(TxRequestError::SaIndex {
            sa_index,
            table_size: sa_table_size,
        });
    }
    Ok(())
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
