//! The live SA and policy database of the offload engine: SAs and policies change while
//! packets flow, each change made by the engine's owner between two batches (the owner
//! holds the engine for one batch at a time, so a call here is always between two).
//!
//! The software engine holds the database (espo-ipsec's live SAD/SPD, which refuses what
//! would leave a policy naming an SA that is gone); the engine keeps its records, the card
//! and the packets on their way consistent with it:
//!
//! - An SA added is placed on the card by the rules that place SAs at start
//!   ([`placement::fitness`](super::placement::fitness), while the table has room),
//!   otherwise it runs in software with the reason; it moves onto the card when an entry
//!   frees up. Its time lifetimes count from when it was added.
//! - An SA removed leaves the card by `SA_INVALIDATE` (the entry rests
//!   [`ENTRY_GRACE`](super::ENTRY_GRACE) before another SA takes it). Packets the card had
//!   already taken complete on it; packets it had not taken, and packets still waiting on
//!   the host, are classified again against the database as it now is — none is ever sent
//!   on the removed SA. Inbound frames of it that reach the host afterwards, decapsulated
//!   by the card before the invalidation or not, find no SA (`unknown-spi`): no verdict
//!   from a removed SA.
//! - A replacement (a rekey) is make-before-break. Outbound, every policy names the new SA
//!   in one step and the old one is removed as above; packets waiting to be routed go on
//!   the new one. Inbound, the new SA accepts beside the old one and passes the policy
//!   check wherever the old one does; the owner removes the old one after its grace
//!   period, and the new one takes its place in the policies.
//! - Policies are added, removed and given new bundles in the software engine. A packet
//!   already classified keeps its bundle (it saw the database before the change) unless an
//!   SA of it is removed. An SA that an ESP+AH bundle comes to name leaves the card (the
//!   card does not do bundles) and returns once no bundle names it.
//!
//! Record ids, software SA indices and SA table entries are all reused after a removal, so
//! a removal leaves nothing naming what it freed: the SA's index is taken out of every
//! waiting packet's bundle, and packets on the card's ring keep the SA's SPI and entry but
//! lose its record.

use std::net::IpAddr;

use espo_driver::card::CardError;
use espo_ipsec::engine::ChangeError;
use espo_ipsec::sa::{InboundSa, OutboundSa, SaParams, SeqReservation};
use espo_ipsec::spd::{Action, Bundle, PolicyId, Spd};
use espo_ipsec::spec::{Direction, PolicySpec, SaSpec};

use super::{
    CardMode, MoveReason, OffloadEngine, OffloadError, Placement, SaRecord, SoftwareReason, Unfit,
    placement,
};
use espo_ipsec::counters::SaCounters;

/// A work item's bundle after SA `old` left: renamed to its replacement, or `None` (the
/// packet is classified again when it is routed).
fn rebind(bundle: &mut Option<Bundle>, old: usize, new: Option<usize>) {
    let Some(b) = bundle else {
        return;
    };
    if b.inner != old && b.outer_ah != Some(old) {
        return;
    }
    match new {
        Some(n) => {
            if b.inner == old {
                b.inner = n;
            }
            if b.outer_ah == Some(old) {
                b.outer_ah = Some(n);
            }
        }
        None => *bundle = None,
    }
}

/// SA indices named by an ESP+AH bundle of this SPD.
fn bundled(spd: &Spd) -> Vec<usize> {
    spd.policies()
        .iter()
        .filter_map(|p| match p.action {
            Action::Protect(b) => b.outer_ah.map(|ah| [b.inner, ah]),
            _ => None,
        })
        .flatten()
        .collect()
}

