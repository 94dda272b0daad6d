//! The Security Association payload (RFC 7296 §3.3): proposals, their transforms and the
//! transforms' attributes.

use super::codec::{Reader, u16_len};
use super::{Error, ProtocolId, TransformType};

/// At most this many proposals in one SA payload, and transforms in one proposal.
pub const MAX_PROPOSALS: usize = 64;
pub const MAX_TRANSFORMS: usize = 64;

const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;
const PROPOSAL_HEADER_LEN: usize = 8;
const TRANSFORM_HEADER_LEN: usize = 8;
/// Attribute type of Key Length (§3.3.5), always in TV format.
const KEY_LENGTH: u16 = 14;
const AF_TV: u16 = 0x8000;

/// One transform: its type, its ID (within the type's registry), the Key Length attribute
/// if present, and any other attributes kept as the bytes received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransformRepr {
    pub kind: TransformType,
    pub id: u16,
    pub key_bits: Option<u16>,
    /// Attributes other than Key Length, whole (type and value), in the order received.
    pub other_attributes: Vec<u8>,
}

impl TransformRepr {
    pub fn new(kind: TransformType, id: u16, key_bits: Option<u16>) -> TransformRepr {
        TransformRepr {
            kind,
            id,
            key_bits,
            other_attributes: Vec::new(),
        }
    }

    fn parse(reader: &mut Reader<'_>) -> Result<(TransformRepr, bool), Error> {
        let last = reader.u8()?;
        let _reserved = reader.u8()?;
        let length = reader.u16()? as usize;
        if length < TRANSFORM_HEADER_LEN {
            return Err(Error::Malformed);
        }
        let mut body = Reader::new(reader.take(length - 4)?);
        let kind = TransformType::from(body.u8()?);
        let _reserved = body.u8()?;
        let id = body.u16()?;
        let mut key_bits = None;
        let mut other_attributes = Vec::new();
        while !body.is_empty() {
            let raw_type = body.u16()?;
            let attr_type = raw_type & !AF_TV;
            if raw_type & AF_TV != 0 {
                let value = body.u16()?;
                if attr_type == KEY_LENGTH {
                    if key_bits.is_some() {
                        return Err(Error::Malformed);
                    }
                    key_bits = Some(value);
                } else {
                    other_attributes.extend_from_slice(&raw_type.to_be_bytes());
                    other_attributes.extend_from_slice(&value.to_be_bytes());
                }
            } else {
                if attr_type == KEY_LENGTH {
                    return Err(Error::Malformed);
                }
                let len = body.u16()?;
                let value = body.take(len as usize)?;
                other_attributes.extend_from_slice(&raw_type.to_be_bytes());
                other_attributes.extend_from_slice(&len.to_be_bytes());
                other_attributes.extend_from_slice(value);
            }
        }
        let more = match last {
            LAST => false,
            MORE_TRANSFORMS => true,
            _ => return Err(Error::Malformed),
        };
        Ok((
            TransformRepr {
                kind,
                id,
                key_bits,
                other_attributes,
            },
            more,
        ))
    }

    pub fn buffer_len(&self) -> usize {
        TRANSFORM_HEADER_LEN
            + if self.key_bits.is_some() { 4 } else { 0 }
            + self.other_attributes.len()
    }

    fn emit(&self, more: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        let length = u16_len(self.buffer_len())?;
        out.push(if more { MORE_TRANSFORMS } else { LAST });
        out.push(0);
        out.extend_from_slice(&length.to_be_bytes());
        out.push(self.kind.into());
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        if let Some(bits) = self.key_bits {
            out.extend_from_slice(&(AF_TV | KEY_LENGTH).to_be_bytes());
            out.extend_from_slice(&bits.to_be_bytes());
        }
        out.extend_from_slice(&self.other_attributes);
        Ok(())
    }
}

/// One proposal: its number, protocol, SPI (empty in an IKE_SA_INIT) and transforms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProposalRepr {
    pub number: u8,
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub transforms: Vec<TransformRepr>,
}

impl ProposalRepr {
    fn parse(reader: &mut Reader<'_>) -> Result<(ProposalRepr, bool), Error> {
        let last = reader.u8()?;
        let _reserved = reader.u8()?;
        let length = reader.u16()? as usize;
        if length < PROPOSAL_HEADER_LEN {
            return Err(Error::Malformed);
        }
        let mut body = Reader::new(reader.take(length - 4)?);
        let number = body.u8()?;
        let protocol = ProtocolId::from(body.u8()?);
        let spi_size = body.u8()? as usize;
        let count = body.u8()? as usize;
        let spi = body.take(spi_size)?.to_vec();
        if count > MAX_TRANSFORMS {
            return Err(Error::TooMany);
        }
        let mut transforms = Vec::with_capacity(count);
        for index in 0..count {
            let (transform, more) = TransformRepr::parse(&mut body)?;
            if more != (index + 1 < count) {
                return Err(Error::Malformed);
            }
            transforms.push(transform);
        }
        if !body.is_empty() {
            return Err(Error::Malformed);
        }
        let more = match last {
            LAST => false,
            MORE_PROPOSALS => true,
            _ => return Err(Error::Malformed),
        };
        Ok((
            ProposalRepr {
                number,
                protocol,
                spi,
                transforms,
            },
            more,
        ))
    }

