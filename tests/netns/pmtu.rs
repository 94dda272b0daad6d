//! Oversized packets sent by a host with raw sockets (so DF is exactly what the test says),
//! and the ICMP errors that come back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use espo_ipsec::wire::{ChecksumCaps, IpProtocol, ipv4, ipv6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{SockaddrStorage, recvfrom};
use socket2::{Domain, Protocol, Socket, Type};

/// An IPv4 UDP datagram of `len` bytes to port 7003 (UDP checksum 0, legal over IPv4).
pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, len: usize, dont_frag: bool) -> Vec<u8> {
    let mut p = vec![0u8; len];
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: len - 20,
        hop_limit: 64,
        tos: 0,
        dont_frag,
        ident: 0x4242,
    };
    repr.emit(
        &mut ipv4::Packet::new_unchecked(&mut p[..]),
        &ChecksumCaps::default(),
    )
    .unwrap();
    let udp_len = (len - 20) as u16;
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&7003u16.to_be_bytes());
    p[24..26].copy_from_slice(&udp_len.to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    p
}

/// An IPv6 UDP datagram of `len` bytes (the checksum is not checked by anyone on the way).
pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    let repr = ipv6::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: len - 40,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut p[..]))
        .unwrap();
    p[40..42].copy_from_slice(&40000u16.to_be_bytes());
    p[42..44].copy_from_slice(&7003u16.to_be_bytes());
    p[44..46].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    p
}

/// Sends a whole IP packet as it is.
pub fn send(packet: &[u8], v6: bool) {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let sender =
        Socket::new(domain, Type::RAW, Some(Protocol::from(255))).expect("raw send socket");
    sender
        .send_to(packet, &SocketAddr::new(destination(packet, v6), 0).into())
        .expect("packet sent");
}

fn destination(packet: &[u8], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(<[u8; 16]>::try_from(&packet[24..40]).unwrap())
    } else {
        IpAddr::from(<[u8; 4]>::try_from(&packet[16..20]).unwrap())
    }
}

/// Sends `packet` (a whole IP packet) and waits up to 3 s for the ICMP "fragmentation
/// needed" / ICMPv6 "packet too big" about it; returns the error's source and the MTU it announces.
pub fn send_and_catch(packet: &[u8], v6: bool) -> Option<(IpAddr, u32)> {
    let (domain, icmp_proto) = if v6 {
        (Domain::IPV6, 58)
    } else {
        (Domain::IPV4, 1)
    };
    let listener =
        Socket::new(domain, Type::RAW, Some(Protocol::from(icmp_proto))).expect("raw ICMP socket");
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    send(packet, v6);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let Ok((n, from)) = recvfrom::<SockaddrStorage>(listener.as_raw_fd(), &mut buf) else {
            continue;
        };
        let bytes = &buf[..n];
        let from = from.and_then(|a| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())));
        if v6 {
            // Raw ICMPv6 sockets deliver the ICMPv6 message alone.
            if bytes.first() == Some(&2) {
                return Some((from?, u32::from_be_bytes(bytes[4..8].try_into().ok()?)));
            }
        } else {
            let ihl = usize::from(bytes[0] & 0x0f) * 4;
            let icmp = &bytes[ihl..];
            if icmp[0] == 3 && icmp[1] == 4 {
                let src = IpAddr::from(<[u8; 4]>::try_from(&bytes[12..16]).ok()?);
                return Some((src, u32::from(u16::from_be_bytes([icmp[6], icmp[7]]))));
            }
        }
    }
    None
}

/// Receives one datagram on UDP port 7003 (3 s at most).
pub fn receive_7003(bind: IpAddr, ready: std::sync::mpsc::Sender<()>) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddr::new(bind, 7003)).expect("bind 7003");
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    ready.send(()).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}
