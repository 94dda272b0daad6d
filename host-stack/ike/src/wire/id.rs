//! The Identification payloads IDi and IDr (RFC 7296 §3.5).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::codec::Reader;
use super::{Error, IdType};

/// An identity in the forms espo uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    Rfc822(String),
    DerAsn1Dn(Vec<u8>),
    KeyId(Vec<u8>),
}

impl Identity {
    pub fn id_type(&self) -> IdType {
        match self {
            Identity::Ipv4(_) => IdType::Ipv4Addr,
            Identity::Ipv6(_) => IdType::Ipv6Addr,
            Identity::Fqdn(_) => IdType::Fqdn,
            Identity::Rfc822(_) => IdType::Rfc822Addr,
            Identity::DerAsn1Dn(_) => IdType::DerAsn1Dn,
            Identity::KeyId(_) => IdType::KeyId,
        }
    }

    fn data(&self) -> Vec<u8> {
        match self {
            Identity::Ipv4(a) => a.octets().to_vec(),
            Identity::Ipv6(a) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::Rfc822(s) => s.as_bytes().to_vec(),
            Identity::DerAsn1Dn(d) | Identity::KeyId(d) => d.clone(),
        }
    }
}

/// An ID payload as received: the type, the three reserved bytes exactly as sent (AUTH
/// covers them) and the identification data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub id_type: IdType,
    pub reserved: [u8; 3],
    pub data: Vec<u8>,
}

impl Repr {
    /// An ID payload for `identity` with zero reserved bytes.
    pub fn new(identity: &Identity) -> Repr {
        Repr {
            id_type: identity.id_type(),
            reserved: [0; 3],
            data: identity.data(),
        }
    }

    /// Parses an ID payload body. Data of the types espo knows is checked (address
    /// lengths, names as printable ASCII); other types are kept as bytes.
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let id_type = IdType::from(reader.u8()?);
        let reserved = reader.array()?;
        let repr = Repr {
            id_type,
            reserved,
            data: reader.rest().to_vec(),
        };
        if repr.data.is_empty() {
            return Err(Error::InvalidValue);
        }
        if !matches!(id_type, IdType::DerAsn1Gn | IdType::Unknown(_)) {
            repr.identity()?;
        }
        Ok(repr)
    }

    /// The identity, for the types espo knows.
    pub fn identity(&self) -> Result<Identity, Error> {
        let text = || -> Result<String, Error> {
            if self.data.iter().all(|b| (0x20..0x7f).contains(b)) {
                Ok(String::from_utf8_lossy(&self.data).into_owned())
            } else {
                Err(Error::InvalidValue)
            }
        };
        Ok(match self.id_type {
            IdType::Ipv4Addr => Identity::Ipv4(Ipv4Addr::from(
                <[u8; 4]>::try_from(self.data.as_slice()).map_err(|_| Error::InvalidValue)?,
            )),
            IdType::Ipv6Addr => Identity::Ipv6(Ipv6Addr::from(
                <[u8; 16]>::try_from(self.data.as_slice()).map_err(|_| Error::InvalidValue)?,
            )),
            IdType::Fqdn => Identity::Fqdn(text()?),
            IdType::Rfc822Addr => Identity::Rfc822(text()?),
            IdType::DerAsn1Dn => Identity::DerAsn1Dn(self.data.clone()),
            IdType::KeyId => Identity::KeyId(self.data.clone()),
            IdType::DerAsn1Gn | IdType::Unknown(_) => return Err(Error::InvalidValue),
        })
    }

    /// The payload body as received (type, reserved bytes, data): what AUTH signs
    /// (RFC 7296 §2.15, "RestOfInitIDPayload").
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.push(self.id_type.into());
        out.extend_from_slice(&self.reserved);
        out.extend_from_slice(&self.data);
        out
    }

    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.data.is_empty() {
            return Err(Error::InvalidValue);
        }
        out.extend_from_slice(&self.body());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bytes_kept_and_identities_typed() {
        let body = [2, 0xaa, 0xbb, 0xcc, b'm', b'o', b'o', b'n'];
        let repr = Repr::parse(&body).unwrap();
        assert_eq!(repr.identity().unwrap(), Identity::Fqdn("moon".into()));
        assert_eq!(repr.body(), body);
        let v6 = Repr::new(&Identity::Ipv6("2001:db8::1".parse().unwrap()));
        let mut out = Vec::new();
        v6.emit(&mut out).unwrap();
        assert_eq!(Repr::parse(&out).unwrap(), v6);
        assert_eq!(
            Repr::parse(&[1, 0, 0, 0, 1, 2, 3]),
            Err(Error::InvalidValue)
        );
        assert_eq!(
            Repr::parse(&[2, 0, 0, 0, b'a', 0]),
            Err(Error::InvalidValue)
        );
        assert_eq!(Repr::parse(&[2, 0, 0, 0]), Err(Error::InvalidValue));
    }
}
