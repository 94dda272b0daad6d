//! The IP Authentication Header (RFC 4302), and in `mutable` the zeroing of the fields
//! that may change en route before the ICV is computed over the packet.

use super::field::{self as f, Field};
use super::{Error, IpProtocol};

mod mutable;

pub use mutable::{ipv4_option_is_immutable, zero_mutable_ipv4, zero_mutable_ipv6};

mod field {
    use super::Field;

    pub const NXT_HDR: usize = 0;
    pub const PAYLOAD_LEN: usize = 1;
    pub const RESERVED: Field = 2..4;
    pub const SPI: Field = 4..8;
    pub const SEQUENCE: Field = 8..12;
}

/// Length of the AH header before the Integrity Check Value.
pub const FIXED_LEN: usize = field::SEQUENCE.end;
/// The longest AH header the payload-length byte can describe: (255 + 2) × 4 bytes.
pub const MAX_HEADER_LEN: usize = (255 + 2) * 4;

/// The AH header length for an ICV of `icv_len` bytes: the fixed part plus the ICV, padded
/// to a multiple of 4 bytes over IPv4 and of 8 bytes over IPv6 (RFC 4302 §2.6).
pub fn header_len(icv_len: usize, ipv6: bool) -> usize {
    let align = if ipv6 { 8 } else { 4 };
    FIXED_LEN
        .saturating_add(icv_len)
        .checked_next_multiple_of(align)
        .unwrap_or(usize::MAX)
}

/// A zero-copy view of an AH header and what follows it.
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

    /// Ensures the buffer holds the whole header the payload-length field describes, and
    /// that it covers at least the fixed part.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN {
            return Err(Error::Truncated);
        }
        if self.header_len() < FIXED_LEN {
            return Err(Error::Malformed);
        }
        if len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The protocol of the payload after AH.
    pub fn next_header(&self) -> IpProtocol {
        f::read_u8(self.buffer.as_ref(), field::NXT_HDR).into()
    }

    /// The payload-length field: the AH length in 32-bit words, minus 2.
    pub fn payload_len(&self) -> u8 {
        f::read_u8(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// The AH header length in bytes, ICV and padding included.
    pub fn header_len(&self) -> usize {
        (usize::from(self.payload_len()) + 2) * 4
    }

    /// The reserved field (sent as zero, ignored on receipt).
    pub fn reserved(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::RESERVED)
    }

    /// The Security Parameters Index.
    pub fn spi(&self) -> u32 {
        f::read_u32(self.buffer.as_ref(), field::SPI)
    }

    /// The (low 32 bits of the) sequence number.
    pub fn sequence_number(&self) -> u32 {
        f::read_u32(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// The Integrity Check Value field, with any alignment padding after the ICV.
    pub fn icv(&self) -> &[u8] {
        f::slice(self.buffer.as_ref(), FIXED_LEN..self.header_len())
    }

    /// Everything after the AH header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the next header field.
    pub fn set_next_header(&mut self, protocol: IpProtocol) {
        f::write_u8(self.buffer.as_mut(), field::NXT_HDR, protocol.into());
    }

    /// Sets the raw payload-length field (AH length in 32-bit words, minus 2).
    pub fn set_payload_len(&mut self, value: u8) {
        f::write_u8(self.buffer.as_mut(), field::PAYLOAD_LEN, value);
    }

    /// Sets the reserved field.
    pub fn set_reserved(&mut self, value: u16) {
        f::write_u16(self.buffer.as_mut(), field::RESERVED, value);
    }

    /// Sets the Security Parameters Index.
    pub fn set_spi(&mut self, spi: u32) {
        f::write_u32(self.buffer.as_mut(), field::SPI, spi);
    }

    /// Sets the (low 32 bits of the) sequence number.
    pub fn set_sequence_number(&mut self, sequence_number: u32) {
        f::write_u32(self.buffer.as_mut(), field::SEQUENCE, sequence_number);
    }

    /// The ICV field and its padding, mutably: zero it before computing the ICV, then
    /// write the ICV into its first bytes.
    pub fn icv_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        f::slice_mut(self.buffer.as_mut(), FIXED_LEN..end)
    }

    /// Everything after the AH header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }
}

/// A validated AH header for an SA with a known ICV length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Protocol of the payload after AH.
    pub next_header: IpProtocol,
    /// Security Parameters Index (never 0 on the wire).
    pub spi: u32,
    /// Low 32 bits of the sequence number.
    pub sequence_number: u32,
    /// ICV length in bytes of the SA's integrity algorithm.
    pub icv_len: usize,
    /// Whether AH is carried over IPv6 (8-byte alignment) rather than IPv4 (4-byte).
    pub ipv6: bool,
}

