//! ARP: the checked view with any address lengths, and for IPv4 over Ethernet Repr
//! parse→emit, which gives back the packet's bytes.
#![no_main]

use espo_ipsec::wire::arp::{ETHERNET_IPV4_LEN, FIXED_LEN, Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let _ = (
        packet.hardware_type(),
        packet.protocol_type(),
        packet.operation(),
    );
    let (hlen, plen) = (
        usize::from(packet.hardware_len()),
        usize::from(packet.protocol_len()),
    );
    assert!(FIXED_LEN + 2 * (hlen + plen) <= data.len());
    assert_eq!(packet.source_hardware_addr().len(), hlen);
    assert_eq!(packet.source_protocol_addr().len(), plen);
    assert_eq!(packet.target_hardware_addr().len(), hlen);
    assert_eq!(packet.target_protocol_addr().len(), plen);
    if let Ok(repr) = Repr::parse(&packet) {
        let mut out = [0u8; ETHERNET_IPV4_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]))
            .expect("the buffer fits");
        assert_eq!(out[..], data[..ETHERNET_IPV4_LEN]);
    }
});
