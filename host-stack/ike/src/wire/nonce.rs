//! The Nonce payload (RFC 7296 §3.9): 16 to 256 bytes.

use super::Error;

pub const MIN_NONCE_LEN: usize = 16;
pub const MAX_NONCE_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub data: Vec<u8>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let repr = Repr {
            data: body.to_vec(),
        };
        repr.check()?;
        Ok(repr)
    }

    fn check(&self) -> Result<(), Error> {
        if (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&self.data.len()) {
            Ok(())
        } else {
            Err(Error::InvalidValue)
        }
    }

    pub fn buffer_len(&self) -> usize {
        self.data.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.check()?;
        out.extend_from_slice(&self.data);
        Ok(())
    }
}
