//! Validation of a configuration: from the raw serde form to typed [`Config`] values.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use crate::*;
use espo_ipsec::crypto::{CryptoError, EncryptionAlgorithm, IntegrityAlgorithm, SecretKey};
use espo_ipsec::selector::{Cidr, PortRange, ProtocolSelector};
use espo_ipsec::spec::first_shared_aead_key;
use espo_ipsec::spec::*;

/// Error context for one entry: the file and the entry's name.
pub(crate) struct Entry<'a> {
    path: &'a Path,
    name: String,
}

impl<'a> Entry<'a> {
    pub(crate) fn new(path: &'a Path, name: String) -> Entry<'a> {
        Entry { path, name }
    }

    pub(crate) fn err(&self, field: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            entry: self.name.clone(),
            field,
            message: message.into(),
        }
    }

    pub(crate) fn required_str<'v>(
        &self,
        field: &'static str,
        value: &'v Option<String>,
    ) -> Result<&'v str, ConfigError> {
        Ok(self.required(field, value)?.trim())
    }

    fn required<'v, T>(
        &self,
        field: &'static str,
        value: &'v Option<T>,
    ) -> Result<&'v T, ConfigError> {
        value
            .as_ref()
            .ok_or_else(|| self.err(field, "missing (this field is required)"))
    }
}

pub(crate) fn validate(raw: RawConfig, path: &Path) -> Result<Config, ConfigError> {
    let device = validate_device(raw.device.as_ref(), path)?;
    let gateway = raw
        .gateway
        .as_ref()
        .map(|g| validate_gateway(g, path))
        .transpose()?;
    let mut sas = Vec::with_capacity(raw.sa.len());
    for (i, s) in raw.sa.iter().enumerate() {
        sas.push(validate_sa(i, s, path)?);
    }
    let mut seen = HashSet::new();
    for (i, s) in sas.iter().enumerate() {
        if !seen.insert((s.spi, s.dst)) {
            let entry = Entry {
                path,
                name: format!("sa[{i}] (spi {:#010x})", s.spi),
            };
            return Err(entry.err(
                "spi",
                format!(
                    "SPI {:#010x} with destination {} is already used by an earlier SA",
                    s.spi, s.dst
                ),
            ));
        }
    }
    check_aead_keys(&sas, path)?;
    let mut policies = Vec::with_capacity(raw.policy.len());
    for (i, p) in raw.policy.iter().enumerate() {
        policies.push(validate_policy(i, p, &sas, path)?);
    }
    check_directions(&policies, path)?;
    check_stated_directions(&sas, &policies, path)?;
    let mut connections = Vec::with_capacity(raw.connection.len());
    for (i, c) in raw.connection.iter().enumerate() {
        connections.push(crate::connection::validate_connection(i, c, path)?);
    }
    crate::connection::check_names(&connections, path)?;
    Ok(Config {
        path: path.to_owned(),
        device,
        gateway,
        sas,
        policies,
        connections,
    })
}

/// No two AEAD SAs under one key and salt
/// ([`share_aead_key_and_salt`](espo_ipsec::sa::share_aead_key_and_salt)): they would
/// repeat (key, nonce) pairs. The message never reveals key bytes.
fn check_aead_keys(sas: &[SaSpec], path: &Path) -> Result<(), ConfigError> {
    let Some((j, i)) = first_shared_aead_key(sas) else {
        return Ok(());
    };
    let (sa, enc) = (&sas[i], sas[i].encryption);
    let entry = Entry {
        path,
        name: format!("sa[{i}] (spi {:#010x})", sa.spi),
    };
    let why = match (sas[j].encryption, enc) {
        (Some(e), Some(here)) if e != here => {
            format!("one AEAD key must not serve two SAs (there {e}, here {here})")
        }
        _ => "two SAs under one AEAD key repeat nonces".to_string(),
    };
    Err(entry.err(
        "key",
        format!(
            "the same key and salt as sa[{j}] (spi {:#010x}): {why}; give each SA its own key",
            sas[j].spi
        ),
    ))
}

