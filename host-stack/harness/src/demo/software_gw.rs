//! Gateway B: the software engine on an Ethernet link.
//!
//! Outbound, each inner packet from the hosts behind it goes through the outbound SPD and is
//! encapsulated where it lies in a frame buffer (headers into the room in front of it), then
//! sent as an Ethernet frame. Inbound, each frame from the link is decapsulated in place,
//! the ICV and replay window checked, and the inner packet checked against the inbound
//! policy (RFC 4301 §5.2) before it is handed to the hosts. Every refusal is counted by
//! reason.

use espo_config::Config;
use espo_ipsec::counters::{DropCounters, DropReason};
use espo_ipsec::engine::{
    Decapsulated, EncapsulatedInPlace, EngineError, HEADROOM, SoftwareEngine, TAILROOM,
};
use espo_ipsec::wire::ethernet;
use espo_ipsec::wire::ethernet::EtherType;
use espo_offload::Wire;

/// MAC addresses on the demo's link.
pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

/// What the gateway counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Inner packets encapsulated and sent.
    pub tx_protected: u64,
    /// Sent as they were (bypass policy).
    pub tx_bypass: u64,
    pub tx_dropped: DropCounters,
    /// Inner packets decapsulated, policy-checked and delivered.
    pub rx_delivered: u64,
    /// Unprotected packets inbound policy let through, and keepalives.
    pub rx_bypass: u64,
    pub rx_dropped: DropCounters,
}

/// A watched packet: the frame carrying it is kept as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Watch {
    spi: u32,
    seq_lo: u32,
}

/// Gateway B. See the module documentation.
pub struct SoftwareGateway {
    engine: SoftwareEngine,
    wire: Box<dyn Wire>,
    /// The frame being built or received.
    buf: Vec<u8>,
    pub counters: GatewayCounters,
    watch: Option<Watch>,
    captured: Option<Vec<u8>>,
    /// IKE messages that arrived (after their non-ESP marker), for key management.
    ike: Vec<(Vec<u8>, std::net::SocketAddr, std::net::SocketAddr)>,
    ike_locals: Vec<std::net::IpAddr>,
    started: std::time::Instant,
}

impl SoftwareGateway {
    pub fn new(config: &Config, wire: Box<dyn Wire>) -> Result<SoftwareGateway, EngineError> {
        Ok(SoftwareGateway {
            engine: config.software_engine()?,
            wire,
            buf: Vec::new(),
            counters: GatewayCounters::default(),
            watch: None,
            captured: None,
            ike: Vec::new(),
            ike_locals: Vec::new(),
            started: std::time::Instant::now(),
        })
    }

    pub fn engine(&self) -> &SoftwareEngine {
        &self.engine
    }

    /// Protects an inner packet and sends it; the SPI and sequence number it went out
    /// with (`None`: bypassed), or why it was refused.
    pub fn send(&mut self, inner: &[u8]) -> Result<Option<(u32, u64)>, DropReason> {
        let start = ethernet::HEADER_LEN + HEADROOM;
        self.buf.clear();
        self.buf.resize(start + inner.len() + TAILROOM, 0);
        let Some(slot) = self.buf.get_mut(start..start + inner.len()) else {
            return Err(self.tx_drop(DropReason::TooBig));
        };
        slot.copy_from_slice(inner);
        let sent = match self
            .engine
            .outbound
            .encapsulate_in_place(&mut self.buf, start..start + inner.len())
        {
            Err(reason) => return Err(self.tx_drop(reason)),
            Ok(EncapsulatedInPlace::Bypass) => {
                self.counters.tx_bypass += 1;
                (start..start + inner.len(), None)
            }
            Ok(EncapsulatedInPlace::Protected { range, spi, seq }) => {
                self.counters.tx_protected += 1;
                (range, Some((spi, seq)))
            }
        };
        let (range, what) = sent;
        // The headers went into the headroom, so the Ethernet header fits in front.
        let Some(frame_start) = range.start.checked_sub(ethernet::HEADER_LEN) else {
            return Err(self.tx_drop(DropReason::TooBig));
        };
        let ethertype =
            EtherType::of_ip(self.buf.get(range.clone()).unwrap_or_default()).to_bytes();
        if let Some(eth) = self.buf.get_mut(frame_start..range.start) {
            eth[..6].copy_from_slice(&MAC_A);
            eth[6..12].copy_from_slice(&MAC_B);
            eth[12..14].copy_from_slice(&ethertype);
        }
        let frame = self.buf.get(frame_start..range.end).unwrap_or_default();
        if !self.wire.send(frame) {
            return Err(self.tx_drop(DropReason::DeviceError));
        }
        Ok(what)
    }

    fn tx_drop(&mut self, reason: DropReason) -> DropReason {
        self.counters.tx_dropped.count(reason);
        reason
    }

