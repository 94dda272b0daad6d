//! Every fault the model injects, and the recovery that follows: the caller learns exactly
//! which submitted packets did not complete, and no sequence number is used twice.
#![cfg(feature = "model")]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::bus::TestBus;
use common::*;
use espo_driver::card::{
    BadCompletion, Card, CardConfig, CardError, CardEvent, CardState, Fault, FaultReport,
    FaultScope, SaProgram, Taken, TxAction, TxDone, TxOutcome,
};
use espo_driver::model::{ModelDevice, ModelOptions};
use espo_fpga::DmaUnit;
use espo_model::{FaultKind, FaultTrigger, MemLink, ModelParams};

/// Polls completions and services the card until a fault is reported (or the device clock
/// passes a second).
fn run_until_fault(card: &mut Card, queues: u16, done: &mut Vec<TxDone>) -> Vec<Fault> {
    let mut events = Vec::new();
    let mut frames = vec![espo_driver::card::RxPacket::default(); 8];
    loop {
        for q in 0..queues {
            card.tx_completions(q, done).unwrap();
            // Polling RX moves the model's clock on even with nothing outstanding.
            let _ = card.rx_batch(q, &mut frames);
        }
        card.service(&mut events).unwrap();
        let faults: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                CardEvent::Fault(f) => Some(*f),
                _ => None,
            })
            .collect();
        if !faults.is_empty() {
            return faults;
        }
        assert!(card.now() < Duration::from_secs(1), "no fault reported");
    }
}

fn tags(done: &[TxDone]) -> BTreeSet<u64> {
    done.iter().map(|d| d.tag).collect()
}

fn not_completed(report: &FaultReport) -> Vec<(u64, Taken)> {
    report
        .not_completed
        .iter()
        .map(|n| (n.tag, n.taken))
        .collect()
}

/// Every tag submitted is either completed (before or during recovery) or reported not
/// completed — exactly once.
fn assert_accounted(submitted: u64, done: &[TxDone], report: &FaultReport) {
    let mut seen = BTreeSet::new();
    for t in done
        .iter()
        .map(|d| d.tag)
        .chain(report.completed.iter().map(|(_, d)| d.tag))
        .chain(report.not_completed.iter().map(|n| n.tag))
    {
        assert!(seen.insert(t), "tag {t} accounted twice");
    }
    assert_eq!(seen, (0..submitted).collect(), "every tag accounted for");
}

#[test]
fn dma_error_stops_one_queue_and_names_the_packets_never_taken() {
    let (mut card, model) = card();
    model.inject(FaultKind::DmaError, FaultTrigger::AtPacket(5));
    let frames: Vec<_> = (0..10).map(|i| frame(100, i)).collect();
    assert_eq!(
        card.tx_batch(0, &requests(&frames, 0, TxAction::Bypass))
            .unwrap(),
        10
    );
    let mut done = Vec::new();
    let faults = run_until_fault(&mut card, 1, &mut done);
    assert!(matches!(
        faults[0],
        Fault::DmaFault {
            queue: Some(0),
            unit: DmaUnit::TxDescRead,
            ..
        }
    ));
    assert!(matches!(
        card.tx_batch(0, &requests(&frames[..1], 99, TxAction::Bypass)),
        Err(CardError::NeedsRecovery)
    ));
    let report = card.quiesce().unwrap();
    assert_eq!(report.scope, FaultScope::Queue(0));
    assert_accounted(10, &done, &report);
    let completed: BTreeSet<u64> = tags(&done)
        .union(&report.completed.iter().map(|(_, d)| d.tag).collect())
        .copied()
        .collect();
    assert_eq!(completed, (0..4).collect());
    assert_eq!(
        not_completed(&report),
        (4..10).map(|t| (t, Taken::No)).collect::<Vec<_>>(),
        "the faulting descriptor and everything after it, never taken"
    );
    assert!(report.sas.is_empty(), "the SA table was not touched");
    assert!(card.reinit(&[]).unwrap().is_empty());
    assert_eq!(card.state(), CardState::Running);
    // Never taken, so safe to send again: and they go.
    let again = send_all(&mut card, 0, &requests(&frames[4..], 4, TxAction::Bypass));
    assert_eq!(tags(&again), (4..10).collect());
    assert!(again.iter().all(|d| d.outcome == TxOutcome::SentBypass));
    assert_eq!(card.stats().recoveries, 1);
}

