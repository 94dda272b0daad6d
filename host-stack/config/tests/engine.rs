//! Tests of the software engine (espo-ipsec) built from configuration text, through its
//! public interface: encapsulation and
//! decapsulation in every supported combination, and a hostile mix of packets.

use std::path::Path;

use proptest::prelude::*;

use espo_config::Config;
use espo_ipsec::counters::{DropCounters, DropReason};
use espo_ipsec::engine::*;

/// One SA's configuration lines for `enc` / `integ`, with keys derived from `seed`.
#[allow(clippy::too_many_arguments)]
fn sa_text(
    spi: u32,
    proto: &str,
    mode: &str,
    src: &str,
    dst: &str,
    enc: Option<&str>,
    integ: Option<&str>,
    extra: &str,
) -> String {
    let key = |len: usize, seed: u32| -> String {
        (0..len)
            .map(|i| format!("{:02x}", (i as u32 * 7 + seed) as u8))
            .collect()
    };
    let mut s = format!(
        "[[sa]]\nspi = {spi:#x}\nprotocol = \"{proto}\"\nmode = \"{mode}\"\nsrc = \"{src}\"\ndst = \"{dst}\"\n{extra}\n"
    );
    if let Some(e) = enc {
        let alg: espo_ipsec::crypto::EncryptionAlgorithm = e.parse().unwrap();
        s += &format!("encryption = \"{e}\"\n");
        if alg.key_len() > 0 {
            s += &format!("key = \"{}\"\n", key(alg.key_len(), spi));
        }
    }
    if let Some(i) = integ {
        let alg: espo_ipsec::crypto::IntegrityAlgorithm = i.parse().unwrap();
        s += &format!(
            "integrity = \"{i}\"\nintegrity_key = \"{}\"\n",
            key(alg.key_len(), spi + 1)
        );
    }
    s
}

fn policy_text(dir: &str, src: &str, dst: &str, sas: &[u32]) -> String {
    let list: Vec<String> = sas.iter().map(|s| format!("{s:#x}")).collect();
    format!(
        "[[policy]]\ndir = \"{dir}\"\nsrc = \"{src}\"\ndst = \"{dst}\"\naction = \"protect\"\nsa = [{}]\n",
        list.join(", ")
    )
}

/// The software engine of a configuration.
fn engine(config: &Config) -> Result<SoftwareEngine, EngineError> {
    SoftwareEngine::new(&config.sas, &config.policies)
}

/// Sender and receiver engines for the same SAs and selectors.
fn pair(
    sas: &str,
    src_sel: &str,
    dst_sel: &str,
    bundle: &[u32],
) -> (SoftwareEngine, SoftwareEngine) {
    let tx = Config::parse(
        &format!("{sas}{}", policy_text("out", src_sel, dst_sel, bundle)),
        Path::new("tx.toml"),
    )
    .unwrap();
    let rx = Config::parse(
        &format!("{sas}{}", policy_text("in", src_sel, dst_sel, bundle)),
        Path::new("rx.toml"),
    )
    .unwrap();
    (engine(&tx).unwrap(), engine(&rx).unwrap())
}

