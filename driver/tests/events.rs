//! The event queue (datasheet §11): lifetimes counted exactly by the card, sequence-number
//! exhaustion, and events lost to a full ring.
#![cfg(feature = "model")]

mod common;

use std::time::Duration;

use common::*;
use espo_driver::card::{CardConfig, CardEvent, TxAction, TxOutcome};
use espo_driver::model::ModelOptions;
use espo_fpga::Status;
use espo_model::ModelParams;

#[test]
fn soft_and_hard_packet_lifetimes_and_the_sa_stops() {
    let (mut card, _model) = card();
    let mut sa = gcm_sa(true, 0x100);
    sa.soft_packets = 3;
    sa.hard_packets = 5;
    card.sa_write(2, &sa, None).unwrap();
    let frames: Vec<_> = (0..7).map(|i| frame(100, i)).collect();
    let done = send_all(
        &mut card,
        0,
        &requests(&frames, 0, TxAction::Encap { sa_index: 2 }),
    );
    let outcomes: Vec<_> = done.iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes[5..],
        [
            TxOutcome::Refused(Status::SaExpired),
            TxOutcome::Refused(Status::SaExpired)
        ]
    );
    assert_eq!(outcomes[4], TxOutcome::Sent { seq: 5 });
    let mut events = Vec::new();
    card.service(&mut events).unwrap();
    assert_eq!(
        events,
        vec![
            CardEvent::LifetimeSoft {
                sa_index: 2,
                bytes: false,
                packets: true,
                seq: 3
            },
            CardEvent::LifetimeHard {
                sa_index: 2,
                bytes: false,
                packets: true,
                seq: 5
            }
        ]
    );
    let state = card.sa_read(2).unwrap();
    assert!(state.soft_expired && state.hard_expired);
    assert_eq!(state.packets, 5);
    assert_eq!(
        card.sa_seq_upper_bound(2),
        Some(5),
        "refused packets used no number"
    );
}

#[test]
fn byte_lifetime_counts_inner_bytes() {
    let (mut card, _model) = card();
    let mut sa = gcm_sa(true, 0x101);
    sa.soft_bytes = 250;
    card.sa_write(0, &sa, None).unwrap();
    let frames: Vec<_> = (0..3).map(|i| frame(100, i)).collect();
    send_all(
        &mut card,
        0,
        &requests(&frames, 0, TxAction::Encap { sa_index: 0 }),
    );
    let mut events = Vec::new();
    card.service(&mut events).unwrap();
    assert_eq!(
        events,
        vec![CardEvent::LifetimeSoft {
            sa_index: 0,
            bytes: true,
            packets: false,
            seq: 3
        }]
    );
}

#[test]
fn sequence_numbers_never_wrap() {
    let (mut card, _model) = card();
    let mut sa = gcm_sa(true, 0x102);
    sa.seq = u64::from(u32::MAX) - 2;
    card.sa_write(1, &sa, None).unwrap();
    let frames: Vec<_> = (0..4).map(|i| frame(64, i)).collect();
    let done = send_all(
        &mut card,
        0,
        &requests(&frames, 0, TxAction::Encap { sa_index: 1 }),
    );
    let outcomes: Vec<_> = done.iter().map(|d| d.outcome).collect();
    let max = u64::from(u32::MAX);
    assert_eq!(
        outcomes,
        vec![
            TxOutcome::Sent { seq: max - 1 },
            TxOutcome::Sent { seq: max },
            TxOutcome::Refused(Status::SeqExhausted),
            TxOutcome::Refused(Status::SeqExhausted)
        ]
    );
    let mut events = Vec::new();
    card.service(&mut events).unwrap();
    assert_eq!(
        events,
        vec![CardEvent::SeqExhausted {
            sa_index: 1,
            seq: max
        }]
    );
}

#[test]
fn a_full_event_ring_loses_events_and_says_how_many() {
    let config = CardConfig {
        event_log2: 4,
        health_interval: Some(Duration::from_micros(1)),
        ..CardConfig::default()
    };
    let (mut card, _model) = card_with(
        ModelOptions::with_params(ModelParams::zero_latency()),
        config,
    );
    // Twelve SAs expiring on their first packet: 24 events for a 16-entry ring.
    let frames: Vec<_> = (0..12).map(|i| frame(64, i)).collect();
    for i in 0..12u32 {
        let mut sa = gcm_sa(true, 0x200 + i);
        sa.soft_packets = 1;
        sa.hard_packets = 1;
        card.sa_write(i, &sa, None).unwrap();
    }
    for (i, f) in frames.iter().enumerate() {
        send_all(
            &mut card,
            0,
            &requests(
                std::slice::from_ref(f),
                i as u64,
                TxAction::Encap { sa_index: i as u32 },
            ),
        );
    }
    let mut events = Vec::new();
    card.service(&mut events).unwrap();
    let lifetimes = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                CardEvent::LifetimeSoft { .. } | CardEvent::LifetimeHard { .. }
            )
        })
        .count();
    assert_eq!(lifetimes, 16);
    assert!(
        events.contains(&CardEvent::EventsLost { count: 8 }),
        "{events:?}"
    );
    assert_eq!(card.stats().events_lost, 8);
    assert_eq!(
        card.state(),
        espo_driver::card::CardState::Running,
        "not a fault"
    );
}