/// No SA is named by both an `out` and an `in` policy. Used both ways, both ends would
/// encrypt under its key from the same sequence numbers (with an AEAD, the same nonces),
/// and a packet could be reflected back to its sender and accepted.
fn check_directions(policies: &[PolicySpec], path: &Path) -> Result<(), ConfigError> {
    let mut first_use: HashMap<u32, (Direction, usize)> = HashMap::new();
    for (i, p) in policies.iter().enumerate() {
        for &spi in &p.sa {
            match first_use.get(&spi) {
                None => {
                    first_use.insert(spi, (p.dir, i));
                }
                Some(&(dir, j)) if dir != p.dir => {
                    let entry = Entry {
                        path,
                        name: format!("policy[{i}]"),
                    };
                    let was = match dir {
                        Direction::Out => "outbound",
                        Direction::In => "inbound",
                    };
                    return Err(entry.err(
                        "sa",
                        format!(
                            "sa {spi:#010x} is already {was} (policy[{j}]): an SA carries one direction (used both ways, both ends would encrypt under its key from the same sequence numbers, and packets could be reflected back to their sender); give each direction its own SA and key"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn parse_direction(entry: &Entry, text: &str) -> Result<Direction, ConfigError> {
    match text {
        "in" => Ok(Direction::In),
        "out" => Ok(Direction::Out),
        other => Err(entry.err(
            "dir",
            format!("`{other}` is not a direction (expected in or out)"),
        )),
    }
}

/// An SA that states its `dir` is named only by policies of that direction.
fn check_stated_directions(
    sas: &[SaSpec],
    policies: &[PolicySpec],
    path: &Path,
) -> Result<(), ConfigError> {
    for (i, sa) in sas.iter().enumerate() {
        let Some(dir) = sa.dir else { continue };
        if let Some(j) = policies
            .iter()
            .position(|p| p.dir != dir && p.sa.contains(&sa.spi))
        {
            let entry = Entry {
                path,
                name: format!("sa[{i}] (spi {:#010x})", sa.spi),
            };
            return Err(entry.err(
                "dir",
                format!(
                    "the SA is `{}` but policy[{j}] is an `{}` policy that names it",
                    dir.name(),
                    policies[j].dir.name()
                ),
            ));
        }
    }
    Ok(())
}

fn validate_device(raw: Option<&RawDevice>, path: &Path) -> Result<DeviceConfig, ConfigError> {
    let entry = Entry {
        path,
        name: "[device]".into(),
    };
    let Some(raw) = raw else {
        return Ok(DeviceConfig {
            engine: EngineKind::Software,
            pci: None,
            socket: None,
            mac: None,
        });
    };
    let engine = match &raw.engine {
        None => EngineKind::Software,
        Some(e) => e.parse().map_err(|m: String| entry.err("engine", m))?,
    };
    if engine == EngineKind::Vfio && raw.pci.is_none() {
        return Err(entry.err(
            "pci",
            "the vfio engine needs the card's PCI address, e.g. \"0000:03:00.0\"",
        ));
    }
    if engine == EngineKind::VfioUser && raw.socket.is_none() {
        return Err(entry.err(
            "socket",
            "the vfio-user engine needs the served card's socket, e.g. \"/run/espo-card.sock\" (see `espo card serve`)",
        ));
    }
    let mac = match &raw.mac {
        None => None,
        Some(text) => Some(parse_mac(text).ok_or_else(|| {
            entry.err(
                "mac",
                format!(
                    "`{text}` is not a unicast MAC address (six hex bytes separated by `:`, the first even, e.g. \"02:00:00:00:00:01\")"
                ),
            )
        })?),
    };
    Ok(DeviceConfig {
        engine,
        pci: raw.pci.clone(),
        socket: raw.socket.clone(),
        mac,
    })
}

/// `02:00:5e:10:00:01`: six hex bytes, a unicast address (the group bit clear).
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(part, 16).ok()?;
    }
    (parts.next().is_none() && mac[0] & 1 == 0 && mac != [0; 6]).then_some(mac)
}

fn validate_gateway(raw: &RawGateway, path: &Path) -> Result<GatewayConfig, ConfigError> {
    let entry = Entry {
        path,
        name: "[gateway]".into(),
    };
    let tun = raw.tun.clone().unwrap_or_else(|| "espo0".into());
    if tun.is_empty() || tun.len() > 15 {
        return Err(entry.err(
            "tun",
            format!("`{tun}` is not a valid interface name (1 to 15 characters)"),
        ));
    }
    let local = raw
        .local
        .as_deref()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| entry.err("local", format!("`{s}` is not an IP address")))
        })
        .transpose()?;
    let mut tun_addresses = Vec::new();
    for text in raw.tun_address.iter().flat_map(OneOrMany::items) {
        tun_addresses.push(
            text.parse::<InterfaceAddress>()
                .map_err(|m| entry.err("tun_address", m))?,
        );
    }
    if let Some(mtu) = raw.mtu
        && !(MIN_TUN_MTU..=MAX_TUN_MTU).contains(&mtu)
    {
        return Err(entry.err(
            "mtu",
            format!("{mtu} is outside {MIN_TUN_MTU}..={MAX_TUN_MTU} (IPv4 needs 576, IPv6 1280)"),
        ));
    }
    if let Some(port) = &raw.port
        && (port.is_empty() || port.len() > 15)
    {
        return Err(entry.err(
            "port",
            format!("`{port}` is not a valid interface name (1 to 15 characters)"),
        ));
    }
    let mut next_hops: Vec<IpAddr> = Vec::new();
    for text in raw.next_hop.iter().flat_map(OneOrMany::items) {
        let hop = text
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| entry.err("next_hop", format!("`{text}` is not an IP address")))?;
        if next_hops.iter().any(|h| h.is_ipv4() == hop.is_ipv4()) {
            return Err(entry.err(
                "next_hop",
                format!("`{text}`: at most one next hop per address family"),
            ));
        }
        next_hops.push(hop);
    }
    let ike_log = raw.ike_log.clone().unwrap_or_else(|| "info".into());
    espo_ike::daemon::parse_log_levels(&ike_log).map_err(|e| entry.err("ike_log", e))?;
    let timeout = raw.ike_retransmit_timeout.unwrap_or(4.0);
    if !(0.1..=60.0).contains(&timeout) {
        return Err(entry.err(
            "ike_retransmit_timeout",
            format!("{timeout} s is outside 0.1..=60 s"),
        ));
    }
    let tries = raw.ike_retransmit_tries.unwrap_or(5);
    if tries > 20 {
        return Err(entry.err("ike_retransmit_tries", format!("{tries} is more than 20")));
    }
    if let Some(w) = raw.workers
        && !(1..=MAX_WORKERS).contains(&w)
    {
        return Err(entry.err(
            "workers",
            format!("{w} workers: give 1 to {MAX_WORKERS}, or leave it out for one per core"),
        ));
    }
    let busy_poll_us = raw.busy_poll_us.unwrap_or(DEFAULT_BUSY_POLL_US);
    if busy_poll_us > MAX_BUSY_POLL_US {
        return Err(entry.err(
            "busy_poll_us",
            format!(
                "{busy_poll_us} µs: give 0 (sleep at once) to {MAX_BUSY_POLL_US}, or leave it out for {DEFAULT_BUSY_POLL_US}"
            ),
        ));
    }
    Ok(GatewayConfig {
        workers: raw.workers,
        busy_poll: std::time::Duration::from_micros(busy_poll_us),
        tun,
        tun_addresses,
        next_hops,
        ike_log,
        ike_retransmit_timeout: std::time::Duration::from_secs_f64(timeout),
        ike_retransmit_tries: tries,
        tun_offload: raw.tun_offload.unwrap_or(true),
        udp_gso: raw.udp_gso.unwrap_or(false),
        port: raw.port.clone(),
        local,
        mtu: raw.mtu,
        status_socket: raw
            .status_socket
            .clone()
            .unwrap_or_else(|| DEFAULT_STATUS_SOCKET.into()),
        state_dir: match &raw.state_dir {
            Some(d) if d.as_os_str().is_empty() => {
                return Err(entry.err("state_dir", "must name a directory"));
            }
            Some(d) => d.clone(),
            None => DEFAULT_STATE_DIR.into(),
        },
    })
}

fn parse_addr(
    entry: &Entry,
    field: &'static str,
    value: &Option<String>,
) -> Result<IpAddr, ConfigError> {
    let s = entry.required(field, value)?;
    s.trim()
        .parse()
        .map_err(|_| entry.err(field, format!("`{s}` is not an IPv4 or IPv6 address")))
}

fn parse_key(
    entry: &Entry,
    field: &'static str,
    hex: &str,
    want: usize,
    what: &str,
) -> Result<SecretKey, ConfigError> {
    let key = SecretKey::from_hex(hex).map_err(|e| {
        let message = match e {
            // Not even the wrong character: it says something about the digit meant.
            CryptoError::KeyHexDigit { position, .. } => format!(
                "character {position} is not a hex digit (counting from 1; the key is not shown)"
            ),
            other => other.to_string(),
        };
        entry.err(field, message)
    })?;
    if key.len() != want {
        return Err(entry.err(
            field,
            format!(
                "expected {want} bytes ({} hex digits: {what}), got {} bytes",
                want * 2,
                key.len()
            ),
        ));
    }
    Ok(key)
}

fn key_description(enc: EncryptionAlgorithm) -> String {
    if enc.is_aead() {
        format!("{}-byte key followed by the 4-byte salt", enc.key_len() - 4)
    } else {
        format!("{}-byte key", enc.key_len())
    }
}

pub(crate) fn validate_sa(index: usize, raw: &RawSa, path: &Path) -> Result<SaSpec, ConfigError> {
    let mut entry = Entry {
        path,
        name: format!("sa[{index}]"),
    };
    let spi = entry
        .required("spi", &raw.spi)?
        .to_u64()
        .map_err(|m| entry.err("spi", m))?;
    let spi = u32::try_from(spi)
        .map_err(|_| entry.err("spi", format!("{spi:#x} does not fit 32 bits")))?;
    entry.name = format!("sa[{index}] (spi {spi:#010x})");
    if spi < 256 {
        return Err(entry.err(
            "spi",
            format!("SPI {spi} is reserved (RFC 4303: 0 to 255 are not for SAs)"),
        ));
    }
    let dir = raw
        .dir
        .as_deref()
        .map(|d| parse_direction(&entry, d))
        .transpose()?;
    let protocol = match entry.required("protocol", &raw.protocol)?.as_str() {
        "esp" => SaProtocol::Esp,
        "ah" => SaProtocol::Ah,
        other => {
            return Err(entry.err(
                "protocol",
                format!("`{other}` is not a protocol (expected esp or ah)"),
            ));
        }
    };
    let mode = match raw.mode.as_deref().unwrap_or("tunnel") {
        "tunnel" => SaMode::Tunnel,
        "transport" => SaMode::Transport,
        other => {
            return Err(entry.err(
                "mode",
                format!("`{other}` is not a mode (expected tunnel or transport)"),
            ));
        }
    };
    if mode == SaMode::Transport && protocol == SaProtocol::Esp {
        return Err(entry.err(
            "mode",
            "ESP in transport mode is not supported: espo is a tunnel gateway (transport mode is for AH over an ESP tunnel packet)",
        ));
    }
    let src = parse_addr(&entry, "src", &raw.src)?;
    let dst = parse_addr(&entry, "dst", &raw.dst)?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(entry.err(
            "dst",
            format!("{dst} and src {src} are of different address families"),
        ));
    }

    let (encryption, key) = match protocol {
        SaProtocol::Ah => {
            if raw.encryption.is_some() {
                return Err(entry.err(
                    "encryption",
                    "AH does not encrypt; remove this field or use protocol = \"esp\"",
                ));
            }
            if raw.key.is_some() {
                return Err(entry.err(
                    "key",
                    "AH has no encryption key; its key is `integrity_key`",
                ));
            }
            (None, None)
        }
        SaProtocol::Esp => {
            let name = entry.required("encryption", &raw.encryption)?;
            let enc: EncryptionAlgorithm =
                name.parse()
                    .map_err(|e: <EncryptionAlgorithm as core::str::FromStr>::Err| {
                        entry.err("encryption", e.to_string())
                    })?;
            let key = if enc.key_len() == 0 {
                if raw.key.as_deref().is_some_and(|k| !k.is_empty()) {
                    return Err(entry.err("key", "NULL encryption takes no key"));
                }
                None
            } else {
                let hex = entry.required("key", &raw.key)?;
                Some(parse_key(
                    &entry,
                    "key",
                    hex,
                    enc.key_len(),
                    &key_description(enc),
                )?)
            };
            (Some(enc), key)
        }
    };

    let (integrity, integrity_key) = match &raw.integrity {
        None => {
            let needs = match (protocol, encryption) {
                (SaProtocol::Ah, _) => Some("AH needs an integrity algorithm"),
                (SaProtocol::Esp, Some(e)) if !e.is_aead() => Some(
                    "encryption without integrity is refused: add an integrity algorithm (hmac-sha256-128, hmac-sha384-192, hmac-sha512-256) or use an AEAD (aes-gcm-128, aes-gcm-256, chacha20-poly1305)",
                ),
                _ => None,
            };
            if let Some(msg) = needs {
                return Err(entry.err("integrity", msg));
            }
            if raw.integrity_key.is_some() {
                return Err(entry.err("integrity_key", "given without an `integrity` algorithm"));
            }
            (None, None)
        }
        Some(name) => {
            if let Some(e) = encryption.filter(|e| e.is_aead()) {
                return Err(entry.err(
                    "integrity",
                    format!("{e} is an AEAD and already authenticates; a separate integrity algorithm is not allowed"),
                ));
            }
            let alg: IntegrityAlgorithm =
                name.parse()
                    .map_err(|e: <IntegrityAlgorithm as core::str::FromStr>::Err| {
                        entry.err("integrity", e.to_string())
                    })?;
            let hex = entry.required("integrity_key", &raw.integrity_key)?;
            let what = format!("{}-byte HMAC key", alg.key_len());
            (
                Some(alg),
                Some(parse_key(
                    &entry,
                    "integrity_key",
                    hex,
                    alg.key_len(),
                    &what,
                )?),
            )
        }
    };

    let esn = raw.esn.unwrap_or(false);
    let seq = match &raw.seq {
        None => 0,
        Some(v) => v.to_u64().map_err(|m| entry.err("seq", m))?,
    };
    if !esn && seq > u64::from(u32::MAX) {
        return Err(entry.err(
            "seq",
            format!("{seq} exceeds 2^32-1; sequence numbers above that need esn = true"),
        ));
    }
    let replay_window = raw.replay_window.unwrap_or(DEFAULT_REPLAY_WINDOW);
    if replay_window > MAX_REPLAY_WINDOW {
        return Err(entry.err(
            "replay_window",
            format!("{replay_window} packets is larger than the maximum of {MAX_REPLAY_WINDOW}"),
        ));
    }
    let udp_encap = match &raw.udp_encap {
        None => None,
        Some(u) => {
            if protocol != SaProtocol::Esp {
                return Err(entry.err("udp_encap", "UDP encapsulation (RFC 3948) carries ESP only"));
            }
            let src_port = u.src_port.unwrap_or(4500);
            let dst_port = u.dst_port.unwrap_or(4500);
            if src_port == 0 || dst_port == 0 {
                return Err(entry.err("udp_encap", "ports must be non-zero"));
            }
            Some(UdpEncap { src_port, dst_port })
        }
    };
    let ttl = raw.ttl.unwrap_or(DEFAULT_TTL);
    if ttl == 0 {
        return Err(entry.err("ttl", "an outer TTL of 0 would never leave the host"));
    }
    let df = match raw.df.as_deref().unwrap_or("copy") {
        "copy" => DfMode::Copy,
        "set" => DfMode::Set,
        "clear" => DfMode::Clear,
        other => {
            return Err(entry.err(
                "df",
                format!("`{other}` is not a DF mode (expected copy, set or clear)"),
            ));
        }
    };
    let lifetime = match &raw.lifetime {
        None => Lifetime::default(),
        Some(l) => {
            let lt = Lifetime {
                soft_bytes: l.soft_bytes,
                hard_bytes: l.hard_bytes,
                soft_packets: l.soft_packets,
                hard_packets: l.hard_packets,
                soft_seconds: l.soft_seconds,
                hard_seconds: l.hard_seconds,
            };
            for (soft, hard, what) in [
                (lt.soft_bytes, lt.hard_bytes, "bytes"),
                (lt.soft_packets, lt.hard_packets, "packets"),
                (lt.soft_seconds, lt.hard_seconds, "seconds"),
            ] {
                if let (Some(s), Some(h)) = (soft, hard)
                    && s > h
                {
                    return Err(entry.err(
                        "lifetime",
                        format!("soft_{what} ({s}) is larger than hard_{what} ({h})"),
                    ));
                }
            }
            lt
        }
    };
    Ok(SaSpec {
        spi,
        dir,
        protocol,
        mode,
        src,
        dst,
        encryption,
        key,
        integrity,
        integrity_key,
        esn,
        seq,
        replay_window,
        udp_encap,
        ttl,
        df,
        lifetime,
    })
}

pub(crate) fn validate_policy(
    index: usize,
    raw: &RawPolicy,
    sas: &[SaSpec],
    path: &Path,
) -> Result<PolicySpec, ConfigError> {
    let entry = Entry {
        path,
        name: format!("policy[{index}]"),
    };
    let dir = parse_direction(&entry, entry.required("dir", &raw.dir)?)?;
    let cidr = |field: &'static str, v: &Option<String>| -> Result<Cidr, ConfigError> {
        let s = entry.required(field, v)?;
        s.parse::<Cidr>().map_err(|m| entry.err(field, m))
    };
    let src = cidr("src", &raw.src)?;
    let dst = cidr("dst", &raw.dst)?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(entry.err(
            "dst",
            format!("{dst} and src {src} are of different address families"),
        ));
    }
    let protocol = match &raw.protocol {
        None => ProtocolSelector::Any,
        Some(IntOrString::Str(s)) => s.parse().map_err(|m| entry.err("protocol", m))?,
        Some(IntOrString::Int(n)) => ProtocolSelector::Number(u8::try_from(*n).map_err(|_| {
            entry.err(
                "protocol",
                format!("{n} is not a protocol number (0..=255)"),
            )
        })?),
    };
    let ports = |field: &'static str, v: &Option<IntOrString>| -> Result<PortRange, ConfigError> {
        let range = match v {
            None => return Ok(PortRange::ANY),
            Some(IntOrString::Str(s)) => s.parse::<PortRange>().map_err(|m| entry.err(field, m))?,
            Some(IntOrString::Int(n)) => {
                let p = u16::try_from(*n)
                    .map_err(|_| entry.err(field, format!("{n} is not a port (0..=65535)")))?;
                PortRange { low: p, high: p }
            }
        };
        if !range.is_any() && !protocol.has_ports() {
            return Err(entry.err(
                field,
                format!("ports need protocol = tcp, udp or sctp (protocol is {protocol})"),
            ));
        }
        Ok(range)
    };
    let src_port = ports("src_port", &raw.src_port)?;
    let dst_port = ports("dst_port", &raw.dst_port)?;
    let action = match entry.required("action", &raw.action)?.as_str() {
        "protect" => PolicyAction::Protect,
        "bypass" => PolicyAction::Bypass,
        "discard" => PolicyAction::Discard,
        other => {
            return Err(entry.err(
                "action",
                format!("`{other}` is not an action (expected protect, bypass or discard)"),
            ));
        }
    };
    let mut bundle = Vec::new();
    match (action, &raw.sa) {
        (PolicyAction::Protect, None) => {
            return Err(entry.err(
                "sa",
                "a protect policy needs its SA bundle, e.g. sa = [0x1001]",
            ));
        }
        (PolicyAction::Protect, Some(list)) => {
            for v in list {
                let spi = v.to_u64().map_err(|m| entry.err("sa", m))?;
                let spi = u32::try_from(spi)
                    .map_err(|_| entry.err("sa", format!("{spi:#x} is not a 32-bit SPI")))?;
                bundle.push(spi);
            }
            check_bundle(&entry, &bundle, sas)?;
        }
        (_, Some(_)) => return Err(entry.err("sa", "only a protect policy takes SAs")),
        (_, None) => {}
    }
    Ok(PolicySpec {
        dir,
        src,
        dst,
        protocol,
        src_port,
        dst_port,
        action,
        sa: bundle,
    })
}

