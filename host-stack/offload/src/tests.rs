//! The engine over the card model (deterministic, inline pacing): placement, both paths,
//! moves with their state. Faults, lifetimes and long runs are in the espo package's
//! integration tests and `espo validate`.

use std::path::Path as FsPath;
use std::sync::Arc;

use espo_driver::card::Card;
use espo_driver::model::{MemLink, ModelDevice, ModelHandle, ModelParams};

use super::*;
use espo_config::Config;
use espo_ipsec::engine::Encapsulated;
use espo_ipsec::wire::{ChecksumCaps, IpProtocol, ipv4, udp};

/// An IPv4/UDP packet of `len` bytes (at least 28) from 10.1.0.1 to 10.2.0.1, its payload
/// filled with `fill`.
pub(crate) fn udp_packet(len: usize, fill: u8) -> Vec<u8> {
    let len = len.clamp(28, 65535);
    let mut p = vec![fill; len];
    let (src, dst) = ([10, 1, 0, 1].into(), [10, 2, 0, 1].into());
    let ip = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: len - ipv4::HEADER_LEN,
        hop_limit: 64,
        tos: 0,
        dont_frag: true,
        ident: 0,
    };
    ip.emit(
        &mut ipv4::Packet::new_unchecked(&mut p[..]),
        &ChecksumCaps::default(),
    )
    .expect("header fits");
    let u = udp::Repr {
        src_port: 40000,
        dst_port: 9,
        payload_len: len - 28,
    };
    u.emit(
        &mut udp::Packet::new_unchecked(&mut p[ipv4::HEADER_LEN..]),
        &src.into(),
        &dst.into(),
        &ChecksumCaps::offloaded(),
    )
    .expect("datagram fits");
    p
}

pub(crate) const KEY128: &str = "000102030405060708090a0b0c0d0e0f10111213";
/// The inbound SA's key: each direction has its own.
pub(crate) const KEY128_IN: &str = "202122232425262728292a2b2c2d2e2f30313233";

/// One AES-GCM SA out (0x1001) and in (0x2001), one ChaCha20 SA out (0x1002) for other
/// traffic: 10.1/16 -> 10.2/16 on the card, 10.1/16 -> 10.3/16 in software.
pub(crate) fn config(extra_sa: &str) -> Config {
    let text = format!(
        "[[sa]]\nspi = 0x1001\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nencryption = \"aes-gcm-128\"\nkey = \"{KEY128}\"\n{extra_sa}\n\
         [[sa]]\nspi = 0x1002\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nencryption = \"chacha20-poly1305\"\nkey = \"{}\"\n\
         [[sa]]\nspi = 0x2001\nprotocol = \"esp\"\nsrc = \"192.0.2.2\"\ndst = \"192.0.2.1\"\nencryption = \"aes-gcm-128\"\nkey = \"{KEY128_IN}\"\nreplay_window = 64\n\
         [[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n\
         [[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.3.0.0/16\"\naction = \"protect\"\nsa = [0x1002]\n\
         [[policy]]\ndir = \"in\"\nsrc = \"10.2.0.0/16\"\ndst = \"10.1.0.0/16\"\naction = \"protect\"\nsa = [0x2001]\n",
        "ab".repeat(36)
    );
    Config::parse(&text, FsPath::new("offload-test.toml")).expect("config")
}

/// The peer: the same SAs, directions swapped.
pub(crate) fn peer_config() -> Config {
    let text = format!(
        "[[sa]]\nspi = 0x1001\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nencryption = \"aes-gcm-128\"\nkey = \"{KEY128}\"\nreplay_window = 0\n\
         [[sa]]\nspi = 0x2001\nprotocol = \"esp\"\nsrc = \"192.0.2.2\"\ndst = \"192.0.2.1\"\nencryption = \"aes-gcm-128\"\nkey = \"{KEY128_IN}\"\n\
         [[policy]]\ndir = \"in\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n\
         [[policy]]\ndir = \"out\"\nsrc = \"10.2.0.0/16\"\ndst = \"10.1.0.0/16\"\naction = \"protect\"\nsa = [0x2001]\n"
    );
    Config::parse(&text, FsPath::new("peer.toml")).expect("peer config")
}

pub(crate) fn rig(
    config: &Config,
    options: OffloadOptions,
) -> (OffloadEngine, ModelHandle, MemLink) {
    let dev = ModelDevice::with_params(ModelParams::default());
    let model = dev.handle();
    let (near, tap) = MemLink::pair();
    model.attach_link(Box::new(near));
    let card = Card::open(Arc::new(dev), card_config()).expect("card");
    let engine =
        OffloadEngine::new(&config.sas, &config.policies, Some(card), options).expect("engine");
    (engine, model, tap)
}

