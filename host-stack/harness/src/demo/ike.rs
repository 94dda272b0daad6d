//! The demo's key management: the two gateways' `[[connection]]` entries negotiated with
//! IKEv2 — two espo daemons whose datagrams cross the gateways' own cable as Ethernet
//! frames (UDP 500, and 4500 behind the non-ESP marker), before any traffic — and the
//! CHILD_SAs they agree on become the SAs and policies the gateways run (in place of the
//! configurations' `[[sa]]` and `[[policy]]` entries, which `--manual-keys` uses instead).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use espo_config::Config;
use espo_ike::connection::NAT_T_PORT;
use espo_ike::daemon::{Event, KeyManager, Level, Request};
use espo_ike::datagram::{self, Intercepted};
use espo_ike::manager::{Connection, Daemon};
use espo_ipsec::spec::{PolicySpec, SaSpec};
use espo_offload::MemWire;

use super::DemoError;
use super::software_gw::{MAC_A, MAC_B};

/// What the negotiation gave: the configurations with the negotiated SAs and policies,
/// and what happened, for the summary (never keys).
#[derive(Debug)]
pub struct Negotiated {
    pub a: Config,
    pub b: Config,
    /// Gateway A's IKE SAs and CHILD_SAs (`espo ike list`): algorithms, identities, who
    /// initiated, selectors.
    pub log: Vec<String>,
    pub ike_sas: usize,
    pub child_sas: usize,
    /// IKE messages exchanged (each one frame on the cable).
    pub messages: usize,
    pub elapsed: Duration,
    /// The daemons, to renew the tunnels while traffic flows.
    pub keying: Option<super::keying::Keying>,
}

fn daemon(config: &Config, name: &str) -> Result<Daemon, DemoError> {
    let mut conns = Vec::new();
    let mut locals: Vec<SocketAddr> = Vec::new();
    for spec in &config.connections {
        for ip in &spec.local_addrs {
            let at = SocketAddr::new(*ip, spec.local_port);
            if !locals.contains(&at) {
                locals.push(at);
            }
        }
        conns.push(
            Connection::load(spec.clone())
                .map_err(|e| DemoError::Topology(format!("gateway {name}: {e}")))?,
        );
    }
    Ok(Daemon::new(conns, locals, Instant::now(), 0))
}

