//! What IPv4 and IPv6 share: protocol numbers (IANA "Assigned Internet Protocol
//! Numbers", used by IPv4's Protocol field, IPv6's Next Header fields, and ESP's and AH's
//! next-header fields), the version nibble ([`Version`]), a view of a packet of either
//! version ([`Packet`]), and the start of a datagram as an ICMP error quotes it
//! ([`Quote`]).
//!
//! Code that handles both versions dispatches once, on [`Version::of`] or on the
//! [`Packet`] enum, and reads the common fields through it.

use core::fmt;
use core::net::IpAddr;

use super::{Error, ipv4, ipv6};

/// An IP protocol number. Numbers espo does not name are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpProtocol {
    /// IPv6 Hop-by-Hop Options (0).
    HopByHop,
    /// ICMP (1).
    Icmp,
    /// IPv4 encapsulated in IP (4).
    Ipv4,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// IPv6 encapsulated in IP (41).
    Ipv6,
    /// IPv6 Routing header (43).
    Ipv6Route,
    /// IPv6 Fragment header (44).
    Ipv6Frag,
    /// Encapsulating Security Payload (50).
    Esp,
    /// Authentication Header (51).
    Ah,
    /// ICMPv6 (58).
    Icmpv6,
    /// No Next Header (59); in ESP, a TFC dummy packet.
    Ipv6NoNxt,
    /// IPv6 Destination Options (60).
    Ipv6Opts,
    /// SCTP (132).
    Sctp,
    /// Any other protocol number.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(value: u8) -> Self {
        match value {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            4 => IpProtocol::Ipv4,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            41 => IpProtocol::Ipv6,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            50 => IpProtocol::Esp,
            51 => IpProtocol::Ah,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            132 => IpProtocol::Sctp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Ipv4 => 4,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6 => 41,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Esp => 50,
            IpProtocol::Ah => 51,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Sctp => 132,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            IpProtocol::HopByHop => "Hop-by-Hop",
            IpProtocol::Icmp => "ICMP",
            IpProtocol::Ipv4 => "IPv4",
            IpProtocol::Tcp => "TCP",
            IpProtocol::Udp => "UDP",
            IpProtocol::Ipv6 => "IPv6",
            IpProtocol::Ipv6Route => "IPv6-Route",
            IpProtocol::Ipv6Frag => "IPv6-Frag",
            IpProtocol::Esp => "ESP",
            IpProtocol::Ah => "AH",
            IpProtocol::Icmpv6 => "ICMPv6",
            IpProtocol::Ipv6NoNxt => "IPv6-NoNxt",
            IpProtocol::Ipv6Opts => "IPv6-Opts",
            IpProtocol::Sctp => "SCTP",
            IpProtocol::Unknown(number) => return write!(f, "protocol {number}"),
        };
        f.write_str(name)
    }
}

/// The IP version of a packet, from the first nibble of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// IPv4 (4).
    Ipv4,
    /// IPv6 (6).
    Ipv6,
}

impl Version {
    /// The version of the IP packet starting at `packet[0]`; `None` when empty or neither
    /// 4 nor 6.
    #[inline]
    pub fn of(packet: &[u8]) -> Option<Version> {
        match packet.first()? >> 4 {
            4 => Some(Version::Ipv4),
            6 => Some(Version::Ipv6),
            _ => None,
        }
    }

    /// The version number (4 or 6).
    pub const fn number(self) -> u8 {
        match self {
            Version::Ipv4 => 4,
            Version::Ipv6 => 6,
        }
    }

    /// The protocol number that announces a packet of this version inside another header
    /// (IPv4 4, IPv6 41): what a tunnel's ESP trailer or AH header carries.
    pub const fn protocol(self) -> IpProtocol {
        match self {
            Version::Ipv4 => IpProtocol::Ipv4,
            Version::Ipv6 => IpProtocol::Ipv6,
        }
    }

    /// The version a protocol number announces; `None` for anything but IPv4 and IPv6.
    pub const fn of_protocol(protocol: IpProtocol) -> Option<Version> {
        match protocol {
            IpProtocol::Ipv4 => Some(Version::Ipv4),
            IpProtocol::Ipv6 => Some(Version::Ipv6),
            _ => None,
        }
    }

