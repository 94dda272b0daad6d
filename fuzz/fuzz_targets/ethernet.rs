//! Ethernet frames: the checked view, the VLAN-tag skip, and Repr emit→parse.
#![no_main]

use espo_ipsec::wire::ethernet::{Frame, HEADER_LEN, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::new_checked(data) else {
        assert!(data.len() < HEADER_LEN);
        return;
    };
    let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
    assert_eq!(frame.payload().len(), data.len() - HEADER_LEN);
    if let Ok((_, offset)) = frame.inner_ethertype() {
        assert!(offset <= data.len());
    }
    let repr = Repr::parse(&frame).expect("a checked frame always parses");
    let mut out = [0u8; HEADER_LEN];
    repr.emit(&mut Frame::new_unchecked(&mut out[..]))
        .expect("buffer fits");
    assert_eq!(out[..], data[..HEADER_LEN]);
});
