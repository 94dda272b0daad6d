//! UDP encapsulation (RFC 3948): classification of a payload on the encapsulation port.
#![no_main]

use espo_ipsec::wire::esp;
use espo_ipsec::wire::udp_encap::{NON_ESP_MARKER_LEN, Payload, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match classify(data) {
        Ok(Payload::Esp(bytes)) => {
            assert_eq!(bytes, data);
            let packet = esp::Packet::new_checked(bytes).expect("classified ESP has a header");
            assert_ne!(packet.spi(), 0);
        }
        Ok(Payload::Ike(ike)) => assert_eq!(ike.len() + NON_ESP_MARKER_LEN, data.len()),
        Ok(Payload::Keepalive) => assert_eq!(data, [0xff]),
        Err(_) => assert!(data.len() < esp::HEADER_LEN),
    }
});
