//! ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861 §4.3, §4.4, §7.2) as the card's
//! port speaks them: what espo answers (requests and solicitations for its own tunnel
//! endpoints), what it asks (the address of its next hop), and the replies it learns from.
//!
//! The bytes are read and written by `espo_ipsec::wire` (`ethernet`, `arp`, `ipv6`,
//! `icmpv6`, `ndisc`); what is decided here is what a frame means to the port — and what
//! it may not be trusted with: [`parse`] never panics, and never yields a group address
//! as a neighbour's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use espo_ipsec::wire::ethernet::{self, Address, EtherType};
use espo_ipsec::wire::icmpv6::{self, Message};
use espo_ipsec::wire::ndisc::{self, NeighborFlags};
use espo_ipsec::wire::{ChecksumCaps, IpProtocol, arp, ipv6};

/// A MAC address.
pub type Mac = [u8; 6];

/// The smallest Ethernet frame (without its FCS): shorter ones are padded.
const MIN_FRAME_LEN: usize = 60;
/// RFC 4861 §7.1: neighbour discovery is never forwarded, so it arrives with hop limit 255.
const ND_HOP_LIMIT: u8 = 255;

/// What a frame says about neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbourly {
    /// Who has `target`? Tell `sender_ip` at `sender_mac` (`sender_ip` unspecified for
    /// IPv6 duplicate address detection).
    Request {
        sender_ip: IpAddr,
        sender_mac: Option<Mac>,
        target: IpAddr,
    },
    /// `ip` is at `mac` (an ARP reply, or a neighbour advertisement).
    Reply { ip: IpAddr, mac: Mac },
}

/// Why an ARP or ND frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    Arp,
    Nd,
}

/// What a frame is, for the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ARP or ND, understood.
    Neighbour(Neighbourly),
    /// ARP or ND that espo refuses (counted and ignored).
    Malformed(Malformed),
    /// Other ARP operations or ICMPv6 (not neighbour discovery): nothing for espo.
    OtherControl,
    /// Anything else: IP traffic for the card.
    Data,
}

/// Classifies an Ethernet frame from the wire.
pub fn parse(frame: &[u8]) -> Kind {
    let Ok(frame) = ethernet::Frame::new_checked(frame) else {
        return Kind::Data;
    };
    match frame.ethertype() {
        EtherType::Arp => parse_arp(frame.payload()),
        EtherType::Ipv6
            if ipv6::Packet::new_unchecked(frame.payload()).next_header() == IpProtocol::Icmpv6 =>
        {
            parse_nd(frame.src_addr(), frame.payload())
        }
        _ => Kind::Data,
    }
}

fn parse_arp(bytes: &[u8]) -> Kind {
    let bad = Kind::Malformed(Malformed::Arp);
    let Ok(repr) = arp::Packet::new_checked(bytes).and_then(|p| arp::Repr::parse(&p)) else {
        return bad;
    };
    if repr.source_hardware_addr.is_multicast() {
        return bad; // a group address cannot be a sender's
    }
    let sender_ip = IpAddr::V4(repr.source_protocol_addr);
    let sender_mac = repr.source_hardware_addr.0;
    match repr.operation {
        arp::Operation::Request => Kind::Neighbour(Neighbourly::Request {
            sender_ip,
            sender_mac: Some(sender_mac),
            target: IpAddr::V4(repr.target_protocol_addr),
        }),
        arp::Operation::Reply => Kind::Neighbour(Neighbourly::Reply {
            ip: sender_ip,
            mac: sender_mac,
        }),
        arp::Operation::Unknown(_) => Kind::OtherControl,
    }
}

/// An IPv6 packet carrying ICMPv6, from a frame sent by `frame_src`.
fn parse_nd(frame_src: Address, ip: &[u8]) -> Kind {
    let bad = Kind::Malformed(Malformed::Nd);
    // Only solicitations and advertisements are the port's; other ICMPv6 is not looked
    // at further.
    match ip.get(ipv6::HEADER_LEN).copied().map(Message::from) {
        None => return bad,
        Some(Message::NeighborSolicit | Message::NeighborAdvert) => {}
        Some(_) => return Kind::OtherControl,
    }
    let Ok(packet) = ipv6::Packet::new_checked(ip) else {
        return bad;
    };
    if packet.hop_limit() != ND_HOP_LIMIT {
        return bad;
    }
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    let Ok(icmp) = icmpv6::Packet::new_checked(packet.payload()) else {
        return bad;
    };
    let Ok(icmpv6::Repr::Ndisc(nd)) =
        icmpv6::Repr::parse(&src, &dst, &icmp, &ChecksumCaps::default())
    else {
        return bad;
    };
    match nd {
        ndisc::Repr::NeighborSolicit {
            target_addr,
            lladdr,
        } => {
            // From the unspecified address (DAD) there is no source link-layer option
            // (RFC 4861 §7.1.1), and a group address cannot be a sender's.
            if (src.is_unspecified() && lladdr.is_some())
                || lladdr.is_some_and(|mac| mac.is_multicast())
            {
                return bad;
            }
            Kind::Neighbour(Neighbourly::Request {
                sender_ip: IpAddr::V6(src),
                sender_mac: lladdr.map(|mac| mac.0),
                target: IpAddr::V6(target_addr),
            })
        }
        ndisc::Repr::NeighborAdvert {
            target_addr,
            lladdr,
            ..
        } => {
            // Without the option the advertiser's frame source is its address on this link.
            let mac = lladdr.unwrap_or(frame_src);
            if mac.is_multicast() {
                return bad;
            }
            Kind::Neighbour(Neighbourly::Reply {
                ip: IpAddr::V6(target_addr),
                mac: mac.0,
            })
        }
    }
}