/// An IPv4/UDP packet from `src` to `dst` of `len` bytes.
pub(crate) fn packet(src: [u8; 4], dst: [u8; 4], len: usize, id: u16) -> Vec<u8> {
    let mut p = udp_packet(len, id as u8);
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[10..12].copy_from_slice(&[0, 0]);
    let sum = !espo_ipsec::wire::checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

pub(crate) fn run_until_idle(engine: &mut OffloadEngine) -> Vec<TxReport> {
    let mut reports = Vec::new();
    for _ in 0..100_000 {
        engine.poll();
        engine.take_tx_reports(&mut reports);
        if engine.tx_outstanding() == 0 {
            return reports;
        }
    }
    panic!("the engine did not finish");
}

#[test]
fn gcm_sas_go_on_the_card_and_the_rest_stays_in_software() {
    let (engine, _, _) = rig(&config(""), OffloadOptions::default());
    let p = engine.placements();
    let find = |spi, dir| p.iter().find(|s| s.spi == spi && s.dir == dir).unwrap();
    assert!(matches!(
        find(0x1001, Direction::Out).placement,
        Placement::Card { .. }
    ));
    assert!(matches!(
        find(0x2001, Direction::In).placement,
        Placement::Card { .. }
    ));
    let chacha = find(0x1002, Direction::Out);
    assert_eq!(chacha.placement, Placement::Software);
    assert_eq!(
        chacha.why_software,
        Some(SoftwareReason::Unfit(Unfit::Algorithm(
            espo_ipsec::crypto::EncryptionAlgorithm::ChaCha20Poly1305
        )))
    );
}

#[test]
fn outbound_bytes_are_the_software_engines_and_in_submission_order() {
    let cfg = config("");
    let (mut engine, _, tap) = rig(&cfg, OffloadOptions::default());
    let mut reference = cfg.software_engine().unwrap();
    let packets: Vec<Vec<u8>> = (0..40u16)
        .map(|i| {
            let dst = if i % 3 == 0 {
                [10, 3, 0, 1]
            } else {
                [10, 2, 0, 1]
            };
            packet([10, 1, 0, 1], dst, 60 + usize::from(i) * 37, i)
        })
        .collect();
    for (i, p) in packets.iter().enumerate() {
        engine.submit(i as u64, p);
    }
    let reports = run_until_idle(&mut engine);
    assert_eq!(reports.len(), 40);
    let wire = tap.drain();
    assert_eq!(wire.len(), 40, "every packet left through the card's port");
    let mut order: Vec<u64> = reports.iter().map(|r| r.tag).collect();
    order.sort_unstable();
    assert_eq!(order, (0..40).collect::<Vec<_>>());
    for (i, p) in packets.iter().enumerate() {
        let mut out = vec![0u8; p.len() + 256];
        let Ok(Encapsulated::Protected { len, spi, seq }) =
            reference.outbound.encapsulate(p, &mut out)
        else {
            panic!("reference refused packet {i}");
        };
        let report = reports.iter().find(|r| r.tag == i as u64).unwrap();
        let path = if spi == 0x1001 {
            Path::Card
        } else {
            Path::Software
        };
        assert_eq!(
            report.outcome,
            Ok(SentAs::Esp { spi, seq, path }),
            "packet {i}"
        );
        if spi == 0x1001 {
            assert_eq!(
                wire[i].data[14..],
                out[..len],
                "packet {i}: the card's bytes"
            );
        } else {
            // ChaCha20-Poly1305 is deterministic too: the same bytes.
            assert_eq!(
                wire[i].data[14..],
                out[..len],
                "packet {i}: software's bytes"
            );
        }
    }
    assert_eq!(engine.counters().tx_card, 26);
    assert_eq!(engine.counters().tx_software, 14);
}

/// Sends `n` packets from the peer through the port and collects the engine's reports.
pub(crate) fn receive_from_peer(
    engine: &mut OffloadEngine,
    peer: &mut SoftwareEngine,
    tap: &MemLink,
    ids: std::ops::Range<u16>,
    keep: &mut Vec<Vec<u8>>,
) -> Vec<RxReport> {
    let n = ids.len();
    for i in ids {
        let inner = packet([10, 2, 0, 9], [10, 1, 0, 9], 100, i);
        let mut out = vec![0u8; 400];
        let Ok(Encapsulated::Protected { len, .. }) = peer.outbound.encapsulate(&inner, &mut out)
        else {
            panic!("peer refused");
        };
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        frame.extend_from_slice(&out[..len]);
        tap.send_bytes(&frame);
        keep.push(frame);
    }
    collect_rx(engine, n)
}

pub(crate) fn collect_rx(engine: &mut OffloadEngine, n: usize) -> Vec<RxReport> {
    let mut got = Vec::new();
    for _ in 0..100_000 {
        engine.poll();
        engine.take_rx_reports(&mut got);
        if got.len() >= n {
            return got;
        }
    }
    panic!("only {} of {n} frames came back", got.len());
}

#[test]
fn inbound_moves_both_ways_keep_replay_protection() {
    let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
    let mut peer = peer_config().software_engine().unwrap();
    let mut frames = Vec::new();
    let got = receive_from_peer(&mut engine, &mut peer, &tap, 0..10, &mut frames);
    assert!(got.iter().all(|r| matches!(
        r.outcome,
        Ok(Received::Inner {
            path: Path::Card,
            ..
        })
    )));
    // Card -> software: a replay of a packet the card accepted is refused by software.
    assert!(engine.move_to_software(0x2001, Direction::In));
    tap.send_bytes(&frames[3]);
    let r = collect_rx(&mut engine, 1);
    assert_eq!(r[0].outcome, Err(DropReason::Replayed));
    let got = receive_from_peer(&mut engine, &mut peer, &tap, 10..15, &mut frames);
    assert!(got.iter().all(|r| matches!(
        r.outcome,
        Ok(Received::Inner {
            path: Path::Software,
            ..
        })
    )));
    // Software -> card: a replay of what software accepted is refused by the card.
    assert!(engine.move_to_card(0x2001, Direction::In));
    tap.send_bytes(&frames[12]);
    tap.send_bytes(&frames[5]);
    let r = collect_rx(&mut engine, 2);
    assert_eq!(r[0].outcome, Err(DropReason::Replayed));
    assert_eq!(r[1].outcome, Err(DropReason::Replayed));
    let got = receive_from_peer(&mut engine, &mut peer, &tap, 15..20, &mut frames);
    assert!(got.iter().all(|r| matches!(
        r.outcome,
        Ok(Received::Inner {
            path: Path::Card,
            ..
        })
    )));
    assert_eq!(engine.counters().moves_to_software, 1);
    assert_eq!(engine.counters().moves_to_card, 1);
}

#[test]
fn outbound_moves_continue_the_sequence_numbers() {
    let cfg = config("seq = 1000");
    let (mut engine, _, tap) = rig(&cfg, OffloadOptions::default());
    let p = packet([10, 1, 0, 1], [10, 2, 0, 1], 200, 1);
    let mut seqs = Vec::new();
    for round in 0..3 {
        for i in 0..5 {
            engine.submit(round * 10 + i, &p);
        }
        // Move while the packets are still on their way.
        engine.poll();
        match round {
            0 => assert!(engine.move_to_software(0x1001, Direction::Out)),
            _ => assert!(engine.move_to_card(0x1001, Direction::Out)),
        }
        for r in run_until_idle(&mut engine) {
            match r.outcome {
                Ok(SentAs::Esp {
                    spi: 0x1001, seq, ..
                }) => seqs.push(seq),
                other => panic!("{other:?}"),
            }
        }
    }
    let wire = tap.drain();
    assert_eq!(wire.len(), 15);
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 15, "no sequence number used twice: {seqs:?}");
    assert!(sorted[0] == 1001, "continues from the configured number");
    assert_eq!(engine.counters().moves_to_software, 1);
    assert_eq!(engine.counters().moves_to_card, 1);
}

/// RFC 4301 §5.2 on the card path: the first inbound policy matching the inner packet
/// decides. Site 10.9/16 comes through SA 0x2001, every other 10/8 site through SA 0x2002
/// (both on the card): the peer of SA 0x2002 cannot send as 10.9/16.
#[test]
fn on_the_card_the_first_matching_inbound_policy_decides() {
    let sa = |spi: u32, src: &str, key: &str| {
        format!(
            "[[sa]]\nspi = {spi:#x}\nprotocol = \"esp\"\nsrc = \"{src}\"\ndst = \"192.0.2.1\"\nencryption = \"aes-gcm-128\"\nkey = \"{key}\"\n"
        )
    };
    let key_a = "a0".repeat(20);
    let key_b = "b0".repeat(20);
    let sas = format!(
        "{}{}",
        sa(0x2001, "192.0.2.2", &key_a),
        sa(0x2002, "192.0.2.3", &key_b)
    );
    let policy = |dir: &str, src: &str, spi: u32| {
        format!(
            "[[policy]]\ndir = \"{dir}\"\nsrc = \"{src}\"\ndst = \"10.1.0.0/16\"\naction = \"protect\"\nsa = [{spi:#x}]\n"
        )
    };
    let ours = Config::parse(
        &format!(
            "{sas}{}{}",
            policy("in", "10.9.0.0/16", 0x2001),
            policy("in", "10.0.0.0/8", 0x2002)
        ),
        FsPath::new("two-sites.toml"),
    )
    .unwrap();
    let peer_b = Config::parse(
        &format!("{sas}{}", policy("out", "10.0.0.0/8", 0x2002)),
        FsPath::new("peer-b.toml"),
    )
    .unwrap();
    let (mut engine, _, tap) = rig(&ours, OffloadOptions::default());
    assert!(
        engine
            .placements()
            .iter()
            .all(|p| matches!(p.placement, Placement::Card { .. })),
        "both inbound SAs on the card"
    );
    let mut peer = peer_b.software_engine().unwrap();
    let mut send = |inner: &[u8]| {
        let mut out = vec![0u8; 400];
        let Ok(Encapsulated::Protected { len, spi, .. }) =
            peer.outbound.encapsulate(inner, &mut out)
        else {
            panic!("peer refused");
        };
        assert_eq!(spi, 0x2002);
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        frame.extend_from_slice(&out[..len]);
        tap.send_bytes(&frame);
    };
    send(&packet([10, 9, 1, 1], [10, 1, 0, 9], 100, 1));
    send(&packet([10, 7, 1, 1], [10, 1, 0, 9], 100, 2));
    let got = collect_rx(&mut engine, 2);
    assert_eq!(got[0].outcome, Err(DropReason::PolicyMismatch));
    assert!(
        matches!(
            got[1].outcome,
            Ok(Received::Inner {
                path: Path::Card,
                spi: 0x2002,
                ..
            })
        ),
        "{:?}",
        got[1].outcome
    );
}

