//! Segmentation of TUN super-packets: lengths, identifications, sequence numbers, flags,
//! options and checksums of every segment, the short last one, IPv6 and UDP, and headers
//! that do not describe their packet.

use proptest::prelude::*;

use super::*;

/// A TCP option block: NOP, NOP, timestamps (12 bytes).
pub const TS_OPTIONS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];

/// A whole IPv4 (`v6 == false`) or IPv6 TCP packet with `payload`, `flags`, `options` and a
/// correct checksum, from 10.1.0.2:5000 to 10.2.0.2:80 (fd00:1::2, fd00:2::2).
pub fn tcp(v6: bool, seq: u32, id: u16, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let l3 = if v6 { 40 } else { 20 };
    let l4 = 20 + options.len();
    let mut p = vec![0u8; l3 + l4 + payload.len()];
    if v6 {
        p[0] = 0x60;
        p[1] = 0x00;
        p[6] = 6;
        p[7] = 63;
        p[8..24].copy_from_slice(&"fd00:1::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"fd00:2::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
    } else {
        p[0] = 0x45;
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 63;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
    }
    let t = l3;
    p[t..t + 2].copy_from_slice(&5000u16.to_be_bytes());
    p[t + 2..t + 4].copy_from_slice(&80u16.to_be_bytes());
    p[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    p[t + 8..t + 12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    p[t + 12] = ((l4 / 4) as u8) << 4;
    p[t + 13] = flags;
    p[t + 14..t + 16].copy_from_slice(&502u16.to_be_bytes());
    p[t + 20..t + l4].copy_from_slice(options);
    p[t + l4..].copy_from_slice(payload);
    let l = Layout::of(&p).unwrap();
    let len = p.len();
    l.set_ip_len(&mut p, len);
    l.fill_l4_checksum(&mut p);
    p
}

/// A UDP packet 10.1.0.2:5000 -> 10.2.0.2:53 with `payload` and a correct checksum.
pub fn udp(v6: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = tcp(v6, 0, 7, 0x10, &[], &[]);
    let l3 = if v6 { 40 } else { 20 };
    p.truncate(l3 + 8);
    if v6 {
        p[6] = 17;
    } else {
        p[9] = 17;
    }
    p[l3 + 2..l3 + 4].copy_from_slice(&53u16.to_be_bytes());
    p.extend_from_slice(payload);
    let len = p.len();
    p[l3 + 4..l3 + 6].copy_from_slice(&((len - l3) as u16).to_be_bytes());
    let l = Layout::of(&p).unwrap();
    l.set_ip_len(&mut p, len);
    l.fill_l4_checksum(&mut p);
    p
}

/// Whether a packet's IPv4 header checksum and transport checksum are right.
pub fn checksums_ok(p: &[u8]) -> bool {
    let l = Layout::of(p).unwrap();
    let ip_ok = l.v6 || checksum::data(&p[..l.l3_len]) == 0xffff;
    let l4 = &p[l.l3_len..];
    ip_ok && checksum::combine(&[l.pseudo_sum(p, l4.len()), checksum::data(l4)]) == 0xffff
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// The super-packet the inside stack would hand over: one header, all the payload, the IP
/// length of the whole, a partial checksum.
fn gso_hdr(v6: bool, udp: bool, seg: u16) -> VnetHdr {
    VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: match (udp, v6) {
            (true, _) => GSO_UDP_L4,
            (false, false) => GSO_TCPV4,
            (false, true) => GSO_TCPV6,
        },
        hdr_len: 0,
        gso_size: seg,
        csum_start: if v6 { 40 } else { 20 },
        csum_offset: if udp { 6 } else { 16 },
    }
}

fn segments(pkt: &[u8], hdr: &VnetHdr) -> Vec<Vec<u8>> {
    let mut s = Segments::new(pkt, hdr).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Some(n) = s.next_into(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    assert_eq!(out.len(), Segments::new(pkt, hdr).unwrap().count());
    out
}

#[test]
fn vnet_header_round_trips_little_endian() {
    let h = VnetHdr {
        flags: 1,
        gso_type: GSO_TCPV6,
        hdr_len: 0x0102,
        gso_size: 1448,
        csum_start: 40,
        csum_offset: 16,
    };
    let mut b = [0xeeu8; VNET_HDR_LEN];
    assert!(h.emit(&mut b));
    assert_eq!(b, [1, 4, 2, 1, 0xa8, 5, 40, 0, 16, 0]);
    assert_eq!(VnetHdr::parse(&b), Some(h));
    assert_eq!(VnetHdr::parse(&b[..9]), None);
    assert!(!h.emit(&mut [0u8; 9]));
}

#[test]
fn tcp_v4_super_packet_becomes_segments_with_ids_seqs_flags_and_checksums() {
    let payload = pattern(2500);
    // PSH|ACK|FIN|CWR on the super-packet: FIN and PSH go to the last segment, CWR to the first.
    let sup = tcp(
        false,
        1000,
        40,
        0x80 | 0x10 | 0x08 | 0x01,
        &TS_OPTIONS,
        &payload,
    );
    let segs = segments(&sup, &gso_hdr(false, false, 1000));
    assert_eq!(segs.len(), 3);
    let mut joined = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let want = if i == 2 { 500 } else { 1000 }; // the last one short
        assert_eq!(s.len(), 20 + 32 + want);
        assert_eq!(u16::from_be_bytes([s[2], s[3]]) as usize, s.len());
        assert_eq!(u16::from_be_bytes([s[4], s[5]]), 40 + i as u16);
        assert_eq!(
            u32::from_be_bytes([s[24], s[25], s[26], s[27]]),
            1000 + 1000 * i as u32
        );
        let flags = s[33];
        assert_eq!(flags & 0x80 != 0, i == 0, "CWR on the first only");
        assert_eq!(flags & 0x09 != 0, i == 2, "FIN/PSH on the last only");
        assert!(flags & 0x10 != 0);
        assert_eq!(s[40..52], TS_OPTIONS, "options copied to every segment");
        assert!(checksums_ok(s), "segment {i}");
        joined.extend_from_slice(&s[52..]);
    }
    assert_eq!(joined, payload);
}

#[test]
fn tcp_v6_and_an_exact_multiple() {
    let payload = pattern(3 * 1200);
    let sup = tcp(true, u32::MAX - 100, 0, 0x18, &[], &payload);
    let segs = segments(&sup, &gso_hdr(true, false, 1200));
    assert_eq!(segs.len(), 3);
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(u16::from_be_bytes([s[4], s[5]]), 20 + 1200);
        let seq = u32::from_be_bytes([s[44], s[45], s[46], s[47]]);
        assert_eq!(seq, (u32::MAX - 100).wrapping_add(1200 * i as u32), "wraps");
        assert!(checksums_ok(s));
        assert_eq!(s[60..], payload[i * 1200..(i + 1) * 1200]);
    }
}

#[test]
fn udp_super_packet_becomes_datagrams() {
    for v6 in [false, true] {
        let payload = pattern(3000);
        let sup = udp(v6, &payload);
        let segs = segments(&sup, &gso_hdr(v6, true, 1400));
        assert_eq!(segs.len(), 3);
        let l3 = if v6 { 40 } else { 20 };
        for (i, s) in segs.iter().enumerate() {
            let want = [1400, 1400, 200][i];
            assert_eq!(
                u16::from_be_bytes([s[l3 + 4], s[l3 + 5]]) as usize,
                8 + want
            );
            assert!(checksums_ok(s));
            assert_eq!(s[l3 + 8..], payload[i * 1400..i * 1400 + want]);
        }
    }
}

#[test]
fn partial_checksum_of_a_single_packet_is_completed() {
    let mut p = tcp(false, 1, 1, 0x18, &[], &pattern(300));
    let l = Layout::of(&p).unwrap();
    let pseudo = l.pseudo_sum(&p, p.len() - 20);
    p[36..38].copy_from_slice(&pseudo.to_be_bytes());
    assert!(!checksums_ok(&p));
    let mut hdr = gso_hdr(false, false, 0);
    hdr.gso_type = GSO_NONE;
    assert_eq!(finish_single(&mut p, &hdr), Ok(true));
    assert!(checksums_ok(&p));
    hdr.csum_offset = 400; // beyond the packet
    assert_eq!(finish_single(&mut p, &hdr), Err(DropReason::Malformed));
}

#[test]
fn headers_that_do_not_describe_the_packet_are_malformed() {
    let sup = tcp(false, 1, 1, 0x10, &[], &pattern(3000));
    let bad = |p: &[u8], h: VnetHdr| Segments::new(p, &h).err();
    assert_eq!(
        bad(&sup, gso_hdr(true, false, 1000)),
        Some(DropReason::Malformed)
    );
    assert_eq!(
        bad(&sup, gso_hdr(false, true, 1000)),
        Some(DropReason::Malformed)
    );
    assert_eq!(
        bad(&sup, gso_hdr(false, false, 0)),
        Some(DropReason::Malformed)
    );
    assert_eq!(
        bad(&sup[..30], gso_hdr(false, false, 1000)),
        Some(DropReason::Malformed)
    );
    let mut frag = sup.clone();
    frag[6] = 0x20; // more fragments
    assert_eq!(
        bad(&frag, gso_hdr(false, false, 1000)),
        Some(DropReason::Malformed)
    );
    // An output buffer too small for the next segment ends the iteration, no panic.
    let mut s = Segments::new(&sup, &gso_hdr(false, false, 1000)).unwrap();
    assert_eq!(s.next_into(&mut [0u8; 100]), None);
}

proptest! {
    /// Any payload length and segment size: the segments' payloads concatenate to the
    /// original, each no longer than the segment size, all but the last exactly it, with
    /// consecutive sequence numbers and right checksums.
    #[test]
    fn segments_cover_the_payload(len in 1usize..20_000, seg in 1u16..3000, v6: bool, is_udp: bool) {
        let payload = pattern(len);
        let sup = if is_udp { udp(v6, &payload) } else { tcp(v6, 7, 9, 0x18, &TS_OPTIONS, &payload) };
        let segs = segments(&sup, &gso_hdr(v6, is_udp, seg));
        let hl = Layout::of(&sup).unwrap().headers_len();
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let n = s.len() - hl;
            prop_assert!(n <= usize::from(seg));
            prop_assert!(i + 1 == segs.len() || n == usize::from(seg));
            prop_assert!(checksums_ok(s));
            joined.extend_from_slice(&s[hl..]);
        }
        prop_assert_eq!(joined, payload);
    }

    /// Arbitrary bytes and headers never panic.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                    flags: u8, gso_type: u8, gso_size: u16, start: u16, off: u16) {
        let hdr = VnetHdr { flags, gso_type, hdr_len: 0, gso_size, csum_start: start, csum_offset: off };
        let mut p = bytes.clone();
        let _ = finish_single(&mut p, &hdr);
        if let Ok(mut s) = Segments::new(&bytes, &hdr) {
            let mut parts = s.clone();
            let mut buf = vec![0u8; 400];
            let mut n = 0;
            while s.next_into(&mut buf).is_some() && n < 1000 { n += 1; }
            let mut head = [0u8; 128];
            let mut m = 0;
            while let Some((hl, payload)) = parts.next_parts(&mut head) {
                prop_assert!(hl <= head.len() && hl + payload.len() <= bytes.len().max(hl));
                m += 1;
                if m >= 1000 { break; }
            }
        }
    }
}

