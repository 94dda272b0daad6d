//! Coalescing: consecutive segments of one flow become one super-packet that segments back
//! into them; out-of-order segments, other flows, other SAs, other flags, options or IDs,
//! bad checksums and non-TCP traffic stay apart, in arrival order.

use proptest::prelude::*;

use super::*;
use crate::gso::tests::{TS_OPTIONS, checksums_ok, tcp, udp};
use crate::gso::{GSO_NONE, Layout, Segments};

const SPI: u32 = 0x1001;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// The segments of one flow: `n` segments of `size` bytes (the last `last` bytes), v4 IDs
/// counting up from 100.
fn flow(v6: bool, n: usize, size: usize, last: usize) -> Vec<Vec<u8>> {
    let mut seq = 5000u32;
    (0..n)
        .map(|i| {
            let len = if i + 1 == n { last } else { size };
            let p = tcp(
                v6,
                seq,
                100 + i as u16,
                0x10,
                &TS_OPTIONS,
                &pattern(len, i as u8),
            );
            seq = seq.wrapping_add(len as u32);
            p
        })
        .collect()
}

/// What the coalescer writes: (virtio-net header, packet) pairs.
fn drained(c: &mut Coalescer) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut out = Vec::new();
    c.drain(|b, packets, bytes, _| {
        let (h, p) = (VnetHdr::parse(b).unwrap(), b[VNET_HDR_LEN..].to_vec());
        let again = resegment(&h, &p);
        assert_eq!(packets, again.len() as u64, "packets counted");
        assert_eq!(
            bytes,
            again.iter().map(|p| p.len() as u64).sum::<u64>(),
            "bytes counted"
        );
        out.push((h, p))
    });
    assert_eq!(c.held(), 0);
    out
}