impl Repr {
    /// Reads the header of a packet for an SA whose ICV is `icv_len` bytes. A length field
    /// that disagrees with the SA's ICV length and alignment, or SPI 0, is `Malformed`.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        icv_len: usize,
        ipv6: bool,
    ) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.header_len() != header_len(icv_len, ipv6) || packet.spi() == 0 {
            return Err(Error::Malformed);
        }
        Ok(Repr {
            next_header: packet.next_header(),
            spi: packet.spi(),
            sequence_number: packet.sequence_number(),
            icv_len,
            ipv6,
        })
    }

    /// The number of bytes `emit` writes: the whole header, ICV and padding included.
    pub fn buffer_len(&self) -> usize {
        header_len(self.icv_len, self.ipv6)
    }

    /// Writes the header with the ICV field and padding zeroed, ready for the ICV
    /// computation. An ICV too long for the payload-length byte is `Malformed`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), Error> {
        let len = self.buffer_len();
        if len > MAX_HEADER_LEN {
            return Err(Error::Malformed);
        }
        let payload_len = u8::try_from(len / 4 - 2).map_err(|_| Error::Malformed)?;
        if packet.buffer.as_ref().len() < len {
            return Err(Error::BufferTooSmall);
        }
        packet.set_next_header(self.next_header);
        packet.set_payload_len(payload_len);
        packet.set_reserved(0);
        packet.set_spi(self.spi);
        packet.set_sequence_number(self.sequence_number);
        packet.icv_mut().fill(0);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;
    use proptest::prelude::*;

    // Captured: IPv4 (IHL 12: Router Alert, Record Route, Security, 3 × NOP, EOL padding)
    // | AH (SPI 0x3003, sequence 5, HMAC-SHA-256-128) | inner IPv4/UDP.
    pub(crate) const AH4_OPTIONS: [u8; 117] = [
        0x4c, 0x2e, 0x00, 0x75, 0x00, 0x63, 0x40, 0x00, 0x3d, 0x33, 0x76, 0x2f, 0xc0, 0x00, 0x02,
        0x01, 0xc0, 0x00, 0x02, 0x02, 0x94, 0x04, 0x00, 0x00, 0x07, 0x07, 0x08, 0x0a, 0x09, 0x09,
        0x09, 0x82, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78, 0x78, 0x78, 0x01, 0x01, 0x01,
        0x00, 0x00, 0x00, 0x04, 0x05, 0x00, 0x00, 0x00, 0x00, 0x30, 0x03, 0x00, 0x00, 0x00, 0x05,
        0xe3, 0x65, 0xd2, 0xb3, 0xaf, 0xb0, 0x43, 0xe8, 0x0d, 0x8f, 0x30, 0xb5, 0xb9, 0xbf, 0xf8,
        0x5a, 0x45, 0x00, 0x00, 0x29, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x66, 0xb3, 0x0a, 0x01,
        0x00, 0x05, 0x0a, 0x02, 0x00, 0x09, 0x04, 0x57, 0x08, 0xae, 0x00, 0x15, 0x93, 0xdb, 0x78,
        0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78, 0x78,
    ];
    pub(crate) const AH4_OFFSET: usize = 48;

    #[test]
    fn parses_captured_ipv4_ah() {
        let packet = Packet::new_checked(&AH4_OPTIONS[AH4_OFFSET..]).unwrap();
        assert_eq!(packet.next_header(), IpProtocol::Ipv4);
        assert_eq!((packet.payload_len(), packet.header_len()), (5, 28));
        assert_eq!((packet.spi(), packet.sequence_number()), (0x3003, 5));
        assert_eq!(packet.reserved(), 0);
        assert_eq!(packet.icv(), &AH4_OPTIONS[60..76]);
        assert_eq!(packet.payload()[0], 0x45);
        let repr = Repr::parse(&packet, 16, false).unwrap();
        assert_eq!(
            repr,
            Repr {
                next_header: IpProtocol::Ipv4,
                spi: 0x3003,
                sequence_number: 5,
                icv_len: 16,
                ipv6: false,
            }
        );
        // The same header does not fit an SA with a 12-byte ICV or IPv6 alignment.
        assert_eq!(Repr::parse(&packet, 12, false), Err(Error::Malformed));
        assert_eq!(Repr::parse(&packet, 16, true), Err(Error::Malformed));
    }

    #[test]
    fn header_len_alignment() {
        // HMAC-SHA-256-128, -384-192, -512-256; HMAC-SHA1-96.
        assert_eq!(header_len(16, false), 28);
        assert_eq!(header_len(16, true), 32);
        assert_eq!(header_len(24, false), 36);
        assert_eq!(header_len(24, true), 40);
        assert_eq!(header_len(32, false), 44);
        assert_eq!(header_len(32, true), 48);
        assert_eq!(header_len(12, false), 24);
        assert_eq!(header_len(12, true), 24);
        assert_eq!(header_len(usize::MAX, true), usize::MAX);
    }

    #[test]
    fn emit_matches_capture_with_zero_icv_over_poison() {
        let repr = Repr {
            next_header: IpProtocol::Ipv4,
            spi: 0x3003,
            sequence_number: 5,
            icv_len: 16,
            ipv6: false,
        };
        let mut bytes = [0xa5u8; 28];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(
            bytes[..FIXED_LEN],
            AH4_OPTIONS[AH4_OFFSET..AH4_OFFSET + FIXED_LEN]
        );
        assert_eq!(bytes[FIXED_LEN..], [0u8; 16]);
        let v6 = Repr { ipv6: true, ..repr };
        let mut bytes = [0xa5u8; 32];
        v6.emit(&mut Packet::new_unchecked(&mut bytes[..])).unwrap();
        assert_eq!(bytes[1], 6);
        assert_eq!(bytes[FIXED_LEN..], [0u8; 20]);
        let mut short = [0u8; 31];
        assert_eq!(
            v6.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(Error::BufferTooSmall)
        );
        let huge = Repr {
            icv_len: 1024,
            ..repr
        };
        let mut big = [0u8; 2048];
        assert_eq!(
            huge.emit(&mut Packet::new_unchecked(&mut big[..])),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(
            Packet::new_checked(&[0u8; 11][..]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = [0u8; 12];
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
        bytes[1] = 1;
        assert!(Packet::new_checked(&bytes[..]).is_ok());
        bytes[1] = 2;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
    }

    proptest! {
        #[test]
        fn repr_round_trips(
            next in any::<u8>(),
            spi in 1u32..,
            sequence_number in any::<u32>(),
            icv_len in prop_oneof![Just(12usize), Just(16), Just(24), Just(32), 0usize..64],
            ipv6 in any::<bool>(),
        ) {
            let repr = Repr { next_header: next.into(), spi, sequence_number, icv_len, ipv6 };
            let mut bytes = std::vec![0xa5u8; repr.buffer_len() + 4];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..])).unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(packet.header_len() % if ipv6 { 8 } else { 4 }, 0);
            prop_assert_eq!(Repr::parse(&packet, icv_len, ipv6), Ok(repr));
            prop_assert!(packet.icv().iter().all(|&b| b == 0));
            prop_assert_eq!(packet.payload(), &[0xa5u8; 4][..]);
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.next_header(), packet.reserved(), packet.spi());
                let _ = packet.sequence_number();
                prop_assert_eq!(packet.icv().len(), packet.header_len() - FIXED_LEN);
                prop_assert_eq!(packet.payload().len(), bytes.len() - packet.header_len());
                let _ = Repr::parse(&packet, 16, false);
            }
        }
    }
}
