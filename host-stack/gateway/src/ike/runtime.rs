//! The key-management daemon's surroundings on the gateway's control thread: its UDP
//! sockets, the messages the datapath hands over, its timers, and what it asks for — sending
//! messages, installing and removing CHILD_SAs in the live database, logging.
//!
//! IKE runs beside the datapath and never blocks it: the datapath only ever offers
//! messages to the bounded inbox, and CHILD_SAs reach the datapath threads through the live
//! database's mailboxes like any other change.
//!
//! Sockets: port 500 is the daemon's own. Port 4500 (NAT traversal) is shared with ESP in
//! UDP (RFC 3948): on the software engine the datapath's socket receives both and hands IKE
//! over through the inbox, and the daemon sends through a second handle of the same socket;
//! on the card, ESP in UDP arrives through the card's port and the daemon has its own
//! socket. Messages on port 4500 carry the non-ESP marker; the runtime adds and removes it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use espo_ike::daemon::{ChildId, Event, KeyManager, Level, Renewal, Request, Subsystem, TrapId};
use espo_ipsec::counters::DropReason;
use espo_ipsec::spd::PolicyId;
use espo_ipsec::spec::SaSpec;
use espo_ipsec::wire::udp_encap::{self, NON_ESP_MARKER_LEN};

use super::inbox::IkeReceiver;
use crate::live::Live;

/// Largest IKE datagram taken (RFC 7296 §2: implementations must take 1280 bytes; espo
/// takes what UDP carries).
const MAX_DATAGRAM: usize = 65535;
/// Datagrams read from one socket per pump, so that a flood cannot starve the rest.
const READ_BUDGET: usize = 64;
/// How long a renewed CHILD_SA's old inbound SA keeps accepting (packets the peer sent
/// before it switched).
const REKEY_RETIRE: Duration = Duration::from_secs(5);
/// Log lines kept for `espo status`.
const LOG_KEPT: usize = 64;

/// How the daemon's datagrams leave: a kernel UDP socket, or the card's port (which has
/// the outside link to itself).
#[derive(Debug)]
pub enum Transport {
    Udp(UdpSocket),
    Port(std::sync::Arc<crate::card::port::PortQueues>),
}

/// One UDP socket of the daemon.
#[derive(Debug)]
pub struct IkeSocket {
    /// The address and port it is bound to (and sends from).
    pub local: SocketAddr,
    pub transport: Transport,
    /// Port 4500: messages carry the non-ESP marker.
    pub marker: bool,
    /// Whether the runtime reads it (`false`: the datapath reads it and hands IKE over).
    pub receive: bool,
}

impl IkeSocket {
    /// A socket of the daemon's own at `local`, nonblocking.
    pub fn bind(local: SocketAddr, marker: bool) -> io::Result<IkeSocket> {
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        Ok(IkeSocket {
            local: socket.local_addr()?,
            transport: Transport::Udp(socket),
            marker,
            receive: true,
        })
    }
}

/// What the runtime installed for a CHILD_SA.
#[derive(Debug)]
struct Installed {
    name: String,
    inbound: (u32, std::net::IpAddr),
    /// The outbound SA its policies send on (while `held`, the one it renews).
    outbound: (u32, std::net::IpAddr),
    policies: Vec<PolicyId>,
    held: Option<Held>,
}

/// The outbound SA of a renewal this end answered, not yet sending: it takes the old
/// outbound SA's place when one of the CHILD_SAs it renews goes, or at `until`.
#[derive(Debug)]
struct Held {
    outbound: SaSpec,
    until: Instant,
    after: Vec<ChildId>,
}

/// Counters for `espo status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeCounters {
    pub received: u64,
    pub sent: u64,
    pub send_errors: u64,
    /// Datagrams on port 4500 that were not IKE (ESP or keepalives on a socket of the
    /// daemon's own: the card takes those) or were too short.
    pub not_ike: u64,
    pub children_installed: u64,
    pub children_removed: u64,
    pub install_failures: u64,
}

/// Which log lines are printed: a level for every subsystem, one of them raised or lowered.
#[derive(Debug, Clone)]
pub struct LogFilter {
    pub default: Level,
    pub per: Vec<(Subsystem, Level)>,
}

