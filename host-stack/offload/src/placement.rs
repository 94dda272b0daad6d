//! Which SAs the card can take, and their SA table images (datasheet §1, §6, §8.4).
//!
//! The card does ESP tunnel mode with AES-GCM-128/256 and nothing else: AH, AES-CBC with
//! HMAC, ChaCha20-Poly1305, NULL encryption, transport mode and SA bundles stay in software,
//! as does anything the capability bits the driver negotiated do not claim (an IPv6 outer
//! header, ESN, UDP encapsulation, an inbound window, lifetimes) and windows larger than
//! the card's. An inbound UDP-encapsulated SA must use the card's NAT-T port, or its
//! packets would reach software while its window lives on the card.

use std::fmt;
use std::net::IpAddr;

use espo_driver::card::Capabilities;
use espo_fpga::regs::cap::features;
use espo_fpga::{AlgId, DfMode as CardDfMode, SaEntry};

use espo_ipsec::crypto::EncryptionAlgorithm;
use espo_ipsec::spec::{DfMode, SaMode, SaProtocol, SaSpec};

/// UDP destination port the card recognises as ESP in UDP (datasheet §7.6, its default).
pub const CARD_NATT_PORT: u16 = 4500;

/// Why an SA runs in software.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// There is no card (none configured, removed, or given up on after repeated faults).
    NoCard,
    /// AH: never in hardware.
    Ah,
    /// Transport mode: never in hardware.
    Transport,
    /// Part of an ESP+AH bundle: never in hardware.
    Bundle,
    /// An algorithm the card does not claim (`CAP_ALGS`).
    Algorithm(EncryptionAlgorithm),
    /// A feature the card does not claim or the driver did not enable.
    Feature(&'static str),
    /// An inbound window larger than the card's.
    Window { packets: u32, card_max: u32 },
    /// Inbound ESP in UDP on a port other than the card's NAT-T port.
    NattPort(u16),
    /// The card refused the SA when it was written (`SA_WRITE` status).
    Refused,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::NoCard => f.write_str("no card"),
            Unfit::Ah => f.write_str("AH"),
            Unfit::Transport => f.write_str("transport mode"),
            Unfit::Bundle => f.write_str("ESP+AH bundle"),
            Unfit::Algorithm(a) => write!(f, "{} not in hardware", a.name()),
            Unfit::Feature(what) => write!(f, "card lacks {what}"),
            Unfit::Window { packets, card_max } => {
                write!(f, "window {packets} > card's {card_max}")
            }
            Unfit::NattPort(p) => write!(f, "UDP port {p} is not the card's NAT-T port"),
            Unfit::Refused => f.write_str("refused by the card"),
        }
    }
}

/// Whether the card can hold this SA in the given direction.
pub fn fitness(
    sa: &SaSpec,
    outbound: bool,
    in_bundle: bool,
    caps: &Capabilities,
    enabled_features: u32,
) -> Result<AlgId, Unfit> {
    if sa.protocol == SaProtocol::Ah {
        return Err(Unfit::Ah);
    }
    if sa.mode != SaMode::Tunnel {
        return Err(Unfit::Transport);
    }
    if in_bundle {
        return Err(Unfit::Bundle);
    }
    let alg = match sa.encryption {
        Some(EncryptionAlgorithm::AesGcm128) => AlgId::AesGcm128,
        Some(EncryptionAlgorithm::AesGcm256) => AlgId::AesGcm256,
        Some(other) => return Err(Unfit::Algorithm(other)),
        None => return Err(Unfit::Feature("an encryption algorithm")),
    };
    if !caps.has_alg(alg) {
        return Err(Unfit::Algorithm(
            sa.encryption.unwrap_or(EncryptionAlgorithm::Null),
        ));
    }
    let enabled = |f: espo_fpga::Field| f.is_set(enabled_features.into());
    let needs = [
        (sa.dst.is_ipv6(), features::OUTER_IPV6, "IPv6 outer headers"),
        (sa.dst.is_ipv4(), features::OUTER_IPV4, "IPv4 outer headers"),
        (true, features::INNER_IPV4, "IPv4 inner packets"),
        (true, features::INNER_IPV6, "IPv6 inner packets"),
        (sa.esn, features::ESN, "extended sequence numbers"),
        (
            sa.udp_encap.is_some(),
            features::UDP_ENCAP,
            "UDP encapsulation",
        ),
        (
            !outbound && sa.replay_window > 0,
            features::ANTI_REPLAY,
            "anti-replay",
        ),
        (
            has_counted_lifetime(sa),
            features::LIFETIMES,
            "byte/packet lifetimes",
        ),
        (true, features::SA_STATE_EXPORT, "SA state export"),
    ];
    if let Some((_, _, what)) = needs.iter().find(|(needed, f, _)| *needed && !enabled(*f)) {
        return Err(Unfit::Feature(what));
    }
    if !outbound && sa.replay_window > caps.replay_window_max {
        return Err(Unfit::Window {
            packets: sa.replay_window,
            card_max: caps.replay_window_max,
        });
    }
    if let (false, Some(u)) = (outbound, sa.udp_encap)
        && u.dst_port != CARD_NATT_PORT
    {
        return Err(Unfit::NattPort(u.dst_port));
    }
    Ok(alg)
}

