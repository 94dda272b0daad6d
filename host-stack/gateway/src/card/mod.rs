//! `espo run` with `[device] engine = "model"` (the card model in-process),
//! `engine = "vfio-user"` (a card served by another process) or `engine = "vfio"` (a card
//! on the PCI bus) — where the card is, is [`backend`]'s concern; everything here is the
//! same code for each. The card's Ethernet port is either attached to the Linux interface
//! `[gateway] port` (the model's, a served card's bridged port) or the card's own (a card
//! on the bus, a served card whose server attached its port to an interface): then no
//! socket is opened, and the port thread meets the link layer through the card
//! ([`port::PortWire`]).
//!
//! ```text
//!   inside ── TUN ──► outbound thread ──► offload engine ──► card model ──► port thread ──► port
//!              ▲      (PMTU, submit)        (card SAs on     (own thread,    (next hop's   (AF_PACKET)
//!              │                             the card, the    real time)      MAC, ARP/ND)
//!              └──── inbound thread ◄──────  rest software) ◄──────────────── port thread ◄──┘
//!                    (the card's poller: reports, policy checked, into the TUN)
//! ```
//!
//! The interface belongs to the card: espo needs no address on it and keeps the kernel off
//! it while it runs ([`KernelOff`]): no IPv6, no ARP answers, nothing it receives routed.
//! espo answers ARP and neighbour solicitations for its tunnel endpoints itself and
//! resolves its next hop (`[gateway] next_hop`, or each peer on the link).
//!
//! Four threads: outbound and inbound datapath ([`super::threads`], the seams in
//! [`engine`]), the card model (which encrypts and decrypts the card's SAs, in step with the
//! wall clock), and the port; the main thread answers `espo status`.

pub mod backend;
pub mod engine;
pub mod ike;
pub mod live;
pub mod neighbours;
pub mod port;
pub mod resolve;
mod status;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use espo_driver::card::{Card, CardConfig, CardError};

use super::keeper::Keeper;
use super::mailbox::Mailbox;
use super::netlink::{self, NetlinkError};
use super::outer_pmtu::PathMtus;
use super::outer_pmtu::engine::Learning;
use super::state_dir::StateDir;
use super::status::GatewayInfo;
use super::threads::Shutdown;
use super::{Datapath, GatewayError, LiveParts, Report, catalog_of, start_states};
use backend::CardBackend;
use engine::{CardInbound, CardOutbound, CardRx, CardSends, CardShared};
use espo_config::{Config, EngineKind, GatewayConfig};
use espo_ike::connection::{IKE_PORT, NAT_T_PORT};
use espo_ipsec::engine::SoftwareEngine;
use espo_ipsec::spec::Direction;
use espo_offload::{OffloadEngine, OffloadError, OffloadOptions};
use live::CardLive;
use port::{CardEnd, Endpoints, PortCtx, PortError, PortQueues, PortSocket, PortView, PortWire};

