//! One RX ring of a queue pair: buffer descriptors, completions and the buffers the card
//! writes frames into (datasheet §7.5). The ring is full at all times. A frame leaves it
//! one of two ways, always after its completion passed every check:
//!
//! - copied out ([`Card::rx_batch`](super::Card::rx_batch)), its buffer re-posted at once;
//! - zero-copy ([`Card::rx_lend`](super::Card::rx_lend)): its buffer is lent to the caller
//!   and a free one takes its slot. The pool holds twice the ring's entries, and the caller
//!   holds at most a ring's worth. A lent buffer is named by no descriptor, but the card
//!   could still reach it by DMA: a caller that checks bytes of it (an inner header against
//!   policy) copies them out first and sends those checked bytes on, with the rest taken
//!   straight from the buffer ([`Card::rx_buf_write_to`](super::Card::rx_buf_write_to)).

use std::sync::atomic::{Ordering, fence};

use espo_fpga::Status;
use espo_fpga::desc::rx_desc;
use espo_fpga::regs::queue;

use super::bar::{Bar0, Blocks};
use super::error::CardError;
use super::pool::{BufState, BufferPool};
use super::ring::{CplRing, DescRing, WordField};
use super::sa_track::SaTrack;
use super::validate::{BadCompletionCounts, RxChecked, check_rx};
use crate::device::Device;

/// A received frame, copied out of DMA memory, with the card's verdict. Reuse packets
/// across [`Card::rx_batch`](super::Card::rx_batch) calls: `data` keeps its capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxPacket {
    /// With `decapsulated`: an Ethernet header (received MACs, the inner family's
    /// EtherType) and the inner packet. Otherwise the frame as received.
    pub data: Vec<u8>,
    /// `OK` (decapsulated), `TOO_BIG` (decapsulated, truncated) or why the frame was
    /// delivered as received (`BYPASS`, `NO_SA`, `ICV_FAIL`, `REPLAY`, …).
    pub status: Status,
    /// The inbound SA that matched, if any.
    pub sa_index: Option<u32>,
    /// SPI of an ESP frame, 0 otherwise.
    pub spi: u32,
    /// ESP sequence number (64 bits, ESN inferred), 0 if not ESP.
    pub seq: u64,
    /// `data` holds the decapsulated inner packet.
    pub decapsulated: bool,
    /// The inner packet is IPv6.
    pub inner_ipv6: bool,
    /// Arrived as ESP in UDP.
    pub udp_encap: bool,
    /// The buffer was too small: `data` is cut.
    pub truncated: bool,
    /// Length of the frame as received.
    pub wire_len: u16,
}

impl Default for RxPacket {
    fn default() -> Self {
        Self {
            data: Vec::new(),
            status: Status::Bypass,
            sa_index: None,
            spi: 0,
            seq: 0,
            decapsulated: false,
            inner_ipv6: false,
            udp_encap: false,
            truncated: false,
            wire_len: 0,
        }
    }
}

impl RxPacket {
    /// Sets everything but `data` from what the card said of a frame.
    pub fn set_info(&mut self, info: &RxInfo) {
        self.status = info.status;
        self.sa_index = info.sa_index;
        self.spi = info.spi;
        self.seq = info.seq;
        self.decapsulated = info.decapsulated;
        self.inner_ipv6 = info.inner_ipv6;
        self.udp_encap = info.udp_encap;
        self.truncated = info.truncated;
        self.wire_len = info.wire_len;
    }

    /// An empty packet whose `data` can hold `bytes` without allocating.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            data: Vec::with_capacity(bytes),
            ..Self::default()
        }
    }
}

/// What the card said of a received frame (the fields of [`RxPacket`] besides its data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxInfo {
    /// As [`RxPacket::status`].
    pub status: Status,
    /// The inbound SA that matched, if any.
    pub sa_index: Option<u32>,
    /// SPI of an ESP frame, 0 otherwise.
    pub spi: u32,
    /// ESP sequence number (64 bits, ESN inferred), 0 if not ESP.
    pub seq: u64,
    /// The buffer holds an Ethernet header and the decapsulated inner packet.
    pub decapsulated: bool,
    /// The inner packet is IPv6.
    pub inner_ipv6: bool,
    /// Arrived as ESP in UDP.
    pub udp_encap: bool,
    /// The buffer was too small: the frame is cut.
    pub truncated: bool,
    /// Length of the frame as received.
    pub wire_len: u16,
}

