//! IPv6: the checked view and every accessor, the extension-header walk, and Repr
//! parse→emit→parse.
#![no_main]

use espo_ipsec::wire::ipv6::{HEADER_LEN, Packet, Repr, walk_extension_headers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let _ = (
        packet.traffic_class(),
        packet.dscp(),
        packet.ecn(),
        packet.flow_label(),
        packet.next_header(),
        packet.hop_limit(),
        packet.src_addr(),
        packet.dst_addr(),
    );
    assert_eq!(packet.payload().len(), usize::from(packet.payload_len()));
    if let Ok(upper) = walk_extension_headers(&packet) {
        assert!(upper.offset >= HEADER_LEN && upper.offset <= packet.total_len());
        assert!(!upper.non_first_fragment || upper.is_fragment);
    }
    let repr = Repr::parse(&packet).expect("a checked packet parses");
    let mut out = vec![0u8; HEADER_LEN + repr.payload_len];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]))
        .expect("a parsed repr emits");
    assert_eq!(out[..HEADER_LEN], data[..HEADER_LEN]);
});