#[test]
fn a_fault_on_one_queue_leaves_the_others_running() {
    let config = CardConfig {
        queue_pairs: 2,
        ..small_rings()
    };
    let (mut card, model) = card_with(
        ModelOptions::with_params(ModelParams::zero_latency()),
        config,
    );
    model.inject(FaultKind::DmaError, FaultTrigger::AtPacket(1));
    let f = vec![frame(64, 0)];
    card.tx_batch(1, &requests(&f, 0, TxAction::Bypass))
        .unwrap();
    let mut done = Vec::new();
    let faults = run_until_fault(&mut card, 2, &mut done);
    assert!(matches!(faults[0], Fault::DmaFault { queue: Some(1), .. }));
    let on_zero = send_all(&mut card, 0, &requests(&f, 7, TxAction::Bypass));
    assert_eq!(
        on_zero[0].outcome,
        TxOutcome::SentBypass,
        "queue 0 unaffected"
    );
    let report = card.quiesce().unwrap();
    assert_eq!(report.scope, FaultScope::Queue(1));
    assert_eq!(not_completed(&report), vec![(0, Taken::No)]);
    card.reinit(&[]).unwrap();
    assert_eq!(
        send_all(&mut card, 1, &requests(&f, 8, TxAction::Bypass)).len(),
        1
    );
}

#[test]
fn engine_hang_reads_back_exact_state_then_resets() {
    let (mut card, model) = card_with(ModelOptions::default(), CardConfig::default());
    let mut sa = gcm_sa(true, 0x51);
    sa.seq = 1000;
    card.sa_write(4, &sa, None).unwrap();
    card.sa_write(5, &gcm_sa(false, 0x52), None).unwrap();
    model.inject(FaultKind::EngineHang, FaultTrigger::AtPacket(20));
    let frames: Vec<_> = (0..64).map(|i| frame(300, i)).collect();
    assert_eq!(
        card.tx_batch(0, &requests(&frames, 0, TxAction::Encap { sa_index: 4 }))
            .unwrap(),
        64
    );
    let mut done = Vec::new();
    let faults = run_until_fault(&mut card, 1, &mut done);
    assert_eq!(faults, vec![Fault::EngineHang]);
    let report = card.quiesce().unwrap();
    assert_eq!(report.scope, FaultScope::Card);
    assert_accounted(64, &done, &report);
    let all_done: Vec<TxDone> = done
        .iter()
        .copied()
        .chain(report.completed.iter().map(|(_, d)| *d))
        .collect();
    let last_seq = all_done
        .iter()
        .map(|d| match d.outcome {
            TxOutcome::Sent { seq } => seq,
            other => panic!("{other:?}"),
        })
        .max()
        .unwrap_or(1000);
    let taken_unknown = report
        .not_completed
        .iter()
        .filter(|n| n.taken == Taken::Unknown)
        .count() as u64;
    let never_taken = report
        .not_completed
        .iter()
        .filter(|n| n.taken == Taken::No)
        .count();
    assert!(never_taken > 0, "the hung card stops taking descriptors");
    assert_eq!(all_done.len() + report.not_completed.len(), 64);
    let out = report.sas.iter().find(|s| s.index == 4).unwrap();
    let read_back = out
        .read_back
        .as_ref()
        .expect("the admin queue still answers");
    assert_eq!(
        read_back.seq,
        last_seq + taken_unknown,
        "every descriptor taken used exactly one number"
    );
    assert!(out.seq_upper_bound.unwrap() >= read_back.seq);
    let inbound = report.sas.iter().find(|s| s.index == 5).unwrap();
    assert!(inbound.read_back.as_ref().unwrap().valid);
    // Re-initialise with the outbound SA continuing from its read-back.
    let results = card
        .reinit(&[SaProgram {
            index: 4,
            entry: &sa,
            state: Some(read_back),
        }])
        .unwrap();
    assert!(results[0].1.is_ok());
    let next = send_all(
        &mut card,
        0,
        &requests(&frames[..1], 100, TxAction::Encap { sa_index: 4 }),
    );
    assert_eq!(
        next[0].outcome,
        TxOutcome::Sent {
            seq: read_back.seq + 1
        },
        "no sequence number reused"
    );
    assert_eq!(
        card.sa_direction(5),
        None,
        "not re-programmed: gone after the reset"
    );
}