/// An RX buffer lent to the caller: a handle naming the queue and the buffer. The driver
/// tracks each buffer's state, so a handle used after it was returned is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RxBuf {
    pub(crate) queue: u16,
    pub(crate) id: u32,
}

impl RxBuf {
    /// The queue pair whose pool the buffer is in.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// A received frame left in its DMA buffer, lent to the caller until
/// [`Card::rx_return`](super::Card::rx_return).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxLent {
    /// Where the frame is, from the buffer's first byte.
    pub buf: RxBuf,
    /// Its length in the buffer (checked against the buffer's size).
    pub len: usize,
    /// What the card said of it.
    pub info: RxInfo,
}

const DESC_ADDR: WordField = WordField::of(rx_desc::ADDR);
const DESC_LEN: WordField = WordField::of(rx_desc::LEN);

pub(crate) struct RxQueue {
    desc: DescRing,
    pub(crate) cpl: CplRing<4>,
    pub(crate) bufs: BufferPool,
    /// The buffer in each ring slot.
    slot_buf: Vec<u32>,
    /// Buffers lent to the caller.
    lent_out: u32,
    /// Free-running producer index of posted buffers (always `cpl.head` + ring size).
    posted: u32,
    tail_reg: u64,
    head_reg: u64,
    base_reg: u64,
    log2_reg: u64,
    cpl_base_reg: u64,
    cpl_log2_reg: u64,
}

impl RxQueue {
    pub(crate) fn new(
        device: &dyn Device,
        blocks: &Blocks,
        q: u16,
        log2: u32,
        buf_bytes: usize,
    ) -> Result<Self, CardError> {
        let mut bufs = BufferPool::new(device, 2 << log2, buf_bytes)?;
        let slot_buf = (0..1u32 << log2)
            .map(|_| bufs.take(BufState::Ring))
            .collect::<Option<Vec<u32>>>()
            .ok_or(CardError::Config("RX buffer pool smaller than its ring"))?;
        Ok(Self {
            desc: DescRing::new(device, log2, 16)?,
            cpl: CplRing::new(device, log2)?,
            bufs,
            slot_buf,
            lent_out: 0,
            posted: 0,
            tail_reg: blocks.queue_reg(q, &queue::RXQ_TAIL),
            head_reg: blocks.queue_reg(q, &queue::RXCQ_HEAD),
            base_reg: blocks.queue_reg(q, &queue::RXQ_BASE),
            log2_reg: blocks.queue_reg(q, &queue::RXQ_LOG2),
            cpl_base_reg: blocks.queue_reg(q, &queue::RXCQ_BASE),
            cpl_log2_reg: blocks.queue_reg(q, &queue::RXCQ_LOG2),
        })
    }

    fn entries(&self) -> u32 {
        1 << self.desc.log2
    }

    /// §5.9 for this ring: host indices to 0, completions zero-filled, ring registers written.
    pub(crate) fn program(&mut self, bar: &Bar0) -> Result<(), CardError> {
        self.posted = 0;
        self.cpl.reset()?;
        self.desc.clear()?;
        bar.write64(self.base_reg, self.desc.mem.iova())?;
        bar.write32(self.log2_reg, self.desc.log2)?;
        bar.write64(self.cpl_base_reg, self.cpl.mem.iova())?;
        bar.write32(self.cpl_log2_reg, self.cpl.log2)?;
        Ok(())
    }

    /// Writes the descriptors of `n` buffers from the producer index on; one doorbell.
    pub(crate) fn post(&mut self, bar: &Bar0, n: u32) -> Result<(), CardError> {
        let mask = self.entries() - 1;
        let len = self.bufs.buf_bytes() as u64;
        for i in 0..n {
            let index = self.posted.wrapping_add(i);
            let mut words = [0u64; 2];
            let buf = self.slot_buf.get((index & mask) as usize).copied();
            DESC_ADDR.put(&mut words, self.bufs.iova(buf.unwrap_or(u32::MAX))?);
            DESC_LEN.put(&mut words, len);
            self.desc.write(index, &words)?;
        }
        self.posted = self.posted.wrapping_add(n);
        fence(Ordering::Release);
        bar.write32(self.tail_reg, self.posted)
    }

