//! TUN offloads: a virtio-net header and a packet as the TUN device would hand them over —
//! completed or cut into segments, each of which must fit its buffer and lie within the
//! super-packet's size, the same whether written whole or given as headers and payload,
//! a whole packet (its IP length, IPv4 header and transport checksums right) with the next
//! piece of the super-packet's payload — and packets offered to the coalescer, which must write back no
//! more packets and no more bytes than it was given (plus headers), never panicking. The
//! first input byte splits the rest into packets for the coalescer.
#![no_main]

use espo_ipsec::gro::{Coalescer, Offer};
use espo_ipsec::gso::{Layout, Segments, VNET_HDR_LEN, VnetHdr, finish_single, udp_run};
use espo_ipsec::wire::{checksum, ipv4, ipv6};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    if let Some(hdr) = VnetHdr::parse(rest) {
        let mut pkt = rest[VNET_HDR_LEN..].to_vec();
        if let Ok(false) = finish_single(&mut pkt, &hdr)
            && let Ok(mut segments) = Segments::new(&pkt, &hdr)
        {
            let count = segments.count();
            let mut parts = segments.clone();
            let mut buf = vec![0u8; 2048];
            let mut written = Vec::new();
            while let Some(len) = segments.next_into(&mut buf) {
                assert!(len <= buf.len());
                written.push(buf[..len].to_vec());
                assert!(written.len() <= count, "more segments than counted");
            }
            // The two-part form gives the same segments, headers then payload.
            let mut head = [0u8; 128];
            let mut n = 0;
            while let Some((hl, payload)) = parts.next_parts(&mut head) {
                let mut joined = head[..hl].to_vec();
                joined.extend_from_slice(payload);
                match written.get(n) {
                    Some(w) => assert_eq!(w, &joined, "segment {n} differs in two parts"),
                    // `next_into` stopped at the first segment too long for its buffer;
                    // the parts go on.
                    None if n == written.len() => assert!(joined.len() > buf.len()),
                    None => {}
                }
                n += 1;
                assert!(n <= count, "more parts than counted");
            }
            assert!(n >= written.len(), "fewer parts than segments");
            // Each segment is a whole packet: its own IP length, its checksums right, its
            // payload the next piece of the super-packet's.
            let mut payload = Vec::new();
            for (i, seg) in written.iter().enumerate() {
                let l = Layout::of(seg).expect("a segment is a TCP or UDP packet");
                let ip_len = if l.v6 {
                    ipv6::Packet::new_unchecked(&seg[..]).total_len()
                } else {
                    usize::from(ipv4::Packet::new_unchecked(&seg[..]).total_len())
                };
                assert_eq!(ip_len, seg.len(), "segment {i}: IP length");
                assert!(
                    l.v6 || checksum::data(&seg[..l.l3_len]) == 0xffff,
                    "segment {i}: IPv4 header checksum"
                );
                let l4 = &seg[l.l3_len..];
                let sum = checksum::combine(&[l.pseudo_sum(seg, l4.len()), checksum::data(l4)]);
                assert_eq!(sum, 0xffff, "segment {i}: transport checksum");
                payload.extend_from_slice(&seg[l.headers_len()..]);
            }
            if written.len() == count {
                let hl = Layout::of(&pkt).map_or(0, |l| l.headers_len());
                assert!(
                    payload == pkt[hl..],
                    "the segments' payloads are not the super-packet's"
                );
            }
        }
    }

    let step = usize::from(split).max(1);
    let packets: Vec<&[u8]> = rest.chunks(step).collect();
    let _ = udp_run(&packets);
    let mut coalescer = Coalescer::new(4);
    let (mut offered, mut offered_bytes) = (0u64, 0u64);
    for (i, p) in packets.iter().enumerate() {
        if coalescer.offer(i as u32 % 2, p) != Offer::Full {
            offered += 1;
            offered_bytes += p.len() as u64;
        }
    }
    let (mut written, mut written_bytes) = (0u64, 0u64);
    coalescer.drain(|bytes, packets, inner_bytes, _| {
        assert!(bytes.len() >= VNET_HDR_LEN);
        written += packets;
        written_bytes += inner_bytes;
    });
    assert_eq!((written, written_bytes), (offered, offered_bytes));
});
