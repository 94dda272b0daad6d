//! Each live operation alone, on the card model: SAs added (on the card, in software, into
//! a full table), removed (refused while named; an inbound one gives no verdict after),
//! replaced with packets on the ring, policies and bundles changed, sequence-number
//! reservations of card SAs, time lifetimes of SAs added later.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use espo_driver::model::MemLink;
use espo_fpga::Counter;
use espo_ipsec::counters::DropReason;
use espo_ipsec::crypto::{EncryptionAlgorithm, IntegrityAlgorithm, SecretKey};
use espo_ipsec::engine::{ChangeError, Decapsulated, Encapsulated, SoftwareEngine};
use espo_ipsec::sa::{InboundSa, OutboundSa, SaParams, SeqReservation};
use espo_ipsec::selector::{Cidr, PortRange, ProtocolSelector};
use espo_ipsec::spd::PolicyId;
use espo_ipsec::spec::{
    DfMode, Direction, Lifetime, PolicyAction, PolicySpec, SaMode, SaProtocol, SaSpec,
};

use crate::tests::{collect_rx, config, packet, peer_config, rig, run_until_idle};
use crate::{
    EngineEvent, ManualClock, MoveReason, OffloadEngine, OffloadError, OffloadOptions, Path,
    Placement, Received, SentAs, SoftwareReason, TxReport, Unfit,
};

const A: [u8; 4] = [192, 0, 2, 1];
const B: [u8; 4] = [192, 0, 2, 2];

/// An AES-GCM-128 tunnel SA from `src` to `dst`, its key from its SPI.
fn gcm(spi: u32, src: [u8; 4], dst: [u8; 4]) -> SaSpec {
    let key: Vec<u8> = (0..20u8)
        .map(|i| (spi as u8).wrapping_mul(29) ^ i)
        .collect();
    SaSpec {
        spi,
        dir: None,
        protocol: SaProtocol::Esp,
        mode: SaMode::Tunnel,
        src: IpAddr::from(src),
        dst: IpAddr::from(dst),
        encryption: Some(EncryptionAlgorithm::AesGcm128),
        key: Some(SecretKey::new(key)),
        integrity: None,
        integrity_key: None,
        esn: false,
        seq: 0,
        replay_window: 64,
        udp_encap: None,
        ttl: 64,
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    }
}

fn policy(dir: Direction, src: &str, dst: &str, action: PolicyAction, sas: &[u32]) -> PolicySpec {
    PolicySpec {
        dir,
        src: src.parse::<Cidr>().unwrap(),
        dst: dst.parse::<Cidr>().unwrap(),
        protocol: ProtocolSelector::Any,
        src_port: PortRange::ANY,
        dst_port: PortRange::ANY,
        action,
        sa: sas.to_vec(),
    }
}

fn protect(dir: Direction, src: &str, dst: &str, spi: u32) -> PolicySpec {
    policy(dir, src, dst, PolicyAction::Protect, &[spi])
}

fn placement(engine: &OffloadEngine, spi: u32, dir: Direction) -> Option<crate::SaPlacement> {
    engine
        .placements()
        .into_iter()
        .find(|p| p.spi == spi && p.dir == dir)
}

fn on_card(engine: &OffloadEngine, spi: u32, dir: Direction) -> bool {
    placement(engine, spi, dir).is_some_and(|p| matches!(p.placement, Placement::Card { .. }))
}

/// Submits `n` packets from 10.1.0.1 to `dst` (tags from `first`) and runs until every one
/// is reported.
fn send(engine: &mut OffloadEngine, dst: [u8; 4], first: u64, n: u64) -> Vec<TxReport> {
    for t in first..first + n {
        engine.submit(t, &packet([10, 1, 0, 1], dst, 100, t as u16));
    }
    let mut r = run_until_idle(engine);
    r.sort_by_key(|r| r.tag);
    r
}

fn esp(r: &TxReport) -> (u32, u64, Path) {
    match r.outcome {
        Ok(SentAs::Esp { spi, seq, path }) => (spi, seq, path),
        other => panic!("packet {}: {other:?}", r.tag),
    }
}

/// SPI of an ESP frame with an IPv4 outer header.
fn wire_spi(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[34..38].try_into().unwrap())
}