/// Why the card gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "[gateway] local: the SAs use {family} tunnel endpoints but none is local (set `local` \
         to this gateway's {family} endpoint): ARP/ND requests need a source address"
    )]
    NoLocal { family: &'static str },
    #[error(
        "[gateway] next_hop: `{hop}` needs a local {family} tunnel endpoint to ask for its \
         address from"
    )]
    NextHopFamily { hop: IpAddr, family: &'static str },
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Backend(#[from] backend::BackendError),
    #[error("opening the card failed")]
    OpenCard(#[source] CardError),
    #[error("building the offload engine failed")]
    Offload(#[source] OffloadError),
    #[error("{what} on the port interface `{port}` failed")]
    Quiet {
        what: String,
        port: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("creating the datapath's wake-up sockets failed")]
    Wake(#[source] std::io::Error),
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// espo's own tunnel endpoints: `[gateway] local`, the source of every outbound SA and the
/// destination of every inbound one.
pub fn local_endpoints(config: &Config, gw: &GatewayConfig) -> Vec<IpAddr> {
    let mut local: Vec<IpAddr> = gw.local.into_iter().collect();
    for p in &config.policies {
        for sa in p.sa.iter().filter_map(|spi| config.sa(*spi)) {
            let ip = match p.dir {
                Direction::Out => sa.src,
                Direction::In => sa.dst,
            };
            if !local.contains(&ip) {
                local.push(ip);
            }
        }
    }
    local
}

/// The outbound SAs' peers.
fn peers(config: &Config) -> Vec<IpAddr> {
    let mut peers = Vec::new();
    for p in config.policies.iter().filter(|p| p.dir == Direction::Out) {
        for sa in p.sa.iter().filter_map(|spi| config.sa(*spi)) {
            if !peers.contains(&sa.dst) {
                peers.push(sa.dst);
            }
        }
    }
    peers
}

/// The next hop of each peer: the configured one of its family, or the peer itself.
fn next_hops(peers: &[IpAddr], configured: &[IpAddr]) -> Vec<IpAddr> {
    let mut hops: Vec<IpAddr> = Vec::new();
    for p in peers {
        let hop = configured
            .iter()
            .copied()
            .find(|h| h.is_ipv4() == p.is_ipv4())
            .unwrap_or(*p);
        if !hops.contains(&hop) {
            hops.push(hop);
        }
    }
    hops
}

/// Checks that every next hop can be asked for: a local endpoint of each family in use.
fn check_families(
    local: &[IpAddr],
    peers: &[IpAddr],
    next_hops: &[IpAddr],
) -> Result<(), SetupError> {
    for hop in next_hops {
        if port::missing_family(local, &[*hop]).is_some() {
            return Err(SetupError::NextHopFamily {
                hop: *hop,
                family: family(*hop),
            });
        }
    }
    match port::missing_family(local, peers) {
        Some(p) => Err(SetupError::NoLocal { family: family(p) }),
        None => Ok(()),
    }
}

/// The kernel kept off the card's interface while espo runs, restored on drop: no IPv6
/// (no link-local address, DAD or router solicitations of its own), no ARP answers for the
/// host's addresses, and strict reverse-path filtering so that nothing received there is
/// routed or answered (the interface has no address and no route).
pub struct KernelOff {
    saved: Vec<(String, String)>,
}

impl KernelOff {
    pub fn apply(port: &str) -> Result<KernelOff, SetupError> {
        let mut off = KernelOff { saved: Vec::new() };
        let settings = [
            (format!("/proc/sys/net/ipv6/conf/{port}/disable_ipv6"), "1"),
            (format!("/proc/sys/net/ipv4/conf/{port}/arp_ignore"), "8"),
            (format!("/proc/sys/net/ipv4/conf/{port}/rp_filter"), "1"),
        ];
        for (path, value) in settings {
            if !std::path::Path::new(&path).exists() {
                continue; // IPv6 off on this host
            }
            let old = std::fs::read_to_string(&path).map_err(|source| SetupError::Quiet {
                what: format!("reading {path}"),
                port: port.to_owned(),
                source,
            })?;
            std::fs::write(&path, value).map_err(|source| SetupError::Quiet {
                what: format!("writing {path}"),
                port: port.to_owned(),
                source,
            })?;
            off.saved.push((path, old.trim().to_owned()));
        }
        Ok(off)
    }
}

impl Drop for KernelOff {
    fn drop(&mut self) {
        for (path, old) in self.saved.iter().rev() {
            let _ = std::fs::write(path, old);
        }
    }
}

/// The card's interface receiving every multicast frame while espo runs (neighbour
/// solicitations go to solicited-node groups, which the kernel — IPv6 off there — never
/// joins); switched off again on drop if it was off.
struct AllMulti {
    index: Option<u32>,
}

impl AllMulti {
    fn on(nl: &mut netlink::Netlink, index: u32) -> Result<AllMulti, NetlinkError> {
        if nl.allmulti(index)? {
            return Ok(AllMulti { index: None });
        }
        nl.set_allmulti(index, true)?;
        Ok(AllMulti { index: Some(index) })
    }
}

impl Drop for AllMulti {
    fn drop(&mut self) {
        if let Some(index) = self.index
            && let Ok(mut nl) = netlink::Netlink::open()
        {
            let _ = nl.set_allmulti(index, false);
        }
    }
}

/// The offload engine's card configuration ([`espo_offload::card_config`]) with timeouts for a
/// loaded host: the model runs in a thread the scheduler may hold back, and its clock (the
/// driver's) then catches up with the wall clock in one step, possibly past a deadline the
/// driver was about to see met.
fn card_config() -> CardConfig {
    CardConfig {
        reset_timeout: Duration::from_secs(1),
        admin_timeout: Duration::from_secs(1),
        stop_timeout: Duration::from_millis(100),
        hang_timeout: Duration::from_millis(100),
        health_interval: Some(Duration::from_millis(10)),
        ..espo_offload::card_config()
    }
}

/// The MTU of a card's own port (no interface of this host says it): Ethernet's.
pub const OWN_PORT_MTU: usize = 1500;

/// The interface the card's port is attached to, set up for it.
struct Attached {
    name: String,
    socket: PortSocket,
    mtu: usize,
    _kernel_off: KernelOff,
    _allmulti: AllMulti,
}

impl Attached {
    fn open(name: &str) -> Result<Attached, GatewayError> {
        let socket = PortSocket::open(name).map_err(SetupError::Port)?;
        let kernel_off = KernelOff::apply(name)?;
        let index = netlink::interface_index(name)?;
        let mut nl = netlink::Netlink::open()?;
        nl.set_link(index, true, None)?;
        let allmulti = AllMulti::on(&mut nl, index)?;
        let mtu = nl.mtu(index)? as usize;
        Ok(Attached {
            name: name.to_owned(),
            socket,
            mtu,
            _kernel_off: kernel_off,
            _allmulti: allmulti,
        })
    }
}

/// Whether the card's port is its own under `config`: a card on the bus always; a served
/// card when no `[gateway] port` is given (its server attached the port to an interface).
pub fn own_port(config: &Config, gw: &GatewayConfig) -> bool {
    match config.device.engine {
        EngineKind::Vfio => true,
        EngineKind::VfioUser => gw.port.is_none(),
        _ => false,
    }
}

/// Runs the gateway on the card until SIGINT or SIGTERM.
pub fn run(
    config: &Config,
    gw: &GatewayConfig,
    ready: impl FnOnce(&GatewayInfo),
) -> Result<Report, GatewayError> {
    let own = own_port(config, gw);
    let mut local = local_endpoints(config, gw);
    let mut peers = peers(config);
    // Key management's addresses are endpoints too, its peers (where known) peers.
    let ike_locals = if config.connections.is_empty() {
        Vec::new()
    } else {
        crate::ike::setup::local_addresses(config, gw)?
    };
    for ip in &ike_locals {
        if !local.contains(ip) {
            local.push(*ip);
        }
    }
    for c in &config.connections {
        for ip in &c.remote_addrs {
            if !peers.contains(ip) {
                peers.push(*ip);
            }
        }
    }
    check_families(&local, &peers, &gw.next_hops)?;
    let neighbours = next_hops(&peers, &gw.next_hops);
    let attached = match own {
        true => None,
        false => Some(Attached::open(
            gw.port.as_deref().ok_or(GatewayError::NoOutsideInterface)?,
        )?),
    };
    let (port_mac, port_mtu) = match &attached {
        Some(a) => (a.socket.mac(), a.mtu),
        None => (config.device.port_mac(), OWN_PORT_MTU),
    };
    let path_mtus = PathMtus::new(&config.sas, &config.policies, port_mtu);

    let queues = Arc::new(PortQueues::new().map_err(SetupError::Wake)?);
    let (device, card_backend) = match (&config.device.engine, &config.device.socket) {
        (EngineKind::Vfio, _) => CardBackend::bus(config.device.pci.as_deref().unwrap_or_default())
            .map_err(SetupError::Backend)?,
        (EngineKind::VfioUser, Some(socket)) if own => {
            CardBackend::served_own_port(socket).map_err(SetupError::Backend)?
        }
        (EngineKind::VfioUser, Some(socket)) => {
            CardBackend::served(socket, &queues).map_err(SetupError::Backend)?
        }
        _ => CardBackend::model(&queues),
    };
    // A card with its own port: the next hops the port thread resolves address every frame
    // the engine posts; ARP, ND, ICMP errors and IKE come back to the port thread.
    let next_hop_macs = {
        let macs = espo_offload::NextHopMacs::new(gw.next_hops.clone());
        Arc::new(if ike_locals.is_empty() {
            macs
        } else {
            macs.with_ike()
        })
    };
    let config_for_card = CardConfig {
        irq: card_backend.irq_mode(),
        ..card_config()
    };
    let card = Card::open(device, config_for_card).map_err(SetupError::OpenCard)?;
    let options = OffloadOptions {
        local_mac: port_mac,
        // Set per frame by the port thread, from the next hop's resolved address (by the
        // engine, from the same, where the port is the card's own).
        peer_mac: [0; 6],
        own_port: own.then(|| Arc::clone(&next_hop_macs)),
        // Without a card, frames take the interface; a card's own port goes with it.
        fallback: match own {
            true => None,
            false => {
                Some(Box::new(CardEnd::new(Arc::clone(&queues))) as Box<dyn espo_offload::Wire>)
            }
        },
        // Inner packets stay in the card's buffers until the inbound thread copies them
        // into its batch: one copy instead of two.
        lend_rx: true,
        ..OffloadOptions::default()
    };
    // Every SA continues from its durable state: outbound numbers past every reservation
    // (the card's included), inbound windows closed at their replay marks.
    let started = Instant::now();
    let keeper = Mutex::new(Keeper::new(StateDir::open(&gw.state_dir)?));
    let states = start_states(config, &keeper)?;
    let mut engine = OffloadEngine::new(&states.sas, &config.policies, Some(card), options)
        .map_err(SetupError::Offload)?;
    for (spi, reservation) in &states.reservations {
        engine.set_reservation(*spi, reservation.clone());
    }
    // Outbound workers share the engine, a batch at a time; each measures packets for the
    // PMTU check with a sizing copy of the outbound SAs and policies of its own.
    let workers = crate::outbound_workers(gw);
    let mut sizing = Vec::with_capacity(workers);
    let mut sizing_changes = Vec::with_capacity(workers);
    for _ in 0..workers {
        sizing.push(SoftwareEngine::new(&states.sas, &config.policies)?.outbound);
        sizing_changes.push(Arc::new(Mailbox::new().map_err(GatewayError::Mailbox)?));
    }
    let feed = Arc::new(crate::ike::LifetimeFeed::default());
    let mut shared = CardShared::new(engine, Arc::clone(&queues), card_backend)
        .map_err(SetupError::Wake)?
        .with_outbound_workers(workers);
    if !config.connections.is_empty() {
        shared = shared.with_feed(Arc::clone(&feed));
    }
    let shutdown = Shutdown::new().map_err(GatewayError::Signals)?;
    let port_view = Mutex::new(PortView::default());
    let endpoints = RwLock::new(Endpoints {
        local: local.clone(),
        neighbours: neighbours.clone(),
    });
    let live = CardLive {
        shared: &shared,
        sizing: sizing_changes.clone(),
        endpoints: &endpoints,
        next_hops: gw.next_hops.clone(),
    };

    let mut card_outbound: Vec<_> = sizing
        .into_iter()
        .zip(sizing_changes)
        .enumerate()
        .map(|(i, (sizing, changes))| CardOutbound::new(&shared, sizing, changes).worker(i))
        .collect();
    let mut outbound: Vec<_> = card_outbound
        .iter_mut()
        .map(|o| Learning::new(o, &path_mtus))
        .collect();
    let mut inbound = CardInbound { shared: &shared };
    let rx = CardRx {
        shared: &shared,
        hold: true,
        // Without TUN offloads no coalescer runs: every packet can be written from the
        // card's buffer.
        hold_tcp: !gw.tun_offload,
    };
    let extra = || {
        let port_name = attached.as_ref().map_or("of the card", |a| a.name.as_str());
        let mut text = status::render(&shared, port_name, port_mac, &port_view);
        text.push_str(&path_mtus.render(std::time::Instant::now()));
        text
    };
    // Key management: its datagrams cross the card's port (the port thread takes IKE out
    // of the frames to espo and sends the daemon's).
    let (ike_inbox, key_management) = if ike_locals.is_empty() {
        (None, None)
    } else {
        let (inbox, receiver) = crate::ike::inbox::channel(crate::ike::inbox::INBOX_CAPACITY)
            .map_err(|e| GatewayError::Connection(format!("creating the IKE inbox failed: {e}")))?;
        let sockets = ike_locals
            .iter()
            .flat_map(|ip| {
                [(IKE_PORT, false), (NAT_T_PORT, true)].map(|(port, marker)| {
                    crate::ike::IkeSocket {
                        local: std::net::SocketAddr::new(*ip, port),
                        transport: crate::ike::Transport::Port(Arc::clone(&queues)),
                        marker,
                        receive: false,
                    }
                })
            })
            .collect();
        let runtime = crate::ike::setup::runtime(config, &ike_locals, sockets, Some(receiver))?;
        (
            Some(inbox),
            Some(crate::ike::KeyManagement {
                runtime,
                inbox: None,
                lifetimes: Some(&feed),
            }),
        )
    };
    std::thread::scope(|scope| {
        let port_thread = std::thread::Builder::new()
            .name("espo-port".into())
            .spawn_scoped(scope, || {
                let wire = match &attached {
                    Some(a) => PortWire::Socket(&a.socket),
                    None => PortWire::Card {
                        mac: port_mac,
                        shared: &shared,
                        macs: &next_hop_macs,
                    },
                };
                port::run_port(PortCtx {
                    wire,
                    queues: &queues,
                    card_wake: &shared.wake,
                    endpoints: &endpoints,
                    next_hops: gw.next_hops.clone(),
                    shutdown: &shutdown,
                    published: &port_view,
                    path_mtus: &path_mtus,
                    ike: ike_inbox.as_ref(),
                    busy_poll: gw.busy_poll,
                })
            })
            .map_err(|_| GatewayError::Thread)?;
        let report = super::serve(
            config,
            gw,
            attached.as_ref().map(|a| a.name.as_str()),
            &shutdown,
            Datapath {
                outbound: outbound.iter_mut().collect(),
                inbound: &mut inbound,
                tx: &CardSends,
                rx: &rx,
                engine_name: config.device.engine.name(),
                extra_status: &extra,
                sa_rows: Some(&|dir, out| shared.snapshot(dir, out)),
                live: Some(LiveParts {
                    engine: &live,
                    sas: catalog_of(config, &states),
                    keeper: &keeper,
                    started,
                }),
                ike: key_management,
            },
            ready,
        );
        shutdown.trigger();
        port_thread.join().map_err(|_| GatewayError::Thread)?;
        report
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn next_hops_and_peers_need_a_local_endpoint_of_their_family() {
        let local = [ip("192.0.2.1")];
        assert!(check_families(&local, &[ip("192.0.2.2")], &[]).is_ok());
        let e = check_families(&local, &[ip("2001:db8::2")], &[]).unwrap_err();
        assert!(e.to_string().contains("[gateway] local") && e.to_string().contains("IPv6"));
        let e = check_families(&local, &[ip("192.0.2.2")], &[ip("fe80::1")]).unwrap_err();
        assert!(e.to_string().contains("[gateway] next_hop"), "{e}");
        assert!(check_families(&local, &[ip("198.51.100.2")], &[ip("192.0.2.254")]).is_ok());
    }

    #[test]
    fn each_peer_has_one_next_hop() {
        let peers = [ip("198.51.100.2"), ip("198.51.100.3"), ip("2001:db8::2")];
        assert_eq!(
            next_hops(&peers, &[ip("192.0.2.254")]),
            vec![ip("192.0.2.254"), ip("2001:db8::2")]
        );
        assert_eq!(next_hops(&peers[..2], &[]), peers[..2].to_vec());
    }
}