/// A bundle is one ESP or AH tunnel SA, or an ESP tunnel SA followed by an AH transport SA
/// between the same endpoints.
fn check_bundle(entry: &Entry, bundle: &[u32], sas: &[SaSpec]) -> Result<(), ConfigError> {
    let mut members = Vec::with_capacity(bundle.len());
    for spi in bundle {
        let matching: Vec<&SaSpec> = sas.iter().filter(|s| s.spi == *spi).collect();
        match matching.as_slice() {
            [] => return Err(entry.err("sa", format!("no [[sa]] with spi {spi:#010x}"))),
            [one] => members.push(*one),
            _ => return Err(entry.err("sa", format!("spi {spi:#010x} names more than one SA (different destinations); a bundle must be unambiguous"))),
        }
    }
    match members.as_slice() {
        [one] if one.mode == SaMode::Tunnel => Ok(()),
        [one] => Err(entry.err("sa", format!("{} is a transport-mode AH SA; it can only follow an ESP tunnel SA in a bundle", one.label()))),
        [esp, ah]
            if esp.protocol == SaProtocol::Esp
                && esp.mode == SaMode::Tunnel
                && ah.protocol == SaProtocol::Ah
                && ah.mode == SaMode::Transport =>
        {
            if esp.src != ah.src || esp.dst != ah.dst {
                return Err(entry.err("sa", format!("{} and {} must have the same src and dst: AH covers the ESP tunnel packet's outer header", esp.label(), ah.label())));
            }
            if esp.udp_encap.is_some() {
                return Err(entry.err("sa", format!("{} uses UDP encapsulation, which cannot be combined with AH (AH does not cross NAT)", esp.label())));
            }
            Ok(())
        }
        _ => Err(entry.err(
            "sa",
            "unsupported bundle: use [esp-tunnel], [ah-tunnel] or [esp-tunnel, ah-transport] (innermost first)",
        )),
    }
}

