//! Security associations at run time: the immutable parameters and transform of an SA, and
//! its per-direction state (outbound sequence counter, inbound replay window, counters).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use subtle::ConstantTimeEq;

use crate::counters::{DropReason, SaCounters};
use crate::crypto::{CryptoError, EncryptionAlgorithm, EspTransform, Integrity};
use crate::lifetime::Reported;
use crate::replay::{ReplayError, ReplayWindow};
use crate::spec::{DfMode, Lifetime, SaMode, SaProtocol, SaSpec, UdpEncap};

/// Whether two SAs' encryption puts them under one AEAD key and salt: their (key, nonce)
/// pairs would repeat, which breaks AES-GCM and ChaCha20-Poly1305 outright.
///
/// Each argument is an SA's encryption algorithm and its configured key bytes (for an AEAD,
/// the cipher key followed by the 4-byte salt). True when both algorithms are AEADs and the
/// key bytes are equal, salt included: the nonce is the salt followed by the IV, and the IV
/// is the sequence number, which every SA starts from 1 — so two such SAs, one per
/// direction or not, repeat nonces. The same cipher key with another salt draws other
/// nonces and is not refused here. AES-CBC and NULL never share in this sense: CBC IVs are
/// random and NULL has no key, so reusing a CBC key repeats no nonce (it is still poor
/// practice). The key bytes are compared in constant time.
pub fn share_aead_key_and_salt(
    a: (EncryptionAlgorithm, &[u8]),
    b: (EncryptionAlgorithm, &[u8]),
) -> bool {
    a.0.is_aead() && b.0.is_aead() && bool::from(a.1.ct_eq(b.1))
}

/// What an SA does to packets.
pub enum Transform {
    Esp(EspTransform),
    Ah(Integrity),
}

impl core::fmt::Debug for Transform {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Transform::Esp(t) => f.debug_tuple("Esp").field(t).finish(),
            Transform::Ah(t) => f.debug_tuple("Ah").field(t).finish(),
        }
    }
}

/// Why an SA could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum SaError {
    #[error("sa {spi:#010x}: building its transform failed")]
    Transform {
        spi: u32,
        #[source]
        source: CryptoError,
    },
    #[error("sa {spi:#010x}: {what} is missing")]
    Incomplete { spi: u32, what: &'static str },
    #[error("sa {spi:#010x}: building its replay window failed")]
    Replay {
        spi: u32,
        #[source]
        source: ReplayError,
    },
}

/// The parameters every SA has, whichever direction it serves.
#[derive(Debug)]
pub struct SaParams {
    pub spi: u32,
    pub protocol: SaProtocol,
    pub mode: SaMode,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub esn: bool,
    pub udp_encap: Option<UdpEncap>,
    pub ttl: u8,
    pub df: DfMode,
    pub lifetime: Lifetime,
    pub transform: Transform,
}

impl SaParams {
    pub fn from_spec(c: &SaSpec) -> Result<SaParams, SaError> {
        fn key(k: &Option<crate::crypto::SecretKey>) -> &[u8] {
            k.as_ref().map(|k| k.as_bytes()).unwrap_or(&[])
        }
        let transform = match c.protocol {
            SaProtocol::Esp => {
                let enc = c.encryption.ok_or(SaError::Incomplete {
                    spi: c.spi,
                    what: "the encryption algorithm",
                })?;
                let integ = c.integrity.map(|a| (a, key(&c.integrity_key)));
                Transform::Esp(
                    EspTransform::new(enc, key(&c.key), integ)
                        .map_err(|source| SaError::Transform { spi: c.spi, source })?,
                )
            }
            SaProtocol::Ah => {
                let alg = c.integrity.ok_or(SaError::Incomplete {
                    spi: c.spi,
                    what: "the integrity algorithm",
                })?;
                Transform::Ah(
                    Integrity::new(alg, key(&c.integrity_key))
                        .map_err(|source| SaError::Transform { spi: c.spi, source })?,
                )
            }
        };
        Ok(SaParams {
            spi: c.spi,
            protocol: c.protocol,
            mode: c.mode,
            src: c.src,
            dst: c.dst,
            esn: c.esn,
            udp_encap: c.udp_encap,
            ttl: c.ttl,
            df: c.df,
            lifetime: c.lifetime,
            transform,
        })
    }

