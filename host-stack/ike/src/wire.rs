//! IKEv2 messages on the wire (RFC 7296 §3): the header, the payload chain and every
//! payload espo reads or sends.
//!
//! Each payload module has a `Repr` with `parse` (of the payload body, after the generic
//! payload header), `buffer_len` and `emit`. [`Message`] ties them together: it walks the
//! chain (at most [`MAX_PAYLOADS`] payloads, SK or SKF last), handles the critical bit
//! (§2.5) and refuses bytes after the header's Length. Nothing here panics on any input.

pub mod auth;
pub mod cert;
mod codec;
pub mod cp;
pub mod delete;
pub mod eap;
pub mod header;
pub mod id;
pub mod ke;
pub mod nonce;
pub mod notify;
mod registry;
pub mod sa;
pub mod sk;
pub mod ts;
pub mod vendor;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod tests;

pub use header::Flags;
pub use registry::{
    AuthMethod, CertEncoding, DhGroup, EncrId, Esn, ExchangeType, IdType, IntegId, NotifyType,
    PayloadType, PrfId, ProtocolId, TransformType, TsType,
};

use codec::{Reader, u16_len};
use header::HEADER_LEN;

/// Most payloads in one chain (outer or inner).
pub const MAX_PAYLOADS: usize = 128;

/// Why bytes are not a well-formed IKEv2 message or payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("message or payload truncated")]
    Truncated,
    #[error("malformed message or payload")]
    Malformed,
    #[error("IKE major version other than 2")]
    BadMajorVersion,
    #[error("unsupported critical payload of type {0}")]
    UnsupportedCriticalPayload(u8),
    #[error("invalid value in a payload")]
    InvalidValue,
    #[error("too many payloads, proposals or transforms")]
    TooMany,
    #[error("payload or message too long")]
    TooLong,
    #[error("buffer too small for the message")]
    BufferTooSmall,
}

impl Error {
    /// The notification a responder sends about a request that failed this way (§2.21,
    /// §2.5), or `None` when the error is the local side's own.
    pub fn notify_type(&self) -> Option<NotifyType> {
        match self {
            Error::Truncated
            | Error::Malformed
            | Error::InvalidValue
            | Error::TooMany
            | Error::TooLong => Some(NotifyType::InvalidSyntax),
            Error::BadMajorVersion => Some(NotifyType::InvalidMajorVersion),
            Error::UnsupportedCriticalPayload(_) => Some(NotifyType::UnsupportedCriticalPayload),
            Error::BufferTooSmall => None,
        }
    }
}

const GENERIC_HEADER_LEN: usize = 4;
const CRITICAL: u8 = 0x80;

/// One payload of a chain before its body is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawPayload<'a> {
    pub(crate) kind: PayloadType,
    pub(crate) next: PayloadType,
    pub(crate) critical: bool,
    pub(crate) body: &'a [u8],
    /// Offset of the generic payload header within the chain's bytes.
    pub(crate) offset: usize,
}

/// Splits a chain into payloads: at most `MAX_PAYLOADS`, SK/SKF last, no bytes after the
/// last payload.
pub(crate) fn walk(first: PayloadType, bytes: &[u8]) -> Result<Vec<RawPayload<'_>>, Error> {
    let mut reader = Reader::new(bytes);
    let mut raws = Vec::new();
    let mut kind = first;
    let mut offset = 0;
    while kind != PayloadType::None {
        if raws.len() == MAX_PAYLOADS {
            return Err(Error::TooMany);
        }
        let next = PayloadType::from(reader.u8()?);
        let critical = reader.u8()? & CRITICAL != 0;
        let length = reader.u16()? as usize;
        if length < GENERIC_HEADER_LEN {
            return Err(Error::Malformed);
        }
        let body = reader.take(length - GENERIC_HEADER_LEN)?;
        raws.push(RawPayload {
            kind,
            next,
            critical,
            body,
            offset,
        });
        offset += length;
        if matches!(kind, PayloadType::Sk | PayloadType::Skf) {
            break;
        }
        kind = next;
    }
    if !reader.is_empty() {
        return Err(Error::Malformed);
    }
    Ok(raws)
}

