//! Traffic selectors (RFC 4301 §4.4.1): address prefixes, protocol and port ranges.

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;

/// An address prefix: `10.1.0.0/16`, `2001:db8::/32`, or a bare address (a host prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// A prefix; host bits of `addr` must be zero.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Cidr, String> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(format!("prefix length {prefix_len} is longer than {max}"));
        }
        let cidr = Cidr { addr, prefix_len };
        if cidr.network() != addr {
            return Err(format!(
                "{addr}/{prefix_len} has host bits set (did you mean {}/{prefix_len}?)",
                cidr.network()
            ));
        }
        Ok(cidr)
    }

    pub fn any_v4() -> Cidr {
        Cidr {
            addr: IpAddr::from([0u8; 4]),
            prefix_len: 0,
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - self.prefix_len as u32)
                    .unwrap_or(0);
                IpAddr::from((u32::from(a) & mask).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - self.prefix_len as u32)
                    .unwrap_or(0);
                IpAddr::from((u128::from(a) & mask).to_be_bytes())
            }
        }
    }

    /// Whether `ip` lies inside the prefix (addresses of the other family never do).
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - self.prefix_len as u32)
                    .unwrap_or(0);
                (u32::from(ip) ^ u32::from(net)) & mask == 0
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - self.prefix_len as u32)
                    .unwrap_or(0);
                (u128::from(ip) ^ u128::from(net)) & mask == 0
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .map_err(|_| format!("`{l}` is not a prefix length (0..={max})"))?,
        };
        Cidr::new(addr, prefix_len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// An inclusive port range; `0-65535` matches any port and also packets without ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange {
        low: 0,
        high: u16::MAX,
    };

    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }

    /// A packet without ports (ICMP, a non-first fragment) matches only the `ANY` range:
    /// RFC 4301's OPAQUE value.
    #[inline]
    pub fn matches(&self, port: Option<u16>) -> bool {
        match port {
            Some(p) => self.low <= p && p <= self.high,
            None => self.is_any(),
        }
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        let s = s.trim();
        if s == "any" {
            return Ok(PortRange::ANY);
        }
        let num = |t: &str| {
            t.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{t}` is not a port number (0..=65535)"))
        };
        let (low, high) = match s.split_once('-') {
            Some((l, h)) => (num(l)?, num(h)?),
            None => {
                let p = num(s)?;
                (p, p)
            }
        };
        if low > high {
            return Err(format!("port range {low}-{high} is empty"));
        }
        Ok(PortRange { low, high })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// Which next-layer protocol a selector matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolSelector {
    Any,
    /// An IP protocol number (1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6, ...).
    Number(u8),
}

impl ProtocolSelector {
    #[inline]
    pub fn matches(&self, protocol: u8) -> bool {
        match self {
            ProtocolSelector::Any => true,
            ProtocolSelector::Number(n) => *n == protocol,
        }
    }

    /// Whether the protocol carries ports that a port selector can match.
    pub fn has_ports(&self) -> bool {
        matches!(self, ProtocolSelector::Number(6 | 17 | 132 | 136))
    }
}

impl FromStr for ProtocolSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<ProtocolSelector, String> {
        Ok(match s.trim() {
            "any" => ProtocolSelector::Any,
            "icmp" => ProtocolSelector::Number(1),
            "tcp" => ProtocolSelector::Number(6),
            "udp" => ProtocolSelector::Number(17),
            "icmpv6" | "ipv6-icmp" => ProtocolSelector::Number(58),
            "sctp" => ProtocolSelector::Number(132),
            other => ProtocolSelector::Number(other.parse::<u8>().map_err(|_| {
                format!("`{other}` is not a protocol (any, icmp, icmpv6, tcp, udp, sctp or a number 0..=255)")
            })?),
        })
    }
}

impl fmt::Display for ProtocolSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolSelector::Any => f.write_str("any"),
            ProtocolSelector::Number(1) => f.write_str("icmp"),
            ProtocolSelector::Number(6) => f.write_str("tcp"),
            ProtocolSelector::Number(17) => f.write_str("udp"),
            ProtocolSelector::Number(58) => f.write_str("icmpv6"),
            ProtocolSelector::Number(132) => f.write_str("sctp"),
            ProtocolSelector::Number(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.255.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("255.1.2.3".parse().unwrap()));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.prefix_len(), 32);
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let v6: Cidr = "2001:db8:b::/48".parse().unwrap();
        assert!(v6.contains("2001:db8:b:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db8:c::1".parse().unwrap()));
        let any6: Cidr = "::/0".parse().unwrap();
        assert!(any6.contains("fe80::1".parse().unwrap()));
        assert_eq!(v6.to_string(), "2001:db8:b::/48");
    }

    #[test]
    fn cidr_errors_say_what_is_wrong() {
        assert!(
            "10.1.0.1/16"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("host bits")
        );
        assert!(
            "10.1.0.0/33"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("longer than 32")
        );
        assert!(
            "10.1.0/16"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("not an IPv4 or IPv6")
        );
        assert!(
            "::/x"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("prefix length")
        );
    }

    #[test]
    fn ports_and_protocols() {
        let r: PortRange = "1000-2000".parse().unwrap();
        assert!(r.matches(Some(1000)) && r.matches(Some(2000)) && !r.matches(Some(999)));
        assert!(!r.matches(None));
        assert!(PortRange::ANY.matches(None));
        assert_eq!(
            "53".parse::<PortRange>().unwrap(),
            PortRange { low: 53, high: 53 }
        );
        assert!("9-3".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());
        assert_eq!(
            "udp".parse::<ProtocolSelector>().unwrap(),
            ProtocolSelector::Number(17)
        );
        assert_eq!(
            "47".parse::<ProtocolSelector>().unwrap(),
            ProtocolSelector::Number(47)
        );
        assert!(
            "gre"
                .parse::<ProtocolSelector>()
                .unwrap_err()
                .contains("not a protocol")
        );
        assert!(ProtocolSelector::Any.matches(200));
    }
}
