//! ARP (RFC 826). The view reads any hardware and protocol address lengths; `Repr` is the
//! form for IPv4 over Ethernet, the only one espo speaks.

use core::fmt;
use core::net::Ipv4Addr;

use super::Error;
use super::ethernet::{Address, EtherType};
use super::field::{self as f, Field};

mod field {
    use super::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;

    /// The addresses follow the fixed part; their lengths come from HLEN and PLEN.
    pub const fn sha(hlen: usize, _plen: usize) -> Field {
        8..8 + hlen
    }
    pub const fn spa(hlen: usize, plen: usize) -> Field {
        8 + hlen..8 + hlen + plen
    }
    pub const fn tha(hlen: usize, plen: usize) -> Field {
        8 + hlen + plen..8 + 2 * hlen + plen
    }
    pub const fn tpa(hlen: usize, plen: usize) -> Field {
        8 + 2 * hlen + plen..8 + 2 * hlen + 2 * plen
    }
}

/// Length of the fixed part, before the addresses.
pub const FIXED_LEN: usize = field::OPER.end;
/// Length of an ARP packet for IPv4 over Ethernet.
pub const ETHERNET_IPV4_LEN: usize = FIXED_LEN + 2 * (6 + 4);

/// The hardware type (IANA "Hardware Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hardware {
    /// Ethernet (1).
    Ethernet,
    /// Any other hardware type.
    Unknown(u16),
}

impl From<u16> for Hardware {
    fn from(value: u16) -> Self {
        match value {
            1 => Hardware::Ethernet,
            other => Hardware::Unknown(other),
        }
    }
}

impl From<Hardware> for u16 {
    fn from(value: Hardware) -> Self {
        match value {
            Hardware::Ethernet => 1,
            Hardware::Unknown(other) => other,
        }
    }
}

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Request (1).
    Request,
    /// Reply (2).
    Reply,
    /// Any other operation (RARP, InARP, ...).
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(value: u16) -> Self {
        match value {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Request => f.write_str("request"),
            Operation::Reply => f.write_str("reply"),
            Operation::Unknown(other) => write!(f, "operation {other}"),
        }
    }
}

