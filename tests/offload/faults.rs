//! Every fault the model injects, mid-stream, with traffic both ways: every packet
//! delivered once or counted, no sequence number used twice, replay protection intact.

use espo_driver::card::{CardConfig, IrqMode};
use espo_driver::model::FaultKind;
use espo_ipsec::counters::DropReason;
use espo_ipsec::spec::Direction;
use espo_offload::{
    CardMode, EngineEvent, Placement, Received, Recovery, SentAs, SoftwareReason, card_config,
};

use super::support::*;

/// Traffic before, across and after a fault of `kind` (striking at the `at`-th packet to
/// enter the card after it is armed); inbound frames accepted before the fault are
/// replayed after it and must be refused.
fn fault_mid_stream(mut rig: Rig, kind: FaultKind, at: u64) -> Rig {
    let mut tag = 0;
    let mut id = 0;
    let mut send = |rig: &mut Rig, n: u64| {
        for _ in 0..n {
            let to = if tag % 4 == 0 {
                NET_CHACHA_OUT
            } else {
                NET_GCM_OUT
            };
            rig.send(tag, to, (tag as usize * 61) % 1400);
            tag += 1;
        }
    };
    let mut frames = |rig: &mut Rig, n: u32| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                id += 1;
                rig.peer_frame(if i % 4 == 0 { NET_CBC_IN } else { NET_GCM_IN }, id)
            })
            .collect()
    };
    send(&mut rig, 30);
    let before = frames(&mut rig, 12);
    let got = rig.receive(&before);
    assert_eq!(
        got.len(),
        before.len(),
        "before the fault every frame comes back"
    );
    assert!(
        got.iter()
            .all(|r| matches!(r.outcome, Ok(Received::Inner { .. }))),
        "{got:?}"
    );
    rig.settle();

    rig.inject_fault(kind, at);
    send(&mut rig, 60);
    let across = frames(&mut rig, 20);
    for f in &across {
        rig.port.send(f);
    }
    rig.settle();
    // Frames of the fault's moment: delivered, counted, or lost inside the card (never
    // handed to espo); never delivered twice.
    let mut across_reports = rig.collect(across.len());
    rig.settle();
    let more = rig.collect(0);
    across_reports.extend(more);
    assert!(
        across_reports.len() <= across.len(),
        "a frame reported twice"
    );

    // After the fault: traffic flows, and what was accepted before is still refused.
    send(&mut rig, 30);
    rig.settle();
    let replays = rig.receive(&[before[1].clone(), before[2].clone(), before[5].clone()]);
    assert_eq!(replays.len(), 3);
    for r in &replays {
        assert!(
            matches!(r.outcome, Err(DropReason::Replayed | DropReason::Stale)),
            "a replay after the fault: {r:?}"
        );
    }
    let after = frames(&mut rig, 8);
    let got = rig.receive(&after);
    assert_eq!(got.len(), 8);
    assert!(
        got.iter()
            .all(|r| matches!(r.outcome, Ok(Received::Inner { .. }))),
        "{got:?}"
    );
    rig.ledger.assert_sound();
    rig
}

fn recoveries(rig: &Rig) -> Vec<Recovery> {
    rig.events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Fault { recovery, .. } => Some(*recovery),
            _ => None,
        })
        .collect()
}

fn on_card(rig: &Rig, spi: u32, dir: Direction) -> bool {
    rig.engine
        .placements()
        .iter()
        .any(|p| p.spi == spi && p.dir == dir && matches!(p.placement, Placement::Card { .. }))
}

#[test]
fn dma_error_stops_a_queue_and_what_the_card_never_took_is_sent_again() {
    let rig = fault_mid_stream(rig(""), FaultKind::DmaError, 10);
    assert_eq!(recoveries(&rig), vec![Recovery::Reinitialised]);
    assert!(
        rig.engine.counters().tx_resent > 0,
        "{:?}",
        rig.engine.counters()
    );
    assert!(on_card(&rig, GCM_OUT, Direction::Out));
    // What was sent again left in the order it came: one SA's numbers rise with the
    // packets' submission order.
    let mut sent: Vec<(u64, u64)> = rig
        .ledger
        .reports
        .iter()
        .filter_map(|(tag, r)| match r {
            Ok(SentAs::Esp { spi, seq, .. }) if *spi == GCM_OUT => Some((*tag, *seq)),
            _ => None,
        })
        .collect();
    sent.sort_unstable();
    assert!(
        sent.windows(2).all(|w| w[0].1 < w[1].1),
        "out of order: {sent:?}"
    );
}

#[test]
fn engine_hang_reads_back_and_reinitialises_with_every_sa() {
    let rig = fault_mid_stream(rig(""), FaultKind::EngineHang, 10);
    assert_eq!(recoveries(&rig), vec![Recovery::Reinitialised]);
    assert!(on_card(&rig, GCM_OUT, Direction::Out) && on_card(&rig, GCM_IN, Direction::In));
}

