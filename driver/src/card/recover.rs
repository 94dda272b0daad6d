//! Recovery (datasheet §10): stop the card as far as the fault requires, account for every
//! packet submitted and every SA's sequence state, then bring the card back.
//!
//! [`Card::quiesce`] orders its steps so that nothing can be completed after it was
//! reported not completed: the card is stopped first (a queue pair disabled until idle,
//! §5.10, or the whole card reset, §5.2), completions already in host memory are taken
//! after that, and only what is still outstanding then is reported, with its tag.

use std::collections::HashMap;

use espo_fpga::regs::{ctrl, queue};
use espo_fpga::{SaEntry, SaState};

use super::error::CardError;
use super::fault::{Fault, FaultScope};
use super::init::{self, poll_until};
use super::rx::RxPacket;
use super::sa_track::SaDirection;
use super::tx::{TxBuf, TxDone};
use super::{Card, CardState, caps};

/// Whether the card took a packet that was not completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The card never read its descriptor (its consumer index, read back from a card that
    /// had not reset, is at or before it): it was not sent and used no sequence number.
    /// Safe to submit again.
    No,
    /// The card may have taken it — and even sent it — before the fault: resending could
    /// duplicate it. Its sequence number, if any, is covered by the SA's read-back or bound.
    Unknown,
}

/// A submitted packet that will not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotCompleted {
    /// The queue pair it was submitted on.
    pub queue: u16,
    /// The tag it was submitted with.
    pub tag: u64,
    /// The SA it was submitted for (`None`: bypass).
    pub sa_index: Option<u32>,
    /// Whether the card took it.
    pub taken: Taken,
    /// Posted from a lent buffer ([`Card::tx_post`](super::Card::tx_post)): the buffer,
    /// lent to the caller again with the frame still in it.
    pub lent: Option<TxBuf>,
}

/// What is known of a programmed SA's state at the fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaRecovery {
    /// SA table index.
    pub index: u32,
    /// Its direction.
    pub direction: SaDirection,
    /// The exact state read back before the card was reset (SA_READ, §8.5), when the card
    /// still answered.
    pub read_back: Option<SaState>,
    /// Outbound: no sequence number above this was used (the last completed number plus
    /// every packet in flight or unaccounted for). For when `read_back` is `None`; add a
    /// margin.
    pub seq_upper_bound: Option<u64>,
    /// Inbound: the highest sequence number delivered as decapsulated.
    pub rx_seq_high: Option<u64>,
}

/// Everything [`Card::quiesce`] accounted for.
#[derive(Debug, Clone)]
pub struct FaultReport {
    /// The fault that led here (`None`: quiesced on request).
    pub fault: Option<Fault>,
    /// What was stopped.
    pub scope: FaultScope,
    /// TX completions taken while stopping, with their queue pair.
    pub completed: Vec<(u16, TxDone)>,
    /// Frames taken while stopping, with their queue pair.
    pub received: Vec<(u16, RxPacket)>,
    /// Every submitted packet that will not be completed, per queue in submission order.
    pub not_completed: Vec<NotCompleted>,
    /// Every SA that was programmed when the card was reset (empty when only a queue pair
    /// was stopped: the SA table is untouched).
    pub sas: Vec<SaRecovery>,
}

/// An SA for [`Card::reinit`] to write (§5.8), with the state to import if any.
#[derive(Debug, Clone, Copy)]
pub struct SaProgram<'a> {
    /// SA table index.
    pub index: u32,
    /// The entry.
    pub entry: &'a SaEntry,
    /// State to import (sequence number, replay window, counters).
    pub state: Option<&'a SaState>,
}

/// The outcome of each SA written by [`Card::reinit`], by table index.
pub type SaResults = Vec<(u32, Result<(), CardError>)>;

/// Frames taken per RX drain step.
const DRAIN_BATCH: usize = 64;

impl Card {
    /// Whether the card is as the driver left it: present, enabled, not reset since.
    fn card_intact(&self) -> Result<bool, CardError> {
        let b = self.blocks;
        let status = u64::from(self.bar.read32(b.ctrl(&ctrl::STATUS))?);
        let resets = self.bar.read32(b.ctrl(&ctrl::RESET_COUNT))?;
        Ok(resets == self.reset_count
            && ctrl::status::READY.is_set(status)
            && ctrl::status::ENABLED.is_set(status))
    }

    /// The card's TXQ_HEAD of queue `q` if it lies between the host's oldest outstanding
    /// descriptor and its producer index (anything else is not believed).
    fn card_tx_head(&self, q: u16) -> Result<Option<u32>, CardError> {
        let Some(qp) = self.queues.get(q as usize) else {
            return Ok(None);
        };
        let h = self
            .bar
            .read32(self.blocks.queue_reg(q, &queue::TXQ_HEAD))?;
        let base = qp.tx.cpl.head;
        Ok((h.wrapping_sub(base) <= qp.tx.tail.wrapping_sub(base)).then_some(h))
    }

