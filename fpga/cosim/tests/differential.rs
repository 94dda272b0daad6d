//! Differential tests: the same packets through the RTL core (co-simulated) and through
//! espo-ipsec's software engine, compared byte for byte and verdict by verdict.
//!
//! Tunnels cover IPv4 and IPv6 outer headers, AES-GCM-128 and -256, UDP encapsulation and
//! ESN; inner packets are IPv4 and IPv6 of sizes from the smallest to 9000 bytes with every
//! TOS/ECN value. The RTL's encapsulations are decapsulated by both the RTL and the software
//! receiver, and the software's by the RTL.

mod common;

use common::*;
use espo_fpga::{DfMode, Status};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::{Decapsulated, Encapsulated, SoftwareEngine};
use espo_rtl::{PacketIn, PacketOut, Rtl};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn tunnels() -> Vec<Tunnel> {
    let mut v = Vec::new();
    for i in 0..16u32 {
        v.push(Tunnel {
            outer_v6: i & 1 != 0,
            gcm256: i & 2 != 0,
            udp: i & 4 != 0,
            esn: i & 8 != 0,
            ttl: if i % 3 == 0 { 64 } else { 10 + i as u8 },
            df: [DfMode::Copy, DfMode::Set, DfMode::Clear][i as usize % 3],
            ..Tunnel::new(0x1000 + i)
        });
    }
    v
}

/// What the software engine makes of an outbound packet: the IP packet and its sequence.
fn sw_encap(sw: &mut SoftwareEngine, ip: &[u8]) -> (Vec<u8>, u64) {
    let mut buf = vec![0u8; ip.len() + 256];
    match sw.outbound.encapsulate(ip, &mut buf) {
        Ok(Encapsulated::Protected { len, seq, .. }) => (buf[..len].to_vec(), seq),
        other => panic!("software engine refused an outbound packet: {other:?}"),
    }
}

/// The software receiver's verdict on an IP packet: the inner packet or the drop reason.
fn sw_decap(sw: &mut SoftwareEngine, ip: &[u8]) -> Result<(Vec<u8>, u64), DropReason> {
    let mut buf = ip.to_vec();
    match sw.inbound.decapsulate(&mut buf)? {
        Decapsulated::Inner { range, seq, .. } => Ok((buf[range].to_vec(), seq)),
        other => panic!("unexpected {other:?}"),
    }
}

fn rtl_run(rtl: &mut Rtl, packets: &[PacketIn]) -> Vec<PacketOut> {
    let out = rtl.process(packets).expect("the RTL finishes every packet");
    assert_eq!(out.len(), packets.len(), "one output per input");
    out
}

/// Sizes that cross every 16-byte and 64-byte boundary near the headers, then up to 9000.
fn sizes(rng: &mut StdRng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (28..=100).collect();
    v.extend([
        127, 128, 129, 255, 256, 511, 512, 1024, 1280, 1420, 1500, 2048, 4096, 8192, 8999, 9000,
    ]);
    while v.len() < n {
        v.push(rng.gen_range(28..=9000));
    }
    v
}

