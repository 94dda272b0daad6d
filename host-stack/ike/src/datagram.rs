//! IKE datagrams as Ethernet frames, for links espo drives itself rather than through the
//! kernel's sockets — the card's port, the demo's cable: what of a received frame is an IKE
//! message to one of espo's addresses (UDP 500, and UDP 4500 behind the non-ESP marker; a
//! NAT keepalive is recognised; ESP in UDP is not IKE), and the frame that carries a
//! message the daemon sends.

use std::net::{IpAddr, SocketAddr};

use espo_ipsec::wire::udp_encap::{self, NON_ESP_MARKER_LEN};
use espo_ipsec::wire::{IpProtocol, ip, ipv4, ipv6, udp};

use crate::connection::{IKE_PORT, NAT_T_PORT};

const ETH_HEADER_LEN: usize = 14;
const UDP_HEADER_LEN: usize = 8;

/// An IKE message and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The message (after the non-ESP marker, on port 4500).
    pub bytes: Vec<u8>,
    /// The sender's address and port.
    pub src: SocketAddr,
    /// espo's address and port.
    pub dst: SocketAddr,
}

/// What a frame is for key management.
#[derive(Debug, PartialEq, Eq)]
pub enum Intercepted {
    /// An IKE message for the daemon.
    Ike(Datagram),
    /// A NAT keepalive: nothing to do.
    Keepalive,
}

/// The IKE message (or keepalive) in `frame` when it is UDP to one of espo's addresses on
/// port 500 or 4500; `None` for anything else (ESP in UDP included: the card's).
pub fn intercept(frame: &[u8], is_local: impl Fn(IpAddr) -> bool) -> Option<Intercepted> {
    let packet = ip::Packet::new_checked(frame.get(ETH_HEADER_LEN..)?).ok()?;
    if packet.next_header() != IpProtocol::Udp || !is_local(packet.dst_addr()) {
        return None;
    }
    let bytes = packet.packet_bytes();
    let datagram = udp::Packet::new_checked(bytes.get(packet.header_len()..)?).ok()?;
    let (src, dst) = (
        SocketAddr::new(packet.src_addr(), datagram.src_port()),
        SocketAddr::new(packet.dst_addr(), datagram.dst_port()),
    );
    let payload = datagram.payload();
    let message = match dst.port() {
        IKE_PORT => payload,
        NAT_T_PORT => match udp_encap::classify(payload) {
            Ok(udp_encap::Payload::Ike(m)) => m,
            Ok(udp_encap::Payload::Keepalive) => return Some(Intercepted::Keepalive),
            _ => return None,
        },
        _ => return None,
    };
    Some(Intercepted::Ike(Datagram {
        bytes: message.to_vec(),
        src,
        dst,
    }))
}

/// An Ethernet frame (MACs left zero) carrying `payload` in UDP from `src` to `dst`, behind
/// the non-ESP marker when `marker`. `None` when the two addresses are of two families or
/// the datagram does not fit in one IP packet.
pub fn frame(src: SocketAddr, dst: SocketAddr, payload: &[u8], marker: bool) -> Option<Vec<u8>> {
    let body_len = payload.len() + if marker { NON_ESP_MARKER_LEN } else { 0 };
    let udp_len = u16::try_from(UDP_HEADER_LEN + body_len).ok()?;
    let (ethertype, ip_len) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => ([0x08, 0x00], ipv4::HEADER_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => ([0x86, 0xdd], ipv6::HEADER_LEN),
        _ => return None,
    };
    let mut out = vec![0u8; ETH_HEADER_LEN + ip_len + usize::from(udp_len)];
    out[12..14].copy_from_slice(&ethertype);
    let ip_bytes = &mut out[ETH_HEADER_LEN..];
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(ip_len + usize::from(udp_len)).ok()?;
            let mut p = ipv4::Packet::new_unchecked(&mut ip_bytes[..]);
            p.set_version(4);
            p.set_header_len(ipv4::HEADER_LEN);
            p.set_total_len(total);
            p.set_hop_limit(64);
            p.set_next_header(IpProtocol::Udp);
            p.set_src_addr(s);
            p.set_dst_addr(d);
            p.fill_checksum();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = ipv6::Packet::new_unchecked(&mut ip_bytes[..]);
            p.set_version(6);
            p.set_payload_len(udp_len);
            p.set_next_header(IpProtocol::Udp);
            p.set_hop_limit(64);
            p.set_src_addr(s);
            p.set_dst_addr(d);
        }
        _ => return None,
    }
    let mut u = udp::Packet::new_unchecked(&mut ip_bytes[ip_len..]);
    u.set_src_port(src.port());
    u.set_dst_port(dst.port());
    u.set_len(udp_len);
    let body = u.payload_mut();
    let at = if marker { NON_ESP_MARKER_LEN } else { 0 };
    body[at..].copy_from_slice(payload);
    u.fill_checksum(&src.ip(), &dst.ip());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn frames_built_here_are_intercepted_back() {
        let local = |ip: IpAddr| {
            ip == "192.0.2.1".parse::<IpAddr>().unwrap()
                || ip == "2001:db8::1".parse::<IpAddr>().unwrap()
        };
        for (from, to, marker) in [
            ("192.0.2.2:500", "192.0.2.1:500", false),
            ("192.0.2.2:4500", "192.0.2.1:4500", true),
            ("[2001:db8::2]:4500", "[2001:db8::1]:4500", true),
        ] {
            let f = frame(addr(from), addr(to), b"an IKE message", marker).unwrap();
            let ip = ip::Packet::new_checked(&f[ETH_HEADER_LEN..]).unwrap();
            let u = udp::Packet::new_checked(&ip.packet_bytes()[ip.header_len()..]).unwrap();
            assert!(u.verify_checksum(&ip.src_addr(), &ip.dst_addr()), "{from}");
            assert_eq!(
                intercept(&f, local),
                Some(Intercepted::Ike(Datagram {
                    bytes: b"an IKE message".to_vec(),
                    src: addr(from),
                    dst: addr(to),
                }))
            );
        }
        // ESP in UDP is the card's; other ports and other addresses are not espo's IKE.
        let esp = frame(
            addr("192.0.2.2:4500"),
            addr("192.0.2.1:4500"),
            &[0, 0, 0x10, 1, 0, 0, 0, 1, 9, 9],
            false,
        )
        .unwrap();
        assert_eq!(intercept(&esp, local), None);
        let other = frame(addr("192.0.2.2:500"), addr("192.0.2.1:501"), b"x", false).unwrap();
        assert_eq!(intercept(&other, local), None);
        let elsewhere = frame(addr("192.0.2.2:500"), addr("192.0.2.9:500"), b"x", false).unwrap();
        assert_eq!(intercept(&elsewhere, local), None);
        let keepalive = frame(
            addr("192.0.2.2:4500"),
            addr("192.0.2.1:4500"),
            &[0xff],
            false,
        )
        .unwrap();
        assert_eq!(intercept(&keepalive, local), Some(Intercepted::Keepalive));
        assert!(
            frame(
                addr("192.0.2.2:500"),
                addr("[2001:db8::1]:500"),
                b"x",
                false
            )
            .is_none()
        );
        for cut in 0..keepalive.len() {
            let _ = intercept(&keepalive[..cut], local);
        }
    }
}