/// Any payload of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    Sa(sa::Repr),
    Ke(ke::Repr),
    IdI(id::Repr),
    IdR(id::Repr),
    Cert(cert::Repr),
    CertReq(cert::Repr),
    Auth(auth::Repr),
    Nonce(nonce::Repr),
    Notify(notify::Repr),
    Delete(delete::Repr),
    VendorId(vendor::Repr),
    TsI(ts::Repr),
    TsR(ts::Repr),
    /// The encrypted payload, not decrypted: the inner chain's first payload type and IV,
    /// ciphertext and ICV.
    Sk {
        first: PayloadType,
        body: Vec<u8>,
    },
    Skf(sk::FragmentRepr),
    Cp(cp::Repr),
    Eap(eap::Repr),
}

impl Payload {
    pub fn kind(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::Sa,
            Payload::Ke(_) => PayloadType::Ke,
            Payload::IdI(_) => PayloadType::IdI,
            Payload::IdR(_) => PayloadType::IdR,
            Payload::Cert(_) => PayloadType::Cert,
            Payload::CertReq(_) => PayloadType::CertReq,
            Payload::Auth(_) => PayloadType::Auth,
            Payload::Nonce(_) => PayloadType::Nonce,
            Payload::Notify(_) => PayloadType::Notify,
            Payload::Delete(_) => PayloadType::Delete,
            Payload::VendorId(_) => PayloadType::VendorId,
            Payload::TsI(_) => PayloadType::TsI,
            Payload::TsR(_) => PayloadType::TsR,
            Payload::Sk { .. } => PayloadType::Sk,
            Payload::Skf(_) => PayloadType::Skf,
            Payload::Cp(_) => PayloadType::Cp,
            Payload::Eap(_) => PayloadType::Eap,
        }
    }

    /// Reads one payload; `Ok(None)` for an unknown payload without the critical bit,
    /// which is skipped (§2.5).
    fn parse(raw: &RawPayload<'_>) -> Result<Option<Payload>, Error> {
        let body = raw.body;
        Ok(Some(match raw.kind {
            PayloadType::Sa => Payload::Sa(sa::Repr::parse(body)?),
            PayloadType::Ke => Payload::Ke(ke::Repr::parse(body)?),
            PayloadType::IdI => Payload::IdI(id::Repr::parse(body)?),
            PayloadType::IdR => Payload::IdR(id::Repr::parse(body)?),
            PayloadType::Cert => Payload::Cert(cert::Repr::parse(body)?),
            PayloadType::CertReq => Payload::CertReq(cert::Repr::parse(body)?),
            PayloadType::Auth => Payload::Auth(auth::Repr::parse(body)?),
            PayloadType::Nonce => Payload::Nonce(nonce::Repr::parse(body)?),
            PayloadType::Notify => Payload::Notify(notify::Repr::parse(body)?),
            PayloadType::Delete => Payload::Delete(delete::Repr::parse(body)?),
            PayloadType::VendorId => Payload::VendorId(vendor::Repr::parse(body)?),
            PayloadType::TsI => Payload::TsI(ts::Repr::parse(body)?),
            PayloadType::TsR => Payload::TsR(ts::Repr::parse(body)?),
            PayloadType::Sk => Payload::Sk {
                first: raw.next,
                body: body.to_vec(),
            },
            PayloadType::Skf => Payload::Skf(sk::FragmentRepr::parse(raw.next, body)?),
            PayloadType::Cp => Payload::Cp(cp::Repr::parse(body)?),
            PayloadType::Eap => Payload::Eap(eap::Repr::parse(body)?),
            PayloadType::None => return Err(Error::Malformed),
            PayloadType::Unknown(raw_type) => {
                return if raw.critical {
                    Err(Error::UnsupportedCriticalPayload(raw_type))
                } else {
                    Ok(None)
                };
            }
        }))
    }

    fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Payload::Sa(r) => r.emit(out),
            Payload::Ke(r) => r.emit(out),
            Payload::IdI(r) | Payload::IdR(r) => r.emit(out),
            Payload::Cert(r) | Payload::CertReq(r) => r.emit(out),
            Payload::Auth(r) => r.emit(out),
            Payload::Nonce(r) => r.emit(out),
            Payload::Notify(r) => r.emit(out),
            Payload::Delete(r) => r.emit(out),
            Payload::VendorId(r) => r.emit(out),
            Payload::TsI(r) | Payload::TsR(r) => r.emit(out),
            Payload::Sk { body, .. } => {
                out.extend_from_slice(body);
                Ok(())
            }
            Payload::Skf(r) => r.emit(out),
            Payload::Cp(r) => r.emit(out),
            Payload::Eap(r) => r.emit(out),
        }
    }

    /// The Next Payload an SK/SKF payload carries (its inner chain's first type).
    fn inner_first(&self) -> Option<PayloadType> {
        match self {
            Payload::Sk { first, .. } => Some(*first),
            Payload::Skf(f) => Some(f.first),
            _ => None,
        }
    }
}

