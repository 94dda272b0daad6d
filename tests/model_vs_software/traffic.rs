//! The traffic of the differential test: the SAs (as a configuration for the software
//! engine and as SA_ENTRY images for the card) and random inner packets.

use espo_fpga::{AlgId, DfMode, SaEntry, SaState};
use rand::Rng;
use rand::rngs::StdRng;

/// Whether an SA uses UDP encapsulation, and its source port (the destination is 4500,
/// the card's `NATT_PORT`).
pub type UdpEncap = Option<u16>;

/// One tunnel SA of the test, the same on both engines.
pub struct TestSa {
    pub spi: u32,
    pub gcm256: bool,
    pub outer_v6: bool,
    /// `None`: left to the default (64).
    pub ttl: Option<u8>,
    /// `None`: left to the default (copy).
    pub df: Option<DfMode>,
    pub udp: UdpEncap,
    pub esn: bool,
    /// Last sequence number used; the first packet carries `seq + 1`.
    pub seq: u64,
    pub replay_window: u32,
    /// Key followed by the 4-byte salt.
    pub key: Vec<u8>,
}

/// (AES-256, outer IPv6, TTL, DF mode, UDP, ESN, first sequence number - 1, window).
type Shape = (
    bool,
    bool,
    Option<u8>,
    Option<DfMode>,
    UdpEncap,
    bool,
    u64,
    u32,
);

/// The SAs: every outer family, both key sizes, UDP over IPv4 and IPv6, TTL and DF
/// settings, ESN across the first and the second 2^32 boundary, a non-ESN SA that runs
/// out of sequence numbers, the IPv4 identification wrapping, windows from 0 to 4096.
pub fn test_sas(rng: &mut StdRng) -> Vec<TestSa> {
    #[rustfmt::skip]
    let shapes: [Shape; 6] = [
        (false, false, None, None, None, false, 0, 16),
        (true, true, Some(17), Some(DfMode::Set), None, true, 0xFFFF_FF80, 128),
        (false, false, Some(255), Some(DfMode::Set), Some(4500), true, 0xFFFF_FFC0, 32),
        (true, false, Some(1), Some(DfMode::Clear), None, false, 0xFFFF_FFFF - 40, 1024),
        (false, true, Some(200), None, Some(31000), true, 0x1_FFFF_FFF0, 4096),
        (true, false, Some(64), Some(DfMode::Copy), None, true, 0xFFC0, 0),
    ];
    shapes
        .into_iter()
        .enumerate()
        .map(
            |(i, (gcm256, outer_v6, ttl, df, udp, esn, seq, replay_window))| {
                let key_len = if gcm256 { 32 } else { 16 } + 4;
                TestSa {
                    spi: 0x0A00_0101 * (i as u32 + 1),
                    gcm256,
                    outer_v6,
                    ttl,
                    df,
                    udp,
                    esn,
                    seq,
                    replay_window,
                    key: (0..key_len).map(|_| rng.r#gen()).collect(),
                }
            },
        )
        .collect()
}

fn outer_addrs(i: usize, v6: bool) -> (String, String) {
    if v6 {
        (
            "2001:db8:ff::1".into(),
            format!("2001:db8:ff::{:x}", 0x10 + i),
        )
    } else {
        ("192.0.2.1".into(), format!("192.0.2.{}", 10 + i))
    }
}

fn df_name(df: DfMode) -> &'static str {
    match df {
        DfMode::Set => "set",
        DfMode::Clear => "clear",
        _ => "copy",
    }
}

/// The inner selectors of SA `i`: (IPv4 src, IPv4 dst, IPv6 src, IPv6 dst).
fn selectors(i: usize) -> [String; 4] {
    [
        format!("10.{}.0.0/16", i + 1),
        format!("10.{}.0.0/16", i + 101),
        format!("2001:db8:{:x}::/48", i + 1),
        format!("2001:db8:{:x}::/48", i + 0x101),
    ]
}

/// The software engine's configuration: every SA, and for each one an IPv4 and an IPv6
/// policy of direction `dir` ("out" for the sender, "in" for the receiver).
pub fn config_text(sas: &[TestSa], dir: &str) -> String {
    let mut t = String::new();
    for (i, sa) in sas.iter().enumerate() {
        let (src, dst) = outer_addrs(i, sa.outer_v6);
        let enc = if sa.gcm256 {
            "aes-gcm-256"
        } else {
            "aes-gcm-128"
        };
        let key: String = sa.key.iter().map(|b| format!("{b:02x}")).collect();
        t += &format!(
            "[[sa]]\nspi = {:#x}\nprotocol = \"esp\"\nmode = \"tunnel\"\nsrc = \"{src}\"\ndst = \"{dst}\"\n\
             encryption = \"{enc}\"\nkey = \"{key}\"\nesn = {}\nseq = {}\nreplay_window = {}\n",
            sa.spi, sa.esn, sa.seq, sa.replay_window
        );
        if let Some(ttl) = sa.ttl {
            t += &format!("ttl = {ttl}\n");
        }
        if let Some(df) = sa.df {
            t += &format!("df = \"{}\"\n", df_name(df));
        }
        if let Some(port) = sa.udp {
            t += &format!("udp_encap = {{ src_port = {port}, dst_port = 4500 }}\n");
        }
    }
    for (i, sa) in sas.iter().enumerate() {
        let [s4, d4, s6, d6] = selectors(i);
        for (s, d) in [(s4, d4), (s6, d6)] {
            t += &format!(
                "[[policy]]\ndir = \"{dir}\"\nsrc = \"{s}\"\ndst = \"{d}\"\naction = \"protect\"\nsa = [{:#x}]\n",
                sa.spi
            );
        }
    }
    t
}