/// An IPv6 ESP frame with an extension header of type `kind` (0: Hop-by-Hop, 60:
/// Destination Options; 8 bytes, a PadN option) between the fixed header and ESP.
fn with_extension_header(frame: &[u8], kind: u8) -> Vec<u8> {
    let mut f = frame[..14 + 40].to_vec();
    let next = f[14 + 6];
    f[14 + 6] = kind;
    let len = u16::from_be_bytes([f[14 + 4], f[14 + 5]]) + 8;
    f[14 + 4..14 + 6].copy_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    f.extend_from_slice(&frame[14 + 40..]);
    f
}

/// An inbound AES-GCM SA with IPv6 endpoints (0x2006, 10.6/16 -> 10.1/16) added to the
/// engine, on the card; and six frames the peer sent on it (sequence numbers 1 to 6).
fn ipv6_card_sa() -> (OffloadEngine, ModelHandle, MemLink, Vec<Vec<u8>>) {
    use espo_ipsec::sa::{OutboundSa, SaParams};
    use espo_ipsec::selector::Cidr;
    use espo_ipsec::spd::PolicyId;
    use espo_ipsec::spec::{PolicyAction, PolicySpec};

    let cfg = config("");
    let (mut engine, model, tap) = rig(&cfg, OffloadOptions::default());
    let mut spec = cfg.sas[2].clone();
    spec.spi = 0x2006;
    spec.src = "2001:db8::2".parse().unwrap();
    spec.dst = "2001:db8::1".parse().unwrap();
    engine.add_sa(&spec, Direction::In).unwrap();
    let policy = |dir| PolicySpec {
        dir,
        src: "10.6.0.0/16".parse::<Cidr>().unwrap(),
        dst: "10.1.0.0/16".parse::<Cidr>().unwrap(),
        protocol: espo_ipsec::selector::ProtocolSelector::Any,
        src_port: espo_ipsec::selector::PortRange::ANY,
        dst_port: espo_ipsec::selector::PortRange::ANY,
        action: PolicyAction::Protect,
        sa: vec![0x2006],
    };
    engine
        .add_policy(&policy(Direction::In), PolicyId(20), None)
        .unwrap();
    assert!(matches!(
        v6_placement(&engine),
        Some((Placement::Card { .. }, 0))
    ));
    let mut peer = SoftwareEngine::default();
    let params = SaParams::from_spec(&spec).unwrap();
    peer.outbound.add_sa(OutboundSa::new(params, 0)).unwrap();
    peer.outbound
        .add_policy(&policy(Direction::Out), PolicyId(20), None)
        .unwrap();
    let frames = (1..=6u16)
        .map(|i| {
            let inner = packet([10, 6, 0, 9], [10, 1, 0, 9], 100, i);
            let mut out = vec![0u8; 400];
            let Ok(Encapsulated::Protected { len, seq, .. }) =
                peer.outbound.encapsulate(&inner, &mut out)
            else {
                panic!("peer refused");
            };
            assert_eq!(seq, u64::from(i));
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xDD];
            f.extend_from_slice(&out[..len]);
            f
        })
        .collect();
    (engine, model, tap, frames)
}

/// Where SA 0x2006 runs, and its packet count.
fn v6_placement(e: &OffloadEngine) -> Option<(Placement, u64)> {
    e.placements()
        .iter()
        .find(|p| p.spi == 0x2006)
        .map(|p| (p.placement, p.counters.packets))
}

#[test]
fn esp_behind_ipv6_extension_headers_on_a_card_sa_shares_the_card_sas_replay_record() {
    let (mut engine, _, tap, frames) = ipv6_card_sa();
    let hbh = |i: usize| with_extension_header(&frames[i], 0);
    let dst_opts = |i: usize| with_extension_header(&frames[i], 60);
    let mut forged = hbh(4);
    let n = forged.len();
    forged[n - 1] ^= 1;
    let sequence = [
        (hbh(0), Ok((Path::Software, 1))),
        (frames[0].clone(), Err(DropReason::Replayed)),
        (frames[1].clone(), Ok((Path::Card, 2))),
        (dst_opts(1), Err(DropReason::Replayed)),
        (hbh(2), Ok((Path::Software, 3))),
        (dst_opts(2), Err(DropReason::Replayed)),
        (frames[3].clone(), Ok((Path::Card, 4))),
        (forged, Err(DropReason::BadIcv)),
        (frames[4].clone(), Ok((Path::Card, 5))),
    ];
    for (i, (frame, want)) in sequence.iter().enumerate() {
        tap.send_bytes(frame);
        let got = collect_rx(&mut engine, 1);
        let outcome = match &got[0].outcome {
            Ok(Received::Inner { path, seq, spi, .. }) => {
                assert_eq!(*spi, 0x2006);
                Ok((*path, *seq))
            }
            Err(reason) => Err(*reason),
            other => panic!("frame {i}: {other:?}"),
        };
        assert_eq!(&outcome, want, "frame {i}");
    }
    assert_eq!(engine.counters().rx_dropped.get(DropReason::SaMoving), 0);
    assert!(matches!(
        v6_placement(&engine),
        Some((Placement::Card { .. }, 5))
    ));
    // Software takes over with everything either accepted.
    assert!(engine.move_to_software(0x2006, Direction::In));
    for f in [hbh(0), frames[1].clone(), hbh(2), frames[3].clone()] {
        tap.send_bytes(&f);
        assert_eq!(
            collect_rx(&mut engine, 1)[0].outcome,
            Err(DropReason::Replayed)
        );
    }
    tap.send_bytes(&frames[5]);
    assert!(matches!(
        collect_rx(&mut engine, 1)[0].outcome,
        Ok(Received::Inner {
            seq: 6,
            path: Path::Software,
            ..
        })
    ));
    // From here the counts are the card's exact ones (it counted the copy of 1 it
    // decapsulated before the host refused it) plus what software accepted.
    assert_eq!(
        v6_placement(&engine),
        Some((Placement::Software, 4 + 2 + 1))
    );
}

#[test]
fn a_frame_the_card_took_before_its_sa_left_is_still_checked_against_the_host_record() {
    let (mut engine, model, tap, frames) = ipv6_card_sa();
    // Software accepts 1 behind an extension header; the card then decapsulates a plain
    // copy of 1 (its own window never saw it) while the host is not looking.
    tap.send_bytes(&with_extension_header(&frames[0], 0));
    assert!(matches!(
        collect_rx(&mut engine, 1)[0].outcome,
        Ok(Received::Inner {
            seq: 1,
            path: Path::Software,
            ..
        })
    ));
    tap.send_bytes(&frames[0]);
    model.run_until_idle();
    // The SA leaves the card before the host meets that frame: still refused.
    assert!(engine.move_to_software(0x2006, Direction::In));
    assert_eq!(
        collect_rx(&mut engine, 1)[0].outcome,
        Err(DropReason::Replayed)
    );
    tap.send_bytes(&frames[1]);
    assert!(matches!(
        collect_rx(&mut engine, 1)[0].outcome,
        Ok(Received::Inner {
            seq: 2,
            path: Path::Software,
            ..
        })
    ));
}

