//! The demo's key management while traffic flows: the two daemons that negotiated the
//! tunnels stay, their IKE messages keep crossing the cable as frames (through each
//! gateway's engine, as IKE reaches `espo run`), and what they renew is applied to the
//! gateways make-before-break, as `espo run` applies it to its live database: the new
//! inbound SA accepts beside the old one (which retires a while after the old CHILD_SA is
//! deleted), the end that asked for the rekey sends on the new outbound SA at once, the end
//! that answered once the old CHILD_SA is deleted; a collision's redundant CHILD_SA only
//! accepts until it goes.
//!
//! CHILD_SAs are renewed when their engine — the card for gateway A's AES-GCM SAs, software
//! for the others — counts `rekey_packets`; IKE SAs by time. The daemons' clock is the
//! demo's traffic: one second per 1000 packets delivered, so that a run renews the same
//! way on any machine.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use espo_ike::connection::NAT_T_PORT;
use espo_ike::daemon::{ChildId, Event, KeyManager, Level, Renewal};
use espo_ike::datagram;
use espo_ike::manager::Daemon;
use espo_ipsec::lifetime::LifetimeEvent;
use espo_ipsec::spec::{Direction, SaSpec};
use espo_offload::MemWire;

use super::software_gw::{MAC_A, MAC_B};

/// Packets delivered per second of the daemons' clock.
pub const PACKETS_PER_SECOND: u64 = 1000;
/// How long a renewed inbound SA keeps accepting after the old CHILD_SA went (the
/// daemons' clock), as `espo run`'s.
const RETIRE: Duration = Duration::from_secs(5);

/// What a gateway does for key management: its engine's SA changes.
pub trait Keyed {
    /// The new inbound SA accepts beside `old_spi` and passes the policy check where it does.
    fn inbound_beside(&mut self, old_spi: u32, new: &SaSpec) -> Result<(), String>;
    /// The new outbound SA takes `old_spi`'s place in every policy; the old one goes.
    fn outbound_instead(&mut self, old_spi: u32, new: &SaSpec) -> Result<(), String>;
    /// An outbound SA no policy sends on (a collision's redundant one).
    fn outbound_idle(&mut self, new: &SaSpec) -> Result<(), String>;
    fn remove(&mut self, spi: u32, dir: Direction, dst: IpAddr) -> Result<(), String>;
    /// Lifetime crossings the engine counted since the last call.
    fn lifetimes(&mut self, out: &mut Vec<LifetimeEvent>);
}

#[derive(Debug, Clone)]
struct Installed {
    inbound: (u32, IpAddr),
    /// The outbound SA its policies send on (while `held`, the one it renews).
    outbound: (u32, IpAddr),
    /// A renewal this end answered: its outbound SA, the time it sends at the latest, and
    /// the CHILD_SAs whose deletion lets it send.
    held: Option<(SaSpec, Instant, Vec<ChildId>)>,
    /// A collision's redundant CHILD_SA: its outbound SA sends nothing.
    idle: bool,
}

/// A CHILD_SA as the negotiation installed it: its id, its inbound and its outbound SA
/// (SPI and destination).
pub type InstalledChild = (ChildId, (u32, IpAddr), (u32, IpAddr));

/// What the renewals did, for the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Renewals {
    /// CHILD_SA renewals applied on gateway A and on gateway B.
    pub child: [u64; 2],
    /// IKE SA rekeys, as gateway A's log has them.
    pub ike: u64,
    pub collisions: u64,
    /// IKE messages exchanged while traffic flowed.
    pub messages: u64,
}

/// See the module documentation.
pub struct Keying {
    daemons: [Daemon; 2],
    /// The cable's ends: A's, B's.
    ends: [MemWire; 2],
    locals: [Vec<IpAddr>; 2],
    installed: [HashMap<ChildId, Installed>; 2],
    /// Inbound SAs replaced, to remove at a time: (when, side, spi, destination).
    retiring: Vec<(Instant, usize, u32, IpAddr)>,
    /// CHILD_SAs a renewal replaced, by side, until deleted.
    replaced: [Vec<ChildId>; 2],
    origin: Instant,
    /// The algorithm of every SA a renewal installed, by SPI (for the summary).
    algorithms: HashMap<u32, String>,
    pub renewals: Renewals,
    pub errors: Vec<String>,
}

impl std::fmt::Debug for Keying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keying")
            .field("renewals", &self.renewals)
            .finish_non_exhaustive()
    }
}

