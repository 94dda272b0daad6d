//! The IKEv2 daemon: connections, their IKE SAs and CHILD_SAs, every exchange of RFC 7296
//! from both sides — IKE_SA_INIT (Diffie-Hellman, nonces, NAT detection, cookies and
//! INVALID_KE_PAYLOAD from the responder), IKE_AUTH (pre-shared keys and signatures with
//! certificates, the first CHILD_SA with traffic-selector narrowing), CREATE_CHILD_SA,
//! INFORMATIONAL (liveness checks, DELETE).
//!
//! [`Daemon`] implements [`KeyManager`]: the gateway hands it datagrams and the time, and
//! carries out what it asks ([`Event`]). It reads no clock and touches no socket.
//!
//! Trust order on a received message: the header is parsed and the message matched to an
//! IKE SA and a message ID; an encrypted message's ICV is checked before any payload inside
//! it is read; the peer's AUTH payload is verified before anything it asks for (a
//! CHILD_SA) is acted on.

mod body;
mod exchanges;
mod fragment;
mod ikesa;

pub use fragment::{MAX_FRAGMENTS, MAX_REASSEMBLED, REASSEMBLY_TIMEOUT};

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use espo_ipsec::lifetime::LifetimeCause;
use espo_ipsec::spec::PolicyAction;
use ring::rand::{SecureRandom, SystemRandom};

use crate::auth::{Certificate, Identity, PrivateKey};
use crate::connection::{ConnectionSpec, LocalAuth, RemoteAuth, StartAction};
use crate::daemon::{ChildId, Event, KeyManager, Level, Request, Subsystem, TrapId};
use crate::exchange::{Backoff, Due, Incoming};
use crate::proposal::Proposal;
use crate::wire::{self, ExchangeType, ProtocolId};

use ikesa::{IkeSa, Phase};

/// IKE SAs that started but did not finish IKE_AUTH, at most, per daemon: a flood of
/// IKE_SA_INIT requests from forged addresses cannot take more.
pub const MAX_HALF_OPEN: usize = 1024;
/// Half-open IKE SAs from one address, at most.
pub const MAX_HALF_OPEN_PER_PEER: usize = 16;
/// Half-open IKE SAs beyond which a responder asks initiators for a cookie (§2.6) before
/// it keeps any state for them.
pub const COOKIE_THRESHOLD: usize = 64;
/// How often the secret behind the cookies changes (the previous one stays valid for as
/// long again).
pub const COOKIE_ROTATION: Duration = Duration::from_secs(120);
/// How long a responder's half-open IKE SA waits for IKE_AUTH.
pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a rekeyed CHILD_SA stays after its successor is installed before this end
/// deletes it: packets already on their way, or sent by a datapath batch that began before
/// the switch, still arrive.
pub const REKEY_GRACE: Duration = Duration::from_secs(2);
/// How long, at most, the responder of a CHILD_SA rekey goes on sending on the old SA when
/// the initiator does not delete it.
pub const HOLD_OUTBOUND: Duration = Duration::from_secs(5);
/// How long before the old SA's hard lifetime the responder of a rekey sends on the new one
/// at the latest.
pub const HOLD_MARGIN: Duration = Duration::from_millis(500);
/// How often the end behind a NAT sends a keepalive when it sends nothing else (RFC 3948
/// §2.3 suggests 20 s, as strongSwan does).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Nonce length (RFC 7296 §2.10: at least half the PRF's key size, at least 16 bytes).
const NONCE_LEN: usize = 32;

/// A connection ready to negotiate: its proposals parsed, its identities resolved, its
/// certificates and private key loaded.
pub struct Connection {
    pub spec: ConnectionSpec,
    ike: Vec<Proposal>,
    /// Each child's ESP proposals.
    esp: Vec<Vec<Proposal>>,
    local_id: Option<Identity>,
    remote_id: Option<Identity>,
    /// This end's certificates (DER), end entity first.
    certs: Vec<Vec<u8>>,
    key: Option<PrivateKey>,
    trusted: Vec<Certificate>,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Reads what `spec` names: proposals, identities, certificate and key files. Errors
    /// name the connection and the field or file.
    pub fn load(spec: ConnectionSpec) -> Result<Connection, String> {
        let name = spec.name.clone();
        let ike = crate::proposal::parse_list(&spec.proposals, ProtocolId::Ike)
            .map_err(|e| format!("connection {name}: proposals: {e}"))?;
        let mut esp = Vec::new();
        for child in &spec.children {
            esp.push(
                crate::proposal::parse_list(&child.esp_proposals, ProtocolId::Esp).map_err(
                    |e| {
                        format!(
                            "connection {name}: child {}: esp_proposals: {e}",
                            child.name
                        )
                    },
                )?,
            );
        }
        let id = |field: &str, text: &Option<String>| -> Result<Option<Identity>, String> {
            text.as_deref()
                .filter(|t| *t != "%any")
                .map(|t| {
                    Identity::parse_config(t)
                        .map_err(|e| format!("connection {name}: {field}: {e}"))
                })
                .transpose()
        };
        let local_id = id("local.id", &spec.local_id)?;
        let remote_id = id("remote.id", &spec.remote_id)?;
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("connection {name}: {}: {e}", path.display()))
        };
        let (mut certs, mut key) = (Vec::new(), None);
        if let LocalAuth::Pubkey {
            certs: files,
            private_key,
        } = &spec.local_auth
        {
            for file in files {
                let cert = Certificate::from_pem(&read(file)?)
                    .map_err(|e| format!("connection {name}: {}: {e}", file.display()))?;
                certs.push(cert.der().to_vec());
            }
            key = Some(
                PrivateKey::from_pem(&read(private_key)?)
                    .map_err(|e| format!("connection {name}: {}: {e}", private_key.display()))?,
            );
        }
        let mut trusted = Vec::new();
        if let RemoteAuth::Pubkey { cacerts } = &spec.remote_auth {
            for file in cacerts {
                trusted.push(
                    Certificate::from_pem(&read(file)?)
                        .map_err(|e| format!("connection {name}: {}: {e}", file.display()))?,
                );
            }
        }
        Ok(Connection {
            spec,
            ike,
            esp,
            local_id,
            remote_id,
            certs,
            key,
            trusted,
        })
    }
}

