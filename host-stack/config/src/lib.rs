//! The configuration file (TOML): `[device]`, `[gateway]`, `[[sa]]`, `[[policy]]`,
//! `[[connection]]` (IKEv2).
//!
//! Reading happens in two steps. serde reads the text into plain `Raw*` structs, refusing
//! unknown fields (a misspelt key is an error, not a silent default) and reporting TOML
//! syntax errors with their line. Validation then turns them into typed [`Config`] values
//! and checks everything that crosses fields and entries: key lengths against algorithms,
//! encryption without integrity, bundle shapes, policy references to SAs, AEAD SAs sharing
//! a key and salt, SAs named in both directions. Every error names
//! the file, the entry (`sa[2] (spi 0x00001003)`, `policy[0]`) and the field, and nothing
//! starts on a configuration with any error.
//!
//! The format is a stable contract (DESIGN.md); additions are optional fields with
//! defaults, so old files keep working.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use espo_ipsec::spec::{PolicySpec, SaSpec};

mod check;
mod connection;
pub mod control;
mod redact;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or its shape is not a configuration's (a value of the
    /// wrong type, an unknown field). The message gives the line and column and shows the
    /// offending line with every secret value redacted — never the toml crate's own
    /// excerpt, which quotes the file as it is, keys included.
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: {entry}: field `{field}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        entry: String,
        field: &'static str,
        message: String,
    },
}

/// Which engine transforms packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// The software engine only.
    Software,
    /// The cycle-level model of the card, with software fallback.
    Model,
    /// A real card through VFIO, with software fallback.
    Vfio,
    /// A card served by another process over vfio-user (`espo card serve`), with software
    /// fallback.
    VfioUser,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Software => "software",
            EngineKind::Model => "model",
            EngineKind::Vfio => "vfio",
            EngineKind::VfioUser => "vfio-user",
        }
    }
}

impl core::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "software" => Ok(EngineKind::Software),
            "model" => Ok(EngineKind::Model),
            "vfio" => Ok(EngineKind::Vfio),
            "vfio-user" => Ok(EngineKind::VfioUser),
            other => Err(format!(
                "unknown engine `{other}` (expected software, model, vfio or vfio-user)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    pub engine: EngineKind,
    /// The card's PCI address, for the vfio engine.
    pub pci: Option<String>,
    /// The served card's vfio-user socket, for the vfio-user engine (its port at
    /// `<socket>.port`).
    pub socket: Option<PathBuf>,
    /// The MAC address of a card whose port is its own (`vfio`, or `vfio-user` without
    /// `[gateway] port`): espo answers ARP and neighbour solicitations with it and sends
    /// from it. `None`: [`DeviceConfig::port_mac`] makes one up.
    pub mac: Option<[u8; 6]>,
}

impl DeviceConfig {
    /// The MAC of a card with its own port: `mac`, or a locally administered address
    /// derived from the card's PCI address or socket (the same card, the same address).
    pub fn port_mac(&self) -> [u8; 6] {
        if let Some(mac) = self.mac {
            return mac;
        }
        let name = match (&self.pci, &self.socket) {
            (Some(pci), _) => pci.clone(),
            (None, Some(socket)) => socket.display().to_string(),
            (None, None) => String::new(),
        };
        // FNV-1a over the name: stable across runs and builds.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let b = h.to_be_bytes();
        [0x02, b[3], b[4], b[5], b[6], b[7]]
    }
}

/// An address with its prefix length, as assigned to an interface (`10.1.0.1/16`): unlike a
/// [`Cidr`](espo_ipsec::selector::Cidr) it keeps its host bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl core::str::FromStr for InterfaceAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("`{s}` is not an address with a prefix length (e.g. 10.1.0.1/16)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
        };
        Ok(InterfaceAddress { addr, prefix_len })
    }
}

impl core::fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Configuration text (a file, or the body of a control request) in its raw serde form;
/// syntax errors never show a secret value.
pub(crate) fn parse_raw(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: crate::redact::syntax_message(text, e.span().map(|s| s.start), e.message()),
    })
}

/// The same error with every long run of hex digits in its message redacted: messages
/// quote values of other fields, and a key pasted into one of them is still not shown.
pub(crate) fn redacted(e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid {
            path,
            entry,
            field,
            message,
        } => ConfigError::Invalid {
            path,
            entry,
            field,
            message: crate::redact::redact_hex_runs(&message),
        },
        other => other,
    }
}

/// Where `espo run` keeps SA state across restarts when `[gateway] state_dir` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/espo";

/// Where `espo status` connects and `espo run` listens when `[gateway] status_socket` is not set.
pub const DEFAULT_STATUS_SOCKET: &str = "/run/espo/espo.sock";

/// The `[gateway]` section, for `espo run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Name of the TUN device espo creates (the inside, protected side).
    pub tun: String,
    /// Addresses assigned to the TUN device (IPv4 and/or IPv6); may be empty.
    pub tun_addresses: Vec<InterfaceAddress>,
    /// The outside interface: the software engine's sockets are bound to it; for the model
    /// and vfio engines, the link the card's port is attached to.
    pub port: Option<String>,
    pub local: Option<IpAddr>,
    /// The TUN device's MTU; `None`: the outside interface's MTU less the largest tunnel
    /// overhead of the outbound SAs.
    pub mtu: Option<u16>,
    /// The Unix socket `espo status` talks to (mode 0600).
    pub status_socket: PathBuf,
    /// Where outbound sequence-number reservations and inbound replay marks are kept across
    /// restarts.
    pub state_dir: PathBuf,
    /// Model and vfio engines: the router the card's port sends tunnel packets to, at most
    /// one per address family; a family without one sends straight to the peer (on-link).
    pub next_hops: Vec<IpAddr>,
    /// Key management's log levels: a default and levels per subsystem
    /// (`info, ike=debug`).
    pub ike_log: String,
    /// Key management's retransmissions: the first timeout and how many times an
    /// unanswered request is sent again (each wait 1.8 times the last) before the peer is
    /// declared dead.
    pub ike_retransmit_timeout: std::time::Duration,
    pub ike_retransmit_tries: u32,
    /// Whether the TUN device runs with offloads (virtio-net headers, TCP/UDP segmentation
    /// and coalescing done by espo); default on.
    pub tun_offload: bool,
    /// Whether runs of ESP-in-UDP datagrams over IPv4 are sent with one `sendmsg` each (UDP
    /// GSO); default off (see README, "Throughput").
    pub udp_gso: bool,
    /// Outbound datapath workers, each with its own TUN queue (every engine); `None`:
    /// one per core. See README, "Datapath workers".
    pub workers: Option<u16>,
    /// How long a datapath thread that found its sources empty keeps looking (polling
    /// without sleeping, yielding the core between looks) before it sleeps; zero: it
    /// sleeps at once. See README, "Throughput".
    pub busy_poll: std::time::Duration,
}

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub device: DeviceConfig,
    pub gateway: Option<GatewayConfig>,
    pub sas: Vec<SaSpec>,
    pub policies: Vec<PolicySpec>,
    /// IKEv2 connections: SAs and policies negotiated with peers.
    pub connections: Vec<espo_ike::connection::ConnectionSpec>,
}

