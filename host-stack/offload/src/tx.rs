//! The outbound path: packets wait in submission order, are routed when they reach the
//! card's TX ring (card SA: the card encapsulates; software SA: encapsulated here, sent as
//! a bypass frame), and end with exactly one report each.
//!
//! Routing happens as late as possible, when a slot of the ring is free, so that an SA
//! that moved in the meantime is used where it now is, and software sequence numbers are
//! taken in the order frames go on the wire.

use espo_driver::card::{TxAction, TxDone, TxLent, TxOutcome, TxRequest};
use espo_fpga::Status;

use super::frame::{FRAME_HEADER, Frame};
use super::{CardMode, MAX_WIRE_FRAME, OffloadEngine, Path, Placement, SentAs, TxReport};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::Encapsulated;
use espo_ipsec::spd::Bundle;

/// Packets handed to the card per `tx_batch`.
const TX_BATCH: usize = 64;

/// A packet on its way out.
#[derive(Debug)]
pub(super) enum Work {
    /// An inner packet (in an Ethernet frame) that `bundle` protects; routed when it
    /// reaches the ring. `bundle` is `None` when an SA of the bundle it was classified for
    /// was removed before it was sent: it is classified again when routed. `attempts`: card
    /// engine errors already met (one resend allowed).
    Protect {
        bundle: Option<Bundle>,
        frame: Frame,
        attempts: u8,
    },
    /// A frame to send as it is: software's ESP (its sequence number already taken), or a
    /// bypass packet.
    Ready { frame: Frame, sent: SentAs },
}

/// A packet on the card's TX ring.
#[derive(Debug)]
pub(super) struct Posted {
    pub tag: u64,
    pub work: Work,
    /// For a card SA: which (the card encapsulates it with that entry; otherwise it is
    /// sent as it is).
    pub card_sa: Option<OnCard>,
}

impl Posted {
    /// What the card is asked to do with it.
    fn action(&self) -> TxAction {
        match self.card_sa {
            Some(c) => TxAction::Encap {
                sa_index: c.sa_index,
            },
            None => TxAction::Bypass,
        }
    }
}

/// The packets on the card's TX ring by driver tag, oldest first. Tags are handed out in
/// increasing order and the card completes in order, so a completion takes the front; a
/// packet accounted for out of order (recovery) is found by binary search.
#[derive(Debug, Default)]
pub(super) struct PostedQueue(std::collections::VecDeque<(u64, Posted)>);

impl PostedQueue {
    /// Adds the packet with `tag`, above every tag already held.
    pub(super) fn insert(&mut self, tag: u64, posted: Posted) {
        debug_assert!(self.0.back().is_none_or(|(t, _)| *t < tag));
        self.0.push_back((tag, posted));
    }

