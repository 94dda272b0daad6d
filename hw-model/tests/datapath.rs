//! Two model cards back to back over the in-memory link: encapsulation on one,
//! decapsulation on the other, for every inner/outer family, UDP encapsulation, ESN;
//! replay and ICV failures, lifetimes and sequence-number exhaustion.

mod common;
use common::*;
use espo_fpga::{Counter, EventCode, SaEntry, SaState, Status};
use espo_model::{MemLink, ModelParams};

fn pair() -> (Host, Host) {
    let (la, lb) = MemLink::pair();
    let mut a = Host::new(ModelParams::default());
    let mut b = Host::new(ModelParams::default());
    a.model.attach_link(Box::new(la));
    b.model.attach_link(Box::new(lb));
    a.bring_up(2, 6);
    b.bring_up(2, 6);
    (a, b)
}

fn program(a: &mut Host, b: &mut Host, mut sa: SaEntry) {
    sa.outbound = true;
    assert_eq!(a.sa_write(1, &sa, None), Status::Ok);
    sa.outbound = false;
    sa.rx_queue = 1;
    assert_eq!(b.sa_write(9, &sa, None), Status::Ok);
}

fn run(a: &mut Host, b: &mut Host) {
    for _ in 0..4 {
        a.model.run_until_idle();
        b.model.run_until_idle();
    }
}

#[test]
fn every_family_combination_round_trips() {
    for (outer6, udp, esn) in [
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (true, true, true),
    ] {
        let (mut a, mut b) = pair();
        let mut sa = gcm_sa(true, 0x5000, [3; 16], [9, 9, 9, 9]);
        set_outer(&mut sa, outer6, udp);
        sa.esn = esn;
        program(&mut a, &mut b, sa);
        let frames: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    ipv4_frame(40 + i * 37, 0x2a, i as u16, 1)
                } else {
                    ipv6_frame(60 + i * 41, 0x28, 2)
                }
            })
            .collect();
        let posts: Vec<(&[u8], Option<u32>)> =
            frames.iter().map(|f| (f.as_slice(), Some(1))).collect();
        a.post_tx(0, &posts);
        run(&mut a, &mut b);
        let tx = a.tx_completions(0);
        assert_eq!(tx.len(), 20);
        assert!(
            tx.iter()
                .enumerate()
                .all(|(i, c)| c.status == Status::Ok && c.seq == i as u64 + 1)
        );
        let rx = b.rx_completions(1);
        assert_eq!(rx.len(), 20, "outer6 {outer6} udp {udp}");
        for (i, (c, data)) in rx.iter().enumerate() {
            assert_eq!(
                (c.status, c.seq, c.sa_index, c.udp_encap),
                (Status::Ok, i as u64 + 1, 9, udp)
            );
            assert_eq!(data, &frames[i], "inner frame {i} restored");
        }
        let (_, st) = b.sa_read(9);
        let bytes: u64 = frames.iter().map(|f| f.len() as u64 - 14).sum();
        assert_eq!(
            (st.packets, st.bytes, st.seq),
            (20, bytes, 20),
            "exact counters"
        );
        assert_eq!(a.sa_read(1).1.bytes, bytes);
    }
}

/// A card whose port ends at the test.
fn card_with_tap() -> (Host, MemLink) {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(Box::new(l));
    h.bring_up(2, 6);
    (h, tap)
}

