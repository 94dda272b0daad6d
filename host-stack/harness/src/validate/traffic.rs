//! The SAs and packets of a validation run.
//!
//! A fixed set of SA shapes covers what the card does and what it must leave to software:
//! AES-GCM-128/256 over IPv4 and IPv6 outer headers, UDP encapsulation on and off the
//! card's NAT-T port, ESN SAs that cross 2^32 during the run, a non-ESN SA that runs out of
//! sequence numbers, a packet lifetime that expires on the card, windows from 0 to beyond
//! the card's, and ChaCha20-Poly1305, AES-CBC+HMAC, AH and an ESP+AH bundle (software
//! only). Keys come from the seed. Inner packets are IPv4 or IPv6 UDP with 0 to 9000 bytes
//! of payload; the packet's identity is in its UDP ports, so that it can be recognised
//! after any transform.

use espo_ipsec::wire::{Version, ipv4, ipv6};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};

/// What an SA does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gcm128,
    Gcm256,
    ChaCha,
    /// AES-CBC with HMAC: random IVs, so never byte-for-byte comparable.
    Cbc,
    Ah,
    /// ESP AES-GCM-128 tunnel with AH (HMAC-SHA-384) over it.
    Bundle,
}

/// One tunnel of the run, in one direction (the bundle is two SAs).
#[derive(Debug, Clone)]
pub struct Tunnel {
    pub kind: Kind,
    /// SPI of the (innermost) SA; a bundle's AH SA has `spi + 1`.
    pub spi: u32,
    pub outer_v6: bool,
    /// UDP encapsulation: (source port, destination port).
    pub udp: Option<(u16, u16)>,
    pub esn: bool,
    /// Last sequence number used (outbound) / highest received (inbound) at the start.
    pub seq: u64,
    pub window: u32,
    /// (soft, hard) packet lifetime.
    pub packets_lifetime: Option<(u64, u64)>,
    /// The tunnel's inner network number (10.N.0.0/16, 2001:db8:N::/48).
    pub net: u8,
    key: Vec<u8>,
    integrity_key: Vec<u8>,
}

impl Tunnel {
    /// Whether two encapsulations of the same packet with the same numbers are the same
    /// bytes (everything but AES-CBC, whose IV is random).
    pub fn deterministic(&self) -> bool {
        self.kind != Kind::Cbc
    }

    /// Whether it carries ESP (and so nonces).
    pub fn is_esp(&self) -> bool {
        self.kind != Kind::Ah
    }
}

/// Our network: 10.1.0.0/16 and 2001:db8:1::/48.
pub const LOCAL_NET: u8 = 1;
/// Inner networks with their own policies: bypass, discard, none.
pub const BYPASS_NET: u8 = 250;
pub const DISCARD_NET: u8 = 251;
pub const NO_POLICY_NET: u8 = 252;

type Shape = (
    Kind,
    bool,
    Option<(u16, u16)>,
    bool,
    u64,
    u32,
    Option<(u64, u64)>,
);

/// The tunnels we send on.
pub fn outbound_tunnels(rng: &mut StdRng) -> Vec<Tunnel> {
    #[rustfmt::skip]
    let shapes: [Shape; 12] = [
        (Kind::Gcm128, false, None, false, 0, 0, None),
        (Kind::Gcm256, true, None, true, (1 << 32) - 24, 0, None),
        (Kind::Gcm128, false, Some((4500, 4500)), false, 0, 0, None),
        (Kind::Gcm256, false, None, false, u64::from(u32::MAX) - 12, 0, None),
        (Kind::Gcm128, true, None, false, 0, 0, Some((15, 30))),
        (Kind::ChaCha, false, None, false, 0, 0, None),
        (Kind::Cbc, true, None, false, 0, 0, None),
        (Kind::Ah, false, None, false, 0, 0, None),
        (Kind::Bundle, false, None, false, 0, 0, None),
        (Kind::Gcm128, false, None, false, 0, 0, None),
        (Kind::Gcm256, true, None, true, 0x1_FFFF_FFF0, 0, None),
        (Kind::Gcm128, false, Some((31000, 4500)), true, 5, 0, None),
    ];
    build(rng, &shapes, 0x0A00_0000, 100)
}