/// The daemon.
pub struct Daemon {
    conns: Vec<Connection>,
    /// IKE SAs by this end's SPI.
    sas: HashMap<u64, IkeSa>,
    /// Responders' half-open IKE SAs by the initiator's address and SPI (a retransmitted
    /// IKE_SA_INIT finds its IKE SA).
    half_open: HashMap<(SocketAddr, u64), u64>,
    /// The addresses IKE runs on here (initiating from the first of a family).
    locals: Vec<SocketAddr>,
    events: VecDeque<Event>,
    rng: SystemRandom,
    spis_in: HashSet<u32>,
    next_child: u64,
    /// Wall-clock seconds at `epoch` (certificate validity).
    epoch: Instant,
    epoch_unix: u64,
    started: bool,
    counters: Counters,
    backoff: Backoff,
    /// Traps installed: (handle, connection, child).
    traps: Vec<(TrapId, usize, usize)>,
    /// The cookie secrets (§2.6): the current one and its version, the previous one, when
    /// the current one was drawn.
    cookie_secret: (u8, Vec<u8>, Vec<u8>, Instant),
    cookie_threshold: usize,
    /// What [`KeyManager::next_deadline`] answers, as the last `tick` found it when it ran
    /// no IKE SA; `None` (not known) after anything else that may change them.
    quiet_until: Option<Option<Instant>>,
}

/// What happened, for `espo status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub ike_established: u64,
    /// IKE_SA_INIT requests answered with a cookie instead of state.
    pub cookies_sent: u64,
    pub ike_failed: u64,
    pub children_established: u64,
    pub malformed: u64,
    pub dropped: u64,
    /// Requests sent again for want of an answer.
    pub retransmissions: u64,
    /// Messages sent in fragments, and messages received in fragments (RFC 7383).
    pub fragmented: u64,
    pub reassembled: u64,
}