    pub(super) fn remove(&mut self, tag: &u64) -> Option<Posted> {
        if self.0.front().is_some_and(|(t, _)| t == tag) {
            return self.0.pop_front().map(|(_, p)| p);
        }
        let at = self.0.binary_search_by_key(tag, |(t, _)| *t).ok()?;
        self.0.remove(at).map(|(_, p)| p)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The oldest packet, with its driver tag.
    #[inline]
    fn front(&self) -> Option<(u64, &Posted)> {
        self.0.front().map(|(t, p)| (*t, p))
    }

    /// Drops the oldest packet (its buffer accounted for by the caller).
    #[inline]
    fn drop_front(&mut self) {
        self.0.pop_front();
    }

    /// Takes the packet with the highest tag.
    pub(super) fn pop_back(&mut self) -> Option<Posted> {
        self.0.pop_back().map(|(_, p)| p)
    }

    /// The packets from position `range.start` on, oldest first.
    pub(super) fn range_mut(
        &mut self,
        range: std::ops::RangeFrom<usize>,
    ) -> impl Iterator<Item = &mut Posted> {
        self.0.range_mut(range).map(|(_, p)| p)
    }

    /// The packets from position `from` on with their driver tags, oldest first.
    pub(super) fn tail(&self, from: usize) -> impl Iterator<Item = (u64, &Posted)> {
        self.0.range(from..).map(|(t, p)| (*t, p))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &u64> {
        self.0.iter().map(|(t, _)| t)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Posted> {
        self.0.iter_mut().map(|(_, p)| p)
    }
}

/// The card SA a posted packet is for.
#[derive(Debug, Clone, Copy)]
pub(super) struct OnCard {
    /// Its record; `None` once the SA was removed (a packet the card took completes on it).
    pub rec: Option<usize>,
    pub sa_index: u32,
    pub spi: u32,
}

/// What routing found for the card SA of the packet before, for the next packets of the
/// same SA in one batch: between routing and posting nothing changes where an SA is, the
/// card's count of its numbers, or the next hop, so only what routing itself moves (the
/// record's packets in flight, the reservation's limit) is read again per packet.
#[derive(Debug, Clone, Copy)]
pub(super) struct RouteRun {
    inner: usize,
    rec_id: usize,
    sa_index: u32,
    /// The card's bound on the SA's numbers ([`Card::sa_seq_upper_bound`]).
    ///
    /// [`Card::sa_seq_upper_bound`]: espo_driver::card::Card::sa_seq_upper_bound
    driver_bound: u64,
    /// The next hop's MAC, where the card's port is its own.
    mac: Option<[u8; 6]>,
}

/// What happened to a packet being routed.
enum Routed {
    /// To the ring: encapsulated by the card with the SA it names, or sent as it is.
    Ring(Work, Option<OnCard>),
    /// To the ring for its card SA, already at the posted queue's end (with the next
    /// driver tag).
    Posted,
    Dropped(DropReason),
}

impl OffloadEngine {
    /// Routes and submits what is waiting, as far as the ring has room.
    pub(super) fn flush(&mut self) {
        // Bounded: every round either submits, drops, or stops.
        for _ in 0..1024 {
            if self.pending.is_empty() {
                return;
            }
            if self.mode == CardMode::Gone {
                self.flush_to_wire();
                return;
            }
            let queue = self.options.queue;
            let free = match self.card.as_ref().map(|c| c.tx_free(queue)) {
                Some(Ok(n)) => n as usize,
                _ => return,
            };
            if free == 0 {
                return;
            }
            // Routed packets go straight to the posted queue, in driver tag order; what the
            // ring does not take comes back off its end before anything else looks at it.
            let start = self.posted.len();
            let mut run = None;
            while self.posted.len() - start < free.min(TX_BATCH) {
                let Some((tag, work)) = self.pending.pop_front() else {
                    break;
                };
                match self.route(tag, work, &mut run) {
                    Routed::Ring(work, card_sa) => {
                        let driver_tag = self.next_driver_tag;
                        self.next_driver_tag += 1;
                        self.posted
                            .insert(driver_tag, Posted { tag, work, card_sa });
                    }
                    Routed::Posted => {}
                    Routed::Dropped(reason) => self.tx_drop(tag, reason),
                }
            }
            let routed = self.posted.len() - start;
            if routed == 0 {
                continue;
            }
            self.note_reserved();
            let result = self.post_batch(queue, start);
            match result {
                Ok(taken) => {
                    let taken = taken.min(routed);
                    // What the ring did not take waits again, in order, ahead of the rest.
                    self.unpost(start + taken);
                    for posted in self.posted.range_mut(start..) {
                        if let Some(c) = posted.card_sa
                            && let Some(n) = self.entry_in_flight.get_mut(c.sa_index as usize)
                        {
                            *n += 1;
                        }
                    }
                    if taken < routed {
                        return;
                    }
                }
                Err(e) => {
                    self.unpost(start);
                    self.card_failed(&e);
                    if self.mode != CardMode::Gone && !self.card_usable() {
                        return;
                    }
                }
            }
        }
    }

    /// Notes in each outbound SA's reservation the highest sequence number the card may
    /// use with the packets just routed to it, before they are posted.
    fn note_reserved(&mut self) {
        for (inner, bound) in self.to_note.drain(..) {
            if let Some(sa) = self.sw.outbound.sas().get(inner) {
                sa.reservation().note_used(bound);
            }
        }
    }

    /// The packets of the posted queue from position `from` on did not reach the ring:
    /// they wait again, in order, ahead of the rest.
    fn unpost(&mut self, from: usize) {
        while self.posted.len() > from {
            if let Some(posted) = self.posted.pop_back() {
                self.unrouted(&posted);
                self.pending.push_front((posted.tag, posted.work));
            }
        }
    }

    /// A completed packet that goes out again (another path, or another try): ahead of
    /// every packet still waiting, behind those this completion pass put back before it —
    /// a flow's packets leave in the order they came.
    pub(super) fn requeue(&mut self, tag: u64, work: Work) {
        let at = self.requeued.min(self.pending.len());
        self.pending.insert(at, (tag, work));
        self.requeued += 1;
    }

    /// A packet routed to a card SA did not reach the ring after all.
    fn unrouted(&mut self, posted: &Posted) {
        if let Some(rec) = posted.card_sa.and_then(|c| c.rec)
            && let Some(r) = self.records.get_mut(rec)
        {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
    }

    /// Whether the card takes work now.
    fn card_usable(&self) -> bool {
        self.card
            .as_ref()
            .is_some_and(|c| matches!(c.state(), espo_driver::card::CardState::Running))
    }

    /// No card: software encapsulates everything and the fallback wire carries it.
    fn flush_to_wire(&mut self) {
        while let Some((tag, work)) = self.pending.pop_front() {
            let routed = self.route(tag, work, &mut None);
            self.note_reserved();
            let (frame, sent) = match routed {
                Routed::Dropped(reason) => {
                    self.tx_drop(tag, reason);
                    continue;
                }
                // Not without a card (its SAs are routed to software then); taken back.
                Routed::Posted => {
                    if let Some(posted) = self.posted.pop_back() {
                        self.unrouted(&posted);
                        self.recycle_work(posted.work);
                    }
                    self.tx_drop(tag, DropReason::DeviceError);
                    continue;
                }
                Routed::Ring(Work::Ready { frame, sent }, _) => (frame, sent),
                Routed::Ring(Work::Protect { .. }, _) => {
                    self.tx_drop(tag, DropReason::DeviceError);
                    continue;
                }
            };
            let frame = self.frame_bytes(frame);
            let sent_ok = match self.options.fallback.as_mut() {
                Some(w) => w.send(&frame),
                None => false,
            };
            self.recycle(frame);
            if sent_ok {
                self.tx_sent(tag, sent);
            } else {
                self.tx_drop(tag, DropReason::DeviceError);
            }
        }
    }

    /// Decides where a packet goes now. `run`: what the packet before found for its card
    /// SA, in the batch being routed (see [`RouteRun`]); kept up to date here.
    fn route(&mut self, tag: u64, work: Work, run: &mut Option<RouteRun>) -> Routed {
        if let Work::Protect {
            bundle: Some(bundle),
            ..
        } = &work
            && let Some(r) = *run
            && r.inner == bundle.inner
            && bundle.outer_ah.is_none()
        {
            return self.route_on_card(tag, work, r);
        }
        *run = None;
        let (bundle, frame, attempts) = match work {
            Work::Ready { frame, sent } => {
                if frame.len() > self.max_frame {
                    self.recycle_frame(frame);
                    return Routed::Dropped(DropReason::TooBig);
                }
                return Routed::Ring(Work::Ready { frame, sent }, None);
            }
            Work::Protect {
                bundle,
                frame,
                attempts,
            } => (bundle, frame, attempts),
        };
        let bundle = match bundle {
            Some(b) => b,
            // Its SA was removed while it waited: the database as it is now decides.
            None => match self
                .frame_flow(&frame)
                .and_then(|flow| self.decide(&flow).map(|bundle| (flow, bundle)))
            {
                Ok((_, Some(b))) => b,
                Ok((flow, None)) => {
                    let mut frame = frame;
                    if !self.address_frame(&mut frame, flow.dst) {
                        self.recycle_frame(frame);
                        return Routed::Dropped(DropReason::Unresolved);
                    }
                    let sent = SentAs::Bypass;
                    return self.route(tag, Work::Ready { frame, sent }, run);
                }
                Err(reason) => {
                    self.recycle_frame(frame);
                    return Routed::Dropped(reason);
                }
            },
        };
        let Some(rec_id) = self.out_rec.get(bundle.inner).copied().flatten() else {
            self.recycle_frame(frame);
            return Routed::Dropped(DropReason::NoPolicy);
        };
        if let (Placement::Card { sa_index }, None, CardMode::Offload) =
            (self.records[rec_id].placement, bundle.outer_ah, self.mode)
        {
            if frame.len() > self.max_frame {
                self.recycle_frame(frame);
                return Routed::Dropped(DropReason::TooBig);
            }
            let dst = self.sw.outbound.sas()[bundle.inner].params.dst;
            let mac = match &self.options.own_port {
                None => None,
                Some(table) => match table.mac_for(dst) {
                    Some(mac) => Some(mac),
                    None => {
                        self.recycle_frame(frame);
                        return Routed::Dropped(DropReason::Unresolved);
                    }
                },
            };
            let driver_bound = self
                .card
                .as_ref()
                .and_then(|c| c.sa_seq_upper_bound(sa_index))
                .unwrap_or(0);
            let r = RouteRun {
                inner: bundle.inner,
                rec_id,
                sa_index,
                driver_bound,
                mac,
            };
            *run = Some(r);
            let work = Work::Protect {
                bundle: Some(bundle),
                frame,
                attempts,
            };
            return self.route_on_card(tag, work, r);
        }
        // Software: the tunnel packet is built after a fresh Ethernet header.
        let frame = self.frame_bytes(frame);
        let inner = frame.get(FRAME_HEADER..).unwrap_or(&[]);
        let mut out = self.buffer(14 + inner.len() + 256);
        out.resize(14 + inner.len() + 256, 0);
        let result = self.sw.outbound.protect(bundle, inner, &mut out[14..]);
        self.recycle(frame);
        match result {
            Ok(Encapsulated::Protected { len, spi, seq }) => {
                out.truncate(14 + len);
                let ethertype = espo_ipsec::wire::ethernet::EtherType::of_ip(&out[14..]).to_bytes();
                out[..6].copy_from_slice(&self.options.peer_mac);
                out[6..12].copy_from_slice(&self.options.local_mac);
                out[12..14].copy_from_slice(&ethertype);
                let dst = crate::next_hop::ip_destination(&out[14..]);
                if let Some(dst) = dst
                    && !self.address_bytes(&mut out, dst)
                {
                    self.recycle(out);
                    return Routed::Dropped(DropReason::Unresolved);
                }
                self.software_sent(bundle);
                let limit = match self.mode {
                    CardMode::Gone => MAX_WIRE_FRAME,
                    _ => self.max_frame,
                };
                if out.len() > limit {
                    return Routed::Dropped(DropReason::TooBig);
                }
                Routed::Ring(
                    Work::Ready {
                        frame: Frame::Heap(out),
                        sent: SentAs::Esp {
                            spi,
                            seq,
                            path: Path::Software,
                        },
                    },
                    None,
                )
            }
            Ok(Encapsulated::Bypass) => Routed::Dropped(DropReason::NoPolicy),
            Err(reason) => Routed::Dropped(reason),
        }
    }

    /// A packet (report tag `tag`) of the card SA `run` names (its bundle's) to the ring,
    /// at the posted queue's end: its frame addressed, every number the card may use with
    /// it reserved and noted first.
    fn route_on_card(&mut self, tag: u64, work: Work, run: RouteRun) -> Routed {
        let Work::Protect {
            bundle: Some(bundle),
            mut frame,
            attempts,
        } = work
        else {
            // Its callers pass only such packets; anything else is dropped whole.
            self.recycle_work(work);
            return Routed::Dropped(DropReason::DeviceError);
        };
        if frame.len() > self.max_frame {
            self.recycle_frame(frame);
            return Routed::Dropped(DropReason::TooBig);
        }
        if let Some(mac) = run.mac
            && self.frame_write(&mut frame, 0, &mac).is_err()
        {
            self.recycle_frame(frame);
            return Routed::Dropped(DropReason::Unresolved);
        }
        // Every number the card may use with this packet must be reserved
        // (`card_seq_bound`, with the card's part as found for the run).
        let r = &self.records[run.rec_id];
        let own = r
            .seq_high
            .saturating_add(r.uncertain)
            .saturating_add(r.in_flight);
        let bound = own.max(run.driver_bound).saturating_add(1);
        let limit = self.sw.outbound.sas()[bundle.inner].reservation().limit();
        if bound > limit {
            self.recycle_frame(frame);
            return Routed::Dropped(DropReason::SeqUnreserved);
        }
        // Noted before the card sees the packet (`note_reserved`, once per SA and batch).
        match self.to_note.last_mut() {
            Some((inner, noted)) if *inner == bundle.inner => *noted = (*noted).max(bound),
            _ => self.to_note.push((bundle.inner, bound)),
        }
        let r = &mut self.records[run.rec_id];
        r.in_flight += 1;
        let on_card = OnCard {
            rec: Some(run.rec_id),
            sa_index: run.sa_index,
            spi: r.spi,
        };
        let driver_tag = self.next_driver_tag;
        self.next_driver_tag += 1;
        self.posted.insert(
            driver_tag,
            Posted {
                tag,
                work: Work::Protect {
                    bundle: Some(bundle),
                    frame,
                    attempts,
                },
                card_sa: Some(on_card),
            },
        );
        Routed::Posted
    }

    /// Takes the TX completions the card has.
    pub(super) fn complete(&mut self) {
        if self.posted.is_empty() {
            return;
        }
        let Some(card) = self.card.as_mut() else {
            return;
        };
        let mut done = std::mem::take(&mut self.tx_done);
        done.clear();
        let r = card.tx_completions(self.options.queue, &mut done);
        self.requeued = 0;
        for d in done.drain(..) {
            if !self.sent_by_card(&d) {
                self.on_tx_done(d);
            }
        }
        self.tx_done = done;
        if let Err(e) = r {
            self.card_failed(&e);
        }
    }

    /// The usual completion — the oldest posted packet, a lent frame the card encapsulated
    /// and sent for an SA still installed — settled and reported where it is held, as
    /// [`on_tx_done`](Self::on_tx_done) does with it; false, nothing changed, for any other.
    #[inline]
    fn sent_by_card(&mut self, d: &TxDone) -> bool {
        let TxOutcome::Sent { seq } = d.outcome else {
            return false;
        };
        let Some((driver_tag, posted)) = self.posted.front() else {
            return false;
        };
        let (
            true,
            Some(OnCard {
                rec: Some(rec),
                sa_index,
                spi,
            }),
            Work::Protect {
                frame: Frame::Lent { buf, len },
                ..
            },
        ) = (driver_tag == d.tag, posted.card_sa, &posted.work)
        else {
            return false;
        };
        let (tag, buf, len) = (posted.tag, *buf, *len);
        if self.records.get(rec).is_none() {
            return false;
        }
        self.settle_on_card(Some(rec), sa_index);
        let r = &mut self.records[rec];
        r.seq_high = r.seq_high.max(seq);
        r.host.packets += 1;
        r.host.bytes += len.saturating_sub(FRAME_HEADER) as u64;
        self.posted.drop_front();
        self.recycle_frame(Frame::Lent { buf, len });
        self.tx_sent(
            tag,
            SentAs::Esp {
                spi,
                seq,
                path: Path::Card,
            },
        );
        true
    }

    /// One completion (or one packet accounted for by recovery as completed).
    pub(super) fn on_tx_done(&mut self, d: TxDone) {
        let Some(posted) = self.posted.remove(&d.tag) else {
            return;
        };
        self.posted_settled(&posted);
        let Posted {
            tag, work, card_sa, ..
        } = posted;
        match (d.outcome, work, card_sa) {
            (TxOutcome::Sent { seq }, Work::Protect { frame, .. }, Some(c)) => {
                if let Some(rec) = c.rec {
                    let r = &mut self.records[rec];
                    r.seq_high = r.seq_high.max(seq);
                    r.host.packets += 1;
                    r.host.bytes += frame.inner_len();
                }
                self.recycle_frame(frame);
                self.tx_sent(
                    tag,
                    SentAs::Esp {
                        spi: c.spi,
                        seq,
                        path: Path::Card,
                    },
                );
            }
            (TxOutcome::SentBypass, Work::Ready { sent, frame }, _) => {
                self.recycle_frame(frame);
                self.tx_sent(tag, sent);
            }
            (
                TxOutcome::Refused(Status::SaInvalid),
                Work::Protect {
                    bundle,
                    frame,
                    attempts,
                },
                Some(c),
            ) if c.rec.is_none_or(|rec| {
                self.records[rec].placement
                    != (Placement::Card {
                        sa_index: c.sa_index,
                    })
            }) =>
            {
                // The SA left the card (or went) before the card took the packet: it goes
                // where the SA is now, or where the database now says; no sequence number
                // was used.
                self.requeue(
                    tag,
                    Work::Protect {
                        bundle,
                        frame,
                        attempts,
                    },
                );
            }
            (TxOutcome::Refused(status), work, _) => {
                self.recycle_work(work);
                self.tx_drop(tag, refusal_reason(status));
            }
            (
                TxOutcome::EngineError { seq },
                Work::Protect {
                    bundle,
                    frame,
                    attempts,
                },
                Some(c),
            ) => {
                if let Some(rec) = c.rec {
                    let r = &mut self.records[rec];
                    r.seq_high = r.seq_high.max(seq);
                }
                if attempts == 0 {
                    // Not sent (§10.3): sent once more, with a new number.
                    self.counters.tx_resent += 1;
                    self.requeue(
                        tag,
                        Work::Protect {
                            bundle,
                            frame,
                            attempts: 1,
                        },
                    );
                } else {
                    self.recycle_frame(frame);
                    self.tx_drop(tag, DropReason::DeviceError);
                }
            }
            (TxOutcome::Unverified(_), work, card_sa) => {
                self.recycle_work(work);
                if let Some(rec) = card_sa.and_then(|c| c.rec) {
                    self.records[rec].uncertain += 1;
                }
                self.counters.tx_fate_unknown += 1;
                self.tx_drop(tag, DropReason::DeviceError);
            }
            (_, work, _) => {
                self.recycle_work(work);
                self.tx_drop(tag, DropReason::DeviceError);
            }
        }
    }

    /// A posted packet left the ring (completed or accounted for by recovery).
    pub(super) fn posted_settled(&mut self, posted: &Posted) {
        if let Some(c) = posted.card_sa {
            self.settle_on_card(c.rec, c.sa_index);
        }
    }

    /// A packet of SA record `rec` (`None`: removed since) posted with SA table entry
    /// `sa_index` left the ring: neither counts it in flight any more.
    #[inline]
    fn settle_on_card(&mut self, rec: Option<usize>, sa_index: u32) {
        if let Some(rec) = rec
            && let Some(r) = self.records.get_mut(rec)
        {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
        if let Some(n) = self.entry_in_flight.get_mut(sa_index as usize) {
            *n = n.saturating_sub(1);
            if *n == 0 && self.entry_owner.get(sa_index as usize) == Some(&None) {
                // A freed entry's last packet: it can be reused.
                self.rebalance_due = true;
            }
        }
    }

    pub(super) fn tx_sent(&mut self, tag: u64, sent: SentAs) {
        match sent {
            SentAs::Esp {
                path: Path::Card, ..
            } => self.counters.tx_card += 1,
            SentAs::Esp {
                path: Path::Software,
                ..
            } => self.counters.tx_software += 1,
            SentAs::Bypass => self.counters.tx_bypass += 1,
            SentAs::Link => self.counters.tx_link += 1,
        }
        self.tx_reports.push(TxReport {
            tag,
            outcome: Ok(sent),
        });
    }
}

impl Work {
    pub(super) fn frame(&self) -> &Frame {
        match self {
            Work::Protect { frame, .. } | Work::Ready { frame, .. } => frame,
        }
    }

    pub(super) fn into_frame(self) -> Frame {
        match self {
            Work::Protect { frame, .. } | Work::Ready { frame, .. } => frame,
        }
    }
}

/// The drop reason for a card's refusal of a TX packet (§7.4).
fn refusal_reason(status: Status) -> DropReason {
    match status {
        Status::SaExpired => DropReason::Expired,
        Status::SeqExhausted => DropReason::SeqExhausted,
        Status::TooBig => DropReason::TooBig,
        Status::Malformed => DropReason::Malformed,
        _ => DropReason::DeviceError,
    }
}

impl OffloadEngine {
    /// Where the card's port is its own, writes the MAC of `dst`'s next hop into `frame`;
    /// false when it is not resolved. Otherwise the port's owner addresses the frame.
    pub(super) fn address_frame(&self, frame: &mut Frame, dst: std::net::IpAddr) -> bool {
        let Some(table) = &self.options.own_port else {
            return true;
        };
        match table.mac_for(dst) {
            Some(mac) => self.frame_write(frame, 0, &mac).is_ok(),
            None => false,
        }
    }

    /// [`address_frame`](Self::address_frame) for a frame in host memory.
    pub(super) fn address_bytes(&self, frame: &mut [u8], dst: std::net::IpAddr) -> bool {
        let Some(table) = &self.options.own_port else {
            return true;
        };
        match (table.mac_for(dst), frame.get_mut(..6)) {
            (Some(mac), Some(at)) => {
                at.copy_from_slice(&mac);
                true
            }
            _ => false,
        }
    }

    /// A packet's work done with: its frame recycled.
    pub(super) fn recycle_work(&mut self, work: Work) {
        self.recycle_frame(work.into_frame());
    }

    /// Hands the routed packets at the posted queue's end (from position `start`) to the
    /// card in order: runs of frames in host memory copied in (`tx_batch`), runs of lent
    /// frames posted as they are (`tx_post`). Returns how many the ring took (the rest
    /// wait), or the card's error with none of the failing run taken.
    fn post_batch(
        &mut self,
        queue: u16,
        start: usize,
    ) -> Result<usize, espo_driver::card::CardError> {
        let Some(card) = self.card.as_mut() else {
            return Ok(0);
        };
        let total = self.posted.len() - start;
        let mut taken = 0;
        while taken < total {
            let first = start + taken;
            // A run of lent frames, posted as they are; else a run of frames to copy in.
            let posts = &mut self.lent_posts;
            posts.clear();
            for (driver_tag, p) in self.posted.tail(first) {
                let Frame::Lent { buf, len } = p.work.frame() else {
                    break;
                };
                posts.push(TxLent {
                    tag: driver_tag,
                    buf: *buf,
                    len: *len,
                    action: p.action(),
                });
            }
            let (run, n) = if !posts.is_empty() {
                (posts.len(), card.tx_post(queue, posts))
            } else {
                let requests: Vec<TxRequest<'_>> = self
                    .posted
                    .tail(first)
                    .map_while(|(driver_tag, p)| match p.work.frame() {
                        Frame::Heap(frame) => Some(TxRequest {
                            tag: driver_tag,
                            frame,
                            action: p.action(),
                        }),
                        Frame::Lent { .. } => None,
                    })
                    .collect();
                (requests.len(), card.tx_batch(queue, &requests))
            };
            match n {
                Ok(n) => {
                    taken += n;
                    if n < run {
                        break;
                    }
                }
                Err(e) if taken == 0 => return Err(e),
                // Part of the batch is on the ring: the error comes back with the next call.
                Err(_) => break,
            }
        }
        Ok(taken)
    }
}