/// Negotiates every connection of `a` (the initiator: its children have start_action =
/// "start") with `b` over the cable whose ends are `near` (A's) and `far` (B's), and
/// returns both configurations with the CHILD_SAs in place of their manual SAs and
/// policies.
pub fn negotiate(
    a: &Config,
    b: &Config,
    near: &MemWire,
    far: &MemWire,
) -> Result<Negotiated, DemoError> {
    if a.connections.is_empty() || b.connections.is_empty() {
        return Err(DemoError::Topology(
            "the demo's configurations have no [[connection]] entries to negotiate (use --manual-keys)".into(),
        ));
    }
    let started = Instant::now();
    let mut daemons = [daemon(a, "A")?, daemon(b, "B")?];
    let mut sas: [Vec<SaSpec>; 2] = [Vec::new(), Vec::new()];
    let mut policies: [Vec<PolicySpec>; 2] = [Vec::new(), Vec::new()];
    type Child = (espo_ike::daemon::ChildId, (u32, IpAddr), (u32, IpAddr));
    let mut children: [Vec<Child>; 2] = [Vec::new(), Vec::new()];
    let mut log = Vec::new();
    let mut errors = Vec::new();
    let mut messages = 0;
    let ends = [near, far];
    let macs = [(MAC_A, MAC_B), (MAC_B, MAC_A)];
    let locals: [Vec<IpAddr>; 2] = [a, b].map(|c| {
        c.connections
            .iter()
            .flat_map(|k| k.local_addrs.iter().copied())
            .collect()
    });
    let now = Instant::now();
    for d in &mut daemons {
        d.tick(now);
    }
    for _round in 0..1000 {
        let mut moved = false;
        for (side, d) in daemons.iter_mut().enumerate() {
            while let Some(event) = d.next_event() {
                match event {
                    Event::Send {
                        local,
                        remote,
                        message,
                    } => {
                        let marker = local.port() == NAT_T_PORT;
                        let Some(mut frame) = datagram::frame(local, remote, &message, marker)
                        else {
                            errors.push(format!(
                                "an IKE message from {local} to {remote} does not fit a frame"
                            ));
                            continue;
                        };
                        frame[..6].copy_from_slice(&macs[side].1);
                        frame[6..12].copy_from_slice(&macs[side].0);
                        ends[side].send_bytes(&frame);
                        messages += 1;
                        moved = true;
                    }
                    Event::InstallChild {
                        id,
                        sas: pair,
                        policies: p,
                        ..
                    } => {
                        let [inbound, outbound] = *pair;
                        children[side].push((
                            id,
                            (inbound.spi, inbound.dst),
                            (outbound.spi, outbound.dst),
                        ));
                        sas[side].push(inbound);
                        sas[side].push(outbound);
                        policies[side].extend(p);
                    }
                    Event::RemoveChild { .. }
                    | Event::Keepalive { .. }
                    | Event::InstallTrap { .. } => {}
                    Event::Log { level, text, .. } => {
                        let who = if side == 0 { "A" } else { "B" };
                        if level <= Level::Warning {
                            errors.push(format!("gateway {who}: {text}"));
                        }
                    }
                }
            }
        }
        // Each end takes the frames that reached it: IKE to its addresses.
        for side in 0..2 {
            for frame in ends[side].drain() {
                moved = true;
                if let Some(Intercepted::Ike(m)) =
                    datagram::intercept(&frame, |ip| locals[side].contains(&ip))
                {
                    daemons[side].receive(&m.bytes, m.src, m.dst, Instant::now());
                }
            }
        }
        if !moved {
            break;
        }
    }
    if !errors.is_empty() {
        return Err(DemoError::Topology(format!(
            "key management failed: {}",
            errors.join("; ")
        )));
    }
    let wanted: usize = a.connections.iter().map(|c| c.children.len()).sum();
    if sas[0].len() != 2 * wanted || sas[1].len() != 2 * wanted {
        return Err(DemoError::Topology(format!(
            "key management established {} of {wanted} CHILD_SAs",
            sas[0].len() / 2
        )));
    }
    let list = daemons[0]
        .request(Request::List, Instant::now())
        .unwrap_or_default();
    log.extend(list.lines().map(str::to_string));
    let [sa_a, sa_b] = sas;
    let [po_a, po_b] = policies;
    let with = |c: &Config, sas: Vec<SaSpec>, policies: Vec<PolicySpec>| {
        let mut c = c.clone();
        c.sas = sas;
        // Outbound policies first, then the inbound ones; each in the order of the
        // configuration's own policies for the same selectors where it has them (the
        // tunnels keep their numbers), the others after them.
        let rank = |p: &PolicySpec| {
            c.policies
                .iter()
                .position(|q| q.dir == p.dir && q.src == p.src && q.dst == p.dst)
                .unwrap_or(usize::MAX)
        };
        let (mut out, mut inbound): (Vec<_>, Vec<_>) = policies
            .into_iter()
            .partition(|p| p.dir == espo_ipsec::spec::Direction::Out);
        out.sort_by_key(|p| rank(p));
        inbound.sort_by_key(|p| rank(p));
        out.extend(inbound);
        c.policies = out;
        c
    };
    let ike_sas = a.connections.len();
    let child_sas = wanted;
    let keying =
        super::keying::Keying::new(daemons, children, [near.clone(), far.clone()], locals, now);
    Ok(Negotiated {
        keying: Some(keying),
        ike_sas,
        child_sas,
        a: with(a, sa_a, po_a),
        b: with(b, sa_b, po_b),
        log,
        messages,
        elapsed: started.elapsed(),
    })
}