/// Polls (moving device time on) until `done` holds.
fn poll_until(engine: &mut OffloadEngine, mut done: impl FnMut(&OffloadEngine) -> bool) {
    for _ in 0..100_000 {
        if done(engine) {
            return;
        }
        engine.wait(Duration::from_micros(20));
    }
    panic!("never happened");
}

#[test]
fn an_sa_added_at_run_time_goes_on_the_card_and_carries_traffic_both_ways() {
    let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
    let mut peer = peer_config().software_engine().unwrap();
    // Outbound: 10.1/16 -> 10.4/16 on a new SA, numbered from its configured start.
    let mut out = gcm(0x1003, A, B);
    out.seq = 500;
    engine.add_sa(&out, Direction::Out).unwrap();
    assert!(on_card(&engine, 0x1003, Direction::Out));
    let p = protect(Direction::Out, "10.1.0.0/16", "10.4.0.0/16", 0x1003);
    engine.add_policy(&p, PolicyId(10), None).unwrap();
    let reports = send(&mut engine, [10, 4, 0, 1], 0, 5);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(esp(r), (0x1003, 501 + i as u64, Path::Card));
    }
    // The peer reads them once it knows the SA.
    let params = SaParams::from_spec(&out).unwrap();
    peer.inbound
        .add_sa(InboundSa::new(params, 0, 0).unwrap())
        .unwrap();
    let p = protect(Direction::In, "10.1.0.0/16", "10.4.0.0/16", 0x1003);
    peer.inbound.add_policy(&p, PolicyId(10), None).unwrap();
    for f in tap.drain() {
        assert_eq!(wire_spi(&f.data), 0x1003);
        let mut ip = f.data[14..].to_vec();
        assert!(matches!(
            peer.inbound.decapsulate(&mut ip),
            Ok(Decapsulated::Inner { spi: 0x1003, .. })
        ));
    }

    // Inbound: 10.4/16 -> 10.1/16 on a new SA, decapsulated by the card.
    let inb = gcm(0x2003, B, A);
    engine.add_sa(&inb, Direction::In).unwrap();
    assert!(on_card(&engine, 0x2003, Direction::In));
    let p = protect(Direction::In, "10.4.0.0/16", "10.1.0.0/16", 0x2003);
    engine.add_policy(&p, PolicyId(11), None).unwrap();
    let params = SaParams::from_spec(&inb).unwrap();
    peer.outbound.add_sa(OutboundSa::new(params, 0)).unwrap();
    let p = protect(Direction::Out, "10.4.0.0/16", "10.1.0.0/16", 0x2003);
    peer.outbound.add_policy(&p, PolicyId(11), Some(0)).unwrap();
    let got = from_peer(&mut engine, &mut peer, &tap, [10, 4, 0, 9], 0..4);
    for r in &got {
        assert!(
            matches!(
                r.outcome,
                Ok(Received::Inner {
                    spi: 0x2003,
                    path: Path::Card,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    // SAs added at run time are not moves.
    assert_eq!(engine.counters().moves_to_card, 0);
    assert!(matches!(
        engine.add_sa(&out, Direction::Out),
        Err(OffloadError::Change(ChangeError::DuplicateSa { .. }))
    ));
}

/// Frames from the peer (inner source `src`) through the card's port; the engine's reports.
fn from_peer(
    engine: &mut OffloadEngine,
    peer: &mut SoftwareEngine,
    tap: &MemLink,
    src: [u8; 4],
    ids: std::ops::Range<u16>,
) -> Vec<crate::RxReport> {
    let n = ids.len();
    for f in peer_frames(peer, src, ids) {
        tap.send_bytes(&f);
    }
    collect_rx(engine, n)
}

fn peer_frames(peer: &mut SoftwareEngine, src: [u8; 4], ids: std::ops::Range<u16>) -> Vec<Vec<u8>> {
    ids.map(|i| {
        let inner = packet(src, [10, 1, 0, 9], 100, i);
        let mut out = vec![0u8; 400];
        let Ok(Encapsulated::Protected { len, .. }) = peer.outbound.encapsulate(&inner, &mut out)
        else {
            panic!("the peer cannot send from {src:?}");
        };
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        frame.extend_from_slice(&out[..len]);
        frame
    })
    .collect()
}

#[test]
fn an_sa_the_card_cannot_take_runs_in_software_with_the_reason() {
    let (mut engine, _, _) = rig(&config(""), OffloadOptions::default());
    let mut chacha = gcm(0x1003, A, B);
    chacha.encryption = Some(EncryptionAlgorithm::ChaCha20Poly1305);
    chacha.key = Some(SecretKey::new(vec![7; 36]));
    engine.add_sa(&chacha, Direction::Out).unwrap();
    let p = placement(&engine, 0x1003, Direction::Out).unwrap();
    assert_eq!(p.placement, Placement::Software);
    assert_eq!(
        p.why_software,
        Some(SoftwareReason::Unfit(Unfit::Algorithm(
            EncryptionAlgorithm::ChaCha20Poly1305
        )))
    );
    protect_10_4_with_0x1003(&mut engine);
    for (i, r) in send(&mut engine, [10, 4, 0, 1], 0, 3).iter().enumerate() {
        assert_eq!(esp(r), (0x1003, i as u64 + 1, Path::Software));
    }
    let mut bad = gcm(0x1004, A, B);
    bad.key = Some(SecretKey::new(vec![1; 3]));
    assert!(matches!(
        engine.add_sa(&bad, Direction::Out),
        Err(OffloadError::BuildSa(_))
    ));
    assert!(placement(&engine, 0x1004, Direction::Out).is_none());
}

/// The test configuration on a card whose SA table takes two: 0x1001 out and 0x2001 in
/// fill it.
fn two_entry_rig() -> (OffloadEngine, espo_driver::model::ModelHandle, MemLink) {
    let options = OffloadOptions {
        max_card_sas: Some(2),
        ..OffloadOptions::default()
    };
    rig(&config(""), options)
}

/// An outbound policy 10.1/16 -> 10.4/16 protected by 0x1003 (policy 10).
fn protect_10_4_with_0x1003(engine: &mut OffloadEngine) {
    engine
        .add_policy(
            &protect(Direction::Out, "10.1.0.0/16", "10.4.0.0/16", 0x1003),
            PolicyId(10),
            None,
        )
        .unwrap();
}

#[test]
fn with_the_table_full_an_added_sa_waits_in_software_and_moves_on_when_an_entry_frees() {
    let (mut engine, _, _) = two_entry_rig();
    engine.add_sa(&gcm(0x1003, A, B), Direction::Out).unwrap();
    let p = placement(&engine, 0x1003, Direction::Out).unwrap();
    assert_eq!(
        (p.placement, p.why_software),
        (Placement::Software, Some(SoftwareReason::TableFull))
    );
    protect_10_4_with_0x1003(&mut engine);
    for (i, r) in send(&mut engine, [10, 4, 0, 1], 0, 3).iter().enumerate() {
        assert_eq!(esp(r), (0x1003, i as u64 + 1, Path::Software));
    }
    // 0x1001 goes (its policy first): its entry rests, then 0x1003 takes it.
    engine.remove_policy(PolicyId(0)).unwrap();
    engine.remove_sa(0x1001, Direction::Out, None).unwrap();
    assert!(placement(&engine, 0x1001, Direction::Out).is_none());
    assert!(
        !on_card(&engine, 0x1003, Direction::Out),
        "the entry rests first"
    );
    poll_until(&mut engine, |e| on_card(e, 0x1003, Direction::Out));
    let mut events = Vec::new();
    engine.take_events(&mut events);
    assert!(
        events.contains(&EngineEvent::Moved {
            spi: 0x1003,
            dir: Direction::Out,
            to: placement(&engine, 0x1003, Direction::Out)
                .unwrap()
                .placement,
            reason: MoveReason::RoomFreed,
        })
    );
    for (i, r) in send(&mut engine, [10, 4, 0, 1], 10, 3).iter().enumerate() {
        assert_eq!(
            esp(r),
            (0x1003, i as u64 + 4, Path::Card),
            "numbers continue"
        );
    }
    // Untouched: the inbound card SA and the ChaCha20 SA.
    assert!(on_card(&engine, 0x2001, Direction::In));
    for r in send(&mut engine, [10, 3, 0, 1], 20, 2) {
        assert_eq!(esp(&r).0, 0x1002);
    }
}

#[test]
fn an_entry_freed_while_its_packets_are_in_flight_serves_a_waiting_sa_once_the_last_completes() {
    let (mut engine, model, tap) = two_entry_rig();
    engine.add_sa(&gcm(0x1003, A, B), Direction::Out).unwrap();
    protect_10_4_with_0x1003(&mut engine);
    assert!(
        !on_card(&engine, 0x1003, Direction::Out),
        "the table is full"
    );
    let Some(Placement::Card { sa_index }) =
        placement(&engine, 0x1001, Direction::Out).map(|p| p.placement)
    else {
        panic!("0x1001 starts on the card");
    };
    // Packets of 0x1001 posted to the card, which has not taken them yet.
    model.hold(true);
    let n = 64u64;
    for t in 0..n {
        engine.submit(t, &packet([10, 1, 0, 1], [10, 2, 0, 1], 1400, t as u16));
    }
    engine.poll();
    model.hold(false);
    // 0x1001 leaves the card with its packets still on the ring: its entry is free but
    // named by descriptors, so 0x1003 cannot have it yet.
    assert!(engine.move_to_software(0x1001, Direction::Out));
    assert!(
        engine.entry_in_flight[sa_index as usize] > 0,
        "the test needs packets in flight on the freed entry"
    );
    engine.poll();
    assert!(!on_card(&engine, 0x1003, Direction::Out));
    // The card completes them; the last one makes the entry reusable, and once it has
    // rested 0x1003 takes it without anything else happening.
    let mut reports = run_until_idle(&mut engine);
    reports.sort_by_key(|r| r.tag);
    // The card took none of them before its entry went: they leave in software on 0x1001,
    // numbered past every number the card could have used, in the order they came.
    assert_eq!(reports.len() as u64, n);
    assert!(reports.iter().all(|r| esp(r).0 == 0x1001));
    let seqs: Vec<u64> = reports.iter().map(|r| esp(r).1).collect();
    assert!(seqs[0] > n, "{seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    assert_eq!(engine.entry_in_flight[sa_index as usize], 0);
    poll_until(&mut engine, |e| on_card(e, 0x1003, Direction::Out));
    let mut events = Vec::new();
    engine.take_events(&mut events);
    assert!(events.iter().any(|e| matches!(
        e,
        EngineEvent::Moved {
            spi: 0x1003,
            dir: Direction::Out,
            reason: MoveReason::RoomFreed,
            ..
        }
    )));
    for (i, r) in send(&mut engine, [10, 4, 0, 1], 100, 3).iter().enumerate() {
        assert_eq!(esp(r), (0x1003, i as u64 + 1, Path::Card));
    }
    assert_eq!(tap.drain().len() as u64, n + 3);
}

#[test]
fn an_sa_a_policy_names_is_not_removed_and_nothing_changes() {
    let (mut engine, _, _) = rig(&config(""), OffloadOptions::default());
    let before = engine.placements();
    assert!(matches!(
        engine.remove_sa(0x1001, Direction::Out, None),
        Err(OffloadError::Change(ChangeError::SaInUse {
            spi: 0x1001,
            policy: PolicyId(0)
        }))
    ));
    assert!(matches!(
        engine.remove_sa(0x2001, Direction::In, None),
        Err(OffloadError::Change(ChangeError::SaInUse { .. }))
    ));
    assert!(matches!(
        engine.remove_sa(0x9999, Direction::Out, None),
        Err(OffloadError::Change(ChangeError::UnknownSa { .. }))
    ));
    assert_eq!(engine.placements(), before);
    for (i, r) in send(&mut engine, [10, 2, 0, 1], 0, 3).iter().enumerate() {
        assert_eq!(esp(r), (0x1001, i as u64 + 1, Path::Card));
    }
}

#[test]
fn a_removed_inbound_sa_gives_no_verdict_even_on_frames_the_card_took_before() {
    let (mut engine, model, tap) = rig(&config(""), OffloadOptions::default());
    let mut peer = peer_config().software_engine().unwrap();
    let got = from_peer(&mut engine, &mut peer, &tap, [10, 2, 0, 9], 0..3);
    assert!(
        got.iter()
            .all(|r| matches!(r.outcome, Ok(Received::Inner { .. })))
    );
    // Frames the card decapsulates while the host is not looking; then the SA goes.
    for f in peer_frames(&mut peer, [10, 2, 0, 9], 3..9) {
        tap.send_bytes(&f);
    }
    let decapsulated = model.counter(Counter::RxDecapOk);
    model.run_until_idle();
    assert_eq!(
        model.counter(Counter::RxDecapOk),
        decapsulated + 6,
        "the card took them"
    );
    engine.remove_policy(PolicyId(2)).unwrap();
    engine.remove_sa(0x2001, Direction::In, None).unwrap();
    assert!(placement(&engine, 0x2001, Direction::In).is_none());
    let late = collect_rx(&mut engine, 6);
    let after = from_peer(&mut engine, &mut peer, &tap, [10, 2, 0, 9], 9..12);
    for r in late.iter().chain(&after) {
        assert_eq!(r.outcome, Err(DropReason::UnknownSpi), "{r:?}");
    }
    assert_eq!(engine.counters().rx_card, 3);
}

#[test]
fn an_outbound_replacement_takes_every_packet_not_yet_on_the_card() {
    let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
    for t in 0..60 {
        engine.submit(t, &packet([10, 1, 0, 1], [10, 2, 0, 1], 300, t as u16));
    }
    // Some on the ring, some taken by the card, when the SA is replaced.
    engine.poll();
    engine
        .replace_sa(0x1001, Direction::Out, &gcm(0x1005, A, B))
        .unwrap();
    assert!(placement(&engine, 0x1001, Direction::Out).is_none());
    assert!(on_card(&engine, 0x1005, Direction::Out));
    for t in 60..70 {
        engine.submit(t, &packet([10, 1, 0, 1], [10, 2, 0, 1], 300, t as u16));
    }
    let mut reports = run_until_idle(&mut engine);
    reports.sort_by_key(|r| r.tag);
    assert_eq!(reports.len(), 70, "every packet reported once");
    let old: Vec<u64> = reports
        .iter()
        .map(esp)
        .filter(|e| e.0 == 0x1001)
        .map(|e| e.1)
        .collect();
    let new: Vec<u64> = reports
        .iter()
        .map(esp)
        .filter(|e| e.0 == 0x1005)
        .map(|e| e.1)
        .collect();
    assert!(!old.is_empty() && !new.is_empty(), "{old:?} / {new:?}");
    assert_eq!(old, (1..=old.len() as u64).collect::<Vec<_>>());
    let mut sorted = new.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), new.len(), "no number twice");
    assert!(
        reports[60..].iter().all(|r| esp(r).0 == 0x1005),
        "after the change, the new SA"
    );
    assert_eq!(tap.drain().len(), 70);
}

/// The engine keeps its last decision for a flow (outbound) and its last verdict for a flow
/// and SA (inbound); every policy change between two packets of one flow is still obeyed by
/// the second, in both directions and on both ways in (copied out, or left in the card's
/// buffer).
#[test]
fn every_policy_change_reaches_the_next_packet_of_the_same_flow() {
    for lend_rx in [false, true] {
        let options = OffloadOptions {
            lend_rx,
            ..OffloadOptions::default()
        };
        let (mut engine, _, tap) = rig(&config(""), options);
        let mut peer = peer_config().software_engine().unwrap();
        let to = [10, 2, 0, 1];
        // Outbound, one flow throughout: protected, discarded by a policy put ahead,
        // protected again once it goes, then on the bundle the policy is changed to.
        assert_eq!(esp(&send(&mut engine, to, 0, 2)[1]).0, 0x1001);
        let discard = policy(
            Direction::Out,
            "10.1.0.0/16",
            "10.2.0.0/24",
            PolicyAction::Discard,
            &[],
        );
        engine.add_policy(&discard, PolicyId(20), Some(0)).unwrap();
        let r = send(&mut engine, to, 2, 2);
        assert!(
            r.iter()
                .all(|r| r.outcome == Err(DropReason::PolicyDiscard))
        );
        engine.remove_policy(PolicyId(20)).unwrap();
        assert_eq!(esp(&send(&mut engine, to, 4, 1)[0]).0, 0x1001);
        engine.set_bundle(PolicyId(0), &[0x1002]).unwrap();
        assert_eq!(esp(&send(&mut engine, to, 5, 1)[0]).0, 0x1002);

        // Inbound, one flow and SA throughout: admitted, refused once a discard policy
        // comes first, admitted again once it goes.
        let admitted = |r: &crate::RxReport| {
            matches!(
                r.outcome,
                Ok(Received::Inner { spi: 0x2001, .. } | Received::Lent(_))
            )
        };
        let release = |engine: &mut OffloadEngine, got: &[crate::RxReport]| {
            for r in got {
                if let Ok(Received::Lent(p)) = &r.outcome {
                    engine.release_lent(p);
                }
            }
        };
        let got = from_peer(&mut engine, &mut peer, &tap, [10, 2, 0, 9], 0..2);
        assert!(got.iter().all(admitted), "{got:?}");
        release(&mut engine, &got);
        let discard = policy(
            Direction::In,
            "10.2.0.0/24",
            "10.1.0.0/16",
            PolicyAction::Discard,
            &[],
        );
        engine.add_policy(&discard, PolicyId(21), Some(0)).unwrap();
        let got = from_peer(&mut engine, &mut peer, &tap, [10, 2, 0, 9], 2..4);
        assert!(
            got.iter()
                .all(|r| r.outcome.as_ref().err() == Some(&DropReason::PolicyMismatch)),
            "{got:?}"
        );
        engine.remove_policy(PolicyId(21)).unwrap();
        let got = from_peer(&mut engine, &mut peer, &tap, [10, 2, 0, 9], 4..6);
        assert!(got.iter().all(admitted), "{got:?}");
        release(&mut engine, &got);
    }
}

#[test]
fn policies_come_and_go_and_bundles_change_between_packets() {
    let (mut engine, _, _) = rig(&config(""), OffloadOptions::default());
    let discard = policy(
        Direction::Out,
        "10.1.0.0/16",
        "10.2.9.0/24",
        PolicyAction::Discard,
        &[],
    );
    engine.add_policy(&discard, PolicyId(7), Some(0)).unwrap();
    assert!(matches!(
        engine.add_policy(&discard, PolicyId(2), None),
        Err(OffloadError::Change(ChangeError::DuplicatePolicy(
            PolicyId(2)
        ))),
    ));
    let r = send(&mut engine, [10, 2, 9, 1], 0, 1);
    assert_eq!(r[0].outcome, Err(DropReason::PolicyDiscard));
    assert_eq!(esp(&send(&mut engine, [10, 2, 0, 1], 1, 1)[0]).0, 0x1001);
    engine.set_bundle(PolicyId(0), &[0x1002]).unwrap();
    let r = send(&mut engine, [10, 2, 0, 1], 2, 1);
    assert_eq!(esp(&r[0]), (0x1002, 1, Path::Software));
    assert!(matches!(
        engine.set_bundle(PolicyId(7), &[0x1002]),
        Err(OffloadError::Change(ChangeError::NotProtect(PolicyId(7))))
    ));
    assert!(matches!(
        engine.set_bundle(PolicyId(99), &[0x1002]),
        Err(OffloadError::Change(ChangeError::UnknownPolicy(PolicyId(
            99
        ))))
    ));
    engine.remove_policy(PolicyId(7)).unwrap();
    engine.remove_policy(PolicyId(0)).unwrap();
    assert!(matches!(
        engine.remove_policy(PolicyId(0)),
        Err(OffloadError::Change(ChangeError::UnknownPolicy(PolicyId(
            0
        ))))
    ));
    let r = send(&mut engine, [10, 2, 9, 1], 3, 1);
    assert_eq!(r[0].outcome, Err(DropReason::NoPolicy));
    // 0x1001 is named by nothing now, and is still on the card with its count.
    let p = placement(&engine, 0x1001, Direction::Out).unwrap();
    assert!(matches!(p.placement, Placement::Card { .. }));
    assert_eq!(p.counters.packets, 1);
}

#[test]
fn an_sa_an_esp_ah_bundle_names_leaves_the_card_and_comes_back() {
    let (mut engine, _, _) = rig(&config(""), OffloadOptions::default());
    let first = send(&mut engine, [10, 2, 0, 1], 0, 3);
    let mut ah = gcm(0x3001, A, B);
    ah.protocol = SaProtocol::Ah;
    ah.mode = SaMode::Transport;
    ah.encryption = None;
    ah.key = None;
    ah.integrity = Some(IntegrityAlgorithm::HmacSha256_128);
    ah.integrity_key = Some(SecretKey::new(vec![9; 32]));
    engine.add_sa(&ah, Direction::Out).unwrap();
    engine.set_bundle(PolicyId(0), &[0x1001, 0x3001]).unwrap();
    let p = placement(&engine, 0x1001, Direction::Out).unwrap();
    assert_eq!(
        (p.placement, p.why_software),
        (
            Placement::Software,
            Some(SoftwareReason::Unfit(Unfit::Bundle))
        )
    );
    let mut events = Vec::new();
    engine.take_events(&mut events);
    assert!(events.iter().any(|e| matches!(
        e,
        EngineEvent::Moved {
            spi: 0x1001,
            reason: MoveReason::Bundled,
            ..
        }
    )));
    let bundled = send(&mut engine, [10, 2, 0, 1], 10, 3);
    engine.set_bundle(PolicyId(0), &[0x1001]).unwrap();
    poll_until(&mut engine, |e| on_card(e, 0x1001, Direction::Out));
    let back = send(&mut engine, [10, 2, 0, 1], 20, 3);
    let mut seqs: Vec<u64> = first
        .iter()
        .chain(&bundled)
        .chain(&back)
        .map(|r| esp(r).1)
        .collect();
    assert!(bundled.iter().all(|r| esp(r).2 == Path::Software));
    assert!(back.iter().all(|r| esp(r).2 == Path::Card));
    let n = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), n, "no sequence number twice");
}

#[test]
fn a_card_sa_stops_at_its_reservation_and_resumes_when_it_is_raised() {
    let (mut engine, _, _) = rig(&config(""), OffloadOptions::default());
    let reservation = SeqReservation::new(10, 0);
    assert!(engine.set_reservation(0x1001, reservation.clone()));
    assert!(
        !engine.set_reservation(0x2001, reservation.clone()),
        "inbound"
    );
    let r = send(&mut engine, [10, 2, 0, 1], 0, 15);
    for (i, r) in r[..10].iter().enumerate() {
        assert_eq!(esp(r), (0x1001, 1 + i as u64, Path::Card));
    }
    assert!(
        r[10..]
            .iter()
            .all(|r| r.outcome == Err(DropReason::SeqUnreserved))
    );
    assert_eq!(reservation.used(), 10, "what the card may have used");
    reservation.set_limit(30);
    let r = send(&mut engine, [10, 2, 0, 1], 20, 5);
    for (i, r) in r.iter().enumerate() {
        assert_eq!(esp(r), (0x1001, 11 + i as u64, Path::Card));
    }
    // Under load, and across moves: the card never passes the limit, and `used` covers
    // every number it used.
    for t in 100..160 {
        engine.submit(t, &packet([10, 1, 0, 1], [10, 2, 0, 1], 200, t as u16));
        if t == 120 {
            engine.poll();
            engine.move_to_software(0x1001, Direction::Out);
        }
        if t == 140 {
            engine.move_to_card(0x1001, Direction::Out);
        }
    }
    let r = run_until_idle(&mut engine);
    let max = r
        .iter()
        .filter_map(|r| match r.outcome {
            Ok(SentAs::Esp { seq, .. }) => Some(seq),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(max <= 30, "{max}");
    assert!(reservation.used() >= max);
    assert!(
        r.iter()
            .any(|r| r.outcome == Err(DropReason::SeqUnreserved))
    );
}

#[test]
fn time_lifetimes_of_an_added_sa_count_from_when_it_was_added() {
    let clock = ManualClock::default();
    let options = OffloadOptions {
        clock: Arc::new(clock.clone()),
        ..OffloadOptions::default()
    };
    let (mut engine, _, _) = rig(&config(""), options);
    clock.advance(Duration::from_secs(100));
    let mut sa = gcm(0x2003, B, A);
    sa.lifetime.hard_seconds = Some(10);
    engine.add_sa(&sa, Direction::In).unwrap();
    clock.advance(Duration::from_secs(9));
    engine.poll();
    let mut events = Vec::new();
    engine.take_events(&mut events);
    assert!(events.is_empty(), "{events:?}");
    clock.advance(Duration::from_secs(1));
    engine.poll();
    engine.take_events(&mut events);
    assert!(events.iter().any(|e| matches!(
        e,
        EngineEvent::Lifetime {
            spi: 0x2003,
            hard: true,
            ..
        }
    )));
    assert!(!on_card(&engine, 0x2003, Direction::In), "it left the card");
}

mod random;
