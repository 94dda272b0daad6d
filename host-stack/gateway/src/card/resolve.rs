//! ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861 §4.3, §4.4, §7.2) as the card's
//! port speaks them: what espo answers (requests and solicitations for its own tunnel
//! endpoints), what it asks (the address of its next hop), and the replies it learns from.
//!
//! [`parse`] reads an untrusted Ethernet frame once, with every length and field checked
//! (it never panics); the emitters build complete frames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use espo_ipsec::wire::IpProtocol;
use espo_ipsec::wire::checksum;

/// A MAC address.
pub type Mac = [u8; 6];

const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETH_LEN: usize = 14;
const ARP_LEN: usize = 28;
const IPV6_LEN: usize = 40;
/// ICMPv6 neighbour solicitation and advertisement.
const NS: u8 = 135;
const NA: u8 = 136;
/// ND options: source and target link-layer address.
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// NS/NA: type, code, checksum, reserved/flags, target.
const ND_LEN: usize = 24;
/// NA flags: solicited, override.
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

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

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// Classifies an Ethernet frame from the wire.
pub fn parse(frame: &[u8]) -> Kind {
    match be16(frame, 12) {
        Some(ETHERTYPE_ARP) => parse_arp(frame.get(ETH_LEN..).unwrap_or(&[])),
        Some(ETHERTYPE_IPV6) => match frame.get(ETH_LEN..) {
            Some(ip) if ip.get(6) == Some(&58) => parse_nd(frame, ip),
            _ => Kind::Data,
        },
        _ => Kind::Data,
    }
}

fn parse_arp(arp: &[u8]) -> Kind {
    let bad = Kind::Malformed(Malformed::Arp);
    if arp.len() < ARP_LEN {
        return bad;
    }
    // Ethernet hardware (1), IPv4 protocol, 6- and 4-byte addresses.
    if be16(arp, 0) != Some(1) || be16(arp, 2) != Some(0x0800) || arp[4] != 6 || arp[5] != 4 {
        return bad;
    }
    let (Some(sha), Some(spa), Some(tpa)) =
        (array::<6>(arp, 8), array::<4>(arp, 14), array::<4>(arp, 24))
    else {
        return bad;
    };
    let sender_ip = IpAddr::V4(Ipv4Addr::from(spa));
    if sha[0] & 1 != 0 {
        return bad; // a group address cannot be a sender's
    }
    match be16(arp, 6) {
        Some(1) => Kind::Neighbour(Neighbourly::Request {
            sender_ip,
            sender_mac: Some(sha),
            target: IpAddr::V4(Ipv4Addr::from(tpa)),
        }),
        Some(2) => Kind::Neighbour(Neighbourly::Reply {
            ip: sender_ip,
            mac: sha,
        }),
        _ => Kind::OtherControl,
    }
}

fn parse_nd(frame: &[u8], ip: &[u8]) -> Kind {
    let bad = Kind::Malformed(Malformed::Nd);
    let Some(icmp_type) = ip.get(IPV6_LEN).copied() else {
        return bad;
    };
    if icmp_type != NS && icmp_type != NA {
        return Kind::OtherControl;
    }
    let Some(payload_len) = be16(ip, 4).map(usize::from) else {
        return bad;
    };
    let Some(icmp) = ip.get(IPV6_LEN..IPV6_LEN + payload_len) else {
        return bad;
    };
    let (Some(src), Some(dst)) = (array::<16>(ip, 8), array::<16>(ip, 24)) else {
        return bad;
    };
    let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
    // RFC 4861 §7.1.1/§7.1.2: hop limit 255 (never forwarded), code 0, at least 24 bytes,
    // a valid checksum, options of non-zero length.
    if ip.get(7) != Some(&255) || icmp.get(1) != Some(&0) || icmp.len() < ND_LEN {
        return bad;
    }
    let pseudo = checksum::pseudo_header_v6(&src, &dst, IpProtocol::Icmpv6, payload_len as u32);
    if checksum::combine(&[pseudo, checksum::data(icmp)]) != 0xffff {
        return bad;
    }
    let Some(target) = array::<16>(icmp, 8).map(Ipv6Addr::from) else {
        return bad;
    };
    if target.is_multicast() {
        return bad;
    }
    let mut link_layer = None;
    let mut at = ND_LEN;
    while at < icmp.len() {
        let (Some(&kind), Some(&len8)) = (icmp.get(at), icmp.get(at + 1)) else {
            return bad;
        };
        let len = usize::from(len8) * 8;
        if len == 0 || at + len > icmp.len() {
            return bad;
        }
        let wanted = if icmp_type == NS {
            OPT_SOURCE_LL
        } else {
            OPT_TARGET_LL
        };
        if kind == wanted && len == 8 {
            link_layer = array::<6>(icmp, at + 2);
        }
        at += len;
    }
    if icmp_type == NS {
        // From the unspecified address (DAD) there is no source link-layer option.
        if src.is_unspecified() && link_layer.is_some() {
            return bad;
        }
        // A group address cannot be a sender's.
        if link_layer.is_some_and(|mac| mac[0] & 1 != 0) {
            return bad;
        }
        Kind::Neighbour(Neighbourly::Request {
            sender_ip: IpAddr::V6(src),
            sender_mac: link_layer,
            target: IpAddr::V6(target),
        })
    } else {
        // Without the option the advertiser's frame source is its address on this link.
        let mac = link_layer.or_else(|| array::<6>(frame, 6));
        match mac {
            Some(mac) if mac[0] & 1 == 0 => Kind::Neighbour(Neighbourly::Reply {
                ip: IpAddr::V6(target),
                mac,
            }),
            _ => bad,
        }
    }
}