#[cfg(test)]
mod test {
    use std::path::Path;

    use crate::*;
    use espo_ipsec::spec::*;

    const GCM_KEY: &str = "dcf26a21079d636152462f837e06d078282792c3";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("gw.toml"))
    }

    fn err(text: &str) -> String {
        parse(text)
            .expect_err("configuration must be refused")
            .to_string()
    }

    fn sa(extra: &str) -> String {
        format!(
            "[[sa]]\nspi = 0x1001\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\n{extra}\n"
        )
    }

    #[test]
    fn the_design_example_parses() {
        let text = format!(
            r#"
[device]
engine = "model"
pci = "0000:03:00.0"

[gateway]
tun = "espo0"
tun_address = "10.1.0.1/16"
port = "eth1"
local = "192.0.2.1"

[[sa]]
spi = 0x00001001
protocol = "esp"
mode = "tunnel"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "aes-gcm-128"
key = "{GCM_KEY}"
esn = false
seq = 0
replay_window = 64
udp_encap = {{ src_port = 4500, dst_port = 4500 }}

[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.2.0.0/16"
protocol = "any"
action = "protect"
sa = [0x00001001]
"#
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.device.engine, EngineKind::Model);
        assert_eq!(
            c.gateway.as_ref().unwrap().local,
            Some("192.0.2.1".parse().unwrap())
        );
        let s = &c.sas[0];
        assert_eq!(
            (s.spi, s.protocol, s.mode, s.esn, s.seq, s.replay_window),
            (0x1001, SaProtocol::Esp, SaMode::Tunnel, false, 0, 64)
        );
        assert_eq!(
            s.udp_encap,
            Some(UdpEncap {
                src_port: 4500,
                dst_port: 4500
            })
        );
        assert_eq!(s.key.as_ref().unwrap().len(), 20);
        assert_eq!(c.policies[0].sa, vec![0x1001]);
        assert_eq!(c.policies[0].action, PolicyAction::Protect);
    }

    #[test]
    fn the_vfio_user_engine_needs_its_socket() {
        let e = err("[device]\nengine = \"vfio-user\"\n");
        assert!(
            e.contains("[device]: field `socket`") && e.contains("espo card serve"),
            "{e}"
        );
        let c =
            parse("[device]\nengine = \"vfio-user\"\nsocket = \"/run/espo-card.sock\"\n").unwrap();
        assert_eq!(c.device.engine, EngineKind::VfioUser);
        assert_eq!(
            c.device.socket.as_deref(),
            Some(Path::new("/run/espo-card.sock"))
        );
        let e = err("[device]\nengine = \"vfio-usr\"\n");
        assert!(e.contains("software, model, vfio or vfio-user"), "{e}");
    }

    #[test]
    fn a_card_with_its_own_port_takes_a_mac_or_makes_one_up() {
        let c = parse(
            "[device]\nengine = \"vfio\"\npci = \"0000:03:00.0\"\nmac = \"02:00:5e:10:00:01\"\n",
        )
        .unwrap();
        assert_eq!(c.device.mac, Some([2, 0, 0x5e, 0x10, 0, 1]));
        assert_eq!(c.device.port_mac(), [2, 0, 0x5e, 0x10, 0, 1]);
        for bad in [
            "01:00:5e:00:00:01",
            "02:00:5e:10:00",
            "02:00:5e:10:00:01:02",
            "2:0:5e:10:0:1",
            "zz:00:00:00:00:01",
        ] {
            let e = err(&format!(
                "[device]\nengine = \"vfio\"\npci = \"0000:03:00.0\"\nmac = \"{bad}\"\n"
            ));
            assert!(
                e.contains("[device]: field `mac`") && e.contains(bad),
                "{e}"
            );
        }
        // Made up: locally administered, unicast, the same for the same card, another for
        // another.
        let mac_of = |pci: &str| {
            parse(&format!("[device]\nengine = \"vfio\"\npci = \"{pci}\"\n"))
                .unwrap()
                .device
                .port_mac()
        };
        let a = mac_of("0000:03:00.0");
        assert_eq!(a[0], 0x02);
        assert_eq!(a, mac_of("0000:03:00.0"));
        assert_ne!(a, mac_of("0000:04:00.0"));
    }

    #[test]
    fn every_bundled_vector_configuration_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/vectors");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path().join("config.toml");
            if path.exists() {
                Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert_eq!(n, 13);
    }

    #[test]
    fn errors_name_file_entry_and_field() {
        let e = err(&sa("encryption = \"aes-gcm-128\"\nkey = \"00112233\""));
        assert!(
            e.starts_with("gw.toml: sa[0] (spi 0x00001001): field `key`: expected 20 bytes"),
            "{e}"
        );
        let e = err(&format!(
            "{}{}",
            sa(&format!(
                "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\""
            )),
            sa("encryption = \"aes-gcm-999\"")
        ));
        assert!(
            e.contains("sa[1] (spi 0x00001001): field `encryption`"),
            "{e}"
        );
        let e = err("[[sa]]\nprotocol = \"esp\"\n");
        assert!(e.contains("sa[0]: field `spi`: missing"), "{e}");
    }

    #[test]
    fn encryption_without_integrity_is_refused() {
        let e = err(&sa(
            "encryption = \"aes-cbc-128\"\nkey = \"00112233445566778899aabbccddeeff\"",
        ));
        assert!(
            e.contains("field `integrity`: encryption without integrity is refused"),
            "{e}"
        );
        let e = err(&sa("encryption = \"null\""));
        assert!(e.contains("encryption without integrity"), "{e}");
        let ok = sa(&format!(
            "encryption = \"null\"\nintegrity = \"hmac-sha256-128\"\nintegrity_key = \"{}\"",
            "ab".repeat(32)
        ));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn aead_with_separate_integrity_is_refused() {
        let e = err(&sa(&format!(
            "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\"\nintegrity = \"hmac-sha256-128\"\nintegrity_key = \"{}\"",
            "ab".repeat(32)
        )));
        assert!(e.contains("field `integrity`") && e.contains("AEAD"), "{e}");
    }

    #[test]
    fn unknown_fields_and_syntax_errors_are_reported_with_their_place() {
        let e = err(&sa(&format!(
            "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\"\nreplay_windw = 32"
        )));
        assert!(e.contains("unknown field `replay_windw`"), "{e}");
        assert!(e.starts_with("gw.toml: "), "{e}");
        let e = err("[[sa]\nspi = 1");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn key_errors_are_specific_and_never_echo_the_key() {
        let e = err(&sa(
            "encryption = \"aes-gcm-128\"\nkey = \"dcf26a21079d636152462f837e06d078282792cZ\"",
        ));
        assert!(e.contains("field `key`"), "{e}");
        assert!(!e.contains("dcf26a21079d"), "key material in an error: {e}");
        // Not even the mistyped character (`o` for `0` says which digit was meant).
        let e = err(&sa(
            "encryption = \"aes-gcm-128\"\nkey = \"dcf26a21o79d636152462f837e06d078282792c3\"",
        ));
        assert!(
            e.contains("field `key`: character 9 is not a hex digit"),
            "{e}"
        );
        assert!(!e.contains("`o`") && !e.contains("'o'"), "{e}");
    }

    /// Every 16 hex digits (8 bytes) of `key`.
    fn key_windows(key: &str) -> Vec<&str> {
        (0..=key.len() - 16).map(|i| &key[i..i + 16]).collect()
    }

    #[test]
    fn syntax_errors_never_show_a_key() {
        let cases = [
            format!("encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\n"),
            format!("encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\nreplay_window = 64"),
            format!("encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\" seq = 1"),
            format!("encryption = \"aes-gcm-128\"\nkey = \"\"\"{GCM_KEY}\nseq = 1"),
            format!("encryption = \"aes-gcm-128\"\nkey = [\"{GCM_KEY}\""),
            format!("encryption = \"aes-gcm-128\"\nkey = 0x{}", &GCM_KEY[..30]),
            format!("encryption = \"aes-gcm-128\"\nkey = [\"{GCM_KEY}\"]"),
            format!("encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\"\nmy_psk = \"{GCM_KEY}\""),
            format!("encryption = \"aes-gcm-128\"\nprotocol = \"{GCM_KEY}\""),
        ];
        for case in cases {
            let e = err(&sa(&case));
            assert!(e.starts_with("gw.toml: "), "{e}");
            for w in key_windows(GCM_KEY) {
                assert!(!e.contains(w), "key bytes in:\n{e}");
            }
        }
        // A key written as a number: refused without repeating it.
        let e = err(&sa("encryption = \"aes-gcm-128\"\nkey = 8734512098347561"));
        assert!(!e.contains("87345120"), "{e}");
        assert!(e.contains("a key must be a string of hex digits"), "{e}");
        // The toml crate's error text is not repeated: the place is given once.
        let e = err(&sa(&format!(
            "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\n"
        )));
        assert_eq!(e.matches("line 7").count(), 1, "{e}");
        assert!(e.contains("line 7, column 48"), "{e}");
    }

    #[test]
    fn raw_secrets_are_redacted_in_debug() {
        let raw: RawConfig = toml::from_str(&sa(&format!("key = \"{GCM_KEY}\""))).unwrap();
        let shown = format!("{raw:?}");
        assert!(shown.contains("RawSecret(<redacted>)"), "{shown}");
        assert!(!shown.contains(&GCM_KEY[..16]), "{shown}");
    }

    #[test]
    fn reserved_spi_and_sequence_limits() {
        let e = err("[[sa]]\nspi = 255\nprotocol = \"esp\"\n");
        assert!(e.contains("reserved"), "{e}");
        let e = err(&sa(&format!(
            "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\"\nseq = 4294967296"
        )));
        assert!(e.contains("field `seq`") && e.contains("esn = true"), "{e}");
        assert!(
            parse(&sa(&format!(
                "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\"\nseq = 4294967296\nesn = true"
            )))
            .is_ok()
        );
        let e = err(&sa(&format!(
            "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\"\nreplay_window = 1000000"
        )));
        assert!(e.contains("field `replay_window`"), "{e}");
    }

    #[test]
    fn policies_are_checked_against_the_sas() {
        let base = sa(&format!(
            "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\""
        ));
        let pol = |extra: &str| {
            format!(
                "{base}[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\n{extra}\n"
            )
        };
        let e = err(&pol("action = \"protect\"\nsa = [0x2002]"));
        assert!(
            e.contains("policy[0]: field `sa`: no [[sa]] with spi 0x00002002"),
            "{e}"
        );
        let e = err(&pol("action = \"protect\""));
        assert!(
            e.contains("field `sa`") && e.contains("needs its SA bundle"),
            "{e}"
        );
        let e = err(&pol("action = \"bypass\"\nsa = [0x1001]"));
        assert!(e.contains("only a protect policy takes SAs"), "{e}");
        let e = err(&pol("action = \"protect\"\nsa = [0x1001]\ndst_port = 53"));
        assert!(e.contains("field `dst_port`: ports need protocol"), "{e}");
        let ok = parse(&pol(
            "action = \"protect\"\nsa = [0x1001]\nprotocol = \"udp\"\ndst_port = \"5000-5010\"",
        ))
        .unwrap();
        assert_eq!(
            ok.policies[0].dst_port,
            espo_ipsec::selector::PortRange {
                low: 5000,
                high: 5010
            }
        );
        let e = err(&pol("action = \"protect\"\nsa = [0x1001, 0x1001]"));
        assert!(e.contains("unsupported bundle"), "{e}");
        let e = err(&format!(
            "{base}[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"2001:db8::/32\"\naction = \"discard\"\n"
        ));
        assert!(
            e.contains("field `dst`") && e.contains("different address families"),
            "{e}"
        );
    }

    #[test]
    fn esp_ah_bundle_shape() {
        let text = format!(
            "{}[[sa]]\nspi = 0x1002\nprotocol = \"ah\"\nmode = \"transport\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nintegrity = \"hmac-sha384-192\"\nintegrity_key = \"{}\"\n[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [0x1001, 0x1002]\n",
            sa(&format!(
                "encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\""
            )),
            "cd".repeat(48)
        );
        assert!(parse(&text).is_ok());
        let reversed = text.replace("sa = [0x1001, 0x1002]", "sa = [0x1002, 0x1001]");
        assert!(
            err(&reversed).contains("transport-mode AH SA")
                || err(&reversed).contains("unsupported bundle")
        );
        let e = err(&sa("mode = \"transport\"\nencryption = \"aes-gcm-128\""));
        assert!(e.contains("ESP in transport mode is not supported"), "{e}");
    }

    /// An SA entry with `spi`, outer `src` -> `dst` and `enc` with `key`.
    fn sa_with(spi: u32, src: &str, dst: &str, enc: &str, key: &str) -> String {
        format!(
            "[[sa]]\nspi = {spi:#x}\nprotocol = \"esp\"\nsrc = \"{src}\"\ndst = \"{dst}\"\nencryption = \"{enc}\"\nkey = \"{key}\"\n"
        )
    }

    fn policy(dir: &str, src: &str, dst: &str, spi: u32) -> String {
        format!(
            "[[policy]]\ndir = \"{dir}\"\nsrc = \"{src}\"\ndst = \"{dst}\"\naction = \"protect\"\nsa = [{spi:#x}]\n"
        )
    }

    #[test]
    fn two_aead_sas_under_one_key_and_salt_are_refused() {
        // One SA per direction with a copy-pasted key: both start at sequence number 1, so
        // both directions would encrypt under the same (key, nonce) pairs.
        let text = format!(
            "{}{}{}{}",
            sa_with(0x1001, "192.0.2.1", "192.0.2.2", "aes-gcm-128", GCM_KEY),
            sa_with(0x1002, "192.0.2.2", "192.0.2.1", "aes-gcm-128", GCM_KEY),
            policy("out", "10.1.0.0/16", "10.2.0.0/16", 0x1001),
            policy("in", "10.2.0.0/16", "10.1.0.0/16", 0x1002),
        );
        let e = err(&text);
        assert_eq!(
            e,
            "gw.toml: sa[1] (spi 0x00001002): field `key`: the same key and salt as sa[0] (spi 0x00001001): two SAs under one AEAD key repeat nonces; give each SA its own key"
        );
        assert!(!e.contains(&GCM_KEY[..8]), "no key material: {e}");
        // Written in another case, with a 0x prefix: the same key.
        let text = format!(
            "{}{}",
            sa_with(
                0x1001,
                "192.0.2.1",
                "192.0.2.2",
                "chacha20-poly1305",
                &"ab".repeat(36)
            ),
            sa_with(
                0x1002,
                "192.0.2.1",
                "192.0.2.3",
                "chacha20-poly1305",
                &format!("0x{}", "AB".repeat(36))
            ),
        );
        assert!(
            err(&text)
                .contains("sa[1] (spi 0x00001002): field `key`: the same key and salt as sa[0]")
        );
        // The same bytes under two AEADs: refused too, one key serves one SA.
        let long = "cd".repeat(36);
        let e = err(&format!(
            "{}{}",
            sa_with(0x1001, "192.0.2.1", "192.0.2.2", "aes-gcm-256", &long),
            sa_with(0x1002, "192.0.2.2", "192.0.2.1", "chacha20-poly1305", &long),
        ));
        assert!(
            e.contains("sa[1] (spi 0x00001002): field `key`: the same key and salt as sa[0]")
                && e.contains("there aes-gcm-256, here chacha20-poly1305"),
            "{e}"
        );
        assert!(!e.contains("cdcdcdcd"), "no key material: {e}");
        // The same cipher key with another salt gives other nonces: accepted.
        let other_salt = format!("{}{}", &GCM_KEY[..32], "00000001");
        assert!(
            parse(&format!(
                "{}{}",
                sa_with(0x1001, "192.0.2.1", "192.0.2.2", "aes-gcm-128", GCM_KEY),
                sa_with(0x1002, "192.0.2.2", "192.0.2.1", "aes-gcm-128", &other_salt),
            ))
            .is_ok()
        );
    }

    #[test]
    fn cbc_sas_may_share_a_key_their_ivs_are_random() {
        let cbc = |spi: u32, src: &str, dst: &str| {
            format!(
                "{}integrity = \"hmac-sha256-128\"\nintegrity_key = \"{}\"\n",
                sa_with(spi, src, dst, "aes-cbc-128", &"cd".repeat(16)),
                "ef".repeat(32)
            )
        };
        assert!(
            parse(&format!(
                "{}{}",
                cbc(0x1001, "192.0.2.1", "192.0.2.2"),
                cbc(0x1002, "192.0.2.2", "192.0.2.1")
            ))
            .is_ok()
        );
    }

    #[test]
    fn an_sa_used_both_ways_is_refused() {
        for (first, second) in [("out", "in"), ("in", "out")] {
            let text = format!(
                "{}{}{}",
                sa_with(0x1001, "192.0.2.1", "192.0.2.2", "aes-gcm-128", GCM_KEY),
                policy(first, "10.1.0.0/16", "10.2.0.0/16", 0x1001),
                policy(second, "10.2.0.0/16", "10.1.0.0/16", 0x1001),
            );
            let e = err(&text);
            assert!(
                e.starts_with("gw.toml: policy[1]: field `sa`: sa 0x00001001 is already"),
                "{e}"
            );
            assert!(e.contains("policy[0]"), "{e}");
        }
        // Named twice in one direction is fine: many selectors, one tunnel.
        let text = format!(
            "{}{}{}",
            sa_with(0x1001, "192.0.2.1", "192.0.2.2", "aes-gcm-128", GCM_KEY),
            policy("out", "10.1.0.0/16", "10.2.0.0/16", 0x1001),
            policy("out", "10.3.0.0/16", "10.2.0.0/16", 0x1001),
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn gateway_fields_and_their_defaults() {
        let c = parse("[gateway]\ntun_address = \"10.1.0.1/16\"\n").unwrap();
        let g = c.gateway.unwrap();
        assert_eq!(g.tun, "espo0");
        assert_eq!(g.tun_addresses, vec!["10.1.0.1/16".parse().unwrap()]);
        assert_eq!(
            g.tun_addresses[0].to_string(),
            "10.1.0.1/16",
            "host bits are kept"
        );
        assert_eq!(g.status_socket, Path::new(DEFAULT_STATUS_SOCKET));
        assert_eq!((g.mtu, g.port), (None, None));
        assert!(g.tun_offload, "offloads are on by default");
        assert!(!g.udp_gso, "UDP GSO is off by default");
        assert_eq!(g.workers, None, "one worker per core unless told");
        let g = parse("[gateway]\nworkers = 3\n").unwrap().gateway.unwrap();
        assert_eq!(g.workers, Some(3));
        for bad in ["0", "65"] {
            let e = parse(&format!("[gateway]\nworkers = {bad}\n")).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("workers") && text.contains(bad), "{text}");
        }
        assert!(parse("[gateway]\nworkers = \"many\"\n").is_err());
        assert_eq!(
            g.busy_poll,
            std::time::Duration::from_micros(DEFAULT_BUSY_POLL_US),
            "datapath threads look for {DEFAULT_BUSY_POLL_US} µs before sleeping unless told"
        );
        for (given, want) in [("0", 0), ("1000", 1000), ("35", 35)] {
            let g = parse(&format!("[gateway]\nbusy_poll_us = {given}\n"))
                .unwrap()
                .gateway
                .unwrap();
            assert_eq!(g.busy_poll, std::time::Duration::from_micros(want));
        }
        let e = parse("[gateway]\nbusy_poll_us = 1001\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("busy_poll_us") && text.contains("1001"),
            "{text}"
        );
        assert!(parse("[gateway]\nbusy_poll_us = -1\n").is_err());

        let c = parse(
            "[gateway]\ntun_address = [\"10.1.0.1/32\", \"fd00::1\"]\nport = \"eth1\"\nmtu = 1400\nstatus_socket = \"/tmp/x.sock\"\n",
        )
        .unwrap();
        let g = c.gateway.unwrap();
        assert_eq!(g.tun_addresses.len(), 2);
        assert_eq!(
            g.tun_addresses[1].prefix_len, 128,
            "a bare address is a host address"
        );
        assert_eq!((g.mtu, g.port.as_deref()), (Some(1400), Some("eth1")));
        assert_eq!(g.status_socket, Path::new("/tmp/x.sock"));
        let g = parse("[gateway]\ntun_offload = false\n")
            .unwrap()
            .gateway
            .unwrap();
        assert!(!g.tun_offload);
    }

    #[test]
    fn gateway_fields_are_checked() {
        let e = err("[gateway]\ntun_address = \"10.1.0.1/33\"\n");
        assert!(
            e.contains("[gateway]") && e.contains("tun_address") && e.contains("0 to 32"),
            "{e}"
        );
        let e = err("[gateway]\ntun_address = [\"not-an-address\"]\n");
        assert!(e.contains("tun_address"), "{e}");
        let e = err("[gateway]\nmtu = 100\n");
        assert!(e.contains("`mtu`") && e.contains("576"), "{e}");
        let e = err("[gateway]\nport = \"a-very-long-interface-name\"\n");
        assert!(e.contains("`port`"), "{e}");
        let e = err("[gateway]\nnext_hop = \"192.0.2\"\n");
        assert!(
            e.contains("`next_hop`") && e.contains("not an IP address"),
            "{e}"
        );
        let e = err("[gateway]\nnext_hop = [\"192.0.2.9\", \"192.0.2.10\"]\n");
        assert!(
            e.contains("`next_hop`") && e.contains("one next hop per"),
            "{e}"
        );
        let g = parse("[gateway]\nnext_hop = [\"192.0.2.9\", \"fe80::1\"]\n")
            .unwrap()
            .gateway
            .unwrap();
        assert_eq!(
            g.next_hops,
            vec![
                "192.0.2.9".parse::<std::net::IpAddr>().unwrap(),
                "fe80::1".parse::<std::net::IpAddr>().unwrap()
            ]
        );
        let e = err("[gateway]\nmtus = 1400\n");
        assert!(e.contains("mtus"), "unknown keys are refused: {e}");
    }
}
