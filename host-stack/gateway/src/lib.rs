//! The gateway behind `espo run`: a TUN device on the inside, the engine in the middle,
//! the outside interface beyond it.
//!
//! ```text
//!   inside hosts ── kernel ── TUN (espo0) ──► outbound thread ──► raw socket ──► outside
//!                                 ▲            (PMTU, encapsulate)
//!                                 └────────── inbound thread ◄── ESP/AH/UDP-4500 sockets
//!                                             (decapsulate, policy check)
//! ```
//!
//! One file per concern: [`tun`] (the device, with offloads: espo-ipsec's `gso` segments
//! the super-packets it hands over, its `gro` coalesces the segments written to it),
//! [`netlink`] (its link state, addresses and
//! routes), [`sockets`] (the software engine's outside), [`pmtu`] and [`icmp`] (packets
//! that do not fit), [`outer_pmtu`] (the path MTU beyond the outside interface, learnt
//! from ICMP errors about the tunnel packets), [`threads`] (the datapath and shutdown),
//! [`status`] (`espo status`),
//! and [`path`] — the seams: the per-direction engine interface ([`path::OutboundEngine`],
//! [`path::InboundEngine`]: a batch in, per packet an output or a counted drop) and the
//! outside ([`path::OutsideTx`], [`path::OutsideRx`]). The software engine and the kernel
//! sockets implement them here; the offload engine over the card model and the card's
//! receive queue implement them in [`card`], whose port is an AF_PACKET socket on an
//! interface the card owns, with ARP/ND answered and the next hop resolved by espo.
#![forbid(unsafe_code)]

pub mod card;
pub mod control;
pub mod guard;
pub mod icmp;
pub mod ike;
pub mod keeper;
pub mod live;
pub mod mailbox;
pub mod netlink;
pub mod outer_pmtu;
pub mod path;
pub mod pmtu;
pub mod sockets;
pub mod software;
pub mod state_dir;
pub mod status;
pub mod threads;
pub mod tun;
pub mod wireshark;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use espo_config::control::Request;
use espo_config::{Config, EngineKind, GatewayConfig};
use espo_ike::connection::NAT_T_PORT;
use espo_ike::daemon::{KeyManager, Request as IkeRequest};
use espo_ipsec::engine::{EngineError, Inbound, Outbound, SoftwareEngine};
use espo_ipsec::sa::{SendShare, SeqReservation};
use espo_ipsec::selector::Cidr;
use espo_ipsec::spec::{Direction, PolicyAction, SaProtocol, SaSpec};
use espo_ipsec::wire::IpProtocol;
use icmp::ErrorSource;
use keeper::{Keeper, Start};
use live::{CatalogSa, Engine, Live, Reply};
use mailbox::Mailbox;
use netlink::{InsideSetup, NetlinkError};
use outer_pmtu::PathMtus;
use outer_pmtu::engine::{Learning, LearningRx};
use outer_pmtu::sockets::IcmpRx;
use path::{InboundEngine, OutboundEngine};
use sockets::{OuterRx, OuterTx, RxPlan, SocketError};
use software::{SoftwareHalf, SoftwareLive};
use state_dir::{StateDir, StateError};
use status::{DirectionStats, GatewayInfo, Published, StatusSocket};
use threads::{InboundCtx, OutboundCtx, Shutdown};

/// The largest tunnel overhead of a negotiated CHILD_SA: an IPv6 outer header (40), UDP
/// encapsulation (8), the ESP header (8), a 16-byte IV, up to 17 bytes of padding, pad
/// length and next header, and a 32-byte ICV (HMAC-SHA-512-256).
pub const NEGOTIATED_MAX_OVERHEAD: usize = 40 + 8 + 8 + 16 + 17 + 32;

/// Separates the ESP table from the IKEv2 table in the answer to `wireshark`.
pub const WIRESHARK_IKE_MARK: &str = "--- ikev2_decryption_table\n";

