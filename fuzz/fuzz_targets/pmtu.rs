//! What the gateway does with an inner packet that does not fit the tunnel: the ICMP errors
//! it builds about it and the fragments it cuts it into, on arbitrary bytes from the TUN
//! device.
#![no_main]

use espo_gateway::{icmp, pmtu};
use espo_ipsec::wire::ipv4;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &[u8])| {
    let (mtu, data) = input;
    let mut out = vec![0u8; 2048];
    if let Some(n) = icmp::frag_needed(data, [10, 0, 0, 1].into(), mtu, &mut out) {
        assert!(n <= 576);
        assert!(ipv4::Packet::new_checked(&out[..n]).is_ok());
    }
    if let Some(n) = icmp::packet_too_big(data, "fd00::1".parse().unwrap(), u32::from(mtu), &mut out) {
        assert!(n <= 1280);
    }
    let _ = pmtu::fit(data, usize::from(mtu % 200), 1500, 1431);
    if let Ok(mut frags) = pmtu::Fragments::new(data, usize::from(mtu)) {
        let p = ipv4::Packet::new_checked(data).unwrap();
        // Each piece sits right after the previous one, from the original's own offset:
        // never wrapped.
        let mut at = usize::from(p.frag_offset());
        while let Some(n) = frags.next_into(&mut out) {
            assert!(n <= usize::from(mtu));
            let piece = ipv4::Packet::new_checked(&out[..n]).unwrap();
            assert_eq!(usize::from(piece.frag_offset()), at);
            at += n - ipv4::HEADER_LEN;
        }
        assert_eq!(
            at,
            usize::from(p.frag_offset()) + usize::from(p.total_len()) - ipv4::HEADER_LEN
        );
    }
});
