//! A card whose Ethernet port is its own (a card on the PCI bus, or a served card on an
//! interface of its server): what it sends leaves as the host posted it, so the host
//! writes each frame's next-hop MAC before posting, and the frames its link layer needs
//! (ARP, neighbour discovery, ICMP errors) come back from the card instead of from a socket.
//!
//! [`NextHopMacs`] is the table the host's link layer (the gateway's port thread, which
//! resolves next hops with ARP and neighbour discovery) fills and the engine reads once
//! per frame; [`NextHopMacs::takes`] says which received frames are the link layer's.

use std::net::IpAddr;
use std::sync::RwLock;

use espo_ipsec::wire::ethernet::{self, EtherType};
use espo_ipsec::wire::{IpProtocol, ip, udp, udp_encap};

/// The MAC address of each next hop, as resolved by the host's link layer.
#[derive(Debug, Default)]
pub struct NextHopMacs {
    /// The configured next hop per family (absent: a frame's destination is its next hop).
    via: Vec<IpAddr>,
    table: RwLock<Vec<(IpAddr, [u8; 6])>>,
    /// IKE datagrams (UDP port 500, and port 4500 behind the non-ESP marker or a NAT
    /// keepalive) are the host's too: its key-management daemon reads them there.
    ike: bool,
}

impl NextHopMacs {
    /// An empty table; frames of a family with an entry in `via` go to that next hop.
    pub fn new(via: Vec<IpAddr>) -> Self {
        NextHopMacs {
            via,
            table: RwLock::default(),
            ike: false,
        }
    }

    /// IKE datagrams go to the host's link layer as well (see [`takes`](Self::takes)).
    pub fn with_ike(mut self) -> Self {
        self.ike = true;
        self
    }

    /// Whether a received frame is the host's link layer's rather than the IPsec path's:
    /// [`is_link_frame`], and IKE datagrams when asked for ([`with_ike`](Self::with_ike)).
    pub fn takes(&self, frame: &[u8]) -> bool {
        is_link_frame(frame) || (self.ike && is_ike_datagram(frame))
    }

    /// The next hop of a frame to `dst`.
    pub fn next_hop(&self, dst: IpAddr) -> IpAddr {
        self.via
            .iter()
            .copied()
            .find(|h| h.is_ipv4() == dst.is_ipv4())
            .unwrap_or(dst)
    }

    /// The MAC of `dst`'s next hop, if it is resolved.
    pub fn mac_for(&self, dst: IpAddr) -> Option<[u8; 6]> {
        let hop = self.next_hop(dst);
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table.iter().find(|(ip, _)| *ip == hop).map(|(_, mac)| *mac)
    }

    /// Replaces the table with the next hops resolved now. Called on every round of the
    /// port thread: the write lock, which holds up the datapath's readers, is taken only
    /// when something changed.
    pub fn set(&self, resolved: &[(IpAddr, [u8; 6])]) {
        if self
            .table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_slice()
            == resolved
        {
            return;
        }
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        table.clear();
        table.extend_from_slice(resolved);
    }

    /// The resolved next hops.
    pub fn resolved(&self) -> Vec<(IpAddr, [u8; 6])> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The destination address of an IPv4 or IPv6 packet.
pub fn ip_destination(ip: &[u8]) -> Option<IpAddr> {
    Some(ip::Packet::new_checked(ip).ok()?.dst_addr())
}

/// A frame's IP packet (by its own EtherType: a VLAN-tagged frame has none here) with the
/// protocol of what follows its header and that upper layer — `None` for a non-first IPv4
/// fragment, which carries no upper-layer header.
fn upper_layer(frame: &[u8]) -> Option<(IpProtocol, &[u8])> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if !matches!(eth.ethertype(), EtherType::Ipv4 | EtherType::Ipv6) {
        return None;
    }
    let bytes = frame.get(ethernet::HEADER_LEN..)?;
    let packet = ip::Packet::new_checked(bytes).ok()?;
    if let ip::Packet::Ipv4(v4) = &packet
        && v4.frag_offset() != 0
    {
        return None;
    }
    // Without link padding: up to the length the header announces.
    let upper = bytes.get(packet.header_len()..packet.total_len().min(bytes.len()))?;
    Some((packet.next_header(), upper))
}

/// Whether a received Ethernet frame is for the host's link layer rather than the IPsec
/// path: ARP, ICMPv6 neighbour discovery (router and neighbour solicitations and
/// advertisements, redirects) and multicast listener discovery, and the ICMP errors path
/// MTU discovery learns from (IPv4 destination unreachable, IPv6 packet too big). Frames
/// with a VLAN tag are not.
pub fn is_link_frame(frame: &[u8]) -> bool {
    if ethernet::Frame::new_checked(frame).is_ok_and(|f| f.ethertype() == EtherType::Arp) {
        return true;
    }
    match upper_layer(frame) {
        // Destination unreachable (first or only fragment).
        Some((IpProtocol::Icmp, [3, ..])) => true,
        // Right after the fixed header, as neighbour discovery always is: packet too big,
        // multicast listener queries and reports (130..=132, 143), neighbour discovery
        // (133..=137).
        Some((IpProtocol::Icmpv6, [2 | 130..=137 | 143, ..])) => true,
        _ => false,
    }
}