fn ipv4_udp(src: [u8; 4], dst: [u8; 4], payload: &[u8], tos: u8) -> Vec<u8> {
    let len = 28 + payload.len();
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[1] = tos;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let c = espo_ipsec::wire::checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&(!c).to_be_bytes());
    p[20..22].copy_from_slice(&1234u16.to_be_bytes());
    p[22..24].copy_from_slice(&5678u16.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

fn ipv6_udp(src: [u8; 16], dst: [u8; 16], payload: &[u8], tclass: u8) -> Vec<u8> {
    let plen = 8 + payload.len();
    let mut p = vec![0u8; 40 + plen];
    p[0] = 0x60 | (tclass >> 4);
    p[1] = tclass << 4;
    p[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&src);
    p[24..40].copy_from_slice(&dst);
    p[40..42].copy_from_slice(&1234u16.to_be_bytes());
    p[42..44].copy_from_slice(&5678u16.to_be_bytes());
    p[44..46].copy_from_slice(&(plen as u16).to_be_bytes());
    p[48..].copy_from_slice(payload);
    p
}

const V6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0xb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn send(tx: &mut SoftwareEngine, inner: &[u8]) -> Result<Vec<u8>, DropReason> {
    let mut out = vec![0u8; inner.len() + 512];
    match tx.outbound.encapsulate(inner, &mut out)? {
        Encapsulated::Protected { len, .. } => {
            out.truncate(len);
            Ok(out)
        }
        Encapsulated::Bypass => panic!("bypassed"),
    }
}

fn receive(rx: &mut SoftwareEngine, pkt: &[u8]) -> Result<Vec<u8>, DropReason> {
    let mut buf = pkt.to_vec();
    match rx.inbound.decapsulate(&mut buf)? {
        Decapsulated::Inner { range, .. } => Ok(buf[range].to_vec()),
        other => panic!("unexpected {other:?}"),
    }
}

const ALGORITHMS: &[(&str, Option<&str>)] = &[
    ("aes-gcm-128", None),
    ("aes-gcm-256", None),
    ("chacha20-poly1305", None),
    ("aes-cbc-128", Some("hmac-sha256-128")),
    ("aes-cbc-256", Some("hmac-sha384-192")),
    ("aes-cbc-128", Some("hmac-sha512-256")),
    ("null", Some("hmac-sha256-128")),
];

#[test]
fn esp_tunnel_round_trips_every_algorithm_and_address_family() {
    let outers = [
        ("192.0.2.1", "192.0.2.2"),
        ("2001:db8:ff::1", "2001:db8:ff::2"),
    ];
    for (enc, integ) in ALGORITHMS {
        for (osrc, odst) in outers {
            for v6_inner in [false, true] {
                for esn in [false, true] {
                    let extra = format!(
                        "esn = {esn}\nseq = {}",
                        if esn { 0xffff_fff0u64 } else { 7 }
                    );
                    let sas = sa_text(
                        0x1001,
                        "esp",
                        "tunnel",
                        osrc,
                        odst,
                        Some(enc),
                        *integ,
                        &extra,
                    );
                    let (src_sel, dst_sel) = if v6_inner {
                        ("2001:db8:a::/48", "2001:db8:b::/48")
                    } else {
                        ("10.1.0.0/16", "10.2.0.0/16")
                    };
                    let (mut tx, mut rx) = pair(&sas, src_sel, dst_sel, &[0x1001]);
                    for n in [0usize, 1, 15, 16, 17, 255, 1400] {
                        let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
                        let inner = if v6_inner {
                            ipv6_udp(V6_A, V6_B, &payload, 0)
                        } else {
                            ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], &payload, 0)
                        };
                        let wire = send(&mut tx, &inner).unwrap();
                        assert_eq!(wire[0] >> 4, if osrc.contains(':') { 6 } else { 4 });
                        let back = receive(&mut rx, &wire).unwrap_or_else(|r| {
                            panic!("{enc} {osrc} v6={v6_inner} esn={esn} n={n}: {r}")
                        });
                        assert_eq!(back, inner);
                    }
                }
            }
        }
    }
}

