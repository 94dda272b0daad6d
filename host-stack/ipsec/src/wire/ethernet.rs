//! Ethernet II frames (IEEE 802.3) with up to two 802.1Q / 802.1ad VLAN tags.

use core::fmt;

use super::field::{self as f, Field, Rest};
use super::{Error, Version};

mod field {
    use super::{Field, Rest};

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length of one 802.1Q or 802.1ad tag (TPID is the preceding EtherType; TCI, EtherType).
pub const VLAN_TAG_LEN: usize = 4;
/// The most VLAN tags `Frame::inner_ethertype` skips (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// The six bytes in transmission order.
    pub fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit is set (multicast, including broadcast).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is an individual (unicast) address.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the locally-administered bit is set.
    pub fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// An EtherType. Values espo does not name are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4 (0x0800).
    Ipv4,
    /// IPv6 (0x86dd).
    Ipv6,
    /// ARP (0x0806).
    Arp,
    /// An 802.1Q customer VLAN tag follows (0x8100).
    Vlan,
    /// An 802.1ad service VLAN tag follows (0x88a8).
    QinQ,
    /// Any other EtherType.
    Unknown(u16),
}

impl EtherType {
    /// The EtherType of an IP packet, from its version nibble: IPv6 for 6, IPv4 otherwise.
    pub fn of_ip(packet: &[u8]) -> EtherType {
        match Version::of(packet) {
            Some(Version::Ipv6) => EtherType::Ipv6,
            _ => EtherType::Ipv4,
        }
    }

    /// The two bytes of the EtherType field, network order.
    pub fn to_bytes(self) -> [u8; 2] {
        u16::from(self).to_be_bytes()
    }

    /// Whether this EtherType announces a VLAN tag.
    pub fn is_vlan_tag(self) -> bool {
        matches!(self, EtherType::Vlan | EtherType::QinQ)
    }
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x86dd => EtherType::Ipv6,
            0x0806 => EtherType::Arp,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Arp => 0x0806,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::QinQ => f.write_str("802.1ad"),
            EtherType::Unknown(value) => write!(f, "0x{value:04x}"),
        }
    }
}

/// A zero-copy view of an Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; accessors on a short buffer read zeros.
    pub fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, Error> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Ensures the buffer holds the untagged header.
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

    /// The destination address.
    pub fn dst_addr(&self) -> Address {
        Address(f::read_array(self.buffer.as_ref(), field::DESTINATION))
    }

    /// The source address.
    pub fn src_addr(&self) -> Address {
        Address(f::read_array(self.buffer.as_ref(), field::SOURCE))
    }

    /// The outer EtherType (a VLAN TPID on a tagged frame).
    pub fn ethertype(&self) -> EtherType {
        f::read_u16(self.buffer.as_ref(), field::ETHERTYPE).into()
    }

    /// Everything after the untagged header (a VLAN tag first on a tagged frame).
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD).unwrap_or(&[])
    }

    /// Skips up to `MAX_VLAN_TAGS` 802.1ad/802.1Q tags and returns the EtherType of the
    /// payload and the payload's offset from the start of the frame.
    ///
    /// A tag cut short is `Truncated`; a third tag is `Unsupported`.
    pub fn inner_ethertype(&self) -> Result<(EtherType, usize), Error> {
        let data = self.buffer.as_ref();
        let mut ethertype = self.ethertype();
        let mut offset = HEADER_LEN;
        for _ in 0..MAX_VLAN_TAGS {
            if !ethertype.is_vlan_tag() {
                return Ok((ethertype, offset));
            }
            let tag_end = offset + VLAN_TAG_LEN;
            if data.len() < tag_end {
                return Err(Error::Truncated);
            }
            ethertype = f::read_u16(data, tag_end - 2..tag_end).into();
            offset = tag_end;
        }
        if ethertype.is_vlan_tag() {
            return Err(Error::Unsupported);
        }
        Ok((ethertype, offset))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Address) {
        f::write_bytes(self.buffer.as_mut(), field::DESTINATION, &addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Address) {
        f::write_bytes(self.buffer.as_mut(), field::SOURCE, &addr.0);
    }

    /// Sets the outer EtherType.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        f::write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.into());
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD)
            .unwrap_or(&mut [])
    }
}

