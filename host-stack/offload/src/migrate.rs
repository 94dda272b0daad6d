//! Moving SAs between the card and software, with their state (datasheet §8.5).
//!
//! Onto the card: `SA_WRITE` with a `SaState` carrying software's last sequence number (the
//! card continues with the next), its window and its counters. Off the card:
//! `SA_INVALIDATE` with export — the final state and the invalidation in one step, so no
//! packet uses the SA in between; packets the card had already taken complete and are
//! covered by the exported number, packets it had not yet taken come back `SA_INVALID` and
//! are routed to software. When the card cannot answer, software continues from the
//! driver's upper bound of what the card may have used plus a margin, and from the record
//! of what the card delivered.
//!
//! An entry is reused only once no descriptor naming it is outstanding, so a packet meant
//! for one SA is never encrypted with another.

use espo_driver::card::CardError;
use espo_fpga::SaState;
use espo_ipsec::counters::SaCounters;
use espo_ipsec::spec::Direction;

use super::state::{
    card_state_inbound, card_state_outbound, counters_of, merge_windows, replay_from_card,
};
use super::{
    CardMode, EngineEvent, MoveReason, OffloadEngine, OffloadError, Placement, SoftwareReason,
    Unfit,
};

impl OffloadEngine {
    /// At start: every SA that fits, while the table has room, in order.
    pub(super) fn place_initial(&mut self) -> Result<(), OffloadError> {
        for rec in 0..self.record_slots {
            if self.records.get(rec).is_none_or(|r| r.fit.is_err()) {
                continue;
            }
            let Some(sa_index) = self.free_slot() else {
                break;
            };
            self.promote(rec, sa_index)
                .map_err(|source| OffloadError::ProgramSa {
                    spi: self.records[rec].spi,
                    source,
                })?;
        }
        Ok(())
    }

    /// An entry with no SA, no descriptor naming it, and rested since it was freed
    /// ([`ENTRY_GRACE`](super::ENTRY_GRACE)). An entry still resting makes the engine look
    /// again at its next poll.
    pub(super) fn free_slot(&mut self) -> Option<u32> {
        let now = self.card.as_ref().map(|c| c.now());
        let mut resting = false;
        let found = (0..self.entry_owner.len()).find(|&i| {
            let unused = self.entry_owner[i].is_none() && self.entry_in_flight[i] == 0;
            let rested = match (self.entry_freed_at[i], now) {
                (Some(freed), Some(now)) => now.saturating_sub(freed) >= super::ENTRY_GRACE,
                _ => true,
            };
            resting |= unused && !rested;
            unused && rested
        });
        if found.is_none() && resting {
            self.rebalance_due = true;
        }
        found.map(|i| i as u32)
    }

    /// Whether the engine itself would move this SA onto the card.
    fn wants_card(&self, rec: usize) -> bool {
        let Some(r) = self.records.get(rec) else {
            return false;
        };
        r.placement == Placement::Software
            && r.fit.is_ok()
            && !r.pinned
            && !r.hard_done
            && !self.software_expired(rec)
    }

    pub(super) fn software_expired(&self, rec: usize) -> bool {
        let r = &self.records[rec];
        match r.dir {
            Direction::Out => self.sw.outbound.sas()[r.index].can_send().is_err(),
            Direction::In => self.sw.inbound.sas()[r.index].hard_expired(),
        }
    }

    /// Moves SAs waiting in software onto entries that freed up, in order.
    pub(super) fn place_waiting(&mut self) {
        if self.mode != CardMode::Offload {
            return;
        }
        for rec in 0..self.record_slots {
            if !self.wants_card(rec) {
                continue;
            }
            let Some(mut sa_index) = self.free_slot() else {
                return;
            };
            if self.records[rec].dir == Direction::In {
                // Frames the card still holds for software are taken first: one that
                // arrives after the move cannot be checked any more (`sa-moving`). The
                // entry is chosen again after: time passed, and the card may have faulted.
                self.receive();
                match (self.mode, self.free_slot()) {
                    (CardMode::Offload, Some(i)) => sa_index = i,
                    _ => return,
                }
            }
            match self.promote(rec, sa_index) {
                Ok(true) => self.moved(rec, MoveReason::RoomFreed),
                Ok(false) => {}
                Err(e) => {
                    self.card_failed(&e);
                    return;
                }
            }
        }
    }