#[test]
fn ah_tunnel_and_esp_ah_bundle_round_trip() {
    for (osrc, odst) in [
        ("192.0.2.1", "192.0.2.2"),
        ("2001:db8:ff::1", "2001:db8:ff::2"),
    ] {
        for integ in ["hmac-sha256-128", "hmac-sha384-192", "hmac-sha512-256"] {
            for esn in [false, true] {
                let extra = format!("esn = {esn}");
                let ah = sa_text(
                    0x2001,
                    "ah",
                    "tunnel",
                    osrc,
                    odst,
                    None,
                    Some(integ),
                    &extra,
                );
                let (mut tx, mut rx) = pair(&ah, "10.1.0.0/16", "10.2.0.0/16", &[0x2001]);
                let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], b"authenticated only", 0);
                let wire = send(&mut tx, &inner).unwrap();
                assert_eq!(receive(&mut rx, &wire).unwrap(), inner, "AH {integ} {osrc}");

                let bundle = format!(
                    "{}{}",
                    sa_text(
                        0x3001,
                        "esp",
                        "tunnel",
                        osrc,
                        odst,
                        Some("aes-gcm-256"),
                        None,
                        &extra
                    ),
                    sa_text(
                        0x3002,
                        "ah",
                        "transport",
                        osrc,
                        odst,
                        None,
                        Some(integ),
                        &extra
                    )
                );
                let (mut tx, mut rx) =
                    pair(&bundle, "10.1.0.0/16", "10.2.0.0/16", &[0x3001, 0x3002]);
                let wire = send(&mut tx, &inner).unwrap();
                assert_eq!(
                    receive(&mut rx, &wire).unwrap(),
                    inner,
                    "ESP+AH {integ} {osrc}"
                );
                // Either SA alone is not the bundle the policy asks for.
                let (_, mut esp_only_rx) = pair(&bundle, "10.1.0.0/16", "10.2.0.0/16", &[0x3001]);
                assert_eq!(
                    receive(&mut esp_only_rx, &wire),
                    Err(DropReason::PolicyMismatch)
                );
            }
        }
    }
}

#[test]
fn server_to_server_tunnel_with_equal_inner_and_outer_addresses() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "",
    );
    let (mut tx, mut rx) = pair(&sas, "192.0.2.1/32", "192.0.2.2/32", &[0x1001]);
    let inner = ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], b"host to host", 0);
    let wire = send(&mut tx, &inner).unwrap();
    assert_eq!(&wire[12..20], &[192, 0, 2, 1, 192, 0, 2, 2]);
    assert_eq!(receive(&mut rx, &wire).unwrap(), inner);
}

#[test]
fn udp_encapsulation_and_keepalives() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "udp_encap = { src_port = 4500, dst_port = 4500 }",
    );
    let (mut tx, mut rx) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], b"natted", 0);
    let wire = send(&mut tx, &inner).unwrap();
    assert_eq!(wire[9], 17);
    assert_eq!(&wire[20..24], &[0x11, 0x94, 0x11, 0x94]);
    assert_eq!(
        &wire[26..28],
        &[0, 0],
        "UDP checksum 0 over IPv4 (RFC 3948)"
    );
    assert_eq!(receive(&mut rx, &wire).unwrap(), inner);
    let mut keepalive = ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], &[0xff], 0);
    keepalive[20..24].copy_from_slice(&[0x11, 0x94, 0x11, 0x94]);
    assert_eq!(
        rx.inbound.decapsulate(&mut keepalive),
        Ok(Decapsulated::Keepalive)
    );
}

#[test]
fn ike_on_the_encapsulation_port_goes_to_key_management_when_asked() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "udp_encap = { src_port = 4500, dst_port = 4500 }",
    );
    let (_, mut rx) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    let mut payload = vec![0, 0, 0, 0];
    payload.extend_from_slice(&[0x5a; 28]); // an IKE header's worth
    let mut ike = ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], &payload, 0);
    ike[20..24].copy_from_slice(&[0x11, 0x94, 0x11, 0x94]);
    // Without key management, an IKE message is an unprotected packet like any other.
    assert_eq!(
        rx.inbound.decapsulate(&mut ike.clone()),
        Err(DropReason::NoPolicy)
    );
    rx.inbound.set_ike(true);
    let mut work = ike.clone();
    match rx.inbound.decapsulate(&mut work) {
        Ok(Decapsulated::Ike { range, src, dst }) => {
            assert_eq!(&work[range], &[0x5a; 28]);
            assert_eq!(src, "192.0.2.1:4500".parse().unwrap());
            assert_eq!(dst, "192.0.2.2:4500".parse().unwrap());
        }
        other => panic!("{other:?}"),
    }
    // ESP and keepalives on the same port are unaffected; a datagram claiming more than
    // the packet holds is malformed.
    let mut keepalive = ipv4_udp([192, 0, 2, 1], [192, 0, 2, 2], &[0xff], 0);
    keepalive[20..24].copy_from_slice(&[0x11, 0x94, 0x11, 0x94]);
    assert_eq!(
        rx.inbound.decapsulate(&mut keepalive),
        Ok(Decapsulated::Keepalive)
    );
    let mut long = ike.clone();
    let claimed = (long.len() - 20 + 8) as u16;
    long[24..26].copy_from_slice(&claimed.to_be_bytes());
    assert_eq!(
        rx.inbound.decapsulate(&mut long),
        Err(DropReason::Malformed)
    );
}

