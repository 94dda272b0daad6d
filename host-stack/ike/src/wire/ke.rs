//! The Key Exchange payload (RFC 7296 §3.4).

use super::codec::Reader;
use super::{DhGroup, Error};

/// A KE payload: the group and the sender's public value. For a group whose public length
/// espo knows, the data must have exactly that length.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub group: DhGroup,
    pub data: Vec<u8>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let group = DhGroup::from(reader.u16()?);
        let _reserved = reader.u16()?;
        let repr = Repr {
            group,
            data: reader.rest().to_vec(),
        };
        repr.check()?;
        Ok(repr)
    }

    fn check(&self) -> Result<(), Error> {
        match self.group.public_len() {
            Some(len) if len != self.data.len() => Err(Error::InvalidValue),
            _ if self.data.is_empty() => Err(Error::InvalidValue),
            _ => Ok(()),
        }
    }

    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.check()?;
        out.extend_from_slice(&u16::from(self.group).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_checked_for_known_groups() {
        let mut body = vec![0, 31, 0, 0];
        body.extend_from_slice(&[7; 32]);
        let repr = Repr::parse(&body).unwrap();
        assert_eq!(repr.group, DhGroup::Curve25519);
        let mut out = Vec::new();
        repr.emit(&mut out).unwrap();
        assert_eq!(out, body);
        assert_eq!(Repr::parse(&body[..35]), Err(Error::InvalidValue));
        // An unknown group: any non-empty length.
        assert!(Repr::parse(&[0x12, 0x34, 0, 0, 1]).is_ok());
        assert_eq!(Repr::parse(&[0x12, 0x34, 0, 0]), Err(Error::InvalidValue));
    }
}