#[test]
fn replayed_and_corrupted_packets_are_counted_and_delivered_raw() {
    let (mut a, a_tap) = card_with_tap();
    let (mut b, b_tap) = card_with_tap();
    program(&mut a, &mut b, gcm_sa(true, 0x77, [5; 16], [1; 4]));
    let f = ipv4_frame(200, 0, 1, 3);
    a.post_tx(0, &[(&f, Some(1)), (&f, Some(1))]);
    a.model.run_until_idle();
    let wire: Vec<Vec<u8>> = a_tap.drain().into_iter().map(|f| f.data).collect();
    assert_eq!(wire.len(), 2);
    b_tap.send_bytes(&wire[0]);
    b_tap.send_bytes(&wire[1]);
    b_tap.send_bytes(&wire[0]); // replay
    let mut flipped = wire[1].clone();
    let n = flipped.len();
    flipped[n - 20] ^= 1; // sequence 2 again: refused by the replay pre-check before the ICV
    b_tap.send_bytes(&flipped);
    let mut forged = wire[1].clone();
    forged[14 + 20 + 7] = 3; // a fresh sequence number 3 with a wrong ICV
    b_tap.send_bytes(&forged);
    b.model.run_until_idle();
    let mut rx = b.rx_completions(1);
    rx.extend(b.rx_completions(0));
    let statuses: Vec<Status> = rx.iter().map(|(c, _)| c.status).collect();
    assert_eq!(
        statuses,
        vec![
            Status::Ok,
            Status::Ok,
            Status::Replay,
            Status::Replay,
            Status::IcvFail
        ]
    );
    assert_eq!(rx[4].1, forged, "refused packets are delivered as received");
    assert!(!rx[4].0.decapsulated);
    assert_eq!(b.counter(Counter::RxReplay), 2);
    assert_eq!(b.counter(Counter::RxIcvFail), 1);
    let (_, st) = b.sa_read(9);
    assert_eq!(
        (st.replay_drops, st.icv_failures, st.packets, st.seq),
        (2, 1, 2, 2)
    );
    // A failed ICV does not move the window: the genuine sequence 3 is still accepted.
    a.post_tx(0, &[(&f, Some(1))]);
    a.model.run_until_idle();
    for fr in a_tap.drain() {
        b_tap.send_bytes(&fr.data);
    }
    b.model.run_until_idle();
    let rx = b.rx_completions(1);
    assert_eq!((rx[0].0.status, rx[0].0.seq), (Status::Ok, 3));
}

#[test]
fn soft_and_hard_lifetimes_raise_events_and_stop_the_sa() {
    let (mut a, _tap) = card_with_tap();
    let mut sa = gcm_sa(true, 0x88, [1; 16], [0; 4]);
    sa.soft_packets = 3;
    sa.hard_packets = 5;
    sa.hard_bytes = 1_000_000;
    assert_eq!(a.sa_write(2, &sa, None), Status::Ok);
    let f = ipv4_frame(100, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..7).map(|_| (f.as_slice(), Some(2))).collect();
    a.post_tx(0, &posts);
    a.model.run_until_idle();
    let st: Vec<Status> = a.tx_completions(0).iter().map(|c| c.status).collect();
    assert_eq!(&st[..5], &[Status::Ok; 5]);
    assert_eq!(&st[5..], &[Status::SaExpired; 2]);
    let ev = a.events();
    let kinds: Vec<(EventCode, u32, u8)> = ev.iter().map(|e| (e.code, e.index, e.aux)).collect();
    assert_eq!(
        kinds,
        vec![
            (EventCode::LifetimeSoft, 2, 2),
            (EventCode::LifetimeHard, 2, 2)
        ]
    );
    assert_eq!(
        ev[0].detail, 3,
        "sequence number of the packet that crossed the soft limit"
    );
    let (_, state) = a.sa_read(2);
    assert!(state.soft_expired && state.hard_expired);
    assert_eq!(
        (state.packets, state.seq),
        (5, 5),
        "refused packets use no sequence number"
    );
    assert_eq!(a.counter(Counter::TxExpired), 2);
}

#[test]
fn byte_lifetime_counts_inner_bytes_exactly() {
    let (mut a, _tap) = card_with_tap();
    let mut sa = gcm_sa(true, 0x89, [1; 16], [0; 4]);
    sa.soft_bytes = 250;
    sa.hard_bytes = 300;
    assert_eq!(a.sa_write(0, &sa, None), Status::Ok);
    let f = ipv4_frame(100, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..4).map(|_| (f.as_slice(), Some(0))).collect();
    a.post_tx(0, &posts);
    a.model.run_until_idle();
    let st: Vec<Status> = a.tx_completions(0).iter().map(|c| c.status).collect();
    assert_eq!(
        st,
        vec![Status::Ok, Status::Ok, Status::Ok, Status::SaExpired]
    );
    let ev: Vec<(EventCode, u8)> = a.events().iter().map(|e| (e.code, e.aux)).collect();
    assert_eq!(
        ev,
        vec![(EventCode::LifetimeSoft, 1), (EventCode::LifetimeHard, 1)]
    );
}

