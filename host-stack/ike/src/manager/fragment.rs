//! IKE fragmentation (RFC 7383): an encrypted message too large for the path goes as SKF
//! fragments, each encrypted and integrity-protected on its own; fragments received are
//! checked (ICV first), kept until the message is whole, then read as one.
//!
//! Used only when both ends announced IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT and the
//! message would make an IP datagram larger than the connection's `fragment_size`.
//! Reassembly is bounded: at most [`MAX_FRAGMENTS`] fragments and [`MAX_REASSEMBLED`] bytes
//! per message, one message per direction at a time, for at most [`REASSEMBLY_TIMEOUT`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::body::{self, Body};
use super::ikesa::IkeSa;
use crate::connection::NAT_T_PORT;
use crate::wire::{self, ExchangeType, PayloadType};

/// The most fragments a message may have (sent or received).
pub const MAX_FRAGMENTS: u16 = 64;
/// The largest message reassembled, bytes of inner payloads.
pub const MAX_REASSEMBLED: usize = 64 * 1024;
/// How long the fragments of an incomplete message are kept.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The fragments of one message received so far.
pub(crate) struct Reassembly {
    message_id: u32,
    response: bool,
    total: u16,
    /// The inner chain's first payload type (from fragment 1).
    first: PayloadType,
    parts: Vec<Option<Zeroizing<Vec<u8>>>>,
    bytes: usize,
    started: Instant,
}

/// What a received encrypted message gave.
pub(crate) enum Opened {
    /// The whole message (it came whole, or its last fragment arrived).
    Whole(Box<Body>),
    /// A fragment was kept: the message is not whole yet.
    Kept,
}

/// The IP and UDP headers (and non-ESP marker) in front of an IKE message from `local` to
/// `remote`.
fn datagram_overhead(local: SocketAddr, remote: SocketAddr) -> usize {
    let ip = if remote.is_ipv4() { 20 } else { 40 };
    let marker = if local.port() == NAT_T_PORT { 4 } else { 0 };
    ip + 8 + marker
}

impl IkeSa {
    /// An encrypted message of this IKE SA as the datagrams that carry it: one, or its
    /// fragments when fragmentation was agreed and the whole message would not fit
    /// `fragment_size`.
    pub fn seal_datagrams(
        &mut self,
        exchange: ExchangeType,
        message_id: u32,
        response: bool,
        body: &Body,
    ) -> Result<Vec<Vec<u8>>, String> {
        let header = self.header(exchange, message_id, response);
        let (first, inner) = body::encode(body).map_err(|e| e.to_string())?;
        let limit = self
            .fragment_size
            .saturating_sub(datagram_overhead(self.local, self.remote));
        let fragmenting = self.fragmentation && exchange != ExchangeType::IkeSaInit;
        let sk = self.sk.as_mut().ok_or_else(|| "no keys yet".to_string())?;
        if !fragmenting || inner.len() + sk.outgoing.overhead(inner.len(), false) <= limit {
            return sk
                .outgoing
                .seal(&header, first, &inner)
                .map(|m| vec![m])
                .map_err(|e| e.to_string());
        }
        // Room for a piece in each fragment (the padding of a block cipher at its most).
        let room = limit
            .checked_sub(sk.outgoing.overhead(0, true) + 16)
            .filter(|r| *r >= 16)
            .ok_or("fragment_size leaves no room for a fragment")?;
        let pieces: Vec<&[u8]> = inner.chunks(room).collect();
        let total = u16::try_from(pieces.len())
            .ok()
            .filter(|t| *t <= MAX_FRAGMENTS)
            .ok_or_else(|| {
                format!(
                    "{} bytes need more than {MAX_FRAGMENTS} fragments",
                    inner.len()
                )
            })?;
        let mut out = Vec::with_capacity(pieces.len());
        for (i, piece) in pieces.iter().enumerate() {
            let number = i as u16 + 1;
            let first = if number == 1 {
                first
            } else {
                PayloadType::None
            };
            out.push(
                sk.outgoing
                    .seal_fragment(&header, first, number, total, piece)
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(out)
    }

    /// A received encrypted message (its ICV checked first): the whole message, or a
    /// fragment kept until the others come. Fragments arrive only where fragmentation was
    /// agreed; a fragment that does not fit the message it belongs to is refused.
    pub fn open_datagram(
        &mut self,
        bytes: &[u8],
        message_id: u32,
        response: bool,
        now: Instant,
    ) -> Result<Opened, String> {
        let sk = self.sk.as_ref().ok_or_else(|| "no keys yet".to_string())?;
        let (first, plain, fragment) = sk
            .incoming
            .open_any(bytes)
            .map_err(|e| format!("cannot decrypt: {e}"))?;
        let Some((number, total)) = fragment else {
            return parse(first, &plain).map(|b| Opened::Whole(Box::new(b)));
        };
        if !self.fragmentation {
            return Err("a fragment, but fragmentation was not agreed".into());
        }
        if total > MAX_FRAGMENTS {
            return Err(format!("{total} fragments: more than {MAX_FRAGMENTS}"));
        }
        if (number == 1) == (first == PayloadType::None) {
            return Err(format!("fragment {number} names the wrong first payload"));
        }
        self.reassembly
            .retain(|r| now.saturating_duration_since(r.started) < REASSEMBLY_TIMEOUT);
        let at = self
            .reassembly
            .iter()
            .position(|r| r.message_id == message_id && r.response == response);
        let at = match at {
            Some(i) if total < self.reassembly[i].total => {
                return Err(format!(
                    "fragment {number} of {total}: the message has {} fragments",
                    self.reassembly[i].total
                ));
            }
            Some(i) if total == self.reassembly[i].total => i,
            found => {
                // A new message, or the same one sent again in more fragments (§2.6.2:
                // start over with them).
                if let Some(i) = found {
                    self.reassembly.remove(i);
                }
                // One message per direction at a time.
                self.reassembly.retain(|r| r.response != response);
                self.reassembly.push(Reassembly {
                    message_id,
                    response,
                    total,
                    first: PayloadType::None,
                    parts: vec![None; usize::from(total)],
                    bytes: 0,
                    started: now,
                });
                self.reassembly.len() - 1
            }
        };
        let r = &mut self.reassembly[at];
        let slot = &mut r.parts[usize::from(number) - 1];
        if slot.is_none() {
            r.bytes += plain.len();
            if number == 1 {
                r.first = first;
            }
            *slot = Some(plain);
        }
        if r.bytes > MAX_REASSEMBLED {
            self.reassembly.remove(at);
            return Err(format!("a message of more than {MAX_REASSEMBLED} bytes"));
        }
        if r.parts.iter().any(Option::is_none) {
            return Ok(Opened::Kept);
        }
        let r = self.reassembly.remove(at);
        let mut whole = Zeroizing::new(Vec::with_capacity(r.bytes));
        for part in r.parts.into_iter().flatten() {
            whole.extend_from_slice(&part);
        }
        parse(r.first, &whole).map(|b| Opened::Whole(Box::new(b)))
    }
}

fn parse(first: PayloadType, plain: &[u8]) -> Result<Body, String> {
    let payloads = wire::parse_inner(first, plain).map_err(|e| format!("inner payloads: {e}"))?;
    Body::from_payloads(&payloads).map_err(|e| format!("inner payloads: {e}"))
}
