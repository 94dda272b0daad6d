//! Traffic in both directions between two cards cabled back to back, ring wraparound,
//! full rings and backpressure.
#![cfg(feature = "model")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::bus::TestBus;
use common::*;
use espo_driver::card::{CardConfig, RxPacket, TxAction, TxOutcome, TxRequest};
use espo_driver::model::{ModelDevice, ModelOptions, Pacing};
use espo_fpga::{Counter, Status};
use espo_model::{MemLink, ModelParams};

/// Card A sends through SA `out_index`, card B receives through SA `in_index`.
fn tunnel(
    a: &mut espo_driver::Card,
    b: &mut espo_driver::Card,
    spi: u32,
    out_index: u32,
    in_index: u32,
) {
    a.sa_write(out_index, &gcm_sa(true, spi), None).unwrap();
    b.sa_write(in_index, &gcm_sa(false, spi), None).unwrap();
}

#[test]
fn encapsulated_both_ways_and_delivered_decapsulated() {
    for params in [ModelParams::zero_latency(), ModelParams::default()] {
        let (mut a, _ha, mut b, _hb) = back_to_back(params, CardConfig::default());
        tunnel(&mut a, &mut b, 0x100, 0, 10);
        tunnel(&mut b, &mut a, 0x200, 1, 11);
        let ab: Vec<_> = (0..40).map(|i| frame(60 + 17 * i, i as u16)).collect();
        let ba: Vec<_> = (0..25)
            .map(|i| frame(1400 - 9 * i, 1000 + i as u16))
            .collect();
        let sent_ab = send_all(
            &mut a,
            0,
            &requests(&ab, 0, TxAction::Encap { sa_index: 0 }),
        );
        let sent_ba = send_all(
            &mut b,
            0,
            &requests(&ba, 500, TxAction::Encap { sa_index: 1 }),
        );
        assert!(
            sent_ab
                .iter()
                .all(|d| matches!(d.outcome, TxOutcome::Sent { .. }))
        );
        assert_eq!(
            sent_ab.iter().map(|d| d.tag).collect::<Vec<_>>(),
            (0..40).collect::<Vec<_>>(),
            "completions in submission order, with their tags"
        );
        assert!(sent_ba.iter().all(|d| d.sa_index == Some(1)));
        let got_b = receive(&mut b, 0, ab.len(), Duration::from_millis(5));
        let got_a = receive(&mut a, 0, ba.len(), Duration::from_millis(5));
        for (got, sent, sa) in [(&got_b, &ab, 10), (&got_a, &ba, 11)] {
            assert_eq!(got.len(), sent.len());
            for (i, (p, f)) in got.iter().zip(sent.iter()).enumerate() {
                assert_eq!(p.status, Status::Ok);
                assert!(p.decapsulated && !p.truncated);
                assert_eq!(p.sa_index, Some(sa));
                assert_eq!(p.seq, i as u64 + 1);
                assert_eq!(&p.data[14..], &f[14..], "inner packet intact");
            }
        }
        assert_eq!(b.sa_rx_seq_high(10), Some(40));
        assert_eq!(b.stats().bad.total() + a.stats().bad.total(), 0);
    }
}

#[test]
fn bypass_frames_pass_untouched_and_unknown_esp_is_delivered_as_received() {
    let (mut a, _ha, mut b, _hb) = back_to_back(ModelParams::zero_latency(), CardConfig::default());
    a.sa_write(0, &gcm_sa(true, 0x777), None).unwrap();
    let plain = vec![frame(80, 1), frame(1500, 2)];
    let esp = vec![frame(90, 3)];
    send_all(&mut a, 0, &requests(&plain, 0, TxAction::Bypass));
    send_all(
        &mut a,
        0,
        &requests(&esp, 10, TxAction::Encap { sa_index: 0 }),
    );
    let got = receive(&mut b, 0, 3, Duration::from_millis(1));
    assert_eq!(got.len(), 3);
    assert_eq!((got[0].status, &got[0].data), (Status::Bypass, &plain[0]));
    assert_eq!((got[1].status, &got[1].data), (Status::Bypass, &plain[1]));
    assert_eq!(got[2].status, Status::NoSa, "no inbound SA on B");
    assert_eq!((got[2].spi, got[2].seq, got[2].sa_index), (0x777, 0, None));
    assert_eq!(got[2].data.len(), usize::from(got[2].wire_len));
}

