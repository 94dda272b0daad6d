//! The Configuration payload (RFC 7296 §3.15).

use super::Error;
use super::codec::{Reader, u16_len};

/// Configuration payload types (§3.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CfgType {
    Request,
    Reply,
    Set,
    Ack,
    Unknown(u8),
}

impl From<u8> for CfgType {
    fn from(raw: u8) -> Self {
        match raw {
            1 => CfgType::Request,
            2 => CfgType::Reply,
            3 => CfgType::Set,
            4 => CfgType::Ack,
            other => CfgType::Unknown(other),
        }
    }
}

impl From<CfgType> for u8 {
    fn from(value: CfgType) -> u8 {
        match value {
            CfgType::Request => 1,
            CfgType::Reply => 2,
            CfgType::Set => 3,
            CfgType::Ack => 4,
            CfgType::Unknown(raw) => raw,
        }
    }
}

/// Configuration attribute types espo reads (§3.15.1).
pub mod attribute {
    pub const INTERNAL_IP4_ADDRESS: u16 = 1;
    pub const INTERNAL_IP4_NETMASK: u16 = 2;
    pub const INTERNAL_IP4_DNS: u16 = 3;
    pub const INTERNAL_IP6_ADDRESS: u16 = 8;
    pub const INTERNAL_IP6_DNS: u16 = 10;
    pub const INTERNAL_IP4_SUBNET: u16 = 13;
    pub const INTERNAL_IP6_SUBNET: u16 = 15;
}

/// One attribute: a 15-bit type and its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    pub kind: u16,
    pub value: Vec<u8>,
}

/// A CP payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub cfg_type: CfgType,
    pub attributes: Vec<Attribute>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let cfg_type = CfgType::from(reader.u8()?);
        let _reserved = reader.take(3)?;
        let mut attributes = Vec::new();
        while !reader.is_empty() {
            let raw_type = reader.u16()?;
            if raw_type & 0x8000 != 0 {
                return Err(Error::Malformed);
            }
            let len = reader.u16()? as usize;
            attributes.push(Attribute {
                kind: raw_type,
                value: reader.take(len)?.to_vec(),
            });
        }
        Ok(Repr {
            cfg_type,
            attributes,
        })
    }

    pub fn buffer_len(&self) -> usize {
        4 + self
            .attributes
            .iter()
            .map(|a| 4 + a.value.len())
            .sum::<usize>()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.cfg_type.into());
        out.extend_from_slice(&[0; 3]);
        for a in &self.attributes {
            if a.kind & 0x8000 != 0 {
                return Err(Error::InvalidValue);
            }
            out.extend_from_slice(&a.kind.to_be_bytes());
            out.extend_from_slice(&u16_len(a.value.len())?.to_be_bytes());
            out.extend_from_slice(&a.value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips() {
        let repr = Repr {
            cfg_type: CfgType::Request,
            attributes: vec![
                Attribute {
                    kind: attribute::INTERNAL_IP4_ADDRESS,
                    value: vec![],
                },
                Attribute {
                    kind: attribute::INTERNAL_IP4_DNS,
                    value: vec![10, 0, 0, 1],
                },
            ],
        };
        let mut out = Vec::new();
        repr.emit(&mut out).unwrap();
        assert_eq!(Repr::parse(&out).unwrap(), repr);
        assert_eq!(Repr::parse(&out[..out.len() - 1]), Err(Error::Truncated));
        let mut reserved_bit = out;
        reserved_bit[4] |= 0x80;
        assert_eq!(Repr::parse(&reserved_bit), Err(Error::Malformed));
    }
}