/// Makes `out` an Ethernet frame from `src` to `dst` with room for `payload_len` bytes
/// of payload (at least the minimum frame), and returns that payload.
fn ethernet(
    out: &mut Vec<u8>,
    dst: Mac,
    src: Mac,
    ethertype: EtherType,
    payload_len: usize,
) -> &mut [u8] {
    out.clear();
    out.resize((ethernet::HEADER_LEN + payload_len).max(MIN_FRAME_LEN), 0);
    let mut frame = ethernet::Frame::new_unchecked(&mut out[..]);
    let header = ethernet::Repr {
        src_addr: Address(src),
        dst_addr: Address(dst),
        ethertype,
    };
    // The buffer was sized for the header above.
    let _ = header.emit(&mut frame);
    &mut out[ethernet::HEADER_LEN..]
}

fn arp(out: &mut Vec<u8>, eth_dst: Mac, repr: arp::Repr) {
    let payload = ethernet(
        out,
        eth_dst,
        repr.source_hardware_addr.0,
        EtherType::Arp,
        repr.buffer_len(),
    );
    // The payload was sized for the packet.
    let _ = repr.emit(&mut arp::Packet::new_unchecked(payload));
}

/// An ARP request for `target`, broadcast, from `ours` at `mac`.
pub fn arp_request(out: &mut Vec<u8>, mac: Mac, ours: Ipv4Addr, target: Ipv4Addr) {
    let repr = arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: Address(mac),
        source_protocol_addr: ours,
        target_hardware_addr: Address::default(),
        target_protocol_addr: target,
    };
    arp(out, Address::BROADCAST.0, repr);
}

/// The ARP reply telling `asker` (at `asker_mac`) that `ours` is at `mac`.
pub fn arp_reply(out: &mut Vec<u8>, mac: Mac, ours: Ipv4Addr, asker: Ipv4Addr, asker_mac: Mac) {
    let repr = arp::Repr {
        operation: arp::Operation::Reply,
        source_hardware_addr: Address(mac),
        source_protocol_addr: ours,
        target_hardware_addr: Address(asker_mac),
        target_protocol_addr: asker,
    };
    arp(out, asker_mac, repr);
}

/// An IPv6 packet from `src` to `dst` carrying a solicitation or advertisement, in a frame
/// to `eth_dst` from `mac`.
fn nd(out: &mut Vec<u8>, eth_dst: Mac, mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, repr: ndisc::Repr) {
    let message = icmpv6::Repr::Ndisc(repr);
    let ip = ipv6::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: message.buffer_len(),
        hop_limit: ND_HOP_LIMIT,
        traffic_class: 0,
        flow_label: 0,
    };
    let payload = ethernet(
        out,
        eth_dst,
        mac,
        EtherType::Ipv6,
        ip.buffer_len() + ip.payload_len,
    );
    // The payload was sized for both headers.
    let _ = ip.emit(&mut ipv6::Packet::new_unchecked(&mut *payload));
    let icmp = payload.get_mut(ipv6::HEADER_LEN..).unwrap_or(&mut []);
    let _ = message.emit(
        &src,
        &dst,
        &mut icmpv6::Packet::new_unchecked(icmp),
        &ChecksumCaps::default(),
    );
}

/// The solicited-node multicast address of `target` (RFC 4291 §2.7.1).
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let t = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    )
}

/// The Ethernet group address of an IPv6 multicast group (RFC 2464 §7).
fn group_mac(group: Ipv6Addr) -> Mac {
    let g = group.octets();
    [0x33, 0x33, g[12], g[13], g[14], g[15]]
}

/// A neighbour solicitation for `target`, to its solicited-node group, from `ours`.
pub fn nd_solicit(out: &mut Vec<u8>, mac: Mac, ours: Ipv6Addr, target: Ipv6Addr) {
    let group = solicited_node(target);
    let repr = ndisc::Repr::NeighborSolicit {
        target_addr: target,
        lladdr: Some(Address(mac)),
    };
    nd(out, group_mac(group), mac, ours, group, repr);
}