#[test]
fn a_card_on_its_own_port_addresses_frames_to_their_next_hop_and_hands_back_the_link_layer() {
    let macs = Arc::new(NextHopMacs::new(Vec::new()));
    let options = OffloadOptions {
        own_port: Some(Arc::clone(&macs)),
        ..OffloadOptions::default()
    };
    let (mut engine, _, tap) = rig(&config(""), options);
    // 192.0.2.2 not resolved yet: neither the card's SA nor software's may send.
    engine.submit(0, &packet([10, 1, 0, 1], [10, 2, 0, 1], 100, 0));
    engine.submit(1, &packet([10, 1, 0, 1], [10, 3, 0, 1], 100, 1));
    let reports = run_until_idle(&mut engine);
    assert!(
        reports
            .iter()
            .all(|r| r.outcome == Err(DropReason::Unresolved)),
        "{reports:?}"
    );
    assert!(tap.drain().is_empty());
    assert_eq!(engine.counters().tx_dropped.get(DropReason::Unresolved), 2);

    let hop = [0x02, 0xaa, 0, 0, 0, 0x22];
    macs.set(&[("192.0.2.2".parse().unwrap(), hop)]);
    engine.submit(2, &packet([10, 1, 0, 1], [10, 2, 0, 1], 100, 2));
    engine.submit(3, &packet([10, 1, 0, 1], [10, 3, 0, 1], 100, 3));
    // A frame of the link layer leaves as given, in order.
    let arp: Vec<u8> = [[0xff; 6].as_slice(), &[2, 0, 0, 0, 0, 1], &[8, 6], &[0; 28]].concat();
    engine.submit_frame(4, &arp);
    let mut reports = run_until_idle(&mut engine);
    reports.sort_by_key(|r| r.tag);
    assert!(matches!(
        reports[0].outcome,
        Ok(SentAs::Esp {
            path: Path::Card,
            ..
        })
    ));
    assert!(matches!(
        reports[1].outcome,
        Ok(SentAs::Esp {
            path: Path::Software,
            ..
        })
    ));
    assert_eq!(reports[2].outcome, Ok(SentAs::Link));
    let wire = tap.drain();
    assert_eq!(wire.len(), 3);
    assert_eq!(wire[0].data[..6], hop, "the card's ESP to the next hop");
    assert_eq!(wire[1].data[..6], hop, "software's ESP to the next hop");
    assert_eq!(wire[2].data, arp);
    assert_eq!(engine.counters().tx_link, 1);

    // ARP from the port comes back to the link layer; ESP still decapsulates.
    let reply: Vec<u8> = [[2, 0, 0, 0, 0, 1].as_slice(), &hop, &[8, 6], &[1; 28]].concat();
    tap.send_bytes(&reply);
    let got = collect_rx(&mut engine, 1);
    assert_eq!(got[0].outcome, Ok(Received::Link { frame: reply }));
    let mut peer = peer_config().software_engine().unwrap();
    let got = receive_from_peer(&mut engine, &mut peer, &tap, 0..3, &mut Vec::new());
    assert!(got.iter().all(|r| matches!(
        r.outcome,
        Ok(Received::Inner {
            path: Path::Card,
            ..
        })
    )));
    assert_eq!(engine.counters().rx_link, 1);
}

#[test]
fn without_its_own_port_the_engine_leaves_addressing_to_the_ports_owner() {
    let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
    engine.submit(0, &packet([10, 1, 0, 1], [10, 2, 0, 1], 100, 0));
    let reports = run_until_idle(&mut engine);
    assert!(matches!(reports[0].outcome, Ok(SentAs::Esp { .. })));
    assert_eq!(tap.drain()[0].data[..6], OffloadOptions::default().peer_mac);
    // ARP is nothing for the IPsec path there: the port's owner answers it.
    tap.send_bytes(&[[2, 0, 0, 0, 0, 1].as_slice(), &[2; 6], &[8, 6], &[1; 28]].concat());
    let got = collect_rx(&mut engine, 1);
    assert_eq!(got[0].outcome, Err(DropReason::NotIp));
}

#[test]
fn lent_slots_leave_as_the_copied_packets_do_whatever_path_they_take() {
    let cfg = config("");
    let (mut engine, _, tap) = rig(&cfg, OffloadOptions::default());
    let mut reference = cfg.software_engine().unwrap();
    // Card SA, software SA, no policy (bypass would need one: dropped), every size.
    let packets: Vec<Vec<u8>> = (0..30u16)
        .map(|i| {
            let dst = match i % 3 {
                0 => [10, 3, 0, 1],
                1 => [10, 2, 0, 1],
                _ => [10, 2, 0, 2],
            };
            packet([10, 1, 0, 1], dst, 60 + usize::from(i) * 290, i)
        })
        .collect();
    let room = engine.tx_slot_room();
    for (i, p) in packets.iter().enumerate() {
        assert!(p.len() <= room);
        let slot = engine.tx_slot().expect("a card buffer");
        match i % 3 {
            0 => {
                engine.tx_slot_write(&slot, FRAME_HEADER, p).unwrap();
                engine.submit_slot(i as u64, slot, p.len());
            }
            // Written and decided from the caller's bytes.
            1 => engine.submit_into_slot(i as u64, slot, p),
            // The same from two pieces, as a segment's headers and payload come (the
            // head at its IP and UDP headers' end, or a longer one).
            _ => {
                let (head, payload) = p.split_at(28 + i % 7);
                engine.submit_parts_into_slot(i as u64, slot, head, payload);
            }
        }
    }
    // Discarded by policy (no outbound policy for 10.9/16), and too long: one report each,
    // in one piece and in two.
    let stray = packet([10, 1, 0, 1], [10, 9, 0, 1], 100, 99);
    let slot = engine.tx_slot().unwrap();
    engine.tx_slot_write(&slot, FRAME_HEADER, &stray).unwrap();
    engine.submit_slot(100, slot, stray.len());
    let slot = engine.tx_slot().unwrap();
    engine.submit_slot(101, slot, room + 1);
    let slot = engine.tx_slot().unwrap();
    let (head, payload) = stray.split_at(40);
    engine.submit_parts_into_slot(102, slot, head, payload);
    let slot = engine.tx_slot().unwrap();
    engine.submit_parts_into_slot(103, slot, &stray[..28], &vec![0; room]);
    // A head too short to hold the selectors: refused, nothing guessed.
    let slot = engine.tx_slot().unwrap();
    engine.submit_parts_into_slot(104, slot, &packets[1][..10], &packets[1][10..]);
    let reports = run_until_idle(&mut engine);
    assert_eq!(reports.len(), 35);
    let wire = tap.drain();
    assert_eq!(wire.len(), 30, "every packet left through the card's port");
    for (i, p) in packets.iter().enumerate() {
        let mut out = vec![0u8; p.len() + 256];
        let Ok(Encapsulated::Protected { len, spi, seq }) =
            reference.outbound.encapsulate(p, &mut out)
        else {
            panic!("reference refused packet {i}");
        };
        let report = reports.iter().find(|r| r.tag == i as u64).unwrap();
        let path = if spi == 0x1001 {
            Path::Card
        } else {
            Path::Software
        };
        assert_eq!(
            report.outcome,
            Ok(SentAs::Esp { spi, seq, path }),
            "packet {i}"
        );
        assert_eq!(wire[i].data[14..], out[..len], "packet {i}");
    }
    let fate = |tag| reports.iter().find(|r| r.tag == tag).unwrap().outcome;
    assert_eq!(fate(100), Err(DropReason::NoPolicy));
    assert_eq!(fate(101), Err(DropReason::TooBig));
    assert_eq!(fate(102), Err(DropReason::NoPolicy));
    assert_eq!(fate(103), Err(DropReason::TooBig));
    assert_eq!(fate(104), Err(DropReason::Malformed));
    // Every lent buffer came back: a ring's worth can be lent again.
    let mut held = Vec::new();
    while let Some(s) = engine.tx_slot() {
        held.push(s);
    }
    assert_eq!(held.len(), 1 << card_config().ring_log2);
    for s in held {
        engine.release_slot(s);
    }
}