    /// Takes every completion and frame queue `q` has in memory, then reports what is left
    /// outstanding as not completed. The card must no longer write to the queue's rings.
    fn drain_queue(
        &mut self,
        q: u16,
        card_head: Option<u32>,
        report: &mut FaultReport,
    ) -> Result<(), CardError> {
        let Some(qp) = self.queues.get_mut(q as usize) else {
            return Ok(());
        };
        let ring = 1usize << self.config.ring_log2;
        let mut done = Vec::new();
        let n = qp.tx.complete(
            q,
            &self.bar,
            &mut done,
            ring,
            &mut self.sas,
            &mut self.stats.bad,
            false,
        )?;
        self.stats.tx_completed += n as u64;
        report.completed.extend(done.into_iter().map(|d| (q, d)));
        let base = qp.tx.cpl.head;
        let mut frames = vec![RxPacket::default(); DRAIN_BATCH];
        loop {
            let (delivered, consumed) = qp.rx.receive(
                &self.bar,
                &mut frames,
                self.caps.max_frame,
                &mut self.sas,
                &mut self.stats.bad,
                false,
            )?;
            self.stats.rx_delivered += delivered as u64;
            report
                .received
                .extend(frames.iter().take(delivered).map(|p| (q, p.clone())));
            if consumed == 0 {
                break;
            }
        }
        for (index, posted, lent) in qp.tx.abandon(q) {
            let taken = match card_head {
                Some(h) if index.wrapping_sub(base) >= h.wrapping_sub(base) => Taken::No,
                _ => Taken::Unknown,
            };
            if let Some(sa) = posted.sa {
                match taken {
                    Taken::No => self.sas.completed(sa, None),
                    Taken::Unknown => self.sas.unaccounted(sa),
                }
            }
            self.stats.tx_not_completed += 1;
            report.not_completed.push(NotCompleted {
                queue: q,
                tag: posted.tag,
                sa_index: posted.sa,
                taken,
                lent,
            });
        }
        Ok(())
    }

    fn drain_all(
        &mut self,
        heads: &[Option<u32>],
        report: &mut FaultReport,
    ) -> Result<(), CardError> {
        for q in 0..self.queues.len() as u16 {
            let head = heads.get(q as usize).copied().flatten();
            self.drain_queue(q, head, report)?;
        }
        Ok(())
    }

    fn sa_records(&self, read_back: &mut HashMap<u32, SaState>) -> Vec<SaRecovery> {
        self.sas
            .programmed()
            .map(|(index, direction)| SaRecovery {
                index,
                direction,
                read_back: read_back.remove(&index),
                seq_upper_bound: self.sas.seq_upper_bound(index),
                rx_seq_high: self.sas.rx_seq_high(index),
            })
            .collect()
    }

    /// Queue scope: disable the pair, wait until idle, read the card's consumer index,
    /// drain. `Ok(false)`: the card is not in a state to stop one queue (escalate).
    fn quiesce_queue(&mut self, q: u16, report: &mut FaultReport) -> Result<bool, CardError> {
        if !self.card_intact()? {
            return Ok(false);
        }
        let b = self.blocks;
        self.bar.write32(b.queue_reg(q, &queue::Q_CTRL), 0)?;
        let idle = poll_until(&self.bar, self.config.stop_timeout, |bar| {
            let s = bar.read32(b.queue_reg(q, &queue::Q_STATUS))?;
            Ok(queue::q_status::IDLE.is_set(s.into()))
        })?;
        if !idle || !self.card_intact()? {
            return Ok(false);
        }
        let head = self.card_tx_head(q)?;
        self.drain_queue(q, head, report)?;
        // Clear the causes seen (W1C), so that FAULT_CODE records the next fault.
        let cause = self.bar.read32(b.ctrl(&ctrl::ERR_CAUSE))?;
        self.bar.write32(b.ctrl(&ctrl::ERR_CAUSE), cause)?;
        self.state = CardState::Quiesced {
            scope: FaultScope::Queue(q),
        };
        Ok(true)
    }

    /// Card scope: read back what a live card can still say (consumer indices, SA state),
    /// reset it, drain every queue.
    fn quiesce_card(&mut self, report: &mut FaultReport) -> Result<(), CardError> {
        let intact = self.card_intact()?;
        let mut heads = vec![None; self.queues.len()];
        let mut read_back = HashMap::new();
        if intact {
            for (q, head) in heads.iter_mut().enumerate() {
                *head = self.card_tx_head(q as u16)?;
            }
            let programmed: Vec<u32> = self.sas.programmed().map(|(i, _)| i).collect();
            for index in programmed {
                match self.sa_read(index) {
                    Ok(state) => {
                        read_back.insert(index, state);
                    }
                    Err(CardError::Removed) => return Err(CardError::Removed),
                    // An admin queue that does not answer one will not answer the rest.
                    Err(CardError::AdminTimeout { .. }) => break,
                    Err(_) => {}
                }
            }
        }
        init::reset(&self.bar, &self.blocks, self.config.reset_timeout)?;
        self.state = CardState::Quiesced {
            scope: FaultScope::Card,
        };
        self.drain_all(&heads, report)?;
        report.sas = self.sa_records(&mut read_back);
        self.sas.card_reset();
        Ok(())
    }

