//! Message-level tests: captured strongSwan 5.9.8 messages, hostile chains, proptests.

use super::*;

#[test]
fn placeholder_chain() {
    let msg = Message {
        spi_i: 1,
        spi_r: 0,
        exchange_type: ExchangeType::IkeSaInit,
        flags: Flags {
            initiator: true,
            ..Flags::default()
        },
        message_id: 0,
        payloads: vec![Payload::Nonce(nonce::Repr { data: vec![1; 32] })],
    };
    let bytes = msg.to_bytes().unwrap();
    assert_eq!(Message::parse(&bytes).unwrap(), msg);
}