/// Why the gateway could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the configuration has no [gateway] section (espo run needs one)")]
    NoGatewaySection,
    #[error(
        "[gateway] port: the outside interface is needed (the software engine binds its sockets to it; the card model, and a served card espo bridges, attach their port to it)"
    )]
    NoOutsideInterface,
    /// Key management could not start: a connection's files, addresses or sockets.
    #[error("key management: {0}")]
    Connection(String),
    #[error(transparent)]
    Card(#[from] card::SetupError),
    #[error(transparent)]
    Guard(#[from] guard::GuardError),
    #[error("building the software engine failed")]
    Engine(#[from] EngineError),
    #[error("creating TUN device `{name}` failed")]
    CreateTun {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("opening the status socket {} failed", path.display())]
    StatusSocket {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("installing the SIGINT/SIGTERM handlers failed")]
    Signals(#[source] std::io::Error),
    #[error("[gateway] state_dir: {0}")]
    State(#[from] StateError),
    #[error(
        "sa {spi:#010x} (inbound): its replay state cannot be read, so what it accepted before \
         cannot be refused again; fix or move away the file named below to start it afresh"
    )]
    InboundState {
        spi: u32,
        #[source]
        source: StateError,
    },
    #[error("creating the datapath's change queues failed")]
    Mailbox(#[source] std::io::Error),
    #[error("a datapath thread failed")]
    Thread,
}

/// What the gateway did, returned when it stops.
#[derive(Debug, Clone)]
pub struct Report {
    /// The final `espo status` text.
    pub status: String,
    pub outbound: DirectionStats,
    pub inbound: DirectionStats,
    /// Why the gateway stopped when no signal asked it to (the TUN device failed).
    pub failure: Option<String>,
}

/// Where each outbound policy's traffic must be routed: into the TUN device.
pub fn routed_prefixes(config: &Config) -> Vec<Cidr> {
    let mut out: Vec<Cidr> = Vec::new();
    for p in config.policies.iter().filter(|p| p.dir == Direction::Out) {
        if !out.contains(&p.dst) {
            out.push(p.dst);
        }
    }
    out
}

/// The sockets the inbound SAs need: ESP/AH raw sockets per family, UDP per endpoint/port;
/// and, so that SAs added while espo runs can be received too, ESP and AH on every local
/// tunnel endpoint (`[gateway] local` and the configured SAs' local addresses).
pub fn rx_plan(config: &Config) -> RxPlan {
    let mut plan = configured_rx_plan(config);
    let gw_local = config.gateway.as_ref().and_then(|g| g.local);
    let endpoints = local_endpoints(config);
    let locals = config
        .sas
        .iter()
        .flat_map(|s| [s.src, s.dst])
        .chain(gw_local)
        .filter(|a| endpoints.contains(a));
    for local in locals {
        match local {
            IpAddr::V4(_) => {
                plan.esp_v4 = true;
                plan.ah_v4 = true;
            }
            IpAddr::V6(v6) => {
                for p in [IpProtocol::Esp, IpProtocol::Ah] {
                    if !plan.raw_v6.contains(&(p, v6)) {
                        plan.raw_v6.push((p, v6));
                    }
                }
            }
        }
    }
    plan
}

/// This gateway's tunnel endpoints: `[gateway] local`, the source of every SA an outbound
/// policy names and the destination of every SA an inbound one names — found in one pass
/// (a hub names thousands of SAs).
fn local_endpoints(config: &Config) -> HashSet<IpAddr> {
    let by_spi = sas_by_spi(&config.sas);
    let mut out: HashSet<IpAddr> = config
        .gateway
        .as_ref()
        .and_then(|g| g.local)
        .into_iter()
        .collect();
    for p in &config.policies {
        for sa in p.sa.iter().filter_map(|spi| by_spi.get(spi)) {
            out.insert(match p.dir {
                Direction::Out => sa.src,
                Direction::In => sa.dst,
            });
        }
    }
    out
}

/// SAs by SPI, the first of each as `Config::sa` finds it: for the passes over a hub's
/// thousands of SAs that would otherwise search them for each policy.
pub(crate) fn sas_by_spi<'a>(
    sas: impl IntoIterator<Item = &'a SaSpec>,
) -> HashMap<u32, &'a SaSpec> {
    let mut by_spi = HashMap::new();
    for sa in sas {
        by_spi.entry(sa.spi).or_insert(sa);
    }
    by_spi
}

/// The sockets the configured inbound SAs need.
fn configured_rx_plan(config: &Config) -> RxPlan {
    let inbound = |spi: u32| {
        config.policies.iter().any(|p| {
            p.dir == Direction::In && p.action == PolicyAction::Protect && p.sa.contains(&spi)
        })
    };
    let mut plan = RxPlan::default();
    for sa in config.sas.iter().filter(|s| inbound(s.spi)) {
        if let Some(u) = sa.udp_encap {
            if !plan.udp.contains(&(sa.dst, u.dst_port)) {
                plan.udp.push((sa.dst, u.dst_port));
            }
            continue;
        }
        let protocol = match sa.protocol {
            SaProtocol::Esp => IpProtocol::Esp,
            SaProtocol::Ah => IpProtocol::Ah,
        };
        match sa.dst {
            IpAddr::V4(_) if protocol == IpProtocol::Esp => plan.esp_v4 = true,
            IpAddr::V4(_) => plan.ah_v4 = true,
            IpAddr::V6(local) => {
                if !plan.raw_v6.contains(&(protocol, local)) {
                    plan.raw_v6.push((protocol, local));
                }
            }
        }
    }
    plan
}

/// Where espo's ICMP errors come from: the TUN's addresses, the local endpoint, the
/// outbound SAs' sources.
fn icmp_source(config: &Config, gw: &GatewayConfig) -> ErrorSource {
    let tun = gw.tun_addresses.iter().map(|a| a.addr);
    let local = gw.local.into_iter();
    let sources = config.sas.iter().map(|s| s.src);
    ErrorSource::from_candidates(tun.chain(local).chain(sources))
}

/// Runs the gateway until SIGINT or SIGTERM; `ready` is called once everything is set up.
pub fn run(config: &Config, ready: impl FnOnce(&GatewayInfo)) -> Result<Report, GatewayError> {
    let gw = config
        .gateway
        .as_ref()
        .ok_or(GatewayError::NoGatewaySection)?;
    match config.device.engine {
        EngineKind::Software => {}
        // The card: the model in-process, served by another process, or on the bus.
        EngineKind::Model | EngineKind::VfioUser | EngineKind::Vfio => {
            return card::run(config, gw, ready);
        }
    }
    let outside = gw.port.clone().ok_or(GatewayError::NoOutsideInterface)?;
    let mut plan = rx_plan(config);
    // Key management: IKE on port 4500 arrives on the datapath's socket (with ESP in UDP).
    let ike_locals = if config.connections.is_empty() {
        Vec::new()
    } else {
        ike::setup::local_addresses(config, gw)?
    };
    for ip in &ike_locals {
        if !plan.udp.contains(&(*ip, NAT_T_PORT)) {
            plan.udp.push((*ip, NAT_T_PORT));
        }
    }
    let mut rx = OuterRx::open(&outside, &plan)?;
    let tx = OuterTx::open(&outside)?;
    let tx = if gw.udp_gso {
        rx.enable_udp_gro();
        tx.with_udp(&rx)
    } else {
        tx
    };
    // Key management sends through the datapath's port-4500 sockets.
    let mut ike_4500: Vec<(IpAddr, std::net::UdpSocket)> = ike_locals
        .iter()
        .filter_map(|ip| rx.udp_socket(*ip, NAT_T_PORT).map(|s| (*ip, s)))
        .collect();
    // ICMP errors about the tunnel packets, heard on raw ICMP sockets (outer_pmtu).
    let interface_mtu = netlink::Netlink::open()?.mtu(netlink::interface_index(&outside)?)?;
    let path_mtus = PathMtus::new(&config.sas, &config.policies, interface_mtu as usize);
    let icmp = IcmpRx::open(&outside, path_mtus.families())?;
    let rx = LearningRx::new(&rx, &icmp, &path_mtus);
    // The state directory once the outside is known to be there.
    let started = Instant::now();
    let keeper = Mutex::new(Keeper::new(StateDir::open(&gw.state_dir)?));
    let workers = outbound_workers(gw);
    let (outbound_halves, mut inbound_half, catalog) =
        start_software(config, &keeper, started, workers)?;
    let (inbox, key_management) = if ike_locals.is_empty() {
        (None, None)
    } else {
        let (inbox, receiver) = ike::inbox::channel(ike::inbox::INBOX_CAPACITY)
            .map_err(|e| GatewayError::Connection(format!("creating the IKE inbox failed: {e}")))?;
        inbound_half.set_ike(true);
        inbound_half.add_encap_port(NAT_T_PORT);
        let sockets = ike::setup::sockets(&ike_locals, |ip| {
            let at = ike_4500.iter().position(|(a, _)| *a == ip)?;
            Some(ike_4500.swap_remove(at).1)
        })?;
        let runtime = ike::setup::runtime(config, &ike_locals, sockets, Some(receiver))?;
        (Some(inbox), Some(runtime))
    };
    let in_box = Arc::new(Mailbox::new().map_err(GatewayError::Mailbox)?);
    let feed = Arc::new(ike::LifetimeFeed::default());
    let mut out_boxes = Vec::with_capacity(workers);
    let mut software_outbound = Vec::with_capacity(workers);
    for half in outbound_halves {
        let out_box = Arc::new(Mailbox::new().map_err(GatewayError::Mailbox)?);
        let mut h = SoftwareHalf::new(half, Arc::clone(&out_box), started);
        if key_management.is_some() {
            h = h.with_feed(Arc::clone(&feed));
        }
        out_boxes.push(out_box);
        software_outbound.push(h);
    }
    let mut inbound = SoftwareHalf::new(inbound_half, Arc::clone(&in_box), started);
    if key_management.is_some() {
        inbound = inbound.with_feed(Arc::clone(&feed));
    }
    let mut learning: Vec<_> = software_outbound
        .iter_mut()
        .map(|h| Learning::new(h, &path_mtus))
        .collect();
    let live = SoftwareLive {
        outbound: out_boxes,
        inbound: in_box,
        receives: plan,
    };
    let shutdown = Shutdown::new().map_err(GatewayError::Signals)?;
    serve(
        config,
        gw,
        Some(&outside),
        &shutdown,
        Datapath {
            outbound: learning.iter_mut().collect(),
            inbound: &mut inbound,
            tx: &tx,
            rx: &rx,
            engine_name: "software",
            extra_status: &|| path_mtus.render(Instant::now()),
            sa_rows: None,
            live: Some(LiveParts {
                engine: &live,
                sas: catalog,
                keeper: &keeper,
                started,
            }),
            ike: key_management.map(|runtime| ike::KeyManagement {
                runtime,
                inbox: inbox.as_ref(),
                lifetimes: Some(&feed),
            }),
        },
        ready,
    )
}

/// Which way each configured SA carries traffic: its `dir`, or the policies naming it (an
/// SA no `out` policy names receives).
pub fn direction_of(config: &Config, sa: &SaSpec) -> Direction {
    let named_out = config
        .policies
        .iter()
        .any(|p| p.dir == Direction::Out && p.sa.contains(&sa.spi));
    match sa.dir {
        Some(d) => d,
        None if named_out => Direction::Out,
        None => Direction::In,
    }
}

/// How each configured SA starts, from its durable state: the SAs as the engines are built
/// from them — an outbound SA's sequence number moved past every reservation, an inbound
/// SA's moved up to its replay mark (nothing at or below it is accepted) — each outbound
/// SA's reservation, and the SAs whose state could not be read.
pub struct Started {
    pub sas: Vec<SaSpec>,
    /// Per outbound SA: its reservation, or (state unreadable) none — it sends nothing.
    pub reservations: Vec<(u32, SeqReservation)>,
    /// Outbound SAs disabled because their state could not be read, and why.
    pub disabled: Vec<(u32, String)>,
}

/// Loads every configured SA's state (and reserves outbound numbers) before anything is
/// sent. An outbound SA whose state cannot be read starts disabled (it sends nothing); an
/// inbound one stops the start, since what it accepted before cannot be known.
pub fn start_states(config: &Config, keeper: &Mutex<Keeper>) -> Result<Started, GatewayError> {
    let mut keeper = lock(keeper);
    let mut started = Started {
        sas: Vec::with_capacity(config.sas.len()),
        reservations: Vec::new(),
        disabled: Vec::new(),
    };
    // Every SA's record written together: two flushes for all of them.
    let all: Vec<(&SaSpec, Direction)> = config
        .sas
        .iter()
        .map(|sa| (sa, direction_of(config, sa)))
        .collect();
    let starts = keeper.start_all(&all);
    for ((sa, dir), start) in all.into_iter().zip(starts) {
        let mut sa = sa.clone();
        match (dir, start) {
            (_, Ok(Start::Outbound { seq, reservation })) => {
                sa.seq = seq;
                started.reservations.push((sa.spi, reservation));
            }
            (_, Ok(Start::Inbound { closed_at })) => {
                sa.seq = sa.seq.max(closed_at.unwrap_or(0));
            }
            (Direction::Out, Err(e)) => {
                started
                    .reservations
                    .push((sa.spi, SeqReservation::new(sa.seq, sa.seq)));
                started.disabled.push((sa.spi, e.to_string()));
            }
            (Direction::In, Err(e)) => {
                return Err(GatewayError::InboundState {
                    spi: sa.spi,
                    source: e,
                });
            }
        }
        started.sas.push(sa);
    }
    Ok(started)
}

/// How many outbound workers a gateway runs (every engine): `[gateway] workers`, or one
/// per core (at most [`espo_config::MAX_WORKERS`]).
pub fn outbound_workers(gw: &GatewayConfig) -> usize {
    gw.workers.map_or_else(
        || {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(usize::from(espo_config::MAX_WORKERS))
        },
        usize::from,
    )
}

/// The software engine of `config` with every SA started from its durable state — one
/// outbound half per worker, each outbound SA's numbers shared between them
/// ([`espo_ipsec::sa::SendShare`]) — and the live database's catalog of those SAs.
fn start_software(
    config: &Config,
    keeper: &Mutex<Keeper>,
    started: Instant,
    workers: usize,
) -> Result<(Vec<Outbound>, Inbound, Vec<CatalogSa>), GatewayError> {
    let states = start_states(config, keeper)?;
    let engine = SoftwareEngine::new(&states.sas, &config.policies)?;
    let installed = started.elapsed();
    let mut inbound = engine.inbound;
    for sa in inbound.sas_mut().iter_mut() {
        sa.installed = installed;
    }
    let mut halves = vec![engine.outbound];
    for _ in 1..workers {
        halves.push(SoftwareEngine::new(&states.sas, &config.policies)?.outbound);
    }
    let shares: Vec<Option<SendShare>> = halves[0]
        .sas()
        .iter()
        .map(|sa| (workers > 1).then(|| SendShare::new(sa.seq(), workers)))
        .collect();
    for (slot, half) in halves.iter_mut().enumerate() {
        for (sa, share) in half.sas_mut().iter_mut().zip(&shares) {
            sa.installed = installed;
            if let Some((_, r)) = states
                .reservations
                .iter()
                .find(|(spi, _)| *spi == sa.params.spi)
            {
                sa.set_reservation(r.clone());
            }
            if let Some(share) = share {
                sa.set_share(share.clone(), slot);
            }
        }
    }
    Ok((halves, inbound, catalog_of(config, &states)))
}

/// The live database's catalog of the SAs a gateway started with.
pub fn catalog_of(config: &Config, states: &Started) -> Vec<CatalogSa> {
    states
        .sas
        .iter()
        .map(|sa| CatalogSa {
            spec: sa.clone(),
            dir: direction_of(config, sa),
            retire: None,
            state_error: states
                .disabled
                .iter()
                .find(|(spi, _)| *spi == sa.spi && direction_of(config, sa) == Direction::Out)
                .map(|(_, e)| e.clone()),
        })
        .collect()
}

/// Runs the gateway with the given engine halves (the software engine, or any other
/// implementation of the two traits) and the kernel's sockets on the outside.
pub fn run_with<O: OutboundEngine + ?Sized, I: InboundEngine + ?Sized>(
    config: &Config,
    gw: &GatewayConfig,
    outside: &str,
    outbound: &mut O,
    inbound: &mut I,
    engine_name: &'static str,
    ready: impl FnOnce(&GatewayInfo),
) -> Result<Report, GatewayError> {
    let tx = OuterTx::open(outside)?;
    let rx = OuterRx::open(outside, &rx_plan(config))?;
    // ICMP errors about the tunnel packets, heard on raw ICMP sockets (outer_pmtu).
    let interface_mtu = netlink::Netlink::open()?.mtu(netlink::interface_index(outside)?)?;
    let path_mtus = PathMtus::new(&config.sas, &config.policies, interface_mtu as usize);
    let icmp = IcmpRx::open(outside, path_mtus.families())?;
    let rx = LearningRx::new(&rx, &icmp, &path_mtus);
    let mut outbound = Learning::new(outbound, &path_mtus);
    let shutdown = Shutdown::new().map_err(GatewayError::Signals)?;
    serve(
        config,
        gw,
        Some(outside),
        &shutdown,
        Datapath {
            outbound: vec![&mut outbound],
            inbound,
            tx: &tx,
            rx: &rx,
            engine_name,
            extra_status: &|| path_mtus.render(Instant::now()),
            sa_rows: None,
            live: None,
            ike: None,
        },
        ready,
    )
}

/// Reads an engine's SA rows of one direction (see [`Datapath::sa_rows`]).
pub type SaRows<'a> = dyn Fn(Direction, &mut Vec<path::SaSnapshot>) + Sync + 'a;

/// The parts of a running gateway besides its inside: the engine halves, the outside, and
/// what `espo status` shows beyond the directions and SAs.
pub struct Datapath<'a, O: ?Sized, I: ?Sized, T, R> {
    /// One outbound half per outbound worker (each with a TUN queue of its own).
    pub outbound: Vec<&'a mut O>,
    pub inbound: &'a mut I,
    pub tx: &'a T,
    pub rx: &'a R,
    pub engine_name: &'static str,
    pub extra_status: &'a (dyn Fn() -> String + Sync),
    /// The SA rows of `espo status`, read from the engine when status is asked for, for an
    /// engine every worker shares (a card): its counters are then as of that moment, not
    /// as of a worker's latest publication. `None`: the workers' published rows.
    pub sa_rows: Option<&'a SaRows<'a>>,
    /// The live SA and policy database: without it the gateway runs its configuration as
    /// it started and refuses changes.
    pub live: Option<LiveParts<'a>>,
    /// Key management for the configuration's connections (needs `live`).
    pub ike: Option<ike::KeyManagement<'a>>,
}

