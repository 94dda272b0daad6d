//! The packet path: batched submit and completion per queue pair, and interrupt waits.

use std::time::Duration;

use super::error::CardError;
use super::rx::RxPacket;
use super::tx::{TxDone, TxQueue, TxRequest};
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
