//! Cycles per packet measured in the RTL beside espo-model's prediction for the same
//! packet (`ModelParams::engine_cycles`, which hw-model/src/tx.rs and rx.rs charge the
//! engine): with `ModelParams::rtl_core()`, the preset describing this core, within 10% at
//! every size; with `ModelParams::default()`, the design point the next RTL step targets
//! (datasheet §15.3).
//!
//! `cargo test -p espo-rtl --release --test cycles -- --nocapture` prints the table that
//! fpga/README.md "RTL core" quotes.

mod common;

use common::*;
use espo_model::{Engine, ModelParams};
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

/// What the model charges the engine for this packet under `p`: transmit (`Encrypt`) or
/// receive (`Decrypt`) of the frame `input` that became `output`.
fn model_cycles(p: &ModelParams, engine: Engine, input: &[u8], output: &[u8]) -> u64 {
    let crypto = match engine {
        Engine::Encrypt => input.len() as u64 - 14 + 2,
        // Ethernet 14 + outer IPv4 20 + ESP header 8 + IV 8, ICV 16: the ciphertext.
        Engine::Decrypt => input.len() as u64 - 34 - 32,
    };
    p.engine_cycles(engine, crypto, input.len() as u64, output.len() as u64)
}

fn within(measured: f64, predicted: u64, what: &str) {
    let dev = (measured - predicted as f64).abs() / measured;
    assert!(
        dev <= 0.10,
        "{what}: RTL {measured:.1} cycles, ModelParams::rtl_core() predicts {predicted} ({:.1}% off)",
        100.0 * dev
    );
}

#[test]
fn cycles_per_packet_against_the_model() {
    let design = ModelParams::default();
    let core = ModelParams::rtl_core();
    let t = [Tunnel::new(0x4001)];
    let mut rtl = rtl_with(&t);
    let mut rng = StdRng::seed_from_u64(11);
    println!(
        "| Inner bytes | TX RTL cycles/pkt | TX rtl_core | TX design point | RX RTL cycles/pkt | RX rtl_core | RX design point |"
    );
    println!("|---|---|---|---|---|---|---|");
    for size in SIZES {
        let ips: Vec<Vec<u8>> = (0..=BACK_TO_BACK)
            .map(|_| inner_packet(&mut rng, 0, false, size, 0, true))
            .collect();
        let posted: Vec<PacketIn> = ips.iter().map(|ip| outbound(0, ip)).collect();
        let (tx, out) = measure(&mut rtl, &posted);
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
        let (rx, dec) = measure(&mut rtl, &frames);
        assert!(dec.iter().all(|o| {
            o.verdict
                .as_ref()
                .is_some_and(|v| v.status == espo_fpga::Status::Ok)
        }));
        let (tx_in, tx_out) = (&posted[1].frame, &out[0].frame);
        let (rx_in, rx_out) = (&frames[1].frame, &dec[0].frame);
        let c_tx = model_cycles(&core, Engine::Encrypt, tx_in, tx_out);
        let c_rx = model_cycles(&core, Engine::Decrypt, rx_in, rx_out);
        let d_tx = model_cycles(&design, Engine::Encrypt, tx_in, tx_out);
        let d_rx = model_cycles(&design, Engine::Decrypt, rx_in, rx_out);
        println!(
            "| {size} | {:.1} | {c_tx} | {d_tx} (+{} latency) | {:.1} | {c_rx} | {d_rx} (+{} latency) |",
            tx.interval, design.engine_latency_cycles, rx.interval, design.engine_latency_cycles,
        );
        within(tx.interval, c_tx, &format!("TX {size} bytes, back to back"));
        within(rx.interval, c_rx, &format!("RX {size} bytes, back to back"));
        within(tx.latency as f64, c_tx, &format!("TX {size} bytes, alone"));
        within(rx.latency as f64, c_rx, &format!("RX {size} bytes, alone"));
        let blocks = (size as u64 + 2).div_ceil(16) as f64;
        assert!(
            tx.interval >= blocks + 2.0,
            "{size}: one AES block per cycle is the floor"
        );
    }
}

/// Every inner size from 64 to 9000 bytes in steps of 37 (every residue of the 16-byte
/// block and the 64-byte beat), IPv4 and IPv6: the rtl_core preset predicts each packet's
/// cycles within 10%.
#[test]
fn the_rtl_core_preset_predicts_every_size_within_ten_percent() {
    let core = ModelParams::rtl_core();
    let t = [Tunnel::new(0x4002)];
    let mut rtl = rtl_with(&t);
    let mut rng = StdRng::seed_from_u64(12);
    let mut worst: f64 = 0.0;
    for (i, size) in (64..=9000).step_by(37).enumerate() {
        let v6 = i % 2 == 1;
        let ip = inner_packet(&mut rng, 0, v6, size, 0, true);
        let posted = outbound(0, &ip);
        let tx = rtl.process(std::slice::from_ref(&posted)).expect("process");
        let tx = &tx[0];
        let sent = inbound(tx.frame.clone());
        let rx = rtl.process(std::slice::from_ref(&sent)).expect("process");
        let rx = &rx[0];
        assert!(
            rx.verdict
                .as_ref()
                .is_some_and(|v| v.status == espo_fpga::Status::Ok)
        );
        for (engine, input, out) in [
            (Engine::Encrypt, &posted.frame, tx),
            (Engine::Decrypt, &sent.frame, rx),
        ] {
            let measured = out.timing.latency_cycles() as f64;
            let predicted = model_cycles(&core, engine, input, &out.frame);
            worst = worst.max((measured - predicted as f64).abs() / measured);
            within(
                measured,
                predicted,
                &format!("{engine:?} {size} bytes, v6 {v6}"),
            );
        }
    }
    println!(
        "worst deviation of the rtl_core preset: {:.2}%",
        100.0 * worst
    );
}
