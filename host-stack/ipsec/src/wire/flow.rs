//! Selector extraction for SPD lookup (RFC 4301 §4.4.1.1): addresses, next-layer protocol,
//! and ports or ICMP type/code of an IP packet, IPv4 or IPv6.

use core::fmt;
use core::net::IpAddr;

use super::{Error, IpProtocol, ip, ipv4, ipv6};

/// Bytes of a packet's start [`Flow::parse_head`] looks at: an IPv4 header with the most
/// options (60) and the ports after it, or an IPv6 header and 24 bytes of extension headers
/// and ports; a packet whose selectors lie further in is parsed whole.
pub const HEAD_LEN: usize = 64;

/// The selectors of one IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Next-layer protocol (after IPv6 extension headers).
    pub protocol: IpProtocol,
    /// Source port of TCP, UDP or SCTP; `None` for other protocols and for non-first
    /// fragments (OPAQUE in RFC 4301 terms).
    pub src_port: Option<u16>,
    /// Destination port of TCP, UDP or SCTP, as `src_port`.
    pub dst_port: Option<u16>,
    /// ICMP (over IPv4) or ICMPv6 (over IPv6) type and code; `None` otherwise and for
    /// non-first fragments.
    pub icmp_type_code: Option<(u8, u8)>,
}

impl Flow {
    /// Extracts the selectors of an IP packet, its version taken from the first nibble.
    ///
    /// IPv4 options are skipped; IPv6 extension headers are walked (see
    /// `ipv6::walk_extension_headers`). Checksums are not verified. A first fragment or
    /// whole packet too short to hold the ports or type/code is `Truncated`.
    pub fn parse(ip_packet: &[u8]) -> Result<Flow, Error> {
        match ip::Packet::new_checked(ip_packet)? {
            ip::Packet::Ipv4(packet) => Self::from_ipv4(&packet),
            ip::Packet::Ipv6(packet) => Self::from_ipv6(&packet),
        }
    }

    /// [`parse`](Self::parse) from the first bytes of a packet of which `avail_len` bytes
    /// exist (its IP header's length may be less), for a packet whose rest is not in host
    /// memory (it lies in a DMA buffer). Gives exactly what `parse` gives on the whole
    /// packet, or an error: `Truncated` when the selectors lie beyond `head` (IPv6 with
    /// long extension headers — parse the whole packet then). At most [`HEAD_LEN`] bytes
    /// of `head` are looked at.
    pub fn parse_head(head: &[u8], avail_len: usize) -> Result<Flow, Error> {
        let head = head
            .get(..head.len().min(HEAD_LEN).min(avail_len))
            .unwrap_or(&[]);
        match Self::ipv4_head(head, avail_len) {
            Some(flow) => flow,
            None => Self::parse_head_copied(head, avail_len),
        }
    }

