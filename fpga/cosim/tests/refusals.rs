//! What the core does not transform: bypass, malformed and oversize frames, refused TX
//! packets, sequence-number exhaustion, lifetimes, and the SA table's register port.

mod common;

use common::*;
use espo_fpga::{AdminOpcode, AlgId, EventCode, SaEntry, Status};
use espo_ipsec::counters::DropReason;
use espo_rtl::{Direction, PacketIn, Rtl};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn ipv4_frame(proto: u8, payload: &[u8], frag: u16, good_checksum: bool) -> Vec<u8> {
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 192, 0, 2, 9, 192, 0, 2, 2,
    ];
    let len = (20 + payload.len()) as u16;
    ip[2..4].copy_from_slice(&len.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    let mut acc = 0u32;
    for c in ip.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    let sum = !(acc as u16) ^ u16::from(!good_checksum);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(payload);
    frame(&ip)
}

#[test]
fn received_frames_that_are_not_decapsulated_pass_unchanged() {
    let t = [Tunnel::new(0x3001)];
    let mut rtl = rtl_with(&t);
    let mut arp = MAC.to_vec();
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    let esp = [
        0, 0, 0x30, 0x01, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
        9, 9, 9, 9, 9, 9, 9, 9,
    ];
    let mut udp_keepalive = vec![0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xff];
    let mut ike = vec![0x11, 0x94, 0x11, 0x94, 0, 16, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    let mut spi0 = esp;
    spi0[2] = 0;
    spi0[3] = 0;
    let mut unknown = esp;
    unknown[3] = 0x77;
    let cases: Vec<(&str, Vec<u8>, Status)> = vec![
        ("ARP", arp, Status::Bypass),
        ("runt", MAC[..10].to_vec(), Status::Malformed),
        ("TCP", ipv4_frame(6, &[0; 20], 0, true), Status::Bypass),
        (
            "bad outer checksum",
            ipv4_frame(50, &esp, 0, false),
            Status::Malformed,
        ),
        (
            "fragment",
            ipv4_frame(50, &esp, 0x2000, true),
            Status::Bypass,
        ),
        (
            "NAT keepalive",
            ipv4_frame(17, &udp_keepalive, 0, true),
            Status::Bypass,
        ),
        (
            "IKE non-ESP marker",
            ipv4_frame(17, &ike, 0, true),
            Status::Bypass,
        ),
        ("SPI 0", ipv4_frame(50, &spi0, 0, true), Status::Malformed),
        (
            "unknown SPI",
            ipv4_frame(50, &unknown, 0, true),
            Status::NoSa,
        ),
        (
            "known SPI, forged",
            ipv4_frame(50, &esp, 0, true),
            Status::IcvFail,
        ),
        (
            "ESP header only",
            ipv4_frame(50, &esp[..6], 0, true),
            Status::Malformed,
        ),
    ];
    udp_keepalive.clear();
    ike.clear();
    let packets: Vec<PacketIn> = cases.iter().map(|(_, f, _)| inbound(f.clone())).collect();
    let out = rtl.process(&packets).expect("process");
    for ((name, f, status), o) in cases.iter().zip(&out) {
        let v = o.verdict.as_ref().expect("not dropped");
        assert_eq!(v.status, *status, "{name}");
        assert!(!v.transformed, "{name}");
        assert_eq!(&o.frame, f, "{name}: delivered as received");
    }
    // Longer than MAX_FRAME: dropped at the port (§7.5), and the core keeps going.
    let big = ipv4_frame(6, &vec![0u8; 9216 - 34 + 1], 0, true);
    let ok = ipv4_frame(6, &[1; 40], 0, true);
    let out = rtl
        .process(&[inbound(big), inbound(ok.clone())])
        .expect("process");
    assert!(out[0].verdict.is_none(), "oversize frame dropped");
    assert_eq!(out[1].frame, ok);
}

#[test]
fn refused_transmit_packets_pass_unchanged_with_their_status() {
    let t = [Tunnel::new(0x3101)];
    let mut rtl = rtl_with(&t);
    let mut rng = StdRng::seed_from_u64(3);
    let ip = inner_packet(&mut rng, 0, false, 80, 0, true);
    let mut wrong_type = frame(&ip);
    wrong_type[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut short = frame(&ip);
    short.truncate(40);
    let cases = [
        (
            "bypass",
            PacketIn {
                frame: frame(&ip),
                direction: Direction::Outbound {
                    sa_index: out_index(0),
                    bypass: true,
                },
            },
            Status::Bypass,
        ),
        (
            "index beyond the table",
            PacketIn {
                frame: frame(&ip),
                direction: Direction::Outbound {
                    sa_index: 4096,
                    bypass: false,
                },
            },
            Status::SaInvalid,
        ),
        (
            "empty slot",
            PacketIn {
                frame: frame(&ip),
                direction: Direction::Outbound {
                    sa_index: 77,
                    bypass: false,
                },
            },
            Status::SaInvalid,
        ),
        (
            "inbound SA",
            PacketIn {
                frame: frame(&ip),
                direction: Direction::Outbound {
                    sa_index: in_index(0),
                    bypass: false,
                },
            },
            Status::SaInvalid,
        ),
        (
            "EtherType of the other family",
            PacketIn {
                frame: wrong_type,
                direction: Direction::Outbound {
                    sa_index: out_index(0),
                    bypass: false,
                },
            },
            Status::Malformed,
        ),
        (
            "truncated inner packet",
            PacketIn {
                frame: short,
                direction: Direction::Outbound {
                    sa_index: out_index(0),
                    bypass: false,
                },
            },
            Status::Malformed,
        ),
    ];
    let out = rtl
        .process(&cases.iter().map(|c| c.1.clone()).collect::<Vec<_>>())
        .expect("process");
    for ((name, p, status), o) in cases.iter().zip(&out) {
        let v = o.verdict.as_ref().expect("verdict");
        assert_eq!(
            (v.status, v.seq),
            (*status, 0),
            "{name}: no sequence number used"
        );
        assert_eq!(o.frame, p.frame, "{name}");
    }
    // Nothing above consumed a sequence number: the next packet carries 1.
    let out = rtl.process(&[outbound(0, &ip)]).expect("process");
    assert_eq!(
        out[0].verdict.as_ref().map(|v| (v.status, v.seq)),
        Some((Status::Ok, 1))
    );
    // An inner packet too big for MAX_FRAME once encapsulated.
    let big = inner_packet(&mut rng, 0, true, 9216 - 14 - 20, 0, true);
    let out = rtl.process(&[outbound(0, &big)]).expect("process");
    assert_eq!(
        out[0].verdict.as_ref().map(|v| v.status),
        Some(Status::TooBig)
    );
}

#[test]
fn sequence_numbers_stop_at_the_end_of_their_space() {
    let t = [Tunnel {
        seq: u64::from(u32::MAX) - 2,
        ..Tunnel::new(0x3201)
    }];
    let mut rtl = rtl_with(&t);
    let mut tx = sender(&t);
    let mut rng = StdRng::seed_from_u64(4);
    let ips: Vec<Vec<u8>> = (0..4)
        .map(|_| inner_packet(&mut rng, 0, false, 64, 0, true))
        .collect();
    let out = rtl
        .process(&ips.iter().map(|ip| outbound(0, ip)).collect::<Vec<_>>())
        .expect("process");
    let mut buf = vec![0u8; 512];
    for (i, (ip, o)) in ips.iter().zip(&out).enumerate() {
        let sw = tx.outbound.encapsulate(ip, &mut buf);
        let v = o.verdict.as_ref().expect("verdict");
        match sw {
            Ok(espo_ipsec::engine::Encapsulated::Protected { len, seq, .. }) => {
                assert_eq!((v.status, v.seq), (Status::Ok, seq), "packet {i}");
                assert_eq!(&o.frame[14..], &buf[..len]);
                let exhausted = v.events.contains(&(EventCode::SeqExhausted, 0));
                assert_eq!(
                    exhausted,
                    seq == u64::from(u32::MAX),
                    "packet {i}: SEQ_EXHAUSTED event"
                );
            }
            Err(DropReason::SeqExhausted) => {
                assert_eq!(v.status, Status::SeqExhausted, "packet {i}")
            }
            other => panic!("software: {other:?}"),
        }
    }
    assert_eq!(
        out[3].verdict.as_ref().map(|v| v.status),
        Some(Status::SeqExhausted)
    );
}

#[test]
fn lifetimes_raise_events_once_and_a_hard_limit_stops_the_sa() {
    let t = Tunnel::new(0x3301);
    let mut rtl = Rtl::new();
    let mut e = t.entry(true);
    e.soft_packets = 3;
    e.hard_packets = 5;
    e.soft_bytes = 150;
    assert_eq!(rtl.write_sa(1, &e, None).expect("write"), Status::Ok);
    let mut rng = StdRng::seed_from_u64(6);
    let ips: Vec<Vec<u8>> = (0..7)
        .map(|_| inner_packet(&mut rng, 0, false, 60, 0, true))
        .collect();
    let out = rtl
        .process(
            &ips.iter()
                .map(|ip| PacketIn {
                    frame: frame(ip),
                    direction: Direction::Outbound {
                        sa_index: 1,
                        bypass: false,
                    },
                })
                .collect::<Vec<_>>(),
        )
        .expect("process");
    let events: Vec<_> = out
        .iter()
        .map(|o| o.verdict.as_ref().map(|v| (v.status, v.events.clone())))
        .collect();
    // 60-byte packets: 180 bytes >= 150 at the third packet, with the packet limit 3 too.
    assert_eq!(
        events[2],
        Some((Status::Ok, vec![(EventCode::LifetimeSoft, 3)]))
    );
    assert_eq!(
        events[4],
        Some((Status::Ok, vec![(EventCode::LifetimeHard, 2)]))
    );
    for i in [0, 1, 3] {
        assert_eq!(events[i], Some((Status::Ok, vec![])), "packet {i}");
    }
    for i in [5, 6] {
        assert_eq!(events[i], Some((Status::SaExpired, vec![])), "packet {i}");
    }
    let (status, state) = rtl.read_sa(1).expect("read");
    assert_eq!(status, Status::Ok);
    assert_eq!((state.packets, state.bytes, state.seq), (5, 300, 5));
    assert!(state.valid && state.soft_expired && state.hard_expired);
}

#[test]
fn register_port_refuses_what_the_card_cannot_hold() {
    let mut rtl = Rtl::new();
    let good = Tunnel::new(0x3401).entry(false);
    let cases: Vec<(&str, u32, SaEntry, Status)> = vec![
        (
            "CBC",
            1,
            SaEntry {
                alg: Some(AlgId::AesCbc128),
                ..good.clone()
            },
            Status::AlgUnsupported,
        ),
        (
            "SPI 0",
            1,
            SaEntry {
                spi: 0,
                ..good.clone()
            },
            Status::InvalidField,
        ),
        (
            "window too large",
            1,
            SaEntry {
                replay_window: 4097,
                ..good.clone()
            },
            Status::InvalidField,
        ),
        (
            "32-bit SEQ beyond 2^32-1",
            1,
            SaEntry {
                outbound: true,
                seq: 1 << 32,
                ..good.clone()
            },
            Status::InvalidField,
        ),
        (
            "index beyond the table",
            4096,
            good.clone(),
            Status::InvalidSaIndex,
        ),
        ("valid", 1, good.clone(), Status::Ok),
        (
            "same SPI and destination elsewhere",
            2,
            good.clone(),
            Status::InvalidField,
        ),
        ("rewrite at the same index", 1, good.clone(), Status::Ok),
    ];
    for (name, index, e, status) in cases {
        assert_eq!(
            rtl.write_sa(index, &e, None).expect("write"),
            status,
            "{name}"
        );
    }
    assert_eq!(
        rtl.admin(AdminOpcode::Unknown(9), false, 1)
            .expect("admin")
            .status,
        Status::InvalidOpcode
    );
    assert_eq!(
        rtl.admin(AdminOpcode::Nop, false, 0).expect("admin").status,
        Status::Ok
    );
    let (_, s) = rtl.read_sa(1).expect("read");
    assert!(s.valid);
    assert_eq!(s.window, 64);
    let (_, s) = rtl.invalidate_sa(1).expect("invalidate");
    assert!(s.valid, "the final state is exported before the entry goes");
    assert!(!rtl.read_sa(1).expect("read").1.valid);
    // The lookup entry went with it: the same key may now live at another index.
    assert_eq!(rtl.write_sa(2, &good, None).expect("write"), Status::Ok);
}

#[test]
fn inbound_lookup_finds_every_sa_of_a_full_set_and_counts_match_the_software_engine() {
    // 300 inbound SAs with scattered SPIs in one table, then traffic on a sample of them.
    let t: Vec<Tunnel> = (0..300u32)
        .map(|i| Tunnel {
            outer_v6: i % 2 == 1,
            ..Tunnel::new(0x9e37_79b9u32.wrapping_mul(i + 1) | 1)
        })
        .collect();
    let mut rtl = rtl_with(&t);
    let mut tx = sender(&t);
    let mut rx = receiver(&t);
    let mut rng = StdRng::seed_from_u64(8);
    let mut frames = Vec::new();
    for k in (0..t.len()).step_by(7) {
        for _ in 0..2 {
            let ip = inner_packet(&mut rng, k, false, 100 + k, 0, true);
            let mut buf = vec![0u8; 2048];
            let Ok(espo_ipsec::engine::Encapsulated::Protected { len, .. }) =
                tx.outbound.encapsulate(&ip, &mut buf)
            else {
                panic!("software refused tunnel {k}");
            };
            frames.push((k, frame(&buf[..len])));
        }
    }
    let out = rtl
        .process(
            &frames
                .iter()
                .map(|(_, f)| inbound(f.clone()))
                .collect::<Vec<_>>(),
        )
        .expect("process");
    for ((k, f), o) in frames.iter().zip(&out) {
        let v = o.verdict.as_ref().expect("verdict");
        assert_eq!(
            (v.status, v.sa_index),
            (Status::Ok, in_index(*k)),
            "tunnel {k}"
        );
        let mut b = f[14..].to_vec();
        rx.inbound.decapsulate(&mut b).expect("software accepts");
    }
    for k in (0..t.len()).step_by(7) {
        let (_, s) = rtl.read_sa(in_index(k)).expect("read");
        let i = rx
            .inbound
            .sa_index(
                t[k].spi,
                if t[k].outer_v6 {
                    "2001:db8::2".parse().unwrap()
                } else {
                    "192.0.2.2".parse().unwrap()
                },
            )
            .expect("sw SA");
        let c = &rx.inbound.sas()[i].counters;
        assert_eq!(
            (s.packets, s.bytes),
            (c.packets, c.bytes),
            "tunnel {k}: counters"
        );
        assert_eq!(s.seq, 2, "tunnel {k}: window top");
    }
}