#[test]
fn outer_header_follows_the_documented_rules() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "ttl = 17\nseq = 0x12340",
    );
    let (mut tx, _) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], b"x", 0xb9); // DSCP 46, ECT(1)
    let wire = send(&mut tx, &inner).unwrap();
    let outer = espo_ipsec::wire::ipv4::Packet::new_checked(&wire[..]).unwrap();
    assert_eq!(
        outer.tos(),
        0xb9,
        "DSCP and ECN copied (RFC 6040 normal mode)"
    );
    assert_eq!(outer.hop_limit(), 17);
    assert!(outer.dont_frag(), "DF copied from the inner packet");
    assert_eq!(
        outer.ident(),
        0x2341,
        "identification = low 16 bits of the sequence number"
    );
    assert!(outer.verify_checksum());
    // 29 bytes of inner packet + 2 trailer bytes pad to 32: one byte of padding.
    assert_eq!(wire.len(), 20 + 8 + 8 + inner.len() + 1 + 2 + 16);
}

#[test]
fn decapsulation_applies_rfc6040_to_the_inner_ecn() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "",
    );
    let (mut tx, mut rx) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    // Inner ECT(0); congestion marked on the outer header en route.
    let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], b"ecn", 0x02);
    let mut wire = send(&mut tx, &inner).unwrap();
    set_outer_ecn(&mut wire, 0b11);
    let back = receive(&mut rx, &wire).unwrap();
    assert_eq!(back[1] & 3, 0b11, "CE propagated to the inner packet");
    assert!(
        espo_ipsec::wire::ipv4::Packet::new_checked(&back[..])
            .unwrap()
            .verify_checksum()
    );
    // Inner Not-ECT under an outer CE must be dropped.
    let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], b"ecn", 0x00);
    let mut wire = send(&mut tx, &inner).unwrap();
    set_outer_ecn(&mut wire, 0b11);
    assert_eq!(receive(&mut rx, &wire), Err(DropReason::EcnDrop));
}

fn set_outer_ecn(wire: &mut [u8], ecn: u8) {
    wire[1] = (wire[1] & !3) | ecn;
    wire[10..12].copy_from_slice(&[0, 0]);
    let c = espo_ipsec::wire::checksum::data(&wire[..20]);
    wire[10..12].copy_from_slice(&(!c).to_be_bytes());
}

#[test]
fn sequence_numbers_never_wrap() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "seq = 4294967294",
    );
    let (mut tx, mut rx) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], b"last", 0);
    let wire = send(&mut tx, &inner).unwrap();
    assert_eq!(&wire[24..28], &u32::MAX.to_be_bytes());
    assert_eq!(send(&mut tx, &inner), Err(DropReason::SeqExhausted));
    assert_eq!(send(&mut tx, &inner), Err(DropReason::SeqExhausted));
    assert_eq!(tx.outbound.sas()[0].seq(), u64::from(u32::MAX));
    let _ = receive(&mut rx, &wire);

    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "esn = true\nseq = \"18446744073709551614\"",
    );
    let (mut tx, _) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    assert!(send(&mut tx, &inner).is_ok());
    assert_eq!(send(&mut tx, &inner), Err(DropReason::SeqExhausted));
}