/// The tunnels we receive on.
pub fn inbound_tunnels(rng: &mut StdRng) -> Vec<Tunnel> {
    #[rustfmt::skip]
    let shapes: [Shape; 12] = [
        (Kind::Gcm128, false, None, false, 0, 64, None),
        (Kind::Gcm256, true, None, true, (1 << 32) - 40, 128, None),
        (Kind::Gcm128, false, Some((4500, 4500)), false, 0, 32, None),
        (Kind::Gcm256, false, None, false, 1000, 1024, None),
        (Kind::Gcm128, false, None, false, 0, 8192, None),
        (Kind::ChaCha, true, None, false, 0, 64, None),
        (Kind::Cbc, false, None, false, 0, 64, None),
        (Kind::Ah, true, None, false, 0, 64, None),
        (Kind::Bundle, false, None, false, 0, 64, None),
        (Kind::Gcm128, false, None, false, 0, 0, None),
        (Kind::Gcm128, true, None, true, 0x1_FFFF_FFF0, 4096, None),
        (Kind::Gcm128, false, Some((4500, 4501)), false, 0, 64, None),
    ];
    build(rng, &shapes, 0x0B00_0000, 150)
}

fn build(rng: &mut StdRng, shapes: &[Shape], spi_base: u32, net_base: u8) -> Vec<Tunnel> {
    shapes
        .iter()
        .enumerate()
        .map(
            |(i, &(kind, outer_v6, udp, esn, seq, window, packets_lifetime))| {
                let key_len = match kind {
                    Kind::Gcm128 | Kind::Bundle => 20,
                    Kind::Gcm256 | Kind::ChaCha => 36,
                    Kind::Cbc => 16,
                    Kind::Ah => 0,
                };
                let mut key = vec![0u8; key_len];
                rng.fill_bytes(&mut key);
                let mut integrity_key = vec![0u8; 64];
                rng.fill_bytes(&mut integrity_key);
                Tunnel {
                    kind,
                    spi: spi_base + 0x100 * (i as u32 + 1),
                    outer_v6,
                    udp,
                    esn,
                    seq,
                    window,
                    packets_lifetime,
                    net: net_base + i as u8,
                    key,
                    integrity_key,
                }
            },
        )
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Outer addresses: ours, and the peer's for tunnel `net`.
fn endpoints(t: &Tunnel) -> (String, String) {
    if t.outer_v6 {
        ("2001:db8:ff::1".into(), format!("2001:db8:ff::{:x}", t.net))
    } else {
        ("192.0.2.1".into(), format!("198.51.100.{}", t.net))
    }
}

/// What one side's configuration holds of the tunnels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The gateway under test and its reference: lifetimes included.
    Local,
    /// The far end: directions swapped, no lifetimes, no replay windows (it must accept
    /// whatever the engine under test sends, to show its content).
    Peer,
}