/// What the live database of a running gateway is made of.
pub struct LiveParts<'a> {
    /// The engine the changes go to.
    pub engine: &'a dyn Engine,
    /// The SAs the gateway started with, their directions and state.
    pub sas: Vec<CatalogSa>,
    /// Their durable state.
    pub keeper: &'a Mutex<Keeper>,
    /// The clock the engine's install times count from.
    pub started: Instant,
}

/// Installs the guard ([`guard`]), sets up the inside (TUN device, addresses, routes) and
/// the status socket, runs the datapath threads until `shutdown`, and tears it down again.
/// The guard stays until a clean stop ([`guard::settle`]).
pub fn serve<O, I, T, R>(
    config: &Config,
    gw: &GatewayConfig,
    outside: Option<&str>,
    shutdown: &Shutdown,
    dp: Datapath<'_, O, I, T, R>,
    ready: impl FnOnce(&GatewayInfo),
) -> Result<Report, GatewayError>
where
    O: OutboundEngine + ?Sized,
    I: InboundEngine + ?Sized,
    T: path::OutsideTx,
    R: path::OutsideRx,
{
    // A card whose port is its own (`outside` None) is the only way out: nothing the
    // kernel forwards can leave in clear through it, and no interface needs guarding.
    let guard = match outside {
        Some(o) => Some(guard::Guard::install(
            &guard::GuardDb::of_config(config),
            gw,
            o,
        )?),
        None => None,
    };
    let mut started = false;
    let result = serve_guarded(config, gw, outside, shutdown, dp, guard.as_ref(), |info| {
        started = true;
        ready(info)
    });
    match guard {
        Some(g) => guard::settle(g, started, result),
        None => result,
    }
}

