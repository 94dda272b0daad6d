use super::*;
use espo_ipsec::wire::{ChecksumCaps, IpProtocol};
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn packet(len: usize, df: bool) -> Vec<u8> {
    let mut p = vec![0u8; len];
    let repr = ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 1, 0, 2),
        dst_addr: Ipv4Addr::new(10, 2, 0, 2),
        next_header: IpProtocol::Udp,
        payload_len: len - ipv4::HEADER_LEN,
        hop_limit: 64,
        tos: 0,
        dont_frag: df,
        ident: 0x1234,
    };
    repr.emit(
        &mut ipv4::Packet::new_unchecked(&mut p[..]),
        &ChecksumCaps::default(),
    )
    .unwrap();
    for (i, b) in p[ipv4::HEADER_LEN..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    p
}

#[test]
fn tunnel_mtu_subtracts_the_overhead() {
    assert_eq!(tunnel_mtu(1500, 69), 1431);
    assert_eq!(tunnel_mtu(100, 69), MIN_IPV4_MTU);
}

#[test]
fn fit_decides_by_df_and_family() {
    assert_eq!(fit(&packet(1400, true), 69, 1500, 1431), Fit::Fits);
    assert_eq!(fit(&packet(1431, true), 69, 1500, 1431), Fit::Fits);
    assert_eq!(
        fit(&packet(1432, true), 69, 1500, 1431),
        Fit::TooBig { mtu: 1431 }
    );
    assert_eq!(
        fit(&packet(1432, false), 69, 1500, 1431),
        Fit::Fragment { max_len: 1416 }
    );
    // IPv6 (anything that is not IPv4) is never fragmented.
    let mut v6 = vec![0u8; 1500];
    v6[0] = 0x60;
    assert_eq!(fit(&v6, 69, 1500, 1431), Fit::TooBig { mtu: 1431 });
}

/// Reassembles fragments (no overlap handling: they come from `Fragments`).
fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
    let mut payload = Vec::new();
    for f in frags {
        let p = ipv4::Packet::new_checked(&f[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            usize::from(p.frag_offset()),
            payload.len(),
            "fragments are contiguous"
        );
        payload.extend_from_slice(p.payload());
    }
    payload
}

#[test]
fn fragments_cover_the_payload_in_order() {
    let pkt = packet(3000, false);
    let mut f = Fragments::new(&pkt, 1416).unwrap();
    let mut frags = Vec::new();
    let mut buf = [0u8; 2000];
    while let Some(n) = f.next_into(&mut buf) {
        frags.push(buf[..n].to_vec());
    }
    assert_eq!(frags.len(), 3);
    for (i, fr) in frags.iter().enumerate() {
        let p = ipv4::Packet::new_checked(&fr[..]).unwrap();
        assert!(fr.len() <= 1416);
        assert_eq!(p.more_frags(), i < 2);
        assert_eq!(p.ident(), 0x1234);
        if i < 2 {
            assert_eq!(p.payload().len() % 8, 0);
        }
    }
    assert_eq!(reassemble(&frags), pkt[ipv4::HEADER_LEN..]);
}

#[test]
fn fragments_refuse_options_and_tiny_mtus() {
    let mut opt = packet(200, false);
    opt[0] = 0x46;
    assert_eq!(
        Fragments::new(&opt, 100).unwrap_err(),
        FragmentError::Options
    );
    assert_eq!(
        Fragments::new(&packet(200, false), 27).unwrap_err(),
        FragmentError::TooSmall
    );
    assert_eq!(
        Fragments::new(&[1, 2, 3], 500).unwrap_err(),
        FragmentError::Malformed
    );
}

/// `pkt` made a fragment at `offset_bytes` of its original datagram, MF as given.
fn as_fragment(mut pkt: Vec<u8>, offset_bytes: u16, more: bool) -> Vec<u8> {
    let mut p = ipv4::Packet::new_unchecked(&mut pkt[..]);
    p.set_frag_offset(offset_bytes);
    p.set_more_frags(more);
    p.fill_checksum();
    pkt
}