fn addr_bytes(text: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    match text.parse::<std::net::IpAddr>().expect("address") {
        std::net::IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        std::net::IpAddr::V6(a) => out = a.octets(),
    }
    out
}

/// SA `i` as the card's SA_ENTRY (outbound or inbound).
pub fn sa_entry(i: usize, sa: &TestSa, outbound: bool) -> SaEntry {
    let (src, dst) = outer_addrs(i, sa.outer_v6);
    let key_len = sa.key.len() - 4;
    let mut e = SaEntry {
        outbound,
        outer_ipv6: sa.outer_v6,
        esn: sa.esn,
        udp_encap: sa.udp.is_some(),
        df_mode: sa.df.unwrap_or_default(),
        spi: sa.spi,
        alg: Some(if sa.gcm256 {
            AlgId::AesGcm256
        } else {
            AlgId::AesGcm128
        }),
        ttl: sa.ttl.unwrap_or(0),
        replay_window: sa.replay_window,
        udp_src_port: sa.udp.unwrap_or(0),
        udp_dst_port: if sa.udp.is_some() { 4500 } else { 0 },
        src_addr: addr_bytes(&src),
        dst_addr: addr_bytes(&dst),
        seq: sa.seq,
        ..SaEntry::default()
    };
    e.key[..key_len].copy_from_slice(&sa.key[..key_len]);
    e.salt.copy_from_slice(&sa.key[key_len..]);
    e
}

/// The inbound window as the software engine starts it from `seq`: top = `seq`, marked
/// received (espo-ipsec's `InboundSa::new`).
pub fn inbound_state(sa: &TestSa) -> SaState {
    let mut s = SaState {
        seq: sa.seq,
        window: sa.replay_window,
        ..SaState::default()
    };
    if sa.seq > 0 && sa.replay_window > 0 {
        s.bitmap[0] = 1;
    }
    s
}

/// A random payload length: mostly small, often around the usual MTUs, up to 9000.
pub fn payload_len(rng: &mut StdRng) -> usize {
    match rng.gen_range(0..10) {
        0..=3 => rng.gen_range(0..64),
        4..=6 => rng.gen_range(64..1500),
        _ => rng.gen_range(1500..=9000),
    }
}

/// A random inner packet matching SA `i`'s selectors: IPv4 (sometimes with options) or
/// IPv6, UDP, TCP, ICMP or GRE, any TOS / traffic class (DSCP and ECN), DF on or off,
/// `payload` bytes after the transport header.
pub fn inner_packet(rng: &mut StdRng, i: usize, v6: bool, payload: usize) -> Vec<u8> {
    let (proto, l4_len) = match rng.gen_range(0..20) {
        0..=9 => (17u8, 8usize),
        10..=13 => (6, 20),
        14..=16 => (if v6 { 58 } else { 1 }, 8),
        _ => (47, 0),
    };
    let mut l4: Vec<u8> = (0..l4_len + payload).map(|_| rng.r#gen()).collect();
    if proto == 17 {
        let len = (l4.len() as u16).to_be_bytes();
        l4[4..6].copy_from_slice(&len);
    }
    let tos: u8 = rng.r#gen();
    let mut p;
    if v6 {
        p = vec![0u8; 40];
        let flow: u32 = rng.gen_range(0..1 << 20);
        let vtf = (6u32 << 28) | (u32::from(tos) << 20) | flow;
        p[0..4].copy_from_slice(&vtf.to_be_bytes());
        p[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
        p[6] = proto;
        p[7] = rng.gen_range(1..=255);
        p[8..10].copy_from_slice(&[0x20, 0x01]);
        p[10..12].copy_from_slice(&[0x0d, 0xb8]);
        p[12..14].copy_from_slice(&((i + 1) as u16).to_be_bytes());
        rng.fill(&mut p[14..24]);
        p[24..28].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p[28..30].copy_from_slice(&((i + 0x101) as u16).to_be_bytes());
        rng.fill(&mut p[30..40]);
    } else {
        let options = rng.gen_bool(0.1);
        let ihl = if options { 6 } else { 5 };
        p = vec![0u8; ihl * 4];
        p[0] = 0x40 | ihl as u8;
        p[1] = tos;
        p[2..4].copy_from_slice(&((ihl * 4 + l4.len()) as u16).to_be_bytes());
        rng.fill(&mut p[4..6]);
        p[6] = if rng.r#gen() { 0x40 } else { 0 };
        p[8] = rng.gen_range(1..=255);
        p[9] = proto;
        p[12..14].copy_from_slice(&[10, i as u8 + 1]);
        rng.fill(&mut p[14..16]);
        p[16..18].copy_from_slice(&[10, i as u8 + 101]);
        rng.fill(&mut p[18..20]);
        if options {
            p[20..24].copy_from_slice(&[1, 1, 1, 0]); // NOP, NOP, NOP, end of options
        }
        let sum = ones_complement(&p);
        p[10..12].copy_from_slice(&(!sum).to_be_bytes());
    }
    p.extend_from_slice(&l4);
    p
}

/// The folded one's-complement sum of `data`.
pub fn ones_complement(data: &[u8]) -> u16 {
    let mut acc: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u16
}