impl OffloadEngine {
    /// Adds an SA in `dir`. It runs on the card when it fits there and the SA table has room
    /// (by the rules that place SAs at start), otherwise in software with the reason; it
    /// sends or passes the policy check once a policy names it. An outbound SA numbers its
    /// packets without limit until it is given a reservation
    /// ([`set_reservation`](Self::set_reservation)). Refused — nothing changed — when an SA
    /// of that direction with its SPI (inbound: and destination) exists, or when it cannot
    /// be built.
    pub fn add_sa(&mut self, spec: &SaSpec, dir: Direction) -> Result<(), OffloadError> {
        let now = self.options.clock.now();
        let index = match dir {
            Direction::Out => {
                let sa = outbound_sa(spec, now)?;
                self.sw.outbound.add_sa(sa)?
            }
            Direction::In => {
                let sa = inbound_sa(spec, now)?;
                self.sw.inbound.add_sa(sa)?
            }
        };
        let rec = self.install_record(Some(spec), dir, index, now);
        self.place_new(rec);
        Ok(())
    }

    /// Removes SA `spi` of `dir` (inbound: the one with destination `dst`, or the first with
    /// that SPI). Refused — nothing changed — while a policy names it (inbound: unless a
    /// replacement stands for it, which then takes its place in the policies).
    ///
    /// On the card it is invalidated; packets the card had taken complete on it, every
    /// other packet for it is classified again (it is never sent on the removed SA), and
    /// inbound frames of it the host meets from now on are dropped (`unknown-spi`).
    pub fn remove_sa(
        &mut self,
        spi: u32,
        dir: Direction,
        dst: Option<IpAddr>,
    ) -> Result<(), OffloadError> {
        let index = match dir {
            Direction::Out => {
                let index = self
                    .sw
                    .outbound
                    .sa_index(spi)
                    .ok_or(ChangeError::UnknownSa { spi, dir: "out" })?;
                self.sw.outbound.remove_sa(spi)?;
                index
            }
            Direction::In => {
                let inbound = &self.sw.inbound;
                let index = match dst {
                    Some(dst) => inbound.sa_index(spi, dst),
                    None => inbound.sas().position(|s| s.params.spi == spi),
                }
                .ok_or(ChangeError::UnknownSa { spi, dir: "in" })?;
                self.sw.inbound.remove_sa(spi, dst)?;
                index
            }
        };
        if let Some(rec) = self.rec_of(dir, index) {
            self.forget(rec, None);
        }
        // A replacement took the removed SA's place in the policies.
        self.refit_bundles();
        Ok(())
    }

    /// Replaces SA `old_spi` of `dir` with `new` (a rekey), make-before-break.
    ///
    /// Outbound: every policy naming the old SA names the new one from the next packet
    /// routed on; the old SA is removed (packets the card had taken complete on it, every
    /// other packet goes on the new one). Inbound: the new SA is added beside the old one
    /// (the first inbound SA with SPI `old_spi`) and passes the policy check wherever the old
    /// one does; both accept until the owner removes the old one with
    /// [`remove_sa`](Self::remove_sa) after its grace period, when the new one takes its
    /// place in the policies.
    ///
    /// The new SA is placed as [`add_sa`](Self::add_sa) places one (outbound: with no
    /// reservation until it is given one). Refused — nothing
    /// changed — when the old SA does not exist, the new one's SPI is taken, its protocol or
    /// mode differ from the old one's, or it cannot be built.
    pub fn replace_sa(
        &mut self,
        old_spi: u32,
        dir: Direction,
        new: &SaSpec,
    ) -> Result<(), OffloadError> {
        let now = self.options.clock.now();
        let index = match dir {
            Direction::Out => {
                let old = self
                    .sw
                    .outbound
                    .sa_index(old_spi)
                    .ok_or(ChangeError::UnknownSa {
                        spi: old_spi,
                        dir: "out",
                    })?;
                let sa = outbound_sa(new, now)?;
                let (index, _) = self.sw.outbound.replace_sa(old_spi, sa)?;
                if let Some(rec) = self.rec_of(Direction::Out, old) {
                    self.forget(rec, Some(index));
                }
                index
            }
            Direction::In => {
                let sa = inbound_sa(new, now)?;
                self.sw.inbound.replace_sa(old_spi, None, sa)?
            }
        };
        let rec = self.install_record(Some(new), dir, index, now);
        self.refit_bundles();
        self.place_new(rec);
        Ok(())
    }