/// An ESP-in-UDP datagram as the engine builds it: 192.0.2.1:4500 -> 192.0.2.2:4500, DF,
/// TTL 64, `tos`, UDP checksum zero, `len` payload bytes.
fn esp_in_udp(len: usize, tos: u8, dst_port: u16) -> Vec<u8> {
    let mut p = vec![0u8; 28 + len];
    p[0] = 0x45;
    p[1] = tos;
    p[2..4].copy_from_slice(&((28 + len) as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[192, 0, 2, 1]);
    p[16..20].copy_from_slice(&[192, 0, 2, 2]);
    p[20..22].copy_from_slice(&4500u16.to_be_bytes());
    p[22..24].copy_from_slice(&dst_port.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    p[28..].fill(0xe5);
    p
}

fn run_of(pkts: &[Vec<u8>]) -> Option<UdpRun> {
    let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
    udp_run(&refs)
}

#[test]
fn udp_runs_take_equal_datagrams_of_one_flow_and_a_shorter_last() {
    let same = |n: usize, len: usize| (0..n).map(|_| esp_in_udp(len, 0, 4500)).collect::<Vec<_>>();
    let run = run_of(&same(5, 1400)).unwrap();
    assert_eq!((run.count, run.seg_len, run.tos), (5, 1400, 0));
    assert_eq!(run.src, "192.0.2.1:4500".parse().unwrap());
    assert_eq!(run.dst, "192.0.2.2:4500".parse().unwrap());
    // A shorter one joins and ends the run; a longer one does not join.
    let mut v = same(3, 1400);
    v.push(esp_in_udp(600, 0, 4500));
    v.push(esp_in_udp(600, 0, 4500));
    assert_eq!(run_of(&v).unwrap().count, 4);
    let mut v = same(2, 1000);
    v.push(esp_in_udp(1001, 0, 4500));
    assert_eq!(run_of(&v).unwrap().count, 2);
    // Another TOS, destination port, or a raw ESP packet ends it.
    for other in [esp_in_udp(1400, 2, 4500), esp_in_udp(1400, 0, 4501), {
        let mut p = esp_in_udp(1400, 0, 4500);
        p[9] = 50;
        p
    }] {
        let mut v = same(2, 1400);
        v.push(other);
        v.extend(same(2, 1400));
        assert_eq!(run_of(&v).unwrap().count, 2);
    }
    // At most 64 datagrams, at most 65000 bytes.
    assert_eq!(run_of(&same(100, 100)).unwrap().count, UDP_MAX_SEGMENTS);
    assert_eq!(run_of(&same(60, 1400)).unwrap().count, 65000 / 1400);
}

#[test]
fn udp_runs_start_only_at_datagrams_a_socket_could_send() {
    let ok = esp_in_udp(100, 0, 4500);
    assert!(run_of(std::slice::from_ref(&ok)).is_some());
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = ok.clone();
        f(&mut p);
        run_of(&[p])
    };
    assert_eq!(mutate(&|p| p[6] = 0), None, "DF clear");
    assert_eq!(mutate(&|p| p[8] = 3), None, "another TTL");
    assert_eq!(mutate(&|p| p[0] = 0x46), None, "IPv4 options");
    assert_eq!(mutate(&|p| p[3] ^= 1), None, "IP length wrong");
    assert_eq!(mutate(&|p| p[25] ^= 1), None, "UDP length wrong");
    assert_eq!(mutate(&|p| p.truncate(20)), None, "truncated");
    assert_eq!(run_of(&[esp_in_udp(0, 0, 4500)]), None, "empty payload");
    assert_eq!(run_of(&[]), None);
    assert_eq!(udp_payload(&ok).len(), 100);
}

proptest! {
    #[test]
    fn udp_run_never_panics(pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..5)) {
        let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        if let Some(run) = udp_run(&refs) {
            prop_assert!(run.count >= 1 && run.count <= refs.len());
        }
    }
}