/// One side's configuration of every tunnel.
pub fn config_text(outbound: &[Tunnel], inbound: &[Tunnel], side: Side) -> String {
    let mut t = String::new();
    // (tunnel, sent by the local side)
    let all = outbound
        .iter()
        .map(|x| (x, true))
        .chain(inbound.iter().map(|x| (x, false)));
    for (tun, local_sends) in all.clone() {
        let (local, peer) = endpoints(tun);
        let (src, dst) = if local_sends {
            (local, peer)
        } else {
            (peer, local)
        };
        let window = match side {
            Side::Local => tun.window,
            Side::Peer => 0,
        };
        let mut sa = format!(
            "[[sa]]\nspi = {:#x}\nsrc = \"{src}\"\ndst = \"{dst}\"\nesn = {}\nseq = {}\nreplay_window = {window}\n",
            tun.spi, tun.esn, tun.seq
        );
        match tun.kind {
            Kind::Gcm128 | Kind::Bundle => {
                sa += &format!(
                    "protocol = \"esp\"\nencryption = \"aes-gcm-128\"\nkey = \"{}\"\n",
                    hex(&tun.key)
                )
            }
            Kind::Gcm256 => {
                sa += &format!(
                    "protocol = \"esp\"\nencryption = \"aes-gcm-256\"\nkey = \"{}\"\n",
                    hex(&tun.key)
                )
            }
            Kind::ChaCha => {
                sa += &format!(
                    "protocol = \"esp\"\nencryption = \"chacha20-poly1305\"\nkey = \"{}\"\n",
                    hex(&tun.key)
                )
            }
            Kind::Cbc => {
                sa += &format!(
                    "protocol = \"esp\"\nencryption = \"aes-cbc-128\"\nkey = \"{}\"\nintegrity = \"hmac-sha512-256\"\nintegrity_key = \"{}\"\n",
                    hex(&tun.key),
                    hex(&tun.integrity_key)
                )
            }
            Kind::Ah => {
                sa += &format!(
                    "protocol = \"ah\"\nintegrity = \"hmac-sha256-128\"\nintegrity_key = \"{}\"\n",
                    hex(&tun.integrity_key[..32])
                )
            }
        }
        if let Some((s, d)) = tun.udp {
            sa += &format!("udp_encap = {{ src_port = {s}, dst_port = {d} }}\n");
        }
        if let (Side::Local, Some((soft, hard))) = (side, tun.packets_lifetime) {
            sa += &format!("lifetime = {{ soft_packets = {soft}, hard_packets = {hard} }}\n");
        }
        t += &sa;
        if tun.kind == Kind::Bundle {
            t += &format!(
                "[[sa]]\nspi = {:#x}\nprotocol = \"ah\"\nmode = \"transport\"\nsrc = \"{src}\"\ndst = \"{dst}\"\n\
                 integrity = \"hmac-sha384-192\"\nintegrity_key = \"{}\"\nreplay_window = {window}\n",
                tun.spi + 1,
                hex(&tun.integrity_key[..48])
            );
        }
    }
    for (tun, local_sends) in all {
        // The local side's `out` policies for what it sends, `in` for what it receives.
        let dir = match (side, local_sends) {
            (Side::Local, true) | (Side::Peer, false) => "out",
            _ => "in",
        };
        let (from, to) = match (side, local_sends) {
            (Side::Local, true) | (Side::Peer, true) => (LOCAL_NET, tun.net),
            _ => (tun.net, LOCAL_NET),
        };
        let bundle = if tun.kind == Kind::Bundle {
            format!("{:#x}, {:#x}", tun.spi, tun.spi + 1)
        } else {
            format!("{:#x}", tun.spi)
        };
        for (s, d) in [
            (format!("10.{from}.0.0/16"), format!("10.{to}.0.0/16")),
            (
                format!("2001:db8:{from:x}::/48"),
                format!("2001:db8:{to:x}::/48"),
            ),
        ] {
            t += &format!(
                "[[policy]]\ndir = \"{dir}\"\nsrc = \"{s}\"\ndst = \"{d}\"\naction = \"protect\"\nsa = [{bundle}]\n"
            );
        }
    }
    for dir in ["out", "in"] {
        for (net, action) in [(BYPASS_NET, "bypass"), (DISCARD_NET, "discard")] {
            for (s, d) in [
                (format!("10.{net}.0.0/16"), "10.0.0.0/8".to_string()),
                ("10.0.0.0/8".to_string(), format!("10.{net}.0.0/16")),
            ] {
                t += &format!(
                    "[[policy]]\ndir = \"{dir}\"\nsrc = \"{s}\"\ndst = \"{d}\"\naction = \"{action}\"\n"
                );
            }
        }
    }
    t
}