impl Default for LogFilter {
    fn default() -> LogFilter {
        LogFilter {
            default: Level::Info,
            per: Vec::new(),
        }
    }
}

impl LogFilter {
    pub fn shows(&self, subsystem: Subsystem, level: Level) -> bool {
        let limit = self
            .per
            .iter()
            .find(|(s, _)| *s == subsystem)
            .map_or(self.default, |(_, l)| *l);
        level <= limit
    }
}

/// The daemon with its sockets.
pub struct IkeRuntime<K: KeyManager> {
    km: K,
    sockets: Vec<IkeSocket>,
    inbox: Option<IkeReceiver>,
    installed: HashMap<ChildId, Installed>,
    /// Trap policies installed, and the trap each belongs to.
    traps: Vec<(PolicyId, TrapId, String)>,
    counters: RuntimeCounters,
    log: VecDeque<String>,
    filter: LogFilter,
    started: Instant,
    /// Where printed log lines go.
    sink: Box<dyn FnMut(&str) + Send>,
    buf: Vec<u8>,
    /// Per connection: its CHILD_SA renewals and the packets dropped during them.
    rekeys: HashMap<String, RekeyRecord>,
    /// The engines' count of drops a renewal can cause, as last seen.
    drops_seen: u64,
    /// CHILD_SAs a renewal replaced, still to be deleted, and their names.
    replaced: HashMap<ChildId, String>,
}

/// A connection's CHILD_SA renewals, for the status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RekeyRecord {
    pub renewals: u64,
    /// Packets the engines dropped for a reason a renewal can cause
    /// ([`REKEY_DROP_REASONS`]) while one of the connection's renewals was under way
    /// (from the new SAs' installation until [`REKEY_WINDOW`] after the old ones went).
    pub dropped: u64,
    window_until: Option<Instant>,
}

/// The drop reasons a CHILD_SA renewal can cause: a packet on an SPI one end does not (or
/// no longer) know, on an SA past its hard limit, or accepted by an SA the inbound policy
/// check does not expect.
pub const REKEY_DROP_REASONS: [DropReason; 3] = [
    DropReason::UnknownSpi,
    DropReason::Expired,
    DropReason::PolicyMismatch,
];

/// How many replaced CHILD_SAs awaiting deletion the runtime remembers by name.
const MAX_REPLACED: usize = 4096;

/// How long after a renewal's last change its drops are counted as the renewal's.
pub const REKEY_WINDOW: Duration = Duration::from_secs(2);

impl<K: KeyManager> IkeRuntime<K> {
    pub fn new(
        km: K,
        sockets: Vec<IkeSocket>,
        inbox: Option<IkeReceiver>,
        filter: LogFilter,
    ) -> IkeRuntime<K> {
        IkeRuntime {
            km,
            sockets,
            inbox,
            installed: HashMap::new(),
            traps: Vec::new(),
            counters: RuntimeCounters::default(),
            log: VecDeque::new(),
            filter,
            started: Instant::now(),
            sink: Box::new(|line| eprintln!("{line}")),
            buf: vec![0; MAX_DATAGRAM],
            rekeys: HashMap::new(),
            drops_seen: 0,
            replaced: HashMap::new(),
        }
    }

    /// Printed log lines go to `sink` instead of standard error.
    pub fn with_sink(mut self, sink: impl FnMut(&str) + Send + 'static) -> IkeRuntime<K> {
        self.sink = Box::new(sink);
        self
    }

    pub fn key_manager(&mut self) -> &mut K {
        &mut self.km
    }

    pub fn counters(&self) -> RuntimeCounters {
        self.counters
    }

