//! Shared by the differential tests: tunnels configured identically in the RTL core and in
//! espo-ipsec's software engine, and seeded inner packets.
#![allow(dead_code)]

use espo_config::Config;
use espo_fpga::{AlgId, DfMode, SaEntry};
use espo_ipsec::engine::SoftwareEngine;
use espo_rtl::{Direction, PacketIn, Rtl};
use rand::{Rng, RngCore};
use std::path::Path;

pub const MAC: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

/// One ESP tunnel SA, as both engines hold it.
#[derive(Debug, Clone, Copy)]
pub struct Tunnel {
    pub spi: u32,
    pub outer_v6: bool,
    pub gcm256: bool,
    pub esn: bool,
    pub udp: bool,
    pub ttl: u8,
    pub window: u32,
    /// Outer IPv4 DF bit: copied, set or cleared (SA_ENTRY.DF_MODE; `df` in the config).
    pub df: DfMode,
    /// Last sequence number used (outbound) / window top (inbound).
    pub seq: u64,
}

impl Tunnel {
    pub fn new(spi: u32) -> Tunnel {
        Tunnel {
            spi,
            outer_v6: false,
            gcm256: false,
            esn: false,
            udp: false,
            ttl: 64,
            window: 64,
            df: DfMode::Copy,
            seq: 0,
        }
    }

    /// Key followed by the 4-byte salt, derived from the whole SPI (so that no two tunnels
    /// share a key: espo refuses two AEAD SAs under one key and salt).
    pub fn key_material(&self) -> Vec<u8> {
        let n = if self.gcm256 { 36 } else { 20 };
        let spi = self.spi.to_be_bytes();
        (0..n)
            .map(|i| spi[i % 4].wrapping_mul(31).wrapping_add(i as u8 * 7) ^ 0x5c)
            .collect()
    }

    fn addrs(&self) -> (&'static str, &'static str) {
        if self.outer_v6 {
            ("2001:db8::1", "2001:db8::2")
        } else {
            ("192.0.2.1", "192.0.2.2")
        }
    }

    fn toml(&self) -> String {
        let (src, dst) = self.addrs();
        let key: String = self
            .key_material()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut t = format!(
            "[[sa]]\nspi = {}\nprotocol = \"esp\"\nmode = \"tunnel\"\nsrc = \"{src}\"\ndst = \"{dst}\"\n\
             encryption = \"{}\"\nkey = \"{key}\"\nesn = {}\nseq = {}\nreplay_window = {}\nttl = {}\n",
            self.spi,
            if self.gcm256 {
                "aes-gcm-256"
            } else {
                "aes-gcm-128"
            },
            self.esn,
            self.seq,
            self.window,
            self.ttl
        );
        t.push_str(match self.df {
            DfMode::Set => "df = \"set\"\n",
            DfMode::Clear => "df = \"clear\"\n",
            _ => "df = \"copy\"\n",
        });
        if self.udp {
            t.push_str("udp_encap = { src_port = 4500, dst_port = 4500 }\n");
        }
        t
    }

    /// The SA_ENTRY of this tunnel in one direction.
    pub fn entry(&self, outbound: bool) -> SaEntry {
        let km = self.key_material();
        let klen = km.len() - 4;
        let mut key = [0u8; 32];
        key[..klen].copy_from_slice(&km[..klen]);
        let mut salt = [0u8; 4];
        salt.copy_from_slice(&km[klen..]);
        let addr = |s: &str| -> [u8; 16] {
            let mut a = [0u8; 16];
            match s.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(v)) => a[..4].copy_from_slice(&v.octets()),
                Ok(std::net::IpAddr::V6(v)) => a = v.octets(),
                Err(_) => {}
            }
            a
        };
        let (src, dst) = self.addrs();
        SaEntry {
            outbound,
            outer_ipv6: self.outer_v6,
            esn: self.esn,
            udp_encap: self.udp,
            spi: self.spi,
            alg: Some(if self.gcm256 {
                AlgId::AesGcm256
            } else {
                AlgId::AesGcm128
            }),
            ttl: self.ttl,
            df_mode: self.df,
            rx_queue: 0,
            replay_window: if outbound { 0 } else { self.window },
            key,
            salt,
            udp_src_port: if self.udp { 4500 } else { 0 },
            udp_dst_port: if self.udp { 4500 } else { 0 },
            src_addr: addr(src),
            dst_addr: addr(dst),
            seq: if outbound { self.seq } else { 0 },
            soft_bytes: 0,
            hard_bytes: 0,
            soft_packets: 0,
            hard_packets: 0,
        }
    }
}

/// Inner destination prefixes of tunnel `k` (one policy pair per family).
fn inner_dst(k: usize) -> (String, String) {
    (
        format!("10.{}.{}.0/24", 2 + k / 256, k % 256),
        format!("fd00:2:0:{k:x}::/64"),
    )
}

