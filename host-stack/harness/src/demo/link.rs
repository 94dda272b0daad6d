//! The link between the gateways: an in-memory cable ([`MemWire`]) carrying whole Ethernet
//! frames, the card's port on one end, gateway B on the other, and a tap on B's end that
//! counts what crosses it and checks that every frame is ESP (plain, or in UDP as RFC 3948
//! has it) — nothing the hosts sent crosses in clear.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use espo_driver::model::{Frame, Link};

use espo_ipsec::wire::ethernet::EtherType;
use espo_ipsec::wire::{IpProtocol, ip, udp};
use espo_offload::{MemWire, Wire};

/// The card's port attached to one end of the cable.
#[derive(Debug)]
pub struct CardPort(pub MemWire);

impl Link for CardPort {
    fn send(&mut self, frame: Frame) {
        self.0.send_bytes(&frame.data);
    }

    fn recv(&mut self) -> Option<Frame> {
        let mut data = Vec::new();
        // The frame is taken at the card's current time.
        Wire::recv(&mut self.0, &mut data).then_some(Frame { data, cycle: 0 })
    }
}

/// IKE messages taken out of the frames a gateway received: (message, source,
/// destination).
pub type Heard = std::sync::Mutex<Vec<(Vec<u8>, std::net::SocketAddr, std::net::SocketAddr)>>;

/// The card's port with key management beside it: IKE messages to the gateway's own
/// addresses are taken out of the frames it receives (as `espo run`'s port thread does on
/// the card model), every other frame reaches the card.
#[derive(Debug)]
pub struct KeyedPort {
    pub wire: MemWire,
    pub locals: Vec<std::net::IpAddr>,
    pub heard: Arc<Heard>,
}

impl Link for KeyedPort {
    fn send(&mut self, frame: Frame) {
        self.wire.send_bytes(&frame.data);
    }

    fn recv(&mut self) -> Option<Frame> {
        let mut data = Vec::new();
        while Wire::recv(&mut self.wire, &mut data) {
            match espo_ike::datagram::intercept(&data, |ip| self.locals.contains(&ip)) {
                Some(espo_ike::datagram::Intercepted::Ike(m)) => self
                    .heard
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((m.bytes, m.src, m.dst)),
                Some(espo_ike::datagram::Intercepted::Keepalive) => {}
                None => return Some(Frame { data, cycle: 0 }),
            }
        }
        None
    }
}

/// What crossed the link.
#[derive(Debug, Default)]
pub struct LinkCounters {
    a_to_b_frames: AtomicU64,
    a_to_b_bytes: AtomicU64,
    b_to_a_frames: AtomicU64,
    b_to_a_bytes: AtomicU64,
    not_esp: AtomicU64,
    ike: AtomicU64,
}

/// A copy of [`LinkCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub a_to_b_frames: u64,
    pub a_to_b_bytes: u64,
    pub b_to_a_frames: u64,
    pub b_to_a_bytes: u64,
    /// Frames that were neither ESP nor ESP in UDP (nor IKE).
    pub not_esp: u64,
    /// IKE messages (UDP 500, or 4500 behind the non-ESP marker) from gateway A's side.
    pub ike: u64,
}