/// Segment `i` of a super-packet the plain way: the headers copied, the segment's fields
/// set, then both checksums summed over the segment as written.
fn reference_segment(sup: &[u8], seg_size: usize, i: usize) -> Vec<u8> {
    let l = Layout::of(sup).unwrap();
    let hl = l.headers_len();
    let total = sup.len() - hl;
    let done = i * seg_size;
    let chunk = (total - done).min(seg_size);
    let mut s = [&sup[..hl], &sup[hl + done..hl + done + chunk]].concat();
    let t = l.l3_len;
    if !l.v6 {
        let id = u16::from_be_bytes([s[4], s[5]]).wrapping_add(i as u16);
        s[4..6].copy_from_slice(&id.to_be_bytes());
    }
    let len = s.len();
    l.set_ip_len(&mut s, len);
    if l.protocol == IPPROTO_TCP {
        let seq = u32::from_be_bytes(s[t + 4..t + 8].try_into().unwrap()).wrapping_add(done as u32);
        s[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        if done + chunk < total {
            s[t + 13] &= !0x09;
        }
        if i > 0 {
            s[t + 13] &= !0x80;
        }
    } else {
        s[t + 4..t + 6].copy_from_slice(&((len - t) as u16).to_be_bytes());
    }
    l.fill_l4_checksum(&mut s);
    s
}

proptest! {
    /// Any header a super-packet can carry — IPv4 options, TCP options, any flags,
    /// identification, sequence number (wrapping), TOS and TTL — and whatever its length and
    /// checksum fields hold on the way in: each segment equals the one built the plain way
    /// and summed over its written bytes.
    #[test]
    fn segments_equal_the_plain_construction(
        len in 0usize..6_000, seg in 1u16..2000, v6: bool, is_udp: bool,
        seq: u32, id: u16, flags: u8, tos: u8, ttl: u8, ack: u32, window: u16,
        tcp_opt_words in 0usize..=10, ip_opt_words in 0usize..=10,
        junk: [u8; 8], opt_bytes in proptest::collection::vec(any::<u8>(), 80),
    ) {
        let payload = pattern(len);
        let tcp_opts = &opt_bytes[..tcp_opt_words * 4];
        let mut sup = if is_udp { udp(v6, &payload) } else { tcp(v6, seq, id, flags, tcp_opts, &payload) };
        let mut t = if v6 { 40 } else { 20 };
        if v6 {
            sup[1] = tos;
            sup[7] = ttl;
        } else {
            sup[1] = tos;
            sup[8] = ttl;
            // IPv4 options after the fixed header.
            let opts = &opt_bytes[40..40 + ip_opt_words * 4];
            sup.splice(20..20, opts.iter().copied());
            sup[0] = 0x40 | (5 + ip_opt_words) as u8;
            t += opts.len();
            sup[2..4].copy_from_slice(&junk[0..2]); // total length of no interest
            sup[10..12].copy_from_slice(&junk[2..4]);
        }
        if !is_udp {
            sup[t + 8..t + 12].copy_from_slice(&ack.to_be_bytes());
            sup[t + 14..t + 16].copy_from_slice(&window.to_be_bytes());
            sup[t + 16..t + 18].copy_from_slice(&junk[4..6]);
        } else {
            sup[t + 4..t + 8].copy_from_slice(&junk[4..8]);
        }
        let segs = segments(&sup, &gso_hdr(v6, is_udp, seg));
        for (i, s) in segs.iter().enumerate() {
            prop_assert!(checksums_ok(s), "segment {}", i);
            prop_assert_eq!(s, &reference_segment(&sup, usize::from(seg), i), "segment {}", i);
        }
    }
}

proptest! {
    /// The two-part form gives, segment by segment, the headers and payload whose
    /// concatenation is what `next_into` writes — any family, protocol, length and segment
    /// size, the short last segment and an empty payload included — and stops where it does.
    #[test]
    fn parts_join_to_the_written_segments(
        len in 0usize..9_000, seg in 1u16..2000, v6: bool, is_udp: bool, seq: u32, flags: u8,
    ) {
        let payload = pattern(len);
        let sup = if is_udp { udp(v6, &payload) } else { tcp(v6, seq, 3, flags, &TS_OPTIONS, &payload) };
        let hdr = gso_hdr(v6, is_udp, seg);
        let written = segments(&sup, &hdr);
        let mut parts = Segments::new(&sup, &hdr).unwrap();
        let mut head = [0u8; 128];
        let mut joined = Vec::new();
        while let Some((hl, payload)) = parts.next_parts(&mut head) {
            let mut s = head[..hl].to_vec();
            s.extend_from_slice(payload);
            joined.push(s);
        }
        prop_assert_eq!(joined, written);
    }
}

/// A head buffer too small for the headers ends the iteration, no panic, nothing skipped.
#[test]
fn parts_need_room_for_the_headers() {
    let sup = tcp(false, 1, 2, 0x18, &TS_OPTIONS, &pattern(3000));
    let mut s = Segments::new(&sup, &gso_hdr(false, false, 1000)).unwrap();
    assert_eq!(s.next_parts(&mut [0u8; 20]), None);
    let (hl, payload) = s.next_parts(&mut [0u8; 64]).unwrap();
    assert_eq!((hl, payload.len()), (52, 1000));
}
