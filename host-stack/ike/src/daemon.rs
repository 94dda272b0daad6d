//! What key management asks of the gateway around it: the events a daemon emits (send a
//! message, install or remove a CHILD_SA, log a line) and the requests an operator makes
//! (`espo ike list|up|down`). The daemon itself does no I/O: the gateway owns the sockets,
//! the live database and the clock, and feeds the daemon through [`KeyManager`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use espo_ipsec::lifetime::LifetimeCause;

use espo_ipsec::spec::{PolicySpec, SaSpec};

/// A CHILD_SA's handle while it is installed, chosen by the daemon (unique per daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(pub u64);

/// A trap's handle (`start_action = "trap"`), chosen by the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrapId(pub u64);

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

impl Level {
    pub const NAMES: &'static [(&'static str, Level)] = &[
        ("error", Level::Error),
        ("warning", Level::Warning),
        ("info", Level::Info),
        ("debug", Level::Debug),
    ];

    pub fn name(self) -> &'static str {
        Level::NAMES
            .iter()
            .find(|(_, l)| *l == self)
            .map_or("info", |(n, _)| *n)
    }
}

/// What a log line is about, as strongSwan's subsystems: `ike` the IKE SAs and their
/// exchanges, `chd` CHILD_SAs, `cfg` connections and proposals, `net` datagrams, `enc` message
/// encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subsystem {
    Ike,
    Child,
    Config,
    Net,
    Encoding,
}

impl Subsystem {
    pub const NAMES: &'static [(&'static str, Subsystem)] = &[
        ("ike", Subsystem::Ike),
        ("chd", Subsystem::Child),
        ("cfg", Subsystem::Config),
        ("net", Subsystem::Net),
        ("enc", Subsystem::Encoding),
    ];

    pub fn name(self) -> &'static str {
        Subsystem::NAMES
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("ike", |(n, _)| *n)
    }
}

/// Reads log levels: `info`, or `warning, ike=debug, net=error` — a default level and
/// levels per subsystem.
pub fn parse_log_levels(text: &str) -> Result<(Level, Vec<(Subsystem, Level)>), String> {
    let level = |t: &str| {
        Level::NAMES
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, l)| *l)
            .ok_or_else(|| format!("unknown level `{t}` (error, warning, info, debug)"))
    };
    let mut default = Level::Info;
    let mut per = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            None => default = level(part)?,
            Some((s, l)) => {
                let s = s.trim();
                let subsystem = Subsystem::NAMES
                    .iter()
                    .find(|(n, _)| *n == s)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| format!("unknown subsystem `{s}` (ike, chd, cfg, net, enc)"))?;
                per.push((subsystem, level(l.trim())?));
            }
        }
    }
    Ok((default, per))
}

/// Something the gateway must do for the daemon.
#[derive(Debug)]
pub enum Event {
    /// Send `message` (an IKE message: the gateway adds the non-ESP marker on port 4500)
    /// from `local` to `remote`.
    Send {
        local: SocketAddr,
        remote: SocketAddr,
        message: Vec<u8>,
    },
    /// Install a negotiated CHILD_SA: its inbound and outbound SA and its policies.
    InstallChild {
        id: ChildId,
        /// `connection/child` and the IKE SA, for logs and status.
        name: String,
        sas: Box<[SaSpec; 2]>,
        policies: Vec<PolicySpec>,
        /// A rekey: how it joins the CHILD_SA it renews (without: it comes with policies of
        /// its own).
        renews: Option<Renewal>,
    },
    /// Remove what [`Event::InstallChild`] installed.
    RemoveChild { id: ChildId },
    /// Install outbound trap policies: a packet that matches one is dropped and reported
    /// back with [`KeyManager::acquire`].
    InstallTrap {
        id: TrapId,
        name: String,
        policies: Vec<PolicySpec>,
    },
    /// A NAT keepalive (RFC 3948 §2.3): the single byte 0xFF, without the non-ESP marker,
    /// from `local` (port 4500) to `remote`, so that a NAT in front of this end keeps its
    /// mapping.
    Keepalive {
        local: SocketAddr,
        remote: SocketAddr,
    },
    Log {
        level: Level,
        subsystem: Subsystem,
        text: String,
    },
}

/// How a rekeyed CHILD_SA's SAs join those of the CHILD_SA they renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// It takes the old CHILD_SA's places: the new inbound SA accepts beside the old one
    /// (which retires after a grace period), the policies send on the new outbound SA.
    Replaces {
        old: ChildId,
        /// This end answered the rekey, and the peer accepts on the new SAs only once it
        /// has read the answer: the policies go on sending on the old outbound SA until the
        /// old CHILD_SA is deleted (the peer's DELETE says it switched), or at the latest
        /// after this long.
        hold_outbound: Option<Duration>,
    },
    /// The redundant one of a rekey collision (§2.8.1), beside the CHILD_SA that stays:
    /// its inbound SA accepts wherever the survivor's does until it is deleted; nothing is
    /// sent on its outbound SA.
    Beside(ChildId),
}

/// An operator's request about key management.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Every connection with its IKE SAs and CHILD_SAs.
    List,
    /// Start a connection's IKE SA and CHILD_SAs.
    Up(String),
    /// Delete a connection's IKE SAs (and so their CHILD_SAs).
    Down(String),
}

/// The daemon as the gateway drives it.
pub trait KeyManager {
    /// An IKE message arrived (after the non-ESP marker, on port 4500) from `remote` to
    /// `local`.
    fn receive(&mut self, message: &[u8], remote: SocketAddr, local: SocketAddr, now: Instant);
    /// Time passed: retransmissions, liveness checks, lifetimes.
    fn tick(&mut self, now: Instant);
    /// When [`tick`](Self::tick) next has something to do.
    fn next_deadline(&self) -> Option<Instant>;
    /// The next thing the gateway must do, oldest first.
    fn next_event(&mut self) -> Option<Event>;
    /// What the gateway installed for a CHILD_SA failed: the daemon tells the peer.
    fn install_failed(&mut self, id: ChildId, why: &str, now: Instant);
    /// An SA of CHILD_SA `id` crossed its soft lifetime (`hard` false: renew it now) or
    /// reached its hard lifetime (it sends and accepts nothing more: delete it), counted by
    /// the engine that runs it (`cause`: bytes, packets, seconds, sequence numbers).
    fn lifetime_reached(&mut self, id: ChildId, hard: bool, cause: LifetimeCause, now: Instant) {
        let _ = (id, hard, cause, now);
    }
    /// Answers an operator's request (text for `espo ike ...`).
    fn request(&mut self, request: Request, now: Instant) -> Result<String, String>;
    /// Wireshark's IKEv2 decryption table (`ikev2_decryption_table`) for the established IKE
    /// SAs: holds keys, for root's eyes only.
    fn wireshark_table(&self) -> String {
        String::new()
    }
    /// espo stops: tell every peer (a DELETE for each IKE SA) and forget them.
    fn close_all(&mut self, _now: Instant) {}
    /// A packet matched trap `id`: negotiate its CHILD_SA.
    fn acquire(&mut self, _id: TrapId, _now: Instant) {}
}
