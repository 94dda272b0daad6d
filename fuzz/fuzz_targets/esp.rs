//! ESP: the header view and the trailer parser (padding check), with emit_trailer as the
//! inverse of a successful parse.
#![no_main]

use espo_ipsec::wire::esp::{HEADER_LEN, Packet, Repr, TRAILER_LEN, emit_trailer, parse_trailer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = Packet::new_checked(data) {
        let _ = (packet.spi(), packet.sequence_number(), Repr::parse(&packet));
        assert_eq!(packet.payload().len(), data.len() - HEADER_LEN);
    }
    if let Ok(trailer) = parse_trailer(data) {
        assert_eq!(
            trailer.inner_len + trailer.pad_len + TRAILER_LEN,
            data.len()
        );
        let _ = trailer.is_dummy();
        let mut out = data[..trailer.inner_len].to_vec();
        out.resize(data.len(), 0);
        let written = emit_trailer(
            &mut out[trailer.inner_len..],
            trailer.pad_len,
            trailer.next_header,
        )
        .expect("the trailer fits where it was");
        assert_eq!(written, trailer.pad_len + TRAILER_LEN);
        assert_eq!(out, data);
    }
});
