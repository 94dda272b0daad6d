use super::*;
use espo_ipsec::wire::{checksum, ipv4, ipv6};
use std::time::Duration;

/// An IPv4 UDP packet of `len` bytes from 10.1.0.2 to 10.2.0.2 with DF.
fn udp4(len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    let repr = ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 1, 0, 2),
        dst_addr: Ipv4Addr::new(10, 2, 0, 2),
        next_header: IpProtocol::Udp,
        payload_len: len - ipv4::HEADER_LEN,
        hop_limit: 63,
        tos: 0,
        dont_frag: true,
        ident: 7,
    };
    repr.emit(
        &mut ipv4::Packet::new_unchecked(&mut p[..]),
        &ChecksumCaps::default(),
    )
    .unwrap();
    for (i, b) in p[ipv4::HEADER_LEN..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

fn udp6(len: usize, next: IpProtocol) -> Vec<u8> {
    let mut p = vec![0u8; len];
    let repr = ipv6::Repr {
        src_addr: "fd00:1::2".parse().unwrap(),
        dst_addr: "fd00:2::2".parse().unwrap(),
        next_header: next,
        payload_len: len - ipv6::HEADER_LEN,
        hop_limit: 63,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut p[..]))
        .unwrap();
    for (i, b) in p[ipv6::HEADER_LEN..].iter_mut().enumerate() {
        *b = (i as u8) | 0x80;
    }
    p
}

#[test]
fn frag_needed_quotes_the_packet_and_names_the_mtu() {
    let orig = udp4(1500);
    let src = Ipv4Addr::new(10, 1, 255, 1);
    let mut out = [0xeeu8; 2048];
    let n = frag_needed(&orig, src, 1431, &mut out).unwrap();
    assert_eq!(n, 576, "an ICMPv4 error is at most 576 bytes");
    let p = ipv4::Packet::new_checked(&out[..n]).unwrap();
    assert!(p.verify_checksum());
    assert_eq!(p.src_addr(), src);
    assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 1, 0, 2));
    assert_eq!(p.next_header(), IpProtocol::Icmp);
    let icmp = p.payload();
    assert_eq!((icmp[0], icmp[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1431);
    assert_eq!(checksum::data(icmp), 0xffff, "ICMP checksum verifies");
    assert_eq!(&icmp[8..], &orig[..576 - 28]);
}

#[test]
fn no_error_about_errors_fragments_or_multicast() {
    let src = Ipv4Addr::new(10, 1, 255, 1);
    let mut out = [0u8; 2048];
    // An ICMP error (type 3) is never answered with another.
    let mut err = udp4(100);
    {
        let mut p = ipv4::Packet::new_unchecked(&mut err[..]);
        p.set_next_header(IpProtocol::Icmp);
        p.payload_mut()[0] = 3;
        p.fill_checksum();
    }
    assert_eq!(frag_needed(&err, src, 1000, &mut out), None);
    // An echo request (type 8) is.
    ipv4::Packet::new_unchecked(&mut err[..]).payload_mut()[0] = 8;
    assert!(frag_needed(&err, src, 1000, &mut out).is_some());
    // A non-first fragment is not.
    let mut frag = udp4(100);
    ipv4::Packet::new_unchecked(&mut frag[..]).set_frag_offset(64);
    assert_eq!(frag_needed(&frag, src, 1000, &mut out), None);
    // Nor a packet from a multicast source.
    let mut mc = udp4(100);
    ipv4::Packet::new_unchecked(&mut mc[..]).set_src_addr(Ipv4Addr::new(224, 0, 0, 1));
    assert_eq!(frag_needed(&mc, src, 1000, &mut out), None);
    // Nor garbage.
    assert_eq!(frag_needed(&[0x45, 0, 0], src, 1000, &mut out), None);
}

#[test]
fn packet_too_big_fits_the_minimum_mtu_and_checksums() {
    let orig = udp6(1500, IpProtocol::Udp);
    let src: Ipv6Addr = "fd00:1:ffff::1".parse().unwrap();
    let mut out = [0u8; 2048];
    let n = packet_too_big(&orig, src, 1400, &mut out).unwrap();
    assert_eq!(n, 1280);
    let p = ipv6::Packet::new_checked(&out[..n]).unwrap();
    assert_eq!(p.next_header(), IpProtocol::Icmpv6);
    assert_eq!(p.dst_addr(), "fd00:1::2".parse::<Ipv6Addr>().unwrap());
    let icmp = &out[ipv6::HEADER_LEN..n];
    assert_eq!((icmp[0], icmp[1]), (2, 0));
    assert_eq!(
        u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
        1400
    );
    let pseudo =
        checksum::pseudo_header_v6(&src, &p.dst_addr(), IpProtocol::Icmpv6, icmp.len() as u32);
    assert_eq!(checksum::combine(&[pseudo, checksum::data(icmp)]), 0xffff);
    assert_eq!(&icmp[8..], &orig[..1280 - 48]);
}

#[test]
fn no_packet_too_big_about_an_icmpv6_error() {
    let src: Ipv6Addr = "fd00:1:ffff::1".parse().unwrap();
    let mut out = [0u8; 2048];
    let mut err = udp6(200, IpProtocol::Icmpv6);
    err[ipv6::HEADER_LEN] = 1; // destination unreachable
    assert_eq!(packet_too_big(&err, src, 1280, &mut out), None);
    err[ipv6::HEADER_LEN] = 128; // echo request
    assert!(packet_too_big(&err, src, 1280, &mut out).is_some());
}

/// An IPv6 packet whose fixed header is followed by `chain` (extension headers, each
/// `(its protocol, its bytes)` with the next-header bytes filled in here) and then by
/// `upper` carrying `body`.
fn v6_with_chain(chain: &[(IpProtocol, Vec<u8>)], upper: IpProtocol, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, (_, bytes)) in chain.iter().enumerate() {
        let next = chain.get(i + 1).map_or(upper, |(p, _)| *p);
        let mut h = bytes.clone();
        h[0] = u8::from(next);
        payload.extend_from_slice(&h);
    }
    payload.extend_from_slice(body);
    let first = chain.first().map_or(upper, |(p, _)| *p);
    let mut p = udp6(ipv6::HEADER_LEN + payload.len(), first);
    p[ipv6::HEADER_LEN..].copy_from_slice(&payload);
    p
}