    /// The largest sequence number this SA may ever carry (it never wraps).
    pub fn max_seq(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// Whether `counters` have reached the hard lifetime.
    pub fn hard_expired(&self, counters: &SaCounters) -> bool {
        self.lifetime
            .hard_packets
            .is_some_and(|n| counters.packets >= n)
            || self
                .lifetime
                .hard_bytes
                .is_some_and(|n| counters.bytes >= n)
    }

    /// Whether `counters` have reached the soft lifetime.
    pub fn soft_expired(&self, counters: &SaCounters) -> bool {
        self.lifetime
            .soft_packets
            .is_some_and(|n| counters.packets >= n)
            || self
                .lifetime
                .soft_bytes
                .is_some_and(|n| counters.bytes >= n)
    }
}

/// How far an outbound SA may number its packets: the sequence numbers reserved for it
/// durably, shared between the datapath that uses them and whoever reserves more (the
/// gateway's state directory). The datapath reads the limit and records the highest number
/// used with one atomic access each, so the packet path takes no lock and never waits for
/// the disk; an SA that reaches its limit drops its packets (`seq-unreserved`) until more
/// is reserved.
///
/// Clones share the same reservation.
#[derive(Debug, Clone)]
pub struct SeqReservation(Arc<ReservationCell>);

#[derive(Debug)]
struct ReservationCell {
    /// The highest sequence number the SA may use.
    limit: AtomicU64,
    /// The highest sequence number used (or, for an SA on a card, that the card may use).
    used: AtomicU64,
}

impl SeqReservation {
    /// A reservation of every number: for an SA whose numbers need no durable record
    /// (offline tools, tests).
    pub fn unlimited() -> SeqReservation {
        SeqReservation::new(u64::MAX, 0)
    }

    /// A reservation up to `limit`, `used` numbers already used.
    pub fn new(limit: u64, used: u64) -> SeqReservation {
        SeqReservation(Arc::new(ReservationCell {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(used),
        }))
    }

    /// The highest sequence number the SA may use.
    #[inline]
    pub fn limit(&self) -> u64 {
        self.0.limit.load(Ordering::Acquire)
    }

    /// Moves the limit. Raise it only after the new limit is durable; lower it (to what
    /// is used) to stop the SA when its reservation cannot be kept.
    pub fn set_limit(&self, limit: u64) {
        self.0.limit.store(limit, Ordering::Release);
    }

    /// The highest sequence number used.
    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Acquire)
    }

    /// Records that numbers up to `seq` are (or may be) used; never moves back.
    #[inline]
    pub fn note_used(&self, seq: u64) {
        self.0.used.fetch_max(seq, Ordering::AcqRel);
    }

    /// The owning datapath's record of its latest number: one plain atomic store (it alone
    /// moves `used` while the SA is in its hands, and only upwards).
    #[inline]
    fn record_used(&self, seq: u64) {
        self.0.used.store(seq, Ordering::Release);
    }

    /// Whether two handles share one reservation.
    pub fn same(&self, other: &SeqReservation) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for SeqReservation {
    fn default() -> Self {
        SeqReservation::unlimited()
    }
}

