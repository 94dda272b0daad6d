//! Traffic selectors (RFC 7296 §3.13.1): an address range with an IP protocol and a port
//! range, as a TS payload carries them; their narrowing (§2.9); and their translation into
//! espo's policy selectors, which are prefixes.
//!
//! Addresses of both families are handled as integers (`u128`), so that ranges, their
//! intersection and their cover by prefixes are plain integer arithmetic.

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use espo_ipsec::selector::{Cidr, PortRange, ProtocolSelector};

/// One traffic selector: every packet whose address lies in `start..=end`, whose IP protocol
/// is `protocol` (0: any) and whose port lies in `start_port..=end_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsRange {
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start: IpAddr,
    pub end: IpAddr,
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_int(v4: bool, n: u128) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

impl TsRange {
    /// Every address of one family, every protocol and port.
    pub fn any(v4: bool) -> TsRange {
        let (start, end) = if v4 {
            (
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V4(Ipv4Addr::BROADCAST),
            )
        } else {
            (
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::from(u128::MAX)),
            )
        };
        TsRange {
            protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start,
            end,
        }
    }

    /// The addresses of a prefix, any protocol and port.
    pub fn from_cidr(cidr: Cidr) -> TsRange {
        let v4 = cidr.is_ipv4();
        let bits = if v4 { 32 } else { 128 };
        let host_bits = bits - cidr.prefix_len() as u32;
        let start = to_int(cidr.addr());
        let span = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        TsRange {
            start: cidr.addr(),
            end: from_int(v4, start | span),
            ..TsRange::any(v4)
        }
    }

    /// One address.
    pub fn host(ip: IpAddr) -> TsRange {
        TsRange {
            start: ip,
            end: ip,
            ..TsRange::any(ip.is_ipv4())
        }
    }

    /// The same range with a protocol and ports.
    pub fn with_ports(self, protocol: u8, start_port: u16, end_port: u16) -> TsRange {
        TsRange {
            protocol,
            start_port,
            end_port,
            ..self
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.start.is_ipv4()
    }

    /// Whether it is well formed: one family, start ≤ end for addresses and ports.
    pub fn is_valid(&self) -> bool {
        self.start.is_ipv4() == self.end.is_ipv4()
            && to_int(self.start) <= to_int(self.end)
            && self.start_port <= self.end_port
    }

    /// Whether every packet `other` selects is also selected here.
    pub fn contains(&self, other: &TsRange) -> bool {
        self.intersect(other).as_ref() == Some(other)
    }

    /// The packets both select (§2.9 narrowing of one pair), if any.
    pub fn intersect(&self, other: &TsRange) -> Option<TsRange> {
        if self.is_ipv4() != other.is_ipv4() {
            return None;
        }
        let protocol = match (self.protocol, other.protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        let start = to_int(self.start).max(to_int(other.start));
        let end = to_int(self.end).min(to_int(other.end));
        if start_port > end_port || start > end {
            return None;
        }
        let v4 = self.is_ipv4();
        Some(TsRange {
            protocol,
            start_port,
            end_port,
            start: from_int(v4, start),
            end: from_int(v4, end),
        })
    }

    /// The fewest prefixes that cover exactly the address range.
    pub fn prefixes(&self) -> Vec<Cidr> {
        let v4 = self.is_ipv4();
        let bits: u32 = if v4 { 32 } else { 128 };
        let (mut start, end) = (to_int(self.start), to_int(self.end));
        let mut out = Vec::new();
        loop {
            // The largest aligned block starting at `start` that does not pass `end`.
            let mut size_bits = if start == 0 {
                bits
            } else {
                start.trailing_zeros().min(bits)
            };
            while size_bits > 0 {
                let last = if size_bits >= 128 {
                    u128::MAX
                } else {
                    start + ((1u128 << size_bits) - 1)
                };
                if last <= end {
                    break;
                }
                size_bits -= 1;
            }
            let prefix_len = (bits - size_bits) as u8;
            out.push(
                Cidr::new(from_int(v4, start), prefix_len).expect("aligned block is a prefix"),
            );
            if size_bits >= 128 {
                break;
            }
            let last = start + ((1u128 << size_bits) - 1);
            if last >= end {
                break;
            }
            start = last + 1;
        }
        out
    }

    /// The protocol as an espo policy selector.
    pub fn protocol_selector(&self) -> ProtocolSelector {
        match self.protocol {
            0 => ProtocolSelector::Any,
            n => ProtocolSelector::Number(n),
        }
    }

    /// The ports as an espo policy selector.
    pub fn port_range(&self) -> PortRange {
        PortRange {
            low: self.start_port,
            high: self.end_port,
        }
    }
}

/// The responder's narrowing of an offered list against its configured one (§2.9): every
/// non-empty intersection of a configured selector with an offered one, configured order
/// first, without repeats. Empty: TS_UNACCEPTABLE.
pub fn narrow(configured: &[TsRange], offered: &[TsRange]) -> Vec<TsRange> {
    let mut out: Vec<TsRange> = Vec::new();
    for c in configured {
        for o in offered {
            if let Some(t) = c.intersect(o)
                && !out.contains(&t)
            {
                out.push(t);
            }
        }
    }
    out
}

/// The initiator's check of the responder's answer: every selector it returned lies within
/// one the initiator offered (a responder may narrow, never widen).
pub fn within(offered: &[TsRange], answered: &[TsRange]) -> bool {
    !answered.is_empty()
        && answered
            .iter()
            .all(|a| a.is_valid() && offered.iter().any(|o| o.contains(a)))
}

/// A traffic selector as a connection configures it: a range, or `dynamic` — the address
/// the IKE SA runs on, known only when it is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsSpec {
    Range(TsRange),
    Dynamic {
        protocol: u8,
        start_port: u16,
        end_port: u16,
    },
}