/// The packets a written super-packet stands for (as the kernel would segment it).
fn resegment(hdr: &VnetHdr, pkt: &[u8]) -> Vec<Vec<u8>> {
    if hdr.gso_type == GSO_NONE {
        return vec![pkt.to_vec()];
    }
    let mut s = Segments::new(pkt, hdr).unwrap();
    let mut buf = vec![0u8; 70_000];
    let mut out = Vec::new();
    while let Some(n) = s.next_into(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn a_flow_coalesces_and_segments_back_to_the_same_packets() {
    for v6 in [false, true] {
        let segs = flow(v6, 10, 1388, 700); // the last one short
        let mut c = Coalescer::new(32);
        assert_eq!(c.offer(SPI, &segs[0]), Offer::Held);
        for s in &segs[1..] {
            assert_eq!(c.offer(SPI, s), Offer::Merged);
        }
        let out = drained(&mut c);
        assert_eq!(out.len(), 1);
        let (hdr, pkt) = &out[0];
        let l3 = if v6 { 40 } else { 20 };
        assert_eq!(hdr.gso_type, if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
        assert_eq!(hdr.flags, F_NEEDS_CSUM);
        assert_eq!(usize::from(hdr.gso_size), 1388);
        assert_eq!(usize::from(hdr.hdr_len), l3 + 32);
        assert_eq!(usize::from(hdr.csum_start), l3);
        assert_eq!(pkt.len(), l3 + 32 + 9 * 1388 + 700);
        if !v6 {
            assert_eq!(checksum::data(&pkt[..20]), 0xffff, "IPv4 header checksum");
        }
        // Segmented again (with fresh checksums), it is exactly what came in.
        assert_eq!(resegment(hdr, pkt), segs);
    }
}

#[test]
fn psh_closes_a_slot_and_a_short_segment_too() {
    let mut segs = flow(false, 4, 1000, 1000);
    // PSH on the second: it merges, carries PSH, and the third starts a new slot.
    segs[1] = tcp(false, 6000, 101, 0x18, &TS_OPTIONS, &pattern(1000, 1));
    let mut c = Coalescer::new(8);
    let offers: Vec<Offer> = segs.iter().map(|s| c.offer(SPI, s)).collect();
    assert_eq!(
        offers,
        [Offer::Held, Offer::Merged, Offer::Held, Offer::Merged]
    );
    let out = drained(&mut c);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].1[33] & 0x08, 0x08, "PSH kept");
    let mut again: Vec<Vec<u8>> = Vec::new();
    for (h, p) in &out {
        again.extend(resegment(h, p));
    }
    assert_eq!(again, segs);
    // After a short segment nothing more joins.
    let segs = flow(false, 3, 1000, 1000);
    let short = tcp(false, 5000, 100, 0x10, &TS_OPTIONS, &pattern(500, 0));
    let next = tcp(false, 5500, 101, 0x10, &TS_OPTIONS, &pattern(500, 1));
    let mut c = Coalescer::new(8);
    assert_eq!(c.offer(SPI, &segs[0]), Offer::Held);
    let mut c2 = Coalescer::new(8);
    assert_eq!(c2.offer(SPI, &short), Offer::Held);
    assert_eq!(c2.offer(SPI, &next), Offer::Merged, "equal size is fine");
    let third = tcp(false, 6000, 102, 0x10, &TS_OPTIONS, &pattern(400, 2));
    assert_eq!(
        c2.offer(SPI, &third),
        Offer::Merged,
        "shorter joins and closes"
    );
    let fourth = tcp(false, 6400, 103, 0x10, &TS_OPTIONS, &pattern(400, 3));
    assert_eq!(c2.offer(SPI, &fourth), Offer::Held);
}

#[test]
fn out_of_order_segments_are_not_merged_and_keep_their_order() {
    let segs = flow(false, 4, 1000, 1000);
    let order = [0usize, 2, 1, 3];
    let mut c = Coalescer::new(8);
    let offers: Vec<Offer> = order.iter().map(|&i| c.offer(SPI, &segs[i])).collect();
    // 2 does not continue 0; 1 does not continue 2 (only the flow's latest slot may grow);
    // 3 does not continue 1.
    assert_eq!(offers, [Offer::Held, Offer::Held, Offer::Held, Offer::Held]);
    let out = drained(&mut c);
    let written: Vec<Vec<u8>> = out.iter().flat_map(|(h, p)| resegment(h, p)).collect();
    let want: Vec<Vec<u8>> = order.iter().map(|&i| segs[i].clone()).collect();
    assert_eq!(written, want);
    assert!(out.iter().all(|(h, _)| h.gso_type == GSO_NONE));
}

/// A flow's packets on two SAs (a rekey): one of the old SA that continues the flow's
/// earlier slot must not join it past the new SA's packet in between.
#[test]
fn a_segment_never_joins_its_flows_slot_past_one_of_another_sa() {
    let segs = flow(false, 3, 1000, 1000);
    let mut c = Coalescer::new(8);
    assert_eq!(c.offer(SPI, &segs[0]), Offer::Held);
    // The new SA's packet: the same flow, not the continuation (a retransmission).
    assert_eq!(c.offer(SPI + 1, &segs[0]), Offer::Held);
    // The old SA's continuation of the first slot.
    assert_eq!(c.offer(SPI, &segs[1]), Offer::Held);
    // The new SA's next packet continues nothing of its own SA's slot.
    assert_eq!(c.offer(SPI + 1, &segs[2]), Offer::Held);
    let written: Vec<Vec<u8>> = drained(&mut c)
        .iter()
        .flat_map(|(h, p)| resegment(h, p))
        .collect();
    assert_eq!(
        written,
        [&segs[0], &segs[0], &segs[1], &segs[2]].map(|p| p.clone()),
        "in the order offered"
    );
    // Of one SA the same packets still merge.
    let mut c = Coalescer::new(8);
    for p in &segs {
        assert_ne!(c.offer(SPI + 1, p), Offer::Full);
    }
    assert_eq!(drained(&mut c).len(), 1);
}

#[test]
fn different_sas_flows_flags_options_and_ids_stay_apart() {
    let segs = flow(false, 2, 1000, 1000);
    let second = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = segs[1].clone();
        f(&mut p);
        Layout::of(&p).unwrap().fill_l4_checksum(&mut p);
        let l = Layout::of(&p).unwrap();
        let len = p.len();
        l.set_ip_len(&mut p, len);
        p
    };
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("other SA", segs[1].clone(), SPI + 1),
        ("other port", second(&|p| p[20] = 0x99), SPI),
        ("other source", second(&|p| p[15] = 9), SPI),
        ("SYN", second(&|p| p[33] |= 0x02), SPI),
        ("FIN", second(&|p| p[33] |= 0x01), SPI),
        ("URG", second(&|p| p[33] |= 0x20), SPI),
        ("other ack", second(&|p| p[31] ^= 1), SPI),
        ("other window", second(&|p| p[35] ^= 1), SPI),
        ("other timestamp", second(&|p| p[51] ^= 1), SPI),
        ("IPv4 ID not next", second(&|p| p[5] = 200), SPI),
        ("other TTL", second(&|p| p[8] = 10), SPI),
        ("other TOS", second(&|p| p[1] = 4), SPI),
    ];
    for (what, p, spi) in cases {
        let mut c = Coalescer::new(4);
        assert_eq!(c.offer(SPI, &segs[0]), Offer::Held);
        assert_eq!(c.offer(spi, &p), Offer::Held, "{what}");
        let out = drained(&mut c);
        assert_eq!(out[1].1, p, "{what}: written unchanged");
        assert_eq!(out[1].0, VnetHdr::default());
    }
    // A bad TCP checksum is never merged: not as a continuation, not as a base.
    let mut bad = segs[1].clone();
    bad[60] ^= 0xff;
    let mut c = Coalescer::new(4);
    c.offer(SPI, &segs[0]);
    assert_eq!(c.offer(SPI, &bad), Offer::Held);
    let mut bad0 = segs[0].clone();
    bad0[60] ^= 0xff;
    let mut c = Coalescer::new(4);
    c.offer(SPI, &bad0);
    assert_eq!(c.offer(SPI, &segs[1]), Offer::Held);
    assert_eq!(
        drained(&mut c)[0].1,
        bad0,
        "written as it came, bad checksum and all"
    );
}

