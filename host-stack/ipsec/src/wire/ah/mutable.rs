//! Zeroing of the fields that may change en route, before the AH ICV is computed or
//! verified (RFC 4302 §3.3.3.1). Both functions work on a caller's copy of the header.

use crate::wire::ipv6::{self, ExtHeader, MAX_EXTENSION_HEADERS, is_walked, read_ext_header};
use crate::wire::{Error, IpProtocol, Version, field as f, ipv4};

use super::FIXED_LEN;

/// Whether an IPv4 option type is immutable in transit and so covered by the ICV, per the
/// table of RFC 4302 Appendix A.1: End of Options List (0), No Operation (1), Security
/// (130), Extended Security (133), Commercial Security (134), Router Alert (148) and
/// Sender Directed Multi-Destination Delivery (149). Everything else, the listed mutable
/// and experimental options as well as any type not in the table, is treated as mutable.
pub fn ipv4_option_is_immutable(option_type: u8) -> bool {
    matches!(option_type, 0 | 1 | 130 | 133 | 134 | 148 | 149)
}

const OPTION_EOL: u8 = 0;
const OPTION_NOP: u8 = 1;

/// Zeroes the mutable fields of an IPv4 header (options included) for the AH ICV:
/// TOS, flags and fragment offset, TTL and header checksum (RFC 4302 §3.3.3.1.1.1), and
/// every option RFC 4302 Appendix A.1 does not list as immutable, type and length bytes
/// included (§3.3.3.1.1.2).
///
/// `header` holds at least the header the IHL describes. A malformed option list (an option
/// without its length byte, a length below 2, or one running past the header) is
/// `Malformed`. With loose or strict source routing the destination address is mutable but
/// predictable: a sender must place the final destination there before calling this;
/// received packets already carry it.
pub fn zero_mutable_ipv4(header: &mut [u8]) -> Result<(), Error> {
    if header.len() < ipv4::HEADER_LEN {
        return Err(Error::Truncated);
    }
    if Version::of(header) != Some(Version::Ipv4) {
        return Err(Error::BadVersion);
    }
    let ver_ihl = f::read_u8(header, 0);
    let header_len = usize::from(ver_ihl & 0x0f) * 4;
    if header_len < ipv4::HEADER_LEN {
        return Err(Error::Malformed);
    }
    let options = header
        .get_mut(ipv4::HEADER_LEN..header_len)
        .ok_or(Error::Truncated)?;
    zero_mutable_ipv4_options(options)?;
    // TOS (1), flags + fragment offset (6..8), TTL (8), header checksum (10..12).
    f::write_u8(header, 1, 0);
    f::write_u16(header, 6..8, 0);
    f::write_u8(header, 8, 0);
    f::write_u16(header, 10..12, 0);
    Ok(())
}

fn zero_mutable_ipv4_options(options: &mut [u8]) -> Result<(), Error> {
    let mut at = 0;
    while let Some(&option_type) = options.get(at) {
        match option_type {
            OPTION_EOL => break,
            OPTION_NOP => at += 1,
            _ => {
                let &len = options.get(at + 1).ok_or(Error::Malformed)?;
                let len = usize::from(len);
                if len < 2 {
                    return Err(Error::Malformed);
                }
                let option = options.get_mut(at..at + len).ok_or(Error::Malformed)?;
                if !ipv4_option_is_immutable(option_type) {
                    option.fill(0);
                }
                at += len;
            }
        }
    }
    Ok(())
}

/// The bit of an IPv6 option type saying its data may change en route (RFC 8200 §4.2).
const IPV6_OPTION_MAY_CHANGE: u8 = 0x20;
const IPV6_OPTION_PAD1: u8 = 0;

