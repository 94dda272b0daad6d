//! The Notify payload (RFC 7296 §3.10) and the notifications espo reads or sends by type.

use super::codec::Reader;
use super::{DhGroup, Error, NotifyType, ProtocolId};

/// Most bytes of a COOKIE (§2.6).
pub const MAX_COOKIE_LEN: usize = 64;
/// Length of a NAT detection hash (SHA-1, §2.23).
pub const NAT_HASH_LEN: usize = 20;

/// A Notify payload. `protocol` is `Unknown(0)` and `spi` empty for notifications about
/// no particular SA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub kind: NotifyType,
    pub data: Vec<u8>,
}

impl Repr {
    /// A notification with no SPI and no protocol.
    pub fn new(kind: NotifyType, data: Vec<u8>) -> Repr {
        Repr {
            protocol: ProtocolId::Unknown(0),
            spi: Vec::new(),
            kind,
            data,
        }
    }

    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let protocol = ProtocolId::from(reader.u8()?);
        let spi_size = reader.u8()? as usize;
        let kind = NotifyType::from(reader.u16()?);
        let spi = reader.take(spi_size)?.to_vec();
        let repr = Repr {
            protocol,
            spi,
            kind,
            data: reader.rest().to_vec(),
        };
        repr.check()?;
        Ok(repr)
    }

    /// Checks the data of the types this module has helpers for.
    fn check(&self) -> Result<(), Error> {
        let ok = match self.kind {
            NotifyType::Cookie => (1..=MAX_COOKIE_LEN).contains(&self.data.len()),
            NotifyType::NatDetectionSourceIp | NotifyType::NatDetectionDestinationIp => {
                self.data.len() == NAT_HASH_LEN
            }
            NotifyType::InvalidKePayload => self.data.len() == 2,
            NotifyType::SignatureHashAlgorithms => self.data.len().is_multiple_of(2),
            NotifyType::RekeySa => !self.spi.is_empty(),
            _ => true,
        };
        if ok { Ok(()) } else { Err(Error::InvalidValue) }
    }

    pub fn buffer_len(&self) -> usize {
        4 + self.spi.len() + self.data.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.check()?;
        out.push(self.protocol.into());
        out.push(u8::try_from(self.spi.len()).map_err(|_| Error::TooLong)?);
        out.extend_from_slice(&u16::from(self.kind).to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// COOKIE (§2.6).
    pub fn cookie(cookie: &[u8]) -> Repr {
        Repr::new(NotifyType::Cookie, cookie.to_vec())
    }

    /// NAT_DETECTION_SOURCE_IP or NAT_DETECTION_DESTINATION_IP with its hash.
    pub fn nat_detection(kind: NotifyType, hash: [u8; NAT_HASH_LEN]) -> Repr {
        Repr::new(kind, hash.to_vec())
    }

    /// INVALID_KE_PAYLOAD naming the group the responder wants (§1.3).
    pub fn invalid_ke(group: DhGroup) -> Repr {
        Repr::new(
            NotifyType::InvalidKePayload,
            u16::from(group).to_be_bytes().to_vec(),
        )
    }

    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) listing hash algorithm numbers.
    pub fn signature_hash_algorithms(hashes: &[u16]) -> Repr {
        Repr::new(
            NotifyType::SignatureHashAlgorithms,
            hashes.iter().flat_map(|h| h.to_be_bytes()).collect(),
        )
    }

    /// REKEY_SA for the CHILD_SA with `spi` (§3.10.1).
    pub fn rekey_sa(protocol: ProtocolId, spi: &[u8]) -> Repr {
        Repr {
            protocol,
            spi: spi.to_vec(),
            kind: NotifyType::RekeySa,
            data: Vec::new(),
        }
    }

    /// A COOKIE's value.
    pub fn cookie_value(&self) -> Option<&[u8]> {
        (self.kind == NotifyType::Cookie).then_some(self.data.as_slice())
    }

    /// A NAT detection notification's hash.
    pub fn nat_hash(&self) -> Option<[u8; NAT_HASH_LEN]> {
        match self.kind {
            NotifyType::NatDetectionSourceIp | NotifyType::NatDetectionDestinationIp => {
                self.data.as_slice().try_into().ok()
            }
            _ => None,
        }
    }

    /// The group INVALID_KE_PAYLOAD asks for.
    pub fn invalid_ke_group(&self) -> Option<DhGroup> {
        if self.kind != NotifyType::InvalidKePayload {
            return None;
        }
        let raw: [u8; 2] = self.data.as_slice().try_into().ok()?;
        Some(DhGroup::from(u16::from_be_bytes(raw)))
    }

    /// The hash algorithms of SIGNATURE_HASH_ALGORITHMS.
    pub fn hash_algorithms(&self) -> Option<Vec<u16>> {
        (self.kind == NotifyType::SignatureHashAlgorithms && self.data.len().is_multiple_of(2))
            .then(|| {
                self.data
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            })
    }

    /// The SPI a REKEY_SA names.
    pub fn rekeyed_spi(&self) -> Option<&[u8]> {
        (self.kind == NotifyType::RekeySa).then_some(self.spi.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_helpers_round_trip() {
        for repr in [
            Repr::cookie(&[9; 8]),
            Repr::nat_detection(NotifyType::NatDetectionSourceIp, [3; 20]),
            Repr::invalid_ke(DhGroup::Ecp256),
            Repr::signature_hash_algorithms(&[2, 3, 4]),
            Repr::rekey_sa(ProtocolId::Esp, &[1, 2, 3, 4]),
        ] {
            let mut out = Vec::new();
            repr.emit(&mut out).unwrap();
            assert_eq!(out.len(), repr.buffer_len());
            assert_eq!(Repr::parse(&out).unwrap(), repr);
        }
        assert_eq!(
            Repr::invalid_ke(DhGroup::Ecp256).invalid_ke_group(),
            Some(DhGroup::Ecp256)
        );
        assert_eq!(
            Repr::signature_hash_algorithms(&[2, 4]).hash_algorithms(),
            Some(vec![2, 4])
        );
        assert_eq!(
            Repr::rekey_sa(ProtocolId::Esp, &[5; 4]).rekeyed_spi(),
            Some(&[5u8; 4][..])
        );
        // RFC 7296 §2.6: COOKIE is 1 to 64 bytes; a NAT hash is 20.
        assert!(Repr::parse(&[0, 0, 0x40, 0x06]).is_err());
        assert!(Repr::parse(&[0, 0, 0x40, 0x04, 1, 2]).is_err());
        // SPI size larger than the body.
        assert_eq!(Repr::parse(&[3, 4, 0x40, 0x09, 1]), Err(Error::Truncated));
    }
}
