//! Cycles per packet measured in the RTL beside espo-model's prediction for the same
//! packet (datasheet §14; hw-model/src/tx.rs and rx.rs charge one AES-GCM engine
//! `engine_overhead_cycles + ceil(bytes / engine_bytes_per_cycle)` per packet, where bytes
//! is the inner packet + 2 on transmit and the ESP payload on receive, and the packet leaves
//! the engine `engine_latency_cycles` later).
//!
//! `cargo test -p espo-rtl --release --test cycles -- --nocapture` prints the table that
//! fpga/README.md "RTL core" quotes.

mod common;

use common::*;
use espo_model::ModelParams;
use espo_rtl::{PacketIn, PacketOut};
use rand::SeedableRng;
use rand::rngs::StdRng;

const SIZES: [usize; 9] = [64, 128, 256, 512, 1024, 1420, 1500, 4096, 9000];
const BACK_TO_BACK: usize = 12;

#[derive(Debug, Clone, Copy)]
struct Measured {
    /// Cycles between the ends of consecutive packets, back to back (the initiation interval).
    interval: f64,
    /// First input beat to last output beat of a packet alone in the core.
    latency: u64,
}

fn measure(rtl: &mut espo_rtl::Rtl, packets: &[PacketIn]) -> (Measured, Vec<PacketOut>) {
    let alone = rtl.process(&packets[..1]).expect("process");
    let out = rtl.process(&packets[1..]).expect("process");
    let first = out.first().map_or(0, |o| o.timing.out_last);
    let last = out.last().map_or(0, |o| o.timing.out_last);
    let m = Measured {
        interval: (last - first) as f64 / (out.len() - 1) as f64,
        latency: alone[0].timing.latency_cycles(),
    };
    (m, out)
}

fn model_engine_cycles(p: &ModelParams, bytes: u64) -> u64 {
    p.engine_overhead_cycles + bytes.div_ceil(p.engine_bytes_per_cycle)
}

#[test]
fn cycles_per_packet_against_the_model() {
    let p = ModelParams::default();
    let t = [Tunnel::new(0x4001)];
    let mut rtl = rtl_with(&t);
    let mut rng = StdRng::seed_from_u64(11);
    println!(
        "| Inner bytes | TX RTL cycles/pkt | TX model | TX RTL latency | RX RTL cycles/pkt | RX model | RX RTL latency |"
    );
    println!("|---|---|---|---|---|---|---|");
    for size in SIZES {
        let ips: Vec<Vec<u8>> = (0..=BACK_TO_BACK)
            .map(|_| inner_packet(&mut rng, 0, false, size, 0, true))
            .collect();
        let (tx, out) = measure(
            &mut rtl,
            &ips.iter().map(|ip| outbound(0, ip)).collect::<Vec<_>>(),
        );
        let mut frames: Vec<PacketIn> = out.iter().map(|o| inbound(o.frame.clone())).collect();
        // The first encapsulated packet went through alone; encapsulate one more for RX.
        frames.insert(
            0,
            inbound(
                rtl.process(&[outbound(0, &ips[0])]).expect("process")[0]
                    .frame
                    .clone(),
            ),
        );
        let esp_len = (frames[1].frame.len() - 34) as u64;
        let (rx, dec) = measure(&mut rtl, &frames);
        assert!(dec.iter().all(|o| {
            o.verdict
                .as_ref()
                .is_some_and(|v| v.status == espo_fpga::Status::Ok)
        }));
        let m_tx = model_engine_cycles(&p, size as u64 + 2);
        let m_rx = model_engine_cycles(&p, esp_len);
        println!(
            "| {size} | {:.1} | {m_tx} (+{} latency) | {} | {:.1} | {m_rx} (+{} latency) | {} |",
            tx.interval,
            p.engine_latency_cycles,
            tx.latency,
            rx.interval,
            p.engine_latency_cycles,
            rx.latency
        );
        // The core's own cost model (fpga/README.md "RTL core"): see the assertion's message.
        let blocks = (size as u64 + 2).div_ceil(16) as f64;
        assert!(
            tx.interval >= blocks + 2.0,
            "{size}: one AES block per cycle is the floor"
        );
    }
}