#[test]
fn icv_engine_error_fails_one_packet_without_a_recovery() {
    let (mut card, model) = card();
    card.sa_write(0, &gcm_sa(true, 0x61), None).unwrap();
    model.inject(FaultKind::IcvEngineError, FaultTrigger::AtPacket(2));
    let frames: Vec<_> = (0..3).map(|i| frame(100, i)).collect();
    let done = send_all(
        &mut card,
        0,
        &requests(&frames, 0, TxAction::Encap { sa_index: 0 }),
    );
    let outcomes: Vec<_> = done.iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            TxOutcome::Sent { seq: 1 },
            TxOutcome::EngineError { seq: 2 },
            TxOutcome::Sent { seq: 3 }
        ]
    );
    let mut events = Vec::new();
    card.service(&mut events).unwrap();
    assert_eq!(events, vec![CardEvent::IcvEngineError { sa_index: 0 }]);
    assert_eq!(card.state(), CardState::Running);
}

#[test]
fn surprise_reset_is_found_by_the_hang_watch_and_every_packet_accounted() {
    let config = CardConfig {
        hang_timeout: Duration::from_millis(2),
        health_interval: None,
        ..CardConfig::default()
    };
    let (mut card, model) = card_with(ModelOptions::default(), config);
    let mut sa = gcm_sa(true, 0x71);
    sa.seq = 50;
    card.sa_write(0, &sa, None).unwrap();
    let frames: Vec<_> = (0..32).map(|i| frame(1000, i)).collect();
    card.tx_batch(0, &requests(&frames, 0, TxAction::Encap { sa_index: 0 }))
        .unwrap();
    let now = model.now_cycles();
    model.inject(FaultKind::SurpriseReset, FaultTrigger::AtCycle(now + 300));
    let mut done = Vec::new();
    let faults = run_until_fault(&mut card, 1, &mut done);
    assert_eq!(faults, vec![Fault::UnexpectedReset]);
    assert!(done.len() < 32);
    let report = card.quiesce().unwrap();
    assert_eq!(report.scope, FaultScope::Card);
    assert_accounted(32, &done, &report);
    assert!(report.completed.is_empty());
    assert!(
        report
            .not_completed
            .iter()
            .all(|n| n.taken == Taken::Unknown),
        "the card forgot what it took"
    );
    let out = &report.sas[0];
    assert_eq!(out.read_back, None, "the SA table was wiped");
    let last = done
        .iter()
        .filter_map(|d| match d.outcome {
            TxOutcome::Sent { seq } => Some(seq),
            _ => None,
        })
        .max()
        .unwrap_or(50);
    assert_eq!(
        out.seq_upper_bound,
        Some(last + report.not_completed.len() as u64)
    );
    let bound = out.seq_upper_bound.unwrap();
    let state = espo_fpga::SaState {
        seq: bound,
        valid: true,
        ..Default::default()
    };
    card.reinit(&[SaProgram {
        index: 0,
        entry: &sa,
        state: Some(&state),
    }])
    .unwrap();
    let next = send_all(
        &mut card,
        0,
        &requests(&frames[..1], 40, TxAction::Encap { sa_index: 0 }),
    );
    assert_eq!(next[0].outcome, TxOutcome::Sent { seq: bound + 1 });
}