/// Zeroes the mutable fields of an IPv6 packet for the AH ICV (RFC 4302 §3.3.3.1.2):
/// traffic class, flow label and hop limit in the fixed header, and in each Hop-by-Hop or
/// Destination Options header before AH, the data of every option whose type has the
/// "may change en route" bit (0x20) set.
///
/// `packet` starts with the IPv6 header; `ah_offset` is where the AH header starts, and the
/// extension-header chain must lead exactly there (`Malformed` otherwise). A Routing header
/// with segments left is `Unsupported` (its receiver-side form would have to be
/// predicted), and so is a Fragment header of a real fragment: AH covers whole packets.
pub fn zero_mutable_ipv6(packet: &mut [u8], ah_offset: usize) -> Result<(), Error> {
    if packet.len() < ipv6::HEADER_LEN {
        return Err(Error::Truncated);
    }
    if Version::of(packet) != Some(Version::Ipv6) {
        return Err(Error::BadVersion);
    }
    if ah_offset < ipv6::HEADER_LEN {
        return Err(Error::Malformed);
    }
    if packet.len() < ah_offset.saturating_add(FIXED_LEN) {
        return Err(Error::Truncated);
    }
    let mut protocol = IpProtocol::from(f::read_u8(packet, 6));
    let mut offset = ipv6::HEADER_LEN;
    for _ in 0..=MAX_EXTENSION_HEADERS {
        if offset == ah_offset {
            if protocol != IpProtocol::Ah {
                return Err(Error::Malformed);
            }
            // Version kept; traffic class and flow label (bits 4..32), hop limit zeroed.
            let first_word = f::read_u32(packet, 0..4) & 0xf000_0000;
            f::write_u32(packet, 0..4, first_word);
            f::write_u8(packet, 7, 0);
            return Ok(());
        }
        if !is_walked(protocol) || (protocol == IpProtocol::HopByHop && offset != ipv6::HEADER_LEN)
        {
            return Err(Error::Malformed);
        }
        let before_ah = packet.get_mut(..ah_offset).ok_or(Error::Malformed)?;
        let header = read_ext_header(before_ah, offset, protocol).map_err(|_| Error::Malformed)?;
        let bytes = before_ah
            .get_mut(offset..offset + header.len)
            .ok_or(Error::Malformed)?;
        zero_mutable_ext_header(protocol, &header, bytes)?;
        protocol = header.next_header;
        offset += header.len;
    }
    Err(Error::TooManyExtensionHeaders)
}

fn zero_mutable_ext_header(
    protocol: IpProtocol,
    header: &ExtHeader,
    bytes: &mut [u8],
) -> Result<(), Error> {
    match protocol {
        IpProtocol::HopByHop | IpProtocol::Ipv6Opts => {
            zero_mutable_ipv6_options(bytes.get_mut(2..).ok_or(Error::Malformed)?)
        }
        IpProtocol::Ipv6Route => {
            if f::read_u8(bytes, 3) != 0 {
                return Err(Error::Unsupported);
            }
            Ok(())
        }
        IpProtocol::Ipv6Frag => match header.fragment {
            Some((0, false)) => Ok(()),
            _ => Err(Error::Unsupported),
        },
        _ => Err(Error::Malformed),
    }
}