    /// Writes SA `rec` to entry `sa_index` with software's state. `Ok(false)`: the card refused
    /// it (it stays in software for good).
    pub(super) fn promote(&mut self, rec: usize, sa_index: u32) -> Result<bool, CardError> {
        let soft = self.records[rec].soft_done;
        let index = self.records[rec].index;
        let (state, window, counters) = match self.records[rec].dir {
            Direction::Out => {
                let sa = &self.sw.outbound.sas()[index];
                (card_state_outbound(sa, soft), None, sa.counters)
            }
            Direction::In => {
                let sa = &self.sw.inbound.sas()[index];
                (
                    card_state_inbound(sa, soft),
                    Some(sa.replay.clone()),
                    sa.counters,
                )
            }
        };
        let (Some(card), Some(entry)) = (self.card.as_mut(), self.records[rec].entry.as_ref())
        else {
            return Ok(false);
        };
        match card.sa_write(sa_index, entry, Some(&state)) {
            Ok(()) => {
                let r = &mut self.records[rec];
                r.placement = Placement::Card { sa_index };
                r.why_software = None;
                r.last_sa_index = Some(sa_index);
                r.seq_high = state.seq;
                r.uncertain = 0;
                r.host = counters;
                r.host_only = SaCounters::default();
                r.shadow = window;
                if let Some(owner) = self.entry_owner.get_mut(sa_index as usize) {
                    *owner = Some(rec);
                }
                Ok(true)
            }
            Err(CardError::SaRefused { .. }) => {
                let r = &mut self.records[rec];
                r.fit_alone = Err(Unfit::Refused);
                r.fit = Err(Unfit::Refused);
                r.why_software = Some(SoftwareReason::Unfit(Unfit::Refused));
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Takes SA `rec` off the card with its exported state. Errors are the card's (a fault:
    /// recovery then accounts for the SA).
    pub(super) fn demote(&mut self, rec: usize, why: SoftwareReason) -> Result<(), CardError> {
        let Placement::Card { sa_index } = self.records[rec].placement else {
            return Ok(());
        };
        let Some(card) = self.card.as_mut() else {
            return Ok(());
        };
        let exported = card.sa_export(sa_index);
        let bound = card.sa_seq_upper_bound(sa_index);
        match exported {
            Ok(state) => self.apply_card_state(rec, Some(&state), bound),
            Err(CardError::SaRefused { .. }) => self.apply_card_state(rec, None, bound),
            Err(e) => return Err(e),
        }
        self.vacate(rec, why);
        Ok(())
    }

    /// Software continues SA `rec` from what the card says (`exact`) and the host's own
    /// record, or, when the card could not say, from the host's record and the driver's
    /// `bound` plus the margin. Numbers only ever move forward.
    ///
    /// Outbound, the host's record is the highest number a completion reported plus one
    /// number for every packet not yet completed or of unknown fate: the card numbers the
    /// packets it takes in order, so it used none above that. The card's export alone is
    /// not trusted — a card that exports a stale number would make software reuse nonces —
    /// so software continues from the highest of the export, that record and the driver's
    /// bound. Inbound, the card's window is merged with the host's record of every number
    /// it accepted (`shadow`).
    pub(super) fn apply_card_state(
        &mut self,
        rec: usize,
        exact: Option<&SaState>,
        bound: Option<u64>,
    ) {
        let margin = self.options.seq_margin;
        let r = &self.records[rec];
        let own_bound = r
            .seq_high
            .saturating_add(r.in_flight)
            .saturating_add(r.uncertain);
        let (index, host, host_only, shadow) = (r.index, r.host, r.host_only, r.shadow.clone());
        match r.dir {
            Direction::Out => {
                let sa = &mut self.sw.outbound.sas_mut()[index];
                let max = sa.params.max_seq();
                let known = own_bound.max(bound.unwrap_or(0));
                let seq = match exact {
                    Some(s) => s.seq.max(known),
                    None => known.saturating_add(margin),
                }
                .min(max);
                sa.advance_seq_to(seq);
                sa.counters = exact.map_or(host, counters_of);
                if exact.is_some_and(|s| s.hard_expired) {
                    sa.expired = true;
                }
            }
            Direction::In => {
                let sa = &mut self.sw.inbound.sas_mut()[index];
                let (size, esn) = (sa.replay.window_packets(), sa.replay.esn());
                let from_card = exact.and_then(|s| replay_from_card(s, size, esn).ok());
                let window = match (from_card, shadow) {
                    (Some(c), Some(s)) => merge_windows(&c, &s).ok().or(Some(c)),
                    (Some(c), None) => Some(c),
                    (None, s) => s,
                };
                if let Some(w) = window {
                    sa.replay = w;
                }
                // The card's exact counts, and what software accepted for it meanwhile.
                sa.counters = exact.map_or(host, |s| {
                    let card = counters_of(s);
                    SaCounters {
                        packets: card.packets.saturating_add(host_only.packets),
                        bytes: card.bytes.saturating_add(host_only.bytes),
                    }
                });
                if exact.is_some_and(|s| s.hard_expired) {
                    sa.expired = true;
                }
            }
        }
    }

    /// SA `rec` no longer holds its entry; the entry is reusable once nothing names it.
    pub(super) fn vacate(&mut self, rec: usize, why: SoftwareReason) {
        let r = &mut self.records[rec];
        if let Placement::Card { sa_index } = r.placement
            && let Some(owner) = self.entry_owner.get_mut(sa_index as usize)
        {
            *owner = None;
            if let Some(at) = self.entry_freed_at.get_mut(sa_index as usize) {
                *at = self.card.as_ref().map(|c| c.now());
            }
        }
        r.placement = Placement::Software;
        r.why_software = Some(why);
        // The shadow stays: frames the card decapsulated before the SA left it may still
        // be on their way, and are checked against it (the numbers the host accepted).
        self.rebalance_due = true;
    }

    /// Reports a completed move and counts it.
    pub(super) fn moved(&mut self, rec: usize, reason: MoveReason) {
        let r = &self.records[rec];
        match r.placement {
            Placement::Card { .. } => self.counters.moves_to_card += 1,
            Placement::Software => {
                self.counters.moves_to_software += 1;
                if reason == MoveReason::Fault {
                    self.counters.fallbacks += 1;
                }
            }
        }
        self.events.push(EngineEvent::Moved {
            spi: r.spi,
            dir: r.dir,
            to: r.placement,
            reason,
        });
    }

    /// Moves an SA off the card and keeps it in software until
    /// [`move_to_card`](Self::move_to_card). Returns false when no such SA exists.
    pub fn move_to_software(&mut self, spi: u32, dir: Direction) -> bool {
        let Some(rec) = self.record_of(spi, dir) else {
            return false;
        };
        self.records[rec].pinned = true;
        if self.records[rec].placement == Placement::Software {
            self.records[rec].why_software = Some(SoftwareReason::Requested);
            return true;
        }
        match self.demote(rec, SoftwareReason::Requested) {
            Ok(()) => self.moved(rec, MoveReason::Requested),
            // The fault's recovery moves it (it is pinned, so it stays in software).
            Err(e) => self.card_failed(&e),
        }
        true
    }

    /// Moves an SA onto the card if it fits and an entry is free; returns whether it runs
    /// on the card now.
    pub fn move_to_card(&mut self, spi: u32, dir: Direction) -> bool {
        let Some(rec) = self.record_of(spi, dir) else {
            return false;
        };
        self.records[rec].pinned = false;
        if matches!(self.records[rec].placement, Placement::Card { .. }) {
            return true;
        }
        if self.mode != CardMode::Offload || !self.wants_card(rec) {
            return false;
        }
        let Some(mut sa_index) = self.free_slot() else {
            self.records[rec].why_software = Some(SoftwareReason::TableFull);
            return false;
        };
        if dir == Direction::In {
            self.receive();
            match (self.mode, self.free_slot()) {
                (CardMode::Offload, Some(i)) => sa_index = i,
                _ => return false,
            }
        }
        match self.promote(rec, sa_index) {
            Ok(true) => {
                self.moved(rec, MoveReason::Requested);
                true
            }
            Ok(false) => false,
            Err(e) => {
                self.card_failed(&e);
                false
            }
        }
    }
}
