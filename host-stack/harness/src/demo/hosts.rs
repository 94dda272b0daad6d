//! The simulated hosts' traffic: UDP requests and the responses that echo them.
//!
//! Every packet carries, after its UDP header, a 16-byte demo header — magic `ESPO`, the
//! kind (request or response), three zero bytes, the exchange number — and then filler
//! bytes. A response is its request with addresses and ports swapped and the kind changed:
//! the same filler comes back, so the requesting host can check the content end to end.

use std::net::IpAddr;

use espo_ipsec::wire::{ChecksumCaps, IpProtocol, ip, ipv4, ipv6, udp};

use super::topology::Host;

/// Bytes of the demo header in the UDP payload.
pub const DEMO_HEADER_LEN: usize = 16;
const MAGIC: [u8; 4] = *b"ESPO";

/// Smallest inner packet the demo sends: IPv6 + UDP + the demo header.
pub const MIN_PACKET: usize = ipv6::HEADER_LEN + udp::HEADER_LEN + DEMO_HEADER_LEN;
/// Largest inner packet the demo sends: a jumbo frame's worth, with room for any tunnel.
pub const MAX_PACKET: usize = 9000;

/// Request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request = 1,
    Response = 2,
}

/// What a demo packet says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    pub exchange: u64,
}

impl Message {
    /// A key unique to each packet of a run.
    pub fn key(&self) -> u64 {
        (self.exchange << 1) | (self.kind == Kind::Response) as u64
    }
}

/// A packet from `src` to `dst` of `len_bytes` in all (clamped to what the address family
/// allows between [`MIN_PACKET`] and [`MAX_PACKET`]), filled with `filler` after the demo
/// header. `None` when the hosts are of different address families.
pub fn build(
    src: &Host,
    dst: &Host,
    message: Message,
    len_bytes: usize,
    filler: &mut dyn FnMut(&mut [u8]),
) -> Option<Vec<u8>> {
    let ip_len = match (src.addr, dst.addr) {
        (IpAddr::V4(_), IpAddr::V4(_)) => ipv4::HEADER_LEN,
        (IpAddr::V6(_), IpAddr::V6(_)) => ipv6::HEADER_LEN,
        _ => return None,
    };
    let len = len_bytes.clamp(MIN_PACKET, MAX_PACKET);
    let mut payload = vec![0u8; len - ip_len - udp::HEADER_LEN];
    payload[..4].copy_from_slice(&MAGIC);
    payload[4] = message.kind as u8;
    payload[8..16].copy_from_slice(&message.exchange.to_be_bytes());
    filler(&mut payload[DEMO_HEADER_LEN..]);
    emit(
        src.addr,
        dst.addr,
        src.port,
        dst.port,
        &payload,
        message.exchange,
    )
}

/// The IP packet of a UDP datagram; `ident` becomes the IPv4 identification.
fn emit(
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    ident: u64,
) -> Option<Vec<u8>> {
    let caps = ChecksumCaps::default();
    let udp_len = udp::HEADER_LEN + payload.len();
    let ip_len = if src.is_ipv4() {
        ipv4::HEADER_LEN
    } else {
        ipv6::HEADER_LEN
    };
    let mut pkt = vec![0u8; ip_len + udp_len];
    pkt.get_mut(ip_len + udp::HEADER_LEN..)?
        .copy_from_slice(payload);
    let udp_repr = udp::Repr {
        src_port,
        dst_port,
        payload_len: payload.len(),
    };
    udp_repr
        .emit(
            &mut udp::Packet::new_unchecked(pkt.get_mut(ip_len..)?),
            &src,
            &dst,
            &caps,
        )
        .ok()?;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Udp,
            payload_len: udp_len,
            hop_limit: 64,
            tos: 0,
            dont_frag: true,
            ident: ident as u16,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut pkt[..]), &caps)
        .ok()?,
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6::Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Udp,
            payload_len: udp_len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut ipv6::Packet::new_unchecked(&mut pkt[..]))
        .ok()?,
        _ => return None,
    }
    Some(pkt)
}

/// A parsed demo packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub message: Message,
    /// The UDP payload (demo header and filler).
    pub payload: &'a [u8],
}

