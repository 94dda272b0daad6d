//! The AES-GCM cases of the independent (scapy-built) vectors through the card model,
//! driven through BAR0 and DMA as hardware is: its decapsulation of `in.pcap` must recover
//! `expected.pcap`, and its encapsulation of `plain.pcap` must decrypt — with the software
//! engine, whose AES-GCM is ring, not the model's RustCrypto — to the inner packets, with
//! the SPIs and sequence numbers `case.json` gives.

#[path = "../hw-model/tests/common/mod.rs"]
mod card;
mod common;

use std::net::IpAddr;
use std::path::Path;

use card::Host;
use espo_config::Config;
use espo_fpga::{AlgId, SaEntry, Status};
use espo_ipsec::crypto::EncryptionAlgorithm;
use espo_ipsec::engine::Decapsulated;
use espo_ipsec::spec::SaSpec;
use espo_ipsec::wire::ethernet::EtherType;
use espo_model::{MemLink, ModelParams};

/// An address as the SA entry holds it: IPv4 in bytes 0–3 (datasheet §0, conventions).
fn addr16(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

/// The card's SA entry for a configured AES-GCM SA.
fn entry(sa: &SaSpec, outbound: bool) -> SaEntry {
    let alg = match sa.encryption {
        Some(EncryptionAlgorithm::AesGcm128) => AlgId::AesGcm128,
        Some(EncryptionAlgorithm::AesGcm256) => AlgId::AesGcm256,
        other => panic!("not a card algorithm: {other:?}"),
    };
    let key = sa.key.as_ref().expect("key").as_bytes();
    let key_len = key.len() - 4;
    let mut e = SaEntry {
        outbound,
        outer_ipv6: sa.dst.is_ipv6(),
        esn: sa.esn,
        udp_encap: sa.udp_encap.is_some(),
        spi: sa.spi,
        alg: Some(alg),
        ttl: sa.ttl,
        replay_window: sa.replay_window,
        udp_src_port: sa.udp_encap.map_or(0, |u| u.src_port),
        udp_dst_port: sa.udp_encap.map_or(0, |u| u.dst_port),
        src_addr: addr16(sa.src),
        dst_addr: addr16(sa.dst),
        seq: sa.seq,
        ..SaEntry::default()
    };
    e.key[..key_len].copy_from_slice(&key[..key_len]);
    e.salt.copy_from_slice(&key[key_len..]);
    e
}

fn frame(dst_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 9]);
    f.extend_from_slice(&EtherType::of_ip(ip).to_bytes());
    f.extend_from_slice(ip);
    f
}

fn card_with(sa: &SaSpec, outbound: bool) -> (Host, MemLink) {
    let mut host = Host::new(ModelParams::default());
    let (near, port) = MemLink::pair();
    host.model.attach_link(Box::new(near));
    host.bring_up(1, 7);
    assert_eq!(host.sa_write(0, &entry(sa, outbound), None), Status::Ok);
    (host, port)
}

#[test]
fn the_model_decapsulates_the_gcm_vectors() {
    for case in ["d01-gcm128-4in4", "d02-gcm256-6in4-eth", "d07-natt"] {
        let dir = common::vectors_dir().join(case);
        let config = Config::load(&dir.join("config.toml")).expect("config");
        let (mut host, port) = card_with(&config.sas[0], false);
        let mut got = Vec::new();
        for p in common::ip_packets(&dir.join("in.pcap")) {
            port.send_bytes(&frame([0x02, 0, 0, 0, 0, 1], &p));
            host.model.run_until_idle();
            for (c, data) in host.rx_completions(0) {
                assert!(c.status == Status::Ok && c.decapsulated, "{case}: {c:?}");
                got.push(data[14..].to_vec());
            }
        }
        let want = common::ip_packets(&dir.join("expected.pcap"));
        assert_eq!(got.len(), want.len(), "{case}");
        assert!(
            got == want,
            "{case}: the card's inner packets differ from scapy's"
        );
    }
}

#[test]
fn the_models_encapsulation_of_the_gcm_vectors_decrypts_independently() {
    for case in ["e01-gcm128", "e06-natt"] {
        let dir = common::vectors_dir().join(case);
        let config = Config::load(&dir.join("config.toml")).expect("config");
        let sa = &config.sas[0];
        let (mut host, port) = card_with(sa, true);
        // The software engine as the receiver: the same SA, inbound.
        let text = std::fs::read_to_string(dir.join("config.toml"))
            .unwrap()
            .replace("dir = \"out\"", "dir = \"in\"");
        let rx_config = Config::parse(&text, Path::new("rx.toml")).expect("rx config");
        let mut rx = rx_config.software_engine().expect("rx");
        let plain = common::ip_packets(&dir.join("plain.pcap"));
        for (i, inner) in plain.iter().enumerate() {
            host.post_tx(0, &[(&frame([0x02, 0, 0, 0, 0, 2], inner), Some(0))]);
            host.model.run_until_idle();
            let cpl = host.tx_completions(0);
            assert!(
                matches!(cpl.as_slice(), [c] if c.status == Status::Ok && c.seq == i as u64 + 1),
                "{case} {i}: {cpl:?}"
            );
            let wire = port.drain();
            assert_eq!(wire.len(), 1, "{case} {i}");
            let mut pkt = wire[0].data[14..].to_vec();
            let esp_at = 20 + if sa.udp_encap.is_some() { 8 } else { 0 };
            assert_eq!(
                &pkt[esp_at..esp_at + 4],
                &sa.spi.to_be_bytes(),
                "{case} {i}: SPI"
            );
            assert_eq!(
                &pkt[esp_at + 4..esp_at + 8],
                &(i as u32 + 1).to_be_bytes(),
                "{case} {i}: sequence number"
            );
            match rx.inbound.decapsulate(&mut pkt) {
                Ok(Decapsulated::Inner { range, .. }) => {
                    assert_eq!(&pkt[range], &inner[..], "{case} {i}")
                }
                other => panic!(
                    "{case} {i}: software could not decapsulate the card's packet: {other:?}"
                ),
            }
        }
    }
}