    /// Adds a policy at `position` in its direction's search order (`None`: last). Policy
    /// ids are unique across both directions.
    pub fn add_policy(
        &mut self,
        spec: &PolicySpec,
        id: PolicyId,
        position: Option<usize>,
    ) -> Result<(), OffloadError> {
        if self.policy_direction(id).is_some() {
            return Err(ChangeError::DuplicatePolicy(id).into());
        }
        match spec.dir {
            Direction::Out => self.sw.outbound.add_policy(spec, id, position)?,
            Direction::In => self.sw.inbound.add_policy(spec, id, position)?,
        }
        self.refit_bundles();
        Ok(())
    }

    /// Removes a policy. Packets it already classified keep their SAs.
    pub fn remove_policy(&mut self, id: PolicyId) -> Result<(), OffloadError> {
        match self.policy_direction(id) {
            Some(Direction::Out) => {
                self.sw.outbound.remove_policy(id)?;
            }
            Some(Direction::In) => {
                self.sw.inbound.remove_policy(id)?;
            }
            None => return Err(ChangeError::UnknownPolicy(id).into()),
        }
        self.refit_bundles();
        Ok(())
    }

    /// Changes the SA bundle of a protect policy (SPIs innermost first). Packets it already
    /// classified keep the SAs they were classified for.
    pub fn set_bundle(&mut self, id: PolicyId, spis: &[u32]) -> Result<(), OffloadError> {
        match self.policy_direction(id) {
            Some(Direction::Out) => self.sw.outbound.set_bundle(id, spis)?,
            Some(Direction::In) => self.sw.inbound.set_bundle(id, spis)?,
            None => return Err(ChangeError::UnknownPolicy(id).into()),
        }
        self.refit_bundles();
        Ok(())
    }

    /// IKE messages on the encapsulation ports (behind the non-ESP marker) come out as
    /// [`Received::Ike`](crate::Received::Ike) for the key-management daemon; the card
    /// passes them on as it does any datagram that is not ESP.
    pub fn set_ike(&mut self, on: bool) {
        self.sw.inbound.set_ike(on);
    }

    /// Makes outbound SA `spi` number its packets within `reservation` from now on; false
    /// when there is no such SA. In software the SA stops at the limit (`seq-unreserved`).
    /// On the card, a packet goes to the card only while every number the card may then
    /// have used is within the limit, and the reservation's `used` follows that bound, so
    /// the owner always sees the highest number the card may have used.
    pub fn set_reservation(&mut self, spi: u32, reservation: SeqReservation) -> bool {
        let Some(index) = self.sw.outbound.sa_index(spi) else {
            return false;
        };
        if let Some(rec) = self.rec_of(Direction::Out, index)
            && let Placement::Card { sa_index } = self.records[rec].placement
        {
            reservation.note_used(self.card_seq_bound(rec, sa_index));
        }
        self.sw.outbound.sas_mut()[index].set_reservation(reservation);
        true
    }

    /// Outbound SA `rec` on the card in entry `sa_index`: no sequence number above this was
    /// used or handed out for it — the driver's bound, or the host's record of completions
    /// and of packets not yet completed, whichever is higher.
    pub(super) fn card_seq_bound(&self, rec: usize, sa_index: u32) -> u64 {
        let r = &self.records[rec];
        let own = r
            .seq_high
            .saturating_add(r.uncertain)
            .saturating_add(r.in_flight);
        let driver = self
            .card
            .as_ref()
            .and_then(|c| c.sa_seq_upper_bound(sa_index))
            .unwrap_or(0);
        own.max(driver)
    }

    /// The direction of policy `id`, if it exists.
    fn policy_direction(&self, id: PolicyId) -> Option<Direction> {
        if self.sw.outbound.spd().get(id).is_some() {
            Some(Direction::Out)
        } else if self.sw.inbound.spd().get(id).is_some() {
            Some(Direction::In)
        } else {
            None
        }
    }