#[test]
fn non_tcp_and_full_slots() {
    let u = udp(false, &pattern(100, 1));
    let mut c = Coalescer::new(2);
    assert_eq!(c.offer(SPI, &u), Offer::Held);
    assert_eq!(c.offer(SPI, &u), Offer::Held);
    assert_eq!(c.offer(SPI, &u), Offer::Full);
    let out = drained(&mut c);
    assert!(out.iter().all(|(h, p)| *h == VnetHdr::default() && *p == u));
    // A slot stops growing at 64 KiB.
    let segs = flow(false, 60, 1400, 1400);
    let mut c = Coalescer::new(8);
    for s in &segs {
        c.offer(SPI, s);
    }
    let out = drained(&mut c);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(_, p)| p.len() <= 65535));
    let again: Vec<Vec<u8>> = out.iter().flat_map(|(h, p)| resegment(h, p)).collect();
    assert_eq!(again, segs);
}

proptest! {
    /// Interleaved segments of two flows (in order within each) come back, segmented
    /// again, as exactly the packets offered, each flow in its order, with right checksums.
    #[test]
    fn interleaved_flows_round_trip(n in 1usize..40, size in 1usize..1500, last in 1usize..1500,
                                    picks in proptest::collection::vec(any::<bool>(), 80), v6: bool) {
        let a = flow(v6, n, size, last.min(size));
        let mut b = flow(v6, n, size, last.min(size));
        for p in &mut b {
            // the second flow: another source port
            let t = if v6 { 40 } else { 20 };
            p[t] = 0x77;
            let l = Layout::of(p).unwrap();
            l.fill_l4_checksum(p);
        }
        let (mut i, mut j) = (0, 0);
        let mut c = Coalescer::new(128);
        let mut k = 0;
        while i < n || j < n {
            let take_a = (picks[k % picks.len()] && i < n) || j == n;
            k += 1;
            if take_a { c.offer(SPI, &a[i]); i += 1 } else { c.offer(SPI, &b[j]); j += 1 }
        }
        let out = drained(&mut c);
        let again: Vec<Vec<u8>> = out.iter().flat_map(|(h, p)| resegment(h, p)).collect();
        prop_assert!(again.iter().all(|p| checksums_ok(p)));
        let t = if v6 { 40 } else { 20 };
        let got_a: Vec<_> = again.iter().filter(|p| p[t] != 0x77).cloned().collect();
        let got_b: Vec<_> = again.iter().filter(|p| p[t] == 0x77).cloned().collect();
        prop_assert_eq!(got_a, a);
        prop_assert_eq!(got_b, b);
    }

    /// Arbitrary bytes never panic, and what is not merged is written unchanged.
    #[test]
    fn arbitrary_bytes_never_panic(pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..10)) {
        let mut c = Coalescer::new(16);
        for p in &pkts {
            c.offer(SPI, p);
        }
        let out = drained(&mut c);
        prop_assert!(out.len() <= pkts.len());
    }
}
