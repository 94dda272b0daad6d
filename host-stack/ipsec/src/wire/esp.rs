//! ESP (RFC 4303): the SPI/sequence header, and the trailer (padding, pad length, next
//! header) that ends the plaintext. Encryption and the ICV belong to the transforms.

use super::field::{self as f, Field, Rest};
use super::{Error, IpProtocol};

mod field {
    use super::{Field, Rest};

    pub const SPI: Field = 0..4;
    pub const SEQUENCE: Field = 4..8;
    pub const PAYLOAD: Rest = 8..;
}

/// Length of the ESP header (SPI and sequence number).
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of the fixed part of the trailer (pad length and next header).
pub const TRAILER_LEN: usize = 2;
/// The largest pad length the one-byte field can carry.
pub const MAX_PAD_LEN: usize = 255;

/// A zero-copy view of an ESP packet: header, then IV, ciphertext and ICV as the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors on a short buffer read zeros.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds the ESP header.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Security Parameters Index.
    pub fn spi(&self) -> u32 {
        f::read_u32(self.buffer.as_ref(), field::SPI)
    }

    /// The (low 32 bits of the) sequence number.
    pub fn sequence_number(&self) -> u32 {
        f::read_u32(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// Everything after the header: IV, ciphertext, ICV.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the Security Parameters Index.
    pub fn set_spi(&mut self, spi: u32) {
        f::write_u32(self.buffer.as_mut(), field::SPI, spi);
    }

    /// Sets the (low 32 bits of the) sequence number.
    pub fn set_sequence_number(&mut self, sequence_number: u32) {
        f::write_u32(self.buffer.as_mut(), field::SEQUENCE, sequence_number);
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD)
            .unwrap_or(&mut [])
    }
}

/// A validated ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Security Parameters Index (never 0 on the wire).
    pub spi: u32,
    /// Low 32 bits of the sequence number.
    pub sequence_number: u32,
}

impl Repr {
    /// Reads the header. SPI 0 is reserved and never sent (RFC 4303 §2.1): `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.spi() == 0 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            spi: packet.spi(),
            sequence_number: packet.sequence_number(),
        })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header at the start of the packet's buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), Error> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        packet.set_spi(self.spi);
        packet.set_sequence_number(self.sequence_number);
        Ok(())
    }
}

/// The padding needed after `payload_len` plaintext bytes so that payload, padding and
/// the two trailer bytes end on a multiple of `align` (RFC 4303 §2.4).
///
/// `align` is the cipher's block size, at least 4: 4 for AES-GCM, ChaCha20-Poly1305 and
/// NULL, 16 for AES-CBC. It is clamped to 4..=256 and rounded up to a power of two, so the
/// result always fits the pad-length byte.
pub fn pad_len(payload_len: usize, align: usize) -> usize {
    let align = align.clamp(4, 256).next_power_of_two();
    let used = (payload_len % align + TRAILER_LEN) % align;
    (align - used) % align
}

/// Writes the trailer at the start of `buf`: the default padding 1, 2, 3, ..., the pad
/// length and the next header. Returns the number of bytes written (`pad_len + 2`).
pub fn emit_trailer(
    buf: &mut [u8],
    pad_len: usize,
    next_header: IpProtocol,
) -> Result<usize, Error> {
    let pad_len_byte = u8::try_from(pad_len).map_err(|_| Error::Malformed)?;
    let trailer = buf
        .get_mut(..pad_len + TRAILER_LEN)
        .ok_or(Error::BufferTooSmall)?;
    let (padding, tail) = trailer.split_at_mut(pad_len);
    for (byte, value) in padding.iter_mut().zip(1u8..) {
        *byte = value;
    }
    tail.copy_from_slice(&[pad_len_byte, next_header.into()]);
    Ok(pad_len + TRAILER_LEN)
}

/// The trailer of a decrypted ESP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Length of the protected payload before the padding (the inner packet, plus any TFC
    /// padding that follows it).
    pub inner_len: usize,
    /// The pad length field.
    pub pad_len: usize,
    /// The next header field: the protected payload's protocol.
    pub next_header: IpProtocol,
}