impl LinkCounters {
    pub fn stats(&self) -> LinkStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LinkStats {
            a_to_b_frames: get(&self.a_to_b_frames),
            a_to_b_bytes: get(&self.a_to_b_bytes),
            b_to_a_frames: get(&self.b_to_a_frames),
            b_to_a_bytes: get(&self.b_to_a_bytes),
            not_esp: get(&self.not_esp),
            ike: get(&self.ike),
        }
    }

    fn count(&self, frames: &AtomicU64, bytes: &AtomicU64, frame: &[u8]) {
        frames.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        if is_ike(frame) {
            self.ike.fetch_add(1, Ordering::Relaxed);
        } else if !is_esp(frame) {
            self.not_esp.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether an Ethernet frame carries ESP, or ESP in UDP on port 4500.
pub fn is_esp(frame: &[u8]) -> bool {
    let Some(ip) = frame.get(14..) else {
        return false;
    };
    // The EtherType must announce the version the packet has.
    let Ok(packet) = ip::Packet::new_checked(ip) else {
        return false;
    };
    if frame.get(12..14) != Some(&EtherType::of_ip(ip).to_bytes()[..]) {
        return false;
    }
    let (next, l4) = (packet.next_header(), ip.get(packet.header_len()..));
    match next {
        IpProtocol::Esp => true,
        IpProtocol::Udp => l4
            .and_then(|b| udp::Packet::new_checked(b).ok())
            // A NAT keepalive (one 0xff byte) is not ESP; a zero non-ESP marker is IKE.
            .is_some_and(|u| {
                u.dst_port() == 4500
                    && u.payload().len() > 8
                    && u.payload().get(..4) != Some(&[0; 4])
            }),
        _ => false,
    }
}

/// Whether an Ethernet frame carries an IKE message: UDP port 500, or 4500 behind the
/// non-ESP marker (four zero bytes).
pub fn is_ike(frame: &[u8]) -> bool {
    let Some(ip) = frame.get(14..) else {
        return false;
    };
    let Ok(packet) = ip::Packet::new_checked(ip) else {
        return false;
    };
    if packet.next_header() != IpProtocol::Udp {
        return false;
    }
    ip.get(packet.header_len()..)
        .and_then(|b| udp::Packet::new_checked(b).ok())
        .is_some_and(|u| {
            let ports = (u.src_port(), u.dst_port());
            ports == (500, 500)
                || (ports == (4500, 4500)
                    && u.payload().len() > 4
                    && u.payload().get(..4) == Some(&[0; 4]))
        })
}

/// Gateway B's end of the cable, with the tap.
pub struct Tap {
    end: MemWire,
    counters: Arc<LinkCounters>,
}

impl Tap {
    pub fn new(end: MemWire) -> (Tap, Arc<LinkCounters>) {
        let counters = Arc::new(LinkCounters::default());
        (
            Tap {
                end,
                counters: counters.clone(),
            },
            counters,
        )
    }
}

impl Wire for Tap {
    fn send(&mut self, frame: &[u8]) -> bool {
        let c = &self.counters;
        c.count(&c.b_to_a_frames, &c.b_to_a_bytes, frame);
        self.end.send(frame)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        let got = self.end.recv(buf);
        if got {
            let c = &self.counters;
            c.count(&c.a_to_b_frames, &c.a_to_b_bytes, buf);
        }
        got
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

    fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        let total = (20 + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn esp_and_esp_in_udp_pass_everything_else_is_counted() {
        let esp = frame(
            [0x08, 0],
            &ipv4(50, &[0, 0, 0xa1, 1, 0, 0, 0, 1, 9, 9, 9, 9]),
        );
        let mut u = vec![0x11, 0x94, 0x11, 0x94, 0, 20, 0, 0];
        u.extend_from_slice(&[0, 0, 0xa1, 4, 0, 0, 0, 1, 7, 7, 7, 7]);
        let in_udp = frame([0x08, 0], &ipv4(17, &u));
        let keepalive = frame(
            [0x08, 0],
            &ipv4(17, &[0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xff]),
        );
        let clear = frame(
            [0x08, 0],
            &ipv4(17, &[0x9c, 0x41, 0, 7, 0, 12, 0, 0, 1, 2, 3, 4]),
        );
        assert!(is_esp(&esp) && is_esp(&in_udp));
        let mut ike = vec![0x11, 0x94, 0x11, 0x94, 0, 16, 0, 0];
        ike.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
        let ike = frame([0x08, 0], &ipv4(17, &ike));
        assert!(is_ike(&ike) && !is_esp(&ike));
        assert!(!is_ike(&in_udp) && !is_ike(&clear) && !is_ike(&keepalive));
        assert!(!is_esp(&keepalive) && !is_esp(&clear) && !is_esp(&[0u8; 10]));

        let (a, b) = MemWire::pair();
        let (mut tap, counters) = Tap::new(b);
        let mut port = CardPort(a);
        for f in [&esp, &clear] {
            Link::send(
                &mut port,
                Frame {
                    data: f.clone(),
                    cycle: 5,
                },
            );
        }
        let mut buf = Vec::new();
        assert!(tap.recv(&mut buf) && buf == esp);
        assert!(tap.recv(&mut buf) && buf == clear);
        assert!(tap.send(&in_udp));
        assert_eq!(Link::recv(&mut port).map(|f| f.data), Some(in_udp.clone()));
        let s = counters.stats();
        assert_eq!((s.a_to_b_frames, s.b_to_a_frames, s.not_esp), (2, 1, 1));
        assert_eq!(s.a_to_b_bytes, (esp.len() + clear.len()) as u64);
    }
}
