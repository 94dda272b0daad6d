//! IPv4: the checked view and every accessor, checksum verification, and Repr
//! parse→emit→parse.
#![no_main]

use espo_ipsec::wire::ipv4::{HEADER_LEN, Packet, Repr};
use espo_ipsec::wire::{ChecksumCaps, checksum};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let _ = (
        packet.version(),
        packet.tos(),
        packet.dscp(),
        packet.ecn(),
        packet.ident(),
        packet.dont_frag(),
        packet.more_frags(),
        packet.frag_offset(),
        packet.hop_limit(),
        packet.next_header(),
        packet.checksum(),
        packet.src_addr(),
        packet.dst_addr(),
    );
    let header_len = packet.header_len();
    assert_eq!(packet.options().len(), header_len - HEADER_LEN);
    assert_eq!(packet.header().len(), header_len);
    assert_eq!(
        packet.payload().len(),
        usize::from(packet.total_len()) - header_len
    );
    assert_eq!(
        packet.verify_checksum(),
        checksum::data(packet.header()) == 0xffff
    );

    // Parse without verifying the checksum so that fuzzed headers reach emit; the
    // re-parse verifies the checksum emit computed.
    let verified = Repr::parse(&packet, &ChecksumCaps::default());
    if let Ok(repr) = Repr::parse(&packet, &ChecksumCaps::offloaded()) {
        assert_eq!(verified.is_ok(), packet.verify_checksum());
        let caps = ChecksumCaps::default();
        let mut out = vec![0u8; HEADER_LEN + repr.payload_len];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), &caps)
            .expect("a parsed repr emits");
        let again = Packet::new_checked(&out[..]).expect("emitted header checks");
        assert_eq!(Repr::parse(&again, &caps), Ok(repr));
    }
});