    /// IKE messages to `locals` are taken out of the frames that arrive from now on, for
    /// [`take_ike`](Self::take_ike).
    pub fn hear_ike(&mut self, locals: Vec<std::net::IpAddr>) {
        self.ike_locals = locals;
    }

    /// The IKE messages that arrived since the last call: (message, source, destination).
    pub fn take_ike(&mut self) -> Vec<(Vec<u8>, std::net::SocketAddr, std::net::SocketAddr)> {
        std::mem::take(&mut self.ike)
    }

    /// Keeps a copy of the next frame that arrives carrying ESP with this SPI and low
    /// sequence-number half, as it arrived.
    pub fn capture(&mut self, spi: u32, seq: u64) {
        self.watch = Some(Watch {
            spi,
            seq_lo: seq as u32,
        });
    }

    /// The captured frame, once it arrived.
    pub fn take_captured(&mut self) -> Option<Vec<u8>> {
        self.captured.take()
    }

    /// Takes every frame waiting on the link; each inner packet that passes is handed to
    /// `deliver`. Returns the number of frames taken.
    pub fn receive(&mut self, deliver: &mut dyn FnMut(&[u8])) -> usize {
        let mut frames = 0;
        let mut buf = std::mem::take(&mut self.buf);
        while self.wire.recv(&mut buf) {
            frames += 1;
            if !self.ike_locals.is_empty() {
                match espo_ike::datagram::intercept(&buf, |ip| self.ike_locals.contains(&ip)) {
                    Some(espo_ike::datagram::Intercepted::Ike(m)) => {
                        self.ike.push((m.bytes, m.src, m.dst));
                        continue;
                    }
                    Some(espo_ike::datagram::Intercepted::Keepalive) => continue,
                    None => {}
                }
            }
            match self.decapsulate(&mut buf) {
                Ok(Some(range)) => {
                    if let Some(inner) = buf.get(range) {
                        deliver(inner);
                    }
                }
                Ok(None) => {}
                Err(reason) => self.counters.rx_dropped.count(reason),
            }
        }
        self.buf = buf;
        frames
    }

    /// One frame: the range of the inner packet to deliver, if any.
    fn decapsulate(
        &mut self,
        frame: &mut [u8],
    ) -> Result<Option<std::ops::Range<usize>>, DropReason> {
        let ethertype = frame.get(12..14).ok_or(DropReason::Malformed)?;
        if ethertype != [0x08, 0x00] && ethertype != [0x86, 0xdd] {
            return Err(DropReason::NotIp);
        }
        let ip = frame
            .get_mut(ethernet::HEADER_LEN..)
            .ok_or(DropReason::Malformed)?;
        if let Some(w) = self.watch
            && self.engine.inbound.spi_seq_of(ip) == Some((w.spi, w.seq_lo))
        {
            self.captured = Some(ip.to_vec());
            self.watch = None;
        }
        match self.engine.inbound.decapsulate(ip)? {
            Decapsulated::Inner { range, .. } => {
                self.counters.rx_delivered += 1;
                Ok(Some(
                    range.start + ethernet::HEADER_LEN..range.end + ethernet::HEADER_LEN,
                ))
            }
            Decapsulated::Bypass => {
                self.counters.rx_bypass += 1;
                let end = frame.len();
                Ok(Some(ethernet::HEADER_LEN..end))
            }
            Decapsulated::Keepalive | Decapsulated::Ike { .. } => {
                self.counters.rx_bypass += 1;
                Ok(None)
            }
        }
    }
}