impl Keying {
    /// The daemons after the negotiation, with what each installed (id, inbound, outbound
    /// SPI and destination), the cable's ends and each side's addresses; `origin` is the
    /// daemons' clock at the start of traffic.
    pub fn new(
        daemons: [Daemon; 2],
        children: [Vec<InstalledChild>; 2],
        ends: [MemWire; 2],
        locals: [Vec<IpAddr>; 2],
        origin: Instant,
    ) -> Keying {
        let installed = children.map(|list| {
            list.into_iter()
                .map(|(id, inbound, outbound)| {
                    (
                        id,
                        Installed {
                            inbound,
                            outbound,
                            held: None,
                            idle: false,
                        },
                    )
                })
                .collect()
        });
        Keying {
            daemons,
            ends,
            locals,
            installed,
            retiring: Vec::new(),
            replaced: [Vec::new(), Vec::new()],
            origin,
            algorithms: HashMap::new(),
            renewals: Renewals::default(),
            errors: Vec::new(),
        }
    }

    /// The algorithm of an SA a renewal installed.
    pub fn algorithm(&self, spi: u32) -> Option<&str> {
        self.algorithms.get(&spi).map(String::as_str)
    }

    /// Gateway `side`'s addresses for IKE.
    pub fn locals(&self, side: usize) -> &[IpAddr] {
        &self.locals[side]
    }

    /// The daemons' clock after `delivered` packets.
    pub fn clock(&self, delivered: u64) -> Instant {
        self.origin + Duration::from_millis(delivered * 1000 / PACKETS_PER_SECOND)
    }

    /// An IKE message that reached gateway `side` (0: A, 1: B).
    pub fn receive(
        &mut self,
        side: usize,
        message: &[u8],
        src: SocketAddr,
        dst: SocketAddr,
        now: Instant,
    ) {
        self.daemons[side].receive(message, src, dst, now);
    }

    /// Gateway A's `espo ike list`.
    pub fn list(&mut self, now: Instant) -> String {
        self.daemons[0]
            .request(espo_ike::daemon::Request::List, now)
            .unwrap_or_default()
    }

    /// Timers, the engines' lifetime crossings, and whatever the daemons ask for.
    pub fn pump(&mut self, gateways: [&mut dyn Keyed; 2], now: Instant) {
        let mut gws = gateways;
        let mut crossed = Vec::new();
        for (side, gw) in gws.iter_mut().enumerate() {
            crossed.clear();
            gw.lifetimes(&mut crossed);
            for e in &crossed {
                let owner = self.installed[side].iter().find(|(_, r)| match e.dir {
                    Direction::In => r.inbound.0 == e.spi,
                    Direction::Out => r.outbound.0 == e.spi,
                });
                if let Some((id, _)) = owner {
                    self.daemons[side].lifetime_reached(*id, e.hard, e.cause, now);
                }
            }
            self.daemons[side].tick(now);
        }
        for _ in 0..16 {
            let mut moved = false;
            for (side, gw) in gws.iter_mut().enumerate() {
                while let Some(event) = self.daemons[side].next_event() {
                    moved = true;
                    self.event(side, &mut **gw, event, now);
                }
            }
            if !moved {
                break;
            }
        }
        for (side, gw) in gws.iter_mut().enumerate() {
            self.release(side, &mut **gw, now, None);
        }
        let due: Vec<(Instant, usize, u32, IpAddr)> = self
            .retiring
            .iter()
            .copied()
            .filter(|(at, ..)| *at <= now)
            .collect();
        self.retiring.retain(|(at, ..)| *at > now);
        for (_, side, spi, dst) in due {
            if let Err(e) = gws[side].remove(spi, Direction::In, dst) {
                self.errors.push(format!("retiring sa {spi:#010x}: {e}"));
            }
        }
    }

