//! The Vendor ID payload (RFC 7296 §3.12).

use super::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub id: Vec<u8>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        Ok(Repr { id: body.to_vec() })
    }

    pub fn buffer_len(&self) -> usize {
        self.id.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.id);
        Ok(())
    }
}