impl Trailer {
    /// Whether this is a TFC dummy packet (next header 59, RFC 4303 §2.6), to be dropped
    /// silently and counted apart from errors.
    pub fn is_dummy(&self) -> bool {
        self.next_header == IpProtocol::Ipv6NoNxt
    }
}

/// Reads the trailer at the end of `plaintext` (the decrypted payload without IV or ICV).
///
/// A pad length that does not fit, or padding that is not the default 1, 2, 3, ...
/// (RFC 4303 §2.4), is `BadPadding`. Call only after the ICV has verified.
pub fn parse_trailer(plaintext: &[u8]) -> Result<Trailer, Error> {
    let (&next_header, rest) = plaintext.split_last().ok_or(Error::Truncated)?;
    let (&pad_len, rest) = rest.split_last().ok_or(Error::Truncated)?;
    let pad_len = usize::from(pad_len);
    let inner_len = rest.len().checked_sub(pad_len).ok_or(Error::BadPadding)?;
    let padding = rest.get(inner_len..).ok_or(Error::BadPadding)?;
    if !padding
        .iter()
        .zip(1u8..)
        .all(|(&byte, expected)| byte == expected)
    {
        return Err(Error::BadPadding);
    }
    Ok(Trailer {
        inner_len,
        pad_len,
        next_header: next_header.into(),
    })
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // Captured: tunnel-mode ESP with NULL encryption and no ICV, SPI 0x1001, sequence 7,
    // outer IPv4 192.0.2.1 -> 192.0.2.2; inner IPv4/UDP of 41 bytes, pad 1, next header 4.
    const ESP_NULL_TUNNEL: [u8; 72] = [
        0x45, 0x00, 0x00, 0x48, 0x00, 0x01, 0x00, 0x00, 0x40, 0x32, 0xf6, 0x7f, 0xc0, 0x00, 0x02,
        0x01, 0xc0, 0x00, 0x02, 0x02, 0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x07, 0x45, 0x00,
        0x00, 0x29, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0xb3, 0x0a, 0x01, 0x00, 0x05, 0x0a,
        0x02, 0x00, 0x09, 0x04, 0x57, 0x08, 0xae, 0x00, 0x15, 0x93, 0xdb, 0x78, 0x78, 0x78, 0x78,
        0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x01, 0x01, 0x04,
    ];
    const ESP_OFFSET: usize = 20;
    const INNER_LEN: usize = 41;

    #[test]
    fn parses_captured_esp() {
        let packet = Packet::new_checked(&ESP_NULL_TUNNEL[ESP_OFFSET..]).unwrap();
        assert_eq!(packet.spi(), 0x1001);
        assert_eq!(packet.sequence_number(), 7);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!((repr.spi, repr.sequence_number), (0x1001, 7));
        let trailer = parse_trailer(packet.payload()).unwrap();
        assert_eq!(
            trailer,
            Trailer {
                inner_len: INNER_LEN,
                pad_len: 1,
                next_header: IpProtocol::Ipv4,
            }
        );
        assert!(!trailer.is_dummy());
        assert_eq!(packet.payload()[0], 0x45);
    }

    #[test]
    fn emit_reproduces_capture_over_poison() {
        let mut bytes = [0xa5u8; 52];
        let repr = Repr {
            spi: 0x1001,
            sequence_number: 7,
        };
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet).unwrap();
        let payload = packet.payload_mut();
        let inner = &ESP_NULL_TUNNEL[ESP_OFFSET + HEADER_LEN..][..INNER_LEN];
        payload[..INNER_LEN].copy_from_slice(inner);
        let pad = pad_len(INNER_LEN, 4);
        let written = emit_trailer(&mut payload[INNER_LEN..], pad, IpProtocol::Ipv4).unwrap();
        assert_eq!((pad, written), (1, 3));
        assert_eq!(bytes[..], ESP_NULL_TUNNEL[ESP_OFFSET..]);
    }

    #[test]
    fn pad_len_aligns_to_four_and_sixteen() {
        assert_eq!(pad_len(0, 4), 2);
        assert_eq!(pad_len(2, 4), 0);
        assert_eq!(pad_len(1420, 4), 2);
        assert_eq!(pad_len(1420, 16), 2);
        assert_eq!(pad_len(14, 16), 0);
        assert_eq!(pad_len(15, 16), 15);
        // Degenerate alignments are raised to 4 and kept within the pad-length byte.
        assert_eq!(pad_len(3, 0), 3);
        assert!(pad_len(1, 1 << 20) <= MAX_PAD_LEN);
    }

    #[test]
    fn rejects_bad_padding() {
        assert_eq!(parse_trailer(&[]), Err(Error::Truncated));
        assert_eq!(parse_trailer(&[4]), Err(Error::Truncated));
        // Pad length 3 but only two bytes before the trailer.
        assert_eq!(parse_trailer(&[1, 2, 3, 4]), Err(Error::BadPadding));
        // Padding not 1, 2, 3.
        assert_eq!(
            parse_trailer(&[0x45, 1, 3, 2, 3, 4]),
            Err(Error::BadPadding)
        );
        assert_eq!(parse_trailer(&[0x45, 0, 0, 2, 4]), Err(Error::BadPadding));
        let trailer = parse_trailer(&[0x45, 1, 2, 3, 3, 4]).unwrap();
        assert_eq!((trailer.inner_len, trailer.pad_len), (1, 3));
        // Everything is padding: an empty inner payload.
        let trailer = parse_trailer(&[1, 2, 2, 41]).unwrap();
        assert_eq!(
            (trailer.inner_len, trailer.next_header),
            (0, IpProtocol::Ipv6)
        );
    }

    #[test]
    fn reports_tfc_dummy_packets() {
        let trailer = parse_trailer(&[0xde, 0xad, 1, 2, 2, 59]).unwrap();
        assert!(trailer.is_dummy());
        assert_eq!(trailer.next_header, IpProtocol::Ipv6NoNxt);
    }

    #[test]
    fn emit_trailer_checks_sizes() {
        let mut buf = [0u8; 4];
        assert_eq!(
            emit_trailer(&mut buf, 3, IpProtocol::Ipv4),
            Err(Error::BufferTooSmall)
        );
        let mut big = [0u8; 300];
        assert_eq!(
            emit_trailer(&mut big, 256, IpProtocol::Ipv4),
            Err(Error::Malformed)
        );
        assert_eq!(
            Packet::new_checked(&[0u8; 7][..]).err(),
            Some(Error::Truncated)
        );
        let zero_spi = Packet::new_checked(&[0u8; 8][..]).unwrap();
        assert_eq!(Repr::parse(&zero_spi), Err(Error::Malformed));
    }

    proptest! {
        #[test]
        fn pad_len_properties(payload_len in 0usize..100_000, wide in any::<bool>()) {
            let align = if wide { 16 } else { 4 };
            let pad = pad_len(payload_len, align);
            prop_assert!(pad < align);
            prop_assert_eq!((payload_len + pad + TRAILER_LEN) % align, 0);
        }

        #[test]
        fn trailer_round_trips(
            inner in proptest::collection::vec(any::<u8>(), 0..300),
            align in prop_oneof![Just(4usize), Just(16)],
            next in any::<u8>(),
        ) {
            let pad = pad_len(inner.len(), align);
            let mut plaintext = inner.clone();
            plaintext.resize(inner.len() + pad + TRAILER_LEN, 0xa5);
            let written = emit_trailer(&mut plaintext[inner.len()..], pad, next.into()).unwrap();
            prop_assert_eq!(written, pad + TRAILER_LEN);
            let trailer = parse_trailer(&plaintext).unwrap();
            prop_assert_eq!(trailer, Trailer {
                inner_len: inner.len(),
                pad_len: pad,
                next_header: next.into(),
            });
        }

        #[test]
        fn repr_round_trips(spi in 1u32.., sequence_number in any::<u32>()) {
            let repr = Repr { spi, sequence_number };
            let mut bytes = [0xa5u8; HEADER_LEN];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..])).unwrap();
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()), Ok(repr));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.spi(), packet.sequence_number(), Repr::parse(&packet));
                prop_assert_eq!(packet.payload().len(), bytes.len() - HEADER_LEN);
            }
            if let Ok(trailer) = parse_trailer(&bytes) {
                prop_assert_eq!(trailer.inner_len + trailer.pad_len + TRAILER_LEN, bytes.len());
            }
        }
    }
}
