//! Cycles per packet measured in the RTL beside the model's predictions for the same
//! packets, by inner packet size: the table `espo validate --engine rtl` prints.

use std::fmt::Write;

use espo_model::{Engine, ModelParams};

use crate::datapath::{CycleRecord, VerdictTally};

/// Upper bounds (inclusive) of the inner-size classes of the table.
const CLASSES: [u64; 9] = [63, 127, 255, 511, 1023, 1499, 4095, 8191, u64::MAX];

/// The model's prediction for a logged packet: its engine occupancy under `p`.
pub fn predicted_cycles(p: &ModelParams, r: &CycleRecord) -> u64 {
    p.engine_cycles(r.engine, r.crypto_bytes, r.in_bytes, r.out_bytes)
}

/// One row of the table: a direction and an inner-size class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CycleRow {
    pub engine: Engine,
    /// Inner bytes, smallest and largest seen in the class.
    pub min_inner: u64,
    pub max_inner: u64,
    pub packets: u64,
    /// Mean cycles per packet: RTL, the model with [`ModelParams::rtl_core`], the model
    /// with `ModelParams::default()` (the design point).
    pub rtl: f64,
    pub rtl_core: f64,
    pub design: f64,
    /// Largest |RTL − rtl_core| / RTL of a single packet in the class.
    pub worst_deviation: f64,
}

/// The rows of the table, transmit first, each by size class.
pub fn cycle_rows(records: &[CycleRecord]) -> Vec<CycleRow> {
    let core = ModelParams::rtl_core();
    let design = ModelParams::default();
    let mut rows = Vec::new();
    for engine in [Engine::Encrypt, Engine::Decrypt] {
        let mut low = 0;
        for high in CLASSES {
            let class: Vec<&CycleRecord> = records
                .iter()
                .filter(|r| r.engine == engine && (low..=high).contains(&r.inner_bytes))
                .collect();
            low = high.saturating_add(1);
            if class.is_empty() {
                continue;
            }
            let n = class.len() as f64;
            let mean = |f: &dyn Fn(&CycleRecord) -> u64| {
                class.iter().map(|r| f(r) as f64).sum::<f64>() / n
            };
            rows.push(CycleRow {
                engine,
                min_inner: class.iter().map(|r| r.inner_bytes).min().unwrap_or(0),
                max_inner: class.iter().map(|r| r.inner_bytes).max().unwrap_or(0),
                packets: class.len() as u64,
                rtl: mean(&|r| r.rtl_cycles),
                rtl_core: mean(&|r| predicted_cycles(&core, r)),
                design: mean(&|r| predicted_cycles(&design, r)),
                worst_deviation: class
                    .iter()
                    .map(|r| {
                        (r.rtl_cycles as f64 - predicted_cycles(&core, r) as f64).abs()
                            / r.rtl_cycles.max(1) as f64
                    })
                    .fold(0.0, f64::max),
            });
        }
    }
    rows
}

/// The table as text, one line per row under a header.
pub fn cycle_table(records: &[CycleRecord]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  RTL cycles per packet against the model (engine occupancy; rtl-core preset = \
         ModelParams::rtl_core(), design = ModelParams::default())"
    );
    let _ = writeln!(
        s,
        "    dir  inner bytes   packets   RTL mean  rtl-core  design  worst |RTL-rtl-core|"
    );
    for r in cycle_rows(records) {
        let dir = match r.engine {
            Engine::Encrypt => "TX",
            Engine::Decrypt => "RX",
        };
        let _ = writeln!(
            s,
            "    {dir}   {:>5}-{:<5} {:>8} {:>10.1} {:>9.1} {:>7.1}  {:>6.1}%",
            r.min_inner,
            r.max_inner,
            r.packets,
            r.rtl,
            r.rtl_core,
            r.design,
            100.0 * r.worst_deviation
        );
    }
    s
}

/// The core's verdicts as text: per direction, packets by status; IPv6 and ESN coverage.
pub fn verdict_lines(t: &VerdictTally) -> String {
    let mut s = String::new();
    for dir in ["TX", "RX"] {
        let parts: Vec<String> = t
            .by_status
            .iter()
            .filter(|((d, _), _)| *d == dir)
            .map(|((_, status), n)| format!("{status} {n}"))
            .collect();
        let _ = writeln!(s, "  RTL {dir} verdicts: {}", parts.join(", "));
    }
    let _ = writeln!(
        s,
        "  RTL transformed: {} with an IPv6 inner header, {} with an IPv6 outer header, {} with sequence numbers above 2^32",
        t.inner_ipv6, t.outer_ipv6, t.esn_high
    );
    s
}
