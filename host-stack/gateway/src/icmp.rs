//! ICMP errors espo sends to an inner sender: "fragmentation needed" (ICMP type 3 code 4,
//! RFC 792 and RFC 1191) and "packet too big" (ICMPv6 type 2, RFC 4443), so that path MTU
//! discovery works through the tunnel (RFC 4301 §8). They go back into the TUN device and
//! from there to the sender.
//!
//! No error is sent about an ICMP error, a non-first fragment, or a packet from an
//! unspecified, multicast or broadcast source (RFC 1122 §3.2.2, RFC 4443 §2.4), nor about an
//! IPv4 packet to a multicast or broadcast address (RFC 1122; a "packet too big" about an
//! IPv6 multicast packet is the exception RFC 4443 §2.4 (e.3) makes). In IPv6 the ICMPv6
//! type and the fragment offset are read after walking the extension headers; a chain that
//! cannot be walked gets no error. Errors are rate limited ([`RateLimit`]).
//!
//! The messages are read and written by `espo_ipsec::wire` (`ipv4`, `ipv6`, `icmp`,
//! `icmpv6`); what is decided here is whether one may be sent, and what it says.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use espo_ipsec::wire::icmp::{self as icmpv4, DstUnreachable};
use espo_ipsec::wire::{ChecksumCaps, IpProtocol, Version, icmpv6, ipv4, ipv6};

/// An ICMPv4 error carries at most this many bytes in all (RFC 1812 §4.3.2.3).
const MAX_ICMPV4_ERROR: usize = 576;
/// An ICMPv6 error never exceeds the minimum IPv6 MTU (RFC 4443 §2.4 (c)).
const MAX_ICMPV6_ERROR: usize = 1280;

/// Builds the error telling the sender of `original` (IPv4 or IPv6) that packets above
/// `mtu` bytes do not fit: [`frag_needed`] or [`packet_too_big`], from `source`'s address
/// of the family. Returns the error's length, or `None` when no error may be sent about
/// this packet (or there is no source address of its family, or `out` is too small).
pub fn too_big(original: &[u8], source: &ErrorSource, mtu: usize, out: &mut [u8]) -> Option<usize> {
    match Version::of(original)? {
        Version::Ipv4 => {
            let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
            frag_needed(original, source.v4?, mtu, out)
        }
        Version::Ipv6 => {
            let mtu = u32::try_from(mtu).unwrap_or(u32::MAX);
            packet_too_big(original, source.v6?, mtu, out)
        }
    }
}

/// Builds an ICMP "fragmentation needed" (type 3 code 4) about the IPv4 packet `original`
/// into `out`, from `src`, announcing `mtu`. Returns the error's length, or `None` when no
/// error may be sent about this packet (or `out` is too small).
pub fn frag_needed(original: &[u8], src: Ipv4Addr, mtu: u16, out: &mut [u8]) -> Option<usize> {
    let p = ipv4::Packet::new_checked(original).ok()?;
    if p.frag_offset() != 0 {
        return None;
    }
    let sender = p.src_addr();
    if sender.is_unspecified() || sender.is_multicast() || sender.is_broadcast() {
        return None;
    }
    let dst = p.dst_addr();
    if dst.is_multicast() || dst.is_broadcast() {
        return None;
    }
    if p.next_header() == IpProtocol::Icmp {
        let kind = icmpv4::Message::from(*p.payload().first()?);
        if kind.is_error() {
            return None;
        }
    }
    let datagram = p.packet_bytes();
    let quoted = datagram
        .len()
        .min(MAX_ICMPV4_ERROR - ipv4::HEADER_LEN - icmpv4::HEADER_LEN);
    let message = icmpv4::Repr::DstUnreachable {
        reason: DstUnreachable::FragRequired,
        next_hop_mtu: mtu,
        quote: datagram.get(..quoted)?,
    };
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: sender,
        next_header: IpProtocol::Icmp,
        payload_len: message.buffer_len(),
        hop_limit: 64,
        tos: 0xc0, // internetwork control, as routers send their errors
        dont_frag: false,
        ident: 0,
    };
    let total = repr.buffer_len() + repr.payload_len;
    let out = out.get_mut(..total)?;
    let caps = ChecksumCaps::default();
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut *out), &caps)
        .ok()?;
    let icmp = out.get_mut(ipv4::HEADER_LEN..)?;
    message
        .emit(&mut icmpv4::Packet::new_unchecked(icmp), &caps)
        .ok()?;
    Some(total)
}

/// Builds an ICMPv6 "packet too big" (type 2) about the IPv6 packet `original` into `out`,
/// from `src`, announcing `mtu`. Returns the error's length, or `None` when no error may be
/// sent.
pub fn packet_too_big(original: &[u8], src: Ipv6Addr, mtu: u32, out: &mut [u8]) -> Option<usize> {
    let p = ipv6::Packet::new_checked(original).ok()?;
    let sender = p.src_addr();
    if sender.is_unspecified() || sender.is_multicast() {
        return None;
    }
    // The upper-layer protocol past any extension headers; what follows a non-first
    // fragment's header is not its header.
    let upper = ipv6::walk_extension_headers(&p).ok()?;
    if upper.non_first_fragment {
        return None;
    }
    if upper.protocol == IpProtocol::Icmpv6 {
        let kind = icmpv6::Message::from(*p.packet_bytes().get(upper.offset)?);
        if kind.is_error() {
            return None;
        }
    }
    let datagram = p.packet_bytes();
    let quoted = datagram
        .len()
        .min(MAX_ICMPV6_ERROR - ipv6::HEADER_LEN - icmpv6::HEADER_LEN);
    let message = icmpv6::Repr::PktTooBig {
        mtu,
        quote: datagram.get(..quoted)?,
    };
    let repr = ipv6::Repr {
        src_addr: src,
        dst_addr: sender,
        next_header: IpProtocol::Icmpv6,
        payload_len: message.buffer_len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let total = repr.buffer_len() + repr.payload_len;
    let out = out.get_mut(..total)?;
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut *out))
        .ok()?;
    let icmp = out.get_mut(ipv6::HEADER_LEN..)?;
    message
        .emit(
            &src,
            &sender,
            &mut icmpv6::Packet::new_unchecked(icmp),
            &ChecksumCaps::default(),
        )
        .ok()?;
    Some(total)
}

/// The addresses espo's ICMP errors come from: the TUN device's own, else the tunnel's
/// local endpoint of that family.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorSource {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl ErrorSource {
    /// The first address of each family in `candidates`, in order.
    pub fn from_candidates(candidates: impl IntoIterator<Item = IpAddr>) -> ErrorSource {
        let mut s = ErrorSource::default();
        for a in candidates {
            match a {
                IpAddr::V4(a) if s.v4.is_none() => s.v4 = Some(a),
                IpAddr::V6(a) if s.v6.is_none() => s.v6 = Some(a),
                _ => {}
            }
        }
        s
    }
}

/// A token bucket: at most `burst` errors at once, refilled at `per_second`.
#[derive(Debug)]
pub struct RateLimit {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: Instant,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
            last: Instant::now(),
        }
    }

    /// Whether one more error may be sent at `now`; takes a token if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