/// The packets of one flow in lent buffers are decided without their selectors being
/// compared again — until a policy changes: each packet after a change goes where the
/// database now says, and a flow met again after another is decided again.
#[test]
fn lent_packets_of_one_flow_follow_each_policy_change() {
    packets_of_one_flow_follow_each_policy_change(|_| false);
}

/// The same, the packets handed over from host memory (`submit_into_slot`, `espo run`'s
/// way), alone and taking turns with lent ones: both ways share the kept head.
#[test]
fn packets_from_host_memory_of_one_flow_follow_each_policy_change() {
    packets_of_one_flow_follow_each_policy_change(|_| true);
    packets_of_one_flow_follow_each_policy_change(|tag| tag % 2 == 0);
    packets_of_one_flow_follow_each_policy_change(|tag| tag % 3 != 1);
}

/// One flow's packets, each handed over from host memory when `from_host` says so for its
/// tag (else written into a lent buffer first), through policy changes.
fn packets_of_one_flow_follow_each_policy_change(from_host: fn(u64) -> bool) {
    use espo_ipsec::selector::Cidr;
    use espo_ipsec::spd::PolicyId;
    use espo_ipsec::spec::{PolicyAction, PolicySpec};

    let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
    let mut tag = 0u64;
    let mut send = |engine: &mut OffloadEngine, dst: [u8; 4]| {
        let p = packet([10, 1, 0, 1], dst, 100, tag as u16);
        let slot = engine.tx_slot().expect("a card buffer");
        if from_host(tag) {
            engine.submit_into_slot(tag, slot, &p);
        } else {
            engine.tx_slot_write(&slot, FRAME_HEADER, &p).unwrap();
            engine.submit_slot(tag, slot, p.len());
        }
        tag += 1;
        let reports = run_until_idle(engine);
        assert_eq!(reports.len(), 1);
        reports[0].outcome
    };
    let spi = |outcome: Result<SentAs, DropReason>| match outcome {
        Ok(SentAs::Esp { spi, .. }) => Ok(spi),
        Ok(other) => panic!("not ESP: {other:?}"),
        Err(reason) => Err(reason),
    };
    let flow = [10, 2, 0, 1];
    for _ in 0..3 {
        assert_eq!(spi(send(&mut engine, flow)), Ok(0x1001));
    }
    // A discard policy ahead of the protecting one, for this flow's destination only.
    let discard = PolicySpec {
        dir: Direction::Out,
        src: "10.1.0.0/16".parse::<Cidr>().unwrap(),
        dst: "10.2.0.1/32".parse::<Cidr>().unwrap(),
        protocol: espo_ipsec::selector::ProtocolSelector::Any,
        src_port: espo_ipsec::selector::PortRange::ANY,
        dst_port: espo_ipsec::selector::PortRange::ANY,
        action: PolicyAction::Discard,
        sa: vec![],
    };
    engine.add_policy(&discard, PolicyId(30), Some(0)).unwrap();
    for _ in 0..2 {
        assert_eq!(spi(send(&mut engine, flow)), Err(DropReason::PolicyDiscard));
    }
    // Another flow in between (kept in its place), then the first one again.
    assert_eq!(spi(send(&mut engine, [10, 3, 0, 1])), Ok(0x1002));
    assert_eq!(spi(send(&mut engine, flow)), Err(DropReason::PolicyDiscard));
    // The discard policy goes: the flow is protected again, on the same SA.
    engine.remove_policy(PolicyId(30)).unwrap();
    for _ in 0..2 {
        assert_eq!(spi(send(&mut engine, flow)), Ok(0x1001));
    }
    // The SA of its policy changes: the next packet takes the new one.
    engine.set_bundle(PolicyId(0), &[0x1002]).unwrap();
    assert_eq!(spi(send(&mut engine, flow)), Ok(0x1002));
    assert_eq!(tap.drain().len(), 7, "what was protected left");
}

/// Card buffers of sent frames are kept for the next packets: long frames, then short ones
/// in the same buffers, and each short one leaves with its own bytes only.
#[test]
fn card_buffers_kept_for_the_next_packets_carry_only_their_new_packet() {
    card_buffers_carry_only_their_new_packet(false);
}

/// The same, the packets handed over from host memory (`submit_into_slot`).
#[test]
fn packets_from_host_memory_leave_with_their_own_bytes_only() {
    card_buffers_carry_only_their_new_packet(true);
}

fn card_buffers_carry_only_their_new_packet(from_host: bool) {
    let cfg = config("");
    let (mut engine, _, tap) = rig(&cfg, OffloadOptions::default());
    let mut reference = cfg.software_engine().unwrap();
    let mut tag = 0u64;
    for (len, fill) in [(1400, 0xaa), (100, 0x55), (700, 0x11)] {
        let packets: Vec<Vec<u8>> = (0..40u16)
            .map(|i| packet([10, 1, 0, 1], [10, 2, 0, 1], len, fill + i))
            .collect();
        for p in &packets {
            let slot = engine.tx_slot().expect("a card buffer");
            if from_host {
                engine.submit_into_slot(tag, slot, p);
            } else {
                engine.tx_slot_write(&slot, FRAME_HEADER, p).unwrap();
                engine.submit_slot(tag, slot, p.len());
            }
            tag += 1;
        }
        let reports = run_until_idle(&mut engine);
        assert_eq!(reports.len(), packets.len());
        let wire = tap.drain();
        assert_eq!(wire.len(), packets.len());
        for (p, frame) in packets.iter().zip(&wire) {
            let mut out = vec![0u8; p.len() + 256];
            let Ok(Encapsulated::Protected { len, .. }) =
                reference.outbound.encapsulate(p, &mut out)
            else {
                panic!("reference refused a packet");
            };
            assert_eq!(frame.data[14..], out[..len]);
            let options = OffloadOptions::default();
            assert_eq!(frame.data[..6], options.peer_mac);
            assert_eq!(frame.data[6..12], options.local_mac);
        }
    }
}

/// The engine with [`OffloadOptions::lend_rx`], on [`config`].
fn lend_rx_rig() -> (OffloadEngine, ModelHandle, MemLink) {
    rig(
        &config(""),
        OffloadOptions {
            lend_rx: true,
            ..OffloadOptions::default()
        },
    )
}

