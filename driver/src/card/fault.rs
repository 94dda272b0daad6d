//! Fault detection (datasheet §10): events, hung queues, and the status registers read
//! when something looks wrong or now and then — never on the packet path.

use std::time::Duration;

use espo_fpga::regs::{ctrl, event, queue};
use espo_fpga::{DmaUnit, FaultCode};

use super::error::CardError;
use super::events::{CardEvent, EventLimits};
use super::{Card, CardState};

/// A fault of the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// BAR reads return all ones: the card left the bus (§10.4).
    Removed,
    /// A DMA was refused by the IOMMU or failed on PCIe (§10.2).
    DmaFault {
        /// The queue pair whose DMA faulted; `None`: admin or event queue.
        queue: Option<u16>,
        /// The DMA unit.
        unit: DmaUnit,
        /// The IOVA of the DMA.
        iova: u64,
    },
    /// A queue pair stopped on a fault (`Q_STATUS.ERROR`).
    QueueStopped {
        /// The queue pair.
        queue: u16,
    },
    /// A crypto engine hung; the datapath halted (`STATUS.FAULT`, §10.3).
    EngineHang,
    /// The card reset itself (`RESET_COUNT` changed, `STATUS.ENABLED` cleared, §10.4).
    UnexpectedReset,
    /// A queue pair had packets outstanding and completed none for the hang timeout.
    QueueHung {
        /// The queue pair.
        queue: u16,
    },
    /// The card refused a ring set-up or doorbell (`ERR_CAUSE.CONFIG`).
    Config {
        /// The queue pair, `None`: admin or event queue.
        queue: Option<u16>,
    },
}

/// What recovery from a fault must cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultScope {
    /// One queue pair: it is stopped, drained and restarted (§5.9); the SA table and the
    /// other queue pairs are untouched.
    Queue(u16),
    /// The whole card: reset and re-initialised (§5.2–§5.9); SAs are re-programmed.
    Card,
    /// The card is gone.
    Lost,
}

impl FaultScope {
    /// The scope covering both.
    pub fn widen(self, other: FaultScope) -> FaultScope {
        match (self, other) {
            (FaultScope::Lost, _) | (_, FaultScope::Lost) => FaultScope::Lost,
            (FaultScope::Queue(a), FaultScope::Queue(b)) if a == b => FaultScope::Queue(a),
            _ => FaultScope::Card,
        }
    }
}

impl Fault {
    /// What recovery from this fault must cover, with `queues` queue pairs in use.
    pub fn scope(&self, queues: u16) -> FaultScope {
        let one = |q: u16| {
            if q < queues {
                FaultScope::Queue(q)
            } else {
                FaultScope::Card
            }
        };
        match *self {
            Fault::Removed => FaultScope::Lost,
            Fault::DmaFault {
                queue: Some(q),
                unit:
                    DmaUnit::TxDescRead
                    | DmaUnit::TxDataRead
                    | DmaUnit::TxCplWrite
                    | DmaUnit::RxDescRead
                    | DmaUnit::RxDataWrite
                    | DmaUnit::RxCplWrite,
                ..
            } => one(q),
            Fault::QueueStopped { queue }
            | Fault::QueueHung { queue }
            | Fault::Config { queue: Some(queue) } => one(queue),
            Fault::DmaFault { .. }
            | Fault::EngineHang
            | Fault::UnexpectedReset
            | Fault::Config { queue: None } => FaultScope::Card,
        }
    }
}

/// Progress of one queue's TX completions, for hung-queue detection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StallWatch {
    completed: u64,
    since: Duration,
}

impl StallWatch {
    /// Watching from `now`, with `completed` completions taken so far.
    pub(crate) fn start(completed: u64, now: Duration) -> Self {
        Self {
            completed,
            since: now,
        }
    }
}

impl Card {
    /// Records a fault; it is reported by the next [`Card::service`].
    pub(crate) fn raise(&mut self, fault: Fault) {
        let scope = fault.scope(self.queues.len() as u16);
        let report = match self.state {
            CardState::Lost { .. } => false,
            _ if scope == FaultScope::Lost => {
                self.state = CardState::Lost { accounted: false };
                true
            }
            CardState::Running => {
                self.state = CardState::Faulted { fault, scope };
                true
            }
            CardState::Faulted {
                fault: first,
                scope: was,
            } => {
                let wider = was.widen(scope);
                self.state = CardState::Faulted {
                    fault: first,
                    scope: wider,
                };
                wider != was
            }
            // One queue is stopped and accounted for; a fault reaching further needs a new
            // quiesce, which accounts for the other queues' packets too.
            CardState::Quiesced { scope: was } => {
                let wider = was.widen(scope);
                if wider != was {
                    self.state = CardState::Faulted {
                        fault,
                        scope: wider,
                    };
                }
                wider != was
            }
        };
        if report {
            self.stats.faults += 1;
            self.unreported.push(CardEvent::Fault(fault));
        }
    }

