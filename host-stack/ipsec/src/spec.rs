//! Typed specifications of SAs and policies: what the software engine, the offload engine
//! and the live SA and policy database are built from. Where they come from — the
//! configuration file (espo-config), the control socket, a key exchange — is not this
//! crate's business; every value here is already validated.

use std::net::IpAddr;

use crate::crypto::{EncryptionAlgorithm, IntegrityAlgorithm, SecretKey};
use crate::selector::{Cidr, PortRange, ProtocolSelector};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaProtocol {
    Esp,
    Ah,
}

impl SaProtocol {
    pub fn name(self) -> &'static str {
        match self {
            SaProtocol::Esp => "esp",
            SaProtocol::Ah => "ah",
        }
    }

    /// The IP protocol number (50 or 51).
    pub fn ip_protocol(self) -> u8 {
        match self {
            SaProtocol::Esp => 50,
            SaProtocol::Ah => 51,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaMode {
    /// A new outer IP header carries the tunnel endpoints.
    Tunnel,
    /// AH applied over an ESP tunnel packet, sharing its outer header (the ESP+AH bundle).
    Transport,
}

/// How the outer IPv4 header's DF bit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfMode {
    /// From an IPv4 inner packet; set for an IPv6 inner packet (which never fragments en route).
    Copy,
    Set,
    Clear,
}

/// RFC 3948 UDP encapsulation ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    pub src_port: u16,
    pub dst_port: u16,
}

/// Soft and hard limits of an SA's life; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
    pub soft_seconds: Option<u64>,
    pub hard_seconds: Option<u64>,
}

/// One SA, validated (a `[[sa]]` entry of the configuration, or one added at run time).
#[derive(Debug, Clone)]
pub struct SaSpec {
    pub spi: u32,
    /// Which way it carries traffic, when stated; otherwise the policies that name it say
    /// (an SA named by an `out` policy sends, any other receives).
    pub dir: Option<Direction>,
    pub protocol: SaProtocol,
    pub mode: SaMode,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// ESP only.
    pub encryption: Option<EncryptionAlgorithm>,
    pub key: Option<SecretKey>,
    /// Required for AH and for ESP with AES-CBC or NULL; absent for AEAD.
    pub integrity: Option<IntegrityAlgorithm>,
    pub integrity_key: Option<SecretKey>,
    pub esn: bool,
    /// Last sequence number used: the next outbound packet carries `seq + 1`. For an
    /// inbound SA, the highest sequence number already received.
    pub seq: u64,
    /// Inbound anti-replay window in packets; 0 disables the check.
    pub replay_window: u32,
    pub udp_encap: Option<UdpEncap>,
    /// Outer TTL / hop limit.
    pub ttl: u8,
    pub df: DfMode,
    pub lifetime: Lifetime,
}

impl SaSpec {
    /// The entry's name in messages: `sa 0x00001001`.
    pub fn label(&self) -> String {
        format!("sa {:#010x}", self.spi)
    }
}

/// Which way an SA or a policy carries traffic: `Out` protects what the inside sends,
/// `In` checks what arrives from the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    /// `in` or `out`, as the configuration writes it.
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    Protect,
    Bypass,
    Discard,
    /// Outbound only, set by key management (`start_action = "trap"`): a matching packet
    /// is dropped (`trapped`) and asks for the CHILD_SA that would protect it (as the
    /// kernel's acquire).
    Trap,
}

/// One policy, validated (a `[[policy]]` entry, or one added at run time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    pub dir: Direction,
    pub src: Cidr,
    pub dst: Cidr,
    pub protocol: ProtocolSelector,
    pub src_port: PortRange,
    pub dst_port: PortRange,
    pub action: PolicyAction,
    /// Protect: SPIs of the bundle, innermost first (ESP, then AH).
    pub sa: Vec<u32>,
}

/// The largest replay window accepted, in packets.
pub const MAX_REPLAY_WINDOW: u32 = 65536;
/// Default inbound replay window, in packets.
pub const DEFAULT_REPLAY_WINDOW: u32 = 64;
/// Default outer TTL / hop limit.
pub const DEFAULT_TTL: u8 = 64;

/// The first two SAs of `sas` under one AEAD key and salt, as (earlier, later) indices:
/// they would repeat (key, nonce) pairs
/// ([`share_aead_key_and_salt`](crate::sa::share_aead_key_and_salt)). Keys are grouped by
/// an HMAC under a key drawn for this check alone, so that the work is linear in the
/// number of SAs and the grouping reveals nothing of the keys; SAs in one group are then
/// compared in constant time.
pub fn first_shared_aead_key(sas: &[SaSpec]) -> Option<(usize, usize)> {
    use ring::hmac;
    use std::collections::HashMap;
    // Should the system RNG fail, every key lands in one group: compared pairwise.
    let grouping = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new()).ok();
    let mut groups: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, sa) in sas.iter().enumerate() {
        let (Some(enc), Some(key)) = (sa.encryption, sa.key.as_ref()) else {
            continue;
        };
        if !enc.is_aead() {
            continue;
        }
        let group = grouping
            .as_ref()
            .map(|k| hmac::sign(k, key.as_bytes()).as_ref().to_vec())
            .unwrap_or_default();
        let members = groups.entry(group).or_default();
        let earlier = members.iter().copied().find(|&j| {
            let other = &sas[j];
            match (other.encryption, other.key.as_ref()) {
                (Some(e), Some(k)) => {
                    crate::sa::share_aead_key_and_salt((e, k.as_bytes()), (enc, key.as_bytes()))
                }
                _ => false,
            }
        });
        if let Some(j) = earlier {
            return Some((j, i));
        }
        members.push(i);
    }
    None
}

impl SaSpec {
    /// A keyed fingerprint of this SA for its durable state: HMAC-SHA-256 under the SA's
    /// key material (encryption key with salt, then integrity key) of a fixed label, the
    /// direction, SPI and destination. A state file records it, so that state left by an
    /// SA with the same SPI but another key is recognised and not used — without the file
    /// holding anything from which a key could be learnt.
    pub fn state_fingerprint(&self, dir: Direction) -> [u8; 32] {
        use ring::hmac;
        let mut material = zeroize::Zeroizing::new(Vec::new());
        for k in [&self.key, &self.integrity_key].into_iter().flatten() {
            material.extend_from_slice(k.as_bytes());
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, &material);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(b"espo sa state v1\0");
        ctx.update(dir.name().as_bytes());
        ctx.update(&self.spi.to_be_bytes());
        ctx.update(self.dst.to_string().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}
