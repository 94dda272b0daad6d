//! ICMP (IPv4): the checked view, Repr parse→emit (the same bytes back), and the quote of
//! an error read as the start of a datagram.
#![no_main]

use espo_ipsec::wire::ChecksumCaps;
use espo_ipsec::wire::icmp::{HEADER_LEN, Packet, Repr};
use espo_ipsec::wire::ip::Quote;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = Packet::new_checked(data) else {
        assert!(data.len() < HEADER_LEN);
        return;
    };
    let _ = (
        packet.msg_type().is_error(),
        packet.msg_code(),
        packet.echo_ident(),
        packet.echo_seq_no(),
        packet.next_hop_mtu(),
        packet.verify_checksum(),
    );
    assert_eq!(packet.data().len(), data.len() - HEADER_LEN);
    // Checksums are not what is fuzzed here: the hardware "verified" them.
    let caps = ChecksumCaps::offloaded();
    let Ok(repr) = Repr::parse(&packet, &caps) else {
        return;
    };
    assert_eq!(repr.buffer_len(), data.len());
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]), &caps)
        .expect("the buffer fits");
    // Everything but the checksum (left zero) and the four bytes unused by errors.
    assert_eq!(out[..2], data[..2]);
    assert_eq!(out[HEADER_LEN..], data[HEADER_LEN..]);
    if let Repr::DstUnreachable { quote, .. } | Repr::TimeExceeded { quote, .. } = repr
        && let Ok(q) = Quote::parse(quote)
    {
        assert!(q.payload.len() <= quote.len() && q.payload.len() <= q.total_len);
    }
});
