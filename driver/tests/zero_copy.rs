//! Zero-copy frames: TX buffers lent to the caller, written in place (from a file
//! descriptor, as a TUN read) and posted; RX frames handed over in their buffers and written
//! out from them; handles checked; the pools never leak or double-lend a buffer.
#![cfg(feature = "model")]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;
use espo_driver::card::{
    CardConfig, CardError, RxLent, TxAction, TxDone, TxLent, TxOutcome, TxRequestError,
};
use espo_driver::model::ModelOptions;
use espo_fpga::Status;
use espo_model::{FaultKind, FaultTrigger, ModelParams};

/// Lends a buffer, writes `frame` into it and returns the post for it.
fn lent(card: &mut espo_driver::Card, tag: u64, frame: &[u8], action: TxAction) -> TxLent {
    let buf = card.tx_lend(0).unwrap().expect("a buffer to lend");
    card.tx_buf_write(buf, 0, frame).unwrap();
    TxLent {
        tag,
        buf,
        len: frame.len(),
        action,
    }
}

/// Posts everything, taking completions meanwhile; returns the completions.
fn post_all(card: &mut espo_driver::Card, posts: &[TxLent]) -> Vec<TxDone> {
    let mut done = Vec::new();
    let mut at = 0;
    let mut spins = 0u32;
    while at < posts.len() || card.tx_outstanding(0).unwrap() > 0 {
        if at < posts.len() {
            at += card.tx_post(0, &posts[at..]).unwrap();
        }
        card.tx_completions(0, &mut done).unwrap();
        spins += 1;
        assert!(spins < 1_000_000, "TX made no progress");
    }
    done
}

/// Lends received frames until `n` arrived or the device clock moved on by `timeout`.
fn lend_received(card: &mut espo_driver::Card, n: usize, timeout: Duration) -> Vec<RxLent> {
    let mut got = Vec::new();
    let start = card.now();
    while got.len() < n && card.now() - start < timeout {
        card.rx_lend(0, &mut got, 32).unwrap();
    }
    got
}

#[test]
fn lent_frames_cross_the_tunnel_without_a_copy_and_come_back_lent() {
    let (mut a, _ha, mut b, _hb) = back_to_back(ModelParams::zero_latency(), small_rings());
    a.sa_write(0, &gcm_sa(true, 0x900), None).unwrap();
    b.sa_write(5, &gcm_sa(false, 0x900), None).unwrap();
    // More frames than the ring and the lending limit hold: buffers are reused.
    let frames: Vec<_> = (0..100).map(|i| frame(60 + 13 * i, i as u16)).collect();
    let mut sent = Vec::new();
    let mut got = Vec::new();
    let mut seen_tx = HashSet::new();
    for chunk in frames.chunks(8) {
        let base = sent.len() as u64;
        let posts: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, f)| lent(&mut a, base + i as u64, f, TxAction::Encap { sa_index: 0 }))
            .collect();
        for d in post_all(&mut a, &posts) {
            assert!(matches!(d.outcome, TxOutcome::Sent { .. }));
            let buf = d.lent.expect("a lent buffer comes back lent");
            // The frame is still in it: what was posted.
            let f = &frames[d.tag as usize];
            let mut back = vec![0u8; f.len()];
            a.tx_buf_read(buf, 0, &mut back).unwrap();
            assert_eq!(&back, f);
            seen_tx.insert(buf);
            a.tx_return(buf).unwrap();
            sent.push(d.tag);
        }
        for r in lend_received(&mut b, chunk.len(), Duration::from_millis(5)) {
            let mut data = vec![0u8; r.len];
            b.rx_buf_read(r.buf, 0, &mut data).unwrap();
            got.push((r.info, data));
            b.rx_return(r.buf).unwrap();
        }
    }
    assert_eq!(sent, (0..100).collect::<Vec<_>>());
    assert!(seen_tx.len() >= 8, "a chunk's buffers are distinct");
    assert_eq!(got.len(), frames.len());
    for (i, (info, data)) in got.iter().enumerate() {
        assert_eq!(info.status, Status::Ok);
        assert!(info.decapsulated);
        assert_eq!((info.sa_index, info.seq), (Some(5), i as u64 + 1));
        assert_eq!(&data[14..], &frames[i][14..], "inner packet intact");
    }
    assert_eq!(a.stats().bad.total() + b.stats().bad.total(), 0);
}

