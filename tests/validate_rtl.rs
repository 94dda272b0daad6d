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
    assert!(out.contains("compared byte for byte"), "{out}");
    // The core took card SAs in both directions, and moved SAs onto it carry their state.
    assert!(out.contains("card entry"), "{out}");
    assert!(out.contains("moved on request"), "{out}");
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
