//! `espo pcap` as a user runs it: the README's offline example on the bundled capture, drops
//! counted by reason, and clear failures on bad configuration or unreadable captures.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use espo_ipsec::wire::Version;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pcap")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn bundled_example_round_trips() {
    let dir = scratch("pcap-example");
    let protected = dir.join("protected.pcap");
    let back = dir.join("back.pcap");
    let ex = examples();
    let o = run(&[
        "pcap",
        "encap",
        "--config",
        s(&ex.join("gw-a.toml")),
        s(&ex.join("plain.pcap")),
        s(&protected),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("packets read             21"), "{out}");
    assert!(out.contains("(19 encapsulated, 1 bypassed)"), "{out}");
    assert!(out.contains("no-policy                 1"), "{out}");
    for p in ip_packets(&protected) {
        let proto = if Version::of(&p) == Some(Version::Ipv4) {
            p[9]
        } else {
            p[6]
        };
        let dst = &p[16..20];
        assert!(
            proto == 50 || dst == [10, 3, 0, 53],
            "only ESP or the bypassed DNS packet leaves: {p:02x?}"
        );
    }
    let o = run(&[
        "pcap",
        "decap",
        "--config",
        s(&ex.join("gw-b.toml")),
        s(&protected),
        s(&back),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = ip_packets(&ex.join("plain.pcap"));
    let expected: Vec<_> = plain
        .iter()
        .filter(|p| Version::of(p) == Some(Version::Ipv6) || p[16..20] != [10, 9, 0, 1])
        .cloned()
        .collect();
    assert_eq!(ip_packets(&back), expected);
}

#[test]
fn hostile_records_are_counted_by_reason() {
    let dir = scratch("pcap-hostile");
    let ex = examples();
    let protected = dir.join("protected.pcap");
    let o = run(&[
        "pcap",
        "encap",
        "--config",
        s(&ex.join("gw-a.toml")),
        s(&ex.join("plain.pcap")),
        s(&protected),
    ]);
    assert!(o.status.success());
    let mut packets: Vec<Vec<u8>> = ip_packets(&protected)
        .into_iter()
        .filter(|p| p[9] == 50)
        .collect();
    let first = packets[0].clone();
    // Packet 1 arrives tampered first (bad ICV: the window does not move), then intact.
    let original = packets.remove(1);
    let mut tampered = original.clone();
    *tampered.last_mut().unwrap() ^= 0x40;
    let mut unknown = packets[2].clone();
    unknown[20..24].copy_from_slice(&0x0bad_0bad_u32.to_be_bytes());
    packets.push(tampered);
    packets.push(original);
    packets.push(first); // replayed
    packets.push(unknown);
    packets.push(vec![0x45, 0, 0]); // truncated
    let hostile = dir.join("hostile.pcap");
    write_raw_capture(&hostile, &packets);
    let back = dir.join("back.pcap");
    let o = run(&[
        "pcap",
        "decap",
        "--config",
        s(&ex.join("gw-b.toml")),
        s(&hostile),
        s(&back),
    ]);
    assert!(
        o.status.success(),
        "dropping packets is not a failure: {}",
        stderr(&o)
    );
    let out = stdout(&o);
    for line in [
        "replayed                  1",
        "bad-icv                   1",
        "unknown-spi               1",
        "malformed                 1",
        "packets dropped           4",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    assert_eq!(ip_packets(&back).len(), packets.len() - 4);
}

#[test]
fn bad_configuration_fails_with_file_entry_and_field() {
    let dir = scratch("pcap-badconfig");
    let cfg = dir.join("bad.toml");
    let text = std::fs::read_to_string(examples().join("gw-a.toml"))
        .unwrap()
        .replace("aes-gcm-128", "aes-gcm-129");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.join("out.pcap");
    let o = run(&[
        "pcap",
        "encap",
        "--config",
        s(&cfg),
        s(&examples().join("plain.pcap")),
        s(&out),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml")
            && err.contains("sa[0] (spi 0x00001001)")
            && err.contains("field `encryption`"),
        "{err}"
    );
    assert!(!out.exists(), "nothing starts on a bad configuration");
}

#[test]
fn unreadable_captures_fail_clearly() {
    let dir = scratch("pcap-unreadable");
    let cfg = examples().join("gw-a.toml");
    let out = dir.join("out.pcap");
    let o = run(&[
        "pcap",
        "encap",
        "--config",
        s(&cfg),
        s(&dir.join("missing.pcap")),
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot open input capture") && stderr(&o).contains("missing.pcap"),
        "{}",
        stderr(&o)
    );

    let ng = dir.join("trace.pcapng");
    std::fs::write(
        &ng,
        [
            0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a,
        ],
    )
    .unwrap();
    let o = run(&["pcap", "encap", "--config", s(&cfg), s(&ng), s(&out)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("pcapng") && stderr(&o).contains("editcap"),
        "{}",
        stderr(&o)
    );

    // A capture cut inside its last record: the error names the record; what came before
    // it has been written.
    let whole = std::fs::read(examples().join("plain.pcap")).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() - 5]).unwrap();
    let o = run(&["pcap", "encap", "--config", s(&cfg), s(&cut), s(&out)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("record 20"), "{}", stderr(&o));
}

#[test]
fn snapped_records_are_counted_not_transformed() {
    let dir = scratch("pcap-snapped");
    let mut bytes = std::fs::read(examples().join("plain.pcap")).unwrap();
    // First record header at 24: raise its original length above the captured length.
    let orig = u32::from_le_bytes(bytes[36..40].try_into().unwrap());
    bytes[36..40].copy_from_slice(&(orig + 100).to_le_bytes());
    let snapped = dir.join("snapped.pcap");
    std::fs::write(&snapped, bytes).unwrap();
    let out = dir.join("out.pcap");
    let o = run(&[
        "pcap",
        "encap",
        "--config",
        s(&examples().join("gw-a.toml")),
        s(&snapped),
        s(&out),
    ]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("snapped                   1"),
        "{}",
        stdout(&o)
    );
}

/// The count of `reason` in a summary's drops, 0 when it is not listed.
fn dropped(summary: &str, reason: &str) -> u64 {
    summary
        .lines()
        .filter_map(|l| l.trim().strip_prefix(reason))
        .find_map(|rest| rest.trim().parse().ok())
        .unwrap_or(0)
}

/// An IPv4/UDP packet from `src` to 10.2.0.5.
fn udp_from(src: [u8; 4], fill: u8) -> Vec<u8> {
    let mut p = espo_harness::loopback::udp_packet(120, fill);
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&[10, 2, 0, 5]);
    p[10..12].copy_from_slice(&[0, 0]);
    let sum = !espo_ipsec::wire::checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

/// RFC 4301 §5.2 through the CLI, on both engines: the receiver reaches site 10.9/16
/// through SA A (0x3001) and every other 10/8 site through SA B (0x3002). A packet sent
/// with B whose inner source is in 10.9/16 is dropped `policy-mismatch`: the first inbound
/// policy that matches it (A's) decides.
#[test]
fn decap_refuses_a_peer_sending_as_another_peers_site() {
    let dir = scratch("pcap-policy-first-match");
    let sa = |spi: u32, src: &str, key: &str| {
        format!(
            "[[sa]]\nspi = {spi:#x}\nprotocol = \"esp\"\nsrc = \"{src}\"\ndst = \"192.0.2.1\"\nencryption = \"aes-gcm-128\"\nkey = \"{key}\"\n"
        )
    };
    let sas = format!(
        "{}{}",
        sa(0x3001, "192.0.2.2", &"a1".repeat(20)),
        sa(0x3002, "192.0.2.3", &"b2".repeat(20))
    );
    let policy = |dir: &str, src: &str, spi: u32| {
        format!(
            "[[policy]]\ndir = \"{dir}\"\nsrc = \"{src}\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [{spi:#x}]\n"
        )
    };
    let receiver = dir.join("receiver.toml");
    std::fs::write(
        &receiver,
        format!(
            "{sas}{}{}",
            policy("in", "10.9.0.0/16", 0x3001),
            policy("in", "10.0.0.0/8", 0x3002)
        ),
    )
    .unwrap();
    // Peer B's gateway protects all of 10/8 with B.
    let sender_b = dir.join("sender-b.toml");
    std::fs::write(
        &sender_b,
        format!("{sas}{}", policy("out", "10.0.0.0/8", 0x3002)),
    )
    .unwrap();

    let spoofed = udp_from([10, 9, 1, 1], 0x51);
    let genuine = udp_from([10, 7, 1, 1], 0x52);
    let plain = dir.join("plain.pcap");
    write_raw_capture(&plain, &[spoofed, genuine.clone()]);
    let protected = dir.join("protected.pcap");
    let o = run(&[
        "pcap",
        "encap",
        "--config",
        s(&sender_b),
        s(&plain),
        s(&protected),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ip_packets(&protected).len(), 2);

    for engine in ["software", "model"] {
        let back = dir.join(format!("back-{engine}.pcap"));
        let o = run(&[
            "pcap",
            "decap",
            "--engine",
            engine,
            "--config",
            s(&receiver),
            s(&protected),
            s(&back),
        ]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        let out = stdout(&o);
        assert_eq!(dropped(&out, "policy-mismatch"), 1, "{engine}:\n{out}");
        assert_eq!(dropped(&out, "packets dropped"), 1, "{engine}:\n{out}");
        assert_eq!(
            ip_packets(&back),
            vec![genuine.clone()],
            "{engine}: only B's own site is delivered"
        );
        if engine == "model" {
            assert!(
                out.lines()
                    .any(|l| l.contains("sa 0x00003002") && l.contains("card")),
                "SA B ran on the card:\n{out}"
            );
        }
    }
}