    pub fn buffer_len(&self) -> usize {
        PROPOSAL_HEADER_LEN
            + self.spi.len()
            + self
                .transforms
                .iter()
                .map(TransformRepr::buffer_len)
                .sum::<usize>()
    }

    fn emit(&self, more: bool, out: &mut Vec<u8>) -> Result<(), Error> {
        let length = u16_len(self.buffer_len())?;
        let spi_size = u8::try_from(self.spi.len()).map_err(|_| Error::TooLong)?;
        if self.transforms.len() > MAX_TRANSFORMS {
            return Err(Error::TooMany);
        }
        out.push(if more { MORE_PROPOSALS } else { LAST });
        out.push(0);
        out.extend_from_slice(&length.to_be_bytes());
        out.push(self.number);
        out.push(self.protocol.into());
        out.push(spi_size);
        out.push(self.transforms.len() as u8);
        out.extend_from_slice(&self.spi);
        for (index, transform) in self.transforms.iter().enumerate() {
            transform.emit(index + 1 < self.transforms.len(), out)?;
        }
        Ok(())
    }

    /// The transforms of one type, in the order proposed.
    pub fn transforms_of(&self, kind: TransformType) -> impl Iterator<Item = &TransformRepr> {
        self.transforms.iter().filter(move |t| t.kind == kind)
    }
}

/// An SA payload: one or more proposals, each numbered the same as or one more than the
/// one before (§3.3.1). An offer starts at 1; an answer carries the number of the offered
/// proposal it accepts, so the first number is not checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub proposals: Vec<ProposalRepr>,
}

impl Repr {
    pub fn parse(body: &[u8]) -> Result<Repr, Error> {
        let mut reader = Reader::new(body);
        let mut proposals: Vec<ProposalRepr> = Vec::new();
        loop {
            if proposals.len() == MAX_PROPOSALS {
                return Err(Error::TooMany);
            }
            let (proposal, more) = ProposalRepr::parse(&mut reader)?;
            let expected_ok = match proposals.last() {
                None => true,
                Some(prev) => {
                    proposal.number == prev.number
                        || Some(proposal.number) == prev.number.checked_add(1)
                }
            };
            if !expected_ok {
                return Err(Error::Malformed);
            }
            proposals.push(proposal);
            if !more {
                break;
            }
        }
        if !reader.is_empty() {
            return Err(Error::Malformed);
        }
        Ok(Repr { proposals })
    }

    pub fn buffer_len(&self) -> usize {
        self.proposals.iter().map(ProposalRepr::buffer_len).sum()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        if self.proposals.is_empty() {
            return Err(Error::InvalidValue);
        }
        if self.proposals.len() > MAX_PROPOSALS {
            return Err(Error::TooMany);
        }
        for (index, proposal) in self.proposals.iter().enumerate() {
            proposal.emit(index + 1 < self.proposals.len(), out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Repr {
        Repr {
            proposals: vec![
                ProposalRepr {
                    number: 1,
                    protocol: ProtocolId::Esp,
                    spi: vec![1, 2, 3, 4],
                    transforms: vec![
                        TransformRepr::new(TransformType::Encr, 20, Some(128)),
                        TransformRepr::new(TransformType::Esn, 0, None),
                    ],
                },
                ProposalRepr {
                    number: 2,
                    protocol: ProtocolId::Esp,
                    spi: vec![1, 2, 3, 4],
                    transforms: vec![TransformRepr {
                        kind: TransformType::Encr,
                        id: 12,
                        key_bits: Some(256),
                        other_attributes: vec![0x00, 0x20, 0x00, 0x01, 0xff],
                    }],
                },
            ],
        }
    }

    #[test]
    fn round_trip_with_attributes() {
        let repr = sample();
        let mut out = Vec::new();
        repr.emit(&mut out).unwrap();
        assert_eq!(out.len(), repr.buffer_len());
        assert_eq!(Repr::parse(&out).unwrap(), repr);
        // Every truncation is refused.
        for cut in 0..out.len() {
            assert!(Repr::parse(&out[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_bad_substructure_markers_and_numbers() {
        let mut out = Vec::new();
        sample().emit(&mut out).unwrap();
        let mut bad_last = out.clone();
        bad_last[0] = 0; // first proposal claims to be the last
        assert!(Repr::parse(&bad_last).is_err());
        // The second proposal's number neither the first's nor one more.
        let second = ProposalRepr::buffer_len(&sample().proposals[0]);
        let mut bad_number = out.clone();
        bad_number[second + 4] = 3;
        assert_eq!(Repr::parse(&bad_number), Err(Error::Malformed));
        // An answer: a single proposal numbered as the offered one it accepts.
        let mut answer = sample();
        answer.proposals.remove(0);
        let mut bytes = Vec::new();
        answer.emit(&mut bytes).unwrap();
        assert_eq!(Repr::parse(&bytes).unwrap().proposals[0].number, 2);
        let mut bad_transform_marker = out;
        bad_transform_marker[12] = 2;
        assert_eq!(Repr::parse(&bad_transform_marker), Err(Error::Malformed));
    }
}