/// An untagged Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Address,
    /// Destination address.
    pub dst_addr: Address,
    /// EtherType.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<Repr, Error> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header at the start of the frame's buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) -> Result<(), Error> {
        if frame.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // Captured: 02:00:00:00:00:01 -> 02:00:00:00:00:02, 802.1Q VLAN 100 PCP 5, IPv4/UDP.
    const ETH_VLAN_IPV4: [u8; 51] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00, 0xa0,
        0x64, 0x08, 0x00, 0x45, 0xb8, 0x00, 0x21, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3b, 0xa4,
        0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x11, 0x94, 0x01, 0xf4, 0x00, 0x0d, 0x09,
        0x2d, 0x65, 0x73, 0x70, 0x6f, 0x21,
    ];

    // Captured: broadcast, 802.1ad S-VLAN 10, 802.1Q C-VLAN 20, IPv6/UDP.
    const ETH_QINQ_IPV6: [u8; 71] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0xa8, 0x00,
        0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x09, 0x11, 0x40,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x02, 0x04, 0xd2, 0x00, 0x35, 0x00, 0x09, 0x2e, 0x60, 0x71,
    ];

    #[test]
    fn parses_vlan_tagged_frame() {
        let frame = Frame::new_checked(&ETH_VLAN_IPV4[..]).unwrap();
        assert_eq!(frame.dst_addr(), Address([2, 0, 0, 0, 0, 2]));
        assert_eq!(frame.src_addr(), Address([2, 0, 0, 0, 0, 1]));
        assert_eq!(frame.ethertype(), EtherType::Vlan);
        assert_eq!(frame.inner_ethertype(), Ok((EtherType::Ipv4, 18)));
        assert_eq!(frame.payload()[..2], [0xa0, 0x64]);
    }

    #[test]
    fn parses_qinq_frame() {
        let frame = Frame::new_checked(&ETH_QINQ_IPV6[..]).unwrap();
        assert!(frame.dst_addr().is_broadcast());
        assert_eq!(frame.ethertype(), EtherType::QinQ);
        let (ethertype, offset) = frame.inner_ethertype().unwrap();
        assert_eq!((ethertype, offset), (EtherType::Ipv6, 22));
        assert_eq!(ETH_QINQ_IPV6[offset] >> 4, 6);
    }

    #[test]
    fn untagged_payload_starts_after_header() {
        let mut bytes = [0u8; 20];
        bytes[12..14].copy_from_slice(&[0x08, 0x06]);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.inner_ethertype(), Ok((EtherType::Arp, HEADER_LEN)));
        assert_eq!(frame.payload().len(), 6);
    }

    #[test]
    fn rejects_third_tag_and_truncated_tag() {
        let mut bytes = [0u8; 30];
        bytes[12..14].copy_from_slice(&[0x88, 0xa8]);
        bytes[16..18].copy_from_slice(&[0x81, 0x00]);
        bytes[20..22].copy_from_slice(&[0x81, 0x00]);
        let frame = Frame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.inner_ethertype(), Err(Error::Unsupported));
        let frame = Frame::new_checked(&bytes[..17]).unwrap();
        assert_eq!(frame.inner_ethertype(), Err(Error::Truncated));
        assert_eq!(Frame::new_checked(&bytes[..13]), Err(Error::Truncated));
    }

    #[test]
    fn emit_writes_every_header_byte() {
        let repr = Repr {
            src_addr: Address([2, 0, 0, 0, 0, 1]),
            dst_addr: Address([2, 0, 0, 0, 0, 2]),
            ethertype: EtherType::Vlan,
        };
        let mut bytes = [0xa5u8; HEADER_LEN];
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes[..], ETH_VLAN_IPV4[..HEADER_LEN]);
        let mut short = [0u8; HEADER_LEN - 1];
        assert_eq!(
            repr.emit(&mut Frame::new_unchecked(&mut short[..])),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn address_classes_and_display() {
        let addr = Address([0x03, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
        assert!(addr.is_multicast() && addr.is_local() && !addr.is_unicast());
        assert_eq!(std::format!("{addr}"), "03:00:5e:00:00:fb");
        assert_eq!(std::format!("{}", EtherType::Unknown(0x88cc)), "0x88cc");
    }

    fn any_ethertype() -> impl Strategy<Value = EtherType> {
        any::<u16>().prop_map(EtherType::from)
    }

    proptest! {
        #[test]
        fn repr_round_trips(
            src in any::<[u8; 6]>(),
            dst in any::<[u8; 6]>(),
            ethertype in any_ethertype(),
        ) {
            let repr = Repr { src_addr: Address(src), dst_addr: Address(dst), ethertype };
            let mut bytes = [0xa5u8; HEADER_LEN];
            repr.emit(&mut Frame::new_unchecked(&mut bytes[..])).unwrap();
            let frame = Frame::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(Repr::parse(&frame), Ok(repr));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(frame) = Frame::new_checked(&bytes[..]) {
                let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype(), frame.payload());
                if let Ok((_, offset)) = frame.inner_ethertype() {
                    prop_assert!(offset <= bytes.len());
                }
                prop_assert!(Repr::parse(&frame).is_ok());
            }
        }
    }
}
