//! The packet path: batched submit and completion per queue pair, and interrupt waits.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::error::CardError;
use super::rx::{RxBuf, RxLent, RxPacket};
use super::tx::{TxBuf, TxDone, TxLent, TxQueue, TxRequest};
use super::{Card, IrqMode};
use crate::device::IrqWait;

impl Card {
    /// Submits as many of `packets` as `queue` has free slots for, in order, with one
    /// doorbell; returns how many were taken (0 when the ring is full: backpressure — take
    /// completions and try again). The whole batch is checked first: a frame too short or
    /// too long, or an SA index outside the table, refuses the batch with nothing submitted.
    /// Each frame is copied into its slot's DMA buffer; every packet taken comes back, with
    /// its tag, from [`tx_completions`](Self::tx_completions) or from recovery as
    /// not completed.
    pub fn tx_batch(&mut self, queue: u16, packets: &[TxRequest<'_>]) -> Result<usize, CardError> {
        self.usable_queue(queue, true)?;
        TxQueue::check(packets, self.max_tx_frame, self.caps.sa_table_size)?;
        let queues = self.queues.len() as u16;
        let qp = self
            .queues
            .get_mut(queue as usize)
            .ok_or(CardError::NoSuchQueue { queue, queues })?;
        let r = qp.tx.submit(&self.bar, packets, &mut self.sas);
        let n = self.note(r)?;
        self.stats.tx_submitted += n as u64;
        if n == 0 && !packets.is_empty() {
            self.stats.tx_ring_full += 1;
        }
        Ok(n)
    }

    /// Appends the completions `queue` has (in submission order) to `out`; returns how many.
    /// Each is checked against what was submitted; one that fails is reported
    /// [`TxOutcome::Unverified`](super::TxOutcome::Unverified) and counted. When there is
    /// nothing new while packets are outstanding the device is told to relax.
    pub fn tx_completions(
        &mut self,
        queue: u16,
        out: &mut Vec<TxDone>,
    ) -> Result<usize, CardError> {
        self.usable_queue(queue, false)?;
        let queues = self.queues.len() as u16;
        let qp = self
            .queues
            .get_mut(queue as usize)
            .ok_or(CardError::NoSuchQueue { queue, queues })?;
        let budget = 1usize << self.config.ring_log2;
        let r = qp.tx.complete(
            queue,
            &self.bar,
            out,
            budget,
            &mut self.sas,
            &mut self.stats.bad,
            true,
        );
        let outstanding = qp.tx.outstanding();
        let n = self.note(r)?;
        self.stats.tx_completed += n as u64;
        if n == 0 && outstanding > 0 {
            self.bar.device().relax();
        }
        Ok(n)
    }

    /// Fills `out` with up to `out.len()` received frames of `queue` (copied out of DMA
    /// memory, buffers re-posted at once; two doorbells per batch: completion head and
    /// buffer tail); returns how many. A completion that fails its checks is counted and its
    /// frame dropped. When there is nothing new the device is told to relax.
    pub fn rx_batch(&mut self, queue: u16, out: &mut [RxPacket]) -> Result<usize, CardError> {
        self.usable_queue(queue, false)?;
        let queues = self.queues.len() as u16;
        let qp = self
            .queues
            .get_mut(queue as usize)
            .ok_or(CardError::NoSuchQueue { queue, queues })?;
        let r = qp.rx.receive(
            &self.bar,
            out,
            self.caps.max_frame,
            &mut self.sas,
            &mut self.stats.bad,
            true,
        );
        let (delivered, consumed) = self.note(r)?;
        self.stats.rx_delivered += delivered as u64;
        if consumed == 0 {
            self.bar.device().relax();
        }
        Ok(delivered)
    }

    /// Lends a free TX buffer of `queue` ([`buffer_bytes`](Self::buffer_bytes) long) for
    /// a frame to be written into — by [`tx_buf_read_from`](Self::tx_buf_read_from) (a
    /// TUN read landing where the card reads it) or [`tx_buf_write`](Self::tx_buf_write) —
    /// and posted with [`tx_post`](Self::tx_post), or given back with
    /// [`tx_return`](Self::tx_return). `None` while the caller holds a ring's worth.
    pub fn tx_lend(&mut self, queue: u16) -> Result<Option<TxBuf>, CardError> {
        let qp = self.queue_mut(queue)?;
        Ok(qp.tx.lend(queue))
    }

    /// Gives a lent TX buffer back.
    pub fn tx_return(&mut self, buf: TxBuf) -> Result<(), CardError> {
        self.queue_mut(buf.queue)?.tx.give_back(buf)
    }

    /// Copies `data` into lent TX buffer `buf` from byte `at` on.
    pub fn tx_buf_write(&self, buf: TxBuf, at: usize, data: &[u8]) -> Result<(), CardError> {
        self.queue(buf.queue)?
            .tx
            .bufs
            .write_lent(buf.queue, buf.id, at, data)
    }

    /// Copies bytes of lent TX buffer `buf` from byte `at` on into `dst`.
    pub fn tx_buf_read(&self, buf: TxBuf, at: usize, dst: &mut [u8]) -> Result<(), CardError> {
        self.queue(buf.queue)?
            .tx
            .bufs
            .read_lent(buf.queue, buf.id, at, dst)
    }

    /// [`tx_buf_read`](Self::tx_buf_read) of `N` whole 8-byte words from byte `at` (a
    /// multiple of 8) on, in native byte order (each word's bytes are the buffer's, in
    /// memory order): a frame's first bytes in a few aligned loads.
    #[inline]
    pub fn tx_buf_read_words<const N: usize>(
        &self,
        buf: TxBuf,
        at: usize,
    ) -> Result<[u64; N], CardError> {
        self.queue(buf.queue)?
            .tx
            .bufs
            .read_lent_words(buf.queue, buf.id, at)
    }

    /// [`tx_buf_write`](Self::tx_buf_write) of whole 8-byte words, as
    /// [`tx_buf_read_words`](Self::tx_buf_read_words) reads them.
    #[inline]
    pub fn tx_buf_write_words(
        &self,
        buf: TxBuf,
        at: usize,
        words: &[u64],
    ) -> Result<(), CardError> {
        self.queue(buf.queue)?
            .tx
            .bufs
            .write_lent_words(buf.queue, buf.id, at, words)
    }

    /// One `read(2)` from `fd` into lent TX buffer `buf` from byte `at` on, at most to the
    /// buffer's end; returns the bytes read.
    pub fn tx_buf_read_from(&self, buf: TxBuf, at: usize, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let q = self
            .queue(buf.queue)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        q.tx.bufs.read_fd_lent(buf.queue, buf.id, at, fd)
    }

    /// One `readv(2)` from `fd`: its first `head.len()` bytes into `head`, then at most
    /// `len` into lent TX buffer `buf` from byte `at` on (never past the buffer's end),
    /// and what is left, at most `tail.len()` bytes, into `tail`; returns the bytes read. A TUN read with a
    /// virtio-net header lands with the header in host memory, a packet that fits the
    /// buffer where the card reads it, and a longer one's rest in host memory.
    pub fn tx_buf_read_from_parts(
        &self,
        buf: TxBuf,
        at: usize,
        len: usize,
        fd: BorrowedFd<'_>,
        head: &mut [u8],
        tail: &mut [u8],
    ) -> io::Result<usize> {
        let q = self
            .queue(buf.queue)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        q.tx.bufs
            .read_fd_lent_parts(buf.queue, buf.id, at, len, fd, head, tail)
    }

    /// The one's-complement sum (RFC 1071, not complemented) of bytes `[at, at + len)` of
    /// lent TX buffer `buf`, read in place: a packet's checksum completed where it lies.
    pub fn tx_buf_ones_sum(&self, buf: TxBuf, at: usize, len: usize) -> Result<u16, CardError> {
        self.queue(buf.queue)?
            .tx
            .bufs
            .ones_sum_lent(buf.queue, buf.id, at, len)
    }

    /// [`tx_batch`](Self::tx_batch) for frames already in lent buffers: posts as many of
    /// `posts` as `queue` has free slots for, in order, with one doorbell, and returns how
    /// many were taken (the caller keeps the rest). Nothing is copied. The whole batch is
    /// checked first — lengths, SA indices, and that every buffer is lent to the caller
    /// and named once. A posted buffer comes back lent in its completion
    /// ([`TxDone::lent`](super::TxDone::lent)) or in recovery's
    /// [`NotCompleted::lent`](super::NotCompleted::lent).
    pub fn tx_post(&mut self, queue: u16, posts: &[TxLent]) -> Result<usize, CardError> {
        self.usable_queue(queue, true)?;
        let (max_frame, table) = (self.max_tx_frame, self.caps.sa_table_size);
        let queues = self.queues.len() as u16;
        let qp = self
            .queues
            .get_mut(queue as usize)
            .ok_or(CardError::NoSuchQueue { queue, queues })?;
        qp.tx.check_lent(queue, posts, max_frame, table)?;
        let r = qp.tx.post_lent(&self.bar, posts, &mut self.sas);
        let n = self.note(r)?;
        self.stats.tx_submitted += n as u64;
        if n == 0 && !posts.is_empty() {
            self.stats.tx_ring_full += 1;
        }
        Ok(n)
    }

    /// [`rx_batch`](Self::rx_batch) without the copy: appends to `out` up to `max` frames
    /// of `queue` left in their DMA buffers, each lent to the caller (a free buffer takes
    /// its place on the ring) until [`rx_return`](Self::rx_return); returns how many.
    /// Fewer while the caller holds a ring's worth. See the RX ring's documentation for
    /// what a caller checks in host memory before trusting it.
    pub fn rx_lend(
        &mut self,
        queue: u16,
        out: &mut Vec<RxLent>,
        max: usize,
    ) -> Result<usize, CardError> {
        self.usable_queue(queue, false)?;
        let queues = self.queues.len() as u16;
        let qp = self
            .queues
            .get_mut(queue as usize)
            .ok_or(CardError::NoSuchQueue { queue, queues })?;
        let r = qp.rx.receive_lent(
            queue,
            &self.bar,
            out,
            max,
            self.caps.max_frame,
            &mut self.sas,
            &mut self.stats.bad,
        );
        let (delivered, consumed) = self.note(r)?;
        self.stats.rx_delivered += delivered as u64;
        if consumed == 0 {
            self.bar.device().relax();
        }
        Ok(delivered)
    }

    /// Gives a lent RX buffer back.
    pub fn rx_return(&mut self, buf: RxBuf) -> Result<(), CardError> {
        self.queue_mut(buf.queue)?.rx.give_back(buf)
    }

    /// The RX buffers of `queue` lent to the caller now (for a caller that must copy out
    /// what it holds before the card's memory goes).
    pub fn rx_lent_bufs(&self, queue: u16) -> Result<Vec<RxBuf>, CardError> {
        let q = self.queue(queue)?;
        Ok(q.rx.bufs.lent_ids().map(|id| RxBuf { queue, id }).collect())
    }

    /// Bytes one RX buffer holds.
    pub fn rx_buf_bytes(&self, queue: u16) -> Result<usize, CardError> {
        Ok(self.queue(queue)?.rx.bufs.buf_bytes())
    }

    /// Copies bytes of lent RX buffer `buf` from byte `at` on into `dst`.
    pub fn rx_buf_read(&self, buf: RxBuf, at: usize, dst: &mut [u8]) -> Result<(), CardError> {
        self.queue(buf.queue)?
            .rx
            .bufs
            .read_lent(buf.queue, buf.id, at, dst)
    }

    /// One `writev(2)` to `fd` of `head` (host memory: checked or built by the caller),
    /// then bytes `[at, at + len)` of lent RX buffer `buf` straight from DMA memory;
    /// returns the bytes written.
    pub fn rx_buf_write_to(
        &self,
        buf: RxBuf,
        fd: BorrowedFd<'_>,
        head: &[u8],
        at: usize,
        len: usize,
    ) -> io::Result<usize> {
        let q = self
            .queue(buf.queue)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        q.rx.bufs
            .write_fd_lent(buf.queue, buf.id, fd, head, at, len)
    }

    fn queue_mut(&mut self, queue: u16) -> Result<&mut super::QueuePair, CardError> {
        let queues = self.queues.len() as u16;
        self.queues
            .get_mut(queue as usize)
            .ok_or(CardError::NoSuchQueue { queue, queues })
    }

    fn wait_vector(&mut self, vector: u32, timeout: Duration) -> Result<bool, CardError> {
        if self.config.irq == IrqMode::Poll {
            return Err(CardError::PollMode);
        }
        let waited = self.bar.device().wait_irq(vector, timeout);
        match self.note_checked(waited)? {
            IrqWait::Fired { .. } => {
                self.stats.irq_wakeups += 1;
                Ok(true)
            }
            IrqWait::TimedOut => {
                self.stats.irq_timeouts += 1;
                Ok(false)
            }
        }
    }

    /// Interrupt mode: waits up to `timeout` for `queue`'s vector (a TX or RX completion).
    /// Interrupts are hints (a message can be lost, datasheet §9): check the rings after
    /// every wait, whether it returned `true` or not.
    pub fn wait_queue(&mut self, queue: u16, timeout: Duration) -> Result<bool, CardError> {
        self.queue(queue)?;
        self.wait_vector(1 + u32::from(queue), timeout)
    }

    /// Interrupt mode: waits up to `timeout` for vector 0 (events, errors, admin).
    pub fn wait_events(&mut self, timeout: Duration) -> Result<bool, CardError> {
        self.wait_vector(0, timeout)
    }
}
