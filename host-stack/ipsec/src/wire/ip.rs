//! IP protocol numbers (IANA "Assigned Internet Protocol Numbers"), shared by IPv4's
//! Protocol field, IPv6's Next Header fields, and the ESP and AH next-header fields.

use core::fmt;

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

    #[test]
    fn displays_names_and_numbers() {
        use std::string::ToString;
        assert_eq!(IpProtocol::Esp.to_string(), "ESP");
        assert_eq!(IpProtocol::Unknown(253).to_string(), "protocol 253");
    }
}