impl core::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Daemon")
            .field("connections", &self.conns.len())
            .field("ike_sas", &self.sas.len())
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// A daemon for `conns`, on the local IKE addresses `locals` (the gateway's sockets on
    /// port 500 and 4500); `now` is `now_unix` seconds since the Unix epoch.
    pub fn new(
        conns: Vec<Connection>,
        locals: Vec<SocketAddr>,
        now: Instant,
        now_unix: u64,
    ) -> Daemon {
        Daemon {
            conns,
            sas: HashMap::new(),
            half_open: HashMap::new(),
            locals,
            events: VecDeque::new(),
            rng: SystemRandom::new(),
            spis_in: HashSet::new(),
            next_child: 1,
            epoch: now,
            epoch_unix: now_unix,
            started: false,
            counters: Counters::default(),
            backoff: Backoff::default(),
            traps: Vec::new(),
            cookie_secret: (0, Vec::new(), Vec::new(), now),
            cookie_threshold: COOKIE_THRESHOLD,
            quiet_until: None,
        }
    }

    /// From how many half-open IKE SAs on a responder asks for cookies (0: always).
    pub fn with_cookie_threshold(mut self, threshold: usize) -> Daemon {
        self.cookie_threshold = threshold;
        self
    }

    /// Retransmission of unanswered requests (§2.1): strongSwan's schedule by default.
    pub fn with_backoff(mut self, backoff: Backoff) -> Daemon {
        self.backoff = backoff;
        self
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The IKE SAs: connection, peer, state (for tests and status).
    pub fn ike_sas(&self) -> Vec<(String, SocketAddr, &'static str, usize)> {
        let mut out: Vec<_> = self
            .sas
            .values()
            .map(|sa| {
                (
                    self.conns[sa.conn].spec.name.clone(),
                    sa.remote,
                    sa.phase.name(),
                    sa.children.len(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn now_unix(&self, now: Instant) -> u64 {
        self.epoch_unix + now.saturating_duration_since(self.epoch).as_secs()
    }

    fn log(&mut self, level: Level, subsystem: Subsystem, text: String) {
        self.events.push_back(Event::Log {
            level,
            subsystem,
            text,
        });
    }

    fn random_bytes(&self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.rng.fill(&mut v).expect("the system's random source");
        v
    }

    fn new_ike_spi(&self) -> u64 {
        loop {
            let b = self.random_bytes(8);
            let spi = u64::from_be_bytes(b.try_into().expect("8 bytes"));
            if spi != 0 && !self.sas.contains_key(&spi) {
                return spi;
            }
        }
    }

    fn new_child_spi(&mut self) -> u32 {
        loop {
            let b = self.random_bytes(4);
            let spi = u32::from_be_bytes(b.try_into().expect("4 bytes"));
            if spi >= 256 && self.spis_in.insert(spi) {
                return spi;
            }
        }
    }

    fn new_child_id(&mut self) -> ChildId {
        let id = ChildId(self.next_child);
        self.next_child += 1;
        id
    }

    fn send(&mut self, sa: &IkeSa, message: Vec<u8>) {
        self.events.push_back(Event::Send {
            local: sa.local,
            remote: sa.remote,
            message,
        });
    }

    /// The local address to reach `remote` from, on `port`.
    fn local_for(&self, conn: &Connection, remote: IpAddr, port: u16) -> Option<SocketAddr> {
        let ip = conn
            .spec
            .local_addrs
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == remote.is_ipv4())
            .or_else(|| {
                self.locals
                    .iter()
                    .map(|l| l.ip())
                    .find(|a| a.is_ipv4() == remote.is_ipv4())
            })?;
        Some(SocketAddr::new(ip, port))
    }

    /// Starts the IKE SA of connection `index` with its children whose start action is
    /// `start` (or all of them when `all`).
    fn initiate(&mut self, index: usize, all: bool, now: Instant) -> Result<(), String> {
        let children = self.conns[index]
            .spec
            .children
            .iter()
            .enumerate()
            .filter(|(_, c)| all || c.start_action == StartAction::Start)
            .map(|(i, _)| i)
            .collect();
        self.initiate_children(index, children, now)
    }

    /// Starts the IKE SA of connection `index` with `children`.
    fn initiate_children(
        &mut self,
        index: usize,
        children: Vec<usize>,
        now: Instant,
    ) -> Result<(), String> {
        let conn = &self.conns[index];
        let name = conn.spec.name.clone();
        let Some(&remote_ip) = conn.spec.remote_addrs.first() else {
            return Err(format!(
                "connection {name} has no remote address: it can only respond"
            ));
        };
        if self
            .sas
            .values()
            .any(|sa| sa.conn == index && sa.initiator && sa.phase != Phase::Deleting)
        {
            return Err(format!("connection {name} is already up or coming up"));
        }
        let remote = SocketAddr::new(remote_ip, conn.spec.remote_port);
        let local = self
            .local_for(conn, remote_ip, conn.spec.local_port)
            .ok_or_else(|| {
                format!("connection {name}: no local address of {remote_ip}'s family")
            })?;
        let mut sa = self.new_initiator_sa(index, local, remote, now)?;
        let spi = sa.our_spi();
        sa.to_start = children;
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!("initiating IKE_SA {name} to {remote}"),
        );
        self.send_init_request(&mut sa, now)?;
        self.sas.insert(spi, sa);
        Ok(())
    }

    /// A new IKE SA this end initiates for connection `index` from `local` to `remote`: a
    /// fresh SPI and nonce, the first Diffie-Hellman group it proposes.
    fn new_initiator_sa(
        &mut self,
        index: usize,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
    ) -> Result<IkeSa, String> {
        let conn = &self.conns[index];
        let group = conn
            .ike
            .iter()
            .flat_map(|p| p.dh.iter())
            .next()
            .map(|g| u16::from(*g))
            .ok_or_else(|| {
                format!(
                    "connection {}: no Diffie-Hellman group proposed",
                    conn.spec.name
                )
            })?;
        let spi = self.new_ike_spi();
        let mut sa = IkeSa::new(index, true, spi, local, remote, self.backoff, now);
        sa.group = group;
        sa.ni = self.random_bytes(NONCE_LEN);
        Ok(sa)
    }

    /// Authenticates the peer of `old` again (RFC 7296 §2.8.3, make-before-break): a new
    /// IKE SA with a CHILD_SA for each of `old`'s, which take their places as a rekey does;
    /// `old` is deleted once they are up.
    fn reauthenticate(&mut self, old: &mut IkeSa, now: Instant) -> Result<(), String> {
        let conn = &self.conns[old.conn];
        let name = conn.spec.name.clone();
        // The IKE_SA_INIT goes to where the IKE SA began (port 500), as for a fresh start.
        let mut remote = old.remote;
        remote.set_port(conn.spec.remote_port);
        let local = self
            .local_for(conn, remote.ip(), conn.spec.local_port)
            .unwrap_or(old.local);
        let mut sa = self.new_initiator_sa(old.conn, local, remote, now)?;
        let spi = sa.our_spi();
        let mut children: Vec<usize> = old
            .children
            .iter()
            .filter(|c| !c.rekeyed)
            .map(|c| c.child)
            .collect();
        children.extend(old.to_start.iter().copied());
        children.dedup();
        sa.to_start = children;
        sa.reauth_of = Some(old.our_spi());
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!(
                "reauthenticating IKE_SA {name}[{:016x}]: a new IKE SA to {}",
                old.our_spi(),
                sa.remote
            ),
        );
        self.send_init_request(&mut sa, now)?;
        old.reauth_by = Some(spi);
        self.sas.insert(spi, sa);
        Ok(())
    }

    /// A reauthenticating IKE SA whose CHILD_SAs are all up deletes the one it replaces.
    fn finish_reauth(&mut self, sa: &mut IkeSa, now: Instant) {
        let Some(old_spi) = sa.reauth_of else {
            return;
        };
        if sa.phase != Phase::Established || !sa.to_start.is_empty() || sa.pending.is_some() {
            return;
        }
        sa.reauth_of = None;
        let Some(mut old) = self.sas.remove(&old_spi) else {
            return;
        };
        // Whatever the old one still had to start or delete is this one's now.
        sa.to_start.append(&mut old.to_start);
        sa.to_delete.append(&mut old.to_delete);
        let name = self.conns[sa.conn].spec.name.clone();
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!(
                "IKE_SA {name}[{:016x}] reauthenticated: now {:016x}_i {:016x}_r; deleting the old one",
                old.our_spi(),
                sa.spi_i,
                sa.spi_r
            ),
        );
        let _ = self.request_delete_ike(&mut old, now);
        self.sas.insert(old_spi, old);
    }

    fn start_all(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            self.install_traps(i);
        }
        for i in 0..self.conns.len() {
            let start = self.conns[i].spec.can_initiate()
                && self.conns[i]
                    .spec
                    .children
                    .iter()
                    .any(|c| c.start_action == StartAction::Start);
            if start && let Err(e) = self.initiate(i, false, now) {
                self.log(Level::Error, Subsystem::Config, e);
            }
        }
    }

    /// The trap policies of connection `index`'s children whose start action is `trap`.
    fn install_traps(&mut self, index: usize) {
        let conn = &self.conns[index];
        let Some(&remote) = conn.spec.remote_addrs.first() else {
            return;
        };
        let Some(local) = self.local_for(conn, remote, conn.spec.local_port) else {
            return;
        };
        let mut installs = Vec::new();
        for (c, child) in conn.spec.children.iter().enumerate() {
            // Every child stands behind its CHILD_SA with policies of its own, so that its
            // traffic never leaves in clear while it has none (before the first one, after a
            // dead peer or a DELETE): a trap — which negotiates it — for `trap` and `start`,
            // a discard for `none`.
            let action = match child.start_action {
                StartAction::Trap | StartAction::Start => PolicyAction::Trap,
                StartAction::None => PolicyAction::Discard,
            };
            let local_ts: Vec<_> = child
                .local_ts
                .iter()
                .map(|t| t.resolve(local.ip()))
                .collect();
            let remote_ts: Vec<_> = child.remote_ts.iter().map(|t| t.resolve(remote)).collect();
            let policies = crate::child::placeholder_policies(&local_ts, &remote_ts, action);
            installs.push((c, format!("{}/{}", conn.spec.name, child.name), policies));
        }
        for (c, name, policies) in installs {
            let id = TrapId(self.next_child);
            self.next_child += 1;
            self.traps.push((id, index, c));
            self.events
                .push_back(Event::InstallTrap { id, name, policies });
        }
    }

    /// Removes an IKE SA and everything it installed.
    fn destroy(&mut self, mut sa: IkeSa, why: &str) {
        let name = self.conns[sa.conn].spec.name.clone();
        for child in sa.children.drain(..) {
            self.spis_in.remove(&child.spi_in);
            self.events.push_back(Event::RemoveChild { id: child.id });
        }
        if let Some(p) = sa.pending.take() {
            self.spis_in.remove(&p.spi_in);
        }
        if sa.phase != Phase::Established && sa.phase != Phase::Deleting {
            self.counters.ike_failed += 1;
        }
        self.half_open.retain(|_, spi| *spi != sa.our_spi());
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!(
                "IKE_SA {name}[{:016x}] with {} gone: {why}",
                sa.our_spi(),
                sa.remote
            ),
        );
    }

    /// The IKE SA a message belongs to (and whether it is an IKE_SA_INIT request that
    /// starts a new one).
    fn dispatch(&mut self, bytes: &[u8], remote: SocketAddr, local: SocketAddr, now: Instant) {
        let msg = match wire::Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.counters.malformed += 1;
                self.log(
                    Level::Debug,
                    Subsystem::Net,
                    format!("{remote}: not an IKEv2 message ({e}), dropped"),
                );
                return;
            }
        };
        let response = msg.flags.response;
        // The sender's I flag: set when the sender is the original initiator, so this end's
        // SPI is the responder's.
        let ours = if msg.flags.initiator {
            msg.spi_r
        } else {
            msg.spi_i
        };
        if msg.exchange_type == ExchangeType::IkeSaInit && !response {
            if msg.spi_r != 0 {
                self.counters.dropped += 1;
                return;
            }
            if let Some(&spi) = self.half_open.get(&(remote, msg.spi_i)) {
                // A retransmission: the cached answer.
                if let Some(sa) = self.sas.get(&spi)
                    && let Incoming::Again(cached) = sa.responses.classify(0)
                    && sa.init.theirs == bytes
                {
                    let cached = cached.to_vec();
                    for m in cached {
                        self.events.push_back(Event::Send {
                            local,
                            remote,
                            message: m,
                        });
                    }
                }
                return;
            }
            self.respond_init(&msg, bytes, remote, local, now);
            return;
        }
        let Some(mut sa) = self.sas.remove(&ours) else {
            self.counters.dropped += 1;
            self.log(
                Level::Debug,
                Subsystem::Net,
                format!(
                    "{remote}: {:?} for an unknown IKE SA {ours:016x}, dropped",
                    msg.exchange_type
                ),
            );
            return;
        };
        // The peer's SPI must be the one this IKE SA knows (once known).
        let theirs_ok = if sa.initiator {
            sa.spi_i == msg.spi_i && (sa.spi_r == 0 || sa.spi_r == msg.spi_r)
        } else {
            sa.spi_i == msg.spi_i && sa.spi_r == msg.spi_r
        };
        if !theirs_ok || msg.flags.initiator == sa.initiator {
            self.counters.dropped += 1;
            self.sas.insert(ours, sa);
            return;
        }
        let keep = if response {
            self.handle_response(&mut sa, &msg, bytes, remote, local, now)
        } else {
            self.handle_request(&mut sa, &msg, bytes, remote, local, now)
        };
        match keep {
            Ok(()) => {
                self.sas.insert(sa.our_spi(), sa);
            }
            Err(why) => self.destroy(sa, &why),
        }
    }

    /// A response: only to this end's outstanding request.
    fn handle_response(
        &mut self,
        sa: &mut IkeSa,
        msg: &wire::Message,
        bytes: &[u8],
        remote: SocketAddr,
        local: SocketAddr,
        now: Instant,
    ) -> Result<(), String> {
        if !sa.requests.busy() || sa.requests.next_id() != msg.message_id.wrapping_add(1) {
            self.counters.dropped += 1;
            return Ok(());
        }
        if msg.exchange_type == ExchangeType::IkeSaInit {
            if sa.phase != Phase::InitSent {
                return Ok(());
            }
            sa.requests.answered(msg.message_id);
            return self.init_response(sa, msg, bytes, remote, now);
        }
        let body = match sa.open_datagram(bytes, msg.message_id, true, now) {
            Ok(fragment::Opened::Whole(b)) => {
                if wire::sk::locate(bytes).is_ok_and(|e| e.fragment.is_some()) {
                    self.counters.reassembled += 1;
                }
                *b
            }
            Ok(fragment::Opened::Kept) => return Ok(()),
            Err(e) => {
                self.counters.dropped += 1;
                self.log(
                    Level::Debug,
                    Subsystem::Encoding,
                    format!("{remote}: response refused: {e}"),
                );
                return Ok(());
            }
        };
        sa.requests.answered(msg.message_id);
        sa.last_heard = now;
        if sa.phase == Phase::Established {
            sa.remote = remote; // a NAT may have moved the peer
            sa.local = local;
        }
        let asked = sa.asked.take();
        match asked {
            Some(ikesa::Asked::Auth) => self.auth_response(sa, &body, now)?,
            Some(ikesa::Asked::CreateChild) => self.create_child_response(sa, &body, now)?,
            Some(ikesa::Asked::DeleteChild) => self.children_deleted(sa),
            Some(ikesa::Asked::Dpd) | None => {}
            Some(ikesa::Asked::Init) => {}
            Some(ikesa::Asked::RekeyIke) => self.rekey_ike_response(sa, &body, now)?,
            Some(ikesa::Asked::DeleteIke) => return Err("replaced by its rekeyed successor".into()),
        }
        self.start_queued(sa, now)
    }

    /// A request from the peer: new, retransmitted (the cached answer), or out of window.
    fn handle_request(
        &mut self,
        sa: &mut IkeSa,
        msg: &wire::Message,
        bytes: &[u8],
        remote: SocketAddr,
        local: SocketAddr,
        now: Instant,
    ) -> Result<(), String> {
        match sa.responses.classify(msg.message_id) {
            Incoming::Ignore => {
                self.counters.dropped += 1;
                return Ok(());
            }
            Incoming::Again(cached) => {
                // Only a request that authenticates gets the cached answer again (once per
                // retransmission: on its first fragment, if it came in fragments).
                let again = sa
                    .sk
                    .as_ref()
                    .and_then(|sk| sk.incoming.open_any(bytes).ok())
                    .is_some_and(|(_, _, fragment)| fragment.is_none_or(|(n, _)| n == 1));
                if again {
                    for m in cached.iter().cloned() {
                        self.send(sa, m);
                    }
                }
                return Ok(());
            }
            Incoming::New => {}
        }
        let body = match sa.open_datagram(bytes, msg.message_id, false, now) {
            Ok(fragment::Opened::Whole(b)) => {
                if wire::sk::locate(bytes).is_ok_and(|e| e.fragment.is_some()) {
                    self.counters.reassembled += 1;
                }
                *b
            }
            Ok(fragment::Opened::Kept) => return Ok(()),
            Err(e) => {
                self.counters.dropped += 1;
                self.log(
                    Level::Debug,
                    Subsystem::Encoding,
                    format!("{remote}: request refused: {e}"),
                );
                return Ok(());
            }
        };
        sa.last_heard = now;
        if sa.phase == Phase::Established {
            sa.remote = remote;
            sa.local = local;
        }
        match (msg.exchange_type, sa.phase) {
            (ExchangeType::IkeAuth, Phase::InitAnswered) => {
                // The peer may have moved to port 4500 for IKE_AUTH (NAT traversal).
                sa.remote = remote;
                sa.local = local;
                self.auth_request(sa, msg.message_id, &body, now)
            }
            (ExchangeType::Informational, Phase::Established | Phase::Deleting) => {
                self.informational_request(sa, msg.message_id, &body, now)
            }
            (ExchangeType::CreateChildSa, Phase::Established) => {
                self.create_child_request(sa, msg.message_id, &body, now)
            }
            (exchange, phase) => {
                self.log(
                    Level::Debug,
                    Subsystem::Ike,
                    format!("{remote}: {exchange:?} request in state {phase:?} ignored"),
                );
                Ok(())
            }
        }
    }

    /// The earliest time [`tick_sa`](Self::tick_sa) has something to do for `sa` by the
    /// clock alone.
    fn sa_deadline(&self, sa: &IkeSa) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(t) = sa.requests.deadline() {
            at(t);
        }
        if sa.phase == Phase::InitAnswered {
            at(sa.created + HALF_OPEN_TIMEOUT);
        }
        if sa.phase == Phase::Established && sa.nat_here {
            at(sa.last_sent + KEEPALIVE_INTERVAL);
        }
        if sa.phase == Phase::Established && !sa.requests.busy() {
            if let Some(t) = sa.rekey_at {
                at(t);
            }
            for (_, t) in &sa.to_delete {
                at(*t);
            }
            for c in sa.children.iter().filter(|c| !c.rekeyed) {
                if let Some(t) = c.rekey_at {
                    at(t);
                }
            }
        }
        let dpd = self.conns[sa.conn].spec.dpd_delay;
        if sa.phase == Phase::Established && !dpd.is_zero() && !sa.requests.busy() {
            at(sa.last_heard + dpd);
        }
        next
    }

    /// Whether [`tick_sa`](Self::tick_sa) may have anything to do for `sa` at `now`: false
    /// only when every one of its steps would pass it by — no request to send again or
    /// give up, no half-open SA to time out, nothing queued, due or being replaced, no
    /// keepalive and no liveness check due. It errs on the side of true (anything queued
    /// or under way counts, due or not). A half-open SA (this end answered IKE_SA_INIT) has
    /// only its timeout: everything else of `tick_sa` needs an established one.
    fn tick_due(&self, sa: &IkeSa, now: Instant) -> bool {
        if sa.requests.deadline().is_some_and(|t| now >= t) {
            return true;
        }
        if sa.phase == Phase::InitAnswered {
            return now.duration_since(sa.created) > HALF_OPEN_TIMEOUT;
        }
        if sa.reauth_by.is_some()
            || sa.reauth_of.is_some()
            || !sa.to_start.is_empty()
            || !sa.to_delete.is_empty()
        {
            return true;
        }
        if sa.phase != Phase::Established {
            return false;
        }
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(sa.reauth_at)
            || due(sa.rekey_at)
            || sa.children.iter().any(|c| !c.rekeyed && due(c.rekey_at))
        {
            return true;
        }
        if sa.nat_here && now.duration_since(sa.last_sent) >= KEEPALIVE_INTERVAL {
            return true;
        }
        let dpd = self.conns[sa.conn].spec.dpd_delay;
        !dpd.is_zero() && !sa.requests.busy() && now.duration_since(sa.last_heard) >= dpd
    }

    fn tick_sa(&mut self, sa: &mut IkeSa, now: Instant) -> Result<(), String> {
        match sa.requests.poll(now) {
            Due::Idle => {}
            Due::Resend(datagrams) => {
                let datagrams = datagrams.to_vec();
                self.counters.retransmissions += 1;
                self.log(
                    Level::Debug,
                    Subsystem::Ike,
                    format!("retransmitting to {}", sa.remote),
                );
                for m in datagrams {
                    self.send(sa, m);
                }
            }
            Due::GiveUp { .. } => {
                return Err(format!("{} does not answer", sa.remote));
            }
        }
        if sa.phase == Phase::InitAnswered && now.duration_since(sa.created) > HALF_OPEN_TIMEOUT {
            return Err("no IKE_AUTH came".into());
        }
        self.start_queued(sa, now)?;
        if sa.phase == Phase::Established
            && sa.reauth_by.is_none()
            && sa.reauth_at.is_some_and(|t| t <= now)
        {
            sa.reauth_at = None;
            if let Err(e) = self.reauthenticate(sa, now) {
                self.log(
                    Level::Error,
                    Subsystem::Ike,
                    format!("reauthenticating {}: {e}", self.conns[sa.conn].spec.name),
                );
            }
        }
        self.finish_reauth(sa, now);
        if let Some(new) = sa.reauth_by
            && !self.sas.contains_key(&new)
        {
            // The new IKE SA failed: this one stays, and tries again later.
            sa.reauth_by = None;
            sa.reauth_at = Some(now + Duration::from_secs(30));
        }
        if sa.phase == Phase::Established
            && sa.nat_here
            && now.duration_since(sa.last_sent) >= KEEPALIVE_INTERVAL
        {
            sa.last_sent = now;
            self.events.push_back(Event::Keepalive {
                local: sa.local,
                remote: sa.remote,
            });
        }
        let dpd = self.conns[sa.conn].spec.dpd_delay;
        if sa.phase == Phase::Established
            && !dpd.is_zero()
            && !sa.requests.busy()
            && now.duration_since(sa.last_heard) >= dpd
        {
            self.send_request(
                sa,
                ExchangeType::Informational,
                &body::Body::default(),
                ikesa::Asked::Dpd,
                now,
            )?;
        }
        Ok(())
    }

    /// The next child still to start, when no exchange is under way.
    fn start_queued(&mut self, sa: &mut IkeSa, now: Instant) -> Result<(), String> {
        if sa.phase != Phase::Established || sa.requests.busy() {
            return Ok(());
        }
        if sa.to_delete.iter().any(|(_, at)| *at <= now) {
            return self.delete_children(sa, now);
        }
        if !sa.to_start.is_empty() {
            let child = sa.to_start.remove(0);
            return self.create_child(sa, child, now);
        }
        // The IKE SA due for renewal (its CHILD_SAs move over).
        if sa.reauth_by.is_some() {
            // Being replaced by a new IKE SA: no renewals of its own.
            return Ok(());
        }
        if sa.pending.is_none()
            && sa.rekeying.is_none()
            && sa.renewed_by_peer.is_none()
            && sa.rekey_at.is_some_and(|t| t <= now)
        {
            sa.rekey_at = None;
            return self.rekey_ike(sa, now);
        }
        // A CHILD_SA due for renewal (one at a time).
        if sa.pending.is_none()
            && let Some(i) = sa
                .children
                .iter()
                .position(|c| !c.rekeyed && c.rekey_at.is_some_and(|t| t <= now))
        {
            sa.children[i].rekeyed = true;
            let old = sa.children[i].clone();
            if let Err(e) = self.rekey_child(sa, &old, now) {
                self.log(
                    Level::Error,
                    Subsystem::Child,
                    format!("rekeying CHILD_SA {:08x}_i: {e}", old.spi_in),
                );
                if let Some(c) = sa.children.iter_mut().find(|c| c.id == old.id) {
                    c.rekeyed = false;
                    c.rekey_at = Some(now + Duration::from_secs(10));
                }
            }
        }
        Ok(())
    }

    /// Sends a DELETE for the rekeyed CHILD_SAs waiting to go.
    fn delete_children(&mut self, sa: &mut IkeSa, now: Instant) -> Result<(), String> {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut sa.to_delete)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        sa.to_delete = later;
        let ids: Vec<ChildId> = due.into_iter().map(|(id, _)| id).collect();
        let spis: Vec<Vec<u8>> = ids
            .iter()
            .filter_map(|id| sa.children.iter().find(|c| c.id == *id))
            .map(|c| c.spi_in.to_be_bytes().to_vec())
            .collect();
        if spis.is_empty() {
            return Ok(());
        }
        let mut body = body::Body::default();
        body.deletes.push(body::Delete { protocol: 3, spis });
        sa.deleting = ids;
        self.send_request(
            sa,
            ExchangeType::Informational,
            &body,
            ikesa::Asked::DeleteChild,
            now,
        )
    }

    /// The peer answered the DELETE of rekeyed CHILD_SAs: they go here too.
    fn children_deleted(&mut self, sa: &mut IkeSa) {
        for id in std::mem::take(&mut sa.deleting) {
            if let Some(pos) = sa.children.iter().position(|c| c.id == id) {
                let child = sa.children.remove(pos);
                self.spis_in.remove(&child.spi_in);
                self.log(
                    Level::Info,
                    Subsystem::Child,
                    format!(
                        "CHILD_SA {:08x}_i {:08x}_o deleted (rekeyed)",
                        child.spi_in, child.spi_out
                    ),
                );
                self.events.push_back(Event::RemoveChild { id: child.id });
            }
        }
    }

    /// Sends an encrypted request of this IKE SA.
    fn send_request(
        &mut self,
        sa: &mut IkeSa,
        exchange: ExchangeType,
        body: &body::Body,
        asked: ikesa::Asked,
        now: Instant,
    ) -> Result<(), String> {
        let id = sa.requests.claim().map_err(|e| e.to_string())?;
        let datagrams = sa.seal_datagrams(exchange, id, false, body)?;
        self.note_fragments(exchange, false, datagrams.len());
        sa.requests.sent(id, datagrams.clone(), now);
        sa.asked = Some(asked);
        sa.last_sent = now;
        for d in datagrams {
            self.send(sa, d);
        }
        Ok(())
    }

    /// Answers request `id` with an encrypted response (cached for retransmissions).
    fn send_response(
        &mut self,
        sa: &mut IkeSa,
        exchange: ExchangeType,
        id: u32,
        body: &body::Body,
    ) -> Result<(), String> {
        let datagrams = sa.seal_datagrams(exchange, id, true, body)?;
        self.note_fragments(exchange, true, datagrams.len());
        sa.responses.answered(id, datagrams.clone());
        for d in datagrams {
            self.send(sa, d);
        }
        Ok(())
    }

    /// A message that went in `count` fragments is counted (and logged).
    fn note_fragments(&mut self, exchange: ExchangeType, response: bool, count: usize) {
        if count > 1 {
            self.counters.fragmented += 1;
            self.log(
                Level::Debug,
                Subsystem::Encoding,
                format!(
                    "{exchange:?} {} split into {count} fragments",
                    if response { "response" } else { "request" }
                ),
            );
        }
    }

    /// Asks the peer to delete `sa` (a request retransmitted until answered; the IKE SA
    /// goes with the answer): after a rekey, a collision it lost, a reauthentication.
    fn request_delete_ike(&mut self, sa: &mut IkeSa, now: Instant) -> Result<(), String> {
        sa.phase = Phase::Deleting;
        self.send_request(
            sa,
            ExchangeType::Informational,
            &body::Body::delete_ike(),
            ikesa::Asked::DeleteIke,
            now,
        )
    }

    /// Tells the peer the IKE SA goes (a DELETE, not retransmitted: this end's SAs go now,
    /// the answer is not awaited to stop sending on them).
    fn send_delete_ike(&mut self, sa: &mut IkeSa) {
        let body = body::Body::delete_ike();
        sa.requests.abandon();
        if let Ok(id) = sa.requests.claim()
            && let Ok(datagrams) = sa.seal_datagrams(ExchangeType::Informational, id, false, &body)
        {
            for d in datagrams {
                self.send(sa, d);
            }
        }
        sa.phase = Phase::Deleting;
    }

    fn list(&self, now: Instant) -> String {
        let mut out = String::new();
        for (i, conn) in self.conns.iter().enumerate() {
            let c = &conn.spec;
            out.push_str(&format!(
                "{}: {} ↔ {}, {} auth\n",
                c.name,
                if c.local_addrs.is_empty() {
                    "%any".to_string()
                } else {
                    join(&c.local_addrs)
                },
                if c.remote_addrs.is_empty() {
                    "%any".to_string()
                } else {
                    join(&c.remote_addrs)
                },
                match c.local_auth {
                    LocalAuth::Psk => "psk",
                    LocalAuth::Pubkey { .. } => "pubkey",
                }
            ));
            let mut sas: Vec<&IkeSa> = self.sas.values().filter(|s| s.conn == i).collect();
            sas.sort_by_key(|s| s.created);
            for sa in sas {
                out.push_str(&format!(
                    "  IKE_SA {:016x}_i {:016x}_r {}, {} → {}{}, {}, {}, established {}s ago, {}, {} rekeys before it{}\n",
                    sa.spi_i,
                    sa.spi_r,
                    sa.phase.name(),
                    sa.local,
                    sa.remote,
                    if sa.nat() { " (NAT-T)" } else { "" },
                    if sa.initiator {
                        "initiator"
                    } else {
                        "responder"
                    },
                    sa.chosen
                        .as_ref()
                        .map(exchanges::describe)
                        .unwrap_or_else(|| "-".into()),
                    sa.established
                        .map(|t| now.duration_since(t).as_secs())
                        .unwrap_or(0),
                    match sa.rekey_at {
                        Some(t) => format!("rekey in {}s", t.saturating_duration_since(now).as_secs()),
                        None => "no rekeying".into(),
                    },
                    sa.generation,
                    last_rekey(sa.renewed.as_deref(), sa.established, now),
                ));
                if let (Some(l), Some(r)) = (&sa.local_id, &sa.peer_id) {
                    out.push_str(&format!("    local '{l}' remote '{r}'\n"));
                }
                for child in &sa.children {
                    let spec = &c.children[child.child];
                    let renewal = match (child.rekeyed, child.rekey_at) {
                        (true, _) => "rekeyed, going".to_string(),
                        (false, Some(t)) => {
                            format!("rekey in {}s", t.saturating_duration_since(now).as_secs())
                        }
                        (false, None) => "no rekeying".to_string(),
                    };
                    out.push_str(&format!(
                        "    CHILD_SA {} in {:08x} out {:08x}{}, {}, installed {}s ago, {renewal}, {} rekeys before it{}\n      {} === {}\n",
                        spec.name,
                        child.spi_in,
                        child.spi_out,
                        if child.encap { " (ESP in UDP)" } else { "" },
                        child.algorithms,
                        now.duration_since(child.installed).as_secs(),
                        child.generation,
                        last_rekey(child.renewed.as_deref(), Some(child.installed), now),
                        join(&child.local_ts),
                        join(&child.remote_ts),
                    ));
                }
            }
        }
        if out.is_empty() {
            out.push_str("no connections\n");
        }
        let c = self.counters;
        out.push_str(&format!(
            "{} IKE SAs ({} half-open); {} established and {} failed so far, {} cookies asked for, {} malformed and {} other messages dropped, {} requests retransmitted, {} messages sent and {} received in fragments\n",
            self.sas.len(),
            self.half_open.len(),
            c.ike_established,
            c.ike_failed,
            c.cookies_sent,
            c.malformed,
            c.dropped,
            c.retransmissions,
            c.fragmented,
            c.reassembled
        ));
        out
    }
}