#[test]
fn sequence_numbers_never_wrap() {
    let (mut a, tap) = card_with_tap();
    let mut sa = gcm_sa(true, 0x99, [1; 16], [0; 4]);
    sa.seq = u64::from(u32::MAX) - 2;
    assert_eq!(a.sa_write(0, &sa, None), Status::Ok);
    let f = ipv4_frame(64, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..4).map(|_| (f.as_slice(), Some(0))).collect();
    a.post_tx(0, &posts);
    a.model.run_until_idle();
    let c = a.tx_completions(0);
    let got: Vec<(Status, u64)> = c.iter().map(|c| (c.status, c.seq)).collect();
    assert_eq!(
        got,
        vec![
            (Status::Ok, 0xFFFF_FFFE),
            (Status::Ok, 0xFFFF_FFFF),
            (Status::SeqExhausted, 0),
            (Status::SeqExhausted, 0)
        ]
    );
    assert_eq!(tap.drain().len(), 2);
    let ev = a.events();
    assert_eq!(
        (ev.len(), ev[0].code, ev[0].detail),
        (1, EventCode::SeqExhausted, 0xFFFF_FFFF)
    );
    assert!(a.sa_read(0).1.seq_exhausted);
}

#[test]
fn esn_crosses_two_to_the_32() {
    let (mut a, mut b) = pair();
    let mut sa = gcm_sa(true, 0xE5, [4; 16], [2; 4]);
    sa.esn = true;
    sa.seq = u64::from(u32::MAX) - 3;
    sa.outbound = true;
    assert_eq!(a.sa_write(1, &sa, None), Status::Ok);
    sa.outbound = false;
    sa.rx_queue = 1;
    let st = SaState {
        seq: u64::from(u32::MAX) - 3,
        window: 64,
        ..SaState::default()
    };
    assert_eq!(b.sa_write(9, &sa, Some(&st)), Status::Ok);
    let f = ipv4_frame(120, 0, 0, 7);
    let posts: Vec<(&[u8], Option<u32>)> = (0..8).map(|_| (f.as_slice(), Some(1))).collect();
    a.post_tx(0, &posts);
    run(&mut a, &mut b);
    let seqs: Vec<u64> = b
        .rx_completions(1)
        .iter()
        .map(|(c, _)| {
            assert_eq!(c.status, Status::Ok);
            c.seq
        })
        .collect();
    let expected: Vec<u64> = (0..8).map(|i| u64::from(u32::MAX) - 2 + i).collect();
    assert_eq!(seqs, expected);
    assert_eq!(b.sa_read(9).1.seq, (1 << 32) + 4);
}

#[test]
fn bypass_frames_pass_both_ways_and_unknown_spi_is_delivered_raw() {
    let (mut a, mut b) = pair();
    let f = ipv4_frame(300, 0, 0, 1);
    a.post_tx(0, &[(&f, None)]);
    run(&mut a, &mut b);
    assert_eq!(a.tx_completions(0)[0].status, espo_fpga::Status::Bypass);
    let rx = b.rx_completions(0);
    assert_eq!((rx[0].0.status, &rx[0].1), (Status::Bypass, &f));
    let mut sa = gcm_sa(true, 0x1234, [1; 16], [0; 4]);
    sa.outbound = true;
    assert_eq!(a.sa_write(0, &sa, None), Status::Ok);
    a.post_tx(0, &[(&f, Some(0))]);
    run(&mut a, &mut b);
    let rx = b.rx_completions(0);
    assert_eq!(
        (rx[0].0.status, rx[0].0.spi, rx[0].0.sa_index),
        (Status::NoSa, 0x1234, espo_fpga::desc::NO_SA_INDEX)
    );
    assert_eq!(b.counter(Counter::RxNoSa), 1);
}

#[test]
fn tx_refusals_use_no_sequence_number() {
    let (mut a, _tap) = card_with_tap();
    assert_eq!(
        a.sa_write(0, &gcm_sa(true, 0x5, [1; 16], [0; 4]), None),
        Status::Ok
    );
    assert_eq!(
        a.sa_write(1, &gcm_sa(false, 0x6, [1; 16], [0; 4]), None),
        Status::Ok
    );
    let good = ipv4_frame(100, 0, 0, 0);
    let mut wrong_type = good.clone();
    wrong_type[12..14].copy_from_slice(&[0x86, 0xDD]);
    let runt = vec![0u8; 8];
    a.post_tx(
        0,
        &[
            (&good, Some(7)),
            (&good, Some(1)),
            (&wrong_type, Some(0)),
            (&runt, Some(0)),
            (&good, Some(0)),
        ],
    );
    a.model.run_until_idle();
    let got: Vec<(Status, u64)> = a
        .tx_completions(0)
        .iter()
        .map(|c| (c.status, c.seq))
        .collect();
    assert_eq!(
        got,
        vec![
            (Status::SaInvalid, 0),
            (Status::SaInvalid, 0),
            (Status::Malformed, 0),
            (Status::Malformed, 0),
            (Status::Ok, 1)
        ]
    );
}