    /// A record for software SA `index` of `dir`, built from `spec` (`None`: the SA is not
    /// one the card can take). It starts in software.
    pub(super) fn install_record(
        &mut self,
        spec: Option<&SaSpec>,
        dir: Direction,
        index: usize,
        installed: std::time::Duration,
    ) -> usize {
        let outbound = dir == Direction::Out;
        let fit_alone = match (self.caps.as_ref(), spec) {
            (Some(caps), Some(s)) => placement::fitness(s, outbound, false, caps, self.features),
            _ => Err(Unfit::NoCard),
        };
        let entry = match (&fit_alone, spec) {
            (Ok(alg), Some(s)) => Some(placement::sa_entry(s, outbound, *alg)),
            _ => None,
        };
        let (spi, lifetime) = match dir {
            Direction::Out => {
                let p = &self.sw.outbound.sas()[index].params;
                (p.spi, p.lifetime)
            }
            Direction::In => {
                let p = &self.sw.inbound.sas()[index].params;
                (p.spi, p.lifetime)
            }
        };
        let why = match (fit_alone, self.mode) {
            (Err(u), _) => SoftwareReason::Unfit(u),
            (Ok(_), CardMode::Offload) => SoftwareReason::TableFull,
            (Ok(_), CardMode::FramesOnly) => SoftwareReason::CardFaulty,
            (Ok(_), CardMode::Gone) => SoftwareReason::CardGone,
        };
        let rec = self.records.insert(SaRecord {
            spi,
            dir,
            index,
            fit_alone,
            fit: fit_alone,
            entry,
            placement: Placement::Software,
            why_software: Some(why),
            last_sa_index: None,
            soft_done: false,
            hard_done: false,
            pinned: false,
            installed,
            shadow: None,
            host: SaCounters::default(),
            host_only: SaCounters::default(),
            seq_high: 0,
            uncertain: 0,
            in_flight: 0,
        });
        self.record_slots = self.record_slots.max(rec + 1);
        let map = match dir {
            Direction::Out => &mut self.out_rec,
            Direction::In => &mut self.in_rec,
        };
        if map.len() <= index {
            map.resize(index + 1, None);
        }
        map[index] = Some(rec);
        self.by_spi.entry((spi, dir)).or_insert(rec);
        if lifetime.soft_seconds.is_some() || lifetime.hard_seconds.is_some() {
            self.timed.push(rec);
        }
        rec
    }

    /// Puts a new SA on the card if it fits and an entry is free (otherwise it waits in
    /// software for one). A card that fails the write recovers as from any fault.
    fn place_new(&mut self, rec: usize) {
        if self.mode != CardMode::Offload || self.records[rec].fit.is_err() {
            return;
        }
        let Some(mut sa_index) = self.free_slot() else {
            return;
        };
        if self.records[rec].dir == Direction::In {
            // Frames of it the card holds for software are taken first (see `place_waiting`).
            self.receive();
            match (self.mode, self.free_slot()) {
                (CardMode::Offload, Some(i)) => sa_index = i,
                _ => return,
            }
        }
        if let Err(e) = self.promote(rec, sa_index) {
            self.card_failed(&e);
        }
    }