fn zero_mutable_ipv6_options(options: &mut [u8]) -> Result<(), Error> {
    let mut at = 0;
    while let Some(&option_type) = options.get(at) {
        if option_type == IPV6_OPTION_PAD1 {
            at += 1;
            continue;
        }
        let &data_len = options.get(at + 1).ok_or(Error::Malformed)?;
        let data_start = at + 2;
        let data_end = data_start + usize::from(data_len);
        let data = options
            .get_mut(data_start..data_end)
            .ok_or(Error::Malformed)?;
        if option_type & IPV6_OPTION_MAY_CHANGE != 0 {
            data.fill(0);
        }
        at = data_end;
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::ah::Packet;
    use crate::wire::ah::test::{AH4_OFFSET, AH4_OPTIONS};
    use proptest::prelude::*;

    // The IPv4 header of AH4_OPTIONS as an independent implementation (scapy's AH) zeroes
    // it: Router Alert and Security kept, Record Route zeroed whole.
    const AH4_OPTIONS_ZEROED: [u8; 48] = [
        0x4c, 0x00, 0x00, 0x75, 0x00, 0x63, 0x00, 0x00, 0x00, 0x33, 0x00, 0x00, 0xc0, 0x00, 0x02,
        0x01, 0xc0, 0x00, 0x02, 0x02, 0x94, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x82, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x78, 0x78, 0x78, 0x01, 0x01, 0x01,
        0x00, 0x00, 0x00,
    ];

    // Captured IPv4 header (TOS 0x01, TTL 200) with Loose Source Route, Timestamp, an
    // unassigned option type 0x9e, Router Alert and NOP, from an AH packet...
    const AH4_ROUTED_HEADER: [u8; 48] = [
        0x4c, 0x01, 0x00, 0x75, 0x00, 0x64, 0x00, 0x00, 0xc8, 0x33, 0x87, 0x61, 0xc0, 0x00, 0x02,
        0x01, 0xc0, 0x00, 0x02, 0x02, 0x83, 0x0b, 0x04, 0x0a, 0x00, 0x00, 0x09, 0x0a, 0x00, 0x00,
        0x0a, 0x44, 0x08, 0x05, 0x00, 0x11, 0x22, 0x33, 0x44, 0x9e, 0x04, 0xab, 0xcd, 0x94, 0x04,
        0x00, 0x00, 0x01,
    ];
    // ...and as scapy zeroes it: only Router Alert and NOP survive.
    const AH4_ROUTED_ZEROED: [u8; 48] = [
        0x4c, 0x00, 0x00, 0x75, 0x00, 0x64, 0x00, 0x00, 0x00, 0x33, 0x00, 0x00, 0xc0, 0x00, 0x02,
        0x01, 0xc0, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x94, 0x04,
        0x00, 0x00, 0x01,
    ];

    // Captured: IPv6 (traffic class 0xb9, flow label 0x54321, hop limit 9) | Hop-by-Hop
    // (Router Alert, Jumbo) | Destination Options (Home Address; type 0x3e, which may
    // change en route; PadN) | Routing (segments left 0) | AH (SPI 0x3006, 16-byte ICV + 4
    // padding) | UDP.
    const AH6_EXT: [u8; 163] = [
        0x6b, 0x95, 0x43, 0x21, 0x00, 0x7b, 0x00, 0x09, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x01, 0x05, 0x02, 0x00,
        0x00, 0xc2, 0x04, 0x55, 0xaa, 0x55, 0xaa, 0x01, 0x02, 0x00, 0x00, 0x2b, 0x04, 0x01, 0x02,
        0x00, 0x00, 0xc9, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x99, 0x3e, 0x04, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x04, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x33, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
        0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
        0x11, 0x06, 0x00, 0x00, 0x00, 0x00, 0x30, 0x06, 0x00, 0x00, 0x00, 0x03, 0xae, 0xc2, 0x43,
        0x04, 0x68, 0x0a, 0xa4, 0xad, 0xc3, 0x78, 0x04, 0xc9, 0xa6, 0x97, 0x18, 0x0f, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x07, 0x00, 0x07, 0x00, 0x0b, 0x0c, 0xed, 0x61, 0x68, 0x36,
    ];
    const AH6_OFFSET: usize = 120;
    // AH6_EXT as scapy zeroes it (ICV included).
    const AH6_EXT_ZEROED: [u8; 163] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x3c, 0x01, 0x05, 0x02, 0x00,
        0x00, 0xc2, 0x04, 0x55, 0xaa, 0x55, 0xaa, 0x01, 0x02, 0x00, 0x00, 0x2b, 0x04, 0x01, 0x02,
        0x00, 0x00, 0xc9, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x99, 0x3e, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x33, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
        0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
        0x11, 0x06, 0x00, 0x00, 0x00, 0x00, 0x30, 0x06, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x07, 0x00, 0x07, 0x00, 0x0b, 0x0c, 0xed, 0x61, 0x68, 0x36,
    ];

    /// A 24-byte IPv4 header (IHL 6) carrying the given 4 option bytes.
    fn ipv4_with_options(options: [u8; 4]) -> [u8; 24] {
        let mut header = [0u8; 24];
        header[..20].copy_from_slice(&AH4_OPTIONS[..20]);
        header[0] = 0x46;
        header[20..].copy_from_slice(&options);
        header
    }

    #[test]
    fn ipv4_matches_independent_implementation() {
        let mut header = [0u8; 48];
        header.copy_from_slice(&AH4_OPTIONS[..AH4_OFFSET]);
        zero_mutable_ipv4(&mut header).unwrap();
        assert_eq!(header, AH4_OPTIONS_ZEROED);
        let mut header = AH4_ROUTED_HEADER;
        zero_mutable_ipv4(&mut header).unwrap();
        assert_eq!(header, AH4_ROUTED_ZEROED);
    }

    #[test]
    fn ipv4_base_fields_follow_rfc4302() {
        let mut header = [0u8; 20];
        header.copy_from_slice(&AH4_OPTIONS[..20]);
        header[0] = 0x45;
        let original = header;
        zero_mutable_ipv4(&mut header).unwrap();
        for (i, (&zeroed, &before)) in header.iter().zip(&original).enumerate() {
            let mutable = matches!(i, 1 | 6 | 7 | 8 | 10 | 11);
            assert_eq!(zeroed, if mutable { 0 } else { before }, "byte {i}");
        }
    }

    #[test]
    fn ipv4_options_classified_per_appendix_a1() {
        // Immutable: Security, Extended Security, Commercial Security, Router Alert,
        // Sender Directed Multi-Destination Delivery.
        for option_type in [130u8, 133, 134, 148, 149] {
            let mut header = ipv4_with_options([option_type, 4, 0xab, 0xcd]);
            zero_mutable_ipv4(&mut header).unwrap();
            assert_eq!(
                header[20..],
                [option_type, 4, 0xab, 0xcd],
                "type {option_type}"
            );
        }
        // Mutable (LSRR, Timestamp, Record Route, SSRR, Traceroute), experimental or
        // superseded (Stream ID, MTU Probe/Reply, ...), and unassigned types: zeroed whole.
        for option_type in [
            131u8, 68, 7, 137, 82, 136, 11, 12, 145, 10, 205, 142, 15, 144,
        ] {
            let mut header = ipv4_with_options([option_type, 4, 0xab, 0xcd]);
            zero_mutable_ipv4(&mut header).unwrap();
            assert_eq!(header[20..], [0; 4], "type {option_type}");
        }
        for option_type in 2..=255u8 {
            let mut header = ipv4_with_options([option_type, 4, 0xab, 0xcd]);
            zero_mutable_ipv4(&mut header).unwrap();
            let kept = header[20..] == [option_type, 4, 0xab, 0xcd];
            assert_eq!(kept, ipv4_option_is_immutable(option_type));
        }
    }

    #[test]
    fn ipv4_nop_and_end_of_list() {
        // NOP, NOP, EOL, then bytes after the end of the list are left alone.
        let mut header = ipv4_with_options([1, 1, 0, 0x07]);
        zero_mutable_ipv4(&mut header).unwrap();
        assert_eq!(header[20..], [1, 1, 0, 0x07]);
    }

    #[test]
    fn ipv4_malformed_option_lists_rejected() {
        for options in [
            [1, 1, 1, 0x07],    // Record Route without its length byte
            [0x07, 1, 0, 0],    // length below 2
            [0x07, 0, 0, 0],    // length 0
            [0x94, 5, 0, 0],    // runs past the header
            [1, 0x83, 0xff, 0], // runs past the header
        ] {
            let mut header = ipv4_with_options(options);
            assert_eq!(
                zero_mutable_ipv4(&mut header),
                Err(Error::Malformed),
                "{options:?}"
            );
        }
        let mut short = [0x45u8; 19];
        assert_eq!(zero_mutable_ipv4(&mut short), Err(Error::Truncated));
        let mut header = ipv4_with_options([1, 1, 1, 1]);
        assert_eq!(zero_mutable_ipv4(&mut header[..23]), Err(Error::Truncated));
        header[0] = 0x44;
        assert_eq!(zero_mutable_ipv4(&mut header), Err(Error::Malformed));
        header[0] = 0x66;
        assert_eq!(zero_mutable_ipv4(&mut header), Err(Error::BadVersion));
    }

    #[test]
    fn ipv6_matches_independent_implementation() {
        let mut packet = AH6_EXT;
        zero_mutable_ipv6(&mut packet, AH6_OFFSET).unwrap();
        let mut ah = Packet::new_checked(&mut packet[AH6_OFFSET..]).unwrap();
        assert_eq!(ah.header_len(), 32);
        ah.icv_mut().fill(0);
        assert_eq!(packet, AH6_EXT_ZEROED);
    }

    /// IPv6 header, the given chain, then an AH header with a 12-byte ICV.
    fn ipv6_with_chain(first: u8, chain: &[u8]) -> (std::vec::Vec<u8>, usize) {
        let mut bytes = std::vec::Vec::from(&AH6_EXT[..40]);
        bytes[6] = first;
        bytes.extend_from_slice(chain);
        let ah_offset = bytes.len();
        bytes.extend_from_slice(&[17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0xcc; 12]);
        (bytes, ah_offset)
    }

    #[test]
    fn ipv6_option_data_zeroed_only_when_may_change() {
        // Destination Options: Pad1, option 0x3e (may change) with 2 data bytes, option
        // 0x1e (does not) with 1 data byte.
        let chain = [
            51, 0, 0, 0x3e, 2, 0xaa, 0xbb, 0x1e, 1, 0xcc, 0, 0, 0, 0, 0, 0,
        ];
        let chain = {
            let mut c = chain;
            c[1] = 1;
            c[10..12].copy_from_slice(&[1, 4]); // PadN over the rest
            c
        };
        let (mut bytes, ah_offset) = ipv6_with_chain(60, &chain);
        zero_mutable_ipv6(&mut bytes, ah_offset).unwrap();
        assert_eq!(
            bytes[40..56],
            [51, 1, 0, 0x3e, 2, 0, 0, 0x1e, 1, 0xcc, 1, 4, 0, 0, 0, 0]
        );
        assert_eq!(bytes[..4], [0x60, 0, 0, 0]);
        assert_eq!(bytes[7], 0);
        // AH itself and what follows are untouched.
        assert_eq!(bytes[ah_offset..], AH_AND_ICV);
    }

    const AH_AND_ICV: [u8; 24] = [
        17, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc,
        0xcc, 0xcc, 0xcc,
    ];

    #[test]
    fn ipv6_routing_with_segments_left_unsupported() {
        let mut chain = [0u8; 24];
        chain[..4].copy_from_slice(&[51, 2, 0, 1]);
        let (mut bytes, ah_offset) = ipv6_with_chain(43, &chain);
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::Unsupported)
        );
        chain[3] = 0;
        let (mut bytes, ah_offset) = ipv6_with_chain(43, &chain);
        assert_eq!(zero_mutable_ipv6(&mut bytes, ah_offset), Ok(()));
    }

    #[test]
    fn ipv6_fragments_unsupported_atomic_fragment_kept() {
        let (mut bytes, ah_offset) = ipv6_with_chain(44, &[51, 0, 0, 1, 0, 0, 0, 9]);
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::Unsupported)
        );
        let (mut bytes, ah_offset) = ipv6_with_chain(44, &[51, 0, 0, 8, 0, 0, 0, 9]);
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::Unsupported)
        );
        let (mut bytes, ah_offset) = ipv6_with_chain(44, &[51, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(zero_mutable_ipv6(&mut bytes, ah_offset), Ok(()));
        assert_eq!(bytes[40..48], [51, 0, 0, 0, 0, 0, 0, 9]);
    }

    #[test]
    fn ipv6_chain_must_lead_to_ah() {
        // No extension headers: AH right after the fixed header.
        let (mut bytes, ah_offset) = ipv6_with_chain(51, &[]);
        assert_eq!(zero_mutable_ipv6(&mut bytes, ah_offset), Ok(()));
        // The fixed header says UDP, not AH.
        let (mut bytes, ah_offset) = ipv6_with_chain(17, &[]);
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::Malformed)
        );
        // A header that runs over the AH offset.
        let (mut bytes, ah_offset) = ipv6_with_chain(60, &[51, 1, 1, 4, 0, 0, 0, 0]);
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::Malformed)
        );
        // Wrong offsets.
        let (mut bytes, _) = ipv6_with_chain(60, &[51, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(zero_mutable_ipv6(&mut bytes, 44), Err(Error::Malformed));
        assert_eq!(zero_mutable_ipv6(&mut bytes, 39), Err(Error::Malformed));
        assert_eq!(zero_mutable_ipv6(&mut bytes, 70), Err(Error::Truncated));
        // Malformed option list: option length past the header.
        let (mut bytes, ah_offset) = ipv6_with_chain(60, &[51, 0, 0x3e, 9, 0, 0, 0, 0]);
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::Malformed)
        );
        // Hop-by-Hop after another header.
        let chain = [0, 0, 1, 4, 0, 0, 0, 0, 51, 0, 1, 4, 0, 0, 0, 0];
        let (mut bytes, ah_offset) = ipv6_with_chain(60, &chain);
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::Malformed)
        );
        let (mut bytes, ah_offset) = ipv6_with_chain(51, &[]);
        bytes[0] = 0x45;
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::BadVersion)
        );
    }

    #[test]
    fn ipv6_chain_length_bounded() {
        let mut chain = std::vec::Vec::new();
        for _ in 0..=MAX_EXTENSION_HEADERS {
            chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        let last = chain.len() - 8;
        chain[last] = 51;
        let (mut bytes, ah_offset) = ipv6_with_chain(60, &chain);
        assert_eq!(
            zero_mutable_ipv6(&mut bytes, ah_offset),
            Err(Error::TooManyExtensionHeaders)
        );
        let (mut bytes, ah_offset) = ipv6_with_chain(60, &chain[8..]);
        assert_eq!(zero_mutable_ipv6(&mut bytes, ah_offset), Ok(()));
    }

    proptest! {
        #[test]
        fn ipv4_any_bytes_never_panic(
            mut header in proptest::collection::vec(any::<u8>(), 0..64),
            plausible in any::<bool>(),
        ) {
            if plausible && !header.is_empty() {
                header[0] = 0x40 | (header[0] & 0x0f);
            }
            let original = header.clone();
            if zero_mutable_ipv4(&mut header).is_ok() {
                // Immutable base fields are never touched; zeroing is idempotent.
                for i in [0usize, 2, 3, 4, 5, 9, 12, 13, 14, 15, 16, 17, 18, 19] {
                    prop_assert_eq!(header[i], original[i]);
                }
                let once = header.clone();
                prop_assert!(zero_mutable_ipv4(&mut header).is_ok());
                prop_assert_eq!(header, once);
            }
        }

        #[test]
        fn ipv6_any_bytes_never_panic(
            first in prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(60)],
            chain in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(0x3e), Just(43), Just(51), Just(60), any::<u8>()],
                0..120,
            ),
            ah_offset in 0usize..200,
        ) {
            let (mut bytes, _) = ipv6_with_chain(first, &chain);
            let original = bytes.clone();
            if zero_mutable_ipv6(&mut bytes, ah_offset).is_ok() {
                prop_assert_eq!(&bytes[ah_offset..], &original[ah_offset..]);
                prop_assert_eq!(&bytes[8..40], &original[8..40]);
            }
        }
    }
}
