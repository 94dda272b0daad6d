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
use espo_ipsec::counters::{DropCounters, DropReason};
use espo_ipsec::lifetime::LifetimeEvent;
use espo_ipsec::spec::SaSpec;

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
    /// System calls that took packets in (TUN reads outbound; socket receives inbound, 0
    /// where the card's queue is the outside) and that sent them on (socket sends
    /// outbound, 0 where the card transmits; TUN writes inbound): with `received` and
    /// `forwarded`, how many packets each call carried — what batching and the offloads
    /// give.
    pub reads: u64,
    pub writes: u64,
    /// Outbound: segments of TUN super-packets the engine took straight from them, each
    /// written once into where it is sent from (a card's TX buffer; copied in, when the
    /// card lends none at the moment), with no batch copy in between. Counted in
    /// `received` too.
    pub segments_direct: u64,
    /// Outbound: packets the TUN read put straight into where they are sent from (a card's
    /// TX buffer), never in host memory. Counted in `received` too.
    pub reads_direct: u64,
    /// Inbound: packets written to the inside straight from where the engine received
    /// them (a card's RX buffer), never copied into host memory. Counted in `forwarded`
    /// (or `write_errors`) too.
    pub writes_direct: u64,
}

impl DirectionStats {
    /// Adds `other`'s counts (another worker's) to these.
    pub fn add(&mut self, other: &DirectionStats) {
        self.received += other.received;
        self.forwarded += other.forwarded;
        self.forwarded_bytes += other.forwarded_bytes;
        self.bypassed += other.bypassed;
        self.consumed += other.consumed;
        self.drops.add(&other.drops);
        self.icmp_errors += other.icmp_errors;
        self.fragmented += other.fragmented;
        self.fragments += other.fragments;
        self.write_errors += other.write_errors;
        self.reads += other.reads;
        self.writes += other.writes;
        self.segments_direct += other.segments_direct;
        self.reads_direct += other.reads_direct;
        self.writes_direct += other.writes_direct;
    }
}

/// One direction's published state.
#[derive(Debug, Clone, Default)]
pub struct DirectionView {
    pub stats: DirectionStats,
    pub sas: Vec<SaSnapshot>,
    /// The latest lifetime ends the engine reported.
    pub events: Vec<LifetimeEvent>,
}

impl DirectionView {
    fn set(&mut self, stats: &DirectionStats, sas: &[SaSnapshot], events: &[LifetimeEvent]) {
        self.stats.clone_from(stats);
        self.sas.clear();
        self.sas.extend_from_slice(sas);
        self.events.clear();
        self.events.extend_from_slice(events);
    }
}

/// What several workers of one direction published, as one: counters summed, each SA once
/// (packets and bytes summed, the highest sequence number), lifetime events once each.
pub fn merged(views: &[DirectionView]) -> DirectionView {
    let mut all = DirectionView::default();
    for v in views {
        all.stats.add(&v.stats);
        for sa in &v.sas {
            match all
                .sas
                .iter_mut()
                .find(|a| (a.spi, a.dst, a.direction) == (sa.spi, sa.dst, sa.direction))
            {
                Some(a) => {
                    a.seq = a.seq.max(sa.seq);
                    a.packets += sa.packets;
                    a.bytes += sa.bytes;
                }
                None => all.sas.push(*sa),
            }
        }
        for e in &v.events {
            if !all.events.contains(e) {
                all.events.push(*e);
            }
        }
    }
    all
}