    /// The length of this version's header without options or extension headers.
    pub const fn header_len(self) -> usize {
        match self {
            Version::Ipv4 => ipv4::HEADER_LEN,
            Version::Ipv6 => ipv6::HEADER_LEN,
        }
    }

    /// The smallest MTU a link of this version may have (RFC 791: 68; RFC 8200 §5: 1280).
    pub const fn min_mtu(self) -> usize {
        match self {
            Version::Ipv4 => 68,
            Version::Ipv6 => 1280,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Ipv4 => "IPv4",
            Version::Ipv6 => "IPv6",
        })
    }
}

/// A zero-copy view of an IP packet of either version, dispatched on its first nibble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<T: AsRef<[u8]>> {
    /// An IPv4 packet.
    Ipv4(ipv4::Packet<T>),
    /// An IPv6 packet.
    Ipv6(ipv6::Packet<T>),
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer after the `new_checked` of its version: `Truncated` when empty,
    /// `BadVersion` unless the version is 4 or 6, and the version's own checks.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        match Version::of(buffer.as_ref()) {
            Some(Version::Ipv4) => ipv4::Packet::new_checked(buffer).map(Packet::Ipv4),
            Some(Version::Ipv6) => ipv6::Packet::new_checked(buffer).map(Packet::Ipv6),
            None if buffer.as_ref().is_empty() => Err(Error::Truncated),
            None => Err(Error::BadVersion),
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        match self {
            Packet::Ipv4(p) => p.into_inner(),
            Packet::Ipv6(p) => p.into_inner(),
        }
    }

    /// The version.
    pub fn version(&self) -> Version {
        match self {
            Packet::Ipv4(_) => Version::Ipv4,
            Packet::Ipv6(_) => Version::Ipv6,
        }
    }

    /// The source address.
    pub fn src_addr(&self) -> IpAddr {
        match self {
            Packet::Ipv4(p) => IpAddr::V4(p.src_addr()),
            Packet::Ipv6(p) => IpAddr::V6(p.src_addr()),
        }
    }

    /// The destination address.
    pub fn dst_addr(&self) -> IpAddr {
        match self {
            Packet::Ipv4(p) => IpAddr::V4(p.dst_addr()),
            Packet::Ipv6(p) => IpAddr::V6(p.dst_addr()),
        }
    }

    /// The length of the datagram the header announces, header included (IPv4's total
    /// length; IPv6's fixed header plus payload length). Link padding after it is not
    /// counted.
    pub fn total_len(&self) -> usize {
        match self {
            Packet::Ipv4(p) => usize::from(p.total_len()),
            Packet::Ipv6(p) => p.total_len(),
        }
    }

    /// The length of the IP header: IPv4's with its options, IPv6's fixed header (its
    /// extension headers are part of the payload; see `ipv6::walk_extension_headers`).
    pub fn header_len(&self) -> usize {
        match self {
            Packet::Ipv4(p) => p.header_len(),
            Packet::Ipv6(_) => ipv6::HEADER_LEN,
        }
    }

    /// The DS/ECN byte: IPv4's former TOS, IPv6's traffic class.
    pub fn traffic_class(&self) -> u8 {
        match self {
            Packet::Ipv4(p) => p.tos(),
            Packet::Ipv6(p) => p.traffic_class(),
        }
    }

    /// The Differentiated Services Code Point.
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// The Explicit Congestion Notification bits.
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// IPv4's time to live, IPv6's hop limit.
    pub fn hop_limit(&self) -> u8 {
        match self {
            Packet::Ipv4(p) => p.hop_limit(),
            Packet::Ipv6(p) => p.hop_limit(),
        }
    }

    /// IPv4's protocol field; the next header field of IPv6's fixed header (an extension
    /// header's number when one follows).
    pub fn next_header(&self) -> IpProtocol {
        match self {
            Packet::Ipv4(p) => p.next_header(),
            Packet::Ipv6(p) => p.next_header(),
        }
    }

    /// The datagram: header and payload, without trailing link padding.
    pub fn packet_bytes(&self) -> &[u8] {
        match self {
            Packet::Ipv4(p) => p.packet_bytes(),
            Packet::Ipv6(p) => p.packet_bytes(),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the ECN bits, keeping the DSCP; an IPv4 header's checksum is recomputed when
    /// the bits change, so that the header stays valid.
    pub fn set_ecn(&mut self, ecn: u8) {
        match self {
            Packet::Ipv4(p) => {
                if p.ecn() != ecn & 0x03 {
                    p.set_ecn(ecn);
                    p.fill_checksum();
                }
            }
            Packet::Ipv6(p) => p.set_ecn(ecn),
        }
    }

    /// Sets IPv4's time to live or IPv6's hop limit; an IPv4 header's checksum is
    /// recomputed.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        match self {
            Packet::Ipv4(p) => {
                p.set_hop_limit(hop_limit);
                p.fill_checksum();
            }
            Packet::Ipv6(p) => p.set_hop_limit(hop_limit),
        }
    }
}