fn dest_opts() -> (IpProtocol, Vec<u8>) {
    // Destination Options, 8 bytes: PadN of 4.
    (IpProtocol::Ipv6Opts, vec![0, 0, 1, 4, 0, 0, 0, 0])
}

fn fragment(offset_units: u16, more: bool) -> (IpProtocol, Vec<u8>) {
    let field = (offset_units << 3) | u16::from(more);
    let f = field.to_be_bytes();
    (
        IpProtocol::Ipv6Frag,
        vec![0, 0, f[0], f[1], 0, 0, 0x12, 0x34],
    )
}

#[test]
fn no_packet_too_big_about_an_icmpv6_error_behind_extension_headers() {
    let src: Ipv6Addr = "fd00:1:ffff::1".parse().unwrap();
    let mut out = [0u8; 2048];
    let error = [1u8, 0, 0, 0, 0, 0, 0, 0]; // destination unreachable
    let echo = [128u8, 0, 0, 0, 0, 0, 0, 0];
    for chain in [
        vec![dest_opts()],
        vec![fragment(0, true)],
        vec![dest_opts(), fragment(0, true), dest_opts()],
    ] {
        let err = v6_with_chain(&chain, IpProtocol::Icmpv6, &error);
        assert_eq!(packet_too_big(&err, src, 1280, &mut out), None, "{chain:?}");
        let req = v6_with_chain(&chain, IpProtocol::Icmpv6, &echo);
        assert!(
            packet_too_big(&req, src, 1280, &mut out).is_some(),
            "an echo request is answered: {chain:?}"
        );
    }
}

#[test]
fn no_packet_too_big_about_a_non_first_fragment() {
    let src: Ipv6Addr = "fd00:1:ffff::1".parse().unwrap();
    let mut out = [0u8; 2048];
    let data = [0x80u8; 64];
    for more in [true, false] {
        let late = v6_with_chain(&[fragment(185, more)], IpProtocol::Udp, &data);
        assert_eq!(packet_too_big(&late, src, 1280, &mut out), None);
        let late = v6_with_chain(&[dest_opts(), fragment(1, more)], IpProtocol::Udp, &data);
        assert_eq!(packet_too_big(&late, src, 1280, &mut out), None);
    }
    // The first fragment is.
    let first = v6_with_chain(&[fragment(0, true)], IpProtocol::Udp, &data);
    assert!(packet_too_big(&first, src, 1280, &mut out).is_some());
    // A chain that cannot be walked says nothing either way: no error is sent.
    let mut broken = v6_with_chain(&[dest_opts()], IpProtocol::Udp, &data);
    broken[ipv6::HEADER_LEN + 1] = 200; // header length far past the packet
    assert_eq!(packet_too_big(&broken, src, 1280, &mut out), None);
}