#[test]
fn a_tun_read_lands_in_the_buffer_and_a_received_frame_leaves_from_it() {
    let (mut a, _ha, mut b, _hb) = back_to_back(ModelParams::zero_latency(), CardConfig::default());
    let f = frame(1400, 7);
    // The source: a datagram socket stands in for the TUN device (one packet per read).
    let (src_w, src_r) = UnixDatagram::pair().unwrap();
    src_w.send(&f[14..]).unwrap();
    let buf = a.tx_lend(0).unwrap().unwrap();
    a.tx_buf_write(buf, 0, &f[..14]).unwrap();
    let n = a.tx_buf_read_from(buf, 14, src_r.as_fd()).unwrap();
    assert_eq!(n, f.len() - 14);
    let done = post_all(
        &mut a,
        &[TxLent {
            tag: 1,
            buf,
            len: 14 + n,
            action: TxAction::Bypass,
        }],
    );
    assert_eq!(done[0].outcome, TxOutcome::SentBypass);
    a.tx_return(done[0].lent.unwrap()).unwrap();
    let got = lend_received(&mut b, 1, Duration::from_millis(5));
    assert_eq!((got.len(), got[0].len), (1, f.len()));
    // The sink: the checked header from host memory, the rest straight from the buffer.
    let (mut sink_w, mut sink_r) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut head = [0u8; 34];
    b.rx_buf_read(got[0].buf, 0, &mut head).unwrap();
    let written = b
        .rx_buf_write_to(got[0].buf, sink_w.as_fd(), &head[14..], 34, f.len() - 34)
        .unwrap();
    assert_eq!(written, f.len() - 14);
    sink_w.flush().unwrap();
    let mut out = vec![0u8; written];
    sink_r.read_exact(&mut out).unwrap();
    assert_eq!(&out, &f[14..]);
    // Past the buffer's end: refused, nothing written.
    let size = b.buffer_bytes() as usize;
    assert!(
        b.rx_buf_write_to(got[0].buf, sink_w.as_fd(), &[], 1, size)
            .is_err()
    );
    b.rx_return(got[0].buf).unwrap();
    assert!(
        b.rx_buf_write_to(got[0].buf, sink_w.as_fd(), &[], 0, 1)
            .is_err(),
        "a returned buffer"
    );
}

#[test]
fn handles_are_checked_and_a_buffer_is_never_lent_twice() {
    let (mut a, _ha, mut b, _hb) = back_to_back(ModelParams::zero_latency(), small_rings());
    let buf = a.tx_lend(0).unwrap().unwrap();
    // Posted twice in one batch: refused, nothing posted.
    let post = TxLent {
        tag: 0,
        buf,
        len: 60,
        action: TxAction::Bypass,
    };
    assert!(matches!(
        a.tx_post(0, &[post, post]),
        Err(CardError::TxRequest {
            position: 1,
            reason: TxRequestError::NotLent { .. }
        })
    ));
    assert_eq!(a.tx_outstanding(0).unwrap(), 0);
    // Too long for the card.
    let long = TxLent {
        len: 100_000,
        ..post
    };
    assert!(matches!(
        a.tx_post(0, &[long]),
        Err(CardError::TxRequest {
            position: 0,
            reason: TxRequestError::FrameLength { .. }
        })
    ));
    // Returned, then used: refused everywhere.
    a.tx_return(buf).unwrap();
    assert!(matches!(a.tx_return(buf), Err(CardError::NotLent { .. })));
    assert!(a.tx_buf_write(buf, 0, &[1]).is_err());
    assert!(matches!(
        a.tx_buf_read_words::<2>(buf, 0),
        Err(CardError::NotLent { .. })
    ));
    assert!(matches!(
        a.tx_buf_write_words(buf, 0, &[1]),
        Err(CardError::NotLent { .. })
    ));
    assert!(
        a.tx_buf_read_from(buf, 0, std::io::stdin().as_fd())
            .is_err()
    );
    assert!(matches!(
        a.tx_post(0, &[post]),
        Err(CardError::TxRequest {
            reason: TxRequestError::NotLent { .. },
            ..
        })
    ));
    // Writes past the buffer's end are refused.
    let buf = a.tx_lend(0).unwrap().unwrap();
    let size = a.buffer_bytes() as usize;
    assert!(a.tx_buf_write(buf, size - 1, &[1, 2]).is_err());
    assert!(a.tx_buf_write(buf, size - 2, &[1, 2]).is_ok());
    // Whole words: the buffer's bytes in memory order; misaligned or past the end refused,
    // nothing written.
    a.tx_buf_write(buf, 0, &(0..24).collect::<Vec<u8>>())
        .unwrap();
    let words = a.tx_buf_read_words::<3>(buf, 0).unwrap();
    let seen: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    assert_eq!(seen, (0..24).collect::<Vec<u8>>());
    a.tx_buf_write_words(buf, 8, &[u64::from_ne_bytes([0xee; 8])])
        .unwrap();
    let mut back = [0u8; 24];
    a.tx_buf_read(buf, 0, &mut back).unwrap();
    assert_eq!(
        back[7..17],
        [7, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 16]
    );
    assert!(a.tx_buf_read_words::<1>(buf, 4).is_err());
    assert!(a.tx_buf_write_words(buf, 4, &[0]).is_err());
    assert!(a.tx_buf_read_words::<1>(buf, size - 4).is_err());
    assert!(
        a.tx_buf_write_words(buf, size.next_multiple_of(8) - 8, &[0, 0])
            .is_err()
    );
    a.tx_buf_read(buf, 0, &mut back).unwrap();
    assert_eq!(
        back[7..17],
        [7, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 16]
    );
    // The lending limit is the ring's size (16 here): then `None`, never a buffer in use.
    let mut held = vec![buf];
    while let Some(b) = a.tx_lend(0).unwrap() {
        held.push(b);
    }
    assert_eq!(held.len(), 16);
    assert_eq!(held.iter().collect::<HashSet<_>>().len(), 16);
    // The copy path still has its own buffers while every lent one is held.
    let f = frame(100, 1);
    let done = send_all(
        &mut a,
        0,
        &requests(std::slice::from_ref(&f), 9, TxAction::Bypass),
    );
    assert_eq!(
        (done[0].outcome, done[0].lent),
        (TxOutcome::SentBypass, None)
    );
    for h in held {
        a.tx_return(h).unwrap();
    }
    let copied = lend_received(&mut b, 1, Duration::from_millis(2));
    b.rx_return(copied[0].buf).unwrap();
    // RX: a receiver holding a ring's worth takes no more until it gives some back, and
    // nothing is lost meanwhile.
    let frames: Vec<_> = (0..24).map(|i| frame(80, i)).collect();
    send_all(&mut a, 0, &requests(&frames, 0, TxAction::Bypass));
    let first = lend_received(&mut b, 24, Duration::from_millis(2));
    assert_eq!(first.len(), 16, "at most a ring's worth lent");
    assert_eq!(
        first.iter().map(|r| r.buf).collect::<HashSet<_>>().len(),
        16
    );
    let mut got = Vec::new();
    for r in &first {
        let mut data = vec![0u8; r.len];
        b.rx_buf_read(r.buf, 0, &mut data).unwrap();
        got.push(data);
    }
    b.rx_return(first[0].buf).unwrap();
    assert!(matches!(
        b.rx_return(first[0].buf),
        Err(CardError::NotLent { .. })
    ));
    assert!(b.rx_buf_read(first[0].buf, 0, &mut [0; 4]).is_err());
    for r in &first[1..] {
        b.rx_return(r.buf).unwrap();
    }
    for r in lend_received(&mut b, 8, Duration::from_millis(2)) {
        let mut data = vec![0u8; r.len];
        b.rx_buf_read(r.buf, 0, &mut data).unwrap();
        got.push(data);
        b.rx_return(r.buf).unwrap();
    }
    assert_eq!(
        got, frames,
        "every frame, in order, none lost while the receiver held 16"
    );
}