#[test]
fn esn_crosses_2_pow_32_and_the_high_bits_are_authenticated() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "esn = true\nseq = 4294967290",
    );
    let (mut tx, mut rx) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    let mut seen = Vec::new();
    for i in 0..12u8 {
        let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], &[i], 0);
        let wire = send(&mut tx, &inner).unwrap();
        let mut buf = wire.clone();
        match rx.inbound.decapsulate(&mut buf).unwrap() {
            Decapsulated::Inner { range, seq, .. } => {
                assert_eq!(&buf[range], &inner[..]);
                seen.push(seq);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, (4294967291u64..4294967303).collect::<Vec<_>>());
}

/// The hostile mix: only valid packets come out, each drop counted under its reason,
/// nothing panics.
#[test]
#[allow(clippy::needless_range_loop)]
fn hostile_mix_yields_only_valid_packets() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "replay_window = 32",
    );
    let (mut tx, mut rx) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    let mut valid = Vec::new();
    let mut wires = Vec::new();
    for i in 0..100u8 {
        let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], &[i; 40], 0);
        wires.push(send(&mut tx, &inner).unwrap());
        valid.push(inner);
    }
    // A sender the receiver's policy does not allow: right SA, wrong inner source.
    let spoofed = send(
        &mut tx_outside_policy(&sas),
        &ipv4_udp([10, 9, 0, 1], [10, 2, 0, 1], b"spoof", 0),
    )
    .unwrap();

    let mut drops = DropCounters::default();
    let mut delivered = Vec::new();
    let mut feed = |pkt: &[u8], drops: &mut DropCounters, delivered: &mut Vec<Vec<u8>>| {
        let mut buf = pkt.to_vec();
        match rx.inbound.decapsulate(&mut buf) {
            Ok(Decapsulated::Inner { range, .. }) => delivered.push(buf[range].to_vec()),
            Ok(other) => panic!("{other:?}"),
            Err(r) => drops.count(r),
        }
    };
    // Packets 0..50 in order, except 40..50 reversed (reordered within the window).
    for i in 0..40 {
        feed(&wires[i], &mut drops, &mut delivered);
    }
    for i in (40..50).rev() {
        feed(&wires[i], &mut drops, &mut delivered);
    }
    // Replays of 45 and 49.
    feed(&wires[45], &mut drops, &mut delivered);
    feed(&wires[49], &mut drops, &mut delivered);
    // Flipped ICV and flipped ciphertext on fresh packets 50 and 51; they remain unseen.
    let mut bad = wires[50].clone();
    *bad.last_mut().unwrap() ^= 1;
    feed(&bad, &mut drops, &mut delivered);
    let mut bad = wires[51].clone();
    bad[40] ^= 0x80;
    feed(&bad, &mut drops, &mut delivered);
    // Unknown SPI.
    let mut bad = wires[52].clone();
    bad[20..24].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    feed(&bad, &mut drops, &mut delivered);
    // Every truncation of packet 53 (the outer length then disagrees, or the ICV fails).
    for cut in 0..wires[53].len() {
        feed(&wires[53][..cut], &mut drops, &mut delivered);
    }
    // 50..100 in order (50, 51, 53 are still fresh: tampered copies did not move the window).
    for i in 50..100 {
        feed(&wires[i], &mut drops, &mut delivered);
    }
    // Stale: packet 10 is far left of the window now.
    feed(&wires[10], &mut drops, &mut delivered);
    feed(&spoofed, &mut drops, &mut delivered);

    let mut expected: Vec<Vec<u8>> = valid[..40].to_vec();
    expected.extend(valid[40..50].iter().rev().cloned());
    expected.extend(valid[50..100].iter().cloned());
    assert_eq!(delivered.len(), expected.len());
    assert!(delivered == expected, "only the valid packets, each once");
    assert_eq!(drops.get(DropReason::Replayed), 2);
    assert_eq!(drops.get(DropReason::BadIcv), 2);
    assert_eq!(drops.get(DropReason::UnknownSpi), 1);
    assert_eq!(drops.get(DropReason::Stale), 1);
    assert_eq!(drops.get(DropReason::PolicyMismatch), 1);
    assert_eq!(drops.get(DropReason::Malformed), wires[53].len() as u64);
    assert_eq!(drops.total(), 7 + wires[53].len() as u64);
}

