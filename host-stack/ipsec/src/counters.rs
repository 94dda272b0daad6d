//! Why packets are dropped, and the counters that say how often.
//!
//! Every packet the engine refuses is refused for exactly one [`DropReason`]; the reasons
//! are small `Copy` values so the packet path can count them without allocating.

use core::fmt;

/// The reason a packet was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// An IP packet whose headers do not parse, or a packet too short to be one.
    Malformed,
    /// A link-layer frame that carries no IP packet (ARP, LLDP, ...).
    NotIp,
    /// The capture snapped the packet: fewer bytes than its original length.
    Snapped,
    /// The ICV (integrity check value) did not verify.
    BadIcv,
    /// Sequence number already seen inside the replay window.
    Replayed,
    /// Sequence number to the left of the replay window.
    Stale,
    /// No inbound SA for this SPI and destination.
    UnknownSpi,
    /// The decrypted payload's padding or pad length is wrong (after a good ICV).
    BadPadding,
    /// The first inbound policy matching the decapsulated inner packet does not protect it
    /// with exactly the SAs that were removed (or there is none, or it is bypass/discard).
    PolicyMismatch,
    /// No policy matches the packet.
    NoPolicy,
    /// The matching policy says discard.
    PolicyDiscard,
    /// An unprotected packet arrived where policy requires protection.
    Unprotected,
    /// The SA's sequence-number space is exhausted; it may not send again.
    SeqExhausted,
    /// The SA has used every sequence number reserved for it durably (the state directory
    /// could not be written, or not fast enough): it sends again once more is reserved.
    SeqUnreserved,
    /// Never a drop: with workers sharing an SA, the numbers other workers hold unsent are
    /// as far behind as a receiver's replay window allows ([`crate::sa::IN_FLIGHT_SPAN`]),
    /// so the packet waits; the gateway offers it again once its batch is sent.
    SeqBusy,
    /// The SA reached its hard lifetime.
    Expired,
    /// The combination of inner and outer ECN calls for a drop (RFC 6040).
    EcnDrop,
    /// The next header is not one espo decapsulates into (not IPv4/IPv6).
    UnsupportedInner,
    /// A TFC dummy packet (next header 59): consumed, as RFC 4303 says.
    Dummy,
    /// The result would not fit an IP packet or the output buffer.
    TooBig,
    /// IP fragments of an ESP/AH packet (reassembly is the job of the host's stack).
    Fragment,
    /// The card could not process the packet and it could not be retried, or the card
    /// may have sent it before a fault (its fate is unknown: it is never sent again).
    DeviceError,
    /// A packet of an SA that moved onto the card while the packet was on its way: the
    /// card did not check it and the replay window it must be checked against is now the
    /// card's, so it is not accepted.
    SaMoving,
    /// An IKE message for the key-management daemon, which has more waiting than it
    /// takes (or is not running); or a frame of the link layer (ARP, neighbour discovery)
    /// from a card whose port is its own, while the port thread has too many waiting.
    IkeBacklog,
    /// An outbound packet matched a trap policy: key management negotiates the SA it
    /// needs (`start_action = "trap"`); the packet itself is not kept.
    Trapped,
    /// The frame's next hop has no known link-layer address (ARP or neighbour discovery
    /// not answered yet) where the card's port is its own and the frame leaves as posted.
    Unresolved,
}

impl DropReason {
    pub const ALL: [DropReason; 26] = [
        DropReason::Malformed,
        DropReason::NotIp,
        DropReason::Snapped,
        DropReason::BadIcv,
        DropReason::Replayed,
        DropReason::Stale,
        DropReason::UnknownSpi,
        DropReason::BadPadding,
        DropReason::PolicyMismatch,
        DropReason::NoPolicy,
        DropReason::PolicyDiscard,
        DropReason::Unprotected,
        DropReason::SeqExhausted,
        DropReason::SeqUnreserved,
        DropReason::SeqBusy,
        DropReason::Expired,
        DropReason::EcnDrop,
        DropReason::UnsupportedInner,
        DropReason::Dummy,
        DropReason::TooBig,
        DropReason::Fragment,
        DropReason::DeviceError,
        DropReason::SaMoving,
        DropReason::IkeBacklog,
        DropReason::Trapped,
        DropReason::Unresolved,
    ];
    pub const COUNT: usize = Self::ALL.len();

    /// Stable short name, used in summaries, status output and JSON.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotIp => "not-ip",
            DropReason::Snapped => "snapped",
            DropReason::BadIcv => "bad-icv",
            DropReason::Replayed => "replayed",
            DropReason::Stale => "stale",
            DropReason::UnknownSpi => "unknown-spi",
            DropReason::BadPadding => "bad-padding",
            DropReason::PolicyMismatch => "policy-mismatch",
            DropReason::NoPolicy => "no-policy",
            DropReason::PolicyDiscard => "policy-discard",
            DropReason::Unprotected => "unprotected",
            DropReason::SeqExhausted => "seq-exhausted",
            DropReason::SeqUnreserved => "seq-unreserved",
            DropReason::SeqBusy => "seq-busy",
            DropReason::Expired => "expired",
            DropReason::EcnDrop => "ecn-drop",
            DropReason::UnsupportedInner => "unsupported-inner",
            DropReason::Dummy => "tfc-dummy",
            DropReason::TooBig => "too-big",
            DropReason::Fragment => "fragment",
            DropReason::DeviceError => "device-error",
            DropReason::SaMoving => "sa-moving",
            DropReason::IkeBacklog => "ike-backlog",
            DropReason::Trapped => "trapped",
            DropReason::Unresolved => "unresolved",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per drop reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl DropCounters {
    pub fn count(&mut self, reason: DropReason) {
        self.counts[reason.index()] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The reasons with a non-zero count, in declaration order.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }

    pub fn add(&mut self, other: &DropCounters) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }
}

/// Packets and bytes through one SA in one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaCounters {
    pub packets: u64,
    /// Bytes of inner packets protected or recovered (the lifetime byte count).
    pub bytes: u64,
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot_and_name() {
        let mut c = DropCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r} is out of order in ALL");
            for _ in 0..=i {
                c.count(*r);
            }
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(c.get(*r), i as u64 + 1);
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        assert_eq!(c.total(), (1..=DropReason::COUNT as u64).sum::<u64>());
    }
}