    /// Lost: nothing reaches the card; what is in memory is taken, the rest reported.
    fn quiesce_lost(&mut self, report: &mut FaultReport) -> Result<(), CardError> {
        self.state = CardState::Lost { accounted: true };
        self.drain_all(&[], report)?;
        report.sas = self.sa_records(&mut HashMap::new());
        Ok(())
    }

    /// Stops the card as far as its fault requires and accounts for everything: TX
    /// completions and frames already in memory, every submitted packet that will not
    /// complete (with its tag, and whether the card took it), and — when the whole card is
    /// reset — every programmed SA's exact read-back (if the card still answered) and
    /// sequence bounds. Without a fault, the whole card is stopped. Then call
    /// [`reinit`](Self::reinit) (not after a removal: the card is gone).
    pub fn quiesce(&mut self) -> Result<FaultReport, CardError> {
        let (fault, mut scope) = match self.state {
            CardState::Running => (None, FaultScope::Card),
            CardState::Faulted { fault, scope } => (Some(fault), scope),
            CardState::Lost { accounted: false } => (Some(Fault::Removed), FaultScope::Lost),
            CardState::Quiesced { scope } => (None, scope),
            CardState::Lost { accounted: true } => (None, FaultScope::Lost),
        };
        let mut report = FaultReport {
            fault,
            scope,
            completed: Vec::new(),
            received: Vec::new(),
            not_completed: Vec::new(),
            sas: Vec::new(),
        };
        if matches!(
            self.state,
            CardState::Quiesced { .. } | CardState::Lost { accounted: true }
        ) {
            return Ok(report);
        }
        if let FaultScope::Queue(q) = scope {
            match self.quiesce_queue(q, &mut report) {
                Ok(true) => return Ok(report),
                Ok(false) => scope = FaultScope::Card,
                Err(CardError::Removed) => scope = FaultScope::Lost,
                Err(e) => return Err(e),
            }
        }
        if scope == FaultScope::Card {
            match self.quiesce_card(&mut report) {
                Ok(()) => {}
                Err(CardError::Removed) => scope = FaultScope::Lost,
                Err(e) => return Err(e),
            }
        }
        if scope == FaultScope::Lost {
            self.quiesce_lost(&mut report)?;
        }
        report.scope = scope;
        // The faults are dealt with; other events still reach the caller.
        self.unreported
            .retain(|e| !matches!(e, super::CardEvent::Fault(_)));
        Ok(report)
    }

    /// Brings a quiesced card back: for a queue scope, writes `sas` and restarts the queue
    /// pair (§5.9); for the card, resets it, checks that its capabilities did not change
    /// and re-initialises it (§5.2–§5.9), writing `sas` at §5.8. Returns each SA's result:
    /// one the card refuses is left to the caller (software), the rest run.
    pub fn reinit(&mut self, sas: &[SaProgram<'_>]) -> Result<SaResults, CardError> {
        let scope = match self.state {
            CardState::Quiesced { scope } => scope,
            CardState::Lost { .. } => return Err(CardError::Removed),
            CardState::Running | CardState::Faulted { .. } => return Err(CardError::NotQuiesced),
        };
        let results = match scope {
            FaultScope::Queue(q) => {
                let mut results = Vec::with_capacity(sas.len());
                for p in sas {
                    let r = self.sa_write(p.index, p.entry, p.state);
                    if let Err(CardError::Removed) = r {
                        return Err(CardError::Removed);
                    }
                    results.push((p.index, r));
                }
                let started = init::start_queue(self, q);
                self.note(started)?;
                self.state = CardState::Running;
                results
            }
            FaultScope::Card => {
                let r = self.reinit_card(sas);
                self.note(r)?
            }
            FaultScope::Lost => return Err(CardError::Removed),
        };
        self.stats.recoveries += 1;
        Ok(results)
    }

    fn reinit_card(&mut self, sas: &[SaProgram<'_>]) -> Result<SaResults, CardError> {
        init::reset(&self.bar, &self.blocks, self.config.reset_timeout)?;
        if caps::read_capabilities(&self.bar, &self.blocks)? != self.caps {
            return Err(CardError::Unsupported(
                "the card's capabilities changed across a reset",
            ));
        }
        self.sas.card_reset();
        init::configure(self, sas)
    }
}