    /// The software SA of record `rec` is gone (`successor`: the outbound SA that replaced
    /// it): the record leaves the card and the engine, and nothing names it any more.
    fn forget(&mut self, rec: usize, successor: Option<usize>) {
        let (dir, index, spi) = {
            let r = &self.records[rec];
            (r.dir, r.index, r.spi)
        };
        let mut failed = None;
        if let Placement::Card { sa_index } = self.records[rec].placement {
            if let Some(card) = self.card.as_mut() {
                match card.sa_invalidate(sa_index) {
                    // Refused: the entry is not valid on the card (nothing to take off).
                    Ok(_) | Err(CardError::SaRefused { .. }) => {}
                    Err(e) => failed = Some(e),
                }
            }
            self.vacate(rec, SoftwareReason::Requested);
        }
        // Packets on their way: none names the SA's index any more (another SA may take
        // it), and those on the ring keep its SPI and entry but lose its record.
        if dir == Direction::Out {
            let works = self
                .pending
                .iter_mut()
                .map(|(_, w)| w)
                .chain(self.posted.values_mut().map(|p| &mut p.work));
            for work in works {
                if let super::Work::Protect { bundle, .. } = work {
                    rebind(bundle, index, successor);
                }
            }
        }
        for p in self.posted.values_mut() {
            if let Some(c) = p.card_sa.as_mut()
                && c.rec == Some(rec)
            {
                c.rec = None;
            }
        }
        let map = match dir {
            Direction::Out => &mut self.out_rec,
            Direction::In => &mut self.in_rec,
        };
        if let Some(slot) = map.get_mut(index) {
            *slot = None;
        }
        self.timed.retain(|&t| t != rec);
        self.records.remove(rec);
        if self.by_spi.get(&(spi, dir)) == Some(&rec) {
            self.by_spi.remove(&(spi, dir));
            if let Some((other, _)) = self
                .records
                .entries()
                .find(|(_, r)| r.spi == spi && r.dir == dir)
            {
                self.by_spi.insert((spi, dir), other);
            }
        }
        // The card faulted taking it off: it recovers without it.
        if let Some(e) = failed {
            self.card_failed(&e);
        }
    }

    /// The card does not do ESP+AH bundles: an SA a bundle names (inbound: or that a
    /// replacement stands for) leaves the card, and may return once none does.
    pub(super) fn refit_bundles(&mut self) {
        let out = bundled(self.sw.outbound.spd());
        let inb = bundled(self.sw.inbound.spd());
        for rec in 0..self.record_slots {
            let Some(r) = self.records.get(rec) else {
                continue;
            };
            let in_bundle = match r.dir {
                Direction::Out => out.contains(&r.index),
                Direction::In => {
                    inb.contains(&r.index)
                        || self.sw.inbound.sas()[r.index]
                            .stands_for()
                            .is_some_and(|i| inb.contains(&i))
                }
            };
            let fit = if in_bundle {
                Err(Unfit::Bundle)
            } else {
                r.fit_alone
            };
            if fit == r.fit {
                continue;
            }
            let bundle_reason = Some(SoftwareReason::Unfit(Unfit::Bundle));
            let r = &mut self.records[rec];
            r.fit = fit;
            let on_card = matches!(r.placement, Placement::Card { .. });
            if !in_bundle {
                if r.why_software == bundle_reason {
                    r.why_software = Some(match fit {
                        Err(u) => SoftwareReason::Unfit(u),
                        Ok(_) => SoftwareReason::TableFull,
                    });
                }
                self.rebalance_due = true;
            } else if !on_card {
                if r.why_software == Some(SoftwareReason::TableFull) {
                    r.why_software = bundle_reason;
                }
            } else {
                match self.demote(rec, SoftwareReason::Unfit(Unfit::Bundle)) {
                    Ok(()) => self.moved(rec, MoveReason::Bundled),
                    Err(e) => self.card_failed(&e),
                }
            }
        }
    }
}

/// The outbound SA of `spec`, installed at `now`.
fn outbound_sa(spec: &SaSpec, now: std::time::Duration) -> Result<OutboundSa, OffloadError> {
    let params = SaParams::from_spec(spec).map_err(OffloadError::BuildSa)?;
    let mut sa = OutboundSa::new(params, spec.seq);
    sa.installed = now;
    Ok(sa)
}

/// The inbound SA of `spec`, installed at `now`.
fn inbound_sa(spec: &SaSpec, now: std::time::Duration) -> Result<InboundSa, OffloadError> {
    let params = SaParams::from_spec(spec).map_err(OffloadError::BuildSa)?;
    let mut sa =
        InboundSa::new(params, spec.replay_window, spec.seq).map_err(OffloadError::BuildSa)?;
    sa.installed = now;
    Ok(sa)
}

#[cfg(test)]
mod tests;
