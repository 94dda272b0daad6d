//! One SA sent on by several workers, each with its own copy of the outbound half and the
//! SA's numbers shared ([`crate::sa::SendShare`]): no number twice, blocks sized by the
//! batch, the reservation and the last number respected, lifetimes counted over every
//! worker and reported once.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Mutex;

use super::*;
use crate::counters::DropReason;
use crate::crypto::{EncryptionAlgorithm, SecretKey};
use crate::lifetime::LifetimeCause;
use crate::sa::{SendShare, SeqReservation};
use crate::selector::{Cidr, PortRange, ProtocolSelector};
use crate::spec::{DfMode, Lifetime, PolicyAction, PolicySpec, SaMode, SaProtocol, SaSpec};

fn spec(lifetime: Lifetime) -> SaSpec {
    SaSpec {
        spi: 0x3001,
        dir: None,
        protocol: SaProtocol::Esp,
        mode: SaMode::Tunnel,
        src: IpAddr::from([192, 0, 2, 1]),
        dst: IpAddr::from([192, 0, 2, 2]),
        encryption: Some(EncryptionAlgorithm::AesGcm128),
        key: Some(SecretKey::new((0..20).collect())),
        integrity: None,
        integrity_key: None,
        esn: false,
        seq: 0,
        replay_window: 1024,
        udp_encap: None,
        ttl: 64,
        df: DfMode::Copy,
        lifetime,
    }
}

fn policy(dir: Direction) -> PolicySpec {
    PolicySpec {
        dir,
        src: "10.1.0.0/16".parse::<Cidr>().unwrap(),
        dst: "10.2.0.0/16".parse::<Cidr>().unwrap(),
        protocol: ProtocolSelector::Any,
        src_port: PortRange::ANY,
        dst_port: PortRange::ANY,
        action: PolicyAction::Protect,
        sa: vec![0x3001],
    }
}

/// `n` outbound halves of one configuration whose SA shares `share` (its reservation
/// `reservation`), and a receiver.
fn workers(
    n: usize,
    lifetime: Lifetime,
    share: &SendShare,
    reservation: &SeqReservation,
) -> (Vec<Outbound>, Inbound) {
    let sa = spec(lifetime);
    let halves = (0..n)
        .map(|slot| {
            let mut out = SoftwareEngine::new(std::slice::from_ref(&sa), &[policy(Direction::Out)])
                .unwrap()
                .outbound;
            for s in out.sas_mut().iter_mut() {
                s.set_reservation(reservation.clone());
                s.set_share(share.clone(), slot);
            }
            out
        })
        .collect();
    let rx = SoftwareEngine::new(&[sa], &[policy(Direction::In)])
        .unwrap()
        .inbound;
    (halves, rx)
}

/// An IPv4/UDP packet 10.1.0.1 -> 10.2.0.1 carrying `tag`.
fn inner(tag: u32) -> Vec<u8> {
    super::change::tests::inner([10, 2, 0, 1], tag)
}

/// Sends `batches` batches of `size` packets through `tx`, as a datapath worker does:
/// every packet's verdict, with its sequence number and wire bytes when sent. A packet
/// refused `seq-busy` is offered again once the rest of its batch is sent; `wire` records
/// every sent packet's number in the order the workers send them.
fn run_with(
    tx: &mut Outbound,
    batches: usize,
    size: usize,
    tag: u32,
    wire: &Mutex<Vec<u64>>,
) -> Vec<Result<(u64, Vec<u8>), DropReason>> {
    let mut sent = Vec::new();
    for _ in 0..batches {
        let mut pending = size;
        while pending > 0 {
            tx.begin_batch(pending);
            let mut later = 0;
            let mut numbers = Vec::new();
            for _ in 0..pending {
                let mut out = vec![0u8; 256];
                match tx.encapsulate(&inner(tag), &mut out) {
                    Err(DropReason::SeqBusy) => later += 1,
                    Ok(Encapsulated::Protected { len, seq, .. }) => {
                        numbers.push(seq);
                        sent.push(Ok((seq, out[..len].to_vec())));
                    }
                    Ok(Encapsulated::Bypass) => panic!("protected traffic bypassed"),
                    Err(e) => sent.push(Err(e)),
                }
            }
            tx.end_batch();
            wire.lock().unwrap().extend(numbers);
            tx.batch_sent();
            if later == pending {
                std::thread::yield_now();
            }
            pending = later;
        }
    }
    sent
}