    /// Fills `out` with up to `out.len()` received frames. Completions that fail their
    /// checks are counted and their frames dropped; every consumed buffer is re-posted.
    /// Returns (frames delivered, completions consumed).
    #[inline]
    pub(crate) fn receive(
        &mut self,
        bar: &Bar0,
        out: &mut [RxPacket],
        max_frame: u32,
        sas: &mut SaTrack,
        bad: &mut BadCompletionCounts,
        doorbell: bool,
    ) -> Result<(usize, u32), CardError> {
        let mask = self.entries() - 1;
        let buf_bytes = self.bufs.buf_bytes();
        let mut delivered = 0;
        let mut consumed = 0u32;
        // Bounded by the ring: the card cannot keep the loop going.
        while delivered < out.len() && consumed < self.entries() {
            let Some(words) = self.cpl.peek()? else {
                break;
            };
            let index = self.cpl.head;
            self.cpl.head = index.wrapping_add(1);
            consumed += 1;
            let c = match check_rx(&words, index, buf_bytes, max_frame, sas) {
                Ok(c) => c,
                Err(reason) => {
                    bad.add(reason);
                    continue;
                }
            };
            let Some(p) = out.get_mut(delivered) else {
                break;
            };
            let buf = self.slot_buf.get((index & mask) as usize).copied();
            self.bufs
                .read(buf.unwrap_or(u32::MAX), c.len, &mut p.data)?;
            p.set_info(&c.info());
            if let (true, Some(sa)) = (c.decapsulated, c.sa_index) {
                sas.delivered(sa, c.seq);
            }
            delivered += 1;
        }
        if consumed > 0 && doorbell {
            fence(Ordering::Release);
            bar.write32(self.head_reg, self.cpl.head)?;
            self.post(bar, consumed)?;
        }
        Ok((delivered, consumed))
    }

    /// Appends to `out` up to `max` received frames left in their buffers, each buffer lent
    /// to the caller and its slot given a free one (fewer while the caller holds a ring's
    /// worth). Completions that fail their checks are counted and their buffers re-posted.
    /// Returns (frames delivered, completions consumed).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn receive_lent(
        &mut self,
        q: u16,
        bar: &Bar0,
        out: &mut Vec<RxLent>,
        max: usize,
        max_frame: u32,
        sas: &mut SaTrack,
        bad: &mut BadCompletionCounts,
    ) -> Result<(usize, u32), CardError> {
        let mask = self.entries() - 1;
        let buf_bytes = self.bufs.buf_bytes();
        let mut delivered = 0;
        let mut consumed = 0u32;
        while delivered < max && consumed < self.entries() && self.lent_out < self.entries() {
            let Some(words) = self.cpl.peek()? else {
                break;
            };
            let index = self.cpl.head;
            self.cpl.head = index.wrapping_add(1);
            consumed += 1;
            let c = match check_rx(&words, index, buf_bytes, max_frame, sas) {
                Ok(c) => c,
                Err(reason) => {
                    bad.add(reason);
                    continue;
                }
            };
            let Some(slot) = self.slot_buf.get_mut((index & mask) as usize) else {
                continue;
            };
            // The pool has a ring's worth beyond the ring, and the caller holds less.
            let Some(fresh) = self.bufs.take(BufState::Ring) else {
                continue;
            };
            let id = std::mem::replace(slot, fresh);
            self.bufs.move_buf(id, BufState::Ring, BufState::Lent);
            self.lent_out += 1;
            out.push(RxLent {
                buf: RxBuf { queue: q, id },
                len: c.len,
                info: c.info(),
            });
            if let (true, Some(sa)) = (c.decapsulated, c.sa_index) {
                sas.delivered(sa, c.seq);
            }
            delivered += 1;
        }
        if consumed > 0 {
            fence(Ordering::Release);
            bar.write32(self.head_reg, self.cpl.head)?;
            self.post(bar, consumed)?;
        }
        Ok((delivered, consumed))
    }

    /// Takes a lent buffer back onto the free list.
    pub(crate) fn give_back(&mut self, buf: RxBuf) -> Result<(), CardError> {
        let id = self.bufs.lent(buf.queue, buf.id)?;
        self.bufs.move_buf(id, BufState::Lent, BufState::Free);
        self.lent_out -= 1;
        Ok(())
    }
}

impl RxChecked {
    /// What the card said of the frame, for the caller.
    fn info(&self) -> RxInfo {
        RxInfo {
            status: self.status,
            sa_index: self.sa_index,
            spi: self.spi,
            seq: self.seq,
            decapsulated: self.decapsulated,
            inner_ipv6: self.inner_ipv6,
            udp_encap: self.udp_encap,
            truncated: self.truncated,
            wire_len: self.wire_len,
        }
    }
}
