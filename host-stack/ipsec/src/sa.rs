//! Security associations at run time: the immutable parameters and transform of an SA, and
//! its per-direction state (outbound sequence counter, inbound replay window, counters).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// An SA that sends: its parameters, its sequence counter and its counters.
#[derive(Debug)]
pub struct OutboundSa {
    pub params: SaParams,
    /// Last sequence number used; the next packet carries `seq + 1`.
    seq: u64,
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

    /// The reservation its numbers come from.
    pub fn reservation(&self) -> &SeqReservation {
        &self.reservation
    }

    /// Last sequence number used.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Moves the counter forward (never back) — used when the SA arrives from another
    /// transmitter that already used numbers up to `seq`. Going back would reuse nonces.
    pub fn advance_seq_to(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
        self.reservation.note_used(self.seq);
    }

    /// Whether the SA may still send: sequence numbers left, reserved, and lifetime not
    /// over.
    #[inline]
    pub fn can_send(&self) -> Result<(), DropReason> {
        if self.seq >= self.params.max_seq() {
            return Err(DropReason::SeqExhausted);
        }
        if self.expired || self.params.hard_expired(&self.counters) {
            return Err(DropReason::Expired);
        }
        if self.seq >= self.reservation.limit() {
            return Err(DropReason::SeqUnreserved);
        }
        Ok(())
    }

    /// Takes the next sequence number. Callers check [`can_send`](Self::can_send) first
    /// for every SA of a bundle, so that a bundle never half-sends.
    #[inline]
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.reservation.record_used(self.seq);
        self.seq
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