#[test]
fn surprise_removal_stops_every_bar_access_and_reports_what_was_outstanding() {
    let dev = ModelDevice::with_params(ModelParams::default());
    let model = dev.handle();
    let (bus, control) = TestBus::new(dev);
    let config = CardConfig {
        hang_timeout: Duration::from_millis(1),
        ..CardConfig::default()
    };
    let mut card = Card::open(Arc::new(bus), config).unwrap();
    card.sa_write(9, &gcm_sa(true, 0x81), None).unwrap();
    let frames: Vec<_> = (0..20).map(|i| frame(500, i)).collect();
    let mut done = send_all(
        &mut card,
        0,
        &requests(&frames[..5], 0, TxAction::Encap { sa_index: 9 }),
    );
    card.tx_batch(
        0,
        &requests(&frames[5..], 5, TxAction::Encap { sa_index: 9 }),
    )
    .unwrap();
    model.inject(
        FaultKind::SurpriseRemoval,
        FaultTrigger::AtCycle(model.now_cycles() + 1),
    );
    let faults = run_until_fault(&mut card, 1, &mut done);
    assert_eq!(faults, vec![Fault::Removed]);
    assert_eq!(card.state(), CardState::Lost { accounted: false });
    let before = control.accesses();
    let report = card.quiesce().unwrap();
    assert_eq!(report.scope, FaultScope::Lost);
    assert_accounted(20, &done, &report);
    assert!(
        report
            .not_completed
            .iter()
            .all(|n| n.taken == Taken::Unknown)
    );
    assert_eq!(
        report.sas[0].seq_upper_bound,
        Some(20),
        "5 sent + 15 possibly used"
    );
    assert!(matches!(card.reinit(&[]), Err(CardError::Removed)));
    assert!(matches!(
        card.tx_batch(0, &requests(&frames[..1], 50, TxAction::Bypass)),
        Err(CardError::Removed)
    ));
    assert!(matches!(card.sa_read(9), Err(CardError::Removed)));
    let mut events = Vec::new();
    card.service(&mut events).unwrap();
    assert!(events.is_empty());
    drop(card);
    assert_eq!(
        control.accesses(),
        before,
        "no BAR access once the card is gone"
    );
}

#[test]
fn a_lost_doorbell_is_a_hung_queue_whose_packets_were_never_taken() {
    let dev = ModelDevice::with_params(ModelParams::zero_latency());
    let (bus, control) = TestBus::new(dev);
    let config = CardConfig {
        hang_timeout: Duration::from_millis(1),
        health_interval: None,
        ..CardConfig::default()
    };
    let mut card = Card::open(Arc::new(bus), config).unwrap();
    let tail = espo_fpga::regs::queue::TXQ_TAIL.addr_in(0);
    control.swallow_writes(u64::from(tail));
    let frames: Vec<_> = (0..6).map(|i| frame(64, i)).collect();
    card.tx_batch(0, &requests(&frames, 0, TxAction::Bypass))
        .unwrap();
    let mut done = Vec::new();
    let faults = run_until_fault(&mut card, 1, &mut done);
    assert_eq!(faults, vec![Fault::QueueHung { queue: 0 }]);
    let report = card.quiesce().unwrap();
    assert_eq!(report.scope, FaultScope::Queue(0));
    assert_eq!(
        not_completed(&report),
        (0..6).map(|t| (t, Taken::No)).collect::<Vec<_>>()
    );
    control.clear();
    card.reinit(&[]).unwrap();
    assert_eq!(
        send_all(&mut card, 0, &requests(&frames, 0, TxAction::Bypass)).len(),
        6
    );
}

