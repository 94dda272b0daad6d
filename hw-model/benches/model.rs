//! Model benches: wall-clock packets per second through the model (encapsulation and
//! decapsulation of 1420-byte packets), with raw AES-GCM of the same packets as the
//! in-run baseline, and a table of the simulated card's throughput and bottleneck stage
//! from 64 to 9000 bytes (printed before the timed runs).

#[path = "../tests/common/mod.rs"]
mod common;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, KeyInit};
use common::*;
use criterion::{Criterion, Throughput, black_box};
use espo_model::{MemLink, ModelParams, PerfReport};

const BATCH: usize = 256;
const RING_LOG2: u32 = 10;

struct TxRig {
    host: Host,
    tap: MemLink,
    frames: Vec<Vec<u8>>,
    /// Posted and not yet completed.
    outstanding: usize,
}

/// A card with one queue pair of 2^`log2` entries and buffers just large enough.
fn host(log2: u32, buf_bytes: u64) -> (Host, MemLink) {
    let (l, tap) = MemLink::pair();
    let mut host = Host::new(ModelParams::default());
    host.buf_bytes = buf_bytes;
    host.model.attach_link(Box::new(l));
    host.bring_up(1, log2);
    (host, tap)
}

fn tx_rig(inner_len: usize, ipv6: bool) -> TxRig {
    let (mut host, tap) = host(RING_LOG2, (inner_len as u64 + 200).next_multiple_of(256));
    assert_eq!(
        host.sa_write(0, &gcm_sa(true, 0x1001, [7; 16], [1, 2, 3, 4]), None),
        espo_fpga::Status::Ok
    );
    let frames = (0..BATCH)
        .map(|i| {
            if ipv6 {
                ipv6_frame(inner_len.max(48), 0, i as u8)
            } else {
                ipv4_frame(inner_len.max(28), 0, i as u16, 0)
            }
        })
        .collect();
    TxRig {
        host,
        tap,
        frames,
        outstanding: 0,
    }
}

impl TxRig {
    /// Keeps the TX ring at least half full for `rounds` rounds of `step` cycles, so that
    /// the card runs in steady state; returns packets completed.
    fn stream(&mut self, rounds: usize, step: u64) -> usize {
        let mut done = 0;
        for _ in 0..rounds {
            while self.outstanding + BATCH <= 1 << RING_LOG2 {
                let posts: Vec<(&[u8], Option<u32>)> = self
                    .frames
                    .iter()
                    .map(|f| (f.as_slice(), Some(0)))
                    .collect();
                self.host.post_tx(0, &posts);
                self.outstanding += BATCH;
            }
            self.host.model.advance(step);
            let n = self.host.tx_completions(0).len();
            self.outstanding -= n;
            done += n;
            self.tap.drain();
        }
        done
    }

    /// Posts one batch, runs the card, consumes completions and the port.
    fn round(&mut self) -> usize {
        let posts: Vec<(&[u8], Option<u32>)> = self
            .frames
            .iter()
            .map(|f| (f.as_slice(), Some(0)))
            .collect();
        self.host.post_tx(0, &posts);
        self.host.model.run_until_idle();
        let n = self.host.tx_completions(0).len();
        self.tap.drain();
        n
    }
}

struct RxRig {
    host: Host,
    tap: MemLink,
    wire: Vec<Vec<u8>>,
}

fn rx_rig(inner_len: usize, rounds: usize) -> RxRig {
    let mut tx = tx_rig(inner_len, false);
    let mut wire = Vec::new();
    for _ in 0..rounds {
        tx.round_keep(&mut wire);
    }
    let (mut host, tap) = host(RING_LOG2, (inner_len as u64 + 200).next_multiple_of(256));
    let mut sa = gcm_sa(false, 0x1001, [7; 16], [1, 2, 3, 4]);
    sa.replay_window = 0; // the same frames are replayed every iteration
    assert_eq!(host.sa_write(0, &sa, None), espo_fpga::Status::Ok);
    RxRig { host, tap, wire }
}

impl TxRig {
    fn round_keep(&mut self, wire: &mut Vec<Vec<u8>>) {
        let posts: Vec<(&[u8], Option<u32>)> = self
            .frames
            .iter()
            .map(|f| (f.as_slice(), Some(0)))
            .collect();
        self.host.post_tx(0, &posts);
        self.host.model.run_until_idle();
        self.host.tx_completions(0);
        wire.extend(self.tap.drain().into_iter().map(|f| f.data));
    }
}