fn serve_guarded<O, I, T, R>(
    config: &Config,
    gw: &GatewayConfig,
    outside: Option<&str>,
    shutdown: &Shutdown,
    dp: Datapath<'_, O, I, T, R>,
    guard: Option<&guard::Guard>,
    ready: impl FnOnce(&GatewayInfo),
) -> Result<Report, GatewayError>
where
    O: OutboundEngine + ?Sized,
    I: InboundEngine + ?Sized,
    T: path::OutsideTx,
    R: path::OutsideRx,
{
    let Datapath {
        outbound,
        inbound,
        tx,
        rx,
        engine_name,
        extra_status,
        sa_rows,
        live,
        ike,
    } = dp;
    let mut key_management = ike;
    let ike_inbox = key_management.as_ref().and_then(|k| k.inbox);
    // Trap policies the outbound thread saw match, for key management.
    let acquires = Mutex::new(Vec::new());
    let trapping = key_management.is_some();
    let update_guard = |db: &guard::GuardDb| match (guard, outside) {
        (Some(g), Some(o)) => g.update(db, gw, o),
        _ => Ok(()),
    };
    let outer_mtu = match outside {
        Some(o) => netlink::Netlink::open()?.mtu(netlink::interface_index(o)?)? as usize,
        None => card::OWN_PORT_MTU,
    };
    // Negotiated CHILD_SAs come later: leave room for the largest tunnel overhead any of
    // them can have.
    let most = outbound.iter().map(|o| o.max_overhead()).max().unwrap_or(0);
    let overhead = if config.connections.is_empty() {
        most
    } else {
        most.max(NEGOTIATED_MAX_OVERHEAD)
    };
    let tunnel_mtu = pmtu::tunnel_mtu(outer_mtu, overhead);
    let tun_mtu = gw.mtu.map_or(tunnel_mtu, usize::from);

    let tuns =
        tun::Tun::create_queues(&gw.tun, gw.tun_offload, outbound.len()).map_err(|source| {
            GatewayError::CreateTun {
                name: gw.tun.clone(),
                source,
            }
        })?;
    let tun = &tuns[0];
    let tun_index = netlink::interface_index(tun.name())?;
    tun::accept_local(tun.name())
        .and_then(|()| tun::quiet_ipv6(tun.name()))
        .map_err(|source| GatewayError::CreateTun {
            name: gw.tun.clone(),
            source,
        })?;
    let mut inside = InsideSetup::apply(
        tun_index,
        tun_mtu as u32,
        &gw.tun_addresses,
        &routed_prefixes(config),
    )?;
    let status_socket =
        StatusSocket::bind(&gw.status_socket).map_err(|source| GatewayError::StatusSocket {
            path: gw.status_socket.clone(),
            source,
        })?;
    shutdown.on_signals().map_err(GatewayError::Signals)?;

    let keeper = live.as_ref().map(|l| l.keeper);
    let info = GatewayInfo {
        tun: tun.name().to_owned(),
        tun_mtu,
        outside: outside.unwrap_or("the card's own port").to_owned(),
        outside_mtu: outer_mtu,
        engine: engine_name,
        started: live.as_ref().map_or_else(Instant::now, |l| l.started),
        state_dir: keeper.map(|k| lock(k).dir().path().to_owned()),
        warnings: live
            .as_ref()
            .map(|l| {
                l.sas
                    .iter()
                    .filter_map(|s| {
                        s.state_error.as_ref().map(|e| {
                            format!(
                                "sa {:#010x} {} neither sends nor accepts: {e}",
                                s.spec.spi,
                                s.dir.name()
                            )
                        })
                    })
                    .chain(keeper.map(|k| lock(k).problems()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let out_views: Vec<Published> = outbound.iter().map(|_| Published::default()).collect();
    let in_view = Published::default();
    let mut db = live.map(|l| {
        Live::new(
            l.sas,
            &config.policies,
            l.engine,
            Some(l.keeper),
            &mut inside,
            l.started,
        )
    });
    let render = |db: Option<&Live>| {
        let from_config = |spi: u32, dst: IpAddr, dir: Direction| {
            config
                .sas
                .iter()
                .find(|s| s.spi == spi && s.dst == dst && direction_of(config, s) == dir)
        };
        // Each worker's slot read once: the sums and the spread agree.
        let workers: Vec<_> = out_views.iter().map(Published::read).collect();
        let mut outbound = status::combined(&workers);
        let mut inbound = in_view.read();
        if let Some(rows) = sa_rows {
            outbound.sas.clear();
            rows(Direction::Out, &mut outbound.sas);
            inbound.sas.clear();
            rows(Direction::In, &mut inbound.sas);
        }
        let mut text = match db {
            Some(db) => status::render(
                &|spi, dst, dir| db.spec(spi, dst, dir),
                &info,
                &outbound,
                &inbound,
            ),
            None => status::render(&from_config, &info, &outbound, &inbound),
        };
        if workers.len() > 1 {
            text.push_str(&status::workers_line(&workers));
        }
        if let Some(db) = db {
            text.push_str(&db.status_lines());
        }
        if let Some(k) = keeper {
            text.push_str(&keeper::status_lines(&lock(k)));
        }
        if guard.is_some() {
            text.push_str(&guard::nft::status_text(gw));
        }
        text.push_str(&extra_status());
        text
    };
    ready(&info);

    let (out_stats, in_stats) = std::thread::scope(|scope| {
        let workers = outbound.len();
        let out_threads: Vec<_> = outbound
            .into_iter()
            .zip(&tuns)
            .zip(&out_views)
            .enumerate()
            .map(|(i, ((engine, queue), published))| {
                let name = if workers == 1 {
                    "espo-outbound".to_owned()
                } else {
                    format!("espo-out-{i}")
                };
                let acquires = &acquires;
                std::thread::Builder::new()
                    .name(name)
                    .spawn_scoped(scope, move || {
                        let ctx = OutboundCtx {
                            acquires: trapping.then_some(acquires),
                            tun: queue,
                            tx,
                            outer_mtu,
                            tunnel_mtu,
                            icmp_source: icmp_source(config, gw),
                            shutdown,
                            published,
                            busy_poll: gw.busy_poll,
                        };
                        let result = threads::run_outbound(ctx, engine);
                        shutdown.trigger();
                        result
                    })
            })
            .collect();
        let in_thread = std::thread::Builder::new()
            .name("espo-inbound".into())
            .spawn_scoped(scope, || {
                let ctx = InboundCtx {
                    tun: &tuns,
                    rx,
                    shutdown,
                    published: &in_view,
                    ike: ike_inbox,
                    busy_poll: gw.busy_poll,
                };
                let stats = threads::run_inbound(ctx, inbound);
                shutdown.trigger();
                stats
            });
        if out_threads.iter().any(|t| t.is_err()) || in_thread.is_err() {
            shutdown.trigger();
        }
        // Durable state: reservations topped up, replay marks recorded.
        let keeper_thread = keeper.map(|k| {
            std::thread::Builder::new()
                .name("espo-state".into())
                .spawn_scoped(scope, || keep_state(k, shutdown, &in_view))
        });
        // This thread answers `espo status` and changes to the SAs and policies until
        // shutdown.
        let mut ready_fds = Vec::new();
        while !shutdown.requested() {
            status_socket.serve_requests(|request| match (request, db.as_mut()) {
                (Request::Status, db) => {
                    let mut text = render(db.as_deref());
                    if let Some(k) = key_management.as_mut() {
                        if let Ok(list) = k
                            .runtime
                            .key_manager()
                            .request(IkeRequest::List, Instant::now())
                        {
                            text.push_str("ike sas:\n");
                            text.push_str(&list);
                        }
                        text.push_str(&k.runtime.status_lines());
                    }
                    Reply { ok: true, text }
                }
                (_, None) => Reply {
                    ok: false,
                    text: "this gateway runs its configuration as it started: its SAs and \
                           policies cannot change while it runs"
                        .into(),
                },
                (Request::Wireshark, Some(db)) => {
                    let mut reply = db.handle(Request::Wireshark);
                    if let Some(k) = key_management.as_mut() {
                        reply.text.push_str(WIRESHARK_IKE_MARK);
                        reply
                            .text
                            .push_str(&k.runtime.key_manager().wireshark_table());
                    }
                    reply
                }
                (
                    request @ (Request::IkeList | Request::IkeUp(_) | Request::IkeDown(_)),
                    Some(db),
                ) => {
                    let Some(k) = key_management.as_mut() else {
                        return db.handle(request);
                    };
                    let request = match request {
                        Request::IkeUp(name) => IkeRequest::Up(name),
                        Request::IkeDown(name) => IkeRequest::Down(name),
                        _ => IkeRequest::List,
                    };
                    let (answer, changed) = k.runtime.request(request, db, Instant::now());
                    if changed {
                        let _ = update_guard(&db.guard_db());
                    }
                    match answer {
                        Ok(text) => Reply { ok: true, text },
                        Err(text) => Reply { ok: false, text },
                    }
                }
                (request, Some(db)) => {
                    let mut reply = db.handle(request);
                    if reply.ok
                        && let Err(e) = update_guard(&db.guard_db())
                    {
                        reply.text.push_str(&format!(
                            "\nwarning: the guard still has the rules from before the change: {e}"
                        ));
                    }
                    reply
                }
            });
            if let Some(db) = db.as_mut() {
                let now = Instant::now();
                db.tick(now);
                if let Some(k) = key_management.as_mut()
                    && let Some(feed) = k.lifetimes
                {
                    let mut crossed = Vec::new();
                    feed.drain(&mut crossed);
                    if !crossed.is_empty()
                        && k.runtime.lifetimes(&crossed, db, now)
                        && let Err(e) = update_guard(&db.guard_db())
                    {
                        eprintln!(
                            "espo: warning: the guard does not follow key management's change: {e}"
                        );
                    }
                }
                let acquired = std::mem::take(&mut *lock(&acquires));
                if let Some(k) = key_management.as_mut()
                    && !acquired.is_empty()
                    && k.runtime.acquire(&acquired, db, now)
                    && let Err(e) = update_guard(&db.guard_db())
                {
                    eprintln!(
                        "espo: warning: the guard does not follow key management's change: {e}"
                    );
                }
                if let Some(k) = key_management.as_mut() {
                    let reasons = &ike::runtime::REKEY_DROP_REASONS;
                    let out: u64 = out_views.iter().map(|v| v.drops_of(reasons)).sum();
                    k.runtime.note_drops(out + in_view.drops_of(reasons), now);
                }
                if let Some(k) = key_management.as_mut()
                    && k.runtime.pump(db, now)
                    && let Err(e) = update_guard(&db.guard_db())
                {
                    eprintln!(
                        "espo: warning: the guard does not follow key management's change: {e}"
                    );
                }
            }
            let mut fds = vec![std::os::fd::AsFd::as_fd(status_socket.listener())];
            if let Some(k) = key_management.as_ref() {
                fds.extend(k.runtime.fds());
            }
            // The control loop's work is not per packet: it sleeps at once.
            threads::wait_readable(&fds, shutdown, &mut ready_fds, std::time::Duration::ZERO);
        }
        // A clean stop: peers are told, negotiated SAs leave the database.
        if let (Some(k), Some(db)) = (key_management.as_mut(), db.as_mut()) {
            let now = Instant::now();
            k.runtime.key_manager().close_all(now);
            k.runtime.pump(db, now);
            k.runtime.uninstall_all(db);
        }
        shutdown.trigger();
        if let Some(Ok(t)) = keeper_thread {
            let _ = t.join();
        }
        // Every worker's counters summed; the first TUN failure, if any.
        let mut out = (DirectionStats::default(), None);
        for t in out_threads {
            let (stats, failure) = t
                .map_err(|_| GatewayError::Thread)?
                .join()
                .map_err(|_| GatewayError::Thread)?;
            out.0.add(&stats);
            out.1 = out.1.or(failure);
        }
        let inn = in_thread
            .map_err(|_| GatewayError::Thread)?
            .join()
            .map_err(|_| GatewayError::Thread)?;
        Ok::<_, GatewayError>((out, inn))
    })?;
    let ((out_stats, failure), in_stats) = (out_stats, in_stats);
    if let Some(k) = keeper {
        record_marks(k, &in_view);
    }
    let status = render(db.as_ref());
    Ok(Report {
        status,
        outbound: out_stats,
        inbound: in_stats,
        failure: failure.map(|e| format!("reading from TUN device {} failed: {e}", info.tun)),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records every inbound SA's replay mark from the inbound thread's latest publication.
fn record_marks(keeper: &Mutex<Keeper>, in_view: &Published) {
    let view = in_view.read();
    // By SPI and destination in one pass (a hub has thousands of SAs), the first of each.
    let mut marks: HashMap<(u32, IpAddr), u64> = HashMap::with_capacity(view.sas.len());
    for s in &view.sas {
        marks.entry((s.spi, s.dst)).or_insert(s.seq);
    }
    lock(keeper).record_marks(|spi, dst| marks.get(&(spi, dst)).copied());
}

/// The state thread: tops up sequence-number reservations every [`keeper::TICK`] and
/// records replay marks every [`keeper::MARK_INTERVAL`], until shutdown.
fn keep_state(keeper: &Mutex<Keeper>, shutdown: &Shutdown, in_view: &Published) {
    let mut marked = Instant::now();
    while !shutdown.requested() {
        lock(keeper).reserve_ahead();
        if marked.elapsed() >= keeper::MARK_INTERVAL {
            record_marks(keeper, in_view);
            marked = Instant::now();
        }
        std::thread::sleep(keeper::TICK);
    }
}