#[test]
fn garbage_tx_completions_are_counted_and_never_trusted() {
    let (mut card, model) = card();
    card.sa_write(0, &gcm_sa(true, 0x91), None).unwrap();
    model.inject(FaultKind::CorruptCompletion, FaultTrigger::AtPacket(3));
    let frames: Vec<_> = (0..6).map(|i| frame(100, i)).collect();
    let done = send_all(
        &mut card,
        0,
        &requests(&frames, 0, TxAction::Encap { sa_index: 0 }),
    );
    assert_eq!(tags(&done), (0..6).collect(), "every tag still comes back");
    let bad: Vec<_> = done
        .iter()
        .filter(|d| matches!(d.outcome, TxOutcome::Unverified(_)))
        .map(|d| d.tag)
        .collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(card.stats().bad.total(), 1);
    // The packet with the garbage completion may have used a number: the bound says so.
    assert_eq!(card.sa_seq_upper_bound(0), Some(6 + 1));
    let ok = done
        .iter()
        .filter(|d| matches!(d.outcome, TxOutcome::Sent { .. }))
        .count();
    assert_eq!(ok, 5);
}

#[test]
fn garbage_rx_completions_drop_their_frame_and_nothing_else() {
    let (link, tap) = MemLink::pair();
    let (mut card, model) = card();
    model.attach_link(Box::new(link));
    model.inject(FaultKind::CorruptCompletion, FaultTrigger::AtPacket(2));
    for i in 0..5u16 {
        tap.send_bytes(&frame(120, i));
    }
    let got = receive(&mut card, 0, 4, Duration::from_millis(1));
    let ids: Vec<u16> = got
        .iter()
        .map(|p| u16::from_be_bytes([p.data[18], p.data[19]]))
        .collect();
    assert_eq!(ids.len(), 4, "one frame dropped: {ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "the rest in order: {ids:?}"
    );
    let bad = card.stats().bad;
    assert_eq!(bad.total(), 1);
    assert_eq!(bad.nonzero().count(), 1);
    assert_ne!(
        bad.get(BadCompletion::DescIndex) + bad.get(BadCompletion::UnknownStatus),
        0
    );
    // The ring goes on: more frames arrive normally.
    tap.send_bytes(&frame(120, 9));
    assert_eq!(receive(&mut card, 0, 1, Duration::from_millis(1)).len(), 1);
}

#[test]
fn a_wider_fault_while_one_queue_is_stopped_needs_a_new_quiesce() {
    let config = CardConfig {
        queue_pairs: 2,
        health_interval: Some(Duration::from_micros(50)),
        ..small_rings()
    };
    let (mut card, model) = card_with(ModelOptions::default(), config);
    model.inject(FaultKind::DmaError, FaultTrigger::AtPacket(1));
    let f: Vec<_> = (0..4).map(|i| frame(64, i)).collect();
    card.tx_batch(1, &requests(&f[..1], 0, TxAction::Bypass))
        .unwrap();
    let mut done = Vec::new();
    run_until_fault(&mut card, 2, &mut done);
    let first = card.quiesce().unwrap();
    assert_eq!(first.scope, FaultScope::Queue(1));
    // Queue 0 has packets in flight when the card resets itself.
    card.tx_batch(0, &requests(&f[1..], 1, TxAction::Bypass))
        .unwrap();
    model.inject(
        FaultKind::SurpriseReset,
        FaultTrigger::AtCycle(model.now_cycles()),
    );
    let faults = run_until_fault(&mut card, 1, &mut done);
    assert_eq!(faults, vec![Fault::UnexpectedReset]);
    assert!(matches!(card.reinit(&[]), Err(CardError::NotQuiesced)));
    let second = card.quiesce().unwrap();
    assert_eq!(second.scope, FaultScope::Card);
    let mut all: Vec<u64> = done.iter().map(|d| d.tag).collect();
    for r in [&first, &second] {
        all.extend(r.completed.iter().map(|(_, d)| d.tag));
        all.extend(r.not_completed.iter().map(|n| n.tag));
    }
    all.sort_unstable();
    assert_eq!(
        all,
        vec![0, 1, 2, 3],
        "every packet of both queues accounted once"
    );
    card.reinit(&[]).unwrap();
    assert_eq!(
        send_all(&mut card, 0, &requests(&f[..1], 9, TxAction::Bypass)).len(),
        1
    );
}