/// A peer that sends everything of 10/8 to 10.1/16 through SA 0x2001 (more than this
/// side's inbound policy for it covers).
fn wide_peer() -> SoftwareEngine {
    let text = format!(
        "[[sa]]\nspi = 0x2001\nprotocol = \"esp\"\nsrc = \"192.0.2.2\"\ndst = \"192.0.2.1\"\nencryption = \"aes-gcm-128\"\nkey = \"{KEY128_IN}\"\n\
         [[policy]]\ndir = \"out\"\nsrc = \"10.0.0.0/8\"\ndst = \"10.1.0.0/16\"\naction = \"protect\"\nsa = [0x2001]\n"
    );
    Config::parse(&text, FsPath::new("peer.toml"))
        .unwrap()
        .software_engine()
        .unwrap()
}

/// `inner` protected by `peer`, in an Ethernet frame to this side.
fn peer_frame(peer: &mut SoftwareEngine, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; inner.len() + 256];
    let Ok(Encapsulated::Protected { len, .. }) = peer.outbound.encapsulate(inner, &mut out) else {
        panic!("peer refused");
    };
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
    frame.extend_from_slice(&out[..len]);
    frame
}

#[test]
fn lent_inbound_packets_are_checked_against_policy_and_written_out_whole() {
    let (mut engine, _, tap) = lend_rx_rig();
    // The peer also sends 10.4/16 through the SA, which this side's inbound policy for it
    // (10.2/16 -> 10.1/16) does not cover: decapsulated by the card, refused by the host.
    let mut peer = wide_peer();
    let mut sent = Vec::new();
    let mut frames = Vec::new();
    for (i, src) in [[10, 2, 0, 9], [10, 4, 0, 9], [10, 2, 0, 9]]
        .iter()
        .enumerate()
    {
        let inner = packet(*src, [10, 1, 0, 9], 300 + 700 * i, i as u16);
        let frame = peer_frame(&mut peer, &inner);
        tap.send_bytes(&frame);
        frames.push(frame);
        sent.push(inner);
    }
    let got = collect_rx(&mut engine, 3);
    assert_eq!(got[1].outcome, Err(DropReason::PolicyMismatch));
    for i in [0, 2] {
        let Ok(Received::Lent(p)) = &got[i].outcome else {
            panic!("{:?}", got[i].outcome);
        };
        assert_eq!((p.spi, p.seq, p.len), (0x2001, i as u64 + 1, sent[i].len()));
        let mut bytes = Vec::new();
        engine.lent_bytes(p, &mut bytes).unwrap();
        assert_eq!(bytes, sent[i]);
        // Into a buffer of the caller's, of exactly the packet's length; any other length
        // is refused with nothing written.
        let mut exact = vec![0u8; p.len];
        engine.lent_into(p, &mut exact).unwrap();
        assert_eq!(exact, sent[i]);
        for len in [p.len - 1, p.len + 1] {
            let mut wrong = vec![0xeeu8; len];
            let e = engine.lent_into(p, &mut wrong).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            assert!(wrong.iter().all(|&b| b == 0xee));
        }
        // Written out: a virtio-net header, then the packet, with one writev.
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let n = engine
            .write_lent(p, std::os::fd::AsFd::as_fd(&a), &[7; 10])
            .unwrap();
        assert_eq!(n, 10 + sent[i].len());
        let mut back = vec![0u8; n + 1];
        assert_eq!(b.recv(&mut back).unwrap(), n);
        assert_eq!(&back[..10], &[7; 10]);
        assert_eq!(&back[10..n], &sent[i][..]);
        engine.release_lent(p);
    }
    assert_eq!(engine.counters().rx_card, 2);
}

/// Lent inbound packets of one flow take the flow and the policy verdict kept from the
/// packet before — until an inbound policy changes: after each change the next packet is
/// checked against the database as it is, and a flow met again after another is checked
/// again.
#[test]
fn lent_inbound_packets_of_one_flow_follow_each_policy_change() {
    use espo_ipsec::selector::Cidr;
    use espo_ipsec::spd::PolicyId;
    use espo_ipsec::spec::{PolicyAction, PolicySpec};

    let (mut engine, _, tap) = lend_rx_rig();
    let mut peer = wide_peer();
    let mut id = 0u16;
    let mut receive = |engine: &mut OffloadEngine, src: [u8; 4]| {
        let inner = packet(src, [10, 1, 0, 9], 200, id);
        id += 1;
        let frame = peer_frame(&mut peer, &inner);
        tap.send_bytes(&frame);
        let got = collect_rx(engine, 1);
        assert_eq!(got.len(), 1);
        match &got[0].outcome {
            Ok(Received::Lent(p)) => {
                let mut bytes = Vec::new();
                engine.lent_bytes(p, &mut bytes).unwrap();
                assert_eq!(bytes, inner);
                engine.release_lent(p);
                Ok(())
            }
            Ok(other) => panic!("{other:?}"),
            Err(reason) => Err(*reason),
        }
    };
    let (a, b) = ([10, 2, 0, 9], [10, 2, 0, 1]);
    for _ in 0..3 {
        assert_eq!(receive(&mut engine, a), Ok(()));
    }
    // The SA's inbound policy narrows to 10.2.0.1: flow `a` is no longer its to carry.
    let narrow = PolicySpec {
        dir: Direction::In,
        src: "10.2.0.1/32".parse::<Cidr>().unwrap(),
        dst: "10.1.0.0/16".parse::<Cidr>().unwrap(),
        protocol: espo_ipsec::selector::ProtocolSelector::Any,
        src_port: espo_ipsec::selector::PortRange::ANY,
        dst_port: espo_ipsec::selector::PortRange::ANY,
        action: PolicyAction::Protect,
        sa: vec![0x2001],
    };
    engine.add_policy(&narrow, PolicyId(40), None).unwrap();
    engine.remove_policy(PolicyId(2)).unwrap();
    let mismatch = Err(DropReason::PolicyMismatch);
    for _ in 0..2 {
        assert_eq!(receive(&mut engine, a), mismatch);
    }
    assert_eq!(receive(&mut engine, b), Ok(()));
    assert_eq!(receive(&mut engine, a), mismatch);
    // Widened again: `a` is admitted again.
    let mut wide = narrow.clone();
    wide.src = "10.2.0.0/16".parse::<Cidr>().unwrap();
    engine.add_policy(&wide, PolicyId(41), None).unwrap();
    for _ in 0..2 {
        assert_eq!(receive(&mut engine, a), Ok(()));
    }
    assert_eq!(engine.counters().rx_card, 6);
}

