//! The Encrypted and Authenticated payload SK (RFC 7296 §3.14) and its fragments SKF
//! (RFC 7383 §2.5): where the authenticated data and the ciphertext lie in a message, and
//! the padding of the inner payload chain.

use core::ops::Range;

use super::codec::Reader;
use super::header::{self, HEADER_LEN};
use super::{Error, PayloadType, RawPayload};

/// An SKF payload: fragment `number` of `total`, the inner chain's first payload type
/// (only in fragment 1; `None` in the others), and IV, ciphertext and ICV.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FragmentRepr {
    pub number: u16,
    pub total: u16,
    pub first: PayloadType,
    pub body: Vec<u8>,
}

impl FragmentRepr {
    /// Parses an SKF body; `first` is the Next Payload of its generic header.
    pub fn parse(first: PayloadType, body: &[u8]) -> Result<FragmentRepr, Error> {
        let mut reader = Reader::new(body);
        let number = reader.u16()?;
        let total = reader.u16()?;
        let repr = FragmentRepr {
            number,
            total,
            first,
            body: reader.rest().to_vec(),
        };
        repr.check()?;
        Ok(repr)
    }

    fn check(&self) -> Result<(), Error> {
        if self.number == 0 || self.number > self.total {
            return Err(Error::InvalidValue);
        }
        if (self.number == 1) == (self.first == PayloadType::None) {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    pub fn buffer_len(&self) -> usize {
        4 + self.body.len()
    }

    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.check()?;
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.total.to_be_bytes());
        out.extend_from_slice(&self.body);
        Ok(())
    }
}

/// Where the protected parts of an encrypted message lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// The inner chain's first payload type (`None` in a non-first fragment).
    pub first: PayloadType,
    /// The associated data of an AEAD, and the start of what an integrity check covers:
    /// the IKE header through the SK (or SKF, fragment fields included) payload header.
    pub aad: Range<usize>,
    /// IV, ciphertext and ICV.
    pub encrypted: Range<usize>,
    /// For an SKF payload: (fragment number, total fragments).
    pub fragment: Option<(u16, u16)>,
}

/// Finds the SK or SKF payload of a whole message (header included). The message must
/// end with it.
pub fn locate(message: &[u8]) -> Result<Encrypted, Error> {
    let packet = header::Packet::new_checked(message)?;
    let repr = header::Repr::parse(&packet)?;
    let chain = message.get(HEADER_LEN..).ok_or(Error::Truncated)?;
    let raws = super::walk(repr.next_payload, chain)?;
    let last: &RawPayload<'_> = raws.last().ok_or(Error::Malformed)?;
    let header_start = HEADER_LEN + last.offset;
    match last.kind {
        PayloadType::Sk => Ok(Encrypted {
            first: last.next,
            aad: 0..header_start + 4,
            encrypted: header_start + 4..message.len(),
            fragment: None,
        }),
        PayloadType::Skf => {
            let fragment = FragmentRepr::parse(last.next, last.body)?;
            Ok(Encrypted {
                first: last.next,
                aad: 0..header_start + 8,
                encrypted: header_start + 8..message.len(),
                fragment: Some((fragment.number, fragment.total)),
            })
        }
        _ => Err(Error::Malformed),
    }
}

/// How many padding bytes (the Pad Length byte not included) make `len` bytes of inner
/// payloads, the padding and the Pad Length byte a multiple of `block` bytes.
pub fn pad_len(block: usize, len: usize) -> usize {
    let block = block.max(1);
    (block - (len + 1) % block) % block
}

/// The inner payloads of decrypted SK content: the content without its padding and Pad
/// Length byte.
pub fn strip_padding(plain: &[u8]) -> Result<&[u8], Error> {
    let (&pad, rest) = plain.split_last().ok_or(Error::Truncated)?;
    let keep = rest
        .len()
        .checked_sub(pad as usize)
        .ok_or(Error::Malformed)?;
    Ok(&rest[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_fills_blocks() {
        assert_eq!(pad_len(16, 15), 0);
        assert_eq!(pad_len(16, 16), 15);
        assert_eq!(pad_len(16, 0), 15);
        assert_eq!(pad_len(1, 37), 0);
        assert_eq!(pad_len(4, 6), 1);
        for len in 0..64 {
            assert_eq!((len + pad_len(16, len) + 1) % 16, 0);
        }
        assert_eq!(
            strip_padding(&[1, 2, 3, 0xee, 0xee, 2]).unwrap(),
            &[1, 2, 3]
        );
        assert_eq!(strip_padding(&[1, 2, 3, 0]).unwrap(), &[1, 2, 3]);
        assert_eq!(strip_padding(&[1, 4]), Err(Error::Malformed));
        assert_eq!(strip_padding(&[]), Err(Error::Truncated));
    }

    #[test]
    fn fragment_numbers_checked() {
        assert!(FragmentRepr::parse(PayloadType::IdI, &[0, 1, 0, 2, 9]).is_ok());
        assert_eq!(
            FragmentRepr::parse(PayloadType::None, &[0, 2, 0, 2, 9])
                .unwrap()
                .number,
            2
        );
        assert_eq!(
            FragmentRepr::parse(PayloadType::IdI, &[0, 3, 0, 2]),
            Err(Error::InvalidValue)
        );
        assert_eq!(
            FragmentRepr::parse(PayloadType::IdI, &[0, 0, 0, 2]),
            Err(Error::InvalidValue)
        );
        assert_eq!(
            FragmentRepr::parse(PayloadType::None, &[0, 1, 0, 2]),
            Err(Error::Malformed)
        );
        assert_eq!(
            FragmentRepr::parse(PayloadType::IdI, &[0, 2, 0, 2]),
            Err(Error::Malformed)
        );
    }
}
