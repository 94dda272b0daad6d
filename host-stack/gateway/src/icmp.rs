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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use espo_ipsec::wire::{ChecksumCaps, IpProtocol, checksum, ipv4, ipv6};

/// The ICMPv4 message: type 3 (destination unreachable), code 4 (fragmentation needed and
/// DF set).
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_FRAG_NEEDED: u8 = 4;
/// ICMPv6 type 2: packet too big.
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// An ICMPv4 error carries at most this many bytes in all (RFC 1812 §4.3.2.3).
const MAX_ICMPV4_ERROR: usize = 576;
/// An ICMPv6 error never exceeds the minimum IPv6 MTU (RFC 4443 §2.4 (c)).
const MAX_ICMPV6_ERROR: usize = 1280;
const ICMP_HEADER_LEN: usize = 8;

fn is_icmpv4_error(kind: u8) -> bool {
    matches!(kind, 3 | 4 | 5 | 11 | 12)
}

/// Builds an ICMP "fragmentation needed" about the IPv4 packet `original` into `out`, from
/// `src`, announcing `mtu`. Returns the error's length, or `None` when no error may be sent
/// about this packet (or `out` is too small).
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
        let kind = *p.payload().first()?;
        if is_icmpv4_error(kind) {
            return None;
        }
    }
    let datagram = &original[..usize::from(p.total_len())];
    let quoted = datagram
        .len()
        .min(MAX_ICMPV4_ERROR - ipv4::HEADER_LEN - ICMP_HEADER_LEN);
    let total = ipv4::HEADER_LEN + ICMP_HEADER_LEN + quoted;
    let out = out.get_mut(..total)?;
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: sender,
        next_header: IpProtocol::Icmp,
        payload_len: ICMP_HEADER_LEN + quoted,
        hop_limit: 64,
        tos: 0xc0, // internetwork control, as routers send their errors
        dont_frag: false,
        ident: 0,
    };
    repr.emit(
        &mut ipv4::Packet::new_unchecked(&mut *out),
        &ChecksumCaps::default(),
    )
    .ok()?;
    let icmp = &mut out[ipv4::HEADER_LEN..];
    icmp[0] = ICMP_DEST_UNREACH;
    icmp[1] = ICMP_FRAG_NEEDED;
    icmp[2..6].fill(0);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..].copy_from_slice(&datagram[..quoted]);
    let sum = !checksum::data(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(total)
}

/// Builds an ICMPv6 "packet too big" about the IPv6 packet `original` into `out`, from
/// `src`, announcing `mtu`. Returns the error's length, or `None` when no error may be sent.
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
        // Types below 128 are errors.
        let kind = *p.packet_bytes().get(upper.offset)?;
        if kind < 128 {
            return None;
        }
    }
    let datagram_len = (ipv6::HEADER_LEN + usize::from(p.payload_len())).min(original.len());
    let quoted = datagram_len.min(MAX_ICMPV6_ERROR - ipv6::HEADER_LEN - ICMP_HEADER_LEN);
    let icmp_len = ICMP_HEADER_LEN + quoted;
    let total = ipv6::HEADER_LEN + icmp_len;
    let out = out.get_mut(..total)?;
    let repr = ipv6::Repr {
        src_addr: src,
        dst_addr: sender,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp_len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut *out))
        .ok()?;
    let icmp = &mut out[ipv6::HEADER_LEN..];
    icmp[0] = ICMPV6_PACKET_TOO_BIG;
    icmp[1] = 0;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..].copy_from_slice(&original[..quoted]);
    let pseudo = checksum::pseudo_header_v6(&src, &sender, IpProtocol::Icmpv6, icmp_len as u32);
    let sum = !checksum::combine(&[pseudo, checksum::data(icmp)]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
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
