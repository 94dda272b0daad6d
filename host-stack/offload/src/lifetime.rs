//! Lifetimes (datasheet §11): soft and hard, by bytes and packets — counted exactly by the
//! card for its SAs and by the software engine for its own — and by time, on the host
//! clock. Every crossing reaches the owner as an [`EngineEvent::Lifetime`]; an SA at its
//! hard end (or out of sequence numbers) sends and accepts nothing more, and leaves the
//! card so that its entry serves another SA.

use espo_driver::card::CardEvent;
use espo_ipsec::lifetime::LifetimeCause;
use espo_ipsec::spec::Direction;

use super::{EngineEvent, MoveReason, OffloadEngine, Placement, SoftwareReason};
use espo_ipsec::spd::Bundle;

impl OffloadEngine {
    /// Card events, and the faults they announce.
    pub(super) fn service(&mut self) {
        if std::mem::take(&mut self.rebalance_due) {
            self.place_waiting();
        }
        let Some(card) = self.card.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        let result = card.service(&mut events);
        let mut fault = result.is_err();
        for e in events {
            match e {
                CardEvent::Fault(_) => fault = true,
                CardEvent::LifetimeSoft {
                    sa_index,
                    bytes,
                    packets,
                    ..
                } => {
                    if let Some(rec) = self.owner_of(sa_index) {
                        self.soft_crossed(rec, cause_of(bytes, packets));
                    }
                }
                CardEvent::LifetimeHard {
                    sa_index,
                    bytes,
                    packets,
                    ..
                } => {
                    if let Some(rec) = self.owner_of(sa_index) {
                        self.retire(rec, cause_of(bytes, packets));
                    }
                }
                CardEvent::SeqExhausted { sa_index, .. } => {
                    if let Some(rec) = self.owner_of(sa_index) {
                        self.retire(rec, LifetimeCause::SequenceNumbers);
                    }
                }
                // The packet it hit completed ENGINE_ERROR and was dealt with there.
                CardEvent::IcvEngineError { .. } => {}
                CardEvent::EventsLost { .. } => self.reread_card_states(),
            }
        }
        if fault {
            self.recover();
        }
    }

    fn owner_of(&self, sa_index: u32) -> Option<usize> {
        self.entry_owner.get(sa_index as usize).copied().flatten()
    }

    /// Events were lost: the card's flags say which lifetimes were crossed.
    fn reread_card_states(&mut self) {
        let on_card: Vec<(usize, u32)> = self
            .records
            .entries()
            .filter_map(|(i, r)| match r.placement {
                Placement::Card { sa_index } => Some((i, sa_index)),
                Placement::Software => None,
            })
            .collect();
        for (rec, sa_index) in on_card {
            let Some(card) = self.card.as_mut() else {
                return;
            };
            let state = match card.sa_read(sa_index) {
                Ok(s) => s,
                Err(e) => {
                    self.card_failed(&e);
                    return;
                }
            };
            if state.soft_expired {
                self.soft_crossed(rec, LifetimeCause::Packets);
            }
            if state.seq_exhausted {
                self.retire(rec, LifetimeCause::SequenceNumbers);
            } else if state.hard_expired {
                self.retire(rec, LifetimeCause::Packets);
            }
        }
    }

    fn soft_crossed(&mut self, rec: usize, cause: LifetimeCause) {
        let r = &mut self.records[rec];
        if !r.soft_done {
            r.soft_done = true;
            self.events.push(EngineEvent::Lifetime {
                spi: r.spi,
                dir: r.dir,
                hard: false,
                cause,
            });
        }
    }

    /// Reports the hard end once and makes the software copy refuse everything.
    pub(super) fn mark_retired(&mut self, rec: usize) {
        self.hard_reached(rec, LifetimeCause::Packets);
    }

    fn hard_reached(&mut self, rec: usize, cause: LifetimeCause) {
        let r = &mut self.records[rec];
        let first = !r.hard_done;
        r.hard_done = true;
        let (index, spi, dir) = (r.index, r.spi, r.dir);
        match (dir, cause) {
            (Direction::Out, LifetimeCause::SequenceNumbers) => {
                let sa = &mut self.sw.outbound.sas_mut()[index];
                let max = sa.params.max_seq();
                sa.advance_seq_to(max);
            }
            (Direction::Out, _) => self.sw.outbound.sas_mut()[index].expired = true,
            (Direction::In, _) => self.sw.inbound.sas_mut()[index].expired = true,
        }
        if first {
            self.events.push(EngineEvent::Lifetime {
                spi,
                dir,
                hard: true,
                cause,
            });
        }
    }

