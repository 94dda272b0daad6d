//! IPv6 (RFC 8200): the fixed header, and the extension-header walk in `ext`.

use core::net::Ipv6Addr;

use super::field::{self as f, Field};
use super::{Error, IpProtocol};

mod ext;

#[cfg(test)]
pub(crate) use ext::test as ext_test;
pub(crate) use ext::{ExtHeader, is_walked, read_ext_header, walk_chain};
pub use ext::{MAX_EXTENSION_HEADERS, UpperLayer, walk_extension_headers};

mod field {
    use super::Field;

    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors on a short buffer read zeros.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after `check_len` and a version check (`BadVersion` unless 6).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        Ok(packet)
    }

    /// Ensures the buffer holds the fixed header and the payload length it announces;
    /// trailing bytes beyond it (link padding) are allowed. Jumbograms (payload length 0
    /// with a Jumbo option) are not supported and read as an empty payload.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.total_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn first_word(&self) -> u32 {
        f::read_u32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    /// The version field.
    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    /// The traffic class (DSCP and ECN).
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// The Differentiated Services Code Point (upper six bits of the traffic class).
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// The Explicit Congestion Notification bits (lower two bits of the traffic class).
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.first_word() & FLOW_LABEL_MASK
    }

    /// The payload length field: bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The fixed header plus the payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The next header field of the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        f::read_u8(self.buffer.as_ref(), field::NXT_HDR).into()
    }

    /// The hop limit.
    pub fn hop_limit(&self) -> u8 {
        f::read_u8(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(f::read_array::<16>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(f::read_array::<16>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The header and payload, without trailing link padding.
    pub fn packet_bytes(&self) -> &[u8] {
        f::slice(self.buffer.as_ref(), 0..self.total_len())
    }

    /// The payload (extension headers included), bounded by the payload length.
    pub fn payload(&self) -> &[u8] {
        f::slice(self.buffer.as_ref(), HEADER_LEN..self.total_len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_first_word(&mut self, word: u32) {
        f::write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
    }

    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let word = self.first_word() & 0x0fff_ffff;
        self.set_first_word(word | (u32::from(version & 0x0f) << 28));
    }

    /// Sets the traffic class.
    pub fn set_traffic_class(&mut self, traffic_class: u8) {
        let word = self.first_word() & 0xf00f_ffff;
        self.set_first_word(word | (u32::from(traffic_class) << 20));
    }

    /// Sets the DSCP, keeping the ECN bits.
    pub fn set_dscp(&mut self, dscp: u8) {
        let ecn = self.ecn();
        self.set_traffic_class((dscp << 2) | ecn);
    }

    /// Sets the ECN bits, keeping the DSCP.
    pub fn set_ecn(&mut self, ecn: u8) {
        let traffic_class = self.traffic_class();
        self.set_traffic_class((traffic_class & 0xfc) | (ecn & 0x03));
    }

    /// Sets the flow label (the upper 12 bits of `label` are ignored).
    pub fn set_flow_label(&mut self, label: u32) {
        let word = self.first_word() & !FLOW_LABEL_MASK;
        self.set_first_word(word | (label & FLOW_LABEL_MASK));
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len_bytes: u16) {
        f::write_u16(self.buffer.as_mut(), field::LENGTH, len_bytes);
    }

    /// Sets the next header field of the fixed header.
    pub fn set_next_header(&mut self, protocol: IpProtocol) {
        f::write_u8(self.buffer.as_mut(), field::NXT_HDR, protocol.into());
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        f::write_u8(self.buffer.as_mut(), field::HOP_LIMIT, hop_limit);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        f::write_bytes(self.buffer.as_mut(), field::SRC_ADDR, &addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        f::write_bytes(self.buffer.as_mut(), field::DST_ADDR, &addr.octets());
    }

    /// The payload (bounded by the payload length), mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        f::slice_mut(self.buffer.as_mut(), HEADER_LEN..end)
    }
}

/// A validated IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// The next header field of the fixed header.
    pub next_header: IpProtocol,
    /// Payload length in bytes (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Reads the fixed header of a packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// The number of header bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header at the start of the packet's buffer. A payload longer than
    /// 65535 bytes (a jumbogram) or a flow label wider than 20 bits is `Malformed`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), Error> {
        let payload_len = u16::try_from(self.payload_len).map_err(|_| Error::Malformed)?;
        if self.flow_label > FLOW_LABEL_MASK {
            return Err(Error::Malformed);
        }
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        packet.set_first_word((6 << 28) | (u32::from(self.traffic_class) << 20) | self.flow_label);
        packet.set_payload_len(payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // Captured: 2001:db8::1 -> 2001:db8::2, hop limit 64, UDP 5353 -> 5353 "hello v6".
    const IPV6_UDP: [u8; 56] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x14, 0xe9, 0x14, 0xe9, 0x00,
        0x10, 0xc0, 0x5e, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x76, 0x36,
    ];

    fn udp_repr() -> Repr {
        Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: IpProtocol::Udp,
            payload_len: 16,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
    }

    #[test]
    fn parses_captured_packet() {
        let packet = Packet::new_checked(&IPV6_UDP[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.payload_len(), 16);
        assert_eq!(packet.next_header(), IpProtocol::Udp);
        assert_eq!(packet.payload(), &IPV6_UDP[40..]);
        assert_eq!(Repr::parse(&packet), Ok(udp_repr()));
    }

    #[test]
    fn traffic_class_and_flow_label_fields() {
        // First word of a captured packet with traffic class 0xb9 and flow label 0x12345.
        let mut bytes = IPV6_UDP;
        bytes[..4].copy_from_slice(&[0x6b, 0x91, 0x23, 0x45]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.traffic_class(), 0xb9);
        assert_eq!((packet.dscp(), packet.ecn()), (0xb9 >> 2, 0b01));
        assert_eq!(packet.flow_label(), 0x12345);

        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_ecn(0b11);
        assert_eq!(packet.traffic_class(), 0xbb);
        packet.set_dscp(0);
        assert_eq!(packet.traffic_class(), 0b11);
        packet.set_flow_label(0xfff_ffff);
        assert_eq!(packet.flow_label(), 0xf_ffff);
        assert_eq!((packet.version(), packet.traffic_class()), (6, 0b11));
        packet.set_version(4);
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.flow_label(), 0xf_ffff);
    }

    #[test]
    fn rejects_truncation_and_version() {
        assert_eq!(
            Packet::new_checked(&IPV6_UDP[..39]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&IPV6_UDP[..55]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = IPV6_UDP;
        bytes[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::BadVersion)
        );
        let mut padded = [0u8; 64];
        padded[..56].copy_from_slice(&IPV6_UDP);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &IPV6_UDP[40..]);
        assert_eq!(packet.packet_bytes(), &IPV6_UDP[..]);
    }

    #[test]
    fn emit_matches_capture_over_poison() {
        let mut bytes = [0xa5u8; 56];
        bytes[40..].copy_from_slice(&IPV6_UDP[40..]);
        udp_repr()
            .emit(&mut Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes, IPV6_UDP);
    }

    #[test]
    fn emit_rejects_jumbo_wide_label_and_short_buffer() {
        let mut bytes = [0u8; 40];
        let jumbo = Repr {
            payload_len: 65_536,
            ..udp_repr()
        };
        let wide = Repr {
            flow_label: 0x10_0000,
            ..udp_repr()
        };
        assert_eq!(
            jumbo.emit(&mut Packet::new_unchecked(&mut bytes[..])),
            Err(Error::Malformed)
        );
        assert_eq!(
            wide.emit(&mut Packet::new_unchecked(&mut bytes[..])),
            Err(Error::Malformed)
        );
        assert_eq!(
            udp_repr().emit(&mut Packet::new_unchecked(&mut bytes[..39])),
            Err(Error::BufferTooSmall)
        );
    }

    prop_compose! {
        fn any_repr()(
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            protocol in any::<u8>(),
            payload_len in 0usize..=2048,
            hop_limit in any::<u8>(),
            traffic_class in any::<u8>(),
            flow_label in 0u32..=FLOW_LABEL_MASK,
        ) -> Repr {
            Repr {
                src_addr: src.into(),
                dst_addr: dst.into(),
                next_header: protocol.into(),
                payload_len,
                hop_limit,
                traffic_class,
                flow_label,
            }
        }
    }

    proptest! {
        #[test]
        fn repr_round_trips(repr in any_repr()) {
            let mut bytes = std::vec![0xa5u8; HEADER_LEN + repr.payload_len];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..])).unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(Repr::parse(&packet), Ok(repr));
        }

        #[test]
        fn any_bytes_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..96),
            plausible in any::<bool>(),
        ) {
            if plausible && bytes.len() >= HEADER_LEN {
                bytes[0] = 0x60 | (bytes[0] & 0x0f);
                let payload_len = u16::try_from(bytes.len() - HEADER_LEN).unwrap();
                bytes[4..6].copy_from_slice(&payload_len.to_be_bytes());
            }
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (
                    packet.traffic_class(), packet.dscp(), packet.ecn(), packet.flow_label(),
                    packet.next_header(), packet.hop_limit(), packet.src_addr(),
                    packet.dst_addr(),
                );
                prop_assert_eq!(packet.payload().len(), usize::from(packet.payload_len()));
                prop_assert!(Repr::parse(&packet).is_ok());
                let _ = walk_extension_headers(&packet);
            }
        }
    }
}