#[test]
fn encapsulation_and_decapsulation_match_the_software_engine() {
    let t = tunnels();
    let mut rtl = rtl_with(&t);
    let mut tx = sender(&t);
    let mut rx = receiver(&t);
    let mut rng = StdRng::seed_from_u64(0xe5f0);
    let mut packets = Vec::new();
    let mut expected = Vec::new();
    let mut inners = Vec::new();
    for (n, size) in sizes(&mut rng, 300).into_iter().enumerate() {
        let k = n % t.len();
        let v6 = rng.r#gen::<bool>();
        let (tos, df) = (tos(&mut rng), rng.r#gen());
        let ip = inner_packet(&mut rng, k, v6, size, tos, df);
        let (sw, seq) = sw_encap(&mut tx, &ip);
        packets.push(outbound(k, &ip));
        expected.push((sw, seq));
        inners.push(ip);
    }
    let out = rtl_run(&mut rtl, &packets);
    let mut back = Vec::new();
    for (i, (o, (sw, seq))) in out.iter().zip(&expected).enumerate() {
        let v = o.verdict.as_ref().expect("not dropped");
        assert_eq!(
            (v.status, v.seq, v.transformed),
            (Status::Ok, *seq, true),
            "packet {i}"
        );
        assert_eq!(&o.frame[..12], &MAC, "packet {i}: MAC addresses kept");
        assert_eq!(
            &o.frame[14..],
            &sw[..],
            "packet {i} ({} bytes): tunnel packet",
            inners[i].len()
        );
        let ethertype = if sw[0] >> 4 == 6 {
            [0x86, 0xdd]
        } else {
            [0x08, 0x00]
        };
        assert_eq!(o.frame[12..14], ethertype, "packet {i}: outer EtherType");
        back.push(inbound(o.frame.clone()));
    }
    // Decapsulation: the RTL's inbound SAs and the software receiver on the same frames.
    let dec = rtl_run(&mut rtl, &back);
    for (i, o) in dec.iter().enumerate() {
        let v = o.verdict.as_ref().expect("not dropped");
        let (inner, seq) = sw_decap(&mut rx, &back[i].frame[14..]).expect("software accepts");
        assert_eq!(v.status, Status::Ok, "packet {i}");
        assert_eq!(v.seq, seq, "packet {i}: sequence number");
        assert_eq!(&o.frame[14..], &inner[..], "packet {i}: inner packet");
        assert_eq!(
            &o.frame[14..],
            &inners[i][..],
            "packet {i}: the packet that was sent"
        );
        assert_eq!(v.inner_ipv6, inner[0] >> 4 == 6);
        assert_eq!(v.sa_index, in_index(i % t.len()));
    }
}

#[test]
fn the_rtl_decapsulates_what_the_software_engine_sends() {
    let t = tunnels();
    let mut rtl = rtl_with(&t);
    let mut tx = sender(&t);
    let mut rng = StdRng::seed_from_u64(7);
    let mut frames = Vec::new();
    let mut inners = Vec::new();
    for n in 0..96 {
        let k = n % t.len();
        let (len, tos) = (rng.gen_range(28..1600), tos(&mut rng));
        let ip = inner_packet(&mut rng, k, n % 3 == 0, len, tos, true);
        frames.push(inbound(frame(&sw_encap(&mut tx, &ip).0)));
        inners.push(ip);
    }
    for (i, o) in rtl_run(&mut rtl, &frames).iter().enumerate() {
        assert_eq!(
            o.verdict.as_ref().map(|v| v.status),
            Some(Status::Ok),
            "packet {i}"
        );
        assert_eq!(&o.frame[14..], &inners[i][..], "packet {i}");
    }
}

/// Rewrites the outer ECN field of an encapsulated frame (not covered by the ICV).
fn set_outer_ecn(frame: &mut [u8], ecn: u8) {
    if frame[12] == 0x86 {
        frame[15] = (frame[15] & !0x30) | (ecn << 4);
    } else {
        frame[15] = (frame[15] & !3) | ecn;
        frame[24] = 0;
        frame[25] = 0;
        let mut acc = 0u32;
        for c in frame[14..34].chunks(2) {
            acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        frame[24..26].copy_from_slice(&(!(acc as u16)).to_be_bytes());
    }
}

fn expected_status(r: &Result<(Vec<u8>, u64), DropReason>) -> Status {
    match r {
        Ok(_) => Status::Ok,
        Err(DropReason::BadIcv) => Status::IcvFail,
        Err(DropReason::Replayed) => Status::Replay,
        Err(DropReason::Stale) => Status::Stale,
        Err(DropReason::UnknownSpi) => Status::NoSa,
        Err(DropReason::EcnDrop) => Status::EcnDrop,
        Err(DropReason::BadPadding | DropReason::Malformed | DropReason::UnsupportedInner) => {
            Status::Malformed
        }
        Err(other) => panic!("no card status for {other:?}"),
    }
}

#[test]
fn ecn_replay_corruption_and_unknown_spi_verdicts_match() {
    let t = tunnels();
    let mut rtl = rtl_with(&t);
    let mut tx = sender(&t);
    let mut rx = receiver(&t);
    let mut rng = StdRng::seed_from_u64(99);
    let mut sent = Vec::new();
    for n in 0..160 {
        let k = n % t.len();
        let (v6, len, tos) = (rng.r#gen(), rng.gen_range(28..700), tos(&mut rng));
        let ip = inner_packet(&mut rng, k, v6, len, tos, true);
        sent.push(frame(&sw_encap(&mut tx, &ip).0));
    }
    // Mutate: outer ECN, replays of earlier frames, flipped bytes, unknown SPIs.
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut kinds = Vec::new();
    for (i, f) in sent.iter().enumerate() {
        let mut f = f.clone();
        let kind = i % 8;
        match kind {
            1 => set_outer_ecn(&mut f, rng.gen_range(0..4)),
            2 if i > 16 => f = sent[i - 16].clone(),
            3 => {
                let at = rng.gen_range(50..f.len());
                f[at] ^= 1 << rng.gen_range(0..8);
            }
            4 => {
                let esp = if f[12] == 0x86 { 54 } else { 34 }
                    + if f[23] == 17 || f[20] == 17 { 8 } else { 0 };
                f[esp + 3] ^= 0x80;
            }
            _ => {}
        }
        frames.push(f);
        kinds.push(kind);
        if i % 5 == 0 {
            frames.push(sent[i].clone()); // an immediate replay
            kinds.push(9);
        }
    }
    let out = rtl_run(
        &mut rtl,
        &frames.iter().cloned().map(inbound).collect::<Vec<_>>(),
    );
    let mut seen = std::collections::BTreeMap::new();
    for (i, o) in out.iter().enumerate() {
        let sw = sw_decap(&mut rx, &frames[i][14..]);
        let want = expected_status(&sw);
        let v = o.verdict.as_ref().expect("not dropped");
        assert_eq!(v.status, want, "frame {i} (mutation {}): {sw:?}", kinds[i]);
        *seen.entry(format!("{want:?}")).or_insert(0) += 1;
        match sw {
            Ok((inner, seq)) => {
                assert_eq!(
                    &o.frame[14..],
                    &inner[..],
                    "frame {i}: inner packet (ECN applied)"
                );
                assert_eq!(v.seq, seq);
            }
            Err(_) => assert_eq!(
                o.frame, frames[i],
                "frame {i}: a refused frame is delivered as received"
            ),
        }
    }
    for s in ["Ok", "IcvFail", "Replay", "NoSa", "EcnDrop"] {
        assert!(
            seen.get(s).copied().unwrap_or(0) > 0,
            "no {s} verdict exercised: {seen:?}"
        );
    }
}

#[test]
fn esn_sequence_numbers_cross_the_32_bit_boundary() {
    let base = (1u64 << 32) - 6;
    let t: Vec<Tunnel> = (0..4u32)
        .map(|i| Tunnel {
            esn: true,
            seq: base,
            outer_v6: i & 1 != 0,
            gcm256: i & 2 != 0,
            window: 128,
            ..Tunnel::new(0x2000 + i)
        })
        .collect();
    let mut rtl = rtl_with(&t);
    let mut tx = sender(&t);
    let mut rx = receiver(&t);
    let mut rng = StdRng::seed_from_u64(5);
    let mut packets = Vec::new();
    let mut expected = Vec::new();
    for n in 0..48 {
        let k = n % t.len();
        let ip = inner_packet(&mut rng, k, false, 60 + n, 0, true);
        expected.push(sw_encap(&mut tx, &ip));
        packets.push(outbound(k, &ip));
    }
    let out = rtl_run(&mut rtl, &packets);
    let mut back = Vec::new();
    for (i, (o, (sw, seq))) in out.iter().zip(&expected).enumerate() {
        assert_eq!(o.verdict.as_ref().map(|v| v.seq), Some(*seq));
        assert_eq!(&o.frame[14..], &sw[..], "packet {i}, seq {seq:#x}");
        back.push(inbound(o.frame.clone()));
    }
    assert!(expected.iter().any(|(_, s)| *s > 1 << 32), "crossed 2^32");
    // Reordered by a few packets on receive: inference must still pick the right high half.
    back.swap(20, 27);
    back.swap(8, 12);
    for (i, o) in rtl_run(&mut rtl, &back).iter().enumerate() {
        let sw = sw_decap(&mut rx, &back[i].frame[14..]).expect("software accepts");
        let v = o.verdict.as_ref().expect("verdict");
        assert_eq!((v.status, v.seq), (Status::Ok, sw.1), "frame {i}");
        assert_eq!(&o.frame[14..], &sw.0[..]);
    }
}
