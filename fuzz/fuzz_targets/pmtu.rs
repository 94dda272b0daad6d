//! What the gateway does with an inner packet that does not fit the tunnel, as far as the
//! wire formats go: the fragments `ipv4::Fragments` cuts it into (each fits, they follow
//! each other from the original's own offset, never wrapped), and the ICMP "fragmentation
//! needed" / ICMPv6 "packet too big" quoting it (emitted, parsed back, the quote read).
#![no_main]

use std::net::Ipv6Addr;

use espo_ipsec::wire::ip::Quote;
use espo_ipsec::wire::{ChecksumCaps, icmp, icmpv6, ipv4};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (mtu, data) = input;
    let caps = ChecksumCaps::default();
    let quote = &data[..data.len().min(548)];
    let error = icmp::Repr::DstUnreachable {
        reason: icmp::DstUnreachable::FragRequired,
        next_hop_mtu: mtu,
        quote,
    };
    let mut out = vec![0u8; 2048];
    error
        .emit(&mut icmp::Packet::new_unchecked(&mut out[..]), &caps)
        .expect("fits");
    let n = error.buffer_len();
    let back = icmp::Packet::new_checked(&out[..n]).expect("emitted whole");
    assert_eq!(icmp::Repr::parse(&back, &caps), Ok(error));
    if let Ok(q) = Quote::parse(quote) {
        assert!(q.payload.len() <= quote.len());
    }
    let (src, dst): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
    let quote = &data[..data.len().min(1232)];
    let error = icmpv6::Repr::PktTooBig {
        mtu: u32::from(mtu),
        quote,
    };
    error
        .emit(
            &src,
            &dst,
            &mut icmpv6::Packet::new_unchecked(&mut out[..]),
            &caps,
        )
        .expect("fits");
    let back = icmpv6::Packet::new_checked(&out[..error.buffer_len()]).expect("emitted whole");
    assert_eq!(icmpv6::Repr::parse(&src, &dst, &back, &caps), Ok(error));

    if let Ok(mut frags) = ipv4::Fragments::new(data, usize::from(mtu)) {
        let p = ipv4::Packet::new_checked(data).unwrap();
        // Each piece sits right after the previous one, from the original's own offset:
        // never wrapped.
        let mut at = usize::from(p.frag_offset());
        while let Some(n) = frags.next_into(&mut out) {
            assert!(n <= usize::from(mtu));
            let piece = ipv4::Packet::new_checked(&out[..n]).unwrap();
            assert!(piece.verify_checksum());
            assert_eq!(usize::from(piece.frag_offset()), at);
            at += n - ipv4::HEADER_LEN;
        }
        assert_eq!(
            at,
            usize::from(p.frag_offset()) + usize::from(p.total_len()) - ipv4::HEADER_LEN
        );
    }
});