fn run(
    tx: &mut Outbound,
    batches: usize,
    size: usize,
    tag: u32,
) -> Vec<Result<(u64, Vec<u8>), DropReason>> {
    run_with(tx, batches, size, tag, &Mutex::new(Vec::new()))
}

#[test]
fn workers_on_one_sa_never_use_a_number_twice() {
    let share = SendShare::new(0, 4);
    let reservation = SeqReservation::unlimited();
    let (halves, mut rx) = workers(4, Lifetime::default(), &share, &reservation);
    let order = Mutex::new(Vec::new());
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = halves
            .into_iter()
            .enumerate()
            .map(|(w, mut tx)| {
                let order = &order;
                s.spawn(move || (run_with(&mut tx, 50, 32, w as u32, order), tx))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // In the order the workers sent them, no packet is 32 or more behind the highest sent
    // before it: a receiver with RFC 4303's default window takes every one.
    let order = order.into_inner().unwrap();
    let mut highest = 0;
    for n in &order {
        assert!(highest < n + 32, "{n} sent after {highest}");
        highest = highest.max(*n);
    }
    let mut seen = BTreeSet::new();
    let mut wire = Vec::new();
    for (sent, tx) in &results {
        assert_eq!(sent.len(), 50 * 32);
        for r in sent {
            let (seq, bytes) = r.as_ref().expect("every packet sent");
            assert!(seen.insert(*seq), "sequence number {seq} used twice");
            wire.push((*seq, bytes.clone()));
        }
        assert_eq!(
            tx.sas()[0].counters.packets,
            50 * 32,
            "each worker counts its own"
        );
    }
    // Blocks sized by what the batch still needs: with one SA nothing is given up.
    assert_eq!(seen.len(), 4 * 50 * 32);
    assert_eq!(*seen.last().unwrap(), 4 * 50 * 32, "no gaps with one SA");
    assert_eq!(share.last(), 4 * 50 * 32);
    assert_eq!(
        reservation.used(),
        4 * 50 * 32,
        "the durable record covers them all"
    );
    assert_eq!(
        share.totals().packets,
        4 * 50 * 32,
        "totals over every worker"
    );
    // The receiver takes every packet once, in number order, and refuses a replay.
    wire.sort_by_key(|(seq, _)| *seq);
    let replay = wire.last().unwrap().1.clone();
    for (seq, mut bytes) in wire {
        match rx.decapsulate(&mut bytes) {
            Ok(Decapsulated::Inner { .. }) => {}
            other => panic!("packet {seq}: {other:?}"),
        }
    }
    let mut again = replay;
    assert_eq!(rx.decapsulate(&mut again), Err(DropReason::Replayed));
}

#[test]
fn a_batch_numbers_its_packets_in_one_block_and_gives_up_the_rest() {
    let share = SendShare::new(10, 2);
    let reservation = SeqReservation::unlimited();
    let (mut halves, _) = workers(2, Lifetime::default(), &share, &reservation);
    let (a, b) = halves.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    // A batch of 8 of which only 3 packets get sent before it ends: 11..=13 used, 14..=18
    // given up.
    a.begin_batch(8);
    for _ in 0..3 {
        let mut out = vec![0u8; 256];
        a.encapsulate(&inner(1), &mut out).unwrap();
    }
    a.end_batch();
    assert_eq!(a.sas()[0].seq(), 13);
    assert_eq!(share.last(), 18);
    // The other worker's next batch starts after the given-up numbers.
    let sent = run(b, 1, 4, 2);
    let seqs: Vec<u64> = sent.iter().map(|r| r.as_ref().unwrap().0).collect();
    assert_eq!(seqs, [19, 20, 21, 22]);
    // Without `begin_batch` a worker takes one number at a time.
    let mut out = vec![0u8; 256];
    match a.encapsulate(&inner(1), &mut out).unwrap() {
        Encapsulated::Protected { seq, .. } => assert_eq!(seq, 23),
        Encapsulated::Bypass => unreachable!(),
    }
    assert_eq!(share.last(), 23);
}

#[test]
fn workers_stop_at_the_reservation_and_the_last_number() {
    let share = SendShare::new(0, 3);
    let reservation = SeqReservation::new(100, 0);
    let (halves, _) = workers(3, Lifetime::default(), &share, &reservation);
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = halves
            .into_iter()
            .map(|mut tx| s.spawn(move || run(&mut tx, 4, 16, 0)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut seen = BTreeSet::new();
    let mut refused = 0;
    for r in results.iter().flatten() {
        match r {
            Ok((seq, _)) => {
                assert!(*seq <= 100, "number {seq} beyond the reservation");
                assert!(seen.insert(*seq), "number {seq} twice");
            }
            Err(e) => {
                assert_eq!(*e, DropReason::SeqUnreserved);
                refused += 1;
            }
        }
    }
    assert_eq!(seen.len(), 100, "every reserved number used once");
    assert_eq!(refused, 3 * 4 * 16 - 100);
    assert_eq!(reservation.used(), 100);
    // More reserved: sending resumes after the last number handed out.
    reservation.set_limit(200);
    let (mut more, _) = workers(1, Lifetime::default(), &share, &reservation);
    assert_eq!(run(&mut more[0], 1, 1, 0)[0].as_ref().unwrap().0, 101);

    // The last number of a 32-bit counter: handed out once, then the SA is exhausted.
    let top = SendShare::new(u64::from(u32::MAX) - 5, 2);
    let (mut halves, _) = workers(2, Lifetime::default(), &top, &SeqReservation::unlimited());
    let a = run(&mut halves[0], 1, 4, 0);
    let b = run(&mut halves[1], 1, 4, 0);
    let used: Vec<u64> = a
        .iter()
        .chain(&b)
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.0)
        .collect();
    assert_eq!(used.len(), 5);
    assert_eq!(used.iter().max(), Some(&u64::from(u32::MAX)));
    assert_eq!(
        b.last().unwrap().as_ref().unwrap_err(),
        &DropReason::SeqExhausted
    );
    let mut events = Vec::new();
    halves[0].check_lifetimes(core::time::Duration::ZERO, &mut events);
    halves[1].check_lifetimes(core::time::Duration::ZERO, &mut events);
    assert_eq!(
        events.len(),
        1,
        "the last number's hard end, reported once: {events:?}"
    );
    assert_eq!(events[0].cause, LifetimeCause::SequenceNumbers);
}

#[test]
fn lifetimes_count_every_worker_and_report_once() {
    let lifetime = Lifetime {
        soft_packets: Some(60),
        hard_packets: Some(100),
        ..Lifetime::default()
    };
    let share = SendShare::new(0, 2);
    let (mut halves, _) = workers(2, lifetime, &share, &SeqReservation::unlimited());
    let mut events = Vec::new();
    // 40 packets each: 80 in all, past the soft end though neither worker alone is.
    for tx in halves.iter_mut() {
        assert!(run(tx, 5, 8, 0).iter().all(|r| r.is_ok()));
    }
    for tx in halves.iter_mut() {
        tx.check_lifetimes(core::time::Duration::ZERO, &mut events);
    }
    assert_eq!(
        events.len(),
        1,
        "soft end once over both workers: {events:?}"
    );
    assert!(!events[0].hard && events[0].cause == LifetimeCause::Packets);
    // 20 more allowed in all; each worker tries 16.
    let a = run(&mut halves[0], 2, 8, 0);
    let b = run(&mut halves[1], 2, 8, 0);
    let sent = a.iter().chain(&b).filter(|r| r.is_ok()).count();
    assert_eq!(sent, 20, "the hard end counts both workers' packets");
    assert!(
        b.iter()
            .rev()
            .take(12)
            .all(|r| r == &Err(DropReason::Expired)),
        "the second worker stops where the first left off"
    );
    events.clear();
    for tx in halves.iter_mut() {
        tx.check_lifetimes(core::time::Duration::ZERO, &mut events);
    }
    assert_eq!(events.len(), 1, "hard end once: {events:?}");
    assert!(events[0].hard);
    for tx in &halves {
        assert_eq!(tx.sas()[0].can_send(), Err(DropReason::Expired));
    }
}
