//! The EAP payload (RFC 7296 §3.16), kept opaque: espo does not run EAP methods, but a
//! message carrying one still parses.

use super::Error;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub message: Vec<u8>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        Ok(Repr {
            message: body.to_vec(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        self.message.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&self.message);
        Ok(())
    }
}
