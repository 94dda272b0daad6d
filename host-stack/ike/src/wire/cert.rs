//! The Certificate and Certificate Request payloads (RFC 7296 §3.6, §3.7).

use super::codec::Reader;
use super::{CertEncoding, Error};

/// Length of a certification authority's SHA-1 public-key hash in a CERTREQ.
pub const AUTHORITY_HASH_LEN: usize = 20;

/// A CERT or CERTREQ payload: the encoding and the data (a certificate, or for a CERTREQ
/// of X.509 signatures, a concatenation of SHA-1 hashes of trusted authorities' keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub encoding: CertEncoding,
    pub data: Vec<u8>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let encoding = CertEncoding::from(reader.u8()?);
        Ok(Repr {
            encoding,
            data: reader.rest().to_vec(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        1 + self.data.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.encoding.into());
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// A CERTREQ's authority hashes, or `InvalidValue` when the data is not a whole
    /// number of them.
    pub fn authorities(&self) -> Result<impl Iterator<Item = &[u8; AUTHORITY_HASH_LEN]>, Error> {
        if !self.data.len().is_multiple_of(AUTHORITY_HASH_LEN) {
            return Err(Error::InvalidValue);
        }
        Ok(self
            .data
            .chunks_exact(AUTHORITY_HASH_LEN)
            .filter_map(|c| c.try_into().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certreq_authorities() {
        let mut body = vec![4];
        body.extend_from_slice(&[1; 20]);
        body.extend_from_slice(&[2; 20]);
        let repr = Repr::parse(&body).unwrap();
        let hashes: Vec<_> = repr.authorities().unwrap().collect();
        assert_eq!(hashes, vec![&[1; 20], &[2; 20]]);
        assert!(Repr::parse(&body[..40]).unwrap().authorities().is_err());
        assert_eq!(Repr::parse(&[]), Err(Error::Truncated));
    }
}