    /// The SA's life is over: reported, ended, and off the card.
    pub(super) fn retire(&mut self, rec: usize, cause: LifetimeCause) {
        if let Placement::Card { .. } = self.records[rec].placement {
            match self.demote(rec, SoftwareReason::Expired) {
                Ok(()) => self.moved(rec, MoveReason::Expired),
                Err(e) => self.card_failed(&e),
            }
        }
        self.hard_reached(rec, cause);
        self.records[rec].why_software = Some(SoftwareReason::Expired);
    }

    /// Time lifetimes on the host clock.
    pub(super) fn check_time_lifetimes(&mut self) {
        if self.timed.is_empty() {
            return;
        }
        let now = self.options.clock.now();
        for i in 0..self.timed.len() {
            let rec = self.timed[i];
            let r = &self.records[rec];
            let age = now.saturating_sub(r.installed).as_secs();
            let lifetime = match r.dir {
                Direction::Out => self.sw.outbound.sas()[r.index].params.lifetime,
                Direction::In => self.sw.inbound.sas()[r.index].params.lifetime,
            };
            if lifetime.soft_seconds.is_some_and(|s| age >= s) {
                self.soft_crossed(rec, LifetimeCause::Seconds);
            }
            if !self.records[rec].hard_done && lifetime.hard_seconds.is_some_and(|s| age >= s) {
                self.retire(rec, LifetimeCause::Seconds);
            }
        }
    }

    /// After software sent on `bundle`: lifetimes crossed by its counters.
    pub(super) fn software_sent(&mut self, bundle: Bundle) {
        for index in std::iter::once(bundle.inner).chain(bundle.outer_ah) {
            let Some(rec) = self.out_rec.get(index).copied().flatten() else {
                continue;
            };
            let sa = &self.sw.outbound.sas()[index];
            let soft = sa.params.soft_expired(&sa.counters);
            let hard = sa.params.hard_expired(&sa.counters);
            let exhausted = sa.seq() >= sa.params.max_seq();
            let cause = counted_cause(&sa.params.lifetime, &sa.counters);
            if soft {
                self.soft_crossed(rec, cause);
            }
            if exhausted {
                self.hard_reached(rec, LifetimeCause::SequenceNumbers);
            } else if hard {
                self.hard_reached(rec, cause);
            }
        }
    }

    /// After software accepted a packet for inbound SA `rec` while the SA is on the card:
    /// lifetimes crossed by the host's count of its packets.
    pub(super) fn card_sa_received_in_software(&mut self, rec: usize) {
        let r = &self.records[rec];
        let params = &self.sw.inbound.sas()[r.index].params;
        let (soft, hard) = (params.soft_expired(&r.host), params.hard_expired(&r.host));
        let cause = counted_cause(&params.lifetime, &r.host);
        if soft {
            self.soft_crossed(rec, cause);
        }
        if hard && !self.records[rec].hard_done {
            self.retire(rec, cause);
        }
    }

    /// After software delivered a packet of inbound SA `spi`.
    pub(super) fn software_received(&mut self, spi: u32) {
        let Some(rec) = self.record_of(spi, Direction::In) else {
            return;
        };
        let sa = &self.sw.inbound.sas()[self.records[rec].index];
        let soft = sa.params.soft_expired(&sa.counters);
        let hard = sa.params.hard_expired(&sa.counters);
        let cause = counted_cause(&sa.params.lifetime, &sa.counters);
        if soft {
            self.soft_crossed(rec, cause);
        }
        if hard {
            self.hard_reached(rec, cause);
        }
    }
}

fn cause_of(bytes: bool, packets: bool) -> LifetimeCause {
    if bytes && !packets {
        LifetimeCause::Bytes
    } else {
        LifetimeCause::Packets
    }
}

/// Which counted limit the counters reached (packets unless only bytes did).
fn counted_cause(
    l: &espo_ipsec::spec::Lifetime,
    c: &espo_ipsec::counters::SaCounters,
) -> LifetimeCause {
    let by_bytes =
        l.soft_bytes.is_some_and(|n| c.bytes >= n) || l.hard_bytes.is_some_and(|n| c.bytes >= n);
    let by_packets = l.soft_packets.is_some_and(|n| c.packets >= n)
        || l.hard_packets.is_some_and(|n| c.packets >= n);
    cause_of(by_bytes, by_packets)
}