/// Reads a demo packet: an IPv4 or IPv6 packet carrying UDP with a valid checksum and the
/// demo header. `None` for anything else.
pub fn parse(pkt: &[u8]) -> Option<Parsed<'_>> {
    let caps = ChecksumCaps::default();
    let (src, dst, l4) = match ip::Packet::new_checked(pkt).ok()? {
        ip::Packet::Ipv4(p) => {
            let r = ipv4::Repr::parse(&p, &caps).ok()?;
            if r.next_header != IpProtocol::Udp {
                return None;
            }
            let start = p.header_len();
            let l4 = pkt.get(start..start + r.payload_len)?;
            (IpAddr::V4(r.src_addr), IpAddr::V4(r.dst_addr), l4)
        }
        ip::Packet::Ipv6(p) => {
            let r = ipv6::Repr::parse(&p).ok()?;
            if r.next_header != IpProtocol::Udp {
                return None;
            }
            let l4 = pkt.get(ipv6::HEADER_LEN..ipv6::HEADER_LEN + r.payload_len)?;
            (IpAddr::V6(r.src_addr), IpAddr::V6(r.dst_addr), l4)
        }
    };
    let u = udp::Packet::new_checked(l4).ok()?;
    let repr = udp::Repr::parse(&u, &src, &dst, &caps).ok()?;
    let payload = l4.get(udp::HEADER_LEN..udp::HEADER_LEN + repr.payload_len)?;
    let head = payload.get(..DEMO_HEADER_LEN)?;
    if head.get(..4)? != MAGIC {
        return None;
    }
    let kind = match head.get(4)? {
        1 => Kind::Request,
        2 => Kind::Response,
        _ => return None,
    };
    let exchange = u64::from_be_bytes(head.get(8..16)?.try_into().ok()?);
    Some(Parsed {
        src,
        dst,
        src_port: repr.src_port,
        dst_port: repr.dst_port,
        message: Message { kind, exchange },
        payload,
    })
}

/// The response to a request: addresses and ports swapped, the same payload with the kind
/// changed. `None` when `request` is not a demo request.
pub fn respond(request: &[u8]) -> Option<Vec<u8>> {
    let p = parse(request)?;
    if p.message.kind != Kind::Request {
        return None;
    }
    let mut payload = p.payload.to_vec();
    *payload.get_mut(4)? = Kind::Response as u8;
    emit(
        p.dst,
        p.src,
        p.dst_port,
        p.src_port,
        &payload,
        p.message.exchange,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(addr: &str, port: u16) -> Host {
        Host {
            name: "h".into(),
            addr: addr.parse().unwrap(),
            port,
        }
    }

    fn fill(b: &mut [u8]) {
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i * 7) as u8;
        }
    }

    #[test]
    fn a_request_parses_back_with_its_checksums_and_size() {
        for (a, b) in [("10.1.1.10", "10.2.1.10"), ("fd00:a:1::10", "fd00:b:1::10")] {
            for len in [MIN_PACKET, 200, 1400, 1500] {
                let m = Message {
                    kind: Kind::Request,
                    exchange: 0x0102_0304_0506_0708,
                };
                let pkt = build(&host(a, 40001), &host(b, 7), m, len, &mut fill).unwrap();
                assert_eq!(pkt.len(), len);
                let p = parse(&pkt).expect("parses");
                assert_eq!(p.message, m);
                assert_eq!((p.src_port, p.dst_port), (40001, 7));
                assert_eq!(p.src, a.parse::<IpAddr>().unwrap());
                let mut corrupt = pkt.clone();
                *corrupt.last_mut().unwrap() ^= 1;
                assert!(parse(&corrupt).is_none(), "the UDP checksum catches a flip");
            }
        }
    }

    #[test]
    fn a_response_echoes_the_request() {
        let m = Message {
            kind: Kind::Request,
            exchange: 9,
        };
        let req = build(
            &host("10.1.1.10", 40001),
            &host("10.2.1.10", 7),
            m,
            300,
            &mut fill,
        )
        .unwrap();
        let resp = respond(&req).expect("a response");
        let (q, r) = (parse(&req).unwrap(), parse(&resp).unwrap());
        assert_eq!(r.message.kind, Kind::Response);
        assert_eq!(r.message.exchange, 9);
        assert_eq!((r.src, r.dst), (q.dst, q.src));
        assert_eq!((r.src_port, r.dst_port), (7, 40001));
        assert_eq!(r.payload[DEMO_HEADER_LEN..], q.payload[DEMO_HEADER_LEN..]);
        assert_ne!(r.message.key(), q.message.key());
        assert!(respond(&resp).is_none(), "responses are not answered");
    }

    #[test]
    fn mixed_families_and_garbage_are_refused() {
        let m = Message {
            kind: Kind::Request,
            exchange: 1,
        };
        assert!(
            build(
                &host("10.1.1.10", 1),
                &host("fd00::1", 2),
                m,
                100,
                &mut fill
            )
            .is_none()
        );
        for junk in [&[][..], &[0x45, 0, 0], &[0x60; 50], &[0xff; 80]] {
            assert!(parse(junk).is_none());
        }
    }
}
