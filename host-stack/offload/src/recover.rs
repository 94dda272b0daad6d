//! Card faults (datasheet §10): stop, account, and bring the card back — or leave it.
//!
//! [`Card::quiesce`](espo_driver::card::Card::quiesce) stops the card as far as the fault
//! needs and reports, exactly, the completions and frames it took while stopping, every
//! submitted packet that will not complete (whether the card took it), and every SA's
//! read-back or sequence bound. Here:
//!
//! - completions and frames are processed as usual;
//! - a packet the card never took (`Taken::No`) is sent again, ahead of everything still
//!   waiting; one it may have taken (`Taken::Unknown`) is dropped and counted
//!   (`device-error`) — it may already be on the wire, and sending it twice is worse than
//!   losing it;
//! - when the card was reset, every SA it held moves to software with its state, then back
//!   onto the re-initialised card (re-programmed with that state), unless the card is gone
//!   or has faulted more than [`max_recoveries`](super::OffloadOptions::max_recoveries)
//!   times within the fault window: then every SA stays in software.

use espo_ipsec::spec::Direction;
use std::collections::HashMap;

use espo_driver::card::{FaultScope, SaProgram, SaRecovery, Taken};
use espo_fpga::SaState;

use super::state::{card_state_inbound, card_state_outbound};
use super::{
    CardMode, EngineEvent, MoveReason, OffloadEngine, Placement, Recovery, SoftwareReason,
};
use espo_ipsec::counters::DropReason;

impl OffloadEngine {
    /// Recovers from a card fault (or a card that misbehaved in any other way).
    pub(super) fn recover(&mut self) {
        let Some(card) = self.card.as_mut() else {
            return;
        };
        let untrusted_before = super::rx::datapath_untrusted(card);
        let report = match card.quiesce() {
            Ok(r) => r,
            Err(_) => {
                self.abandon_card(None);
                return;
            }
        };
        // Untrusted completions met while draining: TX ones come back as unverified, the
        // rest were frames.
        let untrusted = self
            .card
            .as_ref()
            .map_or(0, super::rx::datapath_untrusted)
            .saturating_sub(untrusted_before);
        let tx_unverified = report
            .completed
            .iter()
            .filter(|(_, d)| matches!(d.outcome, espo_driver::card::TxOutcome::Unverified(_)))
            .count() as u64;
        self.untrusted_frames(untrusted.saturating_sub(tx_unverified));
        self.counters.faults += 1;
        let now = self.options.clock.now();
        self.fault_times.push_back(now);
        while self
            .fault_times
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > self.options.fault_window)
        {
            self.fault_times.pop_front();
        }

        self.requeued = 0;
        for (_, done) in report.completed {
            self.on_tx_done(done);
        }
        for (_, frame) in &report.received {
            self.on_rx(frame);
        }
        let mut resend = Vec::new();
        for n in &report.not_completed {
            let Some(posted) = self.posted.remove(&n.tag) else {
                continue;
            };
            self.posted_settled(&posted);
            match n.taken {
                Taken::No => resend.push(posted),
                Taken::Unknown => {
                    if let Some(rec) = posted.card_sa.and_then(|c| c.rec) {
                        self.records[rec].uncertain += 1;
                    }
                    self.counters.tx_fate_unknown += 1;
                    self.tx_drop(posted.tag, DropReason::DeviceError);
                    self.recycle_work(posted.work);
                }
            }
        }
        // In their order, behind the completed ones put back above, ahead of what waits.
        for p in resend {
            self.counters.tx_resent += 1;
            self.requeue(p.tag, p.work);
        }