#[test]
fn no_frag_needed_about_a_packet_to_a_group_or_broadcast() {
    let src = Ipv4Addr::new(10, 1, 255, 1);
    let mut out = [0u8; 2048];
    for dst in [
        Ipv4Addr::new(224, 0, 0, 251),
        Ipv4Addr::new(239, 1, 2, 3),
        Ipv4Addr::BROADCAST,
    ] {
        let mut p = udp4(1500);
        {
            let mut h = ipv4::Packet::new_unchecked(&mut p[..]);
            h.set_dst_addr(dst);
            h.fill_checksum();
        }
        assert_eq!(frag_needed(&p, src, 1431, &mut out), None, "{dst}");
    }
}

#[test]
fn too_big_answers_each_version_from_its_own_source() {
    let source = ErrorSource {
        v4: Some(Ipv4Addr::new(10, 1, 255, 1)),
        v6: Some("fd00:1:ffff::1".parse().unwrap()),
    };
    let mut out = [0u8; 2048];
    let n = too_big(&udp4(1500), &source, 1431, &mut out).unwrap();
    let p = ipv4::Packet::new_checked(&out[..n]).unwrap();
    assert_eq!(p.src_addr(), Ipv4Addr::new(10, 1, 255, 1));
    assert_eq!(&p.payload()[..2], &[3, 4]);
    assert_eq!(&p.payload()[6..8], &1431u16.to_be_bytes());
    // An MTU past 16 bits says as much as the field holds.
    let n = too_big(&udp4(1500), &source, 70_000, &mut out).unwrap();
    assert_eq!(
        &out[ipv4::HEADER_LEN + 6..ipv4::HEADER_LEN + 8],
        &[0xff, 0xff]
    );
    assert!(n > 0);
    let n = too_big(&udp6(1500, IpProtocol::Udp), &source, 1431, &mut out).unwrap();
    let p = ipv6::Packet::new_checked(&out[..n]).unwrap();
    assert_eq!(p.src_addr(), source.v6.unwrap());
    assert_eq!(&p.payload()[..1], &[2]);
    assert_eq!(&p.payload()[4..8], &1431u32.to_be_bytes());
    // No address of the packet's family to send from, or not IP: nothing.
    let v4_only = ErrorSource { v6: None, ..source };
    assert_eq!(
        too_big(&udp6(1500, IpProtocol::Udp), &v4_only, 1431, &mut out),
        None
    );
    assert_eq!(too_big(&[0x50; 100], &source, 1431, &mut out), None);
    assert_eq!(too_big(&[], &source, 1431, &mut out), None);
}

#[test]
fn rate_limit_allows_a_burst_then_refills() {
    let mut r = RateLimit::new(10, 3);
    let t0 = Instant::now();
    assert!(r.allow(t0) && r.allow(t0) && r.allow(t0));
    assert!(!r.allow(t0), "burst exhausted");
    assert!(
        r.allow(t0 + Duration::from_millis(150)),
        "one token back after 100 ms"
    );
    assert!(!r.allow(t0 + Duration::from_millis(150)));
}

#[test]
fn error_source_takes_the_first_of_each_family() {
    let s = ErrorSource::from_candidates([
        "fd00::1".parse().unwrap(),
        "10.0.0.1".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
    ]);
    assert_eq!(s.v4, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(s.v6, Some("fd00::1".parse().unwrap()));
}

proptest::proptest! {
    #[test]
    fn any_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1600), mtu in 0u16..9000) {
        let mut out = [0u8; 2048];
        if let Some(n) = frag_needed(&data, Ipv4Addr::new(10, 0, 0, 1), mtu, &mut out) {
            proptest::prop_assert!(n <= 576);
        }
        if let Some(n) = packet_too_big(&data, "fd00::1".parse().unwrap(), u32::from(mtu), &mut out) {
            proptest::prop_assert!(n <= 1280);
        }
        // Too small an output buffer is refused, not overrun.
        let mut tiny = [0u8; 10];
        proptest::prop_assert!(frag_needed(&data, Ipv4Addr::new(10, 0, 0, 1), mtu, &mut tiny).is_none());
    }
}