/// Whether a frame carries a datagram to UDP port 500, or to port 4500 holding an IKE
/// message (the non-ESP marker) or a NAT keepalive (first or only IP fragment; IPv6 with no
/// extension header).
pub fn is_ike_datagram(frame: &[u8]) -> bool {
    let Some((IpProtocol::Udp, datagram)) = upper_layer(frame) else {
        return false;
    };
    let Ok(datagram) = udp::Packet::new_checked(datagram) else {
        return false;
    };
    match datagram.dst_port() {
        500 => true,
        4500 => matches!(
            udp_encap::classify(datagram.payload()),
            Ok(udp_encap::Payload::Ike(_) | udp_encap::Payload::Keepalive)
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ethertype: [u8; 2], ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype);
        f.extend_from_slice(ip);
        f
    }

    fn ipv4(protocol: u8, frag: [u8; 2], payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let [t0, t1] = total.to_be_bytes();
        let mut ip = vec![0x45, 0, t0, t1, 0, 0, frag[0], frag[1], 64, protocol];
        ip.resize(20, 0);
        ip.extend_from_slice(payload);
        ip
    }

    fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
        let [l0, l1] = (payload.len() as u16).to_be_bytes();
        let mut ip = vec![0x60, 0, 0, 0, l0, l1, next, 64];
        ip.resize(40, 0);
        ip.extend_from_slice(payload);
        ip
    }

    #[test]
    fn arp_neighbour_discovery_and_path_mtu_errors_are_the_link_layers() {
        assert!(is_link_frame(&frame([0x08, 0x06], &[0; 28])));
        assert!(is_link_frame(&frame(
            [0x08, 0x00],
            &ipv4(1, [0, 0], &[3, 4])
        )));
        for t in [2, 130, 131, 132, 133, 134, 135, 136, 137, 143] {
            assert!(
                is_link_frame(&frame([0x86, 0xdd], &ipv6(58, &[t, 0]))),
                "{t}"
            );
        }
    }

    #[test]
    fn everything_else_is_the_ipsec_paths() {
        // ESP, echo requests, a later fragment, other ICMPv6, a VLAN tag, runts.
        assert!(!is_link_frame(&frame(
            [0x08, 0x00],
            &ipv4(50, [0, 0], &[0; 8])
        )));
        assert!(!is_link_frame(&frame(
            [0x08, 0x00],
            &ipv4(1, [0, 0], &[8, 0])
        )));
        assert!(!is_link_frame(&frame(
            [0x08, 0x00],
            &ipv4(1, [0, 8], &[3, 4])
        )));
        assert!(!is_link_frame(&frame([0x86, 0xdd], &ipv6(58, &[128, 0]))));
        assert!(!is_link_frame(&frame([0x86, 0xdd], &ipv6(17, &[2, 0]))));
        assert!(!is_link_frame(&frame([0x81, 0x00], &[0; 40])));
        assert!(!is_link_frame(&[0u8; 13]));
        assert!(!is_link_frame(&frame([0x08, 0x00], &[0x45, 0, 0])));
    }

    fn udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = vec![0x11, 0x94];
        u.extend_from_slice(&dst_port.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0; 2]);
        u.extend_from_slice(payload);
        u
    }

    #[test]
    fn ike_datagrams_are_the_hosts_when_asked_for() {
        let plain = NextHopMacs::new(Vec::new());
        let ike = NextHopMacs::new(Vec::new()).with_ike();
        let yes = [
            frame([0x08, 0x00], &ipv4(17, [0, 0], &udp(500, &[1; 28]))),
            frame(
                [0x08, 0x00],
                &ipv4(17, [0x40, 0], &udp(4500, &[0, 0, 0, 0, 1])),
            ),
            frame([0x08, 0x00], &ipv4(17, [0, 0], &udp(4500, &[0xff]))),
            frame([0x86, 0xdd], &ipv6(17, &udp(500, &[1; 28]))),
        ];
        for f in &yes {
            assert!(ike.takes(f) && !plain.takes(f));
        }
        let no = [
            // ESP in UDP, another port, a later fragment, ESP.
            frame(
                [0x08, 0x00],
                &ipv4(17, [0, 0], &udp(4500, &[0, 0, 0x10, 1, 0, 0, 0, 1])),
            ),
            frame([0x08, 0x00], &ipv4(17, [0, 0], &udp(53, &[0; 8]))),
            frame([0x08, 0x00], &ipv4(17, [0, 9], &udp(500, &[0; 8]))),
            frame([0x08, 0x00], &ipv4(50, [0, 0], &udp(500, &[0; 8]))),
        ];
        for f in &no {
            assert!(!ike.takes(f));
        }
    }

    proptest::proptest! {
        /// Whatever a card hands over, the classifiers read within the frame and never
        /// panic; a frame too short for an Ethernet header is nobody's link layer.
        #[test]
        fn any_frame_is_classified_without_panic(frame in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let ike = NextHopMacs::new(Vec::new()).with_ike();
            let taken = ike.takes(&frame);
            if frame.len() < 14 {
                proptest::prop_assert!(!taken);
            }
            let _ = ip_destination(&frame);
        }
    }

    #[test]
    fn frames_go_to_the_configured_next_hop_of_their_family() {
        let via: IpAddr = "192.0.2.254".parse().unwrap();
        let t = NextHopMacs::new(vec![via]);
        let peer: IpAddr = "198.51.100.2".parse().unwrap();
        let peer6: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(t.next_hop(peer), via);
        assert_eq!(t.next_hop(peer6), peer6);
        assert_eq!(t.mac_for(peer), None);
        t.set(&[(via, [2, 0, 0, 0, 0, 9]), (peer6, [2, 0, 0, 0, 0, 6])]);
        assert_eq!(t.mac_for(peer), Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(t.mac_for(peer6), Some([2, 0, 0, 0, 0, 6]));
        t.set(&[]);
        assert_eq!(t.mac_for(peer), None);
    }
}