#[test]
fn lent_inbound_packets_held_when_the_card_goes_are_still_written_whole() {
    use espo_driver::model::{FaultKind, FaultTrigger};
    let cfg = config("");
    let (wire, _far) = MemWire::pair();
    let (mut engine, model, tap) = rig(
        &cfg,
        OffloadOptions {
            lend_rx: true,
            fallback: Some(Box::new(wire)),
            max_recoveries: 0,
            ..OffloadOptions::default()
        },
    );
    let mut peer = peer_config().software_engine().unwrap();
    let sent: Vec<Vec<u8>> = (0..3u16)
        .map(|i| packet([10, 2, 0, 9], [10, 1, 0, 9], 300 + 600 * usize::from(i), i))
        .collect();
    for inner in &sent {
        let mut out = vec![0u8; inner.len() + 256];
        let Ok(Encapsulated::Protected { len, .. }) = peer.outbound.encapsulate(inner, &mut out)
        else {
            panic!("peer refused");
        };
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        frame.extend_from_slice(&out[..len]);
        tap.send_bytes(&frame);
    }
    let got = collect_rx(&mut engine, 3);
    let held: Vec<LentPacket> = got
        .iter()
        .map(|r| match &r.outcome {
            Ok(Received::Lent(p)) => p.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    // The owner still holds them when the card is removed (at its next packet).
    model.inject(FaultKind::SurpriseRemoval, FaultTrigger::AtPacket(0));
    engine.submit(1, &packet([10, 1, 0, 1], [10, 2, 0, 1], 100, 0));
    run_until_idle(&mut engine);
    for _ in 0..1000 {
        engine.poll();
    }
    assert_eq!(engine.mode(), CardMode::Gone);
    // Their bytes were copied out before the card's memory went: each is still copied
    // and written whole, then given back.
    for (p, inner) in held.iter().zip(&sent) {
        let mut bytes = vec![0u8; p.len];
        engine.lent_into(p, &mut bytes).unwrap();
        assert_eq!(&bytes, inner);
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let n = engine
            .write_lent(p, std::os::fd::AsFd::as_fd(&a), &[7; 10])
            .unwrap();
        assert_eq!(n, 10 + inner.len());
        let mut back = vec![0u8; n + 1];
        assert_eq!(b.recv(&mut back).unwrap(), n);
        assert_eq!((&back[..10], &back[10..n]), (&[7u8; 10][..], &inner[..]));
        engine.release_lent(p);
        let e = engine.lent_into(p, &mut bytes).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotConnected);
    }
}

#[test]
fn lent_frames_waiting_when_the_card_goes_leave_through_the_fallback_wire() {
    use espo_driver::model::{FaultKind, FaultTrigger};
    let cfg = config("");
    let (wire, far) = MemWire::pair();
    let (mut engine, model, _tap) = rig(
        &cfg,
        OffloadOptions {
            fallback: Some(Box::new(wire)),
            max_recoveries: 0,
            ..OffloadOptions::default()
        },
    );
    // The card is removed at its next packet. A ring's worth of copied packets fills its
    // ring; the lent ones wait behind them, in the card's buffers.
    model.inject(FaultKind::SurpriseRemoval, FaultTrigger::AtPacket(0));
    let ring = 1u64 << card_config().ring_log2;
    let filler = packet([10, 1, 0, 1], [10, 2, 0, 1], 100, 0);
    for tag in 100..100 + ring {
        engine.submit(tag, &filler);
    }
    engine.poll();
    let packets: Vec<Vec<u8>> = (0..8u16)
        .map(|i| packet([10, 1, 0, 1], [10, 2, 0, 1], 200 + 100 * usize::from(i), i))
        .collect();
    for (i, p) in packets.iter().enumerate() {
        let slot = engine.tx_slot().expect("a card buffer");
        engine.tx_slot_write(&slot, FRAME_HEADER, p).unwrap();
        engine.submit_slot(i as u64, slot, p.len());
    }
    let reports = run_until_idle(&mut engine);
    for _ in 0..1000 {
        engine.poll();
    }
    let mut reports = reports;
    engine.take_tx_reports(&mut reports);
    assert_eq!(reports.len(), 8 + ring as usize, "one report per packet");
    reports.retain(|r| r.tag < 8);
    assert_eq!(engine.mode(), CardMode::Gone);
    // Whatever the card took is of unknown fate; the rest went through software, from the
    // bytes copied out of the card's memory before it went.
    let mut peer = peer_config().software_engine().unwrap();
    let mut delivered = 0;
    let mut buf = Vec::new();
    let mut far = far;
    while far.recv(&mut buf) {
        let mut ip = buf[14..].to_vec();
        if let Ok(espo_ipsec::engine::Decapsulated::Inner { range, seq, .. }) =
            peer.inbound.decapsulate(&mut ip)
        {
            assert!(
                packets.iter().any(|p| p[..] == ip[range.clone()]),
                "seq {seq}"
            );
            delivered += 1;
        }
    }
    let by_software = reports
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Ok(SentAs::Esp {
                    path: Path::Software,
                    ..
                })
            )
        })
        .count();
    assert_eq!(delivered, by_software);
    assert_eq!(by_software, 8, "{reports:?}");
}

/// The SA's reservation covers every sequence number the card gives a packet by the time
/// the card has the packet (a restart continues above it): many more packets than the
/// ring holds, lent and copied, submitted in runs; each reported number is at most what
/// the reservation said was used after the poll that completed it; every number once, in
/// submission order.
#[test]
fn every_number_the_card_uses_is_noted_in_the_reservation_first() {
    let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
    let p = packet([10, 1, 0, 1], [10, 2, 0, 1], 300, 7);
    let n = 2000u64;
    let mut seqs = Vec::new();
    let mut reports = Vec::new();
    let mut step = |engine: &mut OffloadEngine, seqs: &mut Vec<(u64, u64)>| {
        engine.poll();
        let noted = engine.seq_used(0x1001).expect("the SA");
        reports.clear();
        engine.take_tx_reports(&mut reports);
        for r in &reports {
            match r.outcome {
                Ok(SentAs::Esp {
                    spi: 0x1001,
                    seq,
                    path: Path::Card,
                }) => {
                    assert!(seq <= noted, "number {seq} used, {noted} noted");
                    seqs.push((r.tag, seq));
                }
                ref other => panic!("{other:?}"),
            }
        }
    };
    let mut tag = 0;
    while tag < n {
        // Runs of 1 to 150 packets between polls.
        for _ in 0..(tag % 150 + 1).min(n - tag) {
            if tag % 3 == 0 {
                engine.submit(tag, &p);
            } else {
                let Some(slot) = engine.tx_slot() else { break };
                engine
                    .tx_slot_write(&slot, FRAME_HEADER, &p)
                    .expect("written");
                engine.submit_slot(tag, slot, p.len());
            }
            tag += 1;
        }
        step(&mut engine, &mut seqs);
    }
    for _ in 0..100_000 {
        if engine.tx_outstanding() == 0 {
            break;
        }
        step(&mut engine, &mut seqs);
    }
    assert_eq!(seqs.len() as u64, n);
    let tags: Vec<u64> = seqs.iter().map(|&(t, _)| t).collect();
    assert_eq!(
        tags,
        (0..n).collect::<Vec<_>>(),
        "reported in submission order"
    );
    let numbers: Vec<u64> = seqs.iter().map(|&(_, s)| s).collect();
    assert_eq!(
        numbers,
        (1..=n).collect::<Vec<_>>(),
        "each number once, in order"
    );
    assert_eq!(tap.drain().len() as u64, n);
}

