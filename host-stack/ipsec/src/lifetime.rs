//! SA lifetimes (RFC 4301 §4.4.2.1): soft and hard, by bytes, packets and seconds, and the
//! end of the sequence-number space. The soft end is when to rekey; at the hard end the SA
//! sends and accepts nothing more. Every engine reports a crossing the same way, once:
//! a [`LifetimeEvent`].
//!
//! Bytes and packets are counted by whoever processes the SA's packets (the software
//! engine here, the card for its SAs); seconds run on the owner's clock from when the SA
//! was installed — the engine does no I/O and reads no clock itself, so its owner calls
//! [`Outbound::check_lifetimes`](crate::engine::Outbound::check_lifetimes) and
//! [`Inbound::check_lifetimes`](crate::engine::Inbound::check_lifetimes) now and then
//! with the time.

use core::time::Duration;

use crate::counters::SaCounters;
use crate::spec::{Direction, Lifetime};

/// Why an SA's life ended or is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeCause {
    Bytes,
    Packets,
    Seconds,
    /// The last sequence number was sent.
    SequenceNumbers,
}

impl LifetimeCause {
    pub fn name(self) -> &'static str {
        match self {
            LifetimeCause::Bytes => "bytes",
            LifetimeCause::Packets => "packets",
            LifetimeCause::Seconds => "seconds",
            LifetimeCause::SequenceNumbers => "sequence numbers",
        }
    }
}

/// An SA crossed its soft lifetime (rekey now) or reached its hard lifetime (it sends or
/// accepts nothing more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeEvent {
    pub spi: u32,
    pub dir: Direction,
    pub hard: bool,
    pub cause: LifetimeCause,
}

/// Which crossings an SA has reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    pub soft: bool,
    pub hard: bool,
}

/// The soft and hard ends an SA has reached by its counters and its age, if any: (soft
/// cause, hard cause).
pub fn reached(
    lifetime: &Lifetime,
    counters: &SaCounters,
    age: Duration,
) -> (Option<LifetimeCause>, Option<LifetimeCause>) {
    let secs = age.as_secs();
    let by = |bytes: Option<u64>, packets: Option<u64>, seconds: Option<u64>| {
        if packets.is_some_and(|n| counters.packets >= n) {
            Some(LifetimeCause::Packets)
        } else if bytes.is_some_and(|n| counters.bytes >= n) {
            Some(LifetimeCause::Bytes)
        } else if seconds.is_some_and(|n| secs >= n) {
            Some(LifetimeCause::Seconds)
        } else {
            None
        }
    };
    (
        by(
            lifetime.soft_bytes,
            lifetime.soft_packets,
            lifetime.soft_seconds,
        ),
        by(
            lifetime.hard_bytes,
            lifetime.hard_packets,
            lifetime.hard_seconds,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_is_reached_by_its_own_measure() {
        let l = Lifetime {
            soft_packets: Some(10),
            hard_bytes: Some(1000),
            soft_seconds: Some(5),
            hard_seconds: Some(9),
            ..Lifetime::default()
        };
        let c = |packets, bytes| SaCounters { packets, bytes };
        let s = Duration::from_secs;
        assert_eq!(reached(&l, &c(0, 0), s(0)), (None, None));
        assert_eq!(
            reached(&l, &c(10, 0), s(0)),
            (Some(LifetimeCause::Packets), None)
        );
        assert_eq!(
            reached(&l, &c(0, 1000), s(5)),
            (Some(LifetimeCause::Seconds), Some(LifetimeCause::Bytes))
        );
        assert_eq!(
            reached(&l, &c(0, 0), s(9)),
            (Some(LifetimeCause::Seconds), Some(LifetimeCause::Seconds))
        );
        assert_eq!(
            reached(&Lifetime::default(), &c(u64::MAX, u64::MAX), s(u64::MAX)),
            (None, None),
            "no limits, no ends"
        );
    }
}
