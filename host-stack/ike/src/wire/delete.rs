//! The Delete payload (RFC 7296 §3.11).

use super::codec::Reader;
use super::{Error, ProtocolId};

/// A Delete payload: the protocol, the SPI size and the SPIs (none for the IKE SA).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub protocol: ProtocolId,
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let protocol = ProtocolId::from(reader.u8()?);
        let spi_size = reader.u8()?;
        let count = reader.u16()? as usize;
        if spi_size == 0 && count != 0 {
            return Err(Error::InvalidValue);
        }
        if count.saturating_mul(spi_size as usize) != reader.remaining() {
            return Err(if count * (spi_size as usize) > reader.remaining() {
                Error::Truncated
            } else {
                Error::Malformed
            });
        }
        let mut spis = Vec::with_capacity(count);
        for _ in 0..count {
            spis.push(reader.take(spi_size as usize)?.to_vec());
        }
        Ok(Repr {
            protocol,
            spi_size,
            spis,
        })
    }

    pub fn buffer_len(&self) -> usize {
        4 + self.spis.len() * self.spi_size as usize
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self
            .spis
            .iter()
            .any(|spi| spi.len() != self.spi_size as usize)
        {
            return Err(Error::InvalidValue);
        }
        if self.spi_size == 0 && !self.spis.is_empty() {
            return Err(Error::InvalidValue);
        }
        out.push(self.protocol.into());
        out.push(self.spi_size);
        out.extend_from_slice(
            &u16::try_from(self.spis.len())
                .map_err(|_| Error::TooMany)?
                .to_be_bytes(),
        );
        for spi in &self.spis {
            out.extend_from_slice(spi);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_match_the_body() {
        let body = [3, 4, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        let repr = Repr::parse(&body).unwrap();
        assert_eq!(repr.spis, vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]]);
        let mut out = Vec::new();
        repr.emit(&mut out).unwrap();
        assert_eq!(out, body);
        assert_eq!(Repr::parse(&body[..11]), Err(Error::Truncated));
        let mut extra = body.to_vec();
        extra.push(0);
        assert_eq!(Repr::parse(&extra), Err(Error::Malformed));
        assert_eq!(Repr::parse(&[1, 0, 0, 0]).unwrap().spis.len(), 0);
    }
}