fn engine(tunnels: &[Tunnel], dir: &str) -> SoftwareEngine {
    let mut text = String::new();
    for t in tunnels {
        text.push_str(&t.toml());
    }
    for (k, t) in tunnels.iter().enumerate() {
        let (v4, v6) = inner_dst(k);
        for (src, dst) in [("10.1.0.0/16", v4), ("fd00:1::/32", v6)] {
            let (s, d) = (src, dst);
            text.push_str(&format!(
                "[[policy]]\ndir = \"{dir}\"\nsrc = \"{s}\"\ndst = \"{d}\"\naction = \"protect\"\nsa = [{}]\n",
                t.spi
            ));
        }
    }
    let config = Config::parse(&text, Path::new("differential.toml")).expect("valid configuration");
    config.software_engine().expect("engine")
}

/// The sending side's software engine (outbound SAs).
pub fn sender(tunnels: &[Tunnel]) -> SoftwareEngine {
    engine(tunnels, "out")
}

/// The receiving side's software engine (inbound SAs).
pub fn receiver(tunnels: &[Tunnel]) -> SoftwareEngine {
    engine(tunnels, "in")
}

/// RTL SA index of tunnel k's outbound and inbound entries.
pub fn out_index(k: usize) -> u32 {
    2 * k as u32 + 1
}
pub fn in_index(k: usize) -> u32 {
    2 * k as u32 + 2
}

/// An RTL core holding every tunnel in both directions.
pub fn rtl_with(tunnels: &[Tunnel]) -> Rtl {
    let mut rtl = Rtl::new();
    for (k, t) in tunnels.iter().enumerate() {
        let s = rtl
            .write_sa(out_index(k), &t.entry(true), None)
            .expect("SA_WRITE");
        assert_eq!(s, espo_fpga::Status::Ok, "outbound SA of tunnel {k}");
        let state = espo_fpga::SaState {
            seq: t.seq,
            ..espo_fpga::SaState::default()
        };
        let s = rtl
            .write_sa(in_index(k), &t.entry(false), Some(&state))
            .expect("SA_WRITE");
        assert_eq!(s, espo_fpga::Status::Ok, "inbound SA of tunnel {k}");
    }
    rtl
}

fn checksum(b: &[u8]) -> u16 {
    let mut acc = 0u32;
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// A UDP datagram in IPv4 or IPv6 of exactly `len` bytes (at least the headers) towards
/// tunnel k's inner prefix, with the given TOS / traffic class.
pub fn inner_packet(
    rng: &mut impl RngCore,
    k: usize,
    v6: bool,
    len: usize,
    tos: u8,
    df: bool,
) -> Vec<u8> {
    let hdr = if v6 { 40 } else { 20 };
    let len = len.max(hdr + 8);
    let mut p = vec![0u8; len];
    rng.fill_bytes(&mut p[hdr..]);
    let udp_len = (len - hdr) as u16;
    if v6 {
        let vtf = (6u32 << 28) | (u32::from(tos) << 20) | (rng.r#gen::<u32>() & 0xfffff);
        p[0..4].copy_from_slice(&vtf.to_be_bytes());
        p[4..6].copy_from_slice(&udp_len.to_be_bytes());
        p[6] = 17;
        p[7] = 63;
        p[8..24].copy_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&[0xfd, 0, 0, 2, 0, 0, (k >> 8) as u8, k as u8]);
        d[15] = 9;
        p[24..40].copy_from_slice(&d);
    } else {
        p[0] = 0x45;
        p[1] = tos;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[4..6].copy_from_slice(&rng.r#gen::<u16>().to_be_bytes());
        p[6] = if df { 0x40 } else { 0 };
        p[8] = 63;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 0, 5]);
        p[16..20].copy_from_slice(&[10, 2 + (k / 256) as u8, (k % 256) as u8, 9]);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p[hdr..hdr + 2].copy_from_slice(&1234u16.to_be_bytes());
    p[hdr + 2..hdr + 4].copy_from_slice(&5678u16.to_be_bytes());
    p[hdr + 4..hdr + 6].copy_from_slice(&udp_len.to_be_bytes());
    p[hdr + 6..hdr + 8].copy_from_slice(&[0, 0]);
    p
}

/// An Ethernet frame around an IP packet.
pub fn frame(ip: &[u8]) -> Vec<u8> {
    let mut f = MAC.to_vec();
    let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip);
    f
}

pub fn outbound(k: usize, ip: &[u8]) -> PacketIn {
    PacketIn {
        frame: frame(ip),
        direction: Direction::Outbound {
            sa_index: out_index(k),
            bypass: false,
        },
    }
}

pub fn inbound(frame: Vec<u8>) -> PacketIn {
    PacketIn {
        frame,
        direction: Direction::Inbound,
    }
}

/// Random TOS with every ECN codepoint.
pub fn tos(rng: &mut impl Rng) -> u8 {
    rng.r#gen::<u8>()
}
