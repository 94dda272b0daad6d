//! Host cost of the card driver per packet, against the card model with every latency at
//! zero (`ModelParams::zero_latency()`), beside the cost of the model itself.
//!
//! One iteration is a batch of 32 packets: TX — `tx_batch` (copy into DMA buffers, write
//! descriptors, one doorbell), the model processes the batch, `tx_completions` (phase
//! check, validation, one doorbell); RX — 32 frames are put on the card's port, the model
//! receives them, `rx_batch` (validation, copy out, re-post, two doorbells).
//!
//! The model runs in-process on the same core, so it is timed apart from the driver: each
//! iteration's driver calls and its model run are timed with `Instant` separately
//! (`iter_custom`). Three figures per workload:
//! - `total`: the whole iteration (driver + model), timed as one;
//! - `driver`: the sum of the driver's segments only — the figure the ≤ 100 ns/packet
//!   target is about;
//! - `model`: the sum of the model's segments only (the link's frame handling included for
//!   RX).
//!
//! `clock` times the four `Instant::now()` calls one split iteration makes: the split
//! figures each carry half of it at most.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use espo_driver::card::{Card, CardConfig, RxPacket, TxAction, TxDone, TxRequest};
use espo_driver::model::{ModelDevice, ModelHandle, ModelOptions};
use espo_fpga::{AlgId, SaEntry};
use espo_model::{MemLink, ModelParams};

const BATCH: usize = 32;

fn frame(ip_len: usize, id: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1,
    ];
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    ip.resize(ip_len, 0x5a);
    f.extend_from_slice(&ip);
    f
}

fn gcm_sa(outbound: bool) -> SaEntry {
    let mut e = SaEntry {
        outbound,
        spi: 0x1001,
        alg: Some(AlgId::AesGcm128),
        ..SaEntry::default()
    };
    e.key[..16].copy_from_slice(&[7; 16]);
    e.src_addr[..4].copy_from_slice(&[192, 0, 2, 1]);
    e.dst_addr[..4].copy_from_slice(&[192, 0, 2, 2]);
    e
}

fn card() -> (Card, ModelHandle) {
    let dev = ModelDevice::new(ModelOptions::with_params(ModelParams::zero_latency()));
    let model = dev.handle();
    let card = Card::open(Arc::new(dev), CardConfig::default()).expect("card");
    (card, model)
}

#[derive(Default)]
struct Split {
    driver: Duration,
    model: Duration,
}

/// One TX iteration; `split` gets the driver's and the model's time.
fn tx_once(
    card: &mut Card,
    model: &ModelHandle,
    reqs: &[TxRequest<'_>],
    done: &mut Vec<TxDone>,
    split: Option<&mut Split>,
) {
    done.clear();
    match split {
        None => {
            card.tx_batch(0, reqs).expect("tx");
            model.run_until_idle();
            card.tx_completions(0, done).expect("cpl");
        }
        Some(s) => {
            let t0 = Instant::now();
            card.tx_batch(0, reqs).expect("tx");
            let t1 = Instant::now();
            model.run_until_idle();
            let t2 = Instant::now();
            card.tx_completions(0, done).expect("cpl");
            let t3 = Instant::now();
            s.driver += (t1 - t0) + (t3 - t2);
            s.model += t2 - t1;
        }
    }
    assert_eq!(done.len(), BATCH);
}

fn bench_tx(c: &mut Criterion, name: &str, ip_len: usize, action: TxAction) {
    let (mut card, model) = card();
    card.sa_write(0, &gcm_sa(true), None).expect("sa");
    let frames: Vec<_> = (0..BATCH).map(|i| frame(ip_len, i as u16)).collect();
    let reqs: Vec<_> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| TxRequest {
            tag: i as u64,
            frame: f,
            action,
        })
        .collect();
    let mut done = Vec::with_capacity(BATCH);
    let mut g = c.benchmark_group(format!("tx_batch32/{name}"));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("total", |b| {
        b.iter(|| tx_once(&mut card, &model, &reqs, &mut done, None))
    });
    g.bench_function("driver", |b| {
        b.iter_custom(|iters| {
            let mut s = Split::default();
            for _ in 0..iters {
                tx_once(&mut card, &model, &reqs, &mut done, Some(&mut s));
            }
            s.driver
        })
    });
    g.bench_function("model", |b| {
        b.iter_custom(|iters| {
            let mut s = Split::default();
            for _ in 0..iters {
                tx_once(&mut card, &model, &reqs, &mut done, Some(&mut s));
            }
            s.model
        })
    });
    g.finish();
}

fn bench_rx(c: &mut Criterion) {
    let (link, tap) = MemLink::pair();
    let (mut card, model) = card();
    model.attach_link(Box::new(link));
    let frames: Vec<_> = (0..BATCH).map(|i| frame(64, i as u16)).collect();
    let mut out = vec![RxPacket::with_capacity(2048); BATCH];
    let mut once = |card: &mut Card, split: Option<&mut Split>| {
        let t0 = Instant::now();
        for f in &frames {
            tap.send_bytes(f);
        }
        model.run_until_idle();
        let t1 = Instant::now();
        let n = card.rx_batch(0, &mut out).expect("rx");
        let t2 = Instant::now();
        assert_eq!(n, BATCH);
        if let Some(s) = split {
            s.model += t1 - t0;
            s.driver += t2 - t1;
        }
    };
    let mut g = c.benchmark_group("rx_batch32/bypass-64B");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("total", |b| b.iter(|| once(&mut card, None)));
    g.bench_function("driver", |b| {
        b.iter_custom(|iters| {
            let mut s = Split::default();
            for _ in 0..iters {
                once(&mut card, Some(&mut s));
            }
            s.driver
        })
    });
    g.bench_function("model", |b| {
        b.iter_custom(|iters| {
            let mut s = Split::default();
            for _ in 0..iters {
                once(&mut card, Some(&mut s));
            }
            s.model
        })
    });
    g.finish();
}

fn bench_clock(c: &mut Criterion) {
    c.bench_function("clock/4x-instant-now", |b| {
        b.iter(|| {
            let t = [
                Instant::now(),
                Instant::now(),
                Instant::now(),
                Instant::now(),
            ];
            std::hint::black_box(t)
        })
    });
}

fn benches(c: &mut Criterion) {
    bench_tx(c, "bypass-64B", 50, TxAction::Bypass);
    bench_tx(c, "esp-64B", 50, TxAction::Encap { sa_index: 0 });
    bench_tx(c, "bypass-1500B", 1486, TxAction::Bypass);
    bench_rx(c);
    bench_clock(c);
}

criterion_group! {
    name = driver;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(driver);
