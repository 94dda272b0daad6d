//! `espo validate --engine rtl` (espo built with the `rtl` feature): the card model with
//! the RTL core as its datapath against the software engine, through the binary.
#![cfg(feature = "rtl")]

mod common;

use common::*;

#[test]
fn the_rtl_core_passes_2000_packets() {
    let o = run(&["validate", "--engine", "rtl", "--packets", "2000"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert_eq!(
        out.lines().last().unwrap_or(""),
        "validate: 2000 packets, 0 mismatches, 0 lost, 0 duplicated, 0 nonces reused"
    );
    assert!(out.contains("RTL core"), "{out}");
    let refused_icv = out.contains("dropped bad-icv") && out.contains("dropped replayed");
    assert!(
        refused_icv,
        "corrupted and replayed frames in the traffic: {out}"
    );
    assert!(out.contains("compared byte for byte"), "{out}");
    // The core took card SAs in both directions, and moved SAs onto it carry their state.
    assert!(out.contains("card entry"), "{out}");
    assert!(out.contains("moved on request"), "{out}");
    // What went through the core itself: IPv4 and IPv6 inner and outer headers,
    // sequence numbers above 2^32 (ESN SAs crossing it), replayed, stale and corrupted
    // frames refused by the core.
    let field = |line: &str, key: &str| -> u64 {
        line.split(", ")
            .find_map(|p| p.trim().strip_prefix(key)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let rx = out
        .lines()
        .find(|l| l.starts_with("  RTL RX verdicts:"))
        .unwrap_or("");
    let rx = rx.trim_start_matches("  RTL RX verdicts: ");
    for status in ["Ok ", "IcvFail ", "Replay "] {
        assert!(
            field(rx, status) > 0,
            "the core gave {status}verdicts: {rx}"
        );
    }
    let tx = out
        .lines()
        .find(|l| l.starts_with("  RTL TX verdicts:"))
        .unwrap_or("");
    assert!(
        field(tx.trim_start_matches("  RTL TX verdicts: "), "Ok ") > 0,
        "{tx}"
    );
    let transformed = out
        .lines()
        .find(|l| l.starts_with("  RTL transformed:"))
        .unwrap_or("");
    let numbers: Vec<u64> = transformed
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        numbers.len() == 3 && numbers.iter().all(|&n| n > 0),
        "IPv6 inner, IPv6 outer and ESN above 2^32 all went through the core: {transformed}"
    );
    // Cycles per packet, measured and predicted, for both directions and up to jumbo
    // frames: the rtl_core preset agrees within 10% on every row.
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("TX ") || l.trim_start().starts_with("RX "))
        .collect();
    assert!(rows.iter().any(|l| l.contains("TX")) && rows.iter().any(|l| l.contains("RX")));
    let largest = rows
        .iter()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(1)?
                .split('-')
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(largest > 8000, "jumbo frames went through the core: {out}");
    for row in &rows {
        let worst: f64 = row
            .split_whitespace()
            .last()
            .and_then(|w| w.trim_end_matches('%').parse().ok())
            .unwrap_or(100.0);
        assert!(worst <= 10.0, "{row}");
    }
}
