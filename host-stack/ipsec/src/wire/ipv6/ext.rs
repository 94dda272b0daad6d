//! The IPv6 extension-header chain (RFC 8200 §4): Hop-by-Hop Options, Routing, Fragment
//! and Destination Options are walked; AH, ESP, No Next Header and upper-layer protocols end
//! the walk. The walk is bounded by `MAX_EXTENSION_HEADERS` and by the payload length.

use super::{HEADER_LEN, Packet};
use crate::wire::field as f;
use crate::wire::{Error, IpProtocol};

/// The most extension headers walked before a chain is refused as
/// `TooManyExtensionHeaders`.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Length of the Fragment header.
const FRAGMENT_HEADER_LEN: usize = 8;

/// Where the walk of an IPv6 extension-header chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The first protocol that is not Hop-by-Hop, Routing, Fragment or Destination Options
    /// (AH, ESP, TCP, UDP, ICMPv6, No Next Header, ...).
    pub protocol: IpProtocol,
    /// Offset of that protocol's header from the start of the IPv6 packet. It may equal the
    /// packet length (nothing follows).
    pub offset: usize,
    /// A Fragment header with More Fragments set or a non-zero offset was seen.
    pub is_fragment: bool,
    /// The Fragment header has a non-zero offset: what follows `offset` is fragment data,
    /// not the upper-layer header (RFC 4301 treats its ports as OPAQUE).
    pub non_first_fragment: bool,
}

/// One extension header read from a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExtHeader {
    /// The protocol of the header that follows.
    pub next_header: IpProtocol,
    /// This header's length in bytes.
    pub len: usize,
    /// For a Fragment header: (fragment offset in 8-byte units, More Fragments).
    pub fragment: Option<(u16, bool)>,
}

/// Whether `protocol` is an extension header that the walk steps over.
pub(crate) fn is_walked(protocol: IpProtocol) -> bool {
    matches!(
        protocol,
        IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Frag | IpProtocol::Ipv6Opts
    )
}

/// Reads the extension header of kind `protocol` at `offset` of `data` (the IPv6 packet
/// bounded by its payload length). `protocol` must satisfy `is_walked`.
pub(crate) fn read_ext_header(
    data: &[u8],
    offset: usize,
    protocol: IpProtocol,
) -> Result<ExtHeader, Error> {
    let header = data.get(offset..).ok_or(Error::Truncated)?;
    let (&next, rest) = header.split_first().ok_or(Error::Truncated)?;
    let &hdr_ext_len = rest.first().ok_or(Error::Truncated)?;
    match protocol {
        IpProtocol::Ipv6Frag => {
            if header.len() < FRAGMENT_HEADER_LEN {
                return Err(Error::Truncated);
            }
            let offset_flags = f::read_u16(header, 2..4);
            Ok(ExtHeader {
                next_header: next.into(),
                len: FRAGMENT_HEADER_LEN,
                fragment: Some((offset_flags >> 3, offset_flags & 1 != 0)),
            })
        }
        IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
            let len = (usize::from(hdr_ext_len) + 1) * 8;
            if header.len() < len {
                return Err(Error::Truncated);
            }
            Ok(ExtHeader {
                next_header: next.into(),
                len,
                fragment: None,
            })
        }
        _ => Err(Error::Malformed),
    }
}

/// Walks the extension headers of `packet` to the upper-layer protocol.
///
/// Hop-by-Hop anywhere but first is `Malformed`; a header running past the payload length
/// is `Truncated`; more than `MAX_EXTENSION_HEADERS` headers is `TooManyExtensionHeaders`.
/// A non-first fragment ends the walk at its Fragment header.
pub fn walk_extension_headers<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<UpperLayer, Error> {
    walk_chain(packet.packet_bytes(), packet.next_header())
}