fn has_counted_lifetime(sa: &SaSpec) -> bool {
    let l = &sa.lifetime;
    [l.soft_bytes, l.hard_bytes, l.soft_packets, l.hard_packets]
        .iter()
        .any(Option::is_some)
}

/// An address as the SA entry holds it: IPv4 in bytes 0–3 (datasheet §0).
fn addr16(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

/// The SA table image of a configured AES-GCM SA (key and salt split as RFC 4106 §8.1
/// keys them). `alg` comes from [`fitness`]. The sequence number and window travel in the
/// `SaState` written with it; lifetimes of 0 mean none (§11).
pub fn sa_entry(sa: &SaSpec, outbound: bool, alg: AlgId) -> SaEntry {
    let key = sa.key.as_ref().map(|k| k.as_bytes()).unwrap_or(&[]);
    let key_len = key.len().saturating_sub(4).min(32);
    let mut e = SaEntry {
        outbound,
        outer_ipv6: sa.dst.is_ipv6(),
        esn: sa.esn,
        udp_encap: sa.udp_encap.is_some(),
        df_mode: match sa.df {
            DfMode::Copy => CardDfMode::Copy,
            DfMode::Set => CardDfMode::Set,
            DfMode::Clear => CardDfMode::Clear,
        },
        spi: sa.spi,
        alg: Some(alg),
        ttl: sa.ttl,
        rx_queue: 0,
        replay_window: if outbound { 0 } else { sa.replay_window },
        udp_src_port: sa.udp_encap.map_or(0, |u| u.src_port),
        udp_dst_port: sa.udp_encap.map_or(0, |u| u.dst_port),
        src_addr: addr16(sa.src),
        dst_addr: addr16(sa.dst),
        seq: 0,
        soft_bytes: sa.lifetime.soft_bytes.unwrap_or(0),
        hard_bytes: sa.lifetime.hard_bytes.unwrap_or(0),
        soft_packets: sa.lifetime.soft_packets.unwrap_or(0),
        hard_packets: sa.lifetime.hard_packets.unwrap_or(0),
        ..SaEntry::default()
    };
    if let (Some(k), Some(salt)) = (key.get(..key_len), key.get(key_len..key_len + 4)) {
        e.key[..key_len].copy_from_slice(k);
        e.salt.copy_from_slice(salt);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_config::Config;
    use std::path::Path;

    fn caps() -> Capabilities {
        Capabilities {
            algs: 0b110,
            features: 0x3FF,
            sa_table_size: 4096,
            queue_count: 4,
            ring_min_log2: 4,
            ring_max_log2: 15,
            replay_window_max: 4096,
            max_frame: 9216,
            engines: 4,
            vectors: 5,
        }
    }

    fn one(sa: &str) -> SaSpec {
        let protocol = if sa.contains("protocol") {
            ""
        } else {
            "protocol = \"esp\"\n"
        };
        let text = format!(
            "[[sa]]\nspi = 0x1001\n{protocol}src = \"192.0.2.1\"\ndst = \"192.0.2.2\"\n{sa}\n\
             [[policy]]\ndir = \"in\"\nsrc = \"10.0.0.0/8\"\ndst = \"10.0.0.0/8\"\naction = \"protect\"\nsa = [0x1001]\n"
        );
        Config::parse(&text, Path::new("t.toml"))
            .expect("config")
            .sas
            .remove(0)
    }

    const GCM: &str =
        "encryption = \"aes-gcm-128\"\nkey = \"000102030405060708090a0b0c0d0e0f10111213\"";

    #[test]
    fn aes_gcm_tunnels_fit_and_everything_else_does_not() {
        let c = caps();
        assert_eq!(
            fitness(&one(GCM), true, false, &c, 0x3FF),
            Ok(AlgId::AesGcm128)
        );
        assert_eq!(
            fitness(&one(GCM), true, true, &c, 0x3FF),
            Err(Unfit::Bundle)
        );
        let chacha = one(&format!(
            "encryption = \"chacha20-poly1305\"\nkey = \"{}\"",
            "11".repeat(36)
        ));
        assert!(matches!(
            fitness(&chacha, true, false, &c, 0x3FF),
            Err(Unfit::Algorithm(EncryptionAlgorithm::ChaCha20Poly1305))
        ));
        let cbc = one(&format!(
            "encryption = \"aes-cbc-128\"\nkey = \"{}\"\nintegrity = \"hmac-sha256-128\"\nintegrity_key = \"{}\"",
            "22".repeat(16),
            "33".repeat(32)
        ));
        assert!(matches!(
            fitness(&cbc, false, false, &c, 0x3FF),
            Err(Unfit::Algorithm(EncryptionAlgorithm::AesCbc128))
        ));
        let ah = one(&format!(
            "protocol = \"ah\"\nintegrity = \"hmac-sha256-128\"\nintegrity_key = \"{}\"",
            "44".repeat(32)
        ));
        assert_eq!(fitness(&ah, true, false, &c, 0x3FF), Err(Unfit::Ah));
        let big = one(&format!("{GCM}\nreplay_window = 8192"));
        assert!(matches!(
            fitness(&big, false, false, &c, 0x3FF),
            Err(Unfit::Window { .. })
        ));
        assert!(
            fitness(&big, true, false, &c, 0x3FF).is_ok(),
            "no window outbound"
        );
        let esn = one(&format!("{GCM}\nesn = true"));
        let no_esn = 0x3FF & !(features::ESN.mask() as u32);
        assert_eq!(
            fitness(&esn, true, false, &c, no_esn),
            Err(Unfit::Feature("extended sequence numbers"))
        );
        let natt = one(&format!(
            "{GCM}\nudp_encap = {{ src_port = 4500, dst_port = 4501 }}"
        ));
        assert_eq!(
            fitness(&natt, false, false, &c, 0x3FF),
            Err(Unfit::NattPort(4501))
        );
        assert!(fitness(&natt, true, false, &c, 0x3FF).is_ok());
        let mut only_256 = c;
        only_256.algs = 0b100;
        assert!(fitness(&one(GCM), true, false, &only_256, 0x3FF).is_err());
    }

    #[test]
    fn the_entry_splits_key_and_salt_and_carries_the_lifetimes() {
        let sa = one(&format!(
            "{GCM}\nudp_encap = {{ src_port = 1234, dst_port = 4500 }}\nttl = 9\ndf = \"set\"\n\
             lifetime = {{ soft_packets = 10, hard_bytes = 5000 }}"
        ));
        let e = sa_entry(&sa, true, AlgId::AesGcm128);
        assert_eq!(&e.key[..16], &(0u8..16).collect::<Vec<_>>()[..]);
        assert!(e.key[16..].iter().all(|&b| b == 0));
        assert_eq!(e.salt, [16, 17, 18, 19]);
        assert_eq!((e.udp_src_port, e.udp_dst_port, e.ttl), (1234, 4500, 9));
        assert_eq!(e.df_mode, CardDfMode::Set);
        assert_eq!(
            (e.soft_packets, e.hard_bytes, e.hard_packets),
            (10, 5000, 0)
        );
        assert_eq!(&e.dst_addr[..4], &[192, 0, 2, 2]);
        assert!(e.dst_addr[4..].iter().all(|&b| b == 0));
        assert!(
            !format!("{e:?}").contains("0, 1, 2, 3"),
            "key never printed"
        );
    }
}