fn all_fragments(pkt: &[u8], max_len: usize) -> Vec<Vec<u8>> {
    let mut f = Fragments::new(pkt, max_len).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Some(n) = f.next_into(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[test]
fn a_late_fragment_is_cut_at_its_own_offset_and_keeps_its_more_fragments_flag() {
    for more in [true, false] {
        let pkt = as_fragment(packet(3000, false), 1480, more);
        let frags = all_fragments(&pkt, 1416);
        assert_eq!(frags.len(), 3);
        let mut expected_offset = 1480;
        for (i, fr) in frags.iter().enumerate() {
            let p = ipv4::Packet::new_checked(&fr[..]).unwrap();
            assert_eq!(usize::from(p.frag_offset()), expected_offset, "{i}");
            let last = i == frags.len() - 1;
            assert_eq!(
                p.more_frags(),
                !last || more,
                "piece {i}, original MF {more}"
            );
            expected_offset += p.payload().len();
        }
        assert_eq!(expected_offset, 1480 + 3000 - ipv4::HEADER_LEN);
    }
}

#[test]
fn pieces_past_the_largest_fragment_offset_are_refused_not_wrapped() {
    // 64000 + 2980 bytes of data: past 65535, where the 13-bit offset (in 8-byte units)
    // and the datagram's 16-bit length end. Fragmenting it would wrap the offsets.
    let pkt = as_fragment(packet(3000, false), 64000, true);
    assert_eq!(
        Fragments::new(&pkt, 1416).unwrap_err(),
        FragmentError::Overflow
    );
    // The largest that fits: the reassembled datagram (header included) is 65535 bytes.
    let data = 65535 - ipv4::HEADER_LEN - 64000;
    let pkt = as_fragment(packet(ipv4::HEADER_LEN + data, false), 64000, false);
    let frags = all_fragments(&pkt, 1416);
    let last = ipv4::Packet::new_checked(&frags.last().unwrap()[..]).unwrap();
    assert_eq!(
        usize::from(last.frag_offset()) + last.payload().len(),
        64000 + data
    );
    let pkt = as_fragment(packet(ipv4::HEADER_LEN + data + 1, false), 64000, false);
    assert_eq!(
        Fragments::new(&pkt, 1416).unwrap_err(),
        FragmentError::Overflow
    );
}

proptest! {
    #[test]
    fn any_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600), max_len in 0usize..2000) {
        let _ = fit(&data, 69, 1500, 1431);
        if let Ok(mut f) = Fragments::new(&data, max_len) {
            let mut buf = vec![0u8; 2048];
            let mut n = 0;
            while f.next_into(&mut buf).is_some() {
                n += 1;
                prop_assert!(n < 10_000);
            }
        }
    }

    #[test]
    fn refragmenting_a_fragment_never_wraps(len in 28usize..9000, max_len in 28usize..2000, units in 0u16..8192, more: bool) {
        let pkt = as_fragment(packet(len, false), units * 8, more);
        let base = usize::from(units) * 8;
        let data = len - ipv4::HEADER_LEN;
        match Fragments::new(&pkt, max_len) {
            Err(e) => prop_assert_eq!(e, FragmentError::Overflow),
            Ok(mut f) => {
                prop_assert!(ipv4::HEADER_LEN + base + data <= 65535);
                let mut buf = vec![0u8; 2048];
                let mut at = base;
                let mut last_more = None;
                while let Some(n) = f.next_into(&mut buf) {
                    let p = ipv4::Packet::new_checked(&buf[..n]).unwrap();
                    prop_assert_eq!(usize::from(p.frag_offset()), at);
                    at += p.payload().len();
                    last_more = Some(p.more_frags());
                }
                prop_assert_eq!(at, base + data);
                prop_assert_eq!(last_more, Some(more));
            }
        }
    }

    #[test]
    fn fragmenting_round_trips(len in 28usize..9000, max_len in 28usize..2000) {
        let pkt = packet(len, false);
        let mut f = Fragments::new(&pkt, max_len).unwrap();
        let mut frags = Vec::new();
        let mut buf = vec![0u8; 2048];
        while let Some(n) = f.next_into(&mut buf) {
            prop_assert!(n <= max_len);
            frags.push(buf[..n].to_vec());
        }
        let last = ipv4::Packet::new_checked(&frags.last().unwrap()[..]).unwrap();
        prop_assert!(!last.more_frags());
        prop_assert_eq!(reassemble(&frags), pkt[ipv4::HEADER_LEN..].to_vec());
    }
}
