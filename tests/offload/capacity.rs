//! More SAs than the card's SA table holds: the rest run in software and move onto the
//! card as entries free up.

use espo_ipsec::spec::Direction;
use espo_offload::{Path, Placement, SentAs, SoftwareReason};

use super::support::*;

/// Outbound AES-GCM SA `i` protects 10.(100 + i / 256).(i % 256).0/24.
fn many(n: u32, first_hard_packets: u64) -> (String, String) {
    let mut local = String::new();
    let mut peer = String::new();
    for i in 0..n {
        let spi = 0x10_0000 + i;
        // Each SA its own key (the SPI in its first bytes): one AEAD key, one SA.
        let key = format!("{spi:08x}4546474849{}", "4a".repeat(11));
        let sa = format!(
            "[[sa]]\nspi = {spi:#x}\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nencryption = \"aes-gcm-128\"\nkey = \"{key}\"\nreplay_window = 0\n"
        );
        local += &sa;
        peer += &sa;
        if i == 0 {
            local += &format!("lifetime = {{ hard_packets = {first_hard_packets} }}\n");
        }
    }
    for i in 0..n {
        let spi = 0x10_0000 + i;
        let net = format!("10.{}.{}.0/24", 100 + i / 256, i % 256);
        for (text, dir) in [(&mut local, "out"), (&mut peer, "in")] {
            *text += &format!(
                "[[policy]]\ndir = \"{dir}\"\nsrc = \"10.1.0.0/16\"\ndst = \"{net}\"\naction = \"protect\"\nsa = [{spi:#x}]\n"
            );
        }
    }
    (local, peer)
}

fn packet_to(rig: &mut Rig, tag: u64, i: u32) {
    let mut p =
        espo_harness::validate::traffic::inner_packet(&mut rig.rng, 1, 100, false, tag as u32, 64);
    p[17] = (100 + i / 256) as u8;
    p[18] = (i % 256) as u8;
    p[10] = 0;
    p[11] = 0;
    let sum = !espo_ipsec::wire::checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    rig.engine.submit(tag, &p);
    rig.ledger.submitted.insert(tag, p);
}

#[test]
fn sas_beyond_the_table_run_in_software_then_move_onto_the_card() {
    let table = 4096u32;
    let (local, peer) = many(table + 3, 1);
    let mut rig = rig_with(&local, &peer, |_| {});
    let p = rig.engine.placements();
    assert_eq!(
        p.iter()
            .filter(|s| matches!(s.placement, Placement::Card { .. }))
            .count(),
        table as usize
    );
    let waiting: Vec<_> = p
        .iter()
        .filter(|s| s.placement == Placement::Software)
        .map(|s| (s.spi, s.why_software))
        .collect();
    assert_eq!(
        waiting,
        (table..table + 3)
            .map(|i| (0x10_0000 + i, Some(SoftwareReason::TableFull)))
            .collect::<Vec<_>>()
    );
    // The first waiting SA works in software meanwhile.
    for t in 0..3 {
        packet_to(&mut rig, t, table);
    }
    rig.settle();
    // SA 0 reaches its hard lifetime on the card: its entry frees up (after a short rest)
    // for SA 4096.
    packet_to(&mut rig, 10, 0);
    rig.settle();
    for _ in 0..100_000 {
        if rig.engine.counters().moves_to_card == 1 {
            break;
        }
        rig.engine.wait(std::time::Duration::from_micros(20));
    }
    for t in 20..23 {
        packet_to(&mut rig, t, table);
    }
    rig.settle();
    rig.ledger.assert_sound();
    let p = rig.engine.placements();
    let of = |spi| {
        p.iter()
            .find(|s| s.spi == spi && s.dir == Direction::Out)
            .unwrap()
    };
    assert_eq!(of(0x10_0000).placement, Placement::Software);
    assert_eq!(of(0x10_0000).why_software, Some(SoftwareReason::Expired));
    assert!(matches!(
        of(0x10_0000 + table).placement,
        Placement::Card { .. }
    ));
    assert_eq!(rig.engine.counters().moves_to_card, 1);
    let paths: Vec<_> = (0..3)
        .chain(20..23)
        .map(|t| rig.ledger.reports[&t])
        .collect();
    for (i, r) in paths.iter().enumerate() {
        let want = if i < 3 { Path::Software } else { Path::Card };
        assert!(
            matches!(r, Ok(SentAs::Esp { seq, path, .. }) if *path == want && *seq == i as u64 + 1),
            "packet {i}: {r:?}"
        );
    }
}