/// What the senders of one SA share when several datapath workers send on it, each with
/// its own copy of the SA: the SA-wide sequence counter, the lifetime totals and which
/// lifetime ends were reported.
///
/// A worker takes numbers in blocks — once per batch, as many as the batch can use — with
/// one compare-and-swap on the counter, and numbers its packets from its block without any
/// shared access; what a block has left when the batch ends is given up (gaps are legal,
/// a repeated number is not). So no two workers ever hold the same number.
///
/// Packets numbered by different workers leave in whatever order the workers send them. A
/// receiver refuses a packet more than its replay window behind the highest it has seen,
/// so a worker never takes a number [`IN_FLIGHT_SPAN`] or more ahead of the lowest number
/// another worker holds unsent: the packet waits instead (`seq-busy`, offered again once
/// the worker's batch is sent). Whatever the scheduling, every packet arrives within the
/// span of the highest seen before it, which the smallest default window (RFC 4303: 32)
/// accepts. Workers on one SA overlap by at most that span; workers on different SAs do
/// not wait for each other at all. Each worker adds its packet and byte
/// counts to the totals at the end of each batch; lifetimes are checked against the totals
/// plus what the worker has not added yet, so a packet or byte lifetime is exact for a
/// single worker and may be overrun by at most one batch per other worker.
///
/// Clones share the same state.
#[derive(Debug, Clone)]
pub struct SendShare(Arc<ShareCell>);

/// How far ahead of the lowest number another worker holds unsent a worker may number a
/// packet ([`SendShare`]): RFC 4303's default replay window.
pub const IN_FLIGHT_SPAN: u64 = 32;

/// A worker's slot in [`ShareCell::held`] when it holds no number.
const NOTHING_HELD: u64 = u64::MAX;

#[derive(Debug)]
struct ShareCell {
    /// The highest sequence number handed out to any worker.
    last: AtomicU64,
    /// Per worker: the lowest number it holds unsent (numbers after it), or
    /// [`NOTHING_HELD`]. Written by its worker alone.
    held: Box<[AtomicU64]>,
    packets: AtomicU64,
    bytes: AtomicU64,
    soft_reported: AtomicBool,
    hard_reported: AtomicBool,
}

impl SendShare {
    /// A share for `workers` workers (each copy of the SA names its slot) whose numbers
    /// continue after `last`.
    pub fn new(last: u64, workers: usize) -> SendShare {
        SendShare(Arc::new(ShareCell {
            last: AtomicU64::new(last),
            held: (0..workers.max(1))
                .map(|_| AtomicU64::new(NOTHING_HELD))
                .collect(),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            soft_reported: AtomicBool::new(false),
            hard_reported: AtomicBool::new(false),
        }))
    }

    /// The highest sequence number handed out to any worker.
    pub fn last(&self) -> u64 {
        self.0.last.load(Ordering::Acquire)
    }

    /// The packet and byte counts every worker has added so far.
    pub fn totals(&self) -> SaCounters {
        SaCounters {
            packets: self.0.packets.load(Ordering::Relaxed),
            bytes: self.0.bytes.load(Ordering::Relaxed),
        }
    }

    /// Hands worker `slot` up to `want` numbers after the last one handed out, none above
    /// `limit` and none [`IN_FLIGHT_SPAN`] or more ahead of what another worker holds: the
    /// block `(start, end]`.
    fn take(&self, slot: usize, want: u64, limit: u64) -> Taken {
        let held = &self.0.held;
        // Marked before the numbers are taken, and never above them: another worker that
        // takes numbers after these sees the mark. A mark set here for numbers not got is
        // cleared again (the worker held nothing before).
        let fresh_mark = held[slot].load(Ordering::Relaxed) == NOTHING_HELD;
        let mut cur = self.0.last.load(Ordering::Acquire);
        if fresh_mark {
            held[slot].store(cur, Ordering::SeqCst);
        }
        let taken = loop {
            if cur >= limit {
                break Taken::AtLimit;
            }
            let lowest = held
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != slot)
                .map(|(_, h)| h.load(Ordering::SeqCst))
                .min()
                .unwrap_or(NOTHING_HELD);
            let room = if lowest == NOTHING_HELD {
                u64::MAX
            } else {
                (lowest + IN_FLIGHT_SPAN).saturating_sub(cur + 1)
            };
            if room == 0 {
                break Taken::Busy;
            }
            let end = cur + want.min(room).clamp(1, limit - cur);
            match self
                .0
                .last
                .compare_exchange(cur, end, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => return Taken::Block(cur, end),
                Err(now) => cur = now,
            }
        };
        if fresh_mark {
            held[slot].store(NOTHING_HELD, Ordering::SeqCst);
        }
        taken
    }

    /// Worker `slot` has sent every number it held.
    fn release(&self, slot: usize) {
        self.0.held[slot].store(NOTHING_HELD, Ordering::SeqCst);
    }

    /// Whether this call is the first to report the soft (or hard) end.
    pub(crate) fn first_report(&self, hard: bool) -> bool {
        let flag = if hard {
            &self.0.hard_reported
        } else {
            &self.0.soft_reported
        };
        !flag.swap(true, Ordering::AcqRel)
    }
}

