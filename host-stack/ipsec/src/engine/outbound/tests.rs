//! The tunnel a packet takes, from the whole packet and from its head alone.

use proptest::prelude::*;

use super::super::SoftwareEngine;
use super::super::change::tests::spec;
use super::*;
use crate::selector::{Cidr, PortRange, ProtocolSelector};
use crate::spec::UdpEncap;
use crate::spec::{Direction, PolicyAction, PolicySpec, SaSpec};

/// An AES-GCM-128 tunnel SA, over IPv4 ([`spec`]'s) or IPv6, in UDP or not.
fn sa(spi: u32, udp_encap: bool, v6: bool) -> SaSpec {
    let mut s = spec(spi);
    if v6 {
        s.src = "2001:db8::1".parse().unwrap();
        s.dst = "2001:db8::2".parse().unwrap();
    }
    s.udp_encap = udp_encap.then_some(UdpEncap {
        src_port: 4500,
        dst_port: 4500,
    });
    s
}

fn policy(dst: &str, protocol: ProtocolSelector, dst_port: PortRange, spi: u32) -> PolicySpec {
    let src = match dst.contains(':') {
        true => "fd00:1::/48",
        false => "10.1.0.0/16",
    };
    PolicySpec {
        dir: Direction::Out,
        src: src.parse::<Cidr>().unwrap(),
        dst: dst.parse::<Cidr>().unwrap(),
        protocol,
        src_port: PortRange::ANY,
        dst_port,
        action: PolicyAction::Protect,
        sa: vec![spi],
    }
}

/// TCP to port 443 of site 2 through ESP in UDP, the rest of site 2 through ESP; IPv6
/// site 2 through ESP over IPv6; nothing else.
fn engine() -> Outbound {
    let sas = [
        sa(0x10, false, false),
        sa(0x11, true, false),
        sa(0x12, false, true),
    ];
    let policies = [
        policy(
            "10.2.0.0/16",
            ProtocolSelector::Number(6),
            PortRange {
                low: 443,
                high: 443,
            },
            0x11,
        ),
        policy("10.2.0.0/16", ProtocolSelector::Any, PortRange::ANY, 0x10),
        policy("fd00:2::/48", ProtocolSelector::Any, PortRange::ANY, 0x12),
    ];
    SoftwareEngine::new(&sas, &policies).unwrap().outbound
}

/// An IPv4 packet of `len` bytes (at least its header and 8 more) with `options` words of
/// options, or an IPv6 packet, to site 2 or elsewhere, with ports.
fn packet(v6: bool, to_site: bool, options: usize, protocol: u8, port: u16, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    let l4 = if v6 {
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p[6] = protocol;
        p[7] = 64;
        p[8..10].copy_from_slice(&[0xfd, 0]);
        p[11] = 1;
        p[24..26].copy_from_slice(&[0xfd, 0]);
        p[27] = if to_site { 2 } else { 9 };
        40
    } else {
        let ihl = 5 + options;
        p[0] = 0x40 | ihl as u8;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = protocol;
        p[12..16].copy_from_slice(&[10, 1, 0, 1]);
        p[16..20].copy_from_slice(&[10, if to_site { 2 } else { 9 }, 0, 1]);
        for b in &mut p[20..ihl * 4] {
            *b = 1; // no-operation options
        }
        let mut h = crate::wire::ipv4::Packet::new_unchecked(&mut p[..]);
        h.fill_checksum();
        ihl * 4
    };
    p[l4..l4 + 2].copy_from_slice(&1234u16.to_be_bytes());
    p[l4 + 2..l4 + 4].copy_from_slice(&port.to_be_bytes());
    p
}

#[test]
fn a_head_gives_the_whole_packets_tunnel() {
    let out = engine();
    let head = |p: &[u8]| out.tunnel_for_head(&p[..p.len().min(64)], p.len());
    // TCP to 443: ESP in UDP; other TCP, UDP: ESP; IPv6: ESP over IPv6; elsewhere: none.
    for (p, spi) in [
        (packet(false, true, 0, 6, 443, 1400), Some(0x11)),
        (packet(false, true, 0, 6, 80, 1400), Some(0x10)),
        (packet(false, true, 0, 17, 443, 9000), Some(0x10)),
        (packet(true, true, 0, 6, 443, 1400), Some(0x12)),
    ] {
        let whole = out.tunnel_for(&p).unwrap().unwrap();
        assert_eq!(whole.outer_spi, spi.unwrap());
        assert_eq!(head(&p), Ok(Some(whole)));
    }
    // Bytes after what the IP header declares (link padding) are not encapsulated: the
    // head gives the declared packet's overhead, as the whole packet does.
    for v6 in [false, true] {
        let mut padded = packet(v6, true, 0, 1, 443, 936);
        let at = if v6 { 4 } else { 2 };
        let declared = u16::from_be_bytes([padded[at], padded[at + 1]]) - 1;
        padded[at..at + 2].copy_from_slice(&declared.to_be_bytes());
        if !v6 {
            crate::wire::ipv4::Packet::new_unchecked(&mut padded[..]).fill_checksum();
        }
        let whole = out.tunnel_for(&padded).unwrap().unwrap();
        let unpadded = out.tunnel_for(&padded[..935]).unwrap().unwrap();
        assert_eq!(whole, unpadded);
        assert_eq!(head(&padded), Ok(Some(whole)));
    }
    let elsewhere = packet(false, false, 0, 17, 53, 200);
    assert_eq!(out.tunnel_for(&elsewhere), Err(DropReason::NoPolicy));
    assert_eq!(head(&elsewhere), Err(DropReason::NoPolicy));
    // The ports beyond the head: no answer, never another SA's.
    let far = packet(false, true, 10, 6, 443, 1400);
    assert_eq!(out.tunnel_for(&far).unwrap().unwrap().outer_spi, 0x11);
    assert_eq!(
        out.tunnel_for_head(&far[..40], far.len()),
        Err(DropReason::Malformed)
    );
}

proptest! {
    /// Whatever the packet, its head gives the whole packet's tunnel (overhead included),
    /// or `Malformed` — never another answer.
    #[test]
    fn a_head_never_gives_another_tunnel(
        v6 in any::<bool>(),
        to_site in any::<bool>(),
        options in 0usize..=10,
        protocol in prop::sample::select(vec![1u8, 6, 17, 50, 58]),
        port in prop::sample::select(vec![443u16, 80, 4500]),
        len in 80usize..9100,
        cut in 0usize..=64,
        junk in any::<u8>(),
    ) {
        let out = engine();
        let mut p = packet(v6, to_site, options, protocol, port, len);
        if junk < 8 {
            p[usize::from(junk)] ^= 0xff;
        }
        let whole = out.tunnel_for(&p);
        let head = out.tunnel_for_head(&p[..cut.min(p.len())], len);
        prop_assert!(head == whole || head == Err(DropReason::Malformed), "{head:?} against {whole:?}");
        if cut == 64 && (v6 || options == 0) && junk >= 8 {
            prop_assert_eq!(head, whole);
        }
    }
}
