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
//! for any fragmented datagram. The cutting itself is `espo_ipsec::wire::ipv4::Fragments`;
//! what is decided here is whether to cut, answer or send.

use espo_ipsec::wire::ipv4;
pub use espo_ipsec::wire::ipv4::{FragmentError, Fragments};

/// Smallest MTU an IPv4 link may have (RFC 791).
pub const MIN_IPV4_MTU: usize = 68;
/// Smallest MTU an IPv6 link may have (RFC 8200 §5).
pub const MIN_IPV6_MTU: usize = 1280;

/// The MTU for the TUN device: the outer MTU less the largest tunnel overhead, at least
/// the IPv4 minimum.
pub fn tunnel_mtu(outer_mtu: usize, max_overhead: usize) -> usize {
    outer_mtu.saturating_sub(max_overhead).max(MIN_IPV4_MTU)
}

/// What the path of one SA allows, when ICMP errors about its packets lowered it below the
/// outside interface's MTU ([`super::outer_pmtu`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathLimit {
    /// The largest outer packet the path carries.
    pub outer_mtu: usize,
    /// What an ICMP error about an inner packet too big for it announces.
    pub tunnel_mtu: usize,
}

/// The outer MTU and the announced inner MTU for a packet: the interface's (`outer_mtu`,
/// `tunnel_mtu`), or its SA's path's where that is lower.
pub fn limit(outer_mtu: usize, tunnel_mtu: usize, path: Option<PathLimit>) -> PathLimit {
    let interface = PathLimit {
        outer_mtu,
        tunnel_mtu,
    };
    match path {
        Some(p) if p.outer_mtu < outer_mtu => PathLimit {
            outer_mtu: p.outer_mtu,
            tunnel_mtu: p.tunnel_mtu.min(tunnel_mtu),
        },
        _ => interface,
    }
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

#[cfg(test)]
mod tests;