/// Smallest TUN MTU accepted (the IPv4 minimum datagram size every host must accept).
pub const MIN_TUN_MTU: u16 = 576;
/// Largest TUN MTU accepted.
pub const MAX_TUN_MTU: u16 = 65000;
/// The most outbound datapath workers `[gateway] workers` may ask for.
pub const MAX_WORKERS: u16 = 64;
/// `[gateway] busy_poll_us` when it is not given.
pub const DEFAULT_BUSY_POLL_US: u64 = 20;
/// The longest `[gateway] busy_poll_us` accepted.
pub const MAX_BUSY_POLL_US: u64 = 1000;

impl Config {
    /// Reads and validates a configuration file. The text, keys and all, is zeroized when
    /// it is no longer needed, on every path.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        // Read at its full size at once (no growing copies left behind).
        let bytes = Zeroizing::new(std::fs::read(path).map_err(read_error)?);
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            read_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not UTF-8 text (at byte {})", e.valid_up_to()),
            ))
        })?;
        Config::parse(text, path)
    }

    /// Validates configuration text; `path` names it in error messages, which never show
    /// the value of a secret field (see `redact`).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw = parse_raw(text, path)?;
        crate::check::validate(raw, path).map_err(redacted)
    }

    /// The software engine for this configuration's SAs and policies.
    pub fn software_engine(
        &self,
    ) -> Result<espo_ipsec::engine::SoftwareEngine, espo_ipsec::engine::EngineError> {
        espo_ipsec::engine::SoftwareEngine::new(&self.sas, &self.policies)
    }

    pub fn sa(&self, spi: u32) -> Option<&SaSpec> {
        self.sas.iter().find(|s| s.spi == spi)
    }
}

