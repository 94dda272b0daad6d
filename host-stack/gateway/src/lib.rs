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
//! One file per concern: [`tun`] (the device), [`netlink`] (its link state, addresses and
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
pub mod icmp;
pub mod netlink;
pub mod outer_pmtu;
pub mod path;
pub mod pmtu;
pub mod sockets;
pub mod status;
pub mod threads;
pub mod tun;

use std::net::IpAddr;
use std::time::Instant;

use espo_config::{Config, EngineKind, GatewayConfig};
use espo_ipsec::engine::{EngineError, SoftwareEngine};
use espo_ipsec::selector::Cidr;
use espo_ipsec::spec::{Direction, PolicyAction, SaProtocol};
use espo_ipsec::wire::IpProtocol;
use icmp::ErrorSource;
use netlink::{InsideSetup, NetlinkError};
use outer_pmtu::PathMtus;
use outer_pmtu::engine::{Learning, LearningRx};
use outer_pmtu::sockets::IcmpRx;
use path::{InboundEngine, OutboundEngine};
use sockets::{OuterRx, OuterTx, RxPlan, SocketError};
use status::{DirectionStats, GatewayInfo, Published, StatusSocket};
use threads::{InboundCtx, OutboundCtx, Shutdown};

/// Why the gateway could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the configuration has no [gateway] section (espo run needs one)")]
    NoGatewaySection,
    #[error(
        "[gateway] port: the software engine needs the outside interface to bind its sockets to"
    )]
    NoOutsideInterface,
    #[error(
        "engine `{0}` is not available in espo run yet; use engine = \"software\" or \"model\""
    )]
    EngineUnavailable(&'static str),
    #[error(transparent)]
    Card(#[from] card::SetupError),
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

/// The sockets the inbound SAs need: ESP/AH raw sockets per family, UDP per endpoint/port.
pub fn rx_plan(config: &Config) -> RxPlan {
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
    let outside = gw.port.clone().ok_or(GatewayError::NoOutsideInterface)?;
    match config.device.engine {
        EngineKind::Software => {}
        // The card model in-process, its port on the outside interface (AF_PACKET).
        EngineKind::Model => return card::run(config, gw, &outside, ready),
        EngineKind::Vfio => return Err(GatewayError::EngineUnavailable("vfio")),
    }
    let engine = config.software_engine()?;
    let SoftwareEngine {
        mut outbound,
        mut inbound,
    } = engine;
    run_with(
        config,
        gw,
        &outside,
        &mut outbound,
        &mut inbound,
        "software",
        ready,
    )
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
        outside,
        &shutdown,
        Datapath {
            outbound: &mut outbound,
            inbound,
            tx: &tx,
            rx: &rx,
            engine_name,
            extra_status: &|| path_mtus.render(Instant::now()),
        },
        ready,
    )
}

/// The parts of a running gateway besides its inside: the engine halves, the outside, and
/// what `espo status` shows beyond the directions and SAs.
pub struct Datapath<'a, O: ?Sized, I: ?Sized, T, R> {
    pub outbound: &'a mut O,
    pub inbound: &'a mut I,
    pub tx: &'a T,
    pub rx: &'a R,
    pub engine_name: &'static str,
    pub extra_status: &'a (dyn Fn() -> String + Sync),
}

/// Sets up the inside (TUN device, addresses, routes) and the status socket, runs the
/// datapath threads until `shutdown`, and tears it down again.
pub fn serve<O, I, T, R>(
    config: &Config,
    gw: &GatewayConfig,
    outside: &str,
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
    let Datapath {
        outbound,
        inbound,
        tx,
        rx,
        engine_name,
        extra_status,
    } = dp;
    let outside_index = netlink::interface_index(outside)?;
    let outer_mtu = netlink::Netlink::open()?.mtu(outside_index)? as usize;
    let tunnel_mtu = pmtu::tunnel_mtu(outer_mtu, outbound.max_overhead());
    let tun_mtu = gw.mtu.map_or(tunnel_mtu, usize::from);

    let tun = tun::Tun::create(&gw.tun).map_err(|source| GatewayError::CreateTun {
        name: gw.tun.clone(),
        source,
    })?;
    let tun_index = netlink::interface_index(tun.name())?;
    tun::accept_local(tun.name())
        .and_then(|()| tun::quiet_ipv6(tun.name()))
        .map_err(|source| GatewayError::CreateTun {
            name: gw.tun.clone(),
            source,
        })?;
    let _inside = InsideSetup::apply(
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

    let info = GatewayInfo {
        tun: tun.name().to_owned(),
        tun_mtu,
        outside: outside.to_owned(),
        outside_mtu: outer_mtu,
        engine: engine_name,
        started: Instant::now(),
    };
    let out_view = Published::default();
    let in_view = Published::default();
    let render = || {
        let mut text = status::render(config, &info, &out_view.read(), &in_view.read());
        text.push_str(&extra_status());
        text
    };
    ready(&info);

    let (out_stats, in_stats) = std::thread::scope(|scope| {
        let out_thread = std::thread::Builder::new()
            .name("espo-outbound".into())
            .spawn_scoped(scope, || {
                let ctx = OutboundCtx {
                    tun: &tun,
                    tx,
                    outer_mtu,
                    tunnel_mtu,
                    icmp_source: icmp_source(config, gw),
                    shutdown,
                    published: &out_view,
                };
                let result = threads::run_outbound(ctx, outbound);
                shutdown.trigger();
                result
            });
        let in_thread = std::thread::Builder::new()
            .name("espo-inbound".into())
            .spawn_scoped(scope, || {
                let ctx = InboundCtx {
                    tun: &tun,
                    rx,
                    shutdown,
                    published: &in_view,
                };
                let stats = threads::run_inbound(ctx, inbound);
                shutdown.trigger();
                stats
            });
        if out_thread.is_err() || in_thread.is_err() {
            shutdown.trigger();
        }
        // This thread answers `espo status` until shutdown.
        let mut ready_fds = Vec::new();
        while !shutdown.requested() {
            status_socket.serve_waiting(render);
            let fds = [std::os::fd::AsFd::as_fd(status_socket.listener())];
            threads::wait_readable(&fds, shutdown, &mut ready_fds);
        }
        shutdown.trigger();
        let out = out_thread
            .map_err(|_| GatewayError::Thread)?
            .join()
            .map_err(|_| GatewayError::Thread)?;
        let inn = in_thread
            .map_err(|_| GatewayError::Thread)?
            .join()
            .map_err(|_| GatewayError::Thread)?;
        Ok::<_, GatewayError>((out, inn))
    })?;
    let ((out_stats, failure), in_stats) = (out_stats, in_stats);
    let status = render();
    Ok(Report {
        status,
        outbound: out_stats,
        inbound: in_stats,
        failure: failure.map(|e| format!("reading from TUN device {} failed: {e}", info.tun)),
    })
}
