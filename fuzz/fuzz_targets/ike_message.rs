//! IKEv2 messages: `Message::parse` on hostile bytes, then emit and parse again must agree
//! (and emit twice gives the same bytes); the SK payload located by `sk::locate` is the one
//! the parse found; a decrypted inner chain (first byte: its first payload type) round-trips
//! through `parse_inner` and `chain_to_bytes`.
#![no_main]

use espo_ike::wire::{Message, Payload, PayloadType, chain_to_bytes, parse_inner, sk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::parse(data) {
        let bytes = message.to_bytes().expect("a parsed message emits");
        let again = Message::parse(&bytes).expect("emitted bytes parse");
        assert_eq!(again, message);
        assert_eq!(again.to_bytes().expect("emits again"), bytes);
        match message.payloads.last() {
            Some(Payload::Sk { first, body }) => {
                let located = sk::locate(data).expect("SK located");
                assert_eq!(located.first, *first);
                assert_eq!(&data[located.encrypted.clone()], &body[..]);
                assert_eq!(located.aad.end, located.encrypted.start);
            }
            Some(Payload::Skf(fragment)) => {
                let located = sk::locate(data).expect("SKF located");
                assert_eq!(located.fragment, Some((fragment.number, fragment.total)));
                assert_eq!(&data[located.encrypted.clone()], &fragment.body[..]);
            }
            _ => {}
        }
    }
    if let Some((&first, chain)) = data.split_first() {
        if let Ok(payloads) = parse_inner(PayloadType::from(first), chain) {
            let (first_again, bytes) = chain_to_bytes(&payloads).expect("a parsed chain emits");
            assert_eq!(
                parse_inner(first_again, &bytes).expect("emitted chain parses"),
                payloads
            );
        }
    }
});
