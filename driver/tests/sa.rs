//! SA programming through the admin queue and exact read-back (datasheet §8).
#![cfg(feature = "model")]

mod common;

use std::sync::Arc;

use common::bus::TestBus;
use common::*;
use espo_driver::card::{
    BadCompletion, Card, CardConfig, CardError, SaDirection, TxAction, TxOutcome,
};
use espo_driver::model::ModelDevice;
use espo_fpga::{AlgId, SaState, Status};
use espo_model::ModelParams;

#[test]
fn write_read_back_and_export_an_outbound_sa() {
    let (mut card, _model) = card();
    let mut sa = gcm_sa(true, 0x1001);
    sa.seq = 41;
    card.sa_write(7, &sa, None).unwrap();
    assert_eq!(card.sa_direction(7), Some(SaDirection::Outbound));
    let frames: Vec<_> = (0..5).map(|i| frame(100, i)).collect();
    let done = send_all(
        &mut card,
        0,
        &requests(&frames, 0, TxAction::Encap { sa_index: 7 }),
    );
    let seqs: Vec<_> = done
        .iter()
        .map(|d| match d.outcome {
            TxOutcome::Sent { seq } => seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, vec![42, 43, 44, 45, 46]);
    let state = card.sa_read(7).unwrap();
    assert!(state.valid);
    assert_eq!(state.seq, 46);
    assert_eq!(state.packets, 5);
    assert_eq!(state.bytes, 5 * 100, "inner-packet bytes, exact");
    assert_eq!(card.sa_seq_upper_bound(7), Some(46));
    // Export: the final state, and the entry is gone.
    let exported = card.sa_export(7).unwrap();
    assert_eq!(exported.seq, 46);
    assert_eq!(card.sa_direction(7), None);
    assert!(!card.sa_read(7).unwrap().valid);
    let refused = send_all(
        &mut card,
        0,
        &requests(&frames[..1], 9, TxAction::Encap { sa_index: 7 }),
    );
    assert_eq!(refused[0].outcome, TxOutcome::Refused(Status::SaInvalid));
}

#[test]
fn import_moves_sequence_and_replay_state_onto_the_card() {
    let (mut card, _model) = card();
    let mut state = SaState {
        seq: (5 << 32) | 0xFFFF_FFF0,
        valid: true,
        ..SaState::default()
    };
    let mut sa = gcm_sa(true, 0x2002);
    sa.esn = true;
    card.sa_write(1, &sa, Some(&state)).unwrap();
    let frames: Vec<_> = (0..2).map(|i| frame(64, i)).collect();
    let done = send_all(
        &mut card,
        0,
        &requests(&frames, 0, TxAction::Encap { sa_index: 1 }),
    );
    assert_eq!(
        done[1].outcome,
        TxOutcome::Sent {
            seq: (5 << 32) | 0xFFFF_FFF2
        },
        "continues from the imported number, ESN high half included"
    );
    // Inbound: window top and bitmap survive the round trip exactly.
    let mut inbound = gcm_sa(false, 0x3003);
    inbound.replay_window = 128;
    state = SaState {
        seq: 1000,
        window: 128,
        valid: true,
        ..SaState::default()
    };
    state.bitmap[0] = 0b1011;
    state.bitmap[15] = 0x80;
    card.sa_write(2, &inbound, Some(&state)).unwrap();
    let back = card.sa_read(2).unwrap();
    assert_eq!(back.seq, 1000);
    assert_eq!(back.window, 128);
    assert_eq!(&back.bitmap[..16], &state.bitmap[..16]);
    assert_eq!(card.sa_rx_seq_high(2), Some(1000));
}

#[test]
fn refusals_name_the_reason() {
    let (mut card, _model) = card();
    let mut cbc = gcm_sa(true, 0x10);
    cbc.alg = Some(AlgId::AesCbc128);
    assert!(matches!(
        card.sa_write(0, &cbc, None),
        Err(CardError::SaRefused {
            op: "SA_WRITE",
            index: 0,
            status: Status::AlgUnsupported
        })
    ));
    let zero_spi = gcm_sa(true, 0);
    assert!(matches!(
        card.sa_write(0, &zero_spi, None),
        Err(CardError::SaRefused {
            status: Status::InvalidField,
            ..
        })
    ));
    assert!(matches!(
        card.sa_write(4096, &gcm_sa(true, 0x11), None),
        Err(CardError::SaIndex {
            index: 4096,
            table_size: 4096
        })
    ));
    assert_eq!(
        card.sa_direction(0),
        None,
        "nothing recorded for a refused SA"
    );
    // Inbound SAs collide on (SPI, destination).
    card.sa_write(1, &gcm_sa(false, 0x20), None).unwrap();
    assert!(matches!(
        card.sa_write(2, &gcm_sa(false, 0x20), None),
        Err(CardError::SaRefused {
            status: Status::InvalidField,
            ..
        })
    ));
    card.admin_nop().unwrap();
}

#[test]
fn invalidate_returns_the_last_sequence_number() {
    let (mut card, _model) = card();
    let mut sa = gcm_sa(true, 0x4004);
    sa.seq = 99;
    card.sa_write(3, &sa, None).unwrap();
    assert_eq!(card.sa_invalidate(3).unwrap(), 99);
    assert!(!card.sa_read(3).unwrap().valid);
}

#[test]
fn a_late_admin_answer_is_counted_and_skipped() {
    let (bus, control) = TestBus::new(ModelDevice::with_params(ModelParams::zero_latency()));
    let config = CardConfig {
        admin_timeout: std::time::Duration::from_micros(100),
        ..CardConfig::default()
    };
    let mut card = Card::open(Arc::new(bus), config).unwrap();
    let tail = u64::from(espo_fpga::regs::admin::ASQ_TAIL.addr());
    control.swallow_writes(tail);
    assert!(matches!(
        card.admin_nop(),
        Err(CardError::AdminTimeout { op: "NOP", .. })
    ));
    control.clear();
    // The next doorbell publishes both commands; the first one's answer comes first.
    card.admin_nop().unwrap();
    assert_eq!(card.stats().bad.get(BadCompletion::AdminCid), 1);
    card.sa_write(0, &gcm_sa(true, 0x55), None).unwrap();
}