impl RxRig {
    fn round(&mut self, frames: &[Vec<u8>]) -> usize {
        for f in frames {
            self.tap.send_bytes(f);
        }
        let mut n = 0;
        while n < frames.len() {
            self.host.model.run_until_idle();
            let got = self.host.rx_completions(0).len();
            if got == 0 {
                break;
            }
            n += got;
        }
        n
    }
}

/// The two busiest stages with their utilisation.
fn stage_name(r: &PerfReport) -> String {
    let mut u = r.utilisation();
    u.sort_by(|a, b| b.1.total_cmp(&a.1));
    u.iter()
        .take(2)
        .map(|(s, x)| format!("{s:?} {:.0}%", x * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Latency of one packet through an idle card, microseconds.
fn idle_latency_us(size: usize) -> f64 {
    let mut tx = tx_rig(size, false);
    tx.frames.truncate(1);
    tx.round();
    let p = tx.host.model.perf();
    p.tx.latency_mean_cycles() / p.clock_hz as f64 * 1e6
}

/// Simulated throughput of the default card for each packet size, both directions.
fn print_simulated_table() {
    println!("\nESPO-1 model, default parameters: simulated throughput per inner IPv4 packet size");
    println!(
        "{:>5} | {:>8} {:>8} {:>7} {:>7} {:>28} | {:>8} {:>8} {:>28}",
        "bytes",
        "TX line",
        "TX inner",
        "idle us",
        "load us",
        "TX busiest stages",
        "RX line",
        "RX inner",
        "RX busiest stages"
    );
    for size in [64usize, 128, 256, 512, 1024, 1420, 1500, 4096, 9000] {
        let mut tx = tx_rig(size, false);
        let step = 2_000;
        tx.stream(4, step); // warm-up: pipeline full
        tx.host.model.reset_perf();
        tx.stream(20, step);
        let t = tx.host.model.perf();
        let mut rx = rx_rig(size, 4);
        let wire = std::mem::take(&mut rx.wire);
        rx.round(&wire[..BATCH]);
        rx.host.model.reset_perf();
        rx.round(&wire);
        let r = rx.host.model.perf();
        let us = t.tx.latency_mean_cycles() / t.clock_hz as f64 * 1e6;
        println!(
            "{size:>5} | {:>8.2} {:>8.2} {:>7.2} {:>7.2} {:>28} | {:>8.2} {:>8.2} {:>28}",
            t.tx_line_gbps(),
            t.tx_inner_gbps(),
            idle_latency_us(size),
            us,
            stage_name(&t),
            r.rx_line_gbps(),
            r.rx_inner_gbps(),
            stage_name(&r)
        );
    }
    println!(
        "(Gbit/s; line = port occupancy incl. preamble, FCS and gap; inner = plaintext IP bytes;"
    );
    println!(
        " idle us = one packet through an idle card; load us = with the TX ring kept 3/4 full)\n"
    );
}

fn bench_model(c: &mut Criterion) {
    let mut g = c.benchmark_group("model_1420B");
    g.throughput(Throughput::Elements(BATCH as u64));

    // Baseline: AES-GCM-128 sealing the same 1420-byte payloads, nothing else.
    let cipher = Aes128Gcm::new_from_slice(&[7; 16]).expect("key");
    let mut buf = vec![0u8; 1424];
    g.bench_function("baseline_aes_gcm_seal", |b| {
        b.iter(|| {
            for i in 0..BATCH as u64 {
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&i.to_be_bytes());
                let tag = cipher
                    .encrypt_inout_detached(&nonce.into(), &[0; 8], (&mut buf[..]).into())
                    .expect("seal");
                black_box(tag);
            }
        })
    });

    let mut tx = tx_rig(1420, false);
    g.bench_function("tx_encap_through_model", |b| {
        b.iter(|| assert_eq!(tx.round(), BATCH))
    });

    let mut rx = rx_rig(1420, 1);
    let wire = std::mem::take(&mut rx.wire);
    g.bench_function("rx_decap_through_model", |b| {
        b.iter(|| assert_eq!(rx.round(&wire), BATCH))
    });
    g.finish();
}

fn main() {
    print_simulated_table();
    let mut c = Criterion::default().configure_from_args();
    bench_model(&mut c);
    c.final_summary();
}