        let fault = report.fault;
        match report.scope {
            FaultScope::Queue(_) => {
                let ok = self.card.as_mut().is_some_and(|c| c.reinit(&[]).is_ok());
                if ok {
                    self.counters.recoveries += 1;
                    self.events.push(EngineEvent::Fault {
                        fault,
                        recovery: Recovery::Reinitialised,
                    });
                } else {
                    self.abandon_card(fault);
                }
            }
            FaultScope::Card => {
                let infos: HashMap<u32, SaRecovery> =
                    report.sas.into_iter().map(|s| (s.index, s)).collect();
                let was_on_card = self.demote_all(|sa_index| infos.get(&sa_index).cloned());
                if self.fault_times.len() > self.options.max_recoveries as usize
                    || self.mode == CardMode::FramesOnly
                {
                    self.frames_only(fault, &was_on_card);
                } else {
                    self.reinit_with(fault, &was_on_card);
                }
            }
            FaultScope::Lost => {
                let infos: HashMap<u32, SaRecovery> =
                    report.sas.into_iter().map(|s| (s.index, s)).collect();
                let was_on_card = self.demote_all(|sa_index| infos.get(&sa_index).cloned());
                self.gone(fault, &was_on_card);
            }
        }
        // Packets still recorded as on the ring were neither completed nor reported: the
        // card cannot say what became of them.
        if self.mode == CardMode::Gone || !self.posted.is_empty() && self.card_reset_done() {
            let left: Vec<u64> = self.posted.keys().copied().collect();
            for driver_tag in left {
                if let Some(p) = self.posted.remove(&driver_tag) {
                    self.posted_settled(&p);
                    self.counters.tx_fate_unknown += 1;
                    self.tx_drop(p.tag, DropReason::DeviceError);
                    self.recycle_work(p.work);
                }
            }
        }
    }

    /// Whether the card has nothing outstanding (after a reset, nothing can be).
    fn card_reset_done(&self) -> bool {
        self.card
            .as_ref()
            .is_none_or(|c| c.tx_outstanding(self.options.queue).unwrap_or(0) == 0)
    }

    /// Moves every SA on the card to software (it was reset or is gone), each from what
    /// `info` says of its entry. Returns the records that were on the card, with entries.
    fn demote_all(&mut self, info: impl Fn(u32) -> Option<SaRecovery>) -> Vec<(usize, u32)> {
        let mut was = Vec::new();
        for rec in 0..self.record_slots {
            let Some(Placement::Card { sa_index }) = self.records.get(rec).map(|r| r.placement)
            else {
                continue;
            };
            let i = info(sa_index);
            let exact = i.as_ref().and_then(|i| i.read_back.clone());
            let bound = i.as_ref().and_then(|i| i.seq_upper_bound);
            self.apply_card_state(rec, exact.as_ref(), bound);
            if exact
                .as_ref()
                .is_some_and(|s| s.hard_expired || s.seq_exhausted)
            {
                self.mark_retired(rec);
            }
            self.vacate(rec, SoftwareReason::CardFaulty);
            was.push((rec, sa_index));
        }
        was
    }

    /// Re-initialises the card and writes back the SAs that were on it, with their state.
    fn reinit_with(&mut self, fault: Option<espo_driver::card::Fault>, was: &[(usize, u32)]) {
        let mut states: Vec<(usize, u32, SaState)> = Vec::new();
        for &(rec, sa_index) in was {
            let r = &self.records[rec];
            if r.hard_done || r.pinned || self.software_expired(rec) {
                continue;
            }
            let state = match r.dir {
                Direction::Out => {
                    card_state_outbound(&self.sw.outbound.sas()[r.index], r.soft_done)
                }
                Direction::In => card_state_inbound(&self.sw.inbound.sas()[r.index], r.soft_done),
            };
            states.push((rec, sa_index, state));
        }
        let programs: Vec<SaProgram<'_>> = states
            .iter()
            .filter_map(|(rec, sa_index, state)| {
                self.records[*rec].entry.as_ref().map(|entry| SaProgram {
                    index: *sa_index,
                    entry,
                    state: Some(state),
                })
            })
            .collect();
        let Some(card) = self.card.as_mut() else {
            return;
        };
        let results = match card.reinit(&programs) {
            Ok(r) => r,
            Err(_) => {
                drop(programs);
                self.abandon_card(fault);
                return;
            }
        };
        drop(programs);
        let written: HashMap<u32, bool> = results
            .into_iter()
            .map(|(sa_index, r)| (sa_index, r.is_ok()))
            .collect();
        for (rec, sa_index, state) in states {
            if written.get(&sa_index) == Some(&true) {
                let window = match self.records[rec].dir {
                    Direction::In => Some(
                        self.sw.inbound.sas()[self.records[rec].index]
                            .replay
                            .clone(),
                    ),
                    Direction::Out => None,
                };
                let r = &mut self.records[rec];
                r.placement = Placement::Card { sa_index };
                r.why_software = None;
                r.last_sa_index = Some(sa_index);
                r.seq_high = state.seq;
                r.uncertain = 0;
                r.host_only = espo_ipsec::counters::SaCounters::default();
                r.shadow = window;
                if let Some(owner) = self.entry_owner.get_mut(sa_index as usize) {
                    *owner = Some(rec);
                }
            }
        }
        // Those that did not go back ended in software.
        for &(rec, _) in was {
            if self.records[rec].placement == Placement::Software {
                self.moved(rec, MoveReason::Fault);
            }
        }
        self.counters.recoveries += 1;
        self.events.push(EngineEvent::Fault {
            fault,
            recovery: Recovery::Reinitialised,
        });
    }

    /// Too many faults: the card carries frames, software does every SA.
    fn frames_only(&mut self, fault: Option<espo_driver::card::Fault>, was: &[(usize, u32)]) {
        let ok = self.card.as_mut().is_some_and(|c| c.reinit(&[]).is_ok());
        if !ok {
            self.abandon_card(fault);
            return;
        }
        self.mode = CardMode::FramesOnly;
        self.counters.recoveries += 1;
        for &(rec, _) in was {
            self.moved(rec, MoveReason::Fault);
        }
        for r in self.records.iter_mut() {
            if r.placement == Placement::Software && r.fit.is_ok() {
                r.why_software = Some(SoftwareReason::CardFaulty);
            }
        }
        self.events.push(EngineEvent::Fault {
            fault,
            recovery: Recovery::SasToSoftware,
        });
    }

    /// The card is gone: software does everything, frames use the fallback wire.
    fn gone(&mut self, fault: Option<espo_driver::card::Fault>, was: &[(usize, u32)]) {
        self.unlend_pending();
        // Lent buffers of a card that is gone: nothing to give back.
        self.spare_tx.clear();
        self.card = None;
        self.mode = CardMode::Gone;
        self.max_frame = super::options::MAX_WIRE_FRAME;
        for &(rec, _) in was {
            self.moved(rec, MoveReason::Fault);
        }
        for r in self.records.iter_mut() {
            r.why_software = match r.why_software {
                Some(SoftwareReason::Unfit(u)) => Some(SoftwareReason::Unfit(u)),
                Some(SoftwareReason::Expired) => Some(SoftwareReason::Expired),
                _ => Some(SoftwareReason::CardGone),
            };
        }
        self.events.push(EngineEvent::Fault {
            fault,
            recovery: Recovery::CardGone,
        });
    }

    /// The card could not be stopped or brought back: its SAs continue in software from
    /// the driver's bounds, everything still on its ring is of unknown fate.
    fn abandon_card(&mut self, fault: Option<espo_driver::card::Fault>) {
        let bounds: HashMap<u32, Option<u64>> = self
            .records
            .iter()
            .filter_map(|r| match r.placement {
                Placement::Card { sa_index } => Some((
                    sa_index,
                    self.card
                        .as_ref()
                        .and_then(|c| c.sa_seq_upper_bound(sa_index)),
                )),
                Placement::Software => None,
            })
            .collect();
        let was = self.demote_all(|sa_index| {
            bounds.get(&sa_index).map(|b| SaRecovery {
                index: sa_index,
                direction: espo_driver::card::SaDirection::Outbound,
                read_back: None,
                seq_upper_bound: *b,
                rx_seq_high: None,
            })
        });
        let left: Vec<u64> = self.posted.keys().copied().collect();
        for driver_tag in left {
            if let Some(p) = self.posted.remove(&driver_tag) {
                self.posted_settled(&p);
                self.counters.tx_fate_unknown += 1;
                self.tx_drop(p.tag, DropReason::DeviceError);
                self.recycle_work(p.work);
            }
        }
        self.gone(fault, &was);
    }
}