impl TsSpec {
    /// The selector once the IKE SA's own address (for `dynamic`) is known.
    pub fn resolve(&self, own: IpAddr) -> TsRange {
        match *self {
            TsSpec::Range(r) => r,
            TsSpec::Dynamic {
                protocol,
                start_port,
                end_port,
            } => TsRange::host(own).with_ports(protocol, start_port, end_port),
        }
    }
}

/// IP protocols by the names strongSwan's selectors accept.
const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("sctp", 132),
];

/// Ports by service name (the common ones; a number always works).
const SERVICES: &[(&str, u16)] = &[
    ("ssh", 22),
    ("domain", 53),
    ("http", 80),
    ("https", 443),
    ("isakmp", 500),
    ("ipsec-nat-t", 4500),
];

/// strongSwan's selector syntax: `10.1.0.0/16`, `10.1.0.1`, `10.1.0.1-10.1.0.9`, `dynamic`,
/// each with an optional `[protocol/port]`: `[tcp]`, `[tcp/443]`, `[udp/1024-65535]`,
/// `[17/%any]`; ports need a protocol.
impl FromStr for TsSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<TsSpec, String> {
        let s = s.trim();
        let (addr, sel) = match s.find('[') {
            Some(i) => {
                let rest = &s[i + 1..];
                let inner = rest
                    .strip_suffix(']')
                    .ok_or_else(|| format!("`{s}`: `[` without a closing `]` at the end"))?;
                (s[..i].trim(), Some(inner))
            }
            None => (s, None),
        };
        let (protocol, start_port, end_port) = match sel {
            None => (0, 0, u16::MAX),
            Some(sel) => parse_protocol_port(sel).map_err(|e| format!("`{s}`: {e}"))?,
        };
        if addr == "dynamic" {
            return Ok(TsSpec::Dynamic {
                protocol,
                start_port,
                end_port,
            });
        }
        let range = if addr.contains('/') {
            TsRange::from_cidr(addr.parse::<Cidr>()?)
        } else if let Some((a, b)) = addr.split_once('-') {
            let a: IpAddr = a.trim().parse().map_err(|_| {
                format!("`{a}` is not an IPv4 or IPv6 address (in the range `{addr}`)")
            })?;
            let b: IpAddr = b.trim().parse().map_err(|_| {
                format!("`{b}` is not an IPv4 or IPv6 address (in the range `{addr}`)")
            })?;
            let r = TsRange {
                start: a,
                end: b,
                ..TsRange::any(a.is_ipv4())
            };
            if !r.is_valid() {
                return Err(format!(
                    "`{addr}`: a range runs from a lower to a higher address of one family"
                ));
            }
            r
        } else {
            TsRange::host(addr.parse().map_err(|_| {
                format!("`{addr}` is not a prefix, an address, a range or `dynamic`")
            })?)
        };
        Ok(TsSpec::Range(
            range.with_ports(protocol, start_port, end_port),
        ))
    }
}

fn parse_protocol_port(sel: &str) -> Result<(u8, u16, u16), String> {
    let (proto, port) = match sel.split_once('/') {
        Some((p, q)) => (p.trim(), Some(q.trim())),
        None => (sel.trim(), None),
    };
    let protocol = if proto.is_empty() || proto == "%any" {
        0
    } else if let Ok(n) = proto.parse::<u8>() {
        n
    } else {
        PROTOCOLS
            .iter()
            .find(|(name, _)| *name == proto)
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                format!(
                    "unknown protocol `{proto}` (a number, or one of {})",
                    PROTOCOLS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?
    };
    let (start_port, end_port) = match port {
        None | Some("") | Some("%any") => (0, u16::MAX),
        Some(p) => {
            let one = |t: &str| -> Result<u16, String> {
                let t = t.trim();
                t.parse::<u16>()
                    .ok()
                    .or_else(|| SERVICES.iter().find(|(n, _)| *n == t).map(|(_, p)| *p))
                    .ok_or_else(|| format!("`{t}` is not a port (0-65535 or a service name)"))
            };
            match p.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (one(a)?, one(b)?);
                    if a > b {
                        return Err(format!("port range `{p}` runs backwards"));
                    }
                    (a, b)
                }
                None => {
                    let n = one(p)?;
                    (n, n)
                }
            }
        }
    };
    if protocol == 0 && (start_port, end_port) != (0, u16::MAX) {
        return Err("ports need a protocol (e.g. `[tcp/443]`)".into());
    }
    Ok((protocol, start_port, end_port))
}

impl fmt::Display for TsRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.prefixes();
        if p.len() == 1 {
            write!(f, "{}", p[0])?;
        } else {
            write!(f, "{}-{}", self.start, self.end)?;
        }
        if self.protocol != 0 || (self.start_port, self.end_port) != (0, u16::MAX) {
            let name = PROTOCOLS
                .iter()
                .find(|(_, n)| *n == self.protocol)
                .map(|(s, _)| s.to_string())
                .unwrap_or_else(|| self.protocol.to_string());
            match (self.start_port, self.end_port) {
                (0, u16::MAX) => write!(f, "[{name}]")?,
                (a, b) if a == b => write!(f, "[{name}/{a}]")?,
                (a, b) => write!(f, "[{name}/{a}-{b}]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for TsSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsSpec::Range(r) => r.fmt(f),
            TsSpec::Dynamic {
                protocol,
                start_port,
                end_port,
            } => {
                f.write_str("dynamic")?;
                let r = TsRange::any(true).with_ports(*protocol, *start_port, *end_port);
                let s = r.to_string();
                f.write_str(s.strip_prefix("0.0.0.0/0").unwrap_or(""))
            }
        }
    }
}

#[cfg(test)]
mod tests;
