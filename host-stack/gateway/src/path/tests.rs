//! The engine interface over the software engine, with the shipped example configurations.

use std::path::Path;

use proptest::prelude::*;

use super::*;
use espo_config::Config;
use espo_ipsec::engine::SoftwareEngine;

fn example(path: &str) -> SoftwareEngine {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(path);
    let config = Config::load(&full).unwrap_or_else(|e| panic!("{e}"));
    config.software_engine().unwrap()
}

/// An IPv4 (`v6 == false`) or IPv6 UDP packet of `len` bytes from site 1 to site 2.
fn inner(len: usize, v6: bool, seed: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    if v6 {
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p[6] = 17;
        p[7] = 64;
        p[8..24].copy_from_slice(&"fd00:1::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"fd00:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p[44..46].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    } else {
        let mut h = espo_ipsec::wire::ipv4::Packet::new_unchecked(&mut p[..]);
        h.set_version(4);
        h.set_header_len(20);
        h.set_total_len(len as u16);
        h.set_hop_limit(64);
        h.set_next_header(espo_ipsec::wire::IpProtocol::Udp);
        h.set_src_addr([10, 1, 0, 2].into());
        h.set_dst_addr([10, 2, 0, 2].into());
        h.fill_checksum();
        p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    }
    let start = if v6 { 48 } else { 28 };
    for (i, b) in p[start..].iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
    p
}

#[test]
fn a_batch_goes_through_both_halves_packet_by_packet() {
    for variant in ["esp", "ah", "esp-ah"] {
        let mut tx = example(&format!("gw-gw/{variant}/gw-a.toml"));
        let mut rx = example(&format!("gw-gw/{variant}/gw-b.toml"));
        let originals: Vec<Vec<u8>> = (0..BATCH_FOR_TEST)
            .map(|i| inner(60 + i * 97, i % 3 == 0, i as u8))
            .collect();
        let mut batch: Vec<PacketBuf> = originals
            .iter()
            .map(|p| {
                let mut b = PacketBuf::default();
                assert!(b.load(p));
                b
            })
            .collect();
        // One packet no policy covers: dropped on its own, the rest unaffected.
        let mut stray = inner(100, false, 9);
        stray[16..20].copy_from_slice(&[10, 3, 0, 2]);
        espo_ipsec::wire::ipv4::Packet::new_unchecked(&mut stray[..]).fill_checksum();
        let mut b = PacketBuf::default();
        b.load(&stray);
        batch.push(b);

        let expected: Vec<usize> = originals
            .iter()
            .map(|p| p.len() + OutboundEngine::overhead(&tx.outbound, p).unwrap().unwrap())
            .collect();
        let mut verdicts = Vec::new();
        OutboundEngine::encapsulate(&mut tx.outbound, &mut batch, &mut verdicts);
        assert_eq!(verdicts.len(), batch.len());
        assert_eq!(
            verdicts.last(),
            Some(&Err(DropReason::NoPolicy)),
            "{variant}"
        );
        for (i, v) in verdicts[..originals.len()].iter().enumerate() {
            assert!(
                matches!(v, Ok(Outgoing::Protected { .. })),
                "{variant} packet {i}: {v:?}"
            );
            assert_eq!(
                batch[i].packet().len(),
                expected[i],
                "{variant}: overhead() is exact"
            );
            assert!(expected[i] - originals[i].len() <= tx.outbound.max_overhead());
        }

        batch.pop();
        let mut verdicts = Vec::new();
        InboundEngine::decapsulate(&mut rx.inbound, &mut batch, &mut verdicts);
        for (i, v) in verdicts.iter().enumerate() {
            assert!(
                matches!(v, Ok(Incoming::Inner { .. })),
                "{variant} packet {i}: {v:?}"
            );
            assert_eq!(batch[i].packet(), &originals[i][..], "{variant} packet {i}");
        }

        let mut snap = Vec::new();
        OutboundEngine::snapshot(&tx.outbound, &mut snap);
        // Every SA of the bundle counted every packet it protected.
        assert!(!snap.is_empty());
        assert!(
            snap.iter().all(|s| s.packets == originals.len() as u64),
            "{variant}: {snap:?}"
        );
        assert!(
            snap.iter()
                .all(|s| s.direction == Direction::Out && s.placement == Placement::Software)
        );
        let mut snap = Vec::new();
        InboundEngine::snapshot(&rx.inbound, &mut snap);
        assert!(
            snap.iter().any(|s| s.seq == originals.len() as u64),
            "{variant}: {snap:?}"
        );
    }
}

const BATCH_FOR_TEST: usize = 12;

#[test]
fn a_replayed_packet_is_a_counted_drop_in_its_batch() {
    let mut tx = example("gw-gw/esp/gw-a.toml");
    let mut rx = example("gw-gw/esp/gw-b.toml");
    let mut one = vec![PacketBuf::default()];
    one[0].load(&inner(200, false, 1));
    let mut v = Vec::new();
    OutboundEngine::encapsulate(&mut tx.outbound, &mut one, &mut v);
    let wire = one[0].packet().to_vec();
    let mut batch: Vec<PacketBuf> = (0..2).map(|_| PacketBuf::default()).collect();
    batch[0].load(&wire);
    batch[1].load(&wire);
    let mut v = Vec::new();
    InboundEngine::decapsulate(&mut rx.inbound, &mut batch, &mut v);
    assert!(matches!(v[0], Ok(Incoming::Inner { spi: 0x1001 })));
    assert_eq!(v[1], Err(DropReason::Replayed));
}

#[test]
fn packet_buffers_refuse_what_does_not_fit() {
    let mut b = PacketBuf::default();
    assert!(!b.load(&vec![0u8; MAX_PACKET + 1]));
    b.set_range(10..BUF_LEN + 100);
    assert_eq!(b.range(), 10..BUF_LEN);
    b.set_range(BUF_LEN + 5..BUF_LEN + 9);
    assert!(b.packet().is_empty());
    // Filled in place: the filler gets exactly the packet's length, at the headroom.
    assert!(b.load_with(300, |dst| {
        assert_eq!(dst.len(), 300);
        dst.fill(9);
        true
    }));
    assert_eq!(
        (b.range(), b.packet()),
        (HEADROOM..HEADROOM + 300, &[9u8; 300][..])
    );
    // Too long (the filler is not called) or a filler that fails: nothing is left.
    assert!(!b.load_with(MAX_PACKET + 1, |_| unreachable!()));
    assert!(b.packet().is_empty());
    assert!(b.load_with(20, |_| true));
    assert!(!b.load_with(40, |_| false));
    assert!(b.packet().is_empty());
}

proptest! {
    #[test]
    fn overhead_is_exact_and_bounded(len in 48usize..9000, v6 in any::<bool>(), which in 0usize..6) {
        let name = [
            "gw-gw/esp/gw-a.toml", "gw-gw/ah/gw-a.toml", "gw-gw/esp-ah/gw-a.toml",
            "server-gw/esp/gw.toml", "server-server/esp/server-a.toml", "server-server/esp-ah/server-b.toml",
        ][which];
        let mut e = example(name);
        let config_v6_ok = which < 3;
        let mut pkt = inner(len, v6 && config_v6_ok, 3);
        // Re-address the packet to the example's selectors.
        if which == 3 {
            pkt[12..16].copy_from_slice(&[10, 2, 0, 2]);
            pkt[16..20].copy_from_slice(&[10, 9, 0, 1]);
        } else if which == 4 {
            pkt[12..16].copy_from_slice(&[192, 0, 2, 1]);
            pkt[16..20].copy_from_slice(&[192, 0, 2, 2]);
        } else if which == 5 {
            pkt[12..16].copy_from_slice(&[192, 0, 2, 2]);
            pkt[16..20].copy_from_slice(&[192, 0, 2, 1]);
        }
        if espo_ipsec::wire::Version::of(&pkt) == Some(espo_ipsec::wire::Version::Ipv4) {
            espo_ipsec::wire::ipv4::Packet::new_unchecked(&mut pkt[..]).fill_checksum();
        }
        let overhead = OutboundEngine::overhead(&e.outbound, &pkt).unwrap().unwrap();
        prop_assert!(overhead <= e.outbound.max_overhead());
        let mut batch = vec![PacketBuf::default()];
        batch[0].load(&pkt);
        let mut v = Vec::new();
        OutboundEngine::encapsulate(&mut e.outbound, &mut batch, &mut v);
        prop_assert!(v[0].is_ok(), "{:?}", v[0]);
        prop_assert_eq!(batch[0].packet().len(), pkt.len() + overhead);
    }
}

#[test]
fn the_tunnel_names_its_outermost_sa() {
    for (variant, spi) in [("esp", 0x1001), ("ah", 0x1002), ("esp-ah", 0x1102)] {
        let e = example(&format!("gw-gw/{variant}/gw-a.toml"));
        let pkt = inner(1000, false, 1);
        let tunnel = OutboundEngine::tunnel(&e.outbound, &pkt).unwrap().unwrap();
        assert_eq!(tunnel.spi, Some(spi), "{variant}");
        assert_eq!(
            Some(tunnel.overhead),
            OutboundEngine::overhead(&e.outbound, &pkt).unwrap(),
            "{variant}"
        );
        assert_eq!(tunnel.path, None, "the engine alone learns no path");
    }
}

/// A prefix goes into the room in front of the packet, which stays as it was; without
/// that much room nothing is written.
#[test]
fn a_prefix_goes_in_front_of_the_packet_where_there_is_room() {
    let mut p = PacketBuf::default();
    assert!(p.load(&[1, 2, 3]));
    let start = p.range().start;
    assert_eq!(p.with_prefix(&[9, 8]), Some(&[9, 8, 1, 2, 3][..]));
    assert_eq!(p.packet(), &[1, 2, 3]);
    assert_eq!(p.range().start, start);
    p.set_range(1..3);
    assert_eq!(p.with_prefix(&[7, 7]), None);
    assert_eq!(p.with_prefix(&[7]), Some(&[7, 0, 0][..]));
    p.set_range(0..0);
    assert_eq!(p.with_prefix(&[]), Some(&[][..]));
    assert_eq!(p.with_prefix(&[5]), None);
}
