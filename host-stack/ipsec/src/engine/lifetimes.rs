//! Lifetimes in the software engine: each half checks its SAs' soft and hard ends when its
//! owner tells it the time (see [`crate::lifetime`]).

use core::time::Duration;

use super::{Inbound, Outbound};
use crate::lifetime::{self, LifetimeCause, LifetimeEvent, Reported};
use crate::sa::SendShare;
use crate::spec::Direction;

/// Reports what `soft`/`hard` newly reached; returns whether the hard end is new. With
/// an SA shared between workers (`share`), only the first worker to see an end reports it.
fn report(
    reported: &mut Reported,
    share: Option<&SendShare>,
    spi: u32,
    dir: Direction,
    (soft, hard): (Option<LifetimeCause>, Option<LifetimeCause>),
    out: &mut Vec<LifetimeEvent>,
) -> bool {
    let first = |hard: bool| share.is_none_or(|s| s.first_report(hard));
    if let Some(cause) = soft
        && !reported.soft
    {
        reported.soft = true;
        if first(false) {
            out.push(LifetimeEvent {
                spi,
                dir,
                hard: false,
                cause,
            });
        }
    }
    if let Some(cause) = hard
        && !reported.hard
    {
        reported.hard = true;
        if first(true) {
            out.push(LifetimeEvent {
                spi,
                dir,
                hard: true,
                cause,
            });
        }
        return true;
    }
    false
}

impl Outbound {
    /// Soft and hard ends the outbound SAs reached by `now` (on the clock their `installed`
    /// times are on), each reported once into `out`. An SA at its hard end sends nothing
    /// more.
    pub fn check_lifetimes(&mut self, now: Duration, out: &mut Vec<LifetimeEvent>) {
        for sa in self.sas.iter_mut() {
            let age = now.saturating_sub(sa.installed);
            let counters = sa.lifetime_counters();
            let (soft, mut hard) = lifetime::reached(&sa.params.lifetime, &counters, age);
            if sa.numbers_exhausted() {
                hard = Some(LifetimeCause::SequenceNumbers);
            }
            let share = sa.share().cloned();
            if report(
                &mut sa.reported,
                share.as_ref(),
                sa.params.spi,
                Direction::Out,
                (soft, hard),
                out,
            ) {
                sa.expired = true;
            }
        }
    }
}

impl Inbound {
    /// Soft and hard ends the inbound SAs reached by `now`, each reported once into `out`.
    /// An SA at its hard end accepts nothing more.
    pub fn check_lifetimes(&mut self, now: Duration, out: &mut Vec<LifetimeEvent>) {
        for sa in self.sas.iter_mut() {
            let age = now.saturating_sub(sa.installed);
            let ends = lifetime::reached(&sa.params.lifetime, &sa.counters, age);
            if report(
                &mut sa.reported,
                None,
                sa.params.spi,
                Direction::In,
                ends,
                out,
            ) {
                sa.expired = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{EncryptionAlgorithm, SecretKey};
    use crate::sa::{InboundSa, OutboundSa, SaParams};
    use crate::spec::{DfMode, Lifetime, SaMode, SaProtocol, SaSpec};

    fn params(spi: u32, lifetime: Lifetime) -> SaParams {
        SaParams::from_spec(&SaSpec {
            spi,
            dir: None,
            protocol: SaProtocol::Esp,
            mode: SaMode::Tunnel,
            src: [192, 0, 2, 1].into(),
            dst: [192, 0, 2, 2].into(),
            encryption: Some(EncryptionAlgorithm::AesGcm128),
            key: Some(SecretKey::new(vec![spi as u8; 20])),
            integrity: None,
            integrity_key: None,
            esn: false,
            seq: 0,
            replay_window: 64,
            udp_encap: None,
            ttl: 64,
            df: DfMode::Copy,
            lifetime,
        })
        .unwrap()
    }

    #[test]
    fn seconds_end_software_sas_once_each() {
        let timed = Lifetime {
            soft_seconds: Some(1),
            hard_seconds: Some(2),
            ..Lifetime::default()
        };
        let mut out = Outbound::default();
        out.add_sa(OutboundSa::new(params(0x10, timed), 0)).unwrap();
        out.add_sa(OutboundSa::new(params(0x11, Lifetime::default()), 0))
            .unwrap();
        let mut inn = Inbound::default();
        let mut sa = InboundSa::new(params(0x20, timed), 64, 0).unwrap();
        sa.installed = Duration::from_secs(10);
        inn.add_sa(sa).unwrap();
        let mut events = Vec::new();
        let s = Duration::from_secs;
        out.check_lifetimes(s(0), &mut events);
        assert!(events.is_empty());
        out.check_lifetimes(s(1), &mut events);
        out.check_lifetimes(s(1), &mut events);
        assert_eq!(
            events,
            [LifetimeEvent {
                spi: 0x10,
                dir: Direction::Out,
                hard: false,
                cause: LifetimeCause::Seconds
            }],
            "the soft end, once"
        );
        assert_eq!(out.sas()[0].can_send(), Ok(()));
        events.clear();
        out.check_lifetimes(s(2), &mut events);
        assert_eq!(events.len(), 1);
        assert!(events[0].hard && events[0].spi == 0x10);
        assert_eq!(
            out.sas()[0].can_send(),
            Err(crate::counters::DropReason::Expired),
            "an SA at its hard end sends nothing more"
        );
        assert_eq!(out.sas()[1].can_send(), Ok(()), "the other SA is untouched");
        events.clear();
        inn.check_lifetimes(s(11), &mut events);
        assert_eq!(events.len(), 1, "soft, counted from its own install time");
        inn.check_lifetimes(s(12), &mut events);
        assert!(events[1].hard && events[1].dir == Direction::In);
        assert!(inn.sas()[0].hard_expired());
    }

    #[test]
    fn the_last_sequence_number_is_a_hard_end() {
        let mut out = Outbound::default();
        let mut sa = OutboundSa::new(params(0x10, Lifetime::default()), 0);
        sa.advance_seq_to(u64::from(u32::MAX));
        out.add_sa(sa).unwrap();
        let mut events = Vec::new();
        out.check_lifetimes(Duration::ZERO, &mut events);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].cause, LifetimeCause::SequenceNumbers);
    }
}