/// RFC 4301 §5.2: the first inbound policy whose selectors match the inner packet decides.
/// Site A (10.9.0.0/16) is reached through SA 0x1001, every other 10/8 site through SA
/// 0x1002: the peer holding SA 0x1002 must not be able to send as site A.
#[test]
fn a_peer_cannot_send_as_another_peers_site() {
    let sas = format!(
        "{}{}",
        sa_text(
            0x1001,
            "esp",
            "tunnel",
            "192.0.2.9",
            "192.0.2.1",
            Some("aes-gcm-128"),
            None,
            ""
        ),
        sa_text(
            0x1002,
            "esp",
            "tunnel",
            "192.0.2.7",
            "192.0.2.1",
            Some("aes-gcm-128"),
            None,
            ""
        )
    );
    let rx = Config::parse(
        &format!(
            "{sas}{}{}",
            policy_text("in", "10.9.0.0/16", "10.2.0.0/16", &[0x1001]),
            policy_text("in", "10.0.0.0/8", "10.2.0.0/16", &[0x1002])
        ),
        Path::new("rx.toml"),
    )
    .unwrap();
    let mut rx = engine(&rx).unwrap();
    let sender = |spi: u32| {
        let cfg = Config::parse(
            &format!(
                "{sas}{}",
                policy_text("out", "10.0.0.0/8", "10.2.0.0/16", &[spi])
            ),
            Path::new("tx.toml"),
        )
        .unwrap();
        engine(&cfg).unwrap()
    };
    let (mut peer_a, mut peer_b) = (sender(0x1001), sender(0x1002));
    let as_site_a = ipv4_udp([10, 9, 1, 1], [10, 2, 0, 5], b"spoofed", 0);
    let own_site = ipv4_udp([10, 7, 1, 1], [10, 2, 0, 5], b"genuine", 0);

    let wire = send(&mut peer_b, &as_site_a).unwrap();
    assert_eq!(receive(&mut rx, &wire), Err(DropReason::PolicyMismatch));
    let wire = send(&mut peer_b, &own_site).unwrap();
    assert_eq!(receive(&mut rx, &wire).unwrap(), own_site);
    let wire = send(&mut peer_a, &as_site_a).unwrap();
    assert_eq!(receive(&mut rx, &wire).unwrap(), as_site_a);
    // Nor may A send as B's sites: the first matching policy there is B's.
    let wire = send(&mut peer_a, &own_site).unwrap();
    assert_eq!(receive(&mut rx, &wire), Err(DropReason::PolicyMismatch));
}

/// A sender whose outbound policy covers sources the receiver's inbound policy does not.
fn tx_outside_policy(sas: &str) -> SoftwareEngine {
    let cfg = Config::parse(
        &format!(
            "{sas}{}",
            policy_text("out", "10.9.0.0/16", "10.2.0.0/16", &[0x1001])
        ),
        Path::new("spoof.toml"),
    )
    .unwrap();
    let mut e = engine(&cfg).unwrap();
    // Use sequence numbers the real sender never reaches, so only the policy check can fail.
    e.outbound.sas_mut()[0].advance_seq_to(1_000);
    e
}

