//! Lifetimes on the card (counted exactly by the card) and on the host clock: events reach
//! the owner, and an SA at its end stops.

use espo_ipsec::lifetime::LifetimeCause;
use espo_ipsec::spec::Direction;
use std::time::Duration;

use espo_ipsec::counters::DropReason;
use espo_offload::{EngineEvent, Path, Placement, Received, SentAs, SoftwareReason};

use super::support::*;

fn lifetime_events(rig: &Rig, spi: u32) -> Vec<(bool, LifetimeCause)> {
    rig.events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Lifetime {
                spi: s,
                hard,
                cause,
                ..
            } if *s == spi => Some((*hard, *cause)),
            _ => None,
        })
        .collect()
}

fn placement(rig: &Rig, spi: u32, dir: Direction) -> (Placement, Option<SoftwareReason>) {
    let p = rig
        .engine
        .placements()
        .into_iter()
        .find(|p| p.spi == spi && p.dir == dir)
        .unwrap();
    (p.placement, p.why_software)
}

#[test]
fn packet_lifetime_on_the_card_is_exact_and_the_sa_stops() {
    let mut rig = rig("lifetime = { soft_packets = 5, hard_packets = 10 }");
    assert!(matches!(
        placement(&rig, GCM_OUT, Direction::Out).0,
        Placement::Card { .. }
    ));
    for t in 0..15 {
        rig.send(t, NET_GCM_OUT, 100);
    }
    rig.settle();
    // Later packets, after the SA has left the card: refused in software too.
    for t in 15..18 {
        rig.send(t, NET_GCM_OUT, 100);
    }
    rig.settle();
    rig.ledger.assert_sound();
    let sent = rig.ledger.count(|r| {
        matches!(
            r,
            Ok(SentAs::Esp {
                path: Path::Card,
                ..
            })
        )
    });
    let mut reports: Vec<_> = rig.ledger.reports.iter().collect();
    reports.sort_by_key(|(t, _)| **t);
    assert_eq!(sent, 10, "exactly the hard lifetime's packets: {reports:?}");
    assert_eq!(rig.ledger.count(|r| *r == Err(DropReason::Expired)), 8);
    assert_eq!(rig.ledger.seqs(GCM_OUT), (1..=10).collect::<Vec<u64>>());
    assert_eq!(
        lifetime_events(&rig, GCM_OUT),
        vec![
            (false, LifetimeCause::Packets),
            (true, LifetimeCause::Packets)
        ]
    );
    assert_eq!(
        placement(&rig, GCM_OUT, Direction::Out),
        (Placement::Software, Some(SoftwareReason::Expired))
    );
}

#[test]
fn byte_lifetime_on_the_card_counts_inner_bytes_and_lets_the_crossing_packet_through() {
    let mut rig = rig("lifetime = { hard_bytes = 3000 }");
    for t in 0..8 {
        rig.send(t, NET_GCM_OUT, 700);
    }
    rig.settle();
    rig.ledger.assert_sound();
    let mut total = 0usize;
    let mut sent = 0;
    for t in 0..8u64 {
        if let Some(Ok(SentAs::Esp { .. })) = rig.ledger.reports.get(&t) {
            total += rig.ledger.submitted[&t].len();
            sent += 1;
        }
    }
    let last = rig.ledger.submitted[&(sent - 1)].len();
    let mut reports: Vec<_> = rig.ledger.reports.iter().collect();
    reports.sort_by_key(|(t, _)| **t);
    assert!(
        total >= 3000 && total - last < 3000,
        "{sent} packets, {total} bytes: {reports:?}"
    );
    assert_eq!(
        lifetime_events(&rig, GCM_OUT),
        vec![(true, LifetimeCause::Bytes)]
    );
}

#[test]
fn time_lifetimes_run_on_the_host_clock() {
    let mut rig = rig("lifetime = { soft_seconds = 10, hard_seconds = 20 }");
    for t in 0..3 {
        rig.send(t, NET_GCM_OUT, 100);
    }
    rig.settle();
    assert!(lifetime_events(&rig, GCM_OUT).is_empty());
    rig.clock.advance(Duration::from_secs(11));
    rig.settle();
    assert_eq!(
        lifetime_events(&rig, GCM_OUT),
        vec![(false, LifetimeCause::Seconds)]
    );
    assert!(matches!(
        placement(&rig, GCM_OUT, Direction::Out).0,
        Placement::Card { .. }
    ));
    rig.clock.advance(Duration::from_secs(10));
    for t in 3..6 {
        rig.send(t, NET_GCM_OUT, 100);
    }
    rig.settle();
    rig.ledger.assert_sound();
    assert_eq!(
        lifetime_events(&rig, GCM_OUT),
        vec![
            (false, LifetimeCause::Seconds),
            (true, LifetimeCause::Seconds)
        ]
    );
    assert_eq!(rig.ledger.count(|r| *r == Err(DropReason::Expired)), 3);
    assert_eq!(
        placement(&rig, GCM_OUT, Direction::Out),
        (Placement::Software, Some(SoftwareReason::Expired))
    );
}

#[test]
fn an_inbound_sa_expiring_on_the_card_accepts_nothing_more() {
    let (local, peer) = configs("");
    let local = local.replacen(
        "replay_window = 64",
        "replay_window = 64\nlifetime = { soft_packets = 2, hard_packets = 5 }",
        1,
    );
    let mut rig = rig_with(&local, &peer, |_| {});
    let frames: Vec<Vec<u8>> = (0..8).map(|i| rig.peer_frame(NET_GCM_IN, i)).collect();
    let got = rig.receive(&frames);
    assert_eq!(got.len(), 8);
    for (i, r) in got.iter().enumerate() {
        if i < 5 {
            assert!(
                matches!(
                    r.outcome,
                    Ok(Received::Inner {
                        path: Path::Card,
                        ..
                    })
                ),
                "{i}: {r:?}"
            );
        } else {
            assert_eq!(r.outcome, Err(DropReason::Expired), "{i}");
        }
    }
    assert_eq!(
        lifetime_events(&rig, GCM_IN),
        vec![
            (false, LifetimeCause::Packets),
            (true, LifetimeCause::Packets)
        ]
    );
    let more = rig.peer_frame(NET_GCM_IN, 9);
    assert_eq!(rig.receive(&[more])[0].outcome, Err(DropReason::Expired));
}
