//! `[[connection]]` entries: IKEv2 connections, close to strongSwan's swanctl.conf.
//!
//! ```toml
//! [[connection]]
//! name = "site-b"
//! local_addrs = "192.0.2.1"
//! remote_addrs = "198.51.100.2"        # "%any": a responder for peers anywhere
//! proposals = ["aes128gcm16-prfsha256-x25519"]
//! psk_file = "/etc/espo/site-b.psk"    # or psk = "..."; mode 0600
//!
//! [connection.local]
//! auth = "psk"                         # or "pubkey" with certs and private_key
//! id = "gw-a.example.com"
//!
//! [connection.remote]
//! auth = "psk"                         # or "pubkey" with cacerts
//! id = "gw-b.example.com"
//!
//! [[connection.child]]
//! name = "net"
//! local_ts = ["10.1.0.0/16"]
//! remote_ts = ["10.2.0.0/16"]
//! esp_proposals = ["aes128gcm16"]
//! start_action = "start"
//! ```
//!
//! Relative file names are taken from the configuration file's directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::check::Entry;
use crate::{ConfigError, OneOrMany, RawSecret};
use espo_ike::connection::*;
use espo_ike::ts::TsSpec;
use espo_ipsec::spec::{DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnection {
    pub name: Option<String>,
    pub local_addrs: Option<OneOrMany>,
    pub remote_addrs: Option<OneOrMany>,
    pub local_port: Option<u16>,
    pub remote_port: Option<u16>,
    pub proposals: Option<OneOrMany>,
    pub psk: Option<RawSecret>,
    pub psk_file: Option<PathBuf>,
    pub dpd_delay: Option<u64>,
    pub encap: Option<bool>,
    pub fragmentation: Option<String>,
    pub fragment_size: Option<u64>,
    pub rekey_time: Option<u64>,
    pub over_time: Option<u64>,
    pub reauth_time: Option<u64>,
    pub rand_time: Option<u64>,
    pub local: Option<RawLocal>,
    pub remote: Option<RawRemote>,
    #[serde(default)]
    pub child: Vec<RawChild>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLocal {
    pub auth: Option<String>,
    pub id: Option<String>,
    pub certs: Option<OneOrMany>,
    pub private_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRemote {
    pub auth: Option<String>,
    pub id: Option<String>,
    pub cacerts: Option<OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChild {
    pub name: Option<String>,
    pub local_ts: Option<OneOrMany>,
    pub remote_ts: Option<OneOrMany>,
    pub esp_proposals: Option<OneOrMany>,
    pub start_action: Option<String>,
    pub rekey_time: Option<u64>,
    pub life_time: Option<u64>,
    pub rand_time: Option<u64>,
    pub rekey_bytes: Option<u64>,
    pub life_bytes: Option<u64>,
    pub rekey_packets: Option<u64>,
    pub life_packets: Option<u64>,
    pub replay_window: Option<u32>,
}

/// The authentication methods by name.
const AUTH_METHODS: &[&str] = &["psk", "pubkey"];

fn auth_name(entry: &Entry, field: &'static str, v: Option<&str>) -> Result<bool, ConfigError> {
    match v {
        None => Err(entry.err(field, "missing: `psk` or `pubkey`")),
        Some("psk") => Ok(true),
        Some("pubkey") => Ok(false),
        Some(other) => Err(entry.err(
            field,
            format!(
                "unknown method `{other}` (expected one of {})",
                AUTH_METHODS.join(", ")
            ),
        )),
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// A file the connection needs: it must exist and be a regular file.
fn existing_file(
    entry: &Entry,
    field: &'static str,
    base: &Path,
    p: &Path,
) -> Result<PathBuf, ConfigError> {
    let path = resolve(base, p);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(entry.err(field, format!("{} is not a regular file", path.display()))),
        Err(e) => Err(entry.err(field, format!("cannot read {}: {e}", path.display()))),
    }
}

/// A secret in a file: readable by its owner only, its text (one line) the secret.
fn read_psk_file(entry: &Entry, base: &Path, p: &Path) -> Result<Psk, ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let path = existing_file(entry, "psk_file", base, p)?;
    let meta = std::fs::metadata(&path)
        .map_err(|e| entry.err("psk_file", format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(entry.err(
            "psk_file",
            format!(
                "{} can be read by others (mode {mode:04o}): make it readable by its owner only (chmod 600)",
                path.display()
            ),
        ));
    }
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(&path)
            .map_err(|e| entry.err("psk_file", format!("cannot read {}: {e}", path.display())))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| entry.err("psk_file", format!("{} is not UTF-8 text", path.display())))?;
    let line = text.trim_end_matches(['\n', '\r']);
    if line.contains('\n') {
        return Err(entry.err(
            "psk_file",
            format!(
                "{} holds more than one line (the secret is its one line)",
                path.display()
            ),
        ));
    }
    Psk::from_text(line).map_err(|m| entry.err("psk_file", format!("{}: {m}", path.display())))
}

fn addresses(
    entry: &Entry,
    field: &'static str,
    v: &Option<OneOrMany>,
) -> Result<Vec<IpAddr>, ConfigError> {
    let mut out = Vec::new();
    for s in v.iter().flat_map(OneOrMany::items) {
        let s = s.trim();
        if s == "%any" || s == "any" {
            continue;
        }
        out.push(s.parse().map_err(|_| {
            entry.err(
                field,
                format!("`{s}` is not an IPv4 or IPv6 address (or %any)"),
            )
        })?);
    }
    Ok(out)
}

fn proposals(
    entry: &Entry,
    field: &'static str,
    v: &Option<OneOrMany>,
) -> Result<Vec<String>, ConfigError> {
    let list: Vec<String> = match v {
        None => vec!["default".into()],
        Some(v) => v
            .items()
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .collect(),
    };
    if list.iter().any(String::is_empty) || list.is_empty() {
        return Err(entry.err(field, "an empty proposal"));
    }
    let protocol = if field == "esp_proposals" {
        espo_ike::wire::ProtocolId::Esp
    } else {
        espo_ike::wire::ProtocolId::Ike
    };
    let parsed = espo_ike::proposal::parse_list(&list, protocol)
        .map_err(|e| entry.err(field, e.to_string()))?;
    // What espo's engines and IKE code do not run, refused here rather than at the first
    // negotiation.
    for p in &parsed {
        if let Some(why) = unsupported(p, protocol) {
            return Err(entry.err(field, format!("`{p}`: {why}")));
        }
    }
    Ok(list)
}

/// Why espo cannot run a parsed proposal, if it cannot.
fn unsupported(
    p: &espo_ike::proposal::Proposal,
    protocol: espo_ike::wire::ProtocolId,
) -> Option<String> {
    use espo_ike::wire::{EncrId, IntegId};
    for (e, bits) in &p.encryption {
        let ok = match e {
            EncrId::AesGcm16 | EncrId::AesCbc => matches!(bits, Some(128) | Some(256)),
            EncrId::ChaCha20Poly1305 => true,
            _ => false,
        };
        if !ok {
            return Some(format!(
                "encryption {e:?}{} is not implemented (AES-128/256 CBC or GCM with a 16-byte ICV, ChaCha20-Poly1305)",
                bits.map(|b| format!(" {b}")).unwrap_or_default()
            ));
        }
    }
    for i in &p.integrity {
        let ok = match protocol {
            espo_ike::wire::ProtocolId::Esp => matches!(
                i,
                IntegId::HmacSha256_128 | IntegId::HmacSha384_192 | IntegId::HmacSha512_256
            ),
            _ => matches!(
                i,
                IntegId::HmacSha1_96
                    | IntegId::HmacSha256_128
                    | IntegId::HmacSha384_192
                    | IntegId::HmacSha512_256
            ),
        };
        if !ok {
            return Some(format!("integrity {i:?} is not implemented here"));
        }
    }
    None
}

fn selectors(
    entry: &Entry,
    field: &'static str,
    v: &Option<OneOrMany>,
) -> Result<Vec<TsSpec>, ConfigError> {
    let mut out = Vec::new();
    match v {
        None => out.push(TsSpec::Dynamic {
            protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
        }),
        Some(v) => {
            for s in v.items().iter().flat_map(|s| s.split(',')) {
                out.push(s.parse().map_err(|m: String| entry.err(field, m))?);
            }
        }
    }
    if out.is_empty() {
        return Err(entry.err(field, "no traffic selector"));
    }
    Ok(out)
}

fn secs(v: Option<u64>, default: Duration) -> Duration {
    v.map(Duration::from_secs).unwrap_or(default)
}

pub(crate) fn validate_connection(
    index: usize,
    raw: &RawConnection,
    path: &Path,
) -> Result<ConnectionSpec, ConfigError> {
    let mut entry = Entry::new(path, format!("connection[{index}]"));
    let name = entry.required_str("name", &raw.name)?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(entry.err(
            "name",
            format!("`{name}`: letters, digits, `-`, `_` and `.` only"),
        ));
    }
    entry = Entry::new(path, format!("connection[{index}] ({name})"));
    let local_addrs = addresses(&entry, "local_addrs", &raw.local_addrs)?;
    let remote_addrs = addresses(&entry, "remote_addrs", &raw.remote_addrs)?;
    let proposals = proposals(&entry, "proposals", &raw.proposals)?;

    let local = raw
        .local
        .as_ref()
        .ok_or_else(|| entry.err("local", "missing: a [connection.local] table with auth"))?;
    let remote = raw
        .remote
        .as_ref()
        .ok_or_else(|| entry.err("remote", "missing: a [connection.remote] table with auth"))?;
    let local_auth = if auth_name(&entry, "local.auth", local.auth.as_deref())? {
        if local.certs.is_some() || local.private_key.is_some() {
            return Err(entry.err(
                "local.certs",
                "certs and private_key belong to auth = \"pubkey\"",
            ));
        }
        LocalAuth::Psk
    } else {
        let mut certs = Vec::new();
        for c in local.certs.iter().flat_map(OneOrMany::items) {
            certs.push(existing_file(&entry, "local.certs", path, Path::new(c))?);
        }
        if certs.is_empty() {
            return Err(entry.err(
                "local.certs",
                "auth = \"pubkey\" needs this end's certificate (PEM)",
            ));
        }
        let key = local.private_key.as_ref().ok_or_else(|| {
            entry.err(
                "local.private_key",
                "auth = \"pubkey\" needs the certificate's private key (PEM)",
            )
        })?;
        LocalAuth::Pubkey {
            certs,
            private_key: existing_file(&entry, "local.private_key", path, key)?,
        }
    };
    let remote_auth = if auth_name(&entry, "remote.auth", remote.auth.as_deref())? {
        if remote.cacerts.is_some() {
            return Err(entry.err("remote.cacerts", "cacerts belong to auth = \"pubkey\""));
        }
        RemoteAuth::Psk
    } else {
        let mut cacerts = Vec::new();
        for c in remote.cacerts.iter().flat_map(OneOrMany::items) {
            cacerts.push(existing_file(&entry, "remote.cacerts", path, Path::new(c))?);
        }
        if cacerts.is_empty() {
            return Err(entry.err(
                "remote.cacerts",
                "auth = \"pubkey\" needs the CA certificates the peer's must chain to",
            ));
        }
        RemoteAuth::Pubkey { cacerts }
    };
    let uses_psk = matches!(local_auth, LocalAuth::Psk) || matches!(remote_auth, RemoteAuth::Psk);
    let psk = match (&raw.psk, &raw.psk_file) {
        (Some(_), Some(_)) => return Err(entry.err("psk", "give psk or psk_file, not both")),
        (Some(s), None) => Some(Psk::from_text(s).map_err(|m| entry.err("psk", m))?),
        (None, Some(f)) => Some(read_psk_file(&entry, path, f)?),
        (None, None) => None,
    };
    if uses_psk && psk.is_none() {
        return Err(entry.err(
            "psk",
            "auth = \"psk\" needs the secret: psk = \"...\" or psk_file = \"path\"",
        ));
    }
    if !uses_psk && psk.is_some() {
        return Err(entry.err(
            "psk",
            "a secret given, but neither end authenticates with psk",
        ));
    }
    for (field, id) in [("local.id", &local.id), ("remote.id", &remote.id)] {
        if let Some(id) = id
            && id.trim().is_empty()
        {
            return Err(entry.err(field, "an empty identity"));
        }
    }
    if raw.child.is_empty() {
        return Err(entry.err(
            "child",
            "a connection needs at least one [[connection.child]]",
        ));
    }
    let ike_rekey = secs(raw.rekey_time, Lifetimes::IKE_DEFAULT.rekey_time);
    let over = secs(raw.over_time, ike_rekey / 10);
    let lifetimes = Lifetimes {
        rekey_time: ike_rekey,
        life_time: ike_rekey + over,
        rand_time: secs(raw.rand_time, over),
        ..Lifetimes::IKE_DEFAULT
    };
    if lifetimes.rand_time > lifetimes.rekey_time {
        return Err(entry.err("rand_time", "longer than rekey_time"));
    }
    let mut children: Vec<ChildSpec> = Vec::new();
    for (j, c) in raw.child.iter().enumerate() {
        let child = validate_child(path, index, name, j, c)?;
        if children.iter().any(|o| o.name == child.name) {
            return Err(
                Entry::new(path, format!("connection[{index}] ({name}) child[{j}]")).err(
                    "name",
                    format!("`{}` is used by an earlier child", child.name),
                ),
            );
        }
        children.push(child);
    }
    if remote_addrs.is_empty()
        && let Some(c) = children
            .iter()
            .find(|c| c.start_action != StartAction::None)
    {
        return Err(entry.err(
            "remote_addrs",
            format!(
                "child `{}` has start_action = \"{}\", which needs the peer's address",
                c.name,
                c.start_action.name()
            ),
        ));
    }
    Ok(ConnectionSpec {
        name: name.to_string(),
        local_addrs,
        remote_addrs,
        local_port: raw.local_port.unwrap_or(IKE_PORT),
        remote_port: raw.remote_port.unwrap_or(IKE_PORT),
        local_id: local.id.clone(),
        remote_id: remote.id.clone(),
        local_auth,
        remote_auth,
        psk,
        proposals,
        dpd_delay: secs(raw.dpd_delay, Duration::from_secs(30)),
        encap: raw.encap.unwrap_or(false),
        lifetimes,
        reauth_time: secs(raw.reauth_time, Duration::ZERO),
        fragmentation: match raw.fragmentation.as_deref() {
            None | Some("yes") => true,
            Some("no") => false,
            Some(other) => {
                return Err(entry.err(
                    "fragmentation",
                    format!("unknown value `{other}` (expected yes or no)"),
                ));
            }
        },
        fragment_size: match raw.fragment_size {
            None => espo_ike::connection::DEFAULT_FRAGMENT_SIZE,
            Some(n) if (espo_ike::connection::MIN_FRAGMENT_SIZE as u64..=65535).contains(&n) => {
                n as usize
            }
            Some(n) => {
                return Err(entry.err(
                    "fragment_size",
                    format!(
                        "{n} bytes: between {} and 65535",
                        espo_ike::connection::MIN_FRAGMENT_SIZE
                    ),
                ));
            }
        },
        children,
    })
}

fn validate_child(
    path: &Path,
    ci: usize,
    conn: &str,
    index: usize,
    raw: &RawChild,
) -> Result<ChildSpec, ConfigError> {
    let entry = Entry::new(path, format!("connection[{ci}] ({conn}) child[{index}]"));
    let name = entry.required_str("name", &raw.name)?.to_string();
    let entry = Entry::new(path, format!("connection[{ci}] ({conn}) child {name}"));
    let start_action = match raw.start_action.as_deref() {
        None => StartAction::None,
        Some(s) => StartAction::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                entry.err(
                    "start_action",
                    format!("unknown action `{s}` (expected none, start or trap)"),
                )
            })?,
    };
    let d = Lifetimes::CHILD_DEFAULT;
    let rekey_time = secs(raw.rekey_time, d.rekey_time);
    let life_time = secs(raw.life_time, rekey_time + rekey_time / 10);
    let rand_time = secs(raw.rand_time, life_time.saturating_sub(rekey_time));
    if life_time < rekey_time {
        return Err(entry.err(
            "life_time",
            "shorter than rekey_time: the SA would end before it is renewed",
        ));
    }
    if rand_time > rekey_time {
        return Err(entry.err("rand_time", "longer than rekey_time"));
    }
    let count = |rekey: Option<u64>,
                 life: Option<u64>,
                 field: &'static str|
     -> Result<(u64, u64), ConfigError> {
        let rekey = rekey.unwrap_or(0);
        let life = life.unwrap_or(rekey + rekey / 10);
        if rekey != 0 && life != 0 && life < rekey {
            return Err(entry.err(field, "smaller than the rekey count"));
        }
        Ok((rekey, life))
    };
    let (rekey_bytes, life_bytes) = count(raw.rekey_bytes, raw.life_bytes, "life_bytes")?;
    let (rekey_packets, life_packets) = count(raw.rekey_packets, raw.life_packets, "life_packets")?;
    let replay_window = raw.replay_window.unwrap_or(DEFAULT_REPLAY_WINDOW);
    if replay_window > MAX_REPLAY_WINDOW {
        return Err(entry.err("replay_window", format!("at most {MAX_REPLAY_WINDOW}")));
    }
    Ok(ChildSpec {
        local_ts: selectors(&entry, "local_ts", &raw.local_ts)?,
        remote_ts: selectors(&entry, "remote_ts", &raw.remote_ts)?,
        esp_proposals: proposals(&entry, "esp_proposals", &raw.esp_proposals)?,
        start_action,
        lifetimes: Lifetimes {
            rekey_time,
            life_time,
            rand_time,
            rekey_bytes,
            life_bytes,
            rekey_packets,
            life_packets,
        },
        replay_window,
        name,
    })
}

/// Connection names are unique.
pub(crate) fn check_names(conns: &[ConnectionSpec], path: &Path) -> Result<(), ConfigError> {
    for (i, c) in conns.iter().enumerate() {
        if let Some(j) = conns[..i].iter().position(|o| o.name == c.name) {
            return Err(Entry::new(path, format!("connection[{i}] ({})", c.name))
                .err("name", format!("already used by connection[{j}]")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