#[test]
fn rings_wrap_many_times_without_losing_or_reordering() {
    let config = small_rings();
    let (mut a, _ha, mut b, hb) = back_to_back(ModelParams::default(), config);
    tunnel(&mut a, &mut b, 0x300, 2, 3);
    let frames: Vec<_> = (0..300).map(|i| frame(64 + (i % 50), i as u16)).collect();
    let reqs = requests(&frames, 0, TxAction::Encap { sa_index: 2 });
    let mut done = Vec::new();
    let mut got: Vec<RxPacket> = Vec::new();
    let mut batch = vec![RxPacket::default(); 7];
    let mut at = 0;
    while got.len() < frames.len() {
        if at < reqs.len() {
            // Odd batch sizes, so that batches straddle the ring's end.
            let end = (at + 5).min(reqs.len());
            at += a.tx_batch(0, &reqs[at..end]).unwrap();
        }
        a.tx_completions(0, &mut done).unwrap();
        let k = b.rx_batch(0, &mut batch).unwrap();
        got.extend(batch.iter().take(k).cloned());
        assert!(a.now() < Duration::from_secs(1), "stuck");
    }
    while a.tx_outstanding(0).unwrap() > 0 {
        a.tx_completions(0, &mut done).unwrap();
    }
    assert_eq!(done.len(), 300);
    assert!(done.iter().enumerate().all(|(i, d)| d.tag == i as u64));
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.seq, i as u64 + 1);
        assert_eq!(&p.data[14..], &frames[i][14..]);
    }
    assert_eq!(hb.counter(Counter::RxDecapOk), 300);
}

#[test]
fn a_full_tx_ring_takes_nothing_more_until_completions_are_taken() {
    // External pacing: the card does nothing until the test runs it.
    let dev = ModelDevice::new(ModelOptions {
        params: ModelParams::zero_latency(),
        pacing: Pacing::External,
        ..ModelOptions::default()
    });
    let model = dev.handle();
    let mut card = espo_driver::Card::open(std::sync::Arc::new(dev), small_rings()).unwrap();
    let frames: Vec<_> = (0..40).map(|i| frame(64, i)).collect();
    let reqs = requests(&frames, 0, TxAction::Bypass);
    assert_eq!(
        card.tx_batch(0, &reqs).unwrap(),
        16,
        "a 16-entry ring takes 16"
    );
    assert_eq!(card.tx_batch(0, &reqs[16..]).unwrap(), 0);
    assert_eq!(card.stats().tx_ring_full, 1);
    assert_eq!(card.tx_free(0).unwrap(), 0);
    model.run_until_idle();
    // The card has completed all 16, but the slots are free only once taken.
    assert_eq!(card.tx_batch(0, &reqs[16..]).unwrap(), 0);
    let mut done = Vec::new();
    assert_eq!(card.tx_completions(0, &mut done).unwrap(), 16);
    assert_eq!(card.tx_batch(0, &reqs[16..]).unwrap(), 16);
    model.run_until_idle();
    assert_eq!(card.tx_completions(0, &mut done).unwrap(), 16);
    let tags: Vec<_> = done.iter().map(|d| d.tag).collect();
    assert_eq!(tags, (0..32).collect::<Vec<_>>());
}

#[test]
fn a_receiver_that_stops_reading_pauses_the_link_and_loses_nothing() {
    let (link, tap) = MemLink::pair();
    let (mut card, model) = card_with(
        ModelOptions::with_params(ModelParams::zero_latency()),
        small_rings(),
    );
    model.attach_link(Box::new(link));
    for i in 0..100u16 {
        tap.send_bytes(&frame(100, i));
    }
    // Nobody reads: the card fills its 16 buffers and its port FIFO, then pauses.
    model.advance(100_000);
    assert_eq!(model.counter(Counter::RxFrames), 16);
    assert!(
        tap.pending() + 16 + 256 >= 100,
        "the rest wait in the link or the FIFO"
    );
    let got = receive(&mut card, 0, 100, Duration::from_millis(10));
    assert_eq!(got.len(), 100);
    let ids: HashSet<u16> = got
        .iter()
        .map(|p| u16::from_be_bytes([p.data[18], p.data[19]]))
        .collect();
    assert_eq!(ids.len(), 100, "every frame, once");
    assert!(model.counter(Counter::RxPauseCycles) > 0);
}