/// What [`SendShare::take`] got.
enum Taken {
    Block(u64, u64),
    AtLimit,
    Busy,
}

/// An SA that sends: its parameters, its sequence counter and its counters.
#[derive(Debug)]
pub struct OutboundSa {
    pub params: SaParams,
    /// Last sequence number used; the next packet carries `seq + 1`.
    seq: u64,
    /// Counted by this copy of the SA (with workers, its worker's share).
    pub counters: SaCounters,
    /// Ended by something other than its counters (a time lifetime, the card's hard-expiry
    /// event): it sends nothing more.
    pub expired: bool,
    /// The numbers it may use (unlimited unless the gateway keeps them durable).
    reservation: SeqReservation,
    /// When it was installed, on the owner's clock (time lifetimes).
    pub installed: core::time::Duration,
    /// Lifetime ends already reported.
    pub reported: Reported,
    /// With several workers: the state they share, this copy's block of numbers
    /// `(seq, block_end]`, and the counters already added to the shared totals.
    share: Option<SendShare>,
    slot: usize,
    block_end: u64,
    added: SaCounters,
}

impl OutboundSa {
    pub fn new(params: SaParams, seq: u64) -> OutboundSa {
        OutboundSa {
            params,
            seq,
            counters: SaCounters::default(),
            expired: false,
            reservation: SeqReservation::unlimited(),
            installed: core::time::Duration::ZERO,
            reported: Reported::default(),
            share: None,
            slot: 0,
            block_end: seq,
            added: SaCounters::default(),
        }
    }

    /// The same SA, numbering only within `reservation`.
    pub fn with_reservation(mut self, reservation: SeqReservation) -> OutboundSa {
        self.set_reservation(reservation);
        self
    }

    /// Numbers only within `reservation` from now on (an SA already installed).
    pub fn set_reservation(&mut self, reservation: SeqReservation) {
        reservation.note_used(self.seq);
        self.reservation = reservation;
    }

    /// This copy of the SA sends beside others (one per datapath worker), all sharing
    /// `share`, as worker `slot` (each copy its own, below the share's worker count): its
    /// numbers come from the shared counter in blocks ([`SendShare`]). Every copy must be
    /// given the same share before any of them sends.
    pub fn share_with(mut self, share: SendShare, slot: usize) -> OutboundSa {
        self.set_share(share, slot);
        self
    }

    /// As [`share_with`](Self::share_with), for an SA already installed.
    pub fn set_share(&mut self, share: SendShare, slot: usize) {
        share.0.last.fetch_max(self.seq, Ordering::AcqRel);
        self.block_end = self.seq;
        self.slot = slot.min(share.0.held.len() - 1);
        self.share = Some(share);
    }

    /// The state shared with the SA's other copies, if it has any.
    pub fn share(&self) -> Option<&SendShare> {
        self.share.as_ref()
    }

    /// The reservation its numbers come from.
    pub fn reservation(&self) -> &SeqReservation {
        &self.reservation
    }

    /// Last sequence number used (with workers, by this copy).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Moves the counter forward (never back) — used when the SA arrives from another
    /// transmitter that already used numbers up to `seq`. Going back would reuse nonces.
    pub fn advance_seq_to(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
        if let Some(s) = &self.share {
            s.0.last.fetch_max(self.seq, Ordering::AcqRel);
            self.block_end = self.seq;
        }
        self.reservation.note_used(self.seq);
    }

