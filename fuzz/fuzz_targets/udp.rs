//! UDP: the checked view, checksum verification over both pseudo-headers, and
//! parse→emit→parse with the checksum recomputed.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use espo_ipsec::wire::ChecksumCaps;
use espo_ipsec::wire::udp::{HEADER_LEN, Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let _ = (packet.src_port(), packet.dst_port(), packet.checksum());
    assert_eq!(
        packet.payload().len(),
        usize::from(packet.len()) - HEADER_LEN
    );
    let pairs: [(IpAddr, IpAddr); 2] = [
        (
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(192, 0, 2, 2).into(),
        ),
        (Ipv6Addr::LOCALHOST.into(), Ipv6Addr::UNSPECIFIED.into()),
    ];
    for (src, dst) in pairs {
        let _ = packet.verify_checksum(&src, &dst);
        let caps = ChecksumCaps::offloaded();
        let repr = Repr::parse(&packet, &src, &dst, &caps).expect("unverified parse");
        let mut out = data[..usize::from(packet.len())].to_vec();
        let full = ChecksumCaps::default();
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), &src, &dst, &full)
            .expect("a parsed repr emits");
        let again = Packet::new_checked(&out[..]).expect("emitted datagram checks");
        assert!(again.verify_checksum(&src, &dst));
        assert_eq!(Repr::parse(&again, &src, &dst, &full), Ok(repr));
    }
});