/// Walks the extension headers of the IPv6 packet in `data` (bounded by its payload length,
/// or cut short, as in an ICMPv6 error's quote) whose fixed header announces `first`; the
/// rules are those of [`walk_extension_headers`].
pub(crate) fn walk_chain(data: &[u8], first: IpProtocol) -> Result<UpperLayer, Error> {
    if data.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    let mut protocol = first;
    let mut offset = HEADER_LEN;
    let mut is_fragment = false;
    for _ in 0..MAX_EXTENSION_HEADERS {
        if !is_walked(protocol) {
            break;
        }
        if protocol == IpProtocol::HopByHop && offset != HEADER_LEN {
            return Err(Error::Malformed);
        }
        let header = read_ext_header(data, offset, protocol)?;
        offset += header.len;
        protocol = header.next_header;
        if let Some((frag_offset, more)) = header.fragment {
            is_fragment |= more || frag_offset != 0;
            if frag_offset != 0 {
                return Ok(UpperLayer {
                    protocol,
                    offset,
                    is_fragment,
                    non_first_fragment: true,
                });
            }
        }
    }
    if is_walked(protocol) {
        return Err(Error::TooManyExtensionHeaders);
    }
    Ok(UpperLayer {
        protocol,
        offset,
        is_fragment,
        non_first_fragment: false,
    })
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;
    use proptest::prelude::*;

    // Captured: traffic class 0xb9, flow label 0x12345, hop limit 17; Hop-by-Hop (Router
    // Alert, PadN), Destination Options (Home Address), Routing (type 0, segments left 0),
    // Fragment (offset 0, M=1, id 0xabcdef), TCP SYN 40000 -> 443.
    pub(crate) const IPV6_EXT_TCP: [u8; 132] = [
        0x6b, 0x91, 0x23, 0x45, 0x00, 0x5c, 0x00, 0x11, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x01, 0x05, 0x02, 0x00,
        0x00, 0x01, 0x02, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x2b, 0x02, 0x01, 0x02,
        0x00, 0x00, 0xc9, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x99, 0x2c, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x01,
        0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x06,
        0x00, 0x00, 0x01, 0x00, 0xab, 0xcd, 0xef, 0x9c, 0x40, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0x20, 0x00, 0x95, 0xd9, 0x00, 0x00,
    ];

    // Captured: a non-first fragment (offset 185 × 8, M=0) of a UDP datagram.
    pub(crate) const IPV6_FRAG_LATER: [u8; 64] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x2c, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x11, 0x00, 0x05, 0xc8, 0x00,
        0xab, 0xcd, 0xef, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, 0xaa, 0xaa,
    ];

    /// A packet whose fixed header announces `first` followed by `chain` bytes.
    fn packet_with(first: IpProtocol, chain: &[u8]) -> std::vec::Vec<u8> {
        let mut bytes = std::vec![0u8; HEADER_LEN];
        bytes[0] = 0x60;
        bytes[4..6].copy_from_slice(&u16::try_from(chain.len()).unwrap().to_be_bytes());
        bytes[6] = first.into();
        bytes.extend_from_slice(chain);
        bytes
    }

    /// `count` 8-byte Destination Options headers (PadN), the last pointing at UDP.
    fn dest_opts_chain(count: usize) -> std::vec::Vec<u8> {
        let mut chain = std::vec::Vec::new();
        for i in 0..count {
            let next = if i + 1 == count { 17 } else { 60 };
            chain.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        chain
    }

    #[test]
    fn walks_captured_chain_to_tcp() {
        let packet = Packet::new_checked(&IPV6_EXT_TCP[..]).unwrap();
        let upper = walk_extension_headers(&packet).unwrap();
        assert_eq!(
            upper,
            UpperLayer {
                protocol: IpProtocol::Tcp,
                offset: 112,
                is_fragment: true,
                non_first_fragment: false,
            }
        );
        assert_eq!(IPV6_EXT_TCP[upper.offset..upper.offset + 2], [0x9c, 0x40]);
    }

    #[test]
    fn non_first_fragment_stops_at_fragment_header() {
        let packet = Packet::new_checked(&IPV6_FRAG_LATER[..]).unwrap();
        let upper = walk_extension_headers(&packet).unwrap();
        assert_eq!(upper.protocol, IpProtocol::Udp);
        assert_eq!(upper.offset, 48);
        assert!(upper.is_fragment && upper.non_first_fragment);
    }

    #[test]
    fn no_extension_headers() {
        let bytes = packet_with(IpProtocol::Udp, &[0; 8]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let upper = walk_extension_headers(&packet).unwrap();
        assert_eq!(
            (upper.protocol, upper.offset),
            (IpProtocol::Udp, HEADER_LEN)
        );
        assert!(!upper.is_fragment);
    }

    #[test]
    fn stops_at_ah_and_esp() {
        for protocol in [IpProtocol::Ah, IpProtocol::Esp, IpProtocol::Ipv6NoNxt] {
            let chain = [protocol.into(), 0, 1, 4, 0, 0, 0, 0];
            let bytes = packet_with(IpProtocol::Ipv6Opts, &chain);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            let upper = walk_extension_headers(&packet).unwrap();
            assert_eq!((upper.protocol, upper.offset), (protocol, HEADER_LEN + 8));
        }
    }

    #[test]
    fn chain_length_is_bounded() {
        let bytes = packet_with(
            IpProtocol::Ipv6Opts,
            &dest_opts_chain(MAX_EXTENSION_HEADERS),
        );
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let upper = walk_extension_headers(&packet).unwrap();
        assert_eq!(upper.offset, HEADER_LEN + 8 * MAX_EXTENSION_HEADERS);
        let chain = dest_opts_chain(MAX_EXTENSION_HEADERS + 1);
        let bytes = packet_with(IpProtocol::Ipv6Opts, &chain);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            walk_extension_headers(&packet),
            Err(Error::TooManyExtensionHeaders)
        );
    }

    #[test]
    fn hop_by_hop_must_be_first() {
        let chain = [0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0];
        let bytes = packet_with(IpProtocol::Ipv6Opts, &chain);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(walk_extension_headers(&packet), Err(Error::Malformed));
    }

    #[test]
    fn truncated_headers_are_refused() {
        // Header length 1 (16 bytes) with only 8 present.
        let bytes = packet_with(IpProtocol::Ipv6Route, &[17, 1, 0, 0, 0, 0, 0, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(walk_extension_headers(&packet), Err(Error::Truncated));
        let bytes = packet_with(IpProtocol::Ipv6Frag, &[17, 0, 0, 0]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(walk_extension_headers(&packet), Err(Error::Truncated));
        let bytes = packet_with(IpProtocol::HopByHop, &[17]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(walk_extension_headers(&packet), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn hostile_chains_never_panic(
            first in prop_oneof![Just(0u8), Just(43), Just(44), Just(60), any::<u8>()],
            chain in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(43), Just(44), Just(60), Just(51), any::<u8>()],
                0..200,
            ),
        ) {
            let bytes = packet_with(first.into(), &chain);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            if let Ok(upper) = walk_extension_headers(&packet) {
                prop_assert!(upper.offset <= bytes.len());
                prop_assert!(!is_walked(upper.protocol) || upper.non_first_fragment);
            }
        }
    }
}