    /// Whether this copy holds numbers it has not used yet (with workers, its block).
    #[inline]
    fn holds_numbers(&self) -> bool {
        self.seq < self.block_end
    }

    /// The last number handed out on the SA: this copy's, or with workers every copy's.
    #[inline]
    fn last_handed_out(&self) -> u64 {
        match &self.share {
            Some(s) => s.last(),
            None => self.seq,
        }
    }

    /// Whether every number the SA may carry is used (or handed out).
    pub fn numbers_exhausted(&self) -> bool {
        !self.holds_numbers() && self.last_handed_out() >= self.params.max_seq()
    }

    /// The counts its lifetimes are checked against: with workers, the shared totals plus
    /// what this copy has not added to them yet.
    #[inline]
    pub fn lifetime_counters(&self) -> SaCounters {
        match &self.share {
            None => self.counters,
            Some(s) => {
                let t = s.totals();
                SaCounters {
                    packets: t.packets + (self.counters.packets - self.added.packets),
                    bytes: t.bytes + (self.counters.bytes - self.added.bytes),
                }
            }
        }
    }

    /// Whether the SA may still send: sequence numbers left, reserved, and lifetime not
    /// over.
    #[inline]
    pub fn can_send(&self) -> Result<(), DropReason> {
        let held = self.holds_numbers();
        if !held && self.last_handed_out() >= self.params.max_seq() {
            return Err(DropReason::SeqExhausted);
        }
        if self.expired || self.params.hard_expired(&self.lifetime_counters()) {
            return Err(DropReason::Expired);
        }
        if !held && self.last_handed_out() >= self.reservation.limit() {
            return Err(DropReason::SeqUnreserved);
        }
        Ok(())
    }

    /// With workers: makes sure this copy holds a number for the next packet, taking a
    /// block of up to `want` from the shared counter when its own is used up. Returns
    /// whether it took a block. Without workers it does nothing.
    #[inline]
    pub(crate) fn hold_numbers(&mut self, want: u64) -> Result<bool, DropReason> {
        let Some(share) = &self.share else {
            return Ok(false);
        };
        if self.holds_numbers() {
            return Ok(false);
        }
        let max = self.params.max_seq();
        let limit = max.min(self.reservation.limit());
        match share.take(self.slot, want, limit) {
            Taken::Block(start, end) => {
                self.reservation.note_used(end);
                self.seq = self.seq.max(start);
                self.block_end = end;
                Ok(true)
            }
            Taken::Busy => Err(DropReason::SeqBusy),
            Taken::AtLimit if share.last() >= max => Err(DropReason::SeqExhausted),
            Taken::AtLimit => Err(DropReason::SeqUnreserved),
        }
    }

    /// Takes the next sequence number. Callers check [`can_send`](Self::can_send) first
    /// for every SA of a bundle, so that a bundle never half-sends, and with workers hold
    /// a number ([`hold_numbers`](Self::hold_numbers)).
    #[inline]
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        if self.share.is_none() {
            self.reservation.record_used(self.seq);
        }
        debug_assert!(self.share.is_none() || self.seq <= self.block_end);
        self.seq
    }

    /// With workers, at the end of a batch: gives up what is left of the block and adds
    /// this batch's counts to the shared totals.
    pub(crate) fn end_batch(&mut self) {
        if let Some(s) = &self.share {
            self.block_end = self.seq;
            let packets = self.counters.packets - self.added.packets;
            let bytes = self.counters.bytes - self.added.bytes;
            s.0.packets.fetch_add(packets, Ordering::Relaxed);
            s.0.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.added = self.counters;
        }
    }

    /// With workers, once the batch's packets are sent: this copy holds no number any more.
    pub(crate) fn batch_sent(&mut self) {
        if let Some(s) = &self.share {
            s.release(self.slot);
        }
    }
}