/// The neighbour advertisement answering a solicitation for `ours` from `asker` (the
/// unspecified address for DAD: then to all nodes, unsolicited).
pub fn nd_advertise(out: &mut Vec<u8>, mac: Mac, ours: Ipv6Addr, asker: Ipv6Addr, asker_mac: Mac) {
    let (eth_dst, dst, flags) = if asker.is_unspecified() {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        (group_mac(all_nodes), all_nodes, NeighborFlags::OVERRIDE)
    } else {
        (
            asker_mac,
            asker,
            NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
        )
    };
    let repr = ndisc::Repr::NeighborAdvert {
        flags,
        target_addr: ours,
        lladdr: Some(Address(mac)),
    };
    nd(out, eth_dst, mac, ours, dst, repr);
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_ipsec::wire::checksum;

    const ETH_LEN: usize = ethernet::HEADER_LEN;
    const IPV6_LEN: usize = ipv6::HEADER_LEN;
    const ND_LEN: usize = ndisc::FIXED_LEN;
    const OPT_SOURCE_LL: u8 = 1;
    const NA_SOLICITED: u8 = NeighborFlags::SOLICITED.bits();
    const NA_OVERRIDE: u8 = NeighborFlags::OVERRIDE.bits();

    const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0xa];
    const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0xb];

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn an_arp_request_and_its_reply_round_trip() {
        let mut f = vec![0xee; 100];
        arp_request(&mut f, MAC_A, v4("192.0.2.1"), v4("192.0.2.2"));
        assert_eq!(f.len(), 60, "padded to the minimum frame");
        assert_eq!(&f[..6], &[0xff; 6]);
        assert_eq!(
            parse(&f),
            Kind::Neighbour(Neighbourly::Request {
                sender_ip: "192.0.2.1".parse().unwrap(),
                sender_mac: Some(MAC_A),
                target: "192.0.2.2".parse().unwrap(),
            })
        );
        arp_reply(&mut f, MAC_B, v4("192.0.2.2"), v4("192.0.2.1"), MAC_A);
        assert_eq!(&f[..6], &MAC_A, "unicast to the asker");
        assert_eq!(
            parse(&f),
            Kind::Neighbour(Neighbourly::Reply {
                ip: "192.0.2.2".parse().unwrap(),
                mac: MAC_B
            })
        );
    }

    #[test]
    fn broken_arp_is_malformed_and_never_panics() {
        let mut f = Vec::new();
        arp_request(&mut f, MAC_A, v4("192.0.2.1"), v4("192.0.2.2"));
        for len in 0..42 {
            let k = parse(&f[..len]);
            assert!(
                matches!(k, Kind::Malformed(Malformed::Arp) | Kind::Data),
                "{len}: {k:?}"
            );
        }
        let mut wrong = f.clone();
        wrong[ETH_LEN + 4] = 8; // hardware address length
        assert_eq!(parse(&wrong), Kind::Malformed(Malformed::Arp));
        let mut group = f.clone();
        group[ETH_LEN + 8] = 0x01; // a multicast sender
        assert_eq!(parse(&group), Kind::Malformed(Malformed::Arp));
        let mut rarp = f.clone();
        rarp[ETH_LEN + 7] = 3;
        assert_eq!(parse(&rarp), Kind::OtherControl);
    }

    #[test]
    fn a_solicitation_and_its_advertisement_round_trip() {
        let mut f = Vec::new();
        nd_solicit(&mut f, MAC_A, v6("2001:db8::1"), v6("2001:db8::2"));
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0, 0, 2]);
        assert_eq!(
            &f[ETH_LEN + 24..ETH_LEN + 40],
            &v6("ff02::1:ff00:2").octets()
        );
        assert_eq!(
            parse(&f),
            Kind::Neighbour(Neighbourly::Request {
                sender_ip: "2001:db8::1".parse().unwrap(),
                sender_mac: Some(MAC_A),
                target: "2001:db8::2".parse().unwrap(),
            })
        );
        nd_advertise(&mut f, MAC_B, v6("2001:db8::2"), v6("2001:db8::1"), MAC_A);
        assert_eq!(&f[..6], &MAC_A);
        assert_eq!(f[ETH_LEN + 44], NA_SOLICITED | NA_OVERRIDE);
        assert_eq!(
            parse(&f),
            Kind::Neighbour(Neighbourly::Reply {
                ip: "2001:db8::2".parse().unwrap(),
                mac: MAC_B
            })
        );
        // DAD: answered to all nodes, not solicited.
        nd_advertise(
            &mut f,
            MAC_B,
            v6("2001:db8::2"),
            Ipv6Addr::UNSPECIFIED,
            MAC_A,
        );
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(f[ETH_LEN + 44], NA_OVERRIDE);
    }

    #[test]
    fn broken_neighbour_discovery_is_malformed() {
        let mut f = Vec::new();
        nd_solicit(&mut f, MAC_A, v6("2001:db8::1"), v6("2001:db8::2"));
        let mut sum = f.clone();
        sum[ETH_LEN + 42] ^= 1;
        assert_eq!(parse(&sum), Kind::Malformed(Malformed::Nd), "checksum");
        let mut hops = f.clone();
        hops[ETH_LEN + 7] = 64;
        assert_eq!(parse(&hops), Kind::Malformed(Malformed::Nd), "hop limit");
        let mut opt = f.clone();
        opt[ETH_LEN + 40 + 25] = 0; // option length 0 (checksum no longer matters)
        assert_eq!(parse(&opt), Kind::Malformed(Malformed::Nd));
        let mut long = f.clone();
        long[ETH_LEN + 5] = 200; // payload length beyond the frame
        assert_eq!(parse(&long), Kind::Malformed(Malformed::Nd));
        for len in ETH_LEN + 7..f.len() {
            assert_eq!(parse(&f[..len]), Kind::Malformed(Malformed::Nd), "{len}");
        }
        let mut echo = f.clone();
        echo[ETH_LEN + 40] = 128;
        assert_eq!(parse(&echo), Kind::OtherControl);
    }

    /// An NS from `src` with `mac` in its source link-layer option, checksum valid.
    fn solicitation_from(mac: Mac) -> Vec<u8> {
        let mut f = Vec::new();
        nd_solicit(&mut f, MAC_A, v6("2001:db8::1"), v6("2001:db8::2"));
        let option = ETH_LEN + IPV6_LEN + ND_LEN;
        assert_eq!(f[option], OPT_SOURCE_LL);
        f[option + 2..option + 8].copy_from_slice(&mac);
        let icmp = ETH_LEN + IPV6_LEN;
        f[icmp + 2..icmp + 4].fill(0);
        let pseudo = checksum::pseudo_header_v6(
            &v6("2001:db8::1"),
            &solicited_node(v6("2001:db8::2")),
            IpProtocol::Icmpv6,
            (f.len() - icmp) as u32,
        );
        let sum = !checksum::combine(&[pseudo, checksum::data(&f[icmp..])]);
        f[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
        f
    }

    #[test]
    fn a_group_address_is_never_a_neighbours_link_layer_address() {
        // A valid solicitation parses, with its option.
        assert!(matches!(
            parse(&solicitation_from(MAC_B)),
            Kind::Neighbour(Neighbourly::Request {
                sender_mac: Some(MAC_B),
                ..
            })
        ));
        for group in [
            [0xff; 6],
            [0x33, 0x33, 0, 0, 0, 1],
            [0x01, 0, 0x5e, 0, 0, 0xfb],
        ] {
            assert_eq!(
                parse(&solicitation_from(group)),
                Kind::Malformed(Malformed::Nd),
                "NS with source link-layer address {group:02x?}"
            );
            let mut arp = Vec::new();
            arp_request(&mut arp, MAC_A, v4("192.0.2.1"), v4("192.0.2.2"));
            arp[ETH_LEN + 8..ETH_LEN + 14].copy_from_slice(&group);
            assert_eq!(
                parse(&arp),
                Kind::Malformed(Malformed::Arp),
                "ARP {group:02x?}"
            );
            arp[ETH_LEN + 7] = 2; // a reply
            assert_eq!(
                parse(&arp),
                Kind::Malformed(Malformed::Arp),
                "ARP {group:02x?}"
            );
        }
    }

    proptest::proptest! {
        /// Any bytes, and valid requests with any byte changed or cut short: classified,
        /// never a panic.
        #[test]
        fn parsing_untrusted_frames_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            at in 0usize..90,
            value in proptest::num::u8::ANY,
            cut in 0usize..90,
        ) {
            let _ = parse(&bytes);
            let mut arp = Vec::new();
            arp_request(&mut arp, MAC_A, v4("192.0.2.1"), v4("192.0.2.2"));
            let mut nd = Vec::new();
            nd_solicit(&mut nd, MAC_A, v6("2001:db8::1"), v6("2001:db8::2"));
            for frame in [arp, nd] {
                let mut f = frame.clone();
                if let Some(b) = f.get_mut(at) {
                    *b = value;
                }
                let _ = parse(&f);
                let _ = parse(&f[..cut.min(f.len())]);
            }
        }
    }

    #[test]
    fn ip_traffic_is_data() {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse(&f), Kind::Data);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[ETH_LEN + 6] = 50;
        assert_eq!(parse(&f), Kind::Data);
        assert_eq!(parse(&[]), Kind::Data);
    }
}
