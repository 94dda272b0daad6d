//! Untrusted frames: whatever bytes arrive (received frames, or posted frames naming any SA
//! index), the core answers every frame exactly once, in order, never hangs, and hands back
//! every frame it does not transform unchanged.

mod common;

use common::*;
use espo_rtl::{Direction, PacketIn};
use proptest::prelude::*;

fn frame_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        // Mostly well-formed IPv4/IPv6 ESP and UDP headers with random tails.
        (
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 8..300),
            0u8..3
        )
            .prop_map(|(v6, tail, proto)| {
                let mut f = MAC.to_vec();
                let nh = [50u8, 17, 6][proto as usize];
                if v6 {
                    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                    f.extend_from_slice(&(tail.len() as u16).to_be_bytes());
                    f.extend_from_slice(&[nh, 64]);
                    f.extend_from_slice(&[
                        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
                    ]);
                    f.extend_from_slice(&[
                        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
                    ]);
                } else {
                    let total = (20 + tail.len()) as u16;
                    let mut h = vec![
                        0x45, 0, 0, 0, 0, 0, 0, 0, 64, nh, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
                    ];
                    h[2..4].copy_from_slice(&total.to_be_bytes());
                    let mut acc = 0u32;
                    for c in h.chunks(2) {
                        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
                    }
                    while acc > 0xffff {
                        acc = (acc & 0xffff) + (acc >> 16);
                    }
                    h[10..12].copy_from_slice(&(!(acc as u16)).to_be_bytes());
                    f.extend_from_slice(&[0x08, 0x00]);
                    f.extend_from_slice(&h);
                }
                f.extend_from_slice(&tail);
                f
            }),
    ]
}

fn direction_strategy() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::Inbound),
        (0u32..8, any::<bool>())
            .prop_map(|(sa_index, bypass)| Direction::Outbound { sa_index, bypass }),
        any::<u32>().prop_map(|sa_index| Direction::Outbound {
            sa_index,
            bypass: false
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn every_frame_is_answered_once_and_refusals_are_unchanged(
        batch in proptest::collection::vec((frame_strategy(), direction_strategy()), 1..10)
    ) {
        let t = [Tunnel::new(0x1001), Tunnel { outer_v6: true, udp: true, ..Tunnel::new(0x1002) }];
        let mut rtl = rtl_with(&t);
        let packets: Vec<PacketIn> = batch.into_iter().map(|(frame, direction)| PacketIn { frame, direction }).collect();
        let out = rtl.process(&packets).expect("the core finishes every frame");
        prop_assert_eq!(out.len(), packets.len());
        for (p, o) in packets.iter().zip(&out) {
            let v = o.verdict.as_ref().expect("frames under MAX_FRAME are never dropped");
            if !v.transformed {
                prop_assert_eq!(&o.frame, &p.frame, "status {:?}", v.status);
            }
        }
    }
}
