//! The software engine's encapsulation and decapsulation against the raw AEAD seal, one
//! core, for 64, 512, 1420 and 8192-byte inner packets.
//!
//! Per size, three functions in the group `engine/SIZE`:
//! - `baseline-seal`: ring's AES-128-GCM seal of SIZE bytes in place — the fastest AES-GCM
//!   on the machine and the figure the other two are read against;
//! - `encap`: policy lookup, ESP tunnel encapsulation and seal of a SIZE-byte IPv4 packet
//!   into a buffer;
//! - `decap`: SA lookup, replay check, open, trailer and inbound policy check, in place.
//!
//! Each iteration processes a pool of packets spread over about 1 MiB (a gateway's ring
//! working set), so neither side runs out of one hot cache line. Throughput is in inner
//! packet bytes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use espo_harness::loopback;
use espo_ipsec::crypto::{Aead, AeadAlgorithm};
use espo_ipsec::engine::{Decapsulated, Encapsulated, SoftwareEngine};

const SIZES: [usize; 4] = [64, 512, 1420, 8192];

struct Pool {
    buf: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
}

impl Pool {
    fn new(size: usize) -> Pool {
        let slot = size + 256;
        let n = ((1 << 20) / slot).clamp(64, 4096);
        Pool {
            buf: vec![0u8; n * slot],
            slot,
            lens: vec![0; n],
        }
    }

    fn len(&self) -> usize {
        self.lens.len()
    }
}

fn fill(tx: &mut SoftwareEngine, inner: &[u8], pool: &mut Pool) {
    let slot = pool.slot;
    for (chunk, len) in pool.buf.chunks_exact_mut(slot).zip(pool.lens.iter_mut()) {
        match tx.outbound.encapsulate(inner, chunk) {
            Ok(Encapsulated::Protected { len: l, .. }) => *len = l,
            other => panic!("encapsulation failed: {other:?}"),
        }
    }
}

fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let inner = loopback::udp_packet(size, 0x5a);
        let (txc, rxc) =
            loopback::tunnel_pair("aes-gcm-128", None).expect("loopback configuration");
        let mut tx = txc.software_engine().expect("sender");
        let mut rx = rxc.software_engine().expect("receiver");
        let mut pool = Pool::new(size);
        let per_iter = pool.len() as u64;
        group.throughput(Throughput::Bytes(size as u64 * per_iter));

        let aead = Aead::new(AeadAlgorithm::Aes128Gcm, &[0x42; 16]).expect("key");
        let mut counter = 0u64;
        group.bench_function(BenchmarkId::new("baseline-seal", size), |b| {
            b.iter(|| {
                for chunk in pool.buf.chunks_exact_mut(pool.slot) {
                    counter += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&counter.to_be_bytes());
                    black_box(
                        aead.seal(&nonce, &nonce[4..], &mut chunk[..size])
                            .expect("seal"),
                    );
                }
            })
        });
        group.bench_function(BenchmarkId::new("encap", size), |b| {
            b.iter(|| fill(&mut tx, black_box(&inner), &mut pool))
        });
        group.bench_function(BenchmarkId::new("decap", size), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    fill(&mut tx, &inner, &mut pool);
                    let t = Instant::now();
                    for (chunk, len) in pool.buf.chunks_exact_mut(pool.slot).zip(pool.lens.iter()) {
                        match rx.inbound.decapsulate(&mut chunk[..*len]) {
                            Ok(Decapsulated::Inner { range, .. }) => {
                                black_box(range);
                            }
                            other => panic!("decapsulation failed: {other:?}"),
                        }
                    }
                    spent += t.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