/// ", the last Ns ago by ..." for an SA a rekey made (at `at`).
fn last_rekey(renewed: Option<&str>, at: Option<Instant>, now: Instant) -> String {
    match (renewed, at) {
        (Some(how), Some(at)) => format!(
            ", the last {}s ago {how}",
            now.saturating_duration_since(at).as_secs()
        ),
        _ => String::new(),
    }
}

fn join<T: core::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl KeyManager for Daemon {
    fn receive(&mut self, message: &[u8], remote: SocketAddr, local: SocketAddr, now: Instant) {
        self.quiet_until = None;
        self.dispatch(message, remote, local, now);
    }

    fn tick(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            self.start_all(now);
        }
        // Only the IKE SAs with something due are taken out and run: a hub with thousands
        // of them runs its timers on every wake-up. One that becomes due while the others
        // run (a reauthentication finishing deletes the SA it replaces) is run next time.
        let mut due = Vec::new();
        let mut quiet: Option<Instant> = None;
        for (spi, sa) in &self.sas {
            if self.tick_due(sa, now) {
                due.push(*spi);
            } else if due.is_empty()
                && let Some(t) = self.sa_deadline(sa)
            {
                // Kept only while none is due (below): once one is, no need to look.
                quiet = Some(quiet.map_or(t, |q| q.min(t)));
            }
        }
        // With none run, every IKE SA is as the pass found it: the next deadline is known
        // until something else changes them.
        self.quiet_until = due.is_empty().then_some(quiet);
        for spi in due {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            match self.tick_sa(&mut sa, now) {
                Ok(()) => {
                    self.sas.insert(spi, sa);
                }
                Err(why) => self.destroy(sa, &why),
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        if !self.started {
            return Some(self.epoch);
        }
        if let Some(quiet) = self.quiet_until {
            return quiet;
        }
        self.sas
            .values()
            .filter_map(|sa| self.sa_deadline(sa))
            .min()
    }

    fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn install_failed(&mut self, id: ChildId, why: &str, now: Instant) {
        self.quiet_until = None;
        let found = self
            .sas
            .iter()
            .find(|(_, sa)| sa.children.iter().any(|c| c.id == id))
            .map(|(spi, _)| *spi);
        let Some(spi) = found else { return };
        let mut sa = self.sas.remove(&spi).expect("found");
        let pos = sa.children.iter().position(|c| c.id == id).expect("found");
        let child = sa.children.remove(pos);
        self.spis_in.remove(&child.spi_in);
        self.log(
            Level::Error,
            Subsystem::Child,
            format!(
                "CHILD_SA {:08x} could not be installed: {why}; deleting it",
                child.spi_in
            ),
        );
        let mut body = body::Body::default();
        body.deletes.push(body::Delete {
            protocol: 3,
            spis: vec![child.spi_in.to_be_bytes().to_vec()],
        });
        if !sa.requests.busy() {
            let _ = self.send_request(
                &mut sa,
                ExchangeType::Informational,
                &body,
                ikesa::Asked::DeleteChild,
                now,
            );
        }
        self.sas.insert(spi, sa);
    }

    fn lifetime_reached(&mut self, id: ChildId, hard: bool, cause: LifetimeCause, now: Instant) {
        self.quiet_until = None;
        let Some(sa) = self
            .sas
            .values_mut()
            .find(|sa| sa.children.iter().any(|c| c.id == id))
        else {
            return;
        };
        let child = sa
            .children
            .iter_mut()
            .find(|c| c.id == id)
            .expect("found above");
        if child.rekeyed {
            // Renewed already (or going): its successor carries the traffic.
            return;
        }
        let (spi_in, spi_out) = (child.spi_in, child.spi_out);
        if hard {
            child.rekeyed = true;
            sa.to_delete.push((id, now));
            self.log(
                Level::Warning,
                Subsystem::Child,
                format!(
                    "CHILD_SA {spi_in:08x}_i {spi_out:08x}_o reached its hard lifetime ({}) before it was renewed; deleting it",
                    cause.name()
                ),
            );
        } else {
            child.rekey_at = Some(now);
            child.rekey_cause = cause.name();
            self.log(
                Level::Info,
                Subsystem::Child,
                format!(
                    "CHILD_SA {spi_in:08x}_i {spi_out:08x}_o crossed its soft lifetime ({}): renewing it",
                    cause.name()
                ),
            );
        }
    }

    fn wireshark_table(&self) -> String {
        let mut out = String::new();
        for sa in self.sas.values().filter(|s| s.phase == Phase::Established) {
            let (Some(keys), Some(chosen)) = (&sa.keys, &sa.chosen) else {
                continue;
            };
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let (encr, bits) = chosen.encryption;
            let encryption = match (encr, bits) {
                (wire::EncrId::AesGcm16, Some(128)) => "AES-GCM-128 with 16 octet ICV [RFC5282]",
                (wire::EncrId::AesGcm16, Some(256)) => "AES-GCM-256 with 16 octet ICV [RFC5282]",
                (wire::EncrId::AesCbc, Some(128)) => "AES-CBC-128 [RFC3602]",
                (wire::EncrId::AesCbc, Some(256)) => "AES-CBC-256 [RFC3602]",
                _ => continue,
            };
            let integrity = match chosen.integrity {
                None => "NONE [RFC4306]",
                Some(wire::IntegId::HmacSha256_128) => "HMAC_SHA2_256_128 [RFC4868]",
                Some(wire::IntegId::HmacSha384_192) => "HMAC_SHA2_384_192 [RFC4868]",
                Some(wire::IntegId::HmacSha512_256) => "HMAC_SHA2_512_256 [RFC4868]",
                Some(_) => continue,
            };
            out.push_str(&format!(
                "{:016x},{:016x},{},{},\"{encryption}\",{},{},\"{integrity}\"\n",
                sa.spi_i,
                sa.spi_r,
                hex(keys.sk_ei.as_ref()),
                hex(keys.sk_er.as_ref()),
                hex(keys.sk_ai.as_ref()),
                hex(keys.sk_ar.as_ref()),
            ));
        }
        out
    }

    fn acquire(&mut self, id: TrapId, now: Instant) {
        self.quiet_until = None;
        let Some(&(_, conn, child)) = self.traps.iter().find(|(t, ..)| *t == id) else {
            return;
        };
        let name = format!(
            "{}/{}",
            self.conns[conn].spec.name, self.conns[conn].spec.children[child].name
        );
        // An IKE SA of the connection already there or coming: the child joins it (unless
        // it is installed or asked for already).
        let existing = self
            .sas
            .iter()
            .find(|(_, sa)| sa.conn == conn && sa.initiator && sa.phase != Phase::Deleting)
            .map(|(spi, _)| *spi);
        if let Some(spi) = existing {
            let sa = self.sas.get_mut(&spi).expect("found");
            let busy = sa.children.iter().any(|c| c.child == child)
                || sa.pending.as_ref().is_some_and(|p| p.child == child)
                || sa.to_start.contains(&child);
            if !busy {
                sa.to_start.push(child);
                self.log(
                    Level::Info,
                    Subsystem::Child,
                    format!("acquire for {name}: negotiating its CHILD_SA"),
                );
                let mut sa = self.sas.remove(&spi).expect("found");
                let result = self.start_queued(&mut sa, now);
                self.sas.insert(spi, sa);
                if let Err(e) = result {
                    self.log(Level::Error, Subsystem::Child, format!("{name}: {e}"));
                }
            }
            return;
        }
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!("acquire for {name}: initiating its IKE SA"),
        );
        if let Err(e) = self.initiate_children(conn, vec![child], now) {
            self.log(Level::Error, Subsystem::Config, e);
        }
    }

    fn close_all(&mut self, _now: Instant) {
        self.quiet_until = None;
        let spis: Vec<u64> = self.sas.keys().copied().collect();
        for spi in spis {
            let mut sa = self.sas.remove(&spi).expect("listed");
            if sa.phase == Phase::Established {
                self.send_delete_ike(&mut sa);
            }
            self.destroy(sa, "espo stops");
        }
    }

    fn request(&mut self, request: Request, now: Instant) -> Result<String, String> {
        self.quiet_until = None;
        match request {
            Request::List => Ok(self.list(now)),
            Request::Up(name) => {
                let index = self
                    .conns
                    .iter()
                    .position(|c| c.spec.name == name)
                    .ok_or_else(|| format!("no connection named {name}"))?;
                self.initiate(index, true, now)?;
                Ok(format!("initiating {name}\n"))
            }
            Request::Down(name) => {
                let index = self
                    .conns
                    .iter()
                    .position(|c| c.spec.name == name)
                    .ok_or_else(|| format!("no connection named {name}"))?;
                let spis: Vec<u64> = self
                    .sas
                    .iter()
                    .filter(|(_, sa)| sa.conn == index)
                    .map(|(s, _)| *s)
                    .collect();
                if spis.is_empty() {
                    return Err(format!("connection {name} has no IKE SA"));
                }
                for spi in &spis {
                    let mut sa = self.sas.remove(spi).expect("listed");
                    if sa.phase == Phase::Established {
                        self.send_delete_ike(&mut sa);
                    }
                    self.destroy(sa, "closed by the operator");
                }
                Ok(format!("closed {} IKE SA(s) of {name}\n", spis.len()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
