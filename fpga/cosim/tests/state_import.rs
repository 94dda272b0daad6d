//! SA_WRITE with STATE of an inbound SA imports its replay window (SA_STATE SEQ and
//! BITMAP, §8.4) into the core's ring of replay words: after the import, exactly the
//! sequence numbers the bitmap marks are refused as replays, and those below the window
//! as stale; ESN numbers that cannot exist are stale too.

mod common;

use common::*;
use espo_fpga::{SaState, Status};
use espo_rtl::PacketIn;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn import_and_probe(window: u32, top: u64, received: &[u64]) {
    let mut t = Tunnel::new(0x5001);
    t.window = window;
    let mut rtl = rtl_with(&[t]);
    let mut rng = StdRng::seed_from_u64(u64::from(window) ^ top);
    let ip = inner_packet(&mut rng, 0, false, 40, 0, true);
    // Sequence numbers 1..=top + 2 from the core's own outbound SA.
    let posted: Vec<PacketIn> = (0..top + 2).map(|_| outbound(0, &ip)).collect();
    let sent = rtl.process(&posted).expect("process");
    assert!(
        sent.iter()
            .all(|o| o.verdict.as_ref().is_some_and(|v| v.status == Status::Ok))
    );

    let mut state = SaState {
        seq: top,
        window,
        valid: true,
        ..SaState::default()
    };
    for &s in received {
        let i = (top - s) as usize;
        state.bitmap[i / 8] |= 1 << (i % 8);
    }
    let status = rtl
        .write_sa(in_index(0), &t.entry(false), Some(&state))
        .expect("SA_WRITE");
    assert_eq!(status, Status::Ok);

    let first = top.saturating_sub(u64::from(window) + 2).max(1);
    let probes: Vec<u64> = (first..=top + 2).collect();
    let frames: Vec<PacketIn> = probes
        .iter()
        .map(|&s| inbound(sent[(s - 1) as usize].frame.clone()))
        .collect();
    let out = rtl.process(&frames).expect("process");
    for (&s, o) in probes.iter().zip(&out) {
        let status = o.verdict.as_ref().map(|v| v.status);
        if top - s.min(top) >= u64::from(window) {
            assert_eq!(status, Some(Status::Stale), "seq {s} is below the window");
        } else if received.contains(&s) {
            assert_eq!(status, Some(Status::Replay), "seq {s} is marked received");
        } else {
            assert_eq!(status, Some(Status::Ok), "seq {s} was not received");
        }
    }
    let (status, after) = rtl.read_sa(in_index(0)).expect("SA_READ");
    assert_eq!((status, after.seq), (Status::Ok, top + 2));
}

#[test]
fn a_small_window_imports_across_a_block_boundary() {
    import_and_probe(128, 200, &[200, 199, 150, 137, 128, 127, 100, 73]);
}

#[test]
fn the_largest_window_imports_at_both_ends() {
    import_and_probe(4096, 5000, &[5000, 4999, 4937, 3333, 1000, 906, 905]);
}

#[test]
fn a_window_top_on_a_block_boundary_imports() {
    import_and_probe(64, 256, &[256, 255, 200, 193]);
}

/// An ESN SA whose window top is in the first 2^32 subspace: a packet whose low half
/// infers a high half before it (no such number was ever sent) is stale, as for the
/// software engine.
#[test]
fn esn_numbers_before_the_first_subspace_are_stale() {
    let send = Tunnel {
        esn: true,
        seq: (1 << 32) - 20,
        ..Tunnel::new(0x5101)
    };
    let recv = Tunnel { seq: 10, ..send };
    let mut rtl = rtl_with(&[recv]);
    let mut tx = sender(&[send]);
    let mut rx = receiver(&[recv]);
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..3 {
        let ip = inner_packet(&mut rng, 0, false, 60, 0, true);
        let mut buf = vec![0u8; ip.len() + 256];
        let len = match tx.outbound.encapsulate(&ip, &mut buf) {
            Ok(espo_ipsec::engine::Encapsulated::Protected { len, .. }) => len,
            other => panic!("software engine refused: {other:?}"),
        };
        let esp = buf[..len].to_vec();
        let mut sw = esp.clone();
        assert_eq!(
            rx.inbound.decapsulate(&mut sw).err(),
            Some(espo_ipsec::counters::DropReason::Stale)
        );
        let out = rtl.process(&[inbound(frame(&esp))]).expect("process");
        assert_eq!(
            out[0].verdict.as_ref().map(|v| v.status),
            Some(Status::Stale)
        );
    }
}