// ---- the raw, serde-facing form -------------------------------------------------------

/// An integer written as a TOML integer or as a string (`0x1001`, `4097`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum IntOrString {
    Int(i64),
    Str(String),
}

impl IntOrString {
    pub(crate) fn to_u64(&self) -> Result<u64, String> {
        match self {
            IntOrString::Int(i) => u64::try_from(*i).map_err(|_| format!("{i} is negative")),
            IntOrString::Str(s) => {
                let t = s.trim();
                let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => t.parse::<u64>(),
                };
                parsed.map_err(|_| format!("`{s}` is not a number"))
            }
        }
    }
}

/// A secret as the file writes it (the hex text of a key): zeroized on drop, redacted by
/// `Debug`. Only a string is accepted, and a value of another type is refused without
/// being quoted (serde's usual message would show it).
pub(crate) struct RawSecret(String);

impl core::ops::Deref for RawSecret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for RawSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl core::fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RawSecret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawSecret, D::Error> {
        d.deserialize_string(RawSecretVisitor)
    }
}

struct RawSecretVisitor;

/// What a key field of another type is told (its value is not repeated).
const SECRET_NOT_A_STRING: &str =
    "a key must be a string of hex digits in quotes (the value given is not shown)";

impl serde::de::Visitor<'_> for RawSecretVisitor {
    type Value = RawSecret;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a string of hex digits")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSecret, E> {
        Ok(RawSecret(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<RawSecret, E> {
        Ok(RawSecret(v))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<RawSecret, E> {
        Err(E::custom(SECRET_NOT_A_STRING))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<RawSecret, E> {
        Err(E::custom(SECRET_NOT_A_STRING))
    }

    fn visit_i128<E: serde::de::Error>(self, _: i128) -> Result<RawSecret, E> {
        Err(E::custom(SECRET_NOT_A_STRING))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<RawSecret, E> {
        Err(E::custom(SECRET_NOT_A_STRING))
    }

    fn visit_u128<E: serde::de::Error>(self, _: u128) -> Result<RawSecret, E> {
        Err(E::custom(SECRET_NOT_A_STRING))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<RawSecret, E> {
        Err(E::custom(SECRET_NOT_A_STRING))
    }

    fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<RawSecret, E> {
        Err(E::custom(SECRET_NOT_A_STRING))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub device: Option<RawDevice>,
    pub gateway: Option<RawGateway>,
    #[serde(default)]
    pub sa: Vec<RawSa>,
    #[serde(default)]
    pub policy: Vec<RawPolicy>,
    #[serde(default)]
    pub connection: Vec<connection::RawConnection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDevice {
    pub engine: Option<String>,
    pub pci: Option<String>,
    pub socket: Option<PathBuf>,
    pub mac: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub tun: Option<String>,
    pub tun_address: Option<OneOrMany>,
    pub port: Option<String>,
    pub local: Option<String>,
    pub mtu: Option<u16>,
    pub status_socket: Option<PathBuf>,
    pub next_hop: Option<OneOrMany>,
    pub state_dir: Option<PathBuf>,
    pub ike_log: Option<String>,
    pub ike_retransmit_timeout: Option<f64>,
    pub ike_retransmit_tries: Option<u32>,
    pub tun_offload: Option<bool>,
    pub udp_gso: Option<bool>,
    pub workers: Option<u16>,
    pub busy_poll_us: Option<u64>,
}

/// A string or an array of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUdpEncap {
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLifetime {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
    pub soft_seconds: Option<u64>,
    pub hard_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSa {
    pub spi: Option<IntOrString>,
    pub dir: Option<String>,
    pub protocol: Option<String>,
    pub mode: Option<String>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub encryption: Option<String>,
    pub key: Option<RawSecret>,
    pub integrity: Option<String>,
    pub integrity_key: Option<RawSecret>,
    pub esn: Option<bool>,
    pub seq: Option<IntOrString>,
    pub replay_window: Option<u32>,
    pub udp_encap: Option<RawUdpEncap>,
    pub ttl: Option<u8>,
    pub df: Option<String>,
    pub lifetime: Option<RawLifetime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub dir: Option<String>,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub protocol: Option<IntOrString>,
    pub src_port: Option<IntOrString>,
    pub dst_port: Option<IntOrString>,
    pub action: Option<String>,
    pub sa: Option<Vec<IntOrString>>,
}
