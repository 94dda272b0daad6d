//! AH: the header view, and mutable-field zeroing of IPv4 headers and IPv6 packets. The
//! first input byte picks the AH offset for the IPv6 case.
#![no_main]

use espo_ipsec::wire::ah::{FIXED_LEN, Packet, Repr, zero_mutable_ipv4, zero_mutable_ipv6};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if let Ok(packet) = Packet::new_checked(rest) {
        let _ = (packet.next_header(), packet.reserved(), packet.spi());
        let _ = packet.sequence_number();
        assert_eq!(packet.icv().len(), packet.header_len() - FIXED_LEN);
        assert_eq!(packet.payload().len(), rest.len() - packet.header_len());
        for icv_len in [12, 16, 24, 32] {
            let _ = Repr::parse(&packet, icv_len, false);
            let _ = Repr::parse(&packet, icv_len, true);
        }
    }

    let mut copy = rest.to_vec();
    if zero_mutable_ipv4(&mut copy).is_ok() {
        let once = copy.clone();
        zero_mutable_ipv4(&mut copy).expect("zeroing is idempotent");
        assert_eq!(copy, once);
    }

    let ah_offset = 40 + usize::from(selector);
    let mut copy = rest.to_vec();
    if zero_mutable_ipv6(&mut copy, ah_offset).is_ok() {
        assert_eq!(copy[ah_offset..], rest[ah_offset..]);
        assert_eq!(copy[8..40], rest[8..40]);
    }
});
