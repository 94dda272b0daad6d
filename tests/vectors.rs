//! The ESP/AH vectors built by an independent implementation (scapy; tests/data/vectors),
//! run through `espo pcap` exactly as a user would.
//!
//! Every case runs on both engines: `--engine software` and `--engine model` (the card model
//! with software fallback; SAs the card cannot take run in software, which the summary
//! says).
//!
//! Decapsulation cases must reproduce `expected.pcap` packet for packet. Encapsulation cases
//! are checked field by field (outer addresses, SPI, sequence numbers, UDP encapsulation,
//! IV uniqueness), decrypted independently with RustCrypto where the algorithm allows
//! (AES-GCM, ChaCha20-Poly1305 — the software engine uses ring), and decapsulated again by
//! espo to the original packets.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::*;
use espo_ipsec::wire::Version;
use serde_json::Value;

fn case_dirs(kind: char) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(vectors_dir())
        .expect("vectors")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with(kind))
        .collect();
    dirs.sort();
    dirs
}

const ENGINES: [&str; 2] = ["software", "model"];

/// Whether the case's SAs are all ones the card takes (AES-GCM ESP tunnels).
fn card_case(dir: &Path) -> bool {
    let text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    text.contains("aes-gcm") && !text.contains("\"ah\"")
}

/// The summary names where each SA ran: on the card for AES-GCM cases, in software (with
/// the reason) for the rest.
fn check_placement_line(name: &str, engine: &str, dir: &Path, summary: &str) {
    let sa_lines: Vec<&str> = summary
        .lines()
        .filter(|l| l.trim_start().starts_with("sa 0x"))
        .collect();
    assert!(!sa_lines.is_empty(), "{name}: no SA lines in\n{summary}");
    for l in sa_lines {
        let on_card = l.contains(" card ");
        match (engine, card_case(dir)) {
            ("model", true) => assert!(on_card, "{name}: expected on the card: {l}"),
            ("model", false) => assert!(
                l.contains("software ("),
                "{name}: expected software with a reason: {l}"
            ),
            _ => assert!(l.contains(" software "), "{name}: {l}"),
        }
    }
    if engine == "model" {
        assert!(
            summary.contains("card model with software fallback"),
            "{name}: {summary}"
        );
    }
}

#[test]
fn every_decapsulation_case_reproduces_expected_output() {
    for engine in ENGINES {
        decapsulation_cases(engine);
    }
}

fn decapsulation_cases(engine: &str) {
    let dirs = case_dirs('d');
    assert_eq!(dirs.len(), 7);
    let scratch = scratch(&format!("vectors-decap-{engine}"));
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let out = scratch.join(format!("{name}.pcap"));
        let o = run(&[
            "pcap",
            "decap",
            "--engine",
            engine,
            "--config",
            dir.join("config.toml").to_str().unwrap(),
            dir.join("in.pcap").to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        let name = format!("{name} ({engine})");
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let got = ip_packets(&out);
        let want = ip_packets(&dir.join("expected.pcap"));
        assert_eq!(
            got.len(),
            want.len(),
            "{name}: packet count\n{}",
            stdout(&o)
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{name}: packet {i} differs");
        }
        assert_eq!(
            link_type(&out),
            link_type(&dir.join("in.pcap")),
            "{name}: link type kept"
        );
        assert!(
            stdout(&o).contains("packets dropped           0"),
            "{name}: {}",
            stdout(&o)
        );
        check_placement_line(&name, engine, &dir, &stdout(&o));
    }
}

/// Decrypts one ESP payload with RustCrypto, independently of espo's ring-based engine.
fn independent_open(enc: &str, key: &[u8], esp: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let (k, salt) = key.split_at(key.len() - 4);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&esp[8..16]);
    let payload = Payload {
        msg: &esp[16..],
        aad: &esp[..8],
    };
    match enc {
        "aes-gcm-128" => aes_gcm::Aes128Gcm::new_from_slice(k)
            .unwrap()
            .decrypt(&nonce.into(), payload),
        "aes-gcm-256" => aes_gcm::Aes256Gcm::new_from_slice(k)
            .unwrap()
            .decrypt(&nonce.into(), payload),
        "chacha20-poly1305" => chacha20poly1305::ChaCha20Poly1305::new_from_slice(k)
            .unwrap()
            .decrypt(&nonce.into(), payload),
        other => panic!("no independent decryption for {other}"),
    }
    .expect("independent AEAD open")
}

/// Removes the ESP trailer: the inner packet.
fn strip_trailer(plain: &[u8]) -> &[u8] {
    let pad = plain[plain.len() - 2] as usize;
    for (i, b) in plain[plain.len() - 2 - pad..plain.len() - 2]
        .iter()
        .enumerate()
    {
        assert_eq!(*b as usize, i + 1, "default padding");
    }
    &plain[..plain.len() - 2 - pad]
}

fn ip_header_len(p: &[u8]) -> (usize, u8, &[u8], &[u8]) {
    if Version::of(p) == Some(Version::Ipv4) {
        ((p[0] & 15) as usize * 4, p[9], &p[12..16], &p[16..20])
    } else {
        (40, p[6], &p[8..24], &p[24..40])
    }
}