/// The line `espo status` shows for several outbound workers: how the packets spread.
pub fn workers_line(views: &[DirectionView]) -> String {
    let list = |f: fn(&DirectionStats) -> u64| {
        views
            .iter()
            .map(|v| f(&v.stats).to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    format!(
        "outbound workers: {}, received {}, forwarded {}\n",
        views.len(),
        list(|s| s.received),
        list(|s| s.forwarded)
    )
}

/// Every worker's view of one direction as one: a single view as it is, several
/// [`merged`].
pub fn combined(views: &[DirectionView]) -> DirectionView {
    match views {
        [one] => one.clone(),
        _ => merged(views),
    }
}

/// A slot a datapath thread publishes into and the status thread reads.
#[derive(Debug, Default)]
pub struct Published {
    view: Mutex<DirectionView>,
}

impl Published {
    /// Publishes unless a reader holds the slot; never blocks.
    pub fn try_publish(
        &self,
        stats: &DirectionStats,
        sas: &[SaSnapshot],
        events: &[LifetimeEvent],
    ) -> bool {
        match self.view.try_lock() {
            Ok(mut v) => {
                v.set(stats, sas, events);
                true
            }
            Err(TryLockError::Poisoned(p)) => {
                p.into_inner().set(stats, sas, events);
                true
            }
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// Publishes, waiting for a reader if need be (the final publication at exit).
    pub fn publish(&self, stats: &DirectionStats, sas: &[SaSnapshot], events: &[LifetimeEvent]) {
        self.view
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set(stats, sas, events);
    }

    /// The drops counted for `reasons`, without copying the view.
    pub fn drops_of(&self, reasons: &[DropReason]) -> u64 {
        let v = self.view.lock().unwrap_or_else(|p| p.into_inner());
        reasons.iter().map(|r| v.stats.drops.get(*r)).sum()
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
    /// Where SA state is kept across restarts (`None`: nowhere, it is not a live gateway).
    pub state_dir: Option<PathBuf>,
    /// What the operator must know at start (SAs disabled because their state could not
    /// be read, state files of other keys ignored).
    pub warnings: Vec<String>,
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
    let per_call = |packets: u64, calls: u64| {
        (calls > 0).then(|| {
            format!(
                "{calls} ({:.1} packets each)",
                packets as f64 / calls as f64
            )
        })
    };
    let calls: Vec<String> = [
        per_call(v.received, v.reads).map(|c| format!("reads {c}")),
        per_call(v.forwarded, v.writes).map(|c| format!("writes {c}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !calls.is_empty() {
        let _ = writeln!(out, "  system calls: {}", calls.join(", "));
    }
    if v.segments_direct > 0 {
        let _ = writeln!(
            out,
            "  segments written straight into the card's buffers: {}",
            v.segments_direct
        );
    }
    if v.reads_direct > 0 {
        let _ = writeln!(
            out,
            "  packets read straight into the card's buffers: {}",
            v.reads_direct
        );
    }
    if v.writes_direct > 0 {
        let _ = writeln!(
            out,
            "  packets written straight from the card's buffers: {}",
            v.writes_direct
        );
    }
    let drops: Vec<String> = v.drops.nonzero().map(|(r, n)| format!("{r} {n}")).collect();
    if !drops.is_empty() {
        let _ = writeln!(out, "  drops: {}", drops.join(", "));
    }
}

/// The text `espo status` prints; `spec` finds an SA's specification by SPI, destination
/// and direction (for its algorithms and outer addresses — never its keys).
pub fn render<'s>(
    spec: &dyn Fn(u32, std::net::IpAddr, Direction) -> Option<&'s SaSpec>,
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
        let cfg = spec(sa.spi, sa.dst, sa.direction);
        let (proto, mode, outer, algorithm) = match cfg {
            Some(c) => (
                c.protocol.name(),
                match c.mode {
                    espo_ipsec::spec::SaMode::Tunnel => "tunnel",
                    espo_ipsec::spec::SaMode::Transport => "transport",
                },
                crate::live::outer(c),
                crate::live::algorithm(c),
            ),
            None => ("?", "?", format!("-> {}", sa.dst), "?".to_string()),
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
            algorithm,
            outer,
            sa.seq,
            sa.packets,
            sa.bytes,
            sa.placement.name()
        );
    }
    let events: Vec<&LifetimeEvent> = outbound.events.iter().chain(&inbound.events).collect();
    if !events.is_empty() {
        let _ = writeln!(out, "lifetimes:");
        for e in events {
            let _ = writeln!(
                out,
                "  sa {:#010x} {}: {} lifetime reached ({}){}",
                e.spi,
                e.dir.name(),
                if e.hard { "hard" } else { "soft" },
                e.cause.name(),
                if e.hard {
                    ", it sends and accepts nothing more"
                } else {
                    ""
                }
            );
        }
    }
    out
}

/// The listening status socket; the file is removed on drop.
///
/// Only root (or the user espo runs as) may talk to it: it is created with mode 0600 and
/// never exists at its path with a looser one, its directory must not be writable by
/// anyone else, and nothing at the path that is not espo's own stale socket is replaced.
#[derive(Debug)]
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusSocket {
    /// Listens at `path` with mode 0600.
    ///
    /// - A missing directory is created with mode 0700; an existing one must belong to root
    ///   or to the effective user and be neither group- nor world-writable
    ///   (`PermissionDenied` otherwise): whoever may write there could replace the socket.
    /// - Whatever is at `path` must be a socket nothing listens on (a stale one from an
    ///   espo that died), which is replaced; a live one is `AddrInUse` (another espo
    ///   running), anything else — a file, a directory, a symlink — `AlreadyExists`, and
    ///   is left alone.
    /// - The socket is bound in a fresh 0700 directory beside `path`, set to 0600 there and
    ///   only then renamed into place, so that it is never reachable with the mode the
    ///   umask gave it (changing the umask instead would change it for the whole process).
    pub fn bind(path: &Path) -> io::Result<StatusSocket> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if path.file_name().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", path.display()),
            ));
        }
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        check_directory(dir)?;
        check_replaceable(path)?;
        let staging = staging_dir(dir)?;
        let staged = staging.join("s");
        let bound = UnixListener::bind(&staged).and_then(|listener| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
            // Once more right before replacing: another espo may have started meanwhile.
            check_replaceable(path)?;
            std::fs::rename(&staged, path)?;
            Ok(listener)
        });
        let _ = std::fs::remove_file(&staged);
        let _ = std::fs::remove_dir(&staging);
        let listener = bound?;
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

/// Why a directory may not hold the status socket, from its mode and owner (`euid`: the
/// user espo runs as); `None` when it may.
fn directory_problem(mode: u32, owner: u32, euid: u32) -> Option<String> {
    if mode & 0o022 != 0 {
        return Some(format!(
            "is writable by {} (mode {:o}): another user could replace the socket",
            if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode & 0o7777
        ));
    }
    if owner != 0 && owner != euid {
        return Some(format!(
            "belongs to uid {owner}, neither root nor the user espo runs as ({euid})"
        ));
    }
    None
}

/// Refuses a directory others could write the socket's name into.
fn check_directory(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let euid = nix::unistd::geteuid().as_raw();
    match directory_problem(meta.mode(), meta.uid(), euid) {
        None => Ok(()),
        Some(why) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the status socket's directory {} {why}; use a directory only root (or espo's user) can write, such as /run/espo",
                dir.display()
            ),
        )),
    }
}

/// Whether `path` may be (re)placed by a new socket: nothing there, or a socket nothing
/// listens on.
fn check_replaceable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) => m,
    };
    let kind = meta.file_type();
    if !kind.is_socket() {
        let what = if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is {what}; espo replaces only a stale socket of its own there (remove it, or choose another [gateway] status_socket)",
                path.display()
            ),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{} is in use: something listens on it (another espo running?)",
                path.display()
            ),
        )),
        // Nothing listens: a stale socket, left by an espo that died.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "{} is a socket espo cannot check ({e}); remove it if no espo runs",
                path.display()
            ),
        )),
    }
}

/// A new, empty directory in `dir`, mode 0700, to bind the socket in.
fn staging_dir(dir: &Path) -> io::Result<PathBuf> {
    let mut last = None;
    for _ in 0..16 {
        let staging = dir.join(format!(
            ".espo-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&staging) {
            Ok(()) => return Ok(staging),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no staging directory")))
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
