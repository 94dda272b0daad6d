//! TUN offloads on one core: cutting a 64 KiB TCP super-packet into segments and
//! coalescing segments into one, each against copying the same bytes.
//!
//! Group `gso/MSS` (MSS 1448 and 8948: a 1500- and a 9000-byte MTU), one iteration cuts one
//! IPv4 TCP super-packet of 65,160 payload bytes with timestamps, as the inside stack hands
//! it over with `TUN_F_TSO4` (partial checksum, the whole's length):
//! - `baseline-copy`: each segment's headers and payload copied into its own buffer and
//!   nothing else — the least any segmentation into separate packets must do;
//! - `segments`: [`espo_ipsec::gso::Segments`], each segment with its IP length,
//!   identification, sequence number, flags, IPv4 header checksum and TCP checksum.
//!
//! Group `gro/MSS`, one iteration coalesces those segments (as decapsulation leaves them,
//! checksums complete) back into one super-packet:
//! - `baseline-copy`: each segment's payload copied after the last into one buffer;
//! - `coalesce`: [`espo_ipsec::gro::Coalescer`] offered every segment (flow match,
//!   continuation checks, TCP checksum verified), then drained as one write.
//!
//! Throughput is in payload bytes. The segments lie in buffers 2 KiB (10 KiB) apart, as
//! in the gateway's batch.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use espo_ipsec::gro::{Coalescer, Offer};
use espo_ipsec::gso::{F_NEEDS_CSUM, GSO_TCPV4, Segments, VnetHdr};

const PAYLOAD: usize = 65_160;

/// An IPv4 TCP super-packet 10.1.0.2:5000 -> 10.2.0.2:80 with timestamps and `PAYLOAD`
/// bytes, its checksum partial as the inside stack leaves it.
fn super_packet() -> Vec<u8> {
    let mut p = vec![0u8; 20 + 32 + PAYLOAD];
    p[..20].copy_from_slice(&[
        0x45, 0, 0xff, 0xff, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, 2, 10, 2, 0, 2,
    ]);
    let t = &mut p[20..52];
    t[..4].copy_from_slice(&[0x13, 0x88, 0, 80]);
    t[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    t[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    t[12] = 8 << 4;
    t[13] = 0x18;
    t[14..16].copy_from_slice(&502u16.to_be_bytes());
    t[16..18].copy_from_slice(&0xabcdu16.to_be_bytes());
    t[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
    for (i, b) in p[52..].iter_mut().enumerate() {
        *b = (i * 7 + i / 251) as u8;
    }
    p
}

/// A group whose throughput is the super-packet's payload.
fn payload_group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Bytes(PAYLOAD as u64));
    group
}

fn gso(c: &mut Criterion) {
    let sup = super_packet();
    let hl = 52;
    for mss in [1448usize, 8948] {
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: hl as u16,
            gso_size: mss as u16,
            csum_start: 20,
            csum_offset: 16,
        };
        let slot = (hl + mss).next_multiple_of(2048);
        let count = PAYLOAD.div_ceil(mss);
        let mut out = vec![0u8; slot * count];
        let mut group = payload_group(c, &format!("gso/{mss}"));
        group.bench_function(BenchmarkId::from_parameter("baseline-copy"), |b| {
            b.iter(|| {
                let sup = black_box(&sup);
                for (i, buf) in out.chunks_exact_mut(slot).enumerate() {
                    let chunk = (PAYLOAD - i * mss).min(mss);
                    buf[..hl].copy_from_slice(&sup[..hl]);
                    buf[hl..hl + chunk].copy_from_slice(&sup[hl + i * mss..hl + i * mss + chunk]);
                }
                black_box(&mut out);
            })
        });
        group.bench_function(BenchmarkId::from_parameter("segments"), |b| {
            b.iter(|| {
                let mut s = Segments::new(black_box(&sup), &hdr).expect("a valid super-packet");
                for buf in out.chunks_exact_mut(slot) {
                    black_box(s.next_into(buf));
                }
                black_box(&mut out);
            })
        });
        group.finish();

        // The segments as the inbound thread has them: whole packets, checksums complete.
        let mut s = Segments::new(&sup, &hdr).expect("a valid super-packet");
        let lens: Vec<usize> = out
            .chunks_exact_mut(slot)
            .map(|buf| s.next_into(buf).expect("a segment"))
            .collect();
        let mut whole = vec![0u8; 65_536];
        let mut coalescer = Coalescer::new(64);
        let mut group = payload_group(c, &format!("gro/{mss}"));
        group.bench_function(BenchmarkId::from_parameter("baseline-copy"), |b| {
            b.iter(|| {
                let mut at = 0;
                for (buf, &len) in black_box(&out).chunks_exact(slot).zip(&lens) {
                    whole[at..at + len - hl].copy_from_slice(&buf[hl..len]);
                    at += len - hl;
                }
                black_box(&mut whole);
            })
        });
        group.bench_function(BenchmarkId::from_parameter("coalesce"), |b| {
            b.iter(|| {
                let mut merged = 0;
                for (buf, &len) in black_box(&out).chunks_exact(slot).zip(&lens) {
                    merged += usize::from(coalescer.offer(7, &buf[..len]) == Offer::Merged);
                }
                let mut writes = 0;
                coalescer.drain(|bytes, _, _, _| {
                    black_box(bytes);
                    writes += 1;
                });
                assert_eq!(
                    (writes, merged),
                    (1, lens.len() - 1),
                    "one flow's segments in order coalesce into one"
                );
            })
        });
        group.finish();
    }
}

criterion_group!(benches, gso);
criterion_main!(benches);