fn addr_bytes(s: &str) -> Vec<u8> {
    match s.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn check_encap_case(dir: &Path, scratch: &Path, engine: &str) {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let out = scratch.join(format!("{name}.pcap"));
    let config = dir.join("config.toml");
    let o = run(&[
        "pcap",
        "encap",
        "--engine",
        engine,
        "--config",
        config.to_str().unwrap(),
        dir.join("plain.pcap").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    check_placement_line(&name, engine, dir, &stdout(&o));
    let plain = ip_packets(&dir.join("plain.pcap"));
    let got = ip_packets(&out);
    assert_eq!(got.len(), plain.len(), "{name}: packet count");
    let sas = meta["sas"].as_array().unwrap();
    let first_seq = meta["first_seq"].as_u64().unwrap();
    let outer_sa = sas.last().unwrap();
    let mut ivs = HashSet::new();
    for (i, (pkt, inner)) in got.iter().zip(&plain).enumerate() {
        let seq = first_seq + i as u64;
        let (hl, proto, src, dst) = ip_header_len(pkt);
        assert_eq!(
            src,
            addr_bytes(outer_sa["src"].as_str().unwrap()),
            "{name} {i}: outer src"
        );
        assert_eq!(
            dst,
            addr_bytes(outer_sa["dst"].as_str().unwrap()),
            "{name} {i}: outer dst"
        );
        let mut off = hl;
        let mut proto = proto;
        for sa in sas.iter().rev() {
            let spi = sa["spi"].as_u64().unwrap() as u32;
            if sa["proto"] == "ah" {
                assert_eq!(proto, 51, "{name} {i}: AH");
                assert_eq!(
                    u32::from_be_bytes(pkt[off + 4..off + 8].try_into().unwrap()),
                    spi
                );
                assert_eq!(
                    u32::from_be_bytes(pkt[off + 8..off + 12].try_into().unwrap()) as u64,
                    seq
                );
                proto = pkt[off];
                off += (pkt[off + 1] as usize + 2) * 4;
                continue;
            }
            if sa["udp"].as_bool().unwrap() {
                assert_eq!(proto, 17, "{name} {i}: UDP encapsulation");
                assert_eq!(&pkt[off + 2..off + 4], &4500u16.to_be_bytes());
                off += 8;
            } else {
                assert_eq!(proto, 50, "{name} {i}: ESP");
            }
            let esp = &pkt[off..];
            assert_eq!(
                u32::from_be_bytes(esp[0..4].try_into().unwrap()),
                spi,
                "{name} {i}: SPI"
            );
            assert_eq!(
                u32::from_be_bytes(esp[4..8].try_into().unwrap()) as u64,
                seq,
                "{name} {i}: seq"
            );
            let enc = sa["enc"].as_str().unwrap();
            if enc.starts_with("aes-gcm") || enc == "chacha20-poly1305" {
                assert_eq!(
                    &esp[8..16],
                    &seq.to_be_bytes(),
                    "{name} {i}: IV is the sequence number"
                );
                assert!(ivs.insert(esp[8..16].to_vec()), "{name} {i}: IV reused");
                let key = hex(sa["key"].as_str().unwrap());
                let plain_payload = independent_open(enc, &key, esp);
                assert_eq!(
                    strip_trailer(&plain_payload),
                    &inner[..],
                    "{name} {i}: independent decryption"
                );
            } else {
                assert!(
                    ivs.insert(esp[8..24].to_vec()),
                    "{name} {i}: CBC IV repeated"
                );
            }
        }
    }
    // And espo's own decapsulation gets every packet back.
    let mirrored = scratch.join(format!("{name}.in.toml"));
    std::fs::write(
        &mirrored,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("dir = \"out\"", "dir = \"in\""),
    )
    .unwrap();
    let back = scratch.join(format!("{name}.back.pcap"));
    let o = run(&[
        "pcap",
        "decap",
        "--engine",
        engine,
        "--config",
        mirrored.to_str().unwrap(),
        out.to_str().unwrap(),
        back.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{name}: {}", stderr(&o));
    assert_eq!(ip_packets(&back), plain, "{name}: round trip");
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_encapsulation_case_checks_out() {
    for engine in ENGINES {
        let dirs = case_dirs('e');
        assert_eq!(dirs.len(), 6);
        let scratch = scratch(&format!("vectors-encap-{engine}"));
        for dir in dirs {
            check_encap_case(&dir, &scratch, engine);
        }
    }
}

/// For AES-GCM SAs the card's output is the software engine's, byte for byte (same
/// sequence numbers, IV = sequence number), and the other deterministic transforms run in
/// software on both: every encapsulation case but AES-CBC (random IVs) is identical.
#[test]
fn the_models_encapsulation_is_the_software_engines_byte_for_byte() {
    let scratch = scratch("vectors-encap-identical");
    for dir in case_dirs('e') {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("cbc") {
            continue;
        }
        let mut outputs = Vec::new();
        for engine in ENGINES {
            let out = scratch.join(format!("{name}-{engine}.pcap"));
            let o = run(&[
                "pcap",
                "encap",
                "--engine",
                engine,
                "--config",
                dir.join("config.toml").to_str().unwrap(),
                dir.join("plain.pcap").to_str().unwrap(),
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{name} {engine}: {}", stderr(&o));
            outputs.push(std::fs::read(&out).unwrap());
        }
        assert!(
            outputs[0] == outputs[1],
            "{name}: model and software outputs differ"
        );
    }
}
