//! `espo demo` as a user runs it: every packet delivered, the summary complete, one packet
//! shown before and after encapsulation, no key in the output, failures in the exit status.

mod common;

use std::path::Path;

use common::*;

fn demo_config(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/demo")
        .join(name);
    std::fs::read_to_string(path).expect("demo configuration")
}

/// Every key and integrity key of the demo configurations, in hex.
fn demo_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for name in ["gw-a.toml", "gw-b.toml"] {
        for line in demo_config(name).lines() {
            let line = line.trim();
            if (line.starts_with("key =") || line.starts_with("integrity_key ="))
                && let Some(hex) = line.split('"').nth(1)
            {
                keys.push(hex.to_lowercase());
            }
        }
    }
    keys
}

/// The number before `of` and the one after it in `delivered   X of Y packets`.
fn delivered_of_sent(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("delivered "))
        .expect("a delivered line");
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}

#[test]
fn the_demo_delivers_every_packet_and_says_so() {
    let o = run(&["demo", "--packets", "2000", "--seed", "3"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert_eq!(delivered_of_sent(&out), (2000, 2000), "{out}");
    for field in [
        "lost 0, corrupted 0, unexpected 0, refused 0",
        "wall clock",
        "packets/s",
        "Gbit/s of inner traffic",
        "card        simulated ESPO-1: its port carried TX",
        "every frame ESP or ESP in UDP, nothing in clear",
        "gateway A (card model with software fallback)",
        "gateway B (software engine)",
        "security associations",
        "drops by reason: none",
        "result: every packet delivered intact",
    ] {
        assert!(out.contains(field), "missing `{field}`:\n{out}");
    }
    // The tunnels were negotiated: three IKE SAs, four CHILD_SAs, gateway A initiating.
    assert!(
        out.starts_with(
            "key management: IKEv2 over the gateways' link — gateway A initiated 3 IKE SAs and 4 CHILD_SAs"
        ),
        "{out}"
    );
    // (The list at the start; the summary ends with the list as the traffic left it.)
    let start = out.split("espo demo:").next().unwrap_or_default();
    assert_eq!(start.matches("ESTABLISHED").count(), 3, "{out}");
    assert_eq!(start.matches(", initiator, ").count(), 3, "{out}");
    assert!(
        out.contains("gateway A's IKE SAs and CHILD_SAs at the end (espo ike list):"),
        "{out}"
    );
    for algorithms in [
        "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519",
        "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
        "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
    ] {
        assert!(out.contains(algorithms), "missing {algorithms}:\n{out}");
    }
    // Where each SA runs: AES-GCM on the card, the rest in software, on gateway A; each
    // outbound SA is the one the negotiation gave (its SPI in `ike list`).
    for (algorithm, place) in [
        ("aes-gcm-128", "card"),
        ("aes-gcm-256", "card"),
        (
            "chacha20-poly1305",
            "software (chacha20-poly1305 not in hardware)",
        ),
        (
            "aes-cbc-128+hmac-sha256-128",
            "software (aes-cbc-128 not in hardware)",
        ),
    ] {
        let line = out
            .lines()
            .find(|l| {
                l.trim_start().starts_with("A")
                    && l.contains(&format!(" {algorithm} "))
                    && l.contains(" out ")
            })
            .unwrap_or_else(|| panic!("no SA line for {algorithm}:\n{out}"));
        let spi = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("0x");
        assert!(
            out.contains(&format!(" out {spi}")),
            "{spi} is not a negotiated SPI:\n{out}"
        );
        assert!(line.contains(place), "{line}");
        let packets: u64 = line
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(packets > 0, "{line}");
    }
}

#[test]
fn one_packet_is_shown_before_and_after_encapsulation() {
    // With the manual keys, so that the SPI shown is known.
    let o = run(&["demo", "--packets", "200", "--quiet", "--manual-keys"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let before = out.find("  before:").expect("before");
    let after = out.find("  after:").expect("after");
    assert!(before < after);
    let shown = &out[before..];
    for part in [
        "IPv4 10.1.1.10 -> 10.2.1.10",
        "UDP 40001 -> 7",
        "inner IP packet | 45 ",
        "IPv4 192.0.2.1 -> 192.0.2.2",
        "outer IP   | 45 ",
        "ESP        | 00 00 a1 01 00 00 00 01  (SPI 0x0000a101, sequence number 1)",
        "IV         |",
        "ciphertext |",
        "ICV        |",
    ] {
        assert!(shown.contains(part), "missing `{part}`:\n{shown}");
    }
    assert!(stderr(&o).is_empty(), "--quiet: {}", stderr(&o));
}

#[test]
fn no_key_appears_in_the_output() {
    let o = run(&["demo", "--packets", "400"]);
    let text = format!("{}{}", stdout(&o), stderr(&o)).to_lowercase();
    let spaced = text.replace(' ', "");
    let keys = demo_keys();
    assert_eq!(
        keys.len(),
        20,
        "8 SAs a side, 2 of them with an integrity key"
    );
    for key in keys {
        // Any 8 bytes of a key, packed or as a spaced hex dump.
        for start in (0..key.len().saturating_sub(16)).step_by(2) {
            let piece = &key[start..start + 16];
            assert!(!text.contains(piece), "key bytes {piece} in the output");
            assert!(!spaced.contains(piece), "key bytes {piece} in a hex dump");
        }
    }
    assert!(
        !text.contains("pre-shared key, published"),
        "the demo PSK is not shown"
    );
}

#[test]
fn a_broken_tunnel_fails_the_demo_with_its_drops() {
    let dir = scratch("demo-broken");
    let a = dir.join("gw-a.toml");
    let b = dir.join("gw-b.toml");
    std::fs::write(&a, demo_config("gw-a.toml")).unwrap();
    let good = demo_config("gw-b.toml");
    let broken = good.replace(
        "1479de1646c43268dbfe42c03a4d142aa864fc2bce26b8d1a2e2c752ccdccd5858b65707",
        "ff79de1646c43268dbfe42c03a4d142aa864fc2bce26b8d1a2e2c752ccdccd5858b65707",
    );
    assert_ne!(broken, good);
    std::fs::write(&b, broken).unwrap();
    let o = run(&[
        "demo",
        "--packets",
        "400",
        "--quiet",
        "--manual-keys",
        "--config-a",
        a.to_str().unwrap(),
        "--config-b",
        b.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let (delivered, sent) = delivered_of_sent(&out);
    assert!(delivered < sent, "{out}");
    assert!(out.contains("gateway B in  bad-icv"), "{out}");
    assert!(out.contains("result: FAILED"), "{out}");
}

#[test]
fn a_wrong_pre_shared_key_stops_the_demo_before_traffic() {
    let dir = scratch("demo-psk");
    let a = dir.join("gw-a.toml");
    let b = dir.join("gw-b.toml");
    std::fs::write(&a, demo_config("gw-a.toml")).unwrap();
    let good = demo_config("gw-b.toml");
    let broken = good.replacen(
        "psk = \"demo pre-shared key, published with espo\"",
        "psk = \"another pre-shared key, not A's one\"",
        1,
    );
    assert_ne!(broken, good);
    std::fs::write(&b, broken).unwrap();
    let o = run(&[
        "demo",
        "--packets",
        "400",
        "--quiet",
        "--config-a",
        a.to_str().unwrap(),
        "--config-b",
        b.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("key management failed") && err.contains("pre-shared key does not match"),
        "{err}"
    );
    assert!(
        !err.contains("demo pre-shared key") && !err.contains("another pre-shared key"),
        "{err}"
    );
}

#[test]
fn help_explains_the_demo_and_bad_options_are_refused() {
    let help = stdout(&run(&["demo", "--help"]));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for what in [
        "card model",
        "software engine",
        "byte",
        "demo keys",
        "--packets",
        "--seconds",
        "--size",
        "--seed",
        "--quiet",
        "IKEv2",
        "--manual-keys",
    ] {
        assert!(help.contains(what), "help lacks `{what}`:\n{help}");
    }
    for bad in [
        &["demo", "--size", "10"][..],
        &["demo", "--size", "big"],
        &["demo", "--packets", "0"],
        &["demo", "--seconds", "-1"],
    ] {
        let o = run(bad);
        assert!(!o.status.success(), "{bad:?} was accepted");
        assert!(stderr(&o).contains("error"), "{bad:?}: {}", stderr(&o));
    }
}

#[test]
fn a_timed_run_finishes_clean() {
    let o = run(&["demo", "--seconds", "0.3", "--size", "1400", "--quiet"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}");
    let (delivered, sent) = delivered_of_sent(&out);
    assert!(sent > 0 && delivered == sent, "{out}");
    assert!(out.contains("inner packets 1400 bytes"), "{out}");
}

#[test]
fn the_demo_renews_its_tunnels_under_traffic_and_loses_nothing() {
    // Each of the 8 outbound SAs carries an eighth of the traffic: 200000 packets renew every
    // CHILD_SA at least once (at 20000 packets), and every IKE SA (120 s at 1000 packets a
    // second).
    let o = run(&["demo", "--packets", "200000", "--quiet"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert_eq!(delivered_of_sent(&out), (200000, 200000), "{out}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("rekeys "))
        .unwrap_or_else(|| panic!("no rekeys line: {out}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let child: u64 = words[1].parse().unwrap();
    assert!(child >= 4, "{line}");
    let ike: u64 = line
        .split("), ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(ike >= 3, "{line}");
    assert!(line.ends_with("lost 0"), "{line}");
    assert!(out.contains("drops by reason: none"), "{out}");
    // The renewed AES-GCM SAs run on the card, the others in software, on gateway A.
    let sas = out
        .split("security associations")
        .nth(1)
        .unwrap_or_default();
    let on_card = sas
        .lines()
        .filter(|l| l.contains(" A ") && l.contains("aes-gcm") && l.contains(" card "))
        .count();
    assert_eq!(on_card, 4, "{sas}");
    assert!(!sas.contains(" ? "), "every SA's algorithm named: {sas}");
}