    /// The descriptors to wait on: the sockets it reads and the inbox.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds: Vec<BorrowedFd<'_>> = self
            .sockets
            .iter()
            .filter(|s| s.receive)
            .filter_map(|s| match &s.transport {
                Transport::Udp(u) => Some(u.as_fd()),
                Transport::Port(_) => None,
            })
            .collect();
        if let Some(inbox) = &self.inbox {
            fds.push(inbox.wake_fd());
        }
        fds
    }

    /// How long the control thread may wait before [`pump`](Self::pump) has timers to run.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        let held = self
            .installed
            .values()
            .filter_map(|rec| rec.held.as_ref().map(|h| h.until));
        self.km
            .next_deadline()
            .into_iter()
            .chain(held)
            .min()
            .map(|d| d.saturating_duration_since(now))
    }

    /// Reads what arrived, runs the daemon's timers and carries out what it asks. Returns
    /// whether the live database changed (the guard follows it).
    pub fn pump(&mut self, db: &mut Live<'_>, now: Instant) -> bool {
        self.read_sockets(now);
        if let Some(inbox) = &self.inbox {
            inbox.clear_wake();
            while let Some(m) = inbox.try_recv() {
                self.counters.received += 1;
                self.km.receive(&m.bytes, m.src, m.dst, now);
            }
        }
        self.km.tick(now);
        let changed = self.run_events(db, now);
        self.release_held(db, now, None) | changed
    }

    /// Answers an operator's request, then carries out what it caused.
    pub fn request(
        &mut self,
        request: Request,
        db: &mut Live<'_>,
        now: Instant,
    ) -> (Result<String, String>, bool) {
        let answer = self.km.request(request, now);
        let changed = self.run_events(db, now);
        (answer, changed)
    }

    /// Trap policies matched packets: key management negotiates their SAs. Returns
    /// whether the live database changed.
    pub fn acquire(&mut self, policies: &[PolicyId], db: &mut Live<'_>, now: Instant) -> bool {
        let mut traps: Vec<TrapId> = policies
            .iter()
            .filter_map(|p| {
                self.traps
                    .iter()
                    .find(|(id, ..)| id == p)
                    .map(|(_, t, _)| *t)
            })
            .collect();
        traps.dedup();
        for t in traps {
            self.km.acquire(t, now);
        }
        self.run_events(db, now)
    }

    /// The engines' count of drops a renewal can cause ([`REKEY_DROP_REASONS`], both
    /// directions): what grew since the last call counts against every connection with a
    /// renewal under way.
    pub fn note_drops(&mut self, total: u64, now: Instant) {
        let grown = total.saturating_sub(self.drops_seen);
        self.drops_seen = total;
        if grown == 0 {
            return;
        }
        for r in self.rekeys.values_mut() {
            if r.window_until.is_some_and(|t| t >= now) {
                r.dropped += grown;
            }
        }
    }

    /// Per connection, its renewals and the drops during them.
    pub fn rekey_records(&self) -> Vec<(String, RekeyRecord)> {
        let mut v: Vec<(String, RekeyRecord)> =
            self.rekeys.iter().map(|(k, r)| (k.clone(), *r)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A renewal of a CHILD_SA of `name` (`connection/child`) changed the engines now: its
    /// window stays open until the old SAs are gone (`until`).
    fn renewal_window(&mut self, name: &str, until: Instant, new: bool) {
        let conn = name.split('/').next().unwrap_or(name).to_string();
        let r = self.rekeys.entry(conn).or_default();
        if new {
            r.renewals += 1;
        }
        r.window_until = Some(r.window_until.map_or(until, |t| t.max(until)));
    }

    /// The engines' lifetime crossings: each one of an SA of a negotiated CHILD_SA goes to
    /// key management (renew at the soft limit, delete at the hard one). Returns whether
    /// the live database changed.
    pub fn lifetimes(
        &mut self,
        crossed: &[espo_ipsec::lifetime::LifetimeEvent],
        db: &mut Live<'_>,
        now: Instant,
    ) -> bool {
        for e in crossed {
            let owner = self.installed.iter().find(|(_, rec)| match e.dir {
                espo_ipsec::spec::Direction::In => rec.inbound.0 == e.spi,
                espo_ipsec::spec::Direction::Out => rec.outbound.0 == e.spi,
            });
            if let Some((id, _)) = owner {
                self.km.lifetime_reached(*id, e.hard, e.cause, now);
            }
        }
        self.run_events(db, now)
    }

    /// Removes every CHILD_SA and trap policy it installed (at a clean stop).
    pub fn uninstall_all(&mut self, db: &mut Live<'_>) {
        let ids: Vec<ChildId> = self.installed.keys().copied().collect();
        for id in ids {
            self.remove(db, id);
        }
        for (policy, _, name) in std::mem::take(&mut self.traps) {
            db.uninstall_trap(&[policy], &name);
        }
    }

    fn read_sockets(&mut self, now: Instant) {
        for i in 0..self.sockets.len() {
            if !self.sockets[i].receive {
                continue;
            }
            for _ in 0..READ_BUDGET {
                let Transport::Udp(socket) = &self.sockets[i].transport else {
                    break;
                };
                let (n, remote) = match socket.recv_from(&mut self.buf) {
                    Ok(r) => r,
                    Err(_) => break,
                };
                let s = &self.sockets[i];
                let data = &self.buf[..n];
                let message = if s.marker {
                    match udp_encap::classify(data) {
                        Ok(udp_encap::Payload::Ike(m)) => m,
                        _ => {
                            self.counters.not_ike += 1;
                            continue;
                        }
                    }
                } else {
                    data
                };
                self.counters.received += 1;
                let local = s.local;
                self.km.receive(message, remote, local, now);
            }
        }
    }

    fn run_events(&mut self, db: &mut Live<'_>, now: Instant) -> bool {
        let mut changed = false;
        while let Some(event) = self.km.next_event() {
            match event {
                Event::Send {
                    local,
                    remote,
                    message,
                } => self.send(local, remote, &message),
                Event::InstallChild {
                    id,
                    name,
                    sas,
                    policies,
                    renews,
                } => {
                    // The redundant CHILD_SA of a rekey collision accepts beside the one that
                    // stays until it is deleted.
                    if let Some(Renewal::Beside(survivor)) = renews
                        && let Some(rec) = self.installed.get(&survivor)
                    {
                        let [inbound, outbound] = (*sas).clone();
                        let keys = ((inbound.spi, inbound.dst), (outbound.spi, outbound.dst));
                        match db.install_beside(rec.inbound, [inbound, outbound], &name) {
                            Ok(()) => {
                                changed = true;
                                self.renewal_window(
                                    &name,
                                    now + REKEY_RETIRE + REKEY_WINDOW,
                                    false,
                                );
                                self.counters.children_installed += 1;
                                self.installed.insert(
                                    id,
                                    Installed {
                                        name,
                                        inbound: keys.0,
                                        outbound: keys.1,
                                        policies: Vec::new(),
                                        held: None,
                                    },
                                );
                                continue;
                            }
                            Err(e) => self.note(
                                Subsystem::Child,
                                Level::Warning,
                                &format!("installing beside failed ({e}); installing on its own"),
                            ),
                        }
                    }
                    // A rekey takes the old SAs' places where it can (make-before-break
                    // through the live database's replace); when this end answered it, the
                    // outbound SA waits until the peer surely accepts on the new one.
                    let replaces = match renews {
                        Some(Renewal::Replaces { old, hold_outbound }) => {
                            Some((old, hold_outbound))
                        }
                        _ => None,
                    };
                    if let Some((old_id, hold)) = replaces
                        && let Some(rec) = self.installed.get(&old_id)
                    {
                        let (old_in, old_out, kept) =
                            (rec.inbound, rec.outbound, rec.policies.clone());
                        let mut after = rec
                            .held
                            .as_ref()
                            .map(|h| h.after.clone())
                            .unwrap_or_default();
                        after.push(old_id);
                        let [inbound, outbound] = (*sas).clone();
                        let keys = ((inbound.spi, inbound.dst), (outbound.spi, outbound.dst));
                        let result = match hold {
                            Some(hold) => db
                                .renew_inbound_first(
                                    old_in,
                                    [&inbound, &outbound],
                                    REKEY_RETIRE,
                                    &name,
                                )
                                .map(|()| {
                                    Some(Held {
                                        outbound,
                                        until: now + hold,
                                        after,
                                    })
                                }),
                            None => db
                                .replace_negotiated(
                                    old_in,
                                    old_out,
                                    [inbound, outbound],
                                    REKEY_RETIRE,
                                    &name,
                                )
                                .map(|()| None),
                        };
                        match result {
                            Ok(held) => {
                                changed = true;
                                self.renewal_window(&name, now + REKEY_RETIRE + REKEY_WINDOW, true);
                                self.counters.children_installed += 1;
                                self.installed.remove(&old_id);
                                if self.replaced.len() >= MAX_REPLACED {
                                    // Deletions that never came: forget the oldest names.
                                    self.replaced.clear();
                                }
                                self.replaced.insert(old_id, name.clone());
                                self.installed.insert(
                                    id,
                                    Installed {
                                        name,
                                        inbound: keys.0,
                                        outbound: if held.is_some() { old_out } else { keys.1 },
                                        policies: kept,
                                        held,
                                    },
                                );
                                continue;
                            }
                            Err(e) => self.note(
                                Subsystem::Child,
                                Level::Warning,
                                &format!("renewing in place failed ({e}); installing beside"),
                            ),
                        }
                    }
                    let [inbound, outbound] = *sas;
                    let keys = ((inbound.spi, inbound.dst), (outbound.spi, outbound.dst));
                    match db.install_negotiated([inbound, outbound], policies, &name) {
                        Ok(ids) => {
                            changed = true;
                            self.counters.children_installed += 1;
                            self.installed.insert(
                                id,
                                Installed {
                                    name,
                                    inbound: keys.0,
                                    outbound: keys.1,
                                    policies: ids,
                                    held: None,
                                },
                            );
                        }
                        Err(e) => {
                            self.counters.install_failures += 1;
                            self.note(
                                Subsystem::Child,
                                Level::Error,
                                &format!("installing {name} failed: {e}"),
                            );
                            self.km.install_failed(id, &e, now);
                        }
                    }
                }
                Event::Keepalive { local, remote } => self.send_raw(local, remote, &[0xff]),
                Event::InstallTrap { id, name, policies } => {
                    match db.install_trap(policies, &name) {
                        Ok(ids) => {
                            changed = true;
                            self.traps
                                .extend(ids.into_iter().map(|p| (p, id, name.clone())));
                        }
                        Err(e) => self.note(
                            Subsystem::Child,
                            Level::Error,
                            &format!("installing the trap of {name} failed: {e}"),
                        ),
                    }
                }
                Event::RemoveChild { id } => {
                    // A renewal waiting for this CHILD_SA to go sends from now on.
                    changed |= self.release_held(db, now, Some(id));
                    // The old SAs of a renewal leave: the peer's last packets on them count.
                    if let Some(name) = self.replaced.remove(&id) {
                        self.renewal_window(&name, now + REKEY_WINDOW, false);
                    }
                    changed |= self.remove(db, id);
                }
                Event::Log {
                    level,
                    subsystem,
                    text,
                } => self.note(subsystem, level, &text),
            }
        }
        changed
    }

    /// Held outbound SAs take the old ones' places: those waiting for CHILD_SA `gone`, and
    /// every one whose time is up.
    fn release_held(&mut self, db: &mut Live<'_>, now: Instant, gone: Option<ChildId>) -> bool {
        let due: Vec<ChildId> = self
            .installed
            .iter()
            .filter(|(_, rec)| {
                rec.held
                    .as_ref()
                    .is_some_and(|h| h.until <= now || gone.is_some_and(|g| h.after.contains(&g)))
            })
            .map(|(id, _)| *id)
            .collect();
        let mut changed = false;
        for id in due {
            let Some(rec) = self.installed.get_mut(&id) else {
                continue;
            };
            let Some(held) = rec.held.take() else {
                continue;
            };
            let new = (held.outbound.spi, held.outbound.dst);
            match db.renew_outbound(rec.outbound, held.outbound, &rec.name) {
                Ok(()) => {
                    rec.outbound = new;
                    changed = true;
                    let name = rec.name.clone();
                    self.renewal_window(&name, now + REKEY_WINDOW, false);
                }
                Err(e) => {
                    let text = format!("sending on the renewed CHILD_SA failed: {e}");
                    self.note(Subsystem::Child, Level::Error, &text);
                }
            }
        }
        changed
    }

    fn remove(&mut self, db: &mut Live<'_>, id: ChildId) -> bool {
        let Some(child) = self.installed.remove(&id) else {
            return false;
        };
        db.uninstall_negotiated(child.inbound, child.outbound, &child.policies, &child.name);
        self.counters.children_removed += 1;
        true
    }

    /// An IKE message (behind the non-ESP marker on port 4500).
    fn send(&mut self, local: SocketAddr, remote: SocketAddr, message: &[u8]) {
        let marker = self.sockets.iter().any(|s| s.local == local && s.marker);
        if let Some(s) = self.sockets.iter().find(|s| s.local == local)
            && let Transport::Port(queues) = &s.transport
        {
            match crate::card::ike::frame(local, remote, message, marker) {
                Some(frame) => {
                    queues.send_frame(frame);
                    self.counters.sent += 1;
                }
                None => self.counters.send_errors += 1,
            }
            return;
        }
        if marker {
            let mut datagram = Vec::with_capacity(NON_ESP_MARKER_LEN + message.len());
            datagram.extend_from_slice(&[0; NON_ESP_MARKER_LEN]);
            datagram.extend_from_slice(message);
            self.send_raw(local, remote, &datagram);
        } else {
            self.send_raw(local, remote, message);
        }
    }

    /// A datagram as it is (a NAT keepalive).
    fn send_raw(&mut self, local: SocketAddr, remote: SocketAddr, datagram: &[u8]) {
        let Some(s) = self.sockets.iter().find(|s| s.local == local) else {
            self.counters.send_errors += 1;
            self.note(
                Subsystem::Net,
                Level::Error,
                &format!("no socket at {local} to send an IKE message to {remote} from"),
            );
            return;
        };
        let result = match &s.transport {
            Transport::Udp(socket) => socket.send_to(datagram, remote).map(|_| ()),
            Transport::Port(queues) => {
                match crate::card::ike::frame(local, remote, datagram, false) {
                    Some(frame) => {
                        queues.send_frame(frame);
                        Ok(())
                    }
                    None => Err(io::Error::other("not one IP packet")),
                }
            }
        };
        match result {
            Ok(_) => self.counters.sent += 1,
            Err(e) => {
                self.counters.send_errors += 1;
                self.note(
                    Subsystem::Net,
                    Level::Warning,
                    &format!("sending an IKE message from {local} to {remote} failed: {e}"),
                );
            }
        }
    }

    fn note(&mut self, subsystem: Subsystem, level: Level, text: &str) {
        let line = format!(
            "{:>6} s  [{}] {}: {text}",
            self.started.elapsed().as_secs(),
            subsystem.name(),
            level.name()
        );
        if self.filter.shows(subsystem, level) {
            (self.sink)(&line);
        }
        if level <= Level::Info {
            if self.log.len() == LOG_KEPT {
                self.log.pop_front();
            }
            self.log.push_back(line);
        }
    }

    /// Lines for `espo status`: the counters, the CHILD_SAs installed, recent log lines.
    pub fn status_lines(&self) -> String {
        let c = self.counters;
        let mut text = format!(
            "ike: {} messages received, {} sent ({} send errors), {} not IKE on port 4500; child SAs: {} installed, {} removed, {} failed to install\n",
            c.received,
            c.sent,
            c.send_errors,
            c.not_ike,
            c.children_installed,
            c.children_removed,
            c.install_failures
        );
        let mut children: Vec<&Installed> = self.installed.values().collect();
        children.sort_by(|a, b| a.name.cmp(&b.name));
        for ch in children {
            text.push_str(&format!(
                "  child {}: sa {:#010x} in, sa {:#010x} out, {} policies\n",
                ch.name,
                ch.inbound.0,
                ch.outbound.0,
                ch.policies.len()
            ));
        }
        for (conn, r) in self.rekey_records() {
            text.push_str(&format!(
                "  rekeys of {conn}: {} CHILD_SA renewals, {} packets dropped during them\n",
                r.renewals, r.dropped
            ));
        }
        for line in &self.log {
            text.push_str(&format!("  {line}\n"));
        }
        text
    }
}

#[cfg(test)]
mod tests;