/// A payload length: mostly small, often around the usual MTUs, now and then jumbo.
pub fn payload_len(rng: &mut StdRng) -> usize {
    match rng.gen_range(0..20) {
        0..=9 => rng.gen_range(0..=64),
        10..=16 => rng.gen_range(65..=1500),
        _ => rng.gen_range(1501..=9000),
    }
}

/// An inner UDP packet from network `from` to network `to` carrying identity `id` in its
/// ports, with a random TOS (DSCP and ECN) and DF.
pub fn inner_packet(
    rng: &mut StdRng,
    from: u8,
    to: u8,
    v6: bool,
    id: u32,
    payload: usize,
) -> Vec<u8> {
    let mut udp = vec![0u8; 8 + payload];
    udp[0..2].copy_from_slice(&((id >> 16) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&(id as u16).to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    rng.fill_bytes(&mut udp[8..]);
    let tos: u8 = rng.r#gen();
    let host: [u8; 2] = rng.r#gen();
    if v6 {
        let mut p = vec![0u8; 40];
        p[0] = 0x60 | (tos >> 4);
        p[1] = tos << 4;
        p[4..6].copy_from_slice(&(udp.len() as u16).to_be_bytes());
        p[6] = 17;
        p[7] = 64;
        let net = |n: u8| [0x20, 0x01, 0x0d, 0xb8, 0, n];
        p[8..14].copy_from_slice(&net(from));
        p[22..24].copy_from_slice(&host);
        p[24..30].copy_from_slice(&net(to));
        p[38..40].copy_from_slice(&[host[1], host[0]]);
        p.extend_from_slice(&udp);
        p
    } else {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[1] = tos;
        p[2..4].copy_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&(id as u16).to_be_bytes());
        if rng.gen_bool(0.5) {
            p[6] = 0x40;
        }
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, from, host[0], host[1]]);
        p[16..20].copy_from_slice(&[10, to, host[1], host[0]]);
        let sum = !espo_ipsec::wire::checksum::data(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&udp);
        p
    }
}

/// The identity in an inner packet's UDP ports.
pub fn identity(inner: &[u8]) -> Option<u32> {
    let l4 = match Version::of(inner)? {
        Version::Ipv4 => ipv4::Packet::new_unchecked(inner).header_len(),
        Version::Ipv6 => ipv6::HEADER_LEN,
    };
    let ports = inner.get(l4..l4 + 4)?;
    Some(u32::from_be_bytes([ports[0], ports[1], ports[2], ports[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_config::Config;

    use rand::SeedableRng;
    use std::path::Path;

    #[test]
    fn both_sides_configurations_are_valid_and_mirror_each_other() {
        let mut rng = StdRng::seed_from_u64(1);
        let (out, inb) = (outbound_tunnels(&mut rng), inbound_tunnels(&mut rng));
        let local = Config::parse(&config_text(&out, &inb, Side::Local), Path::new("l")).unwrap();
        let peer = Config::parse(&config_text(&out, &inb, Side::Peer), Path::new("p")).unwrap();
        let l = local.software_engine().unwrap();
        let p = peer.software_engine().unwrap();
        // Bundles add an AH SA on each side.
        assert_eq!(l.outbound.sas().len(), 13);
        assert_eq!(p.inbound.sas().len(), 13);
        assert_eq!(l.inbound.sas().len(), 13);
        assert_eq!(p.outbound.sas().len(), 13);
    }

    #[test]
    fn identities_survive_in_both_families() {
        let mut rng = StdRng::seed_from_u64(2);
        for v6 in [false, true] {
            for len in [0, 1, 9000] {
                let p = inner_packet(&mut rng, 1, 100, v6, 0xDEAD_BEEF, len);
                assert_eq!(identity(&p), Some(0xDEAD_BEEF));
                assert!(espo_ipsec::wire::Flow::parse(&p).is_ok());
            }
        }
    }
}
