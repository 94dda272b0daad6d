//! Policy lookup in a database of many sites, through the index against searching the
//! policies in order (the only way before the index, and still the way for short
//! databases).
//!
//! The database: N−1 sites, one /24 each (`10.X.Y.0/24 → 10.2.0.0/16`), then the site the
//! packets come from (`10.1.0.0/16 → 10.2.0.0/16`) last — what a hub gateway with one
//! policy per site has, and the worst case of a search in order. Per N, in the group
//! `spd/N`:
//! - `in-order`: `Spd::lookup_in_order`, trying each policy in turn;
//! - `index`: `Spd::lookup`, which goes through the index above
//!   `SEARCH_IN_ORDER_UP_TO` policies and searches in order below it;
//! - `index-any-site`: `Spd::lookup` for flows spread over every site;
//! - `change-then-lookup`: a policy added in front of a copy of the database (its index
//!   built), then one lookup — the change takes the policy into the index in use, or
//!   forgets it where the database is searched in order — what a policy installed while
//!   the gateway runs costs; the copy is made outside the timing.
//!
//! Throughput is in lookups (changes for the last).

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use espo_ipsec::selector::{Cidr, PortRange, ProtocolSelector};
use espo_ipsec::spd::{Action, Policy, PolicyId, Selector, Spd};
use espo_ipsec::wire::IpProtocol;
use espo_ipsec::wire::flow::Flow;

const SIZES: [usize; 7] = [2, 4, 8, 16, 64, 1024, 16384];

fn cidr(a: [u8; 4], len: u8) -> Cidr {
    Cidr::new(IpAddr::from(a), len).expect("a prefix without host bits")
}

/// Site `i`'s /24, none of them inside 10.1.0.0/16.
fn site(i: usize) -> [u8; 4] {
    [10, 3 + (i / 256) as u8, (i % 256) as u8, 0]
}

fn database(n: usize) -> Spd {
    let mut spd = Spd::default();
    let policy = |src: Cidr, id: usize| Policy {
        selector: Selector {
            src,
            dst: cidr([10, 2, 0, 0], 16),
            protocol: ProtocolSelector::Any,
            src_port: PortRange::ANY,
            dst_port: PortRange::ANY,
        },
        action: Action::Discard,
        id: PolicyId(id as u32),
    };
    for i in 0..n - 1 {
        spd.push(policy(cidr(site(i), 24), i));
    }
    spd.push(policy(cidr([10, 1, 0, 0], 16), n - 1));
    spd
}

fn flow(src: [u8; 4]) -> Flow {
    Flow {
        src: IpAddr::from(src),
        dst: IpAddr::from([10, 2, 0, 9]),
        protocol: IpProtocol::Udp,
        src_port: Some(40000),
        dst_port: Some(4789),
        icmp_type_code: None,
    }
}

fn spd(c: &mut Criterion) {
    for n in SIZES {
        let db = database(n);
        let last = flow([10, 1, 0, 7]);
        let expected = Some(PolicyId(n as u32 - 1));
        assert_eq!(db.lookup(&last).map(|p| p.id), expected);
        assert_eq!(db.lookup_in_order(&last).map(|p| p.id), expected);
        // One flow per site, hosts varying, in a fixed shuffled order.
        let mut spread: Vec<Flow> = (0..n)
            .map(|i| match i {
                i if i + 1 == n => flow([10, 1, 3, 4]),
                i => {
                    let s = site(i);
                    flow([s[0], s[1], s[2], (i * 37 % 251) as u8 + 1])
                }
            })
            .collect();
        let mut x = 0x9e37_79b9_u32;
        for i in (1..spread.len()).rev() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            spread.swap(i, x as usize % (i + 1));
        }
        for (i, f) in spread.iter().enumerate().take(64) {
            assert_eq!(
                db.lookup(f).map(|p| p.id),
                db.lookup_in_order(f).map(|p| p.id),
                "flow {i}"
            );
        }

        let mut group = c.benchmark_group(format!("spd/{n}"));
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(1));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter("in-order"), |b| {
            b.iter(|| black_box(db.lookup_in_order(black_box(&last)).map(|p| p.id)))
        });
        group.bench_function(BenchmarkId::from_parameter("index"), |b| {
            b.iter(|| black_box(db.lookup(black_box(&last)).map(|p| p.id)))
        });
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter("index-any-site"), |b| {
            b.iter(|| {
                i = (i + 1) % spread.len();
                black_box(db.lookup(black_box(&spread[i])).map(|p| p.id))
            })
        });
        let front = database(2).policies()[0];
        group.bench_function(BenchmarkId::from_parameter("change-then-lookup"), |b| {
            b.iter_batched(
                || db.clone(),
                |mut copy| {
                    copy.insert(Some(0), front);
                    black_box(copy.lookup(black_box(&last)).map(|p| p.id));
                    copy
                },
                criterion::BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

criterion_group!(benches, spd);
criterion_main!(benches);
