//! ICMPv6 and neighbour discovery: the checked view (addresses of the pseudo-header from
//! the first 32 bytes), Repr parse→emit→parse, the option walk, and the quote of an error
//! read as the start of a datagram.
#![no_main]

use std::net::Ipv6Addr;

use espo_ipsec::wire::icmpv6::{HEADER_LEN, Packet, Repr};
use espo_ipsec::wire::ip::Quote;
use espo_ipsec::wire::{ChecksumCaps, ndisc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: ([u8; 16], [u8; 16], &[u8])| {
    let (src, dst, data) = input;
    let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
    let Ok(packet) = Packet::new_checked(data) else {
        assert!(data.len() < HEADER_LEN);
        return;
    };
    let _ = (
        packet.msg_type().is_error(),
        packet.msg_code(),
        packet.pkt_too_big_mtu(),
        packet.target_addr(),
        packet.neighbor_flags(),
        packet.verify_checksum(&src, &dst),
    );
    let mut walked = 0;
    for option in ndisc::Options::new(packet.options()) {
        match option {
            Ok(o) => walked += o.bytes.len(),
            Err(_) => break,
        }
    }
    assert!(walked <= packet.options().len());
    let caps = ChecksumCaps::default();
    let Ok(repr) = Repr::parse(&src, &dst, &packet, &ChecksumCaps::offloaded()) else {
        return;
    };
    if let Repr::Ndisc(nd) = repr {
        let (ndisc::Repr::NeighborSolicit { target_addr, .. }
        | ndisc::Repr::NeighborAdvert { target_addr, .. }) = nd;
        assert!(!target_addr.is_multicast());
    }
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&src, &dst, &mut Packet::new_unchecked(&mut out[..]), &caps)
        .expect("the buffer fits");
    let emitted = Packet::new_checked(&out[..]).expect("emitted whole");
    assert!(emitted.verify_checksum(&src, &dst));
    assert_eq!(Repr::parse(&src, &dst, &emitted, &caps), Ok(repr));
    if let Repr::DstUnreachable { quote, .. }
    | Repr::PktTooBig { quote, .. }
    | Repr::TimeExceeded { quote, .. } = repr
        && let Ok(q) = Quote::parse(quote)
    {
        assert!(q.payload.len() <= quote.len() && q.payload.len() <= q.total_len);
    }
});