#[test]
fn an_invalid_batch_submits_nothing() {
    let (mut card, _model) = card();
    let ok = frame(64, 0);
    let short = vec![0u8; 10];
    let reqs = vec![
        TxRequest {
            tag: 1,
            frame: &ok,
            action: TxAction::Bypass,
        },
        TxRequest {
            tag: 2,
            frame: &short,
            action: TxAction::Bypass,
        },
    ];
    let err = card.tx_batch(0, &reqs).unwrap_err();
    assert!(matches!(
        err,
        espo_driver::CardError::TxRequest { position: 1, .. }
    ));
    let big = vec![0u8; 2049];
    let bad_sa = [TxRequest {
        tag: 3,
        frame: &ok,
        action: TxAction::Encap { sa_index: 4096 },
    }];
    assert!(card.tx_batch(0, &bad_sa).is_err());
    let too_big = [TxRequest {
        tag: 4,
        frame: &big,
        action: TxAction::Bypass,
    }];
    assert!(card.tx_batch(0, &too_big).is_err());
    assert_eq!(card.tx_outstanding(0).unwrap(), 0);
    assert_eq!(card.stats().tx_submitted, 0);
}

#[test]
fn rx_buffers_smaller_than_the_frame_truncate_and_say_so() {
    let (a_end, b_end) = MemLink::pair();
    let (mut a, ha) = card();
    let small = CardConfig {
        buffer_bytes: 256,
        ..CardConfig::default()
    };
    let (mut b, hb) = card_with(
        ModelOptions::with_params(ModelParams::zero_latency()),
        small,
    );
    ha.attach_link(Box::new(a_end));
    hb.attach_link(Box::new(b_end));
    tunnel(&mut a, &mut b, 0x500, 0, 0);
    let plain = vec![frame(600, 1)];
    send_all(&mut a, 0, &requests(&plain, 0, TxAction::Bypass));
    let inner = vec![frame(400, 2)];
    send_all(
        &mut a,
        0,
        &requests(&inner, 1, TxAction::Encap { sa_index: 0 }),
    );
    let got = receive(&mut b, 0, 2, Duration::from_millis(1));
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].status, got[0].truncated, got[0].wire_len),
        (Status::Bypass, true, 614)
    );
    assert_eq!(got[0].data, plain[0][..256]);
    assert_eq!(
        (got[1].status, got[1].truncated, got[1].decapsulated),
        (Status::TooBig, true, true)
    );
    assert_eq!(got[1].data[14..], inner[0][14..256]);
    // A frame longer than the sender's own buffer is refused before submission.
    let long = vec![frame(300, 3)];
    assert!(
        b.tx_batch(0, &requests(&long, 9, TxAction::Bypass))
            .is_err()
    );
}

#[test]
fn steady_state_reads_no_register_and_rings_one_doorbell_per_batch() {
    let (link, tap) = MemLink::pair();
    let dev = ModelDevice::with_params(ModelParams::zero_latency());
    let model = dev.handle();
    model.attach_link(Box::new(link));
    let (bus, control) = TestBus::new(dev);
    let config = CardConfig {
        health_interval: None,
        ..CardConfig::default()
    };
    let mut card = espo_driver::Card::open(std::sync::Arc::new(bus), config).unwrap();
    card.sa_write(0, &gcm_sa(true, 0x900), None).unwrap();
    let frames: Vec<_> = (0..32).map(|i| frame(64, i)).collect();
    let reqs = requests(&frames, 0, TxAction::Encap { sa_index: 0 });
    let mut rx = vec![RxPacket::default(); 32];
    let (reads, accesses) = (control.reads(), control.accesses());
    let mut events = Vec::new();
    for _ in 0..10 {
        assert_eq!(card.tx_batch(0, &reqs).unwrap(), 32);
        model.run_until_idle();
        let mut done = Vec::new();
        assert_eq!(card.tx_completions(0, &mut done).unwrap(), 32);
        for f in &frames {
            tap.send_bytes(f);
        }
        model.run_until_idle();
        assert_eq!(card.rx_batch(0, &mut rx).unwrap(), 32);
        card.service(&mut events).unwrap();
    }
    assert_eq!(control.reads(), reads, "no MMIO read in steady state");
    assert_eq!(
        control.accesses() - accesses,
        10 * 4,
        "per round: TXQ_TAIL, TXCQ_HEAD, RXCQ_HEAD, RXQ_TAIL"
    );
    assert!(events.is_empty());
}
