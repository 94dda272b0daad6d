//! The Traffic Selector payloads TSi and TSr (RFC 7296 §3.13), read into espo's
//! [`TsRange`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codec::Reader;
use super::{Error, TsType};
use crate::ts::TsRange;

const V4_SELECTOR_LEN: usize = 16;
const V6_SELECTOR_LEN: usize = 40;

/// A TS payload: one or more selectors, each of one address family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub selectors: Vec<TsRange>,
}

impl Repr {
    /// Parses a TS payload. Selector types other than IPv4 and IPv6 address ranges are
    /// refused (`InvalidValue`).
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let count = reader.u8()? as usize;
        let _reserved = reader.take(3)?;
        if count == 0 {
            return Err(Error::InvalidValue);
        }
        let mut selectors = Vec::with_capacity(count);
        for _ in 0..count {
            let ts_type = TsType::from(reader.u8()?);
            let protocol = reader.u8()?;
            let length = reader.u16()? as usize;
            let expected = match ts_type {
                TsType::Ipv4AddrRange => V4_SELECTOR_LEN,
                TsType::Ipv6AddrRange => V6_SELECTOR_LEN,
                TsType::Unknown(_) => return Err(Error::InvalidValue),
            };
            if length != expected {
                return Err(Error::Malformed);
            }
            let start_port = reader.u16()?;
            let end_port = reader.u16()?;
            let (start, end) = if ts_type == TsType::Ipv4AddrRange {
                (
                    IpAddr::V4(Ipv4Addr::from(reader.array::<4>()?)),
                    IpAddr::V4(Ipv4Addr::from(reader.array::<4>()?)),
                )
            } else {
                (
                    IpAddr::V6(Ipv6Addr::from(reader.array::<16>()?)),
                    IpAddr::V6(Ipv6Addr::from(reader.array::<16>()?)),
                )
            };
            selectors.push(TsRange {
                protocol,
                start_port,
                end_port,
                start,
                end,
            });
        }
        if !reader.is_empty() {
            return Err(Error::Malformed);
        }
        Ok(Repr { selectors })
    }

    pub fn buffer_len(&self) -> usize {
        4 + self
            .selectors
            .iter()
            .map(|s| {
                if s.start.is_ipv4() {
                    V4_SELECTOR_LEN
                } else {
                    V6_SELECTOR_LEN
                }
            })
            .sum::<usize>()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.selectors.is_empty() {
            return Err(Error::InvalidValue);
        }
        out.push(u8::try_from(self.selectors.len()).map_err(|_| Error::TooMany)?);
        out.extend_from_slice(&[0; 3]);
        for s in &self.selectors {
            let (ts_type, len) = match (s.start, s.end) {
                (IpAddr::V4(_), IpAddr::V4(_)) => (TsType::Ipv4AddrRange, V4_SELECTOR_LEN),
                (IpAddr::V6(_), IpAddr::V6(_)) => (TsType::Ipv6AddrRange, V6_SELECTOR_LEN),
                _ => return Err(Error::InvalidValue),
            };
            out.push(ts_type.into());
            out.push(s.protocol);
            out.extend_from_slice(&(len as u16).to_be_bytes());
            out.extend_from_slice(&s.start_port.to_be_bytes());
            out.extend_from_slice(&s.end_port.to_be_bytes());
            for addr in [s.start, s.end] {
                match addr {
                    IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_round_trip() {
        let repr = Repr {
            selectors: vec![
                TsRange {
                    protocol: 0,
                    start_port: 0,
                    end_port: 65535,
                    start: "10.1.0.0".parse().unwrap(),
                    end: "10.1.255.255".parse().unwrap(),
                },
                TsRange {
                    protocol: 17,
                    start_port: 500,
                    end_port: 500,
                    start: "2001:db8::".parse().unwrap(),
                    end: "2001:db8::ffff".parse().unwrap(),
                },
            ],
        };
        let mut out = Vec::new();
        repr.emit(&mut out).unwrap();
        assert_eq!(out.len(), repr.buffer_len());
        assert_eq!(Repr::parse(&out).unwrap(), repr);
        let mut bad_len = out.clone();
        bad_len[7] = 17;
        assert_eq!(Repr::parse(&bad_len), Err(Error::Malformed));
        let mut bad_count = out;
        bad_count[0] = 1;
        assert_eq!(Repr::parse(&bad_count), Err(Error::Malformed));
    }
}