impl std::fmt::Debug for SoftwareGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareGateway")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl super::keying::Keyed for SoftwareGateway {
    fn inbound_beside(
        &mut self,
        old_spi: u32,
        new: &espo_ipsec::spec::SaSpec,
    ) -> Result<(), String> {
        let sa = inbound_sa(new)?;
        self.engine
            .inbound
            .replace_sa(old_spi, None, sa)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn outbound_instead(
        &mut self,
        old_spi: u32,
        new: &espo_ipsec::spec::SaSpec,
    ) -> Result<(), String> {
        let sa = outbound_sa(new)?;
        self.engine
            .outbound
            .replace_sa(old_spi, sa)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn outbound_idle(&mut self, new: &espo_ipsec::spec::SaSpec) -> Result<(), String> {
        let sa = outbound_sa(new)?;
        self.engine
            .outbound
            .add_sa(sa)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn remove(
        &mut self,
        spi: u32,
        dir: espo_ipsec::spec::Direction,
        dst: std::net::IpAddr,
    ) -> Result<(), String> {
        match dir {
            espo_ipsec::spec::Direction::Out => self.engine.outbound.remove_sa(spi).map(|_| ()),
            espo_ipsec::spec::Direction::In => {
                self.engine.inbound.remove_sa(spi, Some(dst)).map(|_| ())
            }
        }
        .map_err(|e| e.to_string())
    }

    fn lifetimes(&mut self, out: &mut Vec<espo_ipsec::lifetime::LifetimeEvent>) {
        let now = self.started.elapsed();
        self.engine.outbound.check_lifetimes(now, out);
        self.engine.inbound.check_lifetimes(now, out);
    }
}

fn outbound_sa(spec: &espo_ipsec::spec::SaSpec) -> Result<espo_ipsec::sa::OutboundSa, String> {
    let params = espo_ipsec::sa::SaParams::from_spec(spec).map_err(|e| e.to_string())?;
    Ok(espo_ipsec::sa::OutboundSa::new(params, spec.seq))
}

fn inbound_sa(spec: &espo_ipsec::spec::SaSpec) -> Result<espo_ipsec::sa::InboundSa, String> {
    let params = espo_ipsec::sa::SaParams::from_spec(spec).map_err(|e| e.to_string())?;
    espo_ipsec::sa::InboundSa::new(params, spec.replay_window, spec.seq).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_offload::MemWire;
    use std::path::Path;

    fn gateways() -> (SoftwareGateway, SoftwareGateway) {
        let a = Config::parse(super::super::GATEWAY_A_TOML, Path::new("a")).unwrap();
        let b = Config::parse(super::super::GATEWAY_B_TOML, Path::new("b")).unwrap();
        let (wa, wb) = MemWire::pair();
        (
            SoftwareGateway::new(&a, Box::new(wa)).unwrap(),
            SoftwareGateway::new(&b, Box::new(wb)).unwrap(),
        )
    }

    fn request(src: &str, dst: &str, len: usize) -> Vec<u8> {
        use super::super::hosts::{Kind, Message, build};
        use super::super::topology::Host;
        let h = |a: &str, port| Host {
            name: "h".into(),
            addr: a.parse().unwrap(),
            port,
        };
        let m = Message {
            kind: Kind::Request,
            exchange: 5,
        };
        build(&h(src, 40001), &h(dst, 7), m, len, &mut |b| b.fill(0xa5)).unwrap()
    }

    #[test]
    fn two_software_gateways_carry_every_tunnel_both_ways() {
        let (mut a, mut b) = gateways();
        let pairs = [
            ("10.1.1.10", "10.2.1.10"),
            ("fd00:a:1::10", "fd00:b:1::10"),
            ("10.1.2.10", "10.2.2.10"),
            ("fd00:a:2::10", "fd00:b:2::10"),
        ];
        for (src, dst) in pairs {
            let pkt = request(src, dst, 1400);
            let (spi, _) = a.send(&pkt).expect("sent").expect("protected");
            b.capture(spi, 1);
            let mut got = Vec::new();
            assert_eq!(b.receive(&mut |p| got.push(p.to_vec())), 1);
            assert_eq!(got, vec![pkt.clone()], "{src} -> {dst}");
            let frame = b.take_captured().expect("the frame was captured");
            let clear = |w: &[u8]| pkt.windows(32).any(|x| x == w);
            assert!(!frame.windows(32).any(clear), "no inner bytes in clear");
            let back = request(dst, src, 300);
            b.send(&back).expect("sent back");
            let mut got = Vec::new();
            a.receive(&mut |p| got.push(p.to_vec()));
            assert_eq!(got, vec![back]);
        }
        assert_eq!(a.counters.tx_protected, 4);
        assert_eq!(b.counters.rx_delivered, 4);
        assert_eq!(
            b.counters.rx_dropped.total() + a.counters.rx_dropped.total(),
            0
        );
    }

    #[test]
    fn a_packet_no_policy_covers_is_refused_and_counted() {
        let (mut a, _b) = gateways();
        let pkt = request("10.9.9.9", "10.2.1.10", 100);
        assert_eq!(a.send(&pkt), Err(DropReason::NoPolicy));
        assert_eq!(a.counters.tx_dropped.get(DropReason::NoPolicy), 1);
    }

    #[test]
    fn a_damaged_or_replayed_frame_is_dropped_with_its_reason() {
        let (mut a, _) = gateways();
        let (wire_a, mut wire_b) = MemWire::pair();
        let b_cfg = Config::parse(super::super::GATEWAY_B_TOML, Path::new("b")).unwrap();
        a.wire = Box::new(wire_a);
        let mut b = SoftwareGateway::new(&b_cfg, Box::new(MemWire::default())).unwrap();
        a.send(&request("10.1.1.10", "10.2.1.10", 200)).unwrap();
        let mut frame = Vec::new();
        assert!(wire_b.recv(&mut frame));
        let mut damaged = frame.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0x80;
        let (mut inject, far) = MemWire::pair();
        b.wire = Box::new(far);
        for f in [&damaged, &frame, &frame] {
            inject.send(f);
        }
        let mut delivered = 0;
        b.receive(&mut |_| delivered += 1);
        assert_eq!(delivered, 1);
        assert_eq!(b.counters.rx_dropped.get(DropReason::BadIcv), 1);
        assert_eq!(b.counters.rx_dropped.get(DropReason::Replayed), 1);
    }
}
