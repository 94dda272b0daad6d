//! What `espo status` shows, and the root-only Unix socket it is read from.
//!
//! Each datapath thread owns its half of the engine and publishes a copy of its counters
//! and SA state into a [`Published`] slot now and then (every batch at most, every
//! [`PUBLISH_INTERVAL`] at least once when busy); the status thread renders the two copies
//! for each client. The packet path never waits for a reader: a thread that finds the slot
//! locked publishes next time.
//!
//! The text never contains key material: only SPIs, algorithms, addresses, sequence
//! numbers, counters and where each SA runs.

use espo_ipsec::spec::Direction;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use super::path::SaSnapshot;
use espo_config::Config;
use espo_ipsec::counters::DropCounters;
use espo_ipsec::spec::SaProtocol;

/// How often a busy datapath thread publishes its counters.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Counters of one direction of the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Packets taken in (from the TUN device outbound, from the sockets inbound).
    pub received: u64,
    /// Packets sent on (tunnel packets outbound, inner packets inbound).
    pub forwarded: u64,
    pub forwarded_bytes: u64,
    /// Packets policy let through unprotected.
    pub bypassed: u64,
    /// Consumed without forwarding: NAT keepalives (inbound); the inside stack's own
    /// link-scope packets on the TUN device, such as MLD reports (outbound).
    pub consumed: u64,
    /// Packets dropped by the engine or the gateway, by reason.
    pub drops: DropCounters,
    /// ICMP "fragmentation needed" / "packet too big" errors sent to inner senders.
    pub icmp_errors: u64,
    /// Inner IPv4 packets fragmented before encapsulation, and the fragments made.
    pub fragmented: u64,
    pub fragments: u64,
    /// Packets the kernel refused to take (socket or TUN write errors).
    pub write_errors: u64,
}

/// One direction's published state.
#[derive(Debug, Clone, Default)]
pub struct DirectionView {
    pub stats: DirectionStats,
    pub sas: Vec<SaSnapshot>,
}

/// A slot a datapath thread publishes into and the status thread reads.
#[derive(Debug, Default)]
pub struct Published {
    view: Mutex<DirectionView>,
}

impl Published {
    /// Publishes unless a reader holds the slot; never blocks.
    pub fn try_publish(&self, stats: &DirectionStats, sas: &[SaSnapshot]) -> bool {
        match self.view.try_lock() {
            Ok(mut v) => {
                v.stats.clone_from(stats);
                v.sas.clear();
                v.sas.extend_from_slice(sas);
                true
            }
            Err(TryLockError::Poisoned(p)) => {
                let mut v = p.into_inner();
                v.stats.clone_from(stats);
                v.sas.clear();
                v.sas.extend_from_slice(sas);
                true
            }
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// Publishes, waiting for a reader if need be (the final publication at exit).
    pub fn publish(&self, stats: &DirectionStats, sas: &[SaSnapshot]) {
        let mut v = self.view.lock().unwrap_or_else(|p| p.into_inner());
        v.stats.clone_from(stats);
        v.sas.clear();
        v.sas.extend_from_slice(sas);
    }

    pub fn read(&self) -> DirectionView {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What does not change while the gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayInfo {
    pub tun: String,
    pub tun_mtu: usize,
    pub outside: String,
    pub outside_mtu: usize,
    pub engine: &'static str,
    pub started: Instant,
}

/// The SA table's fixed columns, from the configuration (never its keys).
fn algorithm(config: &Config, spi: u32) -> String {
    let Some(sa) = config.sa(spi) else {
        return "?".into();
    };
    match (sa.protocol, sa.encryption, sa.integrity) {
        (SaProtocol::Esp, Some(e), Some(i)) => format!("{e}+{i}"),
        (SaProtocol::Esp, Some(e), None) => e.to_string(),
        (_, _, Some(i)) => i.to_string(),
        _ => "?".into(),
    }
}

fn write_direction(out: &mut String, name: &str, v: &DirectionStats) {
    let _ = writeln!(
        out,
        "{name}: {} received, {} forwarded ({} bytes), {} bypassed, {} consumed, {} dropped",
        v.received,
        v.forwarded,
        v.forwarded_bytes,
        v.bypassed,
        v.consumed,
        v.drops.total()
    );
    let _ = writeln!(
        out,
        "  icmp errors sent {}, fragmented {} into {}, write errors {}",
        v.icmp_errors, v.fragmented, v.fragments, v.write_errors
    );
    let drops: Vec<String> = v.drops.nonzero().map(|(r, n)| format!("{r} {n}")).collect();
    if !drops.is_empty() {
        let _ = writeln!(out, "  drops: {}", drops.join(", "));
    }
}

/// The text `espo status` prints.
pub fn render(
    config: &Config,
    info: &GatewayInfo,
    outbound: &DirectionView,
    inbound: &DirectionView,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "espo gateway: tun {} (mtu {}), outside {} (mtu {}), engine {}, up {} s",
        info.tun,
        info.tun_mtu,
        info.outside,
        info.outside_mtu,
        info.engine,
        info.started.elapsed().as_secs()
    );
    write_direction(&mut out, "outbound", &outbound.stats);
    write_direction(&mut out, "inbound", &inbound.stats);
    let _ = writeln!(
        out,
        "{:<4}{:<12}{:<6}{:<10}{:<34}{:<40}{:>12}{:>12}{:>14}  runs on",
        "dir", "spi", "proto", "mode", "algorithm", "outer", "seq", "packets", "bytes"
    );
    for sa in outbound.sas.iter().chain(inbound.sas.iter()) {
        let cfg = config.sa(sa.spi);
        let (proto, mode, outer) = match cfg {
            Some(c) => (
                c.protocol.name(),
                match c.mode {
                    espo_ipsec::spec::SaMode::Tunnel => "tunnel",
                    espo_ipsec::spec::SaMode::Transport => "transport",
                },
                match c.udp_encap {
                    Some(u) => format!("{} -> {} udp {}", c.src, c.dst, u.dst_port),
                    None => format!("{} -> {}", c.src, c.dst),
                },
            ),
            None => ("?", "?", format!("-> {}", sa.dst)),
        };
        let dir = match sa.direction {
            Direction::Out => "out",
            Direction::In => "in",
        };
        let _ = writeln!(
            out,
            "{:<4}{:<12}{:<6}{:<10}{:<34}{:<40}{:>12}{:>12}{:>14}  {}",
            dir,
            format!("{:#010x}", sa.spi),
            proto,
            mode,
            algorithm(config, sa.spi),
            outer,
            sa.seq,
            sa.packets,
            sa.bytes,
            sa.placement.name()
        );
    }
    out
}

/// The listening status socket; the file is removed on drop.
#[derive(Debug)]
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusSocket {
    /// Listens at `path` with mode 0600 (its directory is created 0700 if missing). A stale
    /// socket file from an earlier run is replaced; a live one (another espo answering) is
    /// an `AddrInUse` error.
    pub fn bind(path: &Path) -> io::Result<StatusSocket> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running espo", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(StatusSocket {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// Answers every waiting client with `text`.
    pub fn serve_waiting(&self, text: impl Fn() -> String) {
        while let Ok((mut stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = stream.write_all(text().as_bytes());
        }
    }
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads the status text from a running gateway's socket.
pub fn query(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests;
