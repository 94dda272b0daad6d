//! The Authentication payload (RFC 7296 §3.8).

use super::codec::Reader;
use super::{AuthMethod, Error};

/// An AUTH payload: the method and the authentication data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let method = AuthMethod::from(reader.u8()?);
        let _reserved = reader.take(3)?;
        let data = reader.rest().to_vec();
        if data.is_empty() {
            return Err(Error::InvalidValue);
        }
        Ok(Repr { method, data })
    }

    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.data.is_empty() {
            return Err(Error::InvalidValue);
        }
        out.push(self.method.into());
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}