    fn event(&mut self, side: usize, gw: &mut dyn Keyed, event: Event, now: Instant) {
        match event {
            Event::Send {
                local,
                remote,
                message,
            } => {
                let marker = local.port() == NAT_T_PORT;
                let Some(mut frame) = datagram::frame(local, remote, &message, marker) else {
                    self.errors
                        .push(format!("an IKE message from {local} does not fit a frame"));
                    return;
                };
                let (own, peer) = if side == 0 {
                    (MAC_A, MAC_B)
                } else {
                    (MAC_B, MAC_A)
                };
                frame[..6].copy_from_slice(&peer);
                frame[6..12].copy_from_slice(&own);
                self.ends[side].send_bytes(&frame);
                self.renewals.messages += 1;
            }
            Event::InstallChild {
                id, sas, renews, ..
            } => {
                let [inbound, outbound] = *sas;
                if let Err(e) = self.install(side, gw, id, inbound, outbound, renews, now) {
                    self.errors.push(format!("gateway {}: {e}", name(side)));
                }
            }
            Event::RemoveChild { id } => {
                self.release(side, gw, now, Some(id));
                self.remove(side, gw, id, now);
            }
            Event::Log { level, text, .. } => {
                if text.contains("rekeyed: now") && text.contains("IKE_SA") {
                    // Both ends log it: count the initiator's line once per rekey.
                    if side == 0 {
                        self.renewals.ike += 1;
                    }
                }
                if text.contains("rekey collision") {
                    self.renewals.collisions += 1;
                }
                if level <= Level::Warning {
                    self.errors.push(format!("gateway {}: {text}", name(side)));
                }
            }
            Event::Keepalive { .. } | Event::InstallTrap { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn install(
        &mut self,
        side: usize,
        gw: &mut dyn Keyed,
        id: ChildId,
        inbound: SaSpec,
        outbound: SaSpec,
        renews: Option<Renewal>,
        now: Instant,
    ) -> Result<(), String> {
        let keys = ((inbound.spi, inbound.dst), (outbound.spi, outbound.dst));
        for sa in [&inbound, &outbound] {
            let name = match (sa.encryption, sa.integrity) {
                (Some(e), Some(i)) => format!("{e}+{i}"),
                (Some(e), None) => e.to_string(),
                (None, Some(i)) => format!("ah {i}"),
                (None, None) => "?".into(),
            };
            self.algorithms.insert(sa.spi, name);
        }
        match renews {
            Some(Renewal::Beside(survivor)) => {
                let rec = self.installed[side]
                    .get(&survivor)
                    .ok_or("a collision's survivor is not installed")?;
                gw.inbound_beside(rec.inbound.0, &inbound)?;
                gw.outbound_idle(&outbound)?;
                self.installed[side].insert(
                    id,
                    Installed {
                        inbound: keys.0,
                        outbound: keys.1,
                        held: None,
                        idle: true,
                    },
                );
            }
            Some(Renewal::Replaces { old, hold_outbound }) => {
                let rec = self.installed[side]
                    .remove(&old)
                    .ok_or("the CHILD_SA a rekey renews is not installed")?;
                gw.inbound_beside(rec.inbound.0, &inbound)?;
                self.retiring.push((
                    now + RETIRE + Duration::from_secs(1),
                    side,
                    rec.inbound.0,
                    rec.inbound.1,
                ));
                let mut after = rec.held.map(|h| h.2).unwrap_or_default();
                after.push(old);
                let (sending, held) = match hold_outbound {
                    Some(hold) => (rec.outbound, Some((outbound, now + hold, after))),
                    None => {
                        gw.outbound_instead(rec.outbound.0, &outbound)?;
                        (keys.1, None)
                    }
                };
                self.replaced[side].push(old);
                self.renewals.child[side] += 1;
                self.installed[side].insert(
                    id,
                    Installed {
                        inbound: keys.0,
                        outbound: sending,
                        held,
                        idle: false,
                    },
                );
            }
            None => return Err("a new CHILD_SA while traffic flows: the demo renews only".into()),
        }
        Ok(())
    }

    /// Held outbound SAs take the old ones' places: those waiting for `gone`, and those
    /// whose time is up.
    fn release(&mut self, side: usize, gw: &mut dyn Keyed, now: Instant, gone: Option<ChildId>) {
        let due: Vec<ChildId> = self.installed[side]
            .iter()
            .filter(|(_, r)| {
                r.held.as_ref().is_some_and(|(_, until, after)| {
                    *until <= now || gone.is_some_and(|g| after.contains(&g))
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(rec) = self.installed[side].get_mut(&id) else {
                continue;
            };
            let Some((spec, ..)) = rec.held.take() else {
                continue;
            };
            let new = (spec.spi, spec.dst);
            match gw.outbound_instead(rec.outbound.0, &spec) {
                Ok(()) => rec.outbound = new,
                Err(e) => self.errors.push(format!("gateway {}: {e}", name(side))),
            }
        }
    }

    fn remove(&mut self, side: usize, gw: &mut dyn Keyed, id: ChildId, now: Instant) {
        if let Some(pos) = self.replaced[side].iter().position(|c| *c == id) {
            // Renewed: its inbound SA retires on its own time, its outbound SA went when
            // the new one took its place.
            self.replaced[side].swap_remove(pos);
            return;
        }
        let Some(rec) = self.installed[side].remove(&id) else {
            return;
        };
        if rec.idle {
            // A collision's redundant CHILD_SA: nothing sends on it.
            let _ = gw.remove(rec.outbound.0, Direction::Out, rec.outbound.1);
            self.retiring.push((
                now + Duration::from_secs(1),
                side,
                rec.inbound.0,
                rec.inbound.1,
            ));
        } else {
            self.errors.push(format!(
                "gateway {}: a CHILD_SA in use was deleted while traffic flowed",
                name(side)
            ));
        }
    }
}

fn name(side: usize) -> &'static str {
    if side == 0 { "A" } else { "B" }
}