    pub(crate) fn card_removed(&mut self) {
        self.raise(Fault::Removed);
    }

    /// Maps a removal seen by any register access to the card's state.
    pub(crate) fn note<T>(&mut self, r: Result<T, CardError>) -> Result<T, CardError> {
        if let Err(CardError::Removed) = r {
            self.card_removed();
        }
        r
    }

    /// A device call's result: a device that is gone is a removed card (raised as
    /// [`Fault::Removed`]).
    pub(crate) fn note_checked<T>(
        &mut self,
        r: Result<T, crate::error::DeviceError>,
    ) -> Result<T, CardError> {
        let r = self.bar.checked(r);
        self.note(r)
    }

    /// Whether queue pair `q` may be used: `new_work` to submit, otherwise to take what the
    /// card already wrote. A fault stops new work on the queues it covers; completions
    /// already in memory can still be taken until [`Card::quiesce`] takes them itself.
    pub(crate) fn usable_queue(&self, q: u16, new_work: bool) -> Result<(), CardError> {
        let covers = |scope: FaultScope| match scope {
            FaultScope::Queue(f) => f == q,
            FaultScope::Card | FaultScope::Lost => true,
        };
        match self.state {
            CardState::Running => Ok(()),
            CardState::Lost { .. } => Err(CardError::Removed),
            CardState::Faulted { scope, .. } if new_work && covers(scope) => {
                Err(CardError::NeedsRecovery)
            }
            CardState::Quiesced { scope } if covers(scope) => Err(CardError::NeedsRecovery),
            CardState::Faulted { .. } | CardState::Quiesced { .. } => Ok(()),
        }
    }

    /// The admin queue may be used: the card is up (perhaps faulted, but not reset).
    pub(crate) fn usable_admin(&self) -> Result<(), CardError> {
        match self.state {
            CardState::Running
            | CardState::Faulted { .. }
            | CardState::Quiesced {
                scope: FaultScope::Queue(_),
            } => Ok(()),
            CardState::Lost { .. } => Err(CardError::Removed),
            CardState::Quiesced { .. } => Err(CardError::NeedsRecovery),
        }
    }

    fn event_limits(&self) -> EventLimits {
        EventLimits {
            sa_table_size: self.caps.sa_table_size,
            queue_count: self.caps.queue_count,
        }
    }

    /// Reads the event queue, watches for hung queues and, when a queue looks hung or the
    /// health interval has passed, reads the card's status registers. Appends what it found
    /// (faults included) to `out`. Call it regularly: every poll-loop iteration that found
    /// no work, or at least every few milliseconds.
    pub fn service(&mut self, out: &mut Vec<CardEvent>) -> Result<(), CardError> {
        let r = self.service_inner();
        out.append(&mut self.unreported);
        match r {
            // Reported as `Fault::Removed` among the events.
            Err(CardError::Removed) => Ok(()),
            r => r,
        }
    }

    fn service_inner(&mut self) -> Result<(), CardError> {
        // The event queue and the queue pairs run unless the whole card is stopped.
        if matches!(
            self.state,
            CardState::Lost { .. }
                | CardState::Quiesced {
                    scope: FaultScope::Card | FaultScope::Lost
                }
        ) {
            return Ok(());
        }
        let mut faults = Vec::new();
        let mut events = Vec::new();
        let polled = self.events.poll(
            &self.bar,
            &self.blocks,
            self.event_limits(),
            &mut events,
            &mut faults,
            &mut self.stats.bad,
        );
        let polled = self.note(polled)?;
        self.stats.events += polled as u64;
        self.unreported.append(&mut events);
        for f in faults {
            self.raise(f);
        }

        let now = self.bar.device().now();
        let mut hung = Vec::new();
        for (q, qp) in self.queues.iter_mut().enumerate() {
            let done = qp.tx.completed_total;
            if qp.tx.outstanding() == 0 || done != qp.stall.completed {
                qp.stall = StallWatch::start(done, now);
            } else if now.saturating_sub(qp.stall.since) >= self.config.hang_timeout {
                hung.push(q as u16);
            }
        }
        let due = self
            .config
            .health_interval
            .is_some_and(|i| now.saturating_sub(self.last_health) >= i);
        if hung.is_empty() && !due {
            return Ok(());
        }
        self.last_health = now;
        let checked = self.health_check(&hung);
        self.note(checked)
    }