#[test]
fn icv_engine_error_resends_the_packet_it_hit() {
    let rig = fault_mid_stream(rig(""), FaultKind::IcvEngineError, 3);
    assert!(
        recoveries(&rig).is_empty(),
        "not a fault that stops the card"
    );
    let c = rig.engine.counters();
    assert!(
        c.tx_resent + c.rx_dropped.get(DropReason::DeviceError) >= 1,
        "{c:?}"
    );
}

#[test]
fn surprise_reset_continues_past_every_number_the_card_may_have_used() {
    let rig = fault_mid_stream(rig(""), FaultKind::SurpriseReset, 20);
    assert_eq!(recoveries(&rig), vec![Recovery::Reinitialised]);
    let seqs = rig.ledger.seqs(GCM_OUT);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert!(on_card(&rig, GCM_OUT, Direction::Out));
}

#[test]
fn surprise_removal_moves_everything_to_software_over_the_fallback_wire() {
    let rig = fault_mid_stream(rig(""), FaultKind::SurpriseRemoval, 10);
    assert_eq!(recoveries(&rig), vec![Recovery::CardGone]);
    assert_eq!(rig.engine.mode(), CardMode::Gone);
    assert!(rig.engine.card().is_none());
    for p in rig.engine.placements() {
        assert_eq!(p.placement, Placement::Software);
        if p.spi == GCM_OUT || p.spi == GCM_IN {
            assert_eq!(p.why_software, Some(SoftwareReason::CardGone));
        }
    }
    let c = rig.engine.counters();
    assert!(c.fallbacks >= 2, "{c:?}");
}

#[test]
fn a_dropped_interrupt_costs_nothing_but_time() {
    let config = CardConfig {
        irq: IrqMode::Interrupt {
            coalesce_packets: 4,
            coalesce_cycles: 200,
        },
        ..card_config()
    };
    let (local, peer) = configs("");
    let rig = rig_on(config, &local, &peer, |_| {});
    let rig = fault_mid_stream(rig, FaultKind::DroppedInterrupt, 5);
    assert!(recoveries(&rig).is_empty());
    assert_eq!(rig.engine.counters().tx_fate_unknown, 0);
}

#[test]
fn a_corrupt_completion_is_never_trusted_and_its_packet_never_sent_twice() {
    let rig = fault_mid_stream(rig(""), FaultKind::CorruptCompletion, 5);
    let c = rig.engine.counters();
    assert_eq!(
        c.tx_fate_unknown + c.rx_dropped.get(DropReason::DeviceError),
        1,
        "{c:?}"
    );
}

#[test]
fn repeated_faults_move_every_sa_to_software_and_the_card_carries_frames() {
    let (local, peer) = configs("");
    let mut rig = rig_with(&local, &peer, |o| o.max_recoveries = 1);
    for (round, kind) in [FaultKind::EngineHang, FaultKind::SurpriseReset]
        .into_iter()
        .enumerate()
    {
        rig.inject_fault(kind, 3);
        for t in 0..20 {
            rig.send(1000 * (round as u64 + 1) + t, NET_GCM_OUT, 200);
        }
        rig.settle();
        assert_eq!(recoveries(&rig).len(), round + 1, "{:?}", rig.events);
    }
    assert_eq!(rig.engine.mode(), CardMode::FramesOnly);
    let rig = fault_mid_stream(rig, FaultKind::DmaError, 8);
    assert_eq!(rig.engine.mode(), CardMode::FramesOnly);
    assert_eq!(
        recoveries(&rig),
        vec![
            Recovery::Reinitialised,
            Recovery::SasToSoftware,
            Recovery::Reinitialised
        ],
        "the second fault within the window gives up on offload; later ones only restart"
    );
    for p in rig.engine.placements() {
        assert_eq!(p.placement, Placement::Software, "{p:?}");
    }
    assert!(rig.engine.card().is_some(), "the card still carries frames");
}

#[test]
fn after_a_hang_a_stale_read_back_cannot_make_the_card_reuse_numbers() {
    // A defective card reads back each outbound SA's number as it was written: the host
    // writes the SAs back from its own record of what the card used, not from that.
    let rig = rig("");
    rig.inject_fault(FaultKind::StaleSeqExport, 1);
    let rig = fault_mid_stream(rig, FaultKind::EngineHang, 10);
    assert_eq!(recoveries(&rig), vec![Recovery::Reinitialised]);
    assert!(on_card(&rig, GCM_OUT, Direction::Out));
    let seqs = rig.ledger.seqs(GCM_OUT);
    assert!(seqs.len() > 60, "{}", seqs.len());
}
