//! Tunnel MTU arithmetic and what to do with an inner packet that does not fit.
//!
//! The TUN device's MTU is the outer path MTU (the outside interface's MTU) less the
//! largest overhead of any outbound bundle, so the inside stack rarely hands espo a packet
//! that cannot fit. When one does not fit after all (its bundle's exact overhead, or an MTU
//! set by hand): an IPv6 packet, or an IPv4 packet with DF, is answered with an ICMP error
//! naming the tunnel MTU (RFC 4301 §8); an IPv4 packet without DF is fragmented *before*
//! encapsulation (RFC 4301 §8.1 allows it) into pieces that each fit once encapsulated.
//!
//! Why the inner packet and not the outer: each piece is then a complete ESP packet that
//! the peer decapsulates on its own — no reassembly of ESP fragments at the receiving
//! gateway, which a card does not do (its engine drops outer fragments, `fragment`), and
//! which raw IP sockets with IP_HDRINCL would not produce anyway (the kernel refuses to
//! fragment such packets, EMSGSIZE). The inner destination host reassembles, as it would
//! for any fragmented datagram.

use espo_ipsec::wire::ipv4;

/// Smallest MTU an IPv4 link may have (RFC 791).
pub const MIN_IPV4_MTU: usize = 68;
/// Smallest MTU an IPv6 link may have (RFC 8200 §5).
pub const MIN_IPV6_MTU: usize = 1280;
/// The largest IPv4 datagram, header included (its 16-bit total length): no fragment may
/// end beyond it, which also keeps every offset within the 13-bit field.
const MAX_DATAGRAM_LEN: usize = u16::MAX as usize;

/// The MTU for the TUN device: the outer MTU less the largest tunnel overhead, at least
/// the IPv4 minimum.
pub fn tunnel_mtu(outer_mtu: usize, max_overhead: usize) -> usize {
    outer_mtu.saturating_sub(max_overhead).max(MIN_IPV4_MTU)
}

/// What to do with an inner packet before encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// It fits the outer MTU once encapsulated.
    Fits,
    /// IPv6 or DF set: tell the sender the largest packet that fits.
    TooBig { mtu: usize },
    /// IPv4 without DF: fragment it into packets of at most `max_len` bytes.
    Fragment { max_len: usize },
}

/// Decides for the inner packet `inner` whose bundle adds `overhead` bytes; `tunnel_mtu`
/// is what an ICMP error announces.
pub fn fit(inner: &[u8], overhead: usize, outer_mtu: usize, tunnel_mtu: usize) -> Fit {
    if inner.len() + overhead <= outer_mtu {
        return Fit::Fits;
    }
    let dont_frag = match ipv4::Packet::new_checked(inner) {
        Ok(p) => p.dont_frag(),
        Err(_) => true,
    };
    // Room for an inner fragment: the outer MTU less this bundle's overhead with the
    // padding at its worst (16-byte alignment: 15 bytes).
    let max_len = outer_mtu.saturating_sub(overhead + 15);
    if dont_frag || max_len < ipv4::HEADER_LEN + 8 {
        Fit::TooBig { mtu: tunnel_mtu }
    } else {
        Fit::Fragment { max_len }
    }
}

/// Why a packet could not be fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// Not a valid IPv4 packet.
    Malformed,
    /// It carries IP options (not fragmented by espo; counted as too big).
    Options,
    /// `max_len` leaves no room for 8 bytes of payload.
    TooSmall,
    /// The packet is itself a fragment ending past the largest datagram (65535 bytes with
    /// its header): the pieces' offsets would not fit the 13-bit field.
    Overflow,
}

/// The fragments of an IPv4 packet, each at most `max_len` bytes (RFC 791 §3.2).
#[derive(Debug)]
pub struct Fragments<'a> {
    header: [u8; ipv4::HEADER_LEN],
    payload: &'a [u8],
    /// Offset of `payload` in the original datagram, in bytes.
    base_offset: usize,
    /// Whether the original packet itself had more fragments after it.
    base_more: bool,
    chunk: usize,
    at: usize,
}

impl<'a> Fragments<'a> {
    pub fn new(pkt: &'a [u8], max_len: usize) -> Result<Fragments<'a>, FragmentError> {
        let p = ipv4::Packet::new_checked(pkt).map_err(|_| FragmentError::Malformed)?;
        if p.header_len() != ipv4::HEADER_LEN {
            return Err(FragmentError::Options);
        }
        let chunk = max_len.saturating_sub(ipv4::HEADER_LEN) & !7;
        if chunk == 0 {
            return Err(FragmentError::TooSmall);
        }
        let mut header = [0u8; ipv4::HEADER_LEN];
        header.copy_from_slice(&pkt[..ipv4::HEADER_LEN]);
        let end = usize::from(p.total_len());
        let payload = pkt
            .get(ipv4::HEADER_LEN..end)
            .ok_or(FragmentError::Malformed)?;
        // A packet that is itself a fragment is cut at its own offset in the original
        // datagram; the pieces must still fit it.
        let base_offset = usize::from(p.frag_offset());
        if ipv4::HEADER_LEN + base_offset + payload.len() > MAX_DATAGRAM_LEN {
            return Err(FragmentError::Overflow);
        }
        Ok(Fragments {
            header,
            payload,
            base_offset,
            base_more: p.more_frags(),
            chunk,
            at: 0,
        })
    }

    /// Writes the next fragment into `out`; returns its length, or `None` when done (or
    /// `out` is too small).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.at >= self.payload.len() {
            return None;
        }
        let len = self.chunk.min(self.payload.len() - self.at);
        let last = self.at + len == self.payload.len();
        // Within the 13-bit field by construction (`new` checked the end).
        let offset = u16::try_from(self.base_offset + self.at).ok()?;
        let total = ipv4::HEADER_LEN + len;
        let out = out.get_mut(..total)?;
        out[..ipv4::HEADER_LEN].copy_from_slice(&self.header);
        out[ipv4::HEADER_LEN..].copy_from_slice(&self.payload[self.at..self.at + len]);
        let mut p = ipv4::Packet::new_unchecked(&mut *out);
        p.set_total_len(total as u16);
        // The last piece ends where the original did: more fragments follow it only if
        // they followed the original.
        p.set_more_frags(!last || self.base_more);
        p.set_frag_offset(offset);
        p.fill_checksum();
        self.at += len;
        Some(total)
    }
}

#[cfg(test)]
mod tests;