/// An SA that receives: its parameters, its replay window and its counters.
#[derive(Debug)]
pub struct InboundSa {
    pub params: SaParams,
    pub replay: ReplayWindow,
    pub counters: SaCounters,
    /// Ended by something other than its counters (a time lifetime, the card's hard-expiry
    /// event): it accepts nothing more.
    pub expired: bool,
    /// When it was installed, on the owner's clock (time lifetimes).
    pub installed: core::time::Duration,
    /// Lifetime ends already reported.
    pub reported: Reported,
    /// A replacement during its predecessor's grace period: the SA (index) it stands for in
    /// the inbound policy check.
    pub(crate) stands_for: Option<usize>,
}

impl InboundSa {
    /// An SA whose window starts with everything up to `highest_seq` counted as received
    /// (0: nothing yet).
    pub fn new(
        params: SaParams,
        replay_window: u32,
        highest_seq: u64,
    ) -> Result<InboundSa, SaError> {
        let spi = params.spi;
        let mut replay = ReplayWindow::new(replay_window, params.esn)
            .map_err(|source| SaError::Replay { spi, source })?;
        if highest_seq > 0 {
            // Received up to there, as far as anyone knows: nothing at or below it again.
            replay
                .close_at(highest_seq)
                .map_err(|source| SaError::Replay { spi, source })?;
        }
        Ok(InboundSa {
            params,
            replay,
            counters: SaCounters::default(),
            expired: false,
            installed: core::time::Duration::ZERO,
            reported: Reported::default(),
            stands_for: None,
        })
    }

    /// Refuses every sequence number up to `mark` from now on: what a durable record says
    /// was accepted before a restart.
    pub fn close_replay_at(&mut self, mark: u64) -> Result<(), SaError> {
        let spi = self.params.spi;
        self.replay
            .close_at(mark)
            .map_err(|source| SaError::Replay { spi, source })
    }

    /// Whether the SA has reached its hard lifetime (or was ended otherwise).
    pub fn hard_expired(&self) -> bool {
        self.expired || self.params.hard_expired(&self.counters)
    }

    /// The SA (index) this one stands for in the inbound policy check while it replaces
    /// it, if it does.
    pub fn stands_for(&self) -> Option<usize> {
        self.stands_for
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GCM128: EncryptionAlgorithm = EncryptionAlgorithm::AesGcm128;

    #[test]
    fn aead_sas_share_a_key_only_with_the_same_key_and_salt() {
        let key = [7u8; 20];
        let mut other_salt = key;
        other_salt[19] ^= 1;
        let mut other_key = key;
        other_key[0] ^= 1;
        assert!(share_aead_key_and_salt((GCM128, &key), (GCM128, &key)));
        assert!(!share_aead_key_and_salt(
            (GCM128, &key),
            (GCM128, &other_salt)
        ));
        assert!(!share_aead_key_and_salt(
            (GCM128, &key),
            (GCM128, &other_key)
        ));
        assert!(!share_aead_key_and_salt(
            (GCM128, &key),
            (GCM128, &key[..16])
        ));
        // Whatever the AEAD: the same 36 bytes for AES-GCM-256 and ChaCha20-Poly1305.
        let long = [9u8; 36];
        assert!(share_aead_key_and_salt(
            (EncryptionAlgorithm::AesGcm256, &long),
            (EncryptionAlgorithm::ChaCha20Poly1305, &long)
        ));
    }

    #[test]
    fn cbc_and_null_never_share_a_nonce_space() {
        let key = [3u8; 16];
        let cbc = EncryptionAlgorithm::AesCbc128;
        assert!(!share_aead_key_and_salt((cbc, &key), (cbc, &key)));
        let null = EncryptionAlgorithm::Null;
        assert!(!share_aead_key_and_salt((null, &[]), (null, &[])));
        assert!(!share_aead_key_and_salt(
            (cbc, &key[..]),
            (GCM128, &key[..])
        ));
    }
}