/// A zero-copy view of an ARP packet.
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

    /// Ensures the buffer holds the fixed part and the four addresses its length fields
    /// announce; trailing bytes (Ethernet padding) are allowed.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < self.addresses_end() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn lens(&self) -> (usize, usize) {
        (
            usize::from(self.hardware_len()),
            usize::from(self.protocol_len()),
        )
    }

    fn addresses_end(&self) -> usize {
        let (hlen, plen) = self.lens();
        field::tpa(hlen, plen).end
    }

    /// The hardware type.
    pub fn hardware_type(&self) -> Hardware {
        f::read_u16(self.buffer.as_ref(), field::HTYPE).into()
    }

    /// The protocol type (an EtherType).
    pub fn protocol_type(&self) -> EtherType {
        f::read_u16(self.buffer.as_ref(), field::PTYPE).into()
    }

    /// The length of a hardware address, in bytes.
    pub fn hardware_len(&self) -> u8 {
        f::read_u8(self.buffer.as_ref(), field::HLEN)
    }

    /// The length of a protocol address, in bytes.
    pub fn protocol_len(&self) -> u8 {
        f::read_u8(self.buffer.as_ref(), field::PLEN)
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        f::read_u16(self.buffer.as_ref(), field::OPER).into()
    }

    /// The sender's hardware address.
    pub fn source_hardware_addr(&self) -> &[u8] {
        let (hlen, plen) = self.lens();
        f::slice(self.buffer.as_ref(), field::sha(hlen, plen))
    }

    /// The sender's protocol address.
    pub fn source_protocol_addr(&self) -> &[u8] {
        let (hlen, plen) = self.lens();
        f::slice(self.buffer.as_ref(), field::spa(hlen, plen))
    }

    /// The target's hardware address.
    pub fn target_hardware_addr(&self) -> &[u8] {
        let (hlen, plen) = self.lens();
        f::slice(self.buffer.as_ref(), field::tha(hlen, plen))
    }

    /// The target's protocol address.
    pub fn target_protocol_addr(&self) -> &[u8] {
        let (hlen, plen) = self.lens();
        f::slice(self.buffer.as_ref(), field::tpa(hlen, plen))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, hardware: Hardware) {
        f::write_u16(self.buffer.as_mut(), field::HTYPE, hardware.into());
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, protocol: EtherType) {
        f::write_u16(self.buffer.as_mut(), field::PTYPE, protocol.into());
    }

    /// Sets the hardware address length (set it before the addresses).
    pub fn set_hardware_len(&mut self, len_bytes: u8) {
        f::write_u8(self.buffer.as_mut(), field::HLEN, len_bytes);
    }

    /// Sets the protocol address length (set it before the addresses).
    pub fn set_protocol_len(&mut self, len_bytes: u8) {
        f::write_u8(self.buffer.as_mut(), field::PLEN, len_bytes);
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, operation: Operation) {
        f::write_u16(self.buffer.as_mut(), field::OPER, operation.into());
    }

    /// Sets the sender's hardware address (dropped unless its length is the field's).
    pub fn set_source_hardware_addr(&mut self, addr: &[u8]) {
        let (hlen, plen) = self.lens();
        f::write_bytes(self.buffer.as_mut(), field::sha(hlen, plen), addr);
    }

    /// Sets the sender's protocol address (dropped unless its length is the field's).
    pub fn set_source_protocol_addr(&mut self, addr: &[u8]) {
        let (hlen, plen) = self.lens();
        f::write_bytes(self.buffer.as_mut(), field::spa(hlen, plen), addr);
    }

    /// Sets the target's hardware address (dropped unless its length is the field's).
    pub fn set_target_hardware_addr(&mut self, addr: &[u8]) {
        let (hlen, plen) = self.lens();
        f::write_bytes(self.buffer.as_mut(), field::tha(hlen, plen), addr);
    }

    /// Sets the target's protocol address (dropped unless its length is the field's).
    pub fn set_target_protocol_addr(&mut self, addr: &[u8]) {
        let (hlen, plen) = self.lens();
        f::write_bytes(self.buffer.as_mut(), field::tpa(hlen, plen), addr);
    }
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The operation (other operations than request and reply are kept, not refused).
    pub operation: Operation,
    /// The sender's MAC address.
    pub source_hardware_addr: Address,
    /// The sender's IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// The target's MAC address (zero in a request).
    pub target_hardware_addr: Address,
    /// The target's IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads a checked packet: hardware Ethernet with 6-byte addresses and protocol IPv4
    /// with 4-byte addresses, or `Unsupported` (another hardware or protocol type) or
    /// `Malformed` (Ethernet and IPv4 with other address lengths).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.hardware_type() != Hardware::Ethernet || packet.protocol_type() != EtherType::Ipv4
        {
            return Err(Error::Unsupported);
        }
        if packet.hardware_len() != 6 || packet.protocol_len() != 4 {
            return Err(Error::Malformed);
        }
        let mac = |bytes: &[u8]| <[u8; 6]>::try_from(bytes).map(Address);
        let ipv4 = |bytes: &[u8]| <[u8; 4]>::try_from(bytes).map(Ipv4Addr::from);
        let truncated = |_| Error::Truncated;
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr()).map_err(truncated)?,
            source_protocol_addr: ipv4(packet.source_protocol_addr()).map_err(truncated)?,
            target_hardware_addr: mac(packet.target_hardware_addr()).map_err(truncated)?,
            target_protocol_addr: ipv4(packet.target_protocol_addr()).map_err(truncated)?,
        })
    }

    /// The number of bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet at the start of the buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<(), Error> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        packet.set_hardware_type(Hardware::Ethernet);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr.as_bytes());
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(self.target_hardware_addr.as_bytes());
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // Captured (scapy_vectors.py): who has 192.0.2.2? Tell 192.0.2.1 at 02:00:00:00:00:0a.
    const ARP_REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0xc0,
        0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x02,
    ];

    // Captured: 192.0.2.2 is at 02:00:00:00:00:0b, to 192.0.2.1 at 02:00:00:00:00:0a.
    const ARP_REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, 0xc0,
        0x00, 0x02, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0xc0, 0x00, 0x02, 0x01,
    ];

    const MAC_A: Address = Address([0x02, 0, 0, 0, 0, 0x0a]);
    const MAC_B: Address = Address([0x02, 0, 0, 0, 0, 0x0b]);

    fn request() -> Repr {
        Repr {
            operation: Operation::Request,
            source_hardware_addr: MAC_A,
            source_protocol_addr: Ipv4Addr::new(192, 0, 2, 1),
            target_hardware_addr: Address::default(),
            target_protocol_addr: Ipv4Addr::new(192, 0, 2, 2),
        }
    }

    #[test]
    fn parses_a_captured_request() {
        let packet = Packet::new_checked(&ARP_REQUEST[..]).unwrap();
        assert_eq!(packet.hardware_type(), Hardware::Ethernet);
        assert_eq!(packet.protocol_type(), EtherType::Ipv4);
        assert_eq!((packet.hardware_len(), packet.protocol_len()), (6, 4));
        assert_eq!(packet.operation(), Operation::Request);
        assert_eq!(packet.source_hardware_addr(), MAC_A.as_bytes());
        assert_eq!(packet.source_protocol_addr(), &[192, 0, 2, 1]);
        assert_eq!(packet.target_hardware_addr(), &[0; 6]);
        assert_eq!(packet.target_protocol_addr(), &[192, 0, 2, 2]);
        assert_eq!(Repr::parse(&packet), Ok(request()));
    }

    #[test]
    fn parses_a_captured_reply_with_ethernet_padding() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&ARP_REPLY);
        let repr = Repr::parse(&Packet::new_checked(&padded[..]).unwrap()).unwrap();
        assert_eq!(repr.operation, Operation::Reply);
        assert_eq!(repr.source_hardware_addr, MAC_B);
        assert_eq!(repr.source_protocol_addr, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(repr.target_hardware_addr, MAC_A);
        assert_eq!(repr.target_protocol_addr, Ipv4Addr::new(192, 0, 2, 1));
    }

    #[test]
    fn refuses_short_packets_and_other_address_kinds() {
        for len in 0..ARP_REQUEST.len() {
            assert_eq!(
                Packet::new_checked(&ARP_REQUEST[..len]).err(),
                Some(Error::Truncated),
                "{len}"
            );
        }
        let mut bytes = ARP_REQUEST;
        bytes[1] = 6; // IEEE 802 hardware
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Unsupported));
        let mut bytes = ARP_REQUEST;
        bytes[2..4].copy_from_slice(&[0x86, 0xdd]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::Unsupported));
        // Ethernet and IPv4 announcing 8-byte hardware addresses: longer than the packet.
        let mut bytes = ARP_REQUEST;
        bytes[4] = 8;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
        let mut padded = [0u8; 40];
        padded[..28].copy_from_slice(&bytes);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.source_hardware_addr().len(), 8);
        assert_eq!(Repr::parse(&packet), Err(Error::Malformed));
    }

    #[test]
    fn other_operations_are_kept() {
        let mut bytes = ARP_REQUEST;
        bytes[7] = 3; // RARP request
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr.operation, Operation::Unknown(3));
        assert_eq!(u16::from(repr.operation), 3);
    }

    #[test]
    fn emit_matches_captures_over_poison() {
        let mut bytes = [0xa5u8; 28];
        request()
            .emit(&mut Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes, ARP_REQUEST);
        let reply = Repr {
            operation: Operation::Reply,
            source_hardware_addr: MAC_B,
            source_protocol_addr: Ipv4Addr::new(192, 0, 2, 2),
            target_hardware_addr: MAC_A,
            target_protocol_addr: Ipv4Addr::new(192, 0, 2, 1),
        };
        let mut bytes = [0xa5u8; 28];
        reply
            .emit(&mut Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes, ARP_REPLY);
        let mut short = [0u8; 27];
        assert_eq!(
            reply.emit(&mut Packet::new_unchecked(&mut short[..])),
            Err(Error::BufferTooSmall)
        );
    }

    proptest! {
        #[test]
        fn repr_round_trips(
            op in any::<u16>(),
            sha in any::<[u8; 6]>(),
            spa in any::<[u8; 4]>(),
            tha in any::<[u8; 6]>(),
            tpa in any::<[u8; 4]>(),
        ) {
            let repr = Repr {
                operation: op.into(),
                source_hardware_addr: Address(sha),
                source_protocol_addr: spa.into(),
                target_hardware_addr: Address(tha),
                target_protocol_addr: tpa.into(),
            };
            let mut bytes = [0xa5u8; ETHERNET_IPV4_LEN];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..])).unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(Repr::parse(&packet), Ok(repr));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.hardware_type(), packet.protocol_type(), packet.operation());
                prop_assert_eq!(
                    packet.source_hardware_addr().len(),
                    usize::from(packet.hardware_len())
                );
                prop_assert_eq!(
                    packet.target_protocol_addr().len(),
                    usize::from(packet.protocol_len())
                );
                let _ = Repr::parse(&packet);
            }
        }
    }
}