    /// [`parse_head`](Self::parse_head) of a well-formed IPv4 head (its whole header in
    /// `head`), read in place: the packets of a gateway's datapath. `None` for anything
    /// else, which the general way decides, with its exact error.
    #[inline]
    fn ipv4_head(head: &[u8], avail_len: usize) -> Option<Result<Flow, Error>> {
        let n = head.len();
        let header: &[u8; ipv4::HEADER_LEN] = head.get(..ipv4::HEADER_LEN)?.try_into().ok()?;
        if header[0] >> 4 != 4 {
            return None;
        }
        let header_len = usize::from(header[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if header_len < ipv4::HEADER_LEN || header_len > n || total < header_len {
            return None;
        }
        if total > avail_len {
            return Some(Err(Error::Truncated));
        }
        let protocol = IpProtocol::from(header[9]);
        let src = [header[12], header[13], header[14], header[15]];
        let dst = [header[16], header[17], header[18], header[19]];
        let mut flow = Flow::addresses(IpAddr::from(src), IpAddr::from(dst), protocol);
        let frag_offset = u16::from_be_bytes([header[6], header[7]]) & 0x1fff;
        if frag_offset == 0 {
            // What of the payload exists in the head.
            let payload = head.get(header_len..total.min(n)).unwrap_or(&[]);
            if let Err(e) = flow.read_next_layer(payload, IpProtocol::Icmp) {
                return Some(Err(e));
            }
        }
        Some(Ok(flow))
    }

    /// [`parse_head`](Self::parse_head) the general way: the head copied, its length fields
    /// made to announce what it holds, and parsed as a whole packet.
    fn parse_head_copied(head: &[u8], avail_len: usize) -> Result<Flow, Error> {
        let mut copy = [0u8; HEAD_LEN];
        let copy = copy.get_mut(..head.len()).ok_or(Error::Truncated)?;
        copy.copy_from_slice(head);
        let n = copy.len();
        // The packet's own length must fit what exists, as `parse` checks; then the copy
        // is made to announce what it holds, so that the views read inside it.
        match copy.first().map(|b| b >> 4) {
            Some(4) => {
                let mut p = ipv4::Packet::new_unchecked(&mut copy[..]);
                if n < ipv4::HEADER_LEN {
                    return Err(Error::Truncated);
                }
                let total = usize::from(p.total_len());
                if total > avail_len {
                    return Err(Error::Truncated);
                }
                if total > n {
                    p.set_total_len(n as u16);
                }
            }
            Some(6) => {
                let mut p = ipv6::Packet::new_unchecked(&mut copy[..]);
                if n < ipv6::HEADER_LEN {
                    return Err(Error::Truncated);
                }
                let total = ipv6::HEADER_LEN + usize::from(p.payload_len());
                if total > avail_len {
                    return Err(Error::Truncated);
                }
                if total > n {
                    p.set_payload_len((n - ipv6::HEADER_LEN) as u16);
                }
            }
            Some(_) => return Err(Error::BadVersion),
            None => return Err(Error::Truncated),
        }
        Self::parse(copy)
    }

    /// The flow of an IPv4 packet already checked with `new_checked`.
    #[inline]
    pub fn from_ipv4<T: AsRef<[u8]>>(packet: &ipv4::Packet<T>) -> Result<Flow, Error> {
        let protocol = packet.next_header();
        let mut flow =
            Flow::addresses(packet.src_addr().into(), packet.dst_addr().into(), protocol);
        if packet.frag_offset() == 0 {
            flow.read_next_layer(packet.payload(), IpProtocol::Icmp)?;
        }
        Ok(flow)
    }

    /// The flow of an IPv6 packet already checked with `new_checked`.
    #[inline]
    pub fn from_ipv6<T: AsRef<[u8]>>(packet: &ipv6::Packet<T>) -> Result<Flow, Error> {
        let upper = ipv6::walk_extension_headers(packet)?;
        let mut flow = Flow::addresses(
            packet.src_addr().into(),
            packet.dst_addr().into(),
            upper.protocol,
        );
        if !upper.non_first_fragment {
            let next_layer = packet.packet_bytes().get(upper.offset..).unwrap_or(&[]);
            flow.read_next_layer(next_layer, IpProtocol::Icmpv6)?;
        }
        Ok(flow)
    }

    fn addresses(src: IpAddr, dst: IpAddr, protocol: IpProtocol) -> Flow {
        Flow {
            src,
            dst,
            protocol,
            src_port: None,
            dst_port: None,
            icmp_type_code: None,
        }
    }

    /// Reads ports or ICMP type/code from the start of the next-layer header.
    fn read_next_layer(&mut self, header: &[u8], icmp: IpProtocol) -> Result<(), Error> {
        match self.protocol {
            IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Sctp => {
                let &[s0, s1, d0, d1, ..] = header else {
                    return Err(Error::Truncated);
                };
                self.src_port = Some(u16::from_be_bytes([s0, s1]));
                self.dst_port = Some(u16::from_be_bytes([d0, d1]));
            }
            protocol if protocol == icmp => {
                let &[icmp_type, code, ..] = header else {
                    return Err(Error::Truncated);
                };
                self.icmp_type_code = Some((icmp_type, code));
            }
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.protocol, self.src)?;
        if let Some(port) = self.src_port {
            write!(f, " port {port}")?;
        }
        write!(f, " -> {}", self.dst)?;
        if let Some(port) = self.dst_port {
            write!(f, " port {port}")?;
        }
        if let Some((icmp_type, code)) = self.icmp_type_code {
            write!(f, " type {icmp_type} code {code}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::ipv4::test::{IPV4_OPTIONS, IPV4_UDP};
    use crate::wire::ipv6::ext_test::{IPV6_EXT_TCP, IPV6_FRAG_LATER};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    // Captured: IPv4 10.1.0.1 -> 10.2.0.1, SCTP 2905 -> 2906.
    const IPV4_SCTP: [u8; 32] = [
        0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x40, 0x84, 0x66, 0x55, 0x0a, 0x01, 0x00,
        0x01, 0x0a, 0x02, 0x00, 0x01, 0x0b, 0x59, 0x0b, 0x5a, 0x00, 0x00, 0x00, 0x00, 0xf9, 0x21,
        0x06, 0x0c,
    ];
    // Captured: IPv4 TCP fragment at offset 800 (no TCP header present).
    const IPV4_FRAG_LATER: [u8; 32] = [
        0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x64, 0x40, 0x06, 0x66, 0x6f, 0x0a, 0x01, 0x00,
        0x01, 0x0a, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ];
    // Captured: ICMPv6 echo request fe80::1 -> ff02::1, id 9, seq 1.
    const IPV6_ICMP: [u8; 48] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x08, 0x3a, 0x40, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x80, 0x00, 0x82, 0x2d, 0x00,
        0x09, 0x00, 0x01,
    ];

    fn v6(addr: &str) -> IpAddr {
        addr.parse::<Ipv6Addr>().unwrap().into()
    }

    #[test]
    fn ipv4_udp_ports() {
        let flow = Flow::parse(&IPV4_UDP).unwrap();
        assert_eq!(
            flow,
            Flow {
                src: Ipv4Addr::new(192, 0, 2, 1).into(),
                dst: Ipv4Addr::new(198, 51, 100, 7).into(),
                protocol: IpProtocol::Udp,
                src_port: Some(4500),
                dst_port: Some(500),
                icmp_type_code: None,
            }
        );
        assert_eq!(
            std::format!("{flow}"),
            "UDP 192.0.2.1 port 4500 -> 198.51.100.7 port 500"
        );
    }

    #[test]
    fn ipv4_icmp_behind_options() {
        let flow = Flow::parse(&IPV4_OPTIONS).unwrap();
        assert_eq!(flow.protocol, IpProtocol::Icmp);
        assert_eq!(flow.icmp_type_code, Some((8, 0)));
        assert_eq!((flow.src_port, flow.dst_port), (None, None));
    }

    #[test]
    fn ipv4_sctp_ports_and_opaque_fragment() {
        let flow = Flow::parse(&IPV4_SCTP).unwrap();
        assert_eq!(
            (flow.protocol, flow.src_port, flow.dst_port),
            (IpProtocol::Sctp, Some(2905), Some(2906))
        );
        // A first fragment (MF set, offset 0) still carries its ports.
        let mut first_fragment = IPV4_SCTP;
        first_fragment[6] = 0x20;
        let flow = Flow::parse(&first_fragment).unwrap();
        assert_eq!((flow.src_port, flow.dst_port), (Some(2905), Some(2906)));
        let flow = Flow::parse(&IPV4_FRAG_LATER).unwrap();
        assert_eq!(flow.protocol, IpProtocol::Tcp);
        assert_eq!(
            (flow.src_port, flow.dst_port, flow.icmp_type_code),
            (None, None, None)
        );
    }

    #[test]
    fn ipv6_through_extension_headers() {
        let flow = Flow::parse(&IPV6_EXT_TCP).unwrap();
        assert_eq!(
            flow,
            Flow {
                src: v6("2001:db8::1"),
                dst: v6("2001:db8::2"),
                protocol: IpProtocol::Tcp,
                src_port: Some(40000),
                dst_port: Some(443),
                icmp_type_code: None,
            }
        );
        let flow = Flow::parse(&IPV6_FRAG_LATER).unwrap();
        assert_eq!(flow.protocol, IpProtocol::Udp);
        assert_eq!((flow.src_port, flow.dst_port), (None, None));
        let flow = Flow::parse(&IPV6_ICMP).unwrap();
        assert_eq!(flow.protocol, IpProtocol::Icmpv6);
        assert_eq!(flow.icmp_type_code, Some((128, 0)));
        assert_eq!(flow.dst, v6("ff02::1"));
    }

    #[test]
    fn other_protocols_have_no_ports() {
        let mut bytes = IPV4_SCTP;
        bytes[9] = 50;
        let flow = Flow::parse(&bytes).unwrap();
        assert_eq!(flow.protocol, IpProtocol::Esp);
        assert_eq!((flow.src_port, flow.icmp_type_code), (None, None));
    }

    #[test]
    fn rejects_short_and_unknown_versions() {
        assert_eq!(Flow::parse(&[]), Err(Error::Truncated));
        assert_eq!(Flow::parse(&[0x55; 40]), Err(Error::BadVersion));
        // A UDP datagram cut after 3 bytes of its header.
        let mut bytes = [0u8; 23];
        bytes[..20].copy_from_slice(&IPV4_UDP[..20]);
        bytes[3] = 23;
        assert_eq!(Flow::parse(&bytes), Err(Error::Truncated));
        assert_eq!(Flow::parse(&IPV6_EXT_TCP[..100]), Err(Error::Truncated));
    }

    /// `pkt` grown to `len` bytes, its IP length fields saying so.
    fn grown(pkt: &[u8], len: usize) -> Vec<u8> {
        let mut v = pkt.to_vec();
        v.resize(len, 0xab);
        match v[0] >> 4 {
            4 => v[2..4].copy_from_slice(&(len as u16).to_be_bytes()),
            _ => v[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes()),
        }
        v
    }

    #[test]
    fn a_packets_head_gives_the_whole_packets_flow() {
        for pkt in [
            &IPV4_UDP[..],
            &IPV4_OPTIONS[..],
            &IPV4_SCTP[..],
            &IPV6_EXT_TCP[..],
        ] {
            for len in [pkt.len(), 200, 1500, 9000] {
                let whole = grown(pkt, len.max(pkt.len()));
                let flow = Flow::parse(&whole).unwrap();
                for head in [HEAD_LEN, 64, whole.len()] {
                    let head = &whole[..head.min(whole.len())];
                    match Flow::parse_head(head, whole.len()) {
                        Ok(f) => assert_eq!(f, flow),
                        // Only where the selectors lie past the head.
                        Err(e) => assert_eq!(
                            (e, head.len().min(HEAD_LEN) < whole.len()),
                            (Error::Truncated, true)
                        ),
                    }
                }
            }
        }
        // The packet says it is longer than what exists: refused, as by `parse`.
        let whole = grown(&IPV4_UDP, 1500);
        assert_eq!(Flow::parse_head(&whole, 1499), Err(Error::Truncated));
        assert_eq!(Flow::parse_head(&whole[..10], 1500), Err(Error::Truncated));
        assert_eq!(Flow::parse_head(&[0x55; 64], 1500), Err(Error::BadVersion));
        // Trailing bytes past the IP length are allowed, as by `parse`.
        assert_eq!(
            Flow::parse_head(&whole[..HEAD_LEN], 1600),
            Flow::parse(&whole)
        );
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..128),
            version in prop_oneof![Just(4u8), Just(6), any::<u8>()],
        ) {
            if let Some(first) = bytes.first_mut() {
                *first = (version << 4) | (*first & 0x0f);
            }
            if let Ok(flow) = Flow::parse(&bytes) {
                prop_assert_eq!(flow.src_port.is_some(), flow.dst_port.is_some());
                prop_assert!(flow.src_port.is_none() || flow.icmp_type_code.is_none());
            }
        }

        /// The in-place IPv4 reading agrees with the general way on well-formed headers of
        /// every length, protocol, fragment offset, cut and announced length.
        #[test]
        fn an_ipv4_head_read_in_place_agrees_with_the_general_way(
            mut bytes in proptest::collection::vec(any::<u8>(), 20..200),
            ihl in 0u8..16,
            protocol in prop_oneof![Just(1u8), Just(6), Just(17), Just(132), Just(58), any::<u8>()],
            fragment in prop_oneof![Just(0u16), any::<u16>()],
            total in 0usize..220,
            cut in 0usize..100,
            extra in 0usize..40,
        ) {
            bytes[0] = 0x40 | ihl;
            bytes[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            bytes[6..8].copy_from_slice(&fragment.to_be_bytes());
            bytes[9] = protocol;
            let avail = (total + extra).min(bytes.len()).max(1);
            let head = &bytes[..cut.min(avail)];
            let head = &head[..head.len().min(HEAD_LEN)];
            prop_assert_eq!(Flow::parse_head(head, avail), Flow::parse_head_copied(head, avail));
            if let Some(fast) = Flow::ipv4_head(head, avail) {
                prop_assert_eq!(fast, Flow::parse_head_copied(head, avail));
            }
        }

        #[test]
        fn a_head_agrees_with_the_whole_packet(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
            version in prop_oneof![Just(4u8), Just(6)],
            cut in 0usize..200,
        ) {
            if let Some(first) = bytes.first_mut() {
                *first = (version << 4) | (*first & 0x0f);
            }
            let whole = Flow::parse(&bytes);
            let head = Flow::parse_head(&bytes[..cut.min(bytes.len())], bytes.len());
            match (head, whole) {
                (Ok(h), w) => prop_assert_eq!(Ok(h), w),
                // A head that says no: the whole packet says no too, or the head was short.
                (Err(_), Err(_)) => {}
                (Err(e), Ok(_)) => prop_assert_eq!(e, Error::Truncated),
            }
        }
    }
}
