//! What a connection is configured to be: the typed form of a `[[connection]]` entry
//! (espo-config reads the TOML), close to strongSwan's swanctl.conf — addresses, identities
//! and authentication of both ends, IKE proposals, liveness checks, lifetimes, and the
//! CHILD_SAs with their traffic selectors and ESP proposals.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::ts::TsSpec;

/// IKE's own UDP port (RFC 7296 §2).
pub const IKE_PORT: u16 = 500;
/// IKE and ESP in UDP once a NAT is found or encapsulation is forced (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;
/// strongSwan's default largest IP datagram of an IKE fragment.
pub const DEFAULT_FRAGMENT_SIZE: usize = 1280;
/// The smallest `fragment_size` accepted: the IPv6 minimum MTU's worth is the smallest a
/// path may have; smaller fragments only multiply them.
pub const MIN_FRAGMENT_SIZE: usize = 576;

/// A pre-shared key: its bytes, zeroized on drop, never shown by `Debug`.
#[derive(Clone)]
pub struct Psk(pub Zeroizing<Vec<u8>>);

impl core::fmt::Debug for Psk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

impl Psk {
    /// A secret as strongSwan writes one: `0x` followed by hex digits is the bytes they
    /// spell, anything else the text's own bytes.
    pub fn from_text(text: &str) -> Result<Psk, String> {
        let bytes = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) => {
                if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(
                        "a secret starting with 0x must be an even number of hex digits".into(),
                    );
                }
                Zeroizing::new(
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
                        .collect(),
                )
            }
            None => Zeroizing::new(text.as_bytes().to_vec()),
        };
        if bytes.len() < MIN_PSK_LEN {
            return Err(format!(
                "a pre-shared key of {} bytes is too short to resist guessing (at least {MIN_PSK_LEN})",
                bytes.len()
            ));
        }
        Ok(Psk(bytes))
    }
}

/// The shortest pre-shared key accepted: a PSK that can be guessed lets anyone who sees one
/// IKE_AUTH exchange test guesses offline (RFC 7296 §2.15).
pub const MIN_PSK_LEN: usize = 16;

/// How one end proves who it is.
#[derive(Debug, Clone)]
pub enum LocalAuth {
    Psk,
    /// A signature under the private key of the end's certificate; `certs` starts with the
    /// end entity, intermediates follow (sent as CERT payloads).
    Pubkey {
        certs: Vec<PathBuf>,
        private_key: PathBuf,
    },
}

/// How the peer must prove who it is.
#[derive(Debug, Clone)]
pub enum RemoteAuth {
    Psk,
    /// A signature under a certificate that chains to one of `cacerts`.
    Pubkey {
        cacerts: Vec<PathBuf>,
    },
}

/// When a CHILD_SA is negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAction {
    /// Only when the peer asks, or `espo ike up`.
    None,
    /// When espo starts.
    Start,
    /// When the first packet matches the child's outbound selectors (as the kernel's
    /// acquire): the packet waits for the negotiation.
    Trap,
}

impl StartAction {
    pub const NAMES: &'static [(&'static str, StartAction)] = &[
        ("none", StartAction::None),
        ("start", StartAction::Start),
        ("trap", StartAction::Trap),
    ];

    pub fn name(self) -> &'static str {
        StartAction::NAMES
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("none")
    }
}

/// When an SA is renewed and when it ends (strongSwan's rekey_time, life_time, rand_time,
/// and the byte and packet counts): renewed at `rekey_time` less a random part of
/// `rand_time`, gone at `life_time` if renewing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub rekey_time: Duration,
    pub life_time: Duration,
    pub rand_time: Duration,
    pub rekey_bytes: u64,
    pub life_bytes: u64,
    pub rekey_packets: u64,
    pub life_packets: u64,
}

impl Lifetimes {
    /// strongSwan's CHILD_SA defaults: rekey after 1 h, gone after 1 h 6 min.
    pub const CHILD_DEFAULT: Lifetimes = Lifetimes {
        rekey_time: Duration::from_secs(3600),
        life_time: Duration::from_secs(3960),
        rand_time: Duration::from_secs(360),
        rekey_bytes: 0,
        life_bytes: 0,
        rekey_packets: 0,
        life_packets: 0,
    };
    /// strongSwan's IKE SA defaults: rekey after 4 h, gone 10% later.
    pub const IKE_DEFAULT: Lifetimes = Lifetimes {
        rekey_time: Duration::from_secs(14400),
        life_time: Duration::from_secs(15840),
        rand_time: Duration::from_secs(1440),
        rekey_bytes: 0,
        life_bytes: 0,
        rekey_packets: 0,
        life_packets: 0,
    };
}

/// One CHILD_SA of a connection: a pair of ESP SAs in tunnel mode between the traffic
/// selectors.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub name: String,
    pub local_ts: Vec<TsSpec>,
    pub remote_ts: Vec<TsSpec>,
    /// ESP proposals in strongSwan's notation (`aes128gcm16`, `aes256-sha256-modp3072`;
    /// a DH group asks for PFS on rekeying).
    pub esp_proposals: Vec<String>,
    pub start_action: StartAction,
    pub lifetimes: Lifetimes,
    /// The inbound replay window, in packets.
    pub replay_window: u32,
}

/// A configured IKE connection.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    pub name: String,
    /// The addresses IKE may use here; empty: the gateway's own.
    pub local_addrs: Vec<IpAddr>,
    /// The peer's addresses; empty: any (a responder only).
    pub remote_addrs: Vec<IpAddr>,
    pub local_port: u16,
    pub remote_port: u16,
    /// This end's identity (strongSwan's notation: an address, `gw.example.com`,
    /// `user@example.com`, `C=CH, O=espo, CN=gw`); `None`: the local address.
    pub local_id: Option<String>,
    /// The identity the peer must prove; `None`: its address, or any for a peer of any
    /// address.
    pub remote_id: Option<String>,
    pub local_auth: LocalAuth,
    pub remote_auth: RemoteAuth,
    pub psk: Option<Psk>,
    /// IKE proposals in strongSwan's notation (`aes128gcm16-prfsha256-x25519`).
    pub proposals: Vec<String>,
    /// How often to check a quiet peer is alive (INFORMATIONAL); zero: never.
    pub dpd_delay: Duration,
    /// UDP encapsulation of ESP even without a NAT.
    pub encap: bool,
    pub lifetimes: Lifetimes,
    /// How often this end authenticates the peer again (strongSwan's `reauth_time`): a new
    /// IKE SA with new CHILD_SAs replaces the old ones, make-before-break; zero: never.
    pub reauth_time: Duration,
    /// IKE fragmentation (RFC 7383): announced, and used when the peer announces it too.
    pub fragmentation: bool,
    /// The largest IP datagram a fragment (or an unfragmented message) may make, bytes.
    pub fragment_size: usize,
    pub children: Vec<ChildSpec>,
}

impl ConnectionSpec {
    /// Whether this end can start the connection: it knows where the peer is.
    pub fn can_initiate(&self) -> bool {
        !self.remote_addrs.is_empty()
    }
}