/// The card may use no number its SA's reservation does not cover: within one batch of a
/// card SA, the packets past the reservation's limit are dropped (`seq-unreserved`), and
/// packets go again, with the next numbers, once it is raised.
#[test]
fn a_card_sa_sends_no_number_past_its_reservation_within_a_batch() {
    let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
    let index = engine.sw.outbound.sa_index(0x1001).expect("the SA");
    let set_limit = |engine: &OffloadEngine, limit: u64| {
        engine.sw.outbound.sas()[index]
            .reservation()
            .set_limit(limit)
    };
    let mut tag = 0u64;
    let mut batch = |engine: &mut OffloadEngine, n: usize| {
        for _ in 0..n {
            let p = packet([10, 1, 0, 1], [10, 2, 0, 1], 200, tag as u16);
            let slot = engine.tx_slot().expect("a card buffer");
            engine.tx_slot_write(&slot, FRAME_HEADER, &p).unwrap();
            engine.submit_slot(tag, slot, p.len());
            tag += 1;
        }
        let mut reports = run_until_idle(engine);
        reports.sort_by_key(|r| r.tag);
        reports
            .iter()
            .map(|r| match r.outcome {
                Ok(SentAs::Esp { seq, .. }) => Ok(seq),
                Ok(other) => panic!("{other:?}"),
                Err(reason) => Err(reason),
            })
            .collect::<Vec<_>>()
    };
    set_limit(&engine, 5);
    let unreserved = Err(DropReason::SeqUnreserved);
    let mut want: Vec<Result<u64, DropReason>> = (1..=5).map(Ok).collect();
    want.extend([unreserved; 5]);
    assert_eq!(batch(&mut engine, 10), want);
    set_limit(&engine, 12);
    let mut want: Vec<Result<u64, DropReason>> = (6..=12).map(Ok).collect();
    want.extend([unreserved; 3]);
    assert_eq!(batch(&mut engine, 10), want);
    set_limit(&engine, 1000);
    assert_eq!(batch(&mut engine, 3), (13..=15).map(Ok).collect::<Vec<_>>());
    assert!(engine.seq_used(0x1001).unwrap() >= 15);
    assert_eq!(tap.drain().len(), 15, "only what was reserved left");
}

#[test]
fn lent_packets_the_card_sent_are_counted_for_their_sa_and_their_buffers_reused() {
    let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
    // More packets than the ring has buffers: each must come back to be lent again.
    let rounds = (1u64 << card_config().ring_log2) / 40 + 2;
    let n = rounds * 40;
    let mut bytes = 0u64;
    let mut reports = Vec::new();
    for round in 0..rounds {
        // One flow: every packet but the first of the run is answered by the kept head.
        for i in 0..40 {
            let tag = round * 40 + i;
            let p = packet([10, 1, 0, 1], [10, 2, 0, 1], 100 + tag as usize, tag as u16);
            let slot = engine.tx_slot().expect("a card buffer");
            engine.tx_slot_write(&slot, FRAME_HEADER, &p).unwrap();
            engine.submit_slot(tag, slot, p.len());
            bytes += p.len() as u64;
        }
        reports.extend(run_until_idle(&mut engine));
    }
    reports.sort_by_key(|r| r.tag);
    let seqs: Vec<u64> = reports
        .iter()
        .map(|r| match r.outcome {
            Ok(SentAs::Esp {
                spi: 0x1001,
                seq,
                path: Path::Card,
            }) => seq,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    assert_eq!(engine.counters().tx_card, n);
    let sa = engine
        .placements()
        .into_iter()
        .find(|p| p.spi == 0x1001 && p.dir == Direction::Out)
        .expect("the SA");
    assert!(matches!(sa.placement, Placement::Card { .. }));
    assert_eq!((sa.counters.packets, sa.counters.bytes), (n, bytes));
    assert_eq!(engine.tx_outstanding(), 0);
    assert_eq!(tap.drain().len() as u64, n);
}

/// One packet of [`flows_through_the_card_as_through_software`]: its source and destination
/// host, protocol, ports, length, fragment offset, and whether it is handed over from host
/// memory (else written into a lent buffer first).
type Shape = (u8, u8, bool, (u16, u16), usize, u16, bool);

/// A packet of that shape, well formed (IPv4 header checksum right).
fn shaped(&(src, dst, tcp, (sport, dport), len, frag, _): &Shape) -> Vec<u8> {
    let dsts = [[10, 2, 0, 1], [10, 2, 0, 2], [10, 3, 0, 1], [10, 9, 0, 1]];
    let mut p = packet([10, 1, 0, 1 + src % 2], dsts[usize::from(dst) % 4], len, 7);
    if tcp {
        p[9] = 6;
    }
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p[6..8].copy_from_slice(&frag.to_be_bytes());
    p[10..12].copy_from_slice(&[0, 0]);
    let sum = !espo_ipsec::wire::checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

    /// Packets of a few flows in any order and mix — a flow's next packet, another port,
    /// host, protocol or SA, a later fragment, no policy — handed over lent or from host
    /// memory, in batches of any size: each leaves as the software engine alone would send
    /// it (same SA, same sequence number, same bytes) or is dropped for the same reason,
    /// whether the kept head answered for it or it was decided afresh.
    #[test]
    fn flows_through_the_card_as_through_software(
        batches in proptest::collection::vec(
            proptest::collection::vec(
                (
                    0u8..2,
                    proptest::prop_oneof![6 => proptest::strategy::Just(0u8), 1 => 1u8..4],
                    proptest::prelude::any::<bool>(),
                    proptest::prop_oneof![
                        6 => proptest::strategy::Just((4000u16, 5201u16)),
                        1 => (4000u16..4002, 5201u16..5203),
                    ],
                    proptest::prop_oneof![3 => proptest::strategy::Just(1400usize), 1 => 40usize..1500],
                    proptest::prop_oneof![
                        6 => proptest::strategy::Just(0x4000u16),
                        1 => proptest::strategy::Just(0x2000u16),
                        1 => proptest::strategy::Just(0x00b9u16),
                    ],
                    proptest::prelude::any::<bool>(),
                ),
                1..40,
            ),
            1..5,
        ),
    ) {
        let cfg = config("");
        let (mut engine, _, tap) = rig(&cfg, OffloadOptions::default());
        let mut reference = cfg.software_engine().unwrap();
        let mut tag = 0u64;
        for batch in &batches {
            let packets: Vec<Vec<u8>> = batch.iter().map(shaped).collect();
            let first = tag;
            for (shape, p) in batch.iter().zip(&packets) {
                let slot = engine.tx_slot().expect("a card buffer");
                if shape.6 {
                    engine.submit_into_slot(tag, slot, p);
                } else {
                    engine.tx_slot_write(&slot, FRAME_HEADER, p).unwrap();
                    engine.submit_slot(tag, slot, p.len());
                }
                tag += 1;
            }
            let mut reports = run_until_idle(&mut engine);
            reports.sort_by_key(|r| r.tag);
            proptest::prop_assert_eq!(reports.len(), packets.len());
            let wire = tap.drain();
            let mut frames = wire.iter();
            for (i, (p, r)) in packets.iter().zip(&reports).enumerate() {
                proptest::prop_assert_eq!(r.tag, first + i as u64);
                let mut out = vec![0u8; p.len() + 256];
                match reference.outbound.encapsulate(p, &mut out) {
                    Ok(Encapsulated::Protected { len, spi, seq }) => {
                        let path = if spi == 0x1001 { Path::Card } else { Path::Software };
                        proptest::prop_assert_eq!(r.outcome, Ok(SentAs::Esp { spi, seq, path }));
                        let frame = frames.next().expect("its frame");
                        proptest::prop_assert_eq!(&frame.data[14..], &out[..len]);
                    }
                    Ok(Encapsulated::Bypass) => proptest::prop_assert_eq!(r.outcome, Ok(SentAs::Bypass)),
                    Err(reason) => proptest::prop_assert_eq!(r.outcome, Err(reason)),
                }
            }
            proptest::prop_assert!(frames.next().is_none());
        }
    }
}
