//! UDP encapsulation of ESP (RFC 3948): what a datagram on the encapsulation port carries.
//!
//! - a single 0xff byte: a NAT-keepalive (§2.3);
//! - four zero bytes (the non-ESP marker) then an IKE message (§2.2);
//! - otherwise an ESP packet, whose first four bytes are its non-zero SPI (§2.1).

use super::{Error, esp};

/// The well-known encapsulation port (IKE NAT traversal).
pub const PORT: u16 = 4500;
/// Length of the non-ESP marker that precedes IKE messages.
pub const NON_ESP_MARKER_LEN: usize = 4;
/// The single payload byte of a NAT-keepalive.
pub const KEEPALIVE: u8 = 0xff;

/// What a UDP payload on the encapsulation port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// An ESP packet, starting with its SPI (the whole UDP payload).
    Esp(&'a [u8]),
    /// An IKE message (the UDP payload after the non-ESP marker).
    Ike(&'a [u8]),
    /// A NAT-keepalive, to be dropped after refreshing NAT state.
    Keepalive,
}

/// Classifies a UDP payload received on the encapsulation port.
///
/// An empty payload, or one of two or three bytes, is `Truncated`; a single byte other
/// than 0xff is `Malformed`; an ESP packet shorter than its header is `Truncated`.
pub fn classify(udp_payload: &[u8]) -> Result<Payload<'_>, Error> {
    match udp_payload {
        [] => Err(Error::Truncated),
        [KEEPALIVE] => Ok(Payload::Keepalive),
        [_] => Err(Error::Malformed),
        [0, 0, 0, 0, ike @ ..] => Ok(Payload::Ike(ike)),
        esp if esp.len() < esp::HEADER_LEN => Err(Error::Truncated),
        esp => Ok(Payload::Esp(esp)),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::{ipv4, udp};
    use proptest::prelude::*;

    // Captured: IPv4 | UDP 4500 -> 4500 (checksum 0) | ESP SPI 0x2002, sequence 1, NULL.
    const UDP_ENCAP_ESP: [u8; 80] = [
        0x45, 0x00, 0x00, 0x50, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0xf6, 0x98, 0xc0, 0x00, 0x02,
        0x01, 0xc0, 0x00, 0x02, 0x02, 0x11, 0x94, 0x11, 0x94, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x00,
        0x20, 0x02, 0x00, 0x00, 0x00, 0x01, 0x45, 0x00, 0x00, 0x29, 0x00, 0x01, 0x00, 0x00, 0x40,
        0x11, 0x66, 0xb3, 0x0a, 0x01, 0x00, 0x05, 0x0a, 0x02, 0x00, 0x09, 0x04, 0x57, 0x08, 0xae,
        0x00, 0x15, 0x93, 0xdb, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x01, 0x01, 0x04,
    ];

    #[test]
    fn classifies_captured_esp_in_udp() {
        let ip = ipv4::Packet::new_checked(&UDP_ENCAP_ESP[..]).unwrap();
        let datagram = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(datagram.dst_port(), PORT);
        let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
        assert!(datagram.verify_checksum(&src, &dst));
        let Ok(Payload::Esp(bytes)) = classify(datagram.payload()) else {
            panic!("not classified as ESP");
        };
        let esp = esp::Packet::new_checked(bytes).unwrap();
        assert_eq!((esp.spi(), esp.sequence_number()), (0x2002, 1));
    }

    #[test]
    fn classifies_ike_and_keepalive() {
        let ike = [0, 0, 0, 0, 0x11, 0x22];
        assert_eq!(classify(&ike), Ok(Payload::Ike(&[0x11, 0x22])));
        assert_eq!(classify(&[0, 0, 0, 0]), Ok(Payload::Ike(&[])));
        assert_eq!(classify(&[0xff]), Ok(Payload::Keepalive));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(classify(&[]), Err(Error::Truncated));
        assert_eq!(classify(&[0x00]), Err(Error::Malformed));
        assert_eq!(classify(&[0xff, 0xff]), Err(Error::Truncated));
        assert_eq!(classify(&[0, 0, 0]), Err(Error::Truncated));
        assert_eq!(classify(&[0, 0, 0, 1, 0, 0, 0]), Err(Error::Truncated));
        assert!(matches!(
            classify(&[0, 0, 0, 1, 0, 0, 0, 1]),
            Ok(Payload::Esp(_))
        ));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            match classify(&bytes) {
                Ok(Payload::Esp(esp)) => {
                    prop_assert!(esp.len() >= esp::HEADER_LEN);
                    prop_assert!(esp[..4] != [0, 0, 0, 0]);
                }
                Ok(Payload::Ike(ike)) => prop_assert_eq!(ike.len() + NON_ESP_MARKER_LEN, bytes.len()),
                Ok(Payload::Keepalive) => prop_assert_eq!(&bytes[..], &[KEEPALIVE][..]),
                Err(_) => prop_assert!(bytes.len() < esp::HEADER_LEN),
            }
        }
    }
}