    /// Reads STATUS, RESET_COUNT, ERR_CAUSE and every queue's Q_STATUS (§10.1); raises what
    /// they show, and a hang for each queue in `hung` the registers do not explain.
    fn health_check(&mut self, hung: &[u16]) -> Result<(), CardError> {
        let b = self.blocks;
        let status = u64::from(self.bar.read32(b.ctrl(&ctrl::STATUS))?);
        let reset_count = self.bar.read32(b.ctrl(&ctrl::RESET_COUNT))?;
        if reset_count != self.reset_count
            || !ctrl::status::READY.is_set(status)
            || !ctrl::status::ENABLED.is_set(status)
        {
            self.raise(Fault::UnexpectedReset);
            return Ok(());
        }
        if ctrl::status::FAULT.is_set(status) {
            self.raise(Fault::EngineHang);
        }
        let cause = u64::from(self.bar.read32(b.ctrl(&ctrl::ERR_CAUSE))?);
        if ctrl::err::DMA_FAULT.is_set(cause) || ctrl::err::CONFIG.is_set(cause) {
            let code = u64::from(self.bar.read32(b.ctrl(&ctrl::FAULT_CODE))?);
            let iova = self.bar.read64(b.ctrl(&ctrl::FAULT_ADDR))?;
            let queue = match ctrl::fault::QUEUE.get(code) as u16 {
                u16::MAX => None,
                q => Some(q),
            };
            let fault = match FaultCode::from_value(ctrl::fault::CODE.get(code) as u8) {
                FaultCode::DmaUnmapped | FaultCode::DmaError => Fault::DmaFault {
                    queue,
                    unit: DmaUnit::from_value(ctrl::fault::UNIT.get(code) as u8),
                    iova,
                },
                FaultCode::Config => Fault::Config { queue },
                // A cause without its record (it went to an earlier, cleared cause):
                // nothing says which queue, so the whole card is recovered.
                _ if ctrl::err::DMA_FAULT.is_set(cause) => Fault::DmaFault {
                    queue: None,
                    unit: DmaUnit::Unknown(0),
                    iova,
                },
                _ => Fault::Config { queue: None },
            };
            self.raise(fault);
        }
        let informational =
            cause & (ctrl::err::EVENT_OVERFLOW.mask() | ctrl::err::ICV_ENGINE.mask());
        if ctrl::err::EVENT_OVERFLOW.is_set(cause) {
            let dropped = self.bar.read32(b.event(&event::EQ_DROPPED))?;
            let count = dropped.wrapping_sub(self.eq_dropped);
            self.eq_dropped = dropped;
            self.stats.events_lost += u64::from(count);
            self.unreported.push(CardEvent::EventsLost { count });
        }
        if informational != 0 {
            // Cleared at once, so that FAULT_CODE records the next fault that matters.
            self.bar
                .write32(b.ctrl(&ctrl::ERR_CAUSE), informational as u32)?;
        }
        for q in 0..self.queues.len() as u16 {
            let qs = u64::from(self.bar.read32(b.queue_reg(q, &queue::Q_STATUS))?);
            if queue::q_status::ERROR.is_set(qs) || !queue::q_status::ENABLED.is_set(qs) {
                self.raise(Fault::QueueStopped { queue: q });
            }
        }
        for &q in hung {
            self.raise(Fault::QueueHung { queue: q });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_widen_to_the_card_and_to_loss() {
        let q = |n| FaultScope::Queue(n);
        assert_eq!(q(1).widen(q(1)), q(1));
        assert_eq!(q(1).widen(q(2)), FaultScope::Card);
        assert_eq!(FaultScope::Card.widen(q(0)), FaultScope::Card);
        assert_eq!(q(0).widen(FaultScope::Lost), FaultScope::Lost);
        let dma = |queue, unit| Fault::DmaFault {
            queue,
            unit,
            iova: 0,
        };
        assert_eq!(dma(Some(1), DmaUnit::TxDataRead).scope(2), q(1));
        assert_eq!(dma(Some(3), DmaUnit::TxDataRead).scope(2), FaultScope::Card);
        assert_eq!(dma(None, DmaUnit::AdminData).scope(2), FaultScope::Card);
        assert_eq!(Fault::EngineHang.scope(2), FaultScope::Card);
        assert_eq!(Fault::Removed.scope(2), FaultScope::Lost);
    }
}