#[test]
fn outbound_policy_bypass_discard_and_no_match() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "",
    );
    let text = format!(
        "{sas}[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.5/32\"\naction = \"bypass\"\n\
         [[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\nprotocol = \"udp\"\ndst_port = 53\naction = \"discard\"\n{}",
        policy_text("out", "10.1.0.0/16", "10.2.0.0/16", &[0x1001])
    );
    let mut e = engine(&Config::parse(&text, Path::new("p.toml")).unwrap()).unwrap();
    let mut out = vec![0u8; 2048];
    let to = |dst: [u8; 4], port: u16| {
        let mut p = ipv4_udp([10, 1, 0, 1], dst, b"q", 0);
        p[22..24].copy_from_slice(&port.to_be_bytes());
        p
    };
    assert_eq!(
        e.outbound.encapsulate(&to([10, 2, 0, 5], 53), &mut out),
        Ok(Encapsulated::Bypass)
    );
    assert_eq!(
        e.outbound.encapsulate(&to([10, 2, 0, 6], 53), &mut out),
        Err(DropReason::PolicyDiscard)
    );
    assert!(matches!(
        e.outbound.encapsulate(&to([10, 2, 0, 6], 54), &mut out),
        Ok(Encapsulated::Protected { .. })
    ));
    assert_eq!(
        e.outbound.encapsulate(&to([10, 3, 0, 6], 54), &mut out),
        Err(DropReason::NoPolicy)
    );
    assert_eq!(
        e.outbound.encapsulate(&[0x45, 0, 0], &mut out),
        Err(DropReason::Malformed)
    );
    let mut tiny = [0u8; 40];
    assert_eq!(
        e.outbound.encapsulate(&to([10, 2, 0, 6], 54), &mut tiny),
        Err(DropReason::TooBig)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Encapsulate → decapsulate is the identity, for any payload and algorithm.
    #[test]
    fn encapsulate_then_decapsulate_is_identity(
        alg in 0..ALGORITHMS.len(),
        payload in proptest::collection::vec(any::<u8>(), 0..2000),
        v6 in any::<bool>(),
        tos in any::<u8>(),
    ) {
        let (enc, integ) = ALGORITHMS[alg];
        let sas = sa_text(0x1001, "esp", "tunnel", "192.0.2.1", "192.0.2.2", Some(enc), integ, "");
        let (src, dst) = if v6 { ("2001:db8:a::/48", "2001:db8:b::/48") } else { ("10.1.0.0/16", "10.2.0.0/16") };
        let (mut tx, mut rx) = pair(&sas, src, dst, &[0x1001]);
        let tos = tos & !3; // Not-ECT inner: ECN does not change on the way
        let inner = if v6 { ipv6_udp(V6_A, V6_B, &payload, tos) } else { ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], &payload, tos) };
        let wire = send(&mut tx, &inner).unwrap();
        prop_assert_eq!(receive(&mut rx, &wire).unwrap(), inner);
    }

    /// Arbitrary bytes into decapsulation never panic and never deliver.
    #[test]
    fn arbitrary_input_is_refused_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let sas = sa_text(0x1001, "esp", "tunnel", "192.0.2.1", "192.0.2.2", Some("aes-gcm-128"), None, "udp_encap = { src_port = 4500, dst_port = 4500 }");
        let (_, mut rx) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
        let mut buf = bytes.clone();
        let r = rx.inbound.decapsulate(&mut buf);
        let delivered = matches!(r, Ok(Decapsulated::Inner { .. }));
        prop_assert!(!delivered, "arbitrary bytes were delivered: {:?}", r);
    }
}

#[test]
fn bad_outer_checksum_and_inner_version_mismatch_are_malformed() {
    let sas = sa_text(
        0x1001,
        "esp",
        "tunnel",
        "192.0.2.1",
        "192.0.2.2",
        Some("aes-gcm-128"),
        None,
        "",
    );
    let (mut tx, mut rx) = pair(&sas, "10.1.0.0/16", "10.2.0.0/16", &[0x1001]);
    let inner = ipv4_udp([10, 1, 0, 1], [10, 2, 0, 1], b"checked", 0);
    let mut wire = send(&mut tx, &inner).unwrap();
    wire[10] ^= 0x01; // outer header checksum
    assert_eq!(receive(&mut rx, &wire), Err(DropReason::Malformed));
    wire[10] ^= 0x01;
    assert_eq!(
        receive(&mut rx, &wire).unwrap(),
        inner,
        "the same packet with its checksum intact"
    );
}