#[test]
fn recovery_gives_posted_lent_buffers_back_with_their_frames() {
    let (mut a, model) = card_with(ModelOptions::default(), CardConfig::default());
    a.sa_write(4, &gcm_sa(true, 0x51), None).unwrap();
    model.inject(FaultKind::EngineHang, FaultTrigger::AtPacket(5));
    let frames: Vec<_> = (0..32).map(|i| frame(300, i)).collect();
    let posts: Vec<_> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| lent(&mut a, i as u64, f, TxAction::Encap { sa_index: 4 }))
        .collect();
    assert_eq!(a.tx_post(0, &posts).unwrap(), 32);
    let mut done = Vec::new();
    let mut events = Vec::new();
    let mut rx = Vec::new();
    while !events
        .iter()
        .any(|e| matches!(e, espo_driver::CardEvent::Fault(_)))
    {
        a.tx_completions(0, &mut done).unwrap();
        let _ = a.rx_lend(0, &mut rx, 8);
        a.service(&mut events).unwrap();
        assert!(a.now() < Duration::from_secs(1), "no fault reported");
    }
    let report = a.quiesce().unwrap();
    // Every posted buffer comes back lent, once, with its frame in it.
    let back: Vec<_> = done
        .iter()
        .map(|d| (d.tag, d.lent))
        .chain(report.completed.iter().map(|(_, d)| (d.tag, d.lent)))
        .chain(report.not_completed.iter().map(|n| (n.tag, n.lent)))
        .collect();
    assert_eq!(back.len(), 32);
    assert!(!report.not_completed.is_empty(), "the hung card left some");
    let mut bufs = HashSet::new();
    for (tag, buf) in back {
        let buf = buf.expect("lent back");
        assert!(bufs.insert(buf));
        let f = &frames[tag as usize];
        let mut data = vec![0u8; f.len()];
        a.tx_buf_read(buf, 0, &mut data).unwrap();
        assert_eq!(&data, f);
        a.tx_return(buf).unwrap();
    }
}