fn parse_chain(first: PayloadType, bytes: &[u8], allow_sk: bool) -> Result<Vec<Payload>, Error> {
    let mut payloads = Vec::new();
    for raw in walk(first, bytes)? {
        if !allow_sk && matches!(raw.kind, PayloadType::Sk | PayloadType::Skf) {
            return Err(Error::Malformed);
        }
        if let Some(payload) = Payload::parse(&raw)? {
            payloads.push(payload);
        }
    }
    Ok(payloads)
}

fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> Result<PayloadType, Error> {
    if payloads.len() > MAX_PAYLOADS {
        return Err(Error::TooMany);
    }
    for (index, payload) in payloads.iter().enumerate() {
        let next = match (payload.inner_first(), payloads.get(index + 1)) {
            (Some(_), Some(_)) => return Err(Error::Malformed),
            (Some(first), None) => first,
            (None, Some(following)) => following.kind(),
            (None, None) => PayloadType::None,
        };
        let start = out.len();
        out.extend_from_slice(&[next.into(), 0, 0, 0]);
        payload.emit_body(out)?;
        let length = u16_len(out.len() - start)?;
        out[start + 2..start + 4].copy_from_slice(&length.to_be_bytes());
    }
    Ok(payloads.first().map_or(PayloadType::None, Payload::kind))
}

/// Parses a decrypted inner payload chain (padding already stripped) that starts with a
/// payload of type `first`. It may not hold an SK or SKF payload.
pub fn parse_inner(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, Error> {
    parse_chain(first, bytes, false)
}

/// The bytes of an inner chain to encrypt, and the type of its first payload (for the SK
/// payload's Next Payload field).
pub fn chain_to_bytes(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), Error> {
    if payloads.iter().any(|p| p.inner_first().is_some()) {
        return Err(Error::Malformed);
    }
    let mut out = Vec::new();
    let first = emit_chain(payloads, &mut out)?;
    Ok((first, out))
}

/// A whole IKE message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    pub spi_i: u64,
    pub spi_r: u64,
    pub exchange_type: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a UDP payload holding exactly one IKE message (for port 4500, after the
    /// non-ESP marker).
    pub fn parse(bytes: &[u8]) -> Result<Message, Error> {
        let packet = header::Packet::new_checked(bytes)?;
        let header = header::Repr::parse(&packet)?;
        let payloads = parse_chain(
            header.next_payload,
            bytes.get(HEADER_LEN..).unwrap_or(&[]),
            true,
        )?;
        Ok(Message {
            spi_i: header.spi_i,
            spi_r: header.spi_r,
            exchange_type: header.exchange_type,
            flags: header.flags,
            message_id: header.message_id,
            payloads,
        })
    }

    /// The message as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; HEADER_LEN];
        let first = emit_chain(&self.payloads, &mut out)?;
        let length = u32::try_from(out.len()).map_err(|_| Error::TooLong)?;
        let repr = header::Repr {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: first,
            minor_version: 0,
            exchange_type: self.exchange_type,
            flags: self.flags,
            message_id: self.message_id,
            length,
        };
        repr.emit(&mut header::Packet::new_unchecked(&mut out[..]))?;
        Ok(out)
    }

    /// Writes the message at the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let bytes = self.to_bytes()?;
        let target = buf.get_mut(..bytes.len()).ok_or(Error::BufferTooSmall)?;
        target.copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    /// The Notify payloads, in order.
    pub fn notifications(&self) -> impl Iterator<Item = &notify::Repr> {
        self.payloads.iter().filter_map(|p| match p {
            Payload::Notify(n) => Some(n),
            _ => None,
        })
    }
}
