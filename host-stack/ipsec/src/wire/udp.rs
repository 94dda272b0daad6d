//! UDP (RFC 768), with the checksum over the IPv4 or IPv6 pseudo-header (RFC 8200 §8.1).

use core::net::IpAddr;

use super::field::{self as f, Field};
use super::{ChecksumCaps, Error, IpProtocol, checksum};

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A zero-copy view of a UDP datagram.
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

    /// Ensures the buffer holds the header and the datagram length it announces, and that
    /// the length covers at least the header. Trailing bytes beyond it are allowed.
    pub fn check_len(&self) -> Result<(), Error> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if buffer_len < len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload, in bytes.
    pub fn len(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0 means "none", allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, bounded by the length field.
    pub fn payload(&self) -> &[u8] {
        f::slice(self.buffer.as_ref(), HEADER_LEN..usize::from(self.len()))
    }

    fn datagram(&self) -> &[u8] {
        f::slice(self.buffer.as_ref(), 0..usize::from(self.len()))
    }

    fn compute_sum(&self, src_addr: &IpAddr, dst_addr: &IpAddr) -> u16 {
        let len = self.len();
        checksum::combine(&[
            checksum::pseudo_header(src_addr, dst_addr, IpProtocol::Udp, u32::from(len)),
            checksum::data(self.datagram()),
        ])
    }

    /// Whether the checksum verifies for this address pair. A zero checksum means "not
    /// computed" and is accepted over IPv4 only; over IPv6 it is invalid (RFC 8200 §8.1).
    pub fn verify_checksum(&self, src_addr: &IpAddr, dst_addr: &IpAddr) -> bool {
        if self.checksum() == 0 {
            return src_addr.is_ipv4() && dst_addr.is_ipv4();
        }
        self.datagram().len() >= HEADER_LEN && self.compute_sum(src_addr, dst_addr) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, port: u16) {
        f::write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, port: u16) {
        f::write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, len_bytes: u16) {
        f::write_u16(self.buffer.as_mut(), field::LENGTH, len_bytes);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        f::write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes and stores the checksum over the pseudo-header, header and payload (a
    /// computed zero is sent as 0xffff, RFC 768).
    pub fn fill_checksum(&mut self, src_addr: &IpAddr, dst_addr: &IpAddr) {
        self.set_checksum(0);
        let value = !self.compute_sum(src_addr, dst_addr);
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }

    /// The payload (bounded by the length field), mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        f::slice_mut(self.buffer.as_mut(), HEADER_LEN..end)
    }
}

/// A validated UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl Repr {
    /// Validates a datagram: the checksum, unless the hardware verified it.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        src_addr: &IpAddr,
        dst_addr: &IpAddr,
        caps: &ChecksumCaps,
    ) -> Result<Repr, Error> {
        packet.check_len()?;
        if caps.udp.rx() && !packet.verify_checksum(src_addr, dst_addr) {
            return Err(Error::BadChecksum);
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()).saturating_sub(HEADER_LEN),
        })
    }

    /// The number of header bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header at the start of the packet's buffer. The payload must already be
    /// in place after the header, because the checksum (computed unless the hardware fills
    /// it; otherwise left zero) covers it. A payload longer than 65527 bytes is `Malformed`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        src_addr: &IpAddr,
        dst_addr: &IpAddr,
        caps: &ChecksumCaps,
    ) -> Result<(), Error> {
        let len = HEADER_LEN
            .checked_add(self.payload_len)
            .and_then(|len| u16::try_from(len).ok())
            .ok_or(Error::Malformed)?;
        if packet.buffer.as_ref().len() < usize::from(len) {
            return Err(Error::BufferTooSmall);
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        if caps.udp.tx() {
            packet.fill_checksum(src_addr, dst_addr);
        } else {
            packet.set_checksum(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    // Captured (IPv4 192.0.2.1 -> 198.51.100.7): UDP 4500 -> 500, checksum 0x092d, "espo!".
    const UDP_IN_V4: [u8; 13] = [
        0x11, 0x94, 0x01, 0xf4, 0x00, 0x0d, 0x09, 0x2d, 0x65, 0x73, 0x70, 0x6f, 0x21,
    ];
    // Captured (IPv6 2001:db8::1 -> 2001:db8::2): UDP 5353 -> 5353, checksum 0xc05e.
    const UDP_IN_V6: [u8; 16] = [
        0x14, 0xe9, 0x14, 0xe9, 0x00, 0x10, 0xc0, 0x5e, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x76,
        0x36,
    ];

    fn v4_pair() -> (IpAddr, IpAddr) {
        (
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(198, 51, 100, 7).into(),
        )
    }

    fn v6_pair() -> (IpAddr, IpAddr) {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        (src.into(), dst.into())
    }

    #[test]
    fn parses_captured_ipv4_datagram() {
        let (src, dst) = v4_pair();
        let packet = Packet::new_checked(&UDP_IN_V4[..]).unwrap();
        assert_eq!((packet.src_port(), packet.dst_port()), (4500, 500));
        assert_eq!((packet.len(), packet.checksum()), (13, 0x092d));
        assert_eq!(packet.payload(), b"espo!");
        assert!(packet.verify_checksum(&src, &dst));
        let other: IpAddr = Ipv4Addr::new(192, 0, 2, 9).into();
        assert!(!packet.verify_checksum(&other, &dst));
        let repr = Repr::parse(&packet, &src, &dst, &ChecksumCaps::default()).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_port: 4500,
                dst_port: 500,
                payload_len: 5
            }
        );
    }

    #[test]
    fn parses_captured_ipv6_datagram() {
        let (src, dst) = v6_pair();
        let packet = Packet::new_checked(&UDP_IN_V6[..]).unwrap();
        assert!(packet.verify_checksum(&src, &dst));
        let mut corrupt = UDP_IN_V6;
        corrupt[15] ^= 1;
        let packet = Packet::new_checked(&corrupt[..]).unwrap();
        assert!(!packet.verify_checksum(&src, &dst));
        assert_eq!(
            Repr::parse(&packet, &src, &dst, &ChecksumCaps::default()),
            Err(Error::BadChecksum)
        );
    }

    #[test]
    fn zero_checksum_is_none_over_ipv4_only() {
        let mut bytes = UDP_IN_V4;
        bytes[6..8].copy_from_slice(&[0, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let (src, dst) = v4_pair();
        assert!(packet.verify_checksum(&src, &dst));
        let (src, dst) = v6_pair();
        assert!(!packet.verify_checksum(&src, &dst));
    }

    #[test]
    fn length_field_bounds_payload() {
        let mut padded = [0u8; 20];
        padded[..13].copy_from_slice(&UDP_IN_V4);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), b"espo!");
        assert_eq!(
            Packet::new_checked(&UDP_IN_V4[..12]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&UDP_IN_V4[..7]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = UDP_IN_V4;
        bytes[5] = 7;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
    }

    #[test]
    fn emit_matches_capture_over_poison() {
        let (src, dst) = v6_pair();
        let mut bytes = [0xa5u8; 16];
        bytes[8..].copy_from_slice(b"hello v6");
        let repr = Repr {
            src_port: 5353,
            dst_port: 5353,
            payload_len: 8,
        };
        let caps = ChecksumCaps::default();
        repr.emit(
            &mut Packet::new_unchecked(&mut bytes[..]),
            &src,
            &dst,
            &caps,
        )
        .unwrap();
        assert_eq!(bytes, UDP_IN_V6);
        let mut short = [0u8; 15];
        let err = repr.emit(
            &mut Packet::new_unchecked(&mut short[..]),
            &src,
            &dst,
            &caps,
        );
        assert_eq!(err, Err(Error::BufferTooSmall));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Payload chosen so the complemented sum is zero: the header alone sums to X, so
        // append the word X makes the whole sum 0xffff and the complement 0.
        let (src, dst) = v4_pair();
        let mut bytes = [0u8; 10];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(1);
        packet.set_dst_port(2);
        packet.set_len(10);
        let partial = checksum::combine(&[
            checksum::pseudo_header(&src, &dst, IpProtocol::Udp, 10),
            checksum::data(&[0, 1, 0, 2, 0, 10, 0, 0]),
        ]);
        packet
            .payload_mut()
            .copy_from_slice(&(!partial).to_be_bytes());
        packet.fill_checksum(&src, &dst);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(&src, &dst));
    }

    proptest! {
        #[test]
        fn repr_round_trips(
            src_port in any::<u16>(),
            dst_port in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            v6 in any::<bool>(),
        ) {
            let (src, dst) = if v6 { v6_pair() } else { v4_pair() };
            let repr = Repr { src_port, dst_port, payload_len: payload.len() };
            let mut bytes = std::vec![0xa5u8; HEADER_LEN];
            bytes.extend_from_slice(&payload);
            let caps = ChecksumCaps::default();
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &src, &dst, &caps).unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(packet.checksum() != 0);
            prop_assert_eq!(Repr::parse(&packet, &src, &dst, &caps), Ok(repr));
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn any_bytes_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..64),
            plausible in any::<bool>(),
        ) {
            if plausible && bytes.len() >= HEADER_LEN {
                let len = u16::try_from(bytes.len()).unwrap();
                bytes[4..6].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let (src, dst) = v4_pair();
                let _ = (packet.src_port(), packet.dst_port(), packet.checksum());
                let _ = packet.verify_checksum(&src, &dst);
                prop_assert_eq!(packet.payload().len(), usize::from(packet.len()) - HEADER_LEN);
                let _ = Repr::parse(&packet, &src, &dst, &ChecksumCaps::default());
            }
        }
    }
}