fn ethernet(out: &mut Vec<u8>, dst: Mac, src: Mac, ethertype: u16) {
    out.clear();
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

fn arp(out: &mut Vec<u8>, op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) {
    out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    out.extend_from_slice(&op.to_be_bytes());
    out.extend_from_slice(&sha);
    out.extend_from_slice(&spa.octets());
    out.extend_from_slice(&tha);
    out.extend_from_slice(&tpa.octets());
    // Padded to the 60-byte minimum frame.
    out.resize(out.len().max(60), 0);
}

/// An ARP request for `target`, broadcast, from `ours` at `mac`.
pub fn arp_request(out: &mut Vec<u8>, mac: Mac, ours: Ipv4Addr, target: Ipv4Addr) {
    ethernet(out, [0xff; 6], mac, ETHERTYPE_ARP);
    arp(out, 1, mac, ours, [0; 6], target);
}

/// The ARP reply telling `asker` (at `asker_mac`) that `ours` is at `mac`.
pub fn arp_reply(out: &mut Vec<u8>, mac: Mac, ours: Ipv4Addr, asker: Ipv4Addr, asker_mac: Mac) {
    ethernet(out, asker_mac, mac, ETHERTYPE_ARP);
    arp(out, 2, mac, ours, asker_mac, asker);
}

/// An IPv6 packet carrying an NS or NA, checksum filled in.
#[allow(clippy::too_many_arguments)]
fn nd(
    out: &mut Vec<u8>,
    eth_dst: Mac,
    mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    icmp_type: u8,
    flags: u8,
    target: Ipv6Addr,
    option: u8,
) {
    ethernet(out, eth_dst, mac, ETHERTYPE_IPV6);
    let payload_len = ND_LEN + 8;
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&(payload_len as u16).to_be_bytes());
    out.extend_from_slice(&[58, 255]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    let icmp_at = out.len();
    out.extend_from_slice(&[icmp_type, 0, 0, 0, flags, 0, 0, 0]);
    out.extend_from_slice(&target.octets());
    out.extend_from_slice(&[option, 1]);
    out.extend_from_slice(&mac);
    let pseudo = checksum::pseudo_header_v6(&src, &dst, IpProtocol::Icmpv6, payload_len as u32);
    let sum = !checksum::combine(&[pseudo, checksum::data(&out[icmp_at..])]);
    out[icmp_at + 2..icmp_at + 4].copy_from_slice(&sum.to_be_bytes());
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

/// A neighbour solicitation for `target`, to its solicited-node group, from `ours`.
pub fn nd_solicit(out: &mut Vec<u8>, mac: Mac, ours: Ipv6Addr, target: Ipv6Addr) {
    let group = solicited_node(target);
    let g = group.octets();
    let eth_dst = [0x33, 0x33, g[12], g[13], g[14], g[15]];
    nd(out, eth_dst, mac, ours, group, NS, 0, target, OPT_SOURCE_LL);
}

/// The neighbour advertisement answering a solicitation for `ours` from `asker` (the
/// unspecified address for DAD: then to all nodes, unsolicited).
pub fn nd_advertise(out: &mut Vec<u8>, mac: Mac, ours: Ipv6Addr, asker: Ipv6Addr, asker_mac: Mac) {
    if asker.is_unspecified() {
        let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        let eth = [0x33, 0x33, 0, 0, 0, 1];
        nd(
            out,
            eth,
            mac,
            ours,
            all_nodes,
            NA,
            NA_OVERRIDE,
            ours,
            OPT_TARGET_LL,
        );
    } else {
        let flags = NA_SOLICITED | NA_OVERRIDE;
        nd(
            out,
            asker_mac,
            mac,
            ours,
            asker,
            NA,
            flags,
            ours,
            OPT_TARGET_LL,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