/// The start of an IP datagram as an ICMP error quotes it (RFC 792, RFC 1812 §4.3.2.3,
/// RFC 4443 §2.4 (c)): its whole IP header, then as much of the rest as the error's sender
/// kept — the datagram itself is usually cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote<'a> {
    /// The quoted datagram's version.
    pub version: Version,
    /// Its source address.
    pub src_addr: IpAddr,
    /// Its destination address.
    pub dst_addr: IpAddr,
    /// Its length as its header announces it (header included).
    pub total_len: usize,
    /// The upper-layer protocol: IPv4's protocol field; for IPv6, where the walk of the
    /// extension headers present in the quote ended.
    pub protocol: IpProtocol,
    /// A fragment other than the first: `payload` is fragment data, not the upper-layer
    /// header.
    pub non_first_fragment: bool,
    /// The upper-layer bytes the quote holds, from the start of that header (at most
    /// what the datagram announces).
    pub payload: &'a [u8],
}

impl<'a> Quote<'a> {
    /// Reads a quoted datagram. The IP header (IPv4 with its options) must be whole,
    /// consistent with its length fields, and of version 4 or 6; IPv6 extension headers
    /// are walked as far as the quote holds them (a chain cut short is `Truncated`).
    pub fn parse(quote: &'a [u8]) -> Result<Quote<'a>, Error> {
        match Version::of(quote) {
            Some(Version::Ipv4) => Self::parse_ipv4(quote),
            Some(Version::Ipv6) => Self::parse_ipv6(quote),
            None if quote.is_empty() => Err(Error::Truncated),
            None => Err(Error::BadVersion),
        }
    }

    fn parse_ipv4(quote: &'a [u8]) -> Result<Quote<'a>, Error> {
        let packet = ipv4::Packet::new_unchecked(quote);
        if quote.len() < ipv4::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = packet.header_len();
        let total_len = usize::from(packet.total_len());
        if header_len < ipv4::HEADER_LEN || total_len < header_len {
            return Err(Error::Malformed);
        }
        let end = total_len.min(quote.len());
        let payload = quote.get(header_len..end).ok_or(Error::Truncated)?;
        Ok(Quote {
            version: Version::Ipv4,
            src_addr: IpAddr::V4(packet.src_addr()),
            dst_addr: IpAddr::V4(packet.dst_addr()),
            total_len,
            protocol: packet.next_header(),
            non_first_fragment: packet.frag_offset() != 0,
            payload,
        })
    }

    fn parse_ipv6(quote: &'a [u8]) -> Result<Quote<'a>, Error> {
        if quote.len() < ipv6::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let packet = ipv6::Packet::new_unchecked(quote);
        let total_len = packet.total_len();
        let data = quote.get(..total_len.min(quote.len())).unwrap_or(quote);
        let upper = ipv6::walk_chain(data, packet.next_header())?;
        Ok(Quote {
            version: Version::Ipv6,
            src_addr: IpAddr::V6(packet.src_addr()),
            dst_addr: IpAddr::V6(packet.dst_addr()),
            total_len,
            protocol: upper.protocol,
            non_first_fragment: upper.non_first_fragment,
            payload: data.get(upper.offset..).unwrap_or(&[]),
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn every_number_round_trips() {
        for number in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(number)), number);
        }
    }

    #[test]
    fn named_numbers_match_iana() {
        let named = [
            (0, IpProtocol::HopByHop),
            (1, IpProtocol::Icmp),
            (4, IpProtocol::Ipv4),
            (6, IpProtocol::Tcp),
            (17, IpProtocol::Udp),
            (41, IpProtocol::Ipv6),
            (43, IpProtocol::Ipv6Route),
            (44, IpProtocol::Ipv6Frag),
            (50, IpProtocol::Esp),
            (51, IpProtocol::Ah),
            (58, IpProtocol::Icmpv6),
            (59, IpProtocol::Ipv6NoNxt),
            (60, IpProtocol::Ipv6Opts),
            (132, IpProtocol::Sctp),
        ];
        for (number, protocol) in named {
            assert_eq!(IpProtocol::from(number), protocol);
        }
        assert_eq!(IpProtocol::from(99), IpProtocol::Unknown(99));
    }

    use crate::wire::ipv4::test::IPV4_UDP;
    use crate::wire::ipv6::ext_test::{IPV6_EXT_TCP, IPV6_FRAG_LATER};
    use proptest::prelude::*;

    #[test]
    fn version_comes_from_the_first_nibble() {
        assert_eq!(Version::of(&IPV4_UDP), Some(Version::Ipv4));
        assert_eq!(Version::of(&IPV6_EXT_TCP), Some(Version::Ipv6));
        assert_eq!(Version::of(&[]), None);
        assert_eq!(Version::of(&[0x50]), None);
        for v in [Version::Ipv4, Version::Ipv6] {
            assert_eq!(Version::of_protocol(v.protocol()), Some(v));
            assert_eq!(Version::of(&[v.number() << 4]), Some(v));
        }
        assert_eq!(Version::of_protocol(IpProtocol::Udp), None);
        assert_eq!(
            (Version::Ipv4.header_len(), Version::Ipv6.header_len()),
            (20, 40)
        );
        assert_eq!(
            (Version::Ipv4.min_mtu(), Version::Ipv6.min_mtu()),
            (68, 1280)
        );
    }

    #[test]
    fn reads_an_ipv4_packet_through_the_common_view() {
        let mut padded = [0u8; 46];
        padded[..33].copy_from_slice(&IPV4_UDP);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.version(), Version::Ipv4);
        assert_eq!(packet.src_addr(), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(packet.dst_addr(), "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!((packet.total_len(), packet.header_len()), (33, 20));
        assert_eq!(
            (packet.traffic_class(), packet.dscp(), packet.ecn()),
            (0xb8, 46, 0)
        );
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.next_header(), IpProtocol::Udp);
        assert_eq!(packet.packet_bytes(), &IPV4_UDP[..]);
    }

    #[test]
    fn reads_an_ipv6_packet_through_the_common_view() {
        let packet = Packet::new_checked(&IPV6_EXT_TCP[..]).unwrap();
        assert_eq!(packet.version(), Version::Ipv6);
        assert_eq!(packet.src_addr(), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(packet.dst_addr(), "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!((packet.total_len(), packet.header_len()), (132, 40));
        assert_eq!((packet.traffic_class(), packet.ecn()), (0xb9, 0b01));
        assert_eq!(packet.hop_limit(), 17);
        assert_eq!(packet.next_header(), IpProtocol::HopByHop);
        assert_eq!(packet.packet_bytes(), &IPV6_EXT_TCP[..]);
    }

    #[test]
    fn refuses_what_is_neither_version_or_too_short() {
        assert_eq!(Packet::new_checked(&[][..]).err(), Some(Error::Truncated));
        let mut bytes = IPV4_UDP;
        bytes[0] = 0x55;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::BadVersion)
        );
        assert_eq!(
            Packet::new_checked(&IPV4_UDP[..30]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&IPV6_EXT_TCP[..100]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn setting_ecn_keeps_the_ipv4_checksum_valid() {
        let mut bytes = IPV4_UDP;
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_ecn(0b00);
        assert_eq!(
            packet.packet_bytes(),
            &IPV4_UDP[..],
            "unchanged bits: no write"
        );
        packet.set_ecn(0b11);
        packet.set_hop_limit(9);
        let Packet::Ipv4(v4) = &packet else {
            panic!("IPv4")
        };
        assert!(v4.verify_checksum());
        assert_eq!(
            (packet.ecn(), packet.dscp(), packet.hop_limit()),
            (0b11, 46, 9)
        );
        let mut bytes = IPV6_EXT_TCP;
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_ecn(0b10);
        assert_eq!(packet.traffic_class(), 0xba);
    }

    #[test]
    fn quotes_are_read_as_far_as_they_go() {
        let quote = Quote::parse(&IPV4_UDP[..28]).unwrap();
        assert_eq!(quote.version, Version::Ipv4);
        assert_eq!(quote.src_addr, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(quote.dst_addr, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!((quote.total_len, quote.protocol), (33, IpProtocol::Udp));
        assert_eq!(quote.payload, &IPV4_UDP[20..28]);
        assert!(!quote.non_first_fragment);
        // A whole datagram with link padding: the payload ends where the datagram does.
        let mut padded = [0u8; 40];
        padded[..33].copy_from_slice(&IPV4_UDP);
        assert_eq!(Quote::parse(&padded).unwrap().payload, &IPV4_UDP[20..]);

        let quote = Quote::parse(&IPV6_EXT_TCP[..116]).unwrap();
        assert_eq!(
            (quote.version, quote.protocol),
            (Version::Ipv6, IpProtocol::Tcp)
        );
        assert_eq!(
            (quote.total_len, quote.payload),
            (132, &IPV6_EXT_TCP[112..116])
        );
        assert_eq!(
            Quote::parse(&IPV6_EXT_TCP[..100]).err(),
            Some(Error::Truncated),
            "the chain cut short"
        );
        let quote = Quote::parse(&IPV6_FRAG_LATER).unwrap();
        assert!(quote.non_first_fragment);
    }

    #[test]
    fn broken_quotes_are_refused() {
        assert_eq!(Quote::parse(&IPV4_UDP[..19]).err(), Some(Error::Truncated));
        assert_eq!(
            Quote::parse(&IPV6_EXT_TCP[..39]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(Quote::parse(&[]).err(), Some(Error::Truncated));
        let mut bytes = IPV4_UDP;
        bytes[0] = 0x44;
        assert_eq!(Quote::parse(&bytes).err(), Some(Error::Malformed), "IHL 4");
        bytes[0] = 0x4f;
        assert_eq!(
            Quote::parse(&bytes).err(),
            Some(Error::Malformed),
            "IHL 15 > length"
        );
        bytes[3] = 100;
        assert_eq!(
            Quote::parse(&bytes[..28]).err(),
            Some(Error::Truncated),
            "IHL 15"
        );
        let mut bytes = IPV4_UDP;
        bytes[3] = 19;
        assert_eq!(
            Quote::parse(&bytes).err(),
            Some(Error::Malformed),
            "length < header"
        );
        bytes[0] = 0x75;
        assert_eq!(Quote::parse(&bytes).err(), Some(Error::BadVersion));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (
                    packet.src_addr(), packet.dst_addr(), packet.dscp(), packet.ecn(),
                    packet.hop_limit(), packet.next_header(),
                );
                prop_assert!(packet.header_len() <= packet.total_len());
                prop_assert_eq!(packet.packet_bytes().len(), packet.total_len());
            }
            if let Ok(quote) = Quote::parse(&bytes) {
                prop_assert!(quote.payload.len() <= bytes.len());
                prop_assert!(quote.payload.len() <= quote.total_len);
            }
        }
    }

    #[test]
    fn displays_names_and_numbers() {
        use std::string::ToString;
        assert_eq!(IpProtocol::Esp.to_string(), "ESP");
        assert_eq!(IpProtocol::Unknown(253).to_string(), "protocol 253");
    }
}
