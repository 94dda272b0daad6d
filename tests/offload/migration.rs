//! Live moves between card and software, under load, both directions.

use espo_ipsec::counters::DropReason;
use espo_ipsec::spec::Direction;
use espo_offload::{Path, Placement, Received, SentAs};

use super::support::*;

fn placement(rig: &Rig, spi: u32, dir: Direction) -> Placement {
    rig.engine
        .placements()
        .into_iter()
        .find(|p| p.spi == spi && p.dir == dir)
        .expect("SA")
        .placement
}

#[test]
fn outbound_moves_under_load_never_reuse_a_sequence_number() {
    // ESN just below 2^32: the move carries the high half.
    let mut rig = rig(&format!("esn = true\nseq = {}", (1u64 << 32) - 40));
    let mut tag = 0;
    for round in 0..8 {
        for _ in 0..24 {
            rig.send(
                tag,
                if tag % 5 == 0 {
                    NET_CHACHA_OUT
                } else {
                    NET_GCM_OUT
                },
                (tag as usize * 37) % 1500,
            );
            tag += 1;
        }
        // Packets are on the card's ring (some taken, some not) when the SA moves.
        rig.engine.poll();
        if round % 2 == 0 {
            assert!(rig.engine.move_to_software(GCM_OUT, Direction::Out));
            assert_eq!(
                placement(&rig, GCM_OUT, Direction::Out),
                Placement::Software
            );
        } else {
            assert!(rig.engine.move_to_card(GCM_OUT, Direction::Out));
            assert!(matches!(
                placement(&rig, GCM_OUT, Direction::Out),
                Placement::Card { .. }
            ));
        }
        rig.settle();
    }
    rig.ledger.assert_sound();
    let seqs = rig.ledger.seqs(GCM_OUT);
    let sent = rig
        .ledger
        .count(|r| matches!(r, Ok(SentAs::Esp { spi: GCM_OUT, .. })));
    assert_eq!(seqs.len(), sent, "every packet its own number");
    assert_eq!(
        seqs[0],
        (1 << 32) - 39,
        "continues from the configured number"
    );
    assert!(
        *seqs.last().unwrap() > 1 << 32,
        "crossed 2^32 with the high half carried"
    );
    let by = |p: Path| {
        rig.ledger
            .count(|r| matches!(r, Ok(SentAs::Esp { spi: GCM_OUT, path, .. }) if *path == p))
    };
    assert!(
        by(Path::Card) > 0 && by(Path::Software) > 0,
        "both paths were used"
    );
    assert_eq!(rig.engine.counters().moves_to_software, 4);
    assert_eq!(rig.engine.counters().moves_to_card, 4);
    assert_eq!(
        rig.ledger.count(|r| r.is_err()),
        0,
        "a move costs no outbound packet"
    );
}

#[test]
fn a_card_exporting_stale_sequence_numbers_cannot_make_software_reuse_one() {
    // A defective card exports each outbound SA's number as it was written: software
    // continues from the host's own record of what the card used, whatever the export says.
    let mut rig = rig("");
    rig.inject_fault(espo_driver::model::FaultKind::StaleSeqExport, 1);
    let mut tag = 0;
    for round in 0..6 {
        for _ in 0..24 {
            rig.send(tag, NET_GCM_OUT, (tag as usize * 53) % 1400);
            tag += 1;
        }
        // Packets are on the card's ring (some taken, some not) when the SA moves.
        rig.engine.poll();
        if round % 2 == 0 {
            assert!(rig.engine.move_to_software(GCM_OUT, Direction::Out));
        } else {
            assert!(rig.engine.move_to_card(GCM_OUT, Direction::Out));
        }
        rig.settle();
    }
    rig.ledger.assert_sound();
    assert_eq!(
        rig.ledger.count(|r| r.is_err()),
        0,
        "a move costs no packet"
    );
    let by = |p: Path| {
        rig.ledger
            .count(|r| matches!(r, Ok(SentAs::Esp { spi: GCM_OUT, path, .. }) if *path == p))
    };
    assert!(by(Path::Card) > 0 && by(Path::Software) > 0);
    assert_eq!(rig.ledger.seqs(GCM_OUT).len(), 6 * 24);
}

#[test]
fn inbound_moves_keep_replay_protection_in_both_directions() {
    let mut rig = rig("");
    let mut id = 0u32;
    let mut batch = |rig: &mut Rig, n: u32| -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                id += 1;
                rig.peer_frame(NET_GCM_IN, id)
            })
            .collect()
    };
    let before = batch(&mut rig, 20);
    let got = rig.receive(&before);
    assert!(got.iter().all(|r| matches!(
        r.outcome,
        Ok(Received::Inner {
            path: Path::Card,
            ..
        })
    )));

    // Card -> software while frames are arriving.
    let during = batch(&mut rig, 20);
    for f in &during {
        rig.port.send(f);
    }
    rig.engine.poll();
    assert!(rig.engine.move_to_software(GCM_IN, Direction::In));
    let all = rig.collect(during.len());
    assert_eq!(all.len(), during.len(), "every frame reported once");
    assert!(
        all.iter()
            .all(|r| matches!(r.outcome, Ok(Received::Inner { .. }))),
        "{all:?}"
    );
    // Replays of what the card accepted before the move are refused by software.
    let replays = rig.receive(&[before[3].clone(), during[5].clone(), before[19].clone()]);
    assert!(
        replays
            .iter()
            .all(|r| r.outcome == Err(DropReason::Replayed)),
        "{replays:?}"
    );
    let fresh = batch(&mut rig, 5);
    let got = rig.receive(&fresh);
    assert!(got.iter().all(|r| matches!(
        r.outcome,
        Ok(Received::Inner {
            path: Path::Software,
            ..
        })
    )));

    // Software -> card: what software accepted is refused by the card.
    assert!(rig.engine.move_to_card(GCM_IN, Direction::In));
    let replays = rig.receive(&[fresh[0].clone(), before[0].clone(), during[19].clone()]);
    assert_eq!(replays[0].outcome, Err(DropReason::Replayed));
    assert!(
        matches!(
            replays[1].outcome,
            Err(DropReason::Replayed | DropReason::Stale)
        ),
        "{:?}",
        replays[1]
    );
    assert_eq!(replays[2].outcome, Err(DropReason::Replayed));
    let after = batch(&mut rig, 5);
    let got = rig.receive(&after);
    assert!(got.iter().all(|r| matches!(
        r.outcome,
        Ok(Received::Inner {
            path: Path::Card,
            ..
        })
    )));
}

#[test]
fn software_sas_and_the_card_share_the_port_in_order() {
    let mut rig = rig("");
    let frames: Vec<Vec<u8>> = (0..30)
        .map(|i| rig.peer_frame(if i % 3 == 0 { NET_CBC_IN } else { NET_GCM_IN }, i))
        .collect();
    let got = rig.receive(&frames);
    assert_eq!(got.len(), 30);
    for (i, r) in got.iter().enumerate() {
        let Ok(Received::Inner { path, packet, .. }) = &r.outcome else {
            panic!("frame {i}: {:?}", r.outcome);
        };
        let want = if i % 3 == 0 {
            Path::Software
        } else {
            Path::Card
        };
        assert_eq!(*path, want, "frame {i}");
        assert_eq!(
            espo_harness::validate::traffic::identity(packet),
            Some(i as u32),
            "in order"
        );
    }
}
