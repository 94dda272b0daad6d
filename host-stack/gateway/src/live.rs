//! The live SA and policy database of a running gateway: what `espo sa ...` and
//! `espo policy ...` change while traffic flows.
//!
//! The control thread owns the [`Live`] database: the catalog of SAs (their
//! specifications, keys included — zeroized when they go) and policies, with their
//! directions and policy ids; every request is validated against it first, then applied to
//! the engine through [`Engine`], then recorded. The engine applies each change between
//! two batches of packets (the software engine's halves through their
//! [mailboxes](crate::mailbox), the offload engine under the lock its datapath takes per
//! batch), so no packet sees half of a change.
//!
//! Make-before-break: `sa replace` on an inbound SA puts the new SA beside the old one,
//! both accepting, and retires the old one when its grace period is over; on an outbound
//! SA every policy switches to the new SA between two batches. Replacing both SAs of a
//! tunnel without loss is therefore: on the receiving end replace the inbound SA, then on
//! the sending end replace the outbound one (README, "Changing SAs while espo runs").
//!
//! Every outbound SA's sequence numbers come from a durable reservation in the state
//! directory ([`crate::keeper`]); an SA whose state cannot be read is installed but neither
//! sends nor accepts, and the status says why.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use espo_config::control::Request;
use espo_ipsec::engine::ChangeError;
use espo_ipsec::sa::SeqReservation;
use espo_ipsec::selector::Cidr;
use espo_ipsec::spd::PolicyId;
use espo_ipsec::spec::{
    Direction, PolicyAction, PolicySpec, SaProtocol, SaSpec, first_shared_aead_key,
};

use crate::keeper::{Keeper, Start};
use crate::mailbox::MailboxError;

/// Why a change could not be applied to the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineChangeError {
    #[error(transparent)]
    Refused(#[from] ChangeError),
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    #[error("{0}")]
    Failed(String),
}

/// How an SA starts in the engine.
#[derive(Debug, Clone)]
pub struct Install {
    /// When it is installed, on the engine's clock (time lifetimes).
    pub installed: Duration,
    /// Outbound: the numbers it may use.
    pub reservation: Option<SeqReservation>,
    /// Inbound: nothing at or below this is accepted (the durable replay mark).
    pub closed_at: Option<u64>,
    /// Installed disabled: it neither sends nor accepts (its state could not be read).
    pub disabled: bool,
}

/// The engine behind a running gateway, as the control thread changes it. Each call is
/// applied between two batches of packets.
pub trait Engine: Sync {
    fn add_sa(&self, sa: &SaSpec, dir: Direction, how: Install) -> Result<(), EngineChangeError>;
    fn remove_sa(&self, spi: u32, dir: Direction, dst: IpAddr) -> Result<(), EngineChangeError>;
    /// Outbound: `new` takes `old_spi`'s place in every policy and the old SA goes.
    /// Inbound: `new` accepts beside the old SA and passes the policy check where it does.
    fn replace_sa(
        &self,
        old_spi: u32,
        dir: Direction,
        new: &SaSpec,
        how: Install,
    ) -> Result<(), EngineChangeError>;
    fn add_policy(
        &self,
        policy: &PolicySpec,
        id: PolicyId,
        position: Option<usize>,
    ) -> Result<(), EngineChangeError>;
    fn remove_policy(&self, dir: Direction, id: PolicyId) -> Result<(), EngineChangeError>;
    fn set_bundle(
        &self,
        dir: Direction,
        id: PolicyId,
        spis: &[u32],
    ) -> Result<(), EngineChangeError>;
    /// Whether an inbound SA's packets can reach the engine at all (the software engine
    /// receives on sockets opened at start).
    fn can_receive(&self, sa: &SaSpec) -> Result<(), String> {
        let _ = sa;
        Ok(())
    }
}

/// The routes into the TUN device for outbound policies' destinations.
pub trait Routes {
    fn add(&mut self, dst: Cidr) -> Result<(), String>;
    fn remove(&mut self, dst: Cidr);
}

/// One SA the gateway holds.
#[derive(Debug)]
pub struct CatalogSa {
    pub spec: SaSpec,
    pub dir: Direction,
    /// Inbound, replaced: when it goes, and by which SA.
    pub retire: Option<(Instant, u32)>,
    /// Its durable state could not be read: it neither sends nor accepts.
    pub state_error: Option<String>,
}

/// One policy the gateway holds.
#[derive(Debug, Clone)]
pub struct CatalogPolicy {
    pub id: PolicyId,
    pub spec: PolicySpec,
}

/// A reply to a control request: `ok` or `error`, and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub ok: bool,
    pub text: String,
}

impl Reply {
    fn ok(text: impl Into<String>) -> Reply {
        Reply {
            ok: true,
            text: text.into(),
        }
    }

    fn error(text: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            text: text.into(),
        }
    }
}

/// The live database. See the module documentation.
pub struct Live<'a> {
    sas: Vec<CatalogSa>,
    /// Per direction, in search order: `[in, out]`.
    policies: [Vec<CatalogPolicy>; 2],
    next_policy_id: u32,
    engine: &'a dyn Engine,
    keeper: Option<&'a Mutex<Keeper>>,
    routes: &'a mut dyn Routes,
    started: Instant,
    /// What happened, newest last (a few entries for `espo status`).
    log: Vec<String>,
}

fn side(dir: Direction) -> usize {
    match dir {
        Direction::In => 0,
        Direction::Out => 1,
    }
}

const LOG_KEPT: usize = 16;

impl<'a> Live<'a> {
    /// The database of a gateway that started with `sas` (their directions resolved, their
    /// state already loaded and installed in the engine) and `policies` (ids = their
    /// index).
    pub fn new(
        sas: Vec<CatalogSa>,
        policies: &[PolicySpec],
        engine: &'a dyn Engine,
        keeper: Option<&'a Mutex<Keeper>>,
        routes: &'a mut dyn Routes,
        started: Instant,
    ) -> Live<'a> {
        let mut by_side: [Vec<CatalogPolicy>; 2] = [Vec::new(), Vec::new()];
        for (i, p) in policies.iter().enumerate() {
            by_side[side(p.dir)].push(CatalogPolicy {
                id: PolicyId(i as u32),
                spec: p.clone(),
            });
        }
        Live {
            sas,
            policies: by_side,
            next_policy_id: policies.len() as u32,
            engine,
            keeper,
            routes,
            started,
            log: Vec::new(),
        }
    }

    pub fn sas(&self) -> &[CatalogSa] {
        &self.sas
    }

    /// The SA specification of (spi, dst, dir), for status.
    pub fn spec(&self, spi: u32, dst: IpAddr, dir: Direction) -> Option<&SaSpec> {
        self.sas
            .iter()
            .find(|s| s.spec.spi == spi && s.spec.dst == dst && s.dir == dir)
            .map(|s| &s.spec)
    }

    pub fn policies(&self, dir: Direction) -> &[CatalogPolicy] {
        &self.policies[side(dir)]
    }

    /// Recent changes, oldest first.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    fn note(&mut self, what: String) {
        if self.log.len() == LOG_KEPT {
            self.log.remove(0);
        }
        let at = self.started.elapsed().as_secs();
        self.log.push(format!("{at:>6} s  {what}"));
    }

    /// Answers a request other than `status` (which the caller renders).
    pub fn handle(&mut self, request: Request) -> Reply {
        let result = match request {
            Request::Status => return Reply::error("status is answered by the gateway"),
            Request::SaList => return Reply::ok(self.sa_list()),
            Request::PolicyList => return Reply::ok(self.policy_list()),
            Request::Wireshark => {
                return Reply::ok(crate::wireshark::esp_table(
                    self.sas.iter().map(|s| &s.spec),
                ));
            }
            Request::IkeList | Request::IkeUp(_) | Request::IkeDown(_) => {
                return Reply::error("this gateway has no IKEv2 connections ([[connection]])");
            }
            Request::SaAdd(sas) => self.add_sas(sas),
            Request::SaReplace { old_spi, sa, grace } => self.replace_sa(old_spi, *sa, grace),
            Request::SaDel { spi, dir, dst } => self.del_sa(spi, dir, dst),
            Request::PolicyAdd { position, policies } => match policies.validate(&self.specs()) {
                Ok(specs) => self.add_policies(specs, position),
                Err(e) => Err(e.to_string()),
            },
            Request::PolicyDel { id } => self.del_policy(PolicyId(id)),
            Request::PolicySet { id, sas } => self.set_bundle(PolicyId(id), &sas),
        };
        match result {
            Ok(text) => {
                self.note(text.clone());
                Reply::ok(text)
            }
            Err(e) => Reply::error(e),
        }
    }

    /// Retires inbound SAs whose grace period is over; call it now and then.
    pub fn tick(&mut self, now: Instant) {
        let due: Vec<(u32, IpAddr, u32)> = self
            .sas
            .iter()
            .filter_map(|s| match s.retire {
                Some((at, by)) if at <= now => Some((s.spec.spi, s.spec.dst, by)),
                _ => None,
            })
            .collect();
        for (spi, dst, by) in due {
            match self.engine.remove_sa(spi, Direction::In, dst) {
                Ok(()) => {
                    if let Some(i) = self.find(spi, Some(Direction::In), Some(dst)) {
                        let gone = self.sas.remove(i);
                        if let Some(k) = self.keeper {
                            lock(k).forget(&gone.spec, Direction::In, true);
                        }
                    }
                    self.rename_in_policies(Direction::In, spi, by);
                    self.note(format!(
                        "sa {spi:#010x} in retired: its grace period ended; sa {by:#010x} took its place"
                    ));
                }
                Err(e) => {
                    // Try again at the next tick (the datapath may be stopping).
                    self.note(format!("sa {spi:#010x} in: retiring failed: {e}"));
                    if let Some(i) = self.find(spi, Some(Direction::In), Some(dst)) {
                        self.sas[i].retire = Some((now + Duration::from_secs(1), by));
                    }
                }
            }
        }
    }

    fn specs(&self) -> Vec<SaSpec> {
        self.sas.iter().map(|s| s.spec.clone()).collect()
    }

    fn find(&self, spi: u32, dir: Option<Direction>, dst: Option<IpAddr>) -> Option<usize> {
        self.sas.iter().position(|s| {
            s.spec.spi == spi
                && dir.is_none_or(|d| d == s.dir)
                && dst.is_none_or(|d| d == s.spec.dst)
        })
    }

    /// The one SA `spi` names, or a message saying why not.
    fn only(&self, spi: u32, dir: Option<Direction>, dst: Option<IpAddr>) -> Result<usize, String> {
        let matches: Vec<usize> = (0..self.sas.len())
            .filter(|&i| {
                let s = &self.sas[i];
                s.spec.spi == spi
                    && dir.is_none_or(|d| d == s.dir)
                    && dst.is_none_or(|d| d == s.spec.dst)
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no sa {spi:#010x}{}", qualifiers(dir, dst))),
            _ => Err(format!(
                "sa {spi:#010x} names {} SAs: say which with dir= and dst=",
                matches.len()
            )),
        }
    }

    /// Checks a new SA against those held: SPI and destination unused, no AEAD key shared,
    /// and (inbound) receivable.
    fn check_new(&self, sa: &SaSpec, dir: Direction, except: Option<usize>) -> Result<(), String> {
        if let Some(i) = self.find(sa.spi, None, Some(sa.dst))
            && Some(i) != except
        {
            return Err(format!(
                "sa {:#010x} with destination {} already exists ({})",
                sa.spi,
                sa.dst,
                self.sas[i].dir.name()
            ));
        }
        if dir == Direction::Out && self.find(sa.spi, Some(Direction::Out), None).is_some() {
            return Err(format!(
                "an outbound sa {:#010x} already exists (outbound SPIs are unique)",
                sa.spi
            ));
        }
        let mut all = self.specs();
        all.push(sa.clone());
        if let Some((j, i)) = first_shared_aead_key(&all)
            && i == all.len() - 1
        {
            return Err(format!(
                "sa {:#010x}: field `key`: the same key and salt as sa {:#010x}: two SAs under one AEAD key repeat nonces; give each SA its own key",
                sa.spi, all[j].spi
            ));
        }
        if dir == Direction::In {
            self.engine
                .can_receive(sa)
                .map_err(|e| format!("sa {:#010x}: {e}", sa.spi))?;
        }
        Ok(())
    }

    /// How a new SA starts: its durable state loaded (and, outbound, numbers reserved).
    fn install(&self, sa: &mut SaSpec, dir: Direction) -> Result<Install, String> {
        let installed = self.started.elapsed();
        let Some(keeper) = self.keeper else {
            return Ok(Install {
                installed,
                reservation: None,
                closed_at: None,
                disabled: false,
            });
        };
        match lock(keeper).start(sa, dir) {
            Ok(Start::Outbound { seq, reservation }) => {
                sa.seq = seq;
                Ok(Install {
                    installed,
                    reservation: Some(reservation),
                    closed_at: None,
                    disabled: false,
                })
            }
            Ok(Start::Inbound { closed_at }) => {
                sa.seq = sa.seq.max(closed_at.unwrap_or(0));
                Ok(Install {
                    installed,
                    reservation: None,
                    closed_at,
                    disabled: false,
                })
            }
            // A new SA whose state cannot be kept is refused rather than installed dead.
            Err(e) => Err(e.to_string()),
        }
    }

    fn add_sas(&mut self, sas: Vec<SaSpec>) -> Result<String, String> {
        let mut all = self.specs();
        for sa in &sas {
            let dir = sa
                .dir
                .ok_or_else(|| format!("sa {:#010x}: no direction", sa.spi))?;
            self.check_new(sa, dir, None)?;
            all.push(sa.clone());
        }
        if let Some((j, i)) = first_shared_aead_key(&all) {
            return Err(format!(
                "sa {:#010x}: field `key`: the same key and salt as sa {:#010x}: two SAs under one AEAD key repeat nonces",
                all[i].spi, all[j].spi
            ));
        }
        let mut added: Vec<(u32, Direction, IpAddr)> = Vec::new();
        for mut sa in sas {
            let dir = sa.dir.unwrap_or(Direction::In);
            let result = self.install(&mut sa, dir).and_then(|how| {
                self.engine
                    .add_sa(&sa, dir, how)
                    .map_err(|e| format!("sa {:#010x}: {e}", sa.spi))
            });
            if let Err(e) = result {
                // All or nothing: take back what this request added.
                for (spi, dir, dst) in added {
                    let _ = self.engine.remove_sa(spi, dir, dst);
                    if let Some(i) = self.find(spi, Some(dir), Some(dst)) {
                        self.sas.remove(i);
                    }
                }
                return Err(e);
            }
            added.push((sa.spi, dir, sa.dst));
            self.sas.push(CatalogSa {
                spec: sa,
                dir,
                retire: None,
                state_error: None,
            });
        }
        Ok(added
            .iter()
            .map(|(spi, dir, _)| format!("added sa {spi:#010x} {}", dir.name()))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    fn replace_sa(
        &mut self,
        old_spi: u32,
        mut sa: SaSpec,
        grace: Duration,
    ) -> Result<String, String> {
        let old = self.only(old_spi, sa.dir, None)?;
        let dir = self.sas[old].dir;
        if self.sas[old].retire.is_some() {
            return Err(format!(
                "sa {old_spi:#010x} is already being replaced (it retires after its grace period)"
            ));
        }
        let old_spec = &self.sas[old].spec;
        if (old_spec.protocol, old_spec.mode) != (sa.protocol, sa.mode) {
            return Err(format!(
                "sa {:#010x} cannot replace sa {old_spi:#010x}: the protocol and mode must stay the same ({} {:?})",
                sa.spi,
                old_spec.protocol.name(),
                old_spec.mode
            ));
        }
        self.check_new(&sa, dir, None)?;
        sa.dir = Some(dir);
        let how = self.install(&mut sa, dir)?;
        self.engine
            .replace_sa(old_spi, dir, &sa, how)
            .map_err(|e| format!("sa {:#010x}: {e}", sa.spi))?;
        let new_spi = sa.spi;
        match dir {
            Direction::Out => {
                let gone = self.sas.remove(old);
                if let Some(k) = self.keeper {
                    lock(k).forget(&gone.spec, Direction::Out, true);
                }
                self.rename_in_policies(Direction::Out, old_spi, new_spi);
            }
            Direction::In => {
                self.sas[old].retire = Some((Instant::now() + grace, new_spi));
            }
        }
        self.sas.push(CatalogSa {
            spec: sa,
            dir,
            retire: None,
            state_error: None,
        });
        Ok(match dir {
            Direction::Out => format!(
                "replaced sa {old_spi:#010x} out by sa {new_spi:#010x}: every policy sends on it from the next packet"
            ),
            Direction::In => format!(
                "sa {new_spi:#010x} in accepts beside sa {old_spi:#010x}, which retires in {} s",
                grace.as_secs()
            ),
        })
    }

    fn del_sa(
        &mut self,
        spi: u32,
        dir: Option<Direction>,
        dst: Option<IpAddr>,
    ) -> Result<String, String> {
        let i = self.only(spi, dir, dst)?;
        let (dir, dst) = (self.sas[i].dir, self.sas[i].spec.dst);
        if let Some(p) = self.policies[side(dir)]
            .iter()
            .find(|p| p.spec.sa.contains(&spi))
        {
            return Err(format!(
                "sa {spi:#010x} is in use by policy {}: remove the policy or change its SAs first",
                p.id.0
            ));
        }
        self.engine
            .remove_sa(spi, dir, dst)
            .map_err(|e| e.to_string())?;
        let gone = self.sas.remove(i);
        if let Some(k) = self.keeper {
            lock(k).forget(&gone.spec, dir, false);
        }
        Ok(format!("removed sa {spi:#010x} {}", dir.name()))
    }

    /// Installs a CHILD_SA negotiated by IKE: its inbound SA first (so that the peer's
    /// first packet is accepted), then its outbound SA, then its policies — in front of
    /// every other policy, so that a trap or a wider policy never shadows them. Its keys are
    /// new, so it keeps no durable state: sequence numbers start at 1 under a key never used
    /// before. All or nothing: on an error nothing of it stays. Returns the policies' ids.
    pub fn install_negotiated(
        &mut self,
        sas: [SaSpec; 2],
        policies: Vec<PolicySpec>,
        owner: &str,
    ) -> Result<Vec<PolicyId>, String> {
        let [inbound, outbound] = sas;
        if inbound.dir != Some(Direction::In) || outbound.dir != Some(Direction::Out) {
            return Err(format!(
                "{owner}: a CHILD_SA is an inbound SA and an outbound SA"
            ));
        }
        self.check_new_pair(&inbound, &outbound, owner)?;
        let how = self.fresh();
        self.engine
            .add_sa(&inbound, Direction::In, how.clone())
            .map_err(|e| format!("{owner}: sa {:#010x} in: {e}", inbound.spi))?;
        if let Err(e) = self.engine.add_sa(&outbound, Direction::Out, how) {
            let _ = self
                .engine
                .remove_sa(inbound.spi, Direction::In, inbound.dst);
            return Err(format!("{owner}: sa {:#010x} out: {e}", outbound.spi));
        }
        let (spi_in, dst_in, spi_out, dst_out) =
            (inbound.spi, inbound.dst, outbound.spi, outbound.dst);
        for (spec, dir) in [(inbound, Direction::In), (outbound, Direction::Out)] {
            self.sas.push(CatalogSa {
                spec,
                dir,
                retire: None,
                state_error: None,
            });
        }
        let first_id = self.next_policy_id;
        let count = policies.len() as u32;
        let mut outs = 0;
        let mut ins = 0;
        let mut positioned = Vec::with_capacity(policies.len());
        for p in policies {
            let at = match p.dir {
                Direction::Out => &mut outs,
                Direction::In => &mut ins,
            };
            positioned.push((p, *at));
            *at += 1;
        }
        for (p, at) in positioned {
            if let Err(e) = self.add_policies(vec![p], Some(at)) {
                let ids: Vec<PolicyId> = (first_id..self.next_policy_id).map(PolicyId).collect();
                self.uninstall_negotiated((spi_in, dst_in), (spi_out, dst_out), &ids, owner);
                return Err(format!("{owner}: {e}"));
            }
        }
        self.note(format!(
            "{owner}: installed sa {spi_in:#010x} in, sa {spi_out:#010x} out and {count} policies"
        ));
        Ok((first_id..first_id + count).map(PolicyId).collect())
    }

    /// Renews a negotiated CHILD_SA (a rekey), make-before-break: the new inbound SA
    /// accepts at once beside the old one, which retires after `grace`; every policy that
    /// sent on the old outbound SA sends on the new one from the next packet. The policies
    /// stay. No durable state, as for [`install_negotiated`](Self::install_negotiated).
    pub fn replace_negotiated(
        &mut self,
        old_inbound: (u32, IpAddr),
        old_outbound: (u32, IpAddr),
        sas: [SaSpec; 2],
        grace: Duration,
        owner: &str,
    ) -> Result<(), String> {
        let [inbound, outbound] = sas;
        self.check_renewal(
            old_inbound,
            Some(old_outbound),
            [&inbound, &outbound],
            owner,
        )?;
        self.renew_inbound(old_inbound, inbound, grace, owner)?;
        self.renew_outbound(old_outbound, outbound, owner)
    }

    /// The first half of [`replace_negotiated`](Self::replace_negotiated): the new inbound
    /// SA accepts beside the old one, which retires after `grace`; the policies go on
    /// sending on the old outbound SA until [`renew_outbound`](Self::renew_outbound).
    /// `outbound` is checked with it (it must be installable then), not installed.
    pub fn renew_inbound_first(
        &mut self,
        old_inbound: (u32, IpAddr),
        sas: [&SaSpec; 2],
        grace: Duration,
        owner: &str,
    ) -> Result<(), String> {
        self.check_renewal(old_inbound, None, sas, owner)?;
        self.renew_inbound(old_inbound, sas[0].clone(), grace, owner)
    }

    /// The old SAs of a renewal are there and not already replaced; the new ones are new,
    /// and so are their keys.
    fn check_renewal(
        &self,
        old_inbound: (u32, IpAddr),
        old_outbound: Option<(u32, IpAddr)>,
        [inbound, outbound]: [&SaSpec; 2],
        owner: &str,
    ) -> Result<(), String> {
        let old_in = self
            .find(old_inbound.0, Some(Direction::In), Some(old_inbound.1))
            .ok_or_else(|| format!("{owner}: no sa {:#010x} in to renew", old_inbound.0))?;
        if let Some(old_outbound) = old_outbound
            && self
                .find(old_outbound.0, Some(Direction::Out), Some(old_outbound.1))
                .is_none()
        {
            return Err(format!(
                "{owner}: no sa {:#010x} out to renew",
                old_outbound.0
            ));
        }
        if self.sas[old_in].retire.is_some() {
            return Err(format!(
                "{owner}: sa {:#010x} in is already being replaced",
                old_inbound.0
            ));
        }
        self.check_new_pair(inbound, outbound, owner)
    }

    /// A CHILD_SA's two new SAs: each acceptable on its own, and no key of theirs in use.
    fn check_new_pair(
        &self,
        inbound: &SaSpec,
        outbound: &SaSpec,
        owner: &str,
    ) -> Result<(), String> {
        self.check_new(inbound, Direction::In, None)?;
        self.check_new(outbound, Direction::Out, None)?;
        let mut all = self.specs();
        all.push(inbound.clone());
        all.push(outbound.clone());
        if first_shared_aead_key(&all).is_some() {
            return Err(format!("{owner}: a key of the new SAs is already in use"));
        }
        Ok(())
    }

    fn fresh(&self) -> Install {
        Install {
            installed: self.started.elapsed(),
            reservation: None,
            closed_at: None,
            disabled: false,
        }
    }

    fn renew_inbound(
        &mut self,
        old_inbound: (u32, IpAddr),
        inbound: SaSpec,
        grace: Duration,
        owner: &str,
    ) -> Result<(), String> {
        let old_in = self
            .find(old_inbound.0, Some(Direction::In), Some(old_inbound.1))
            .ok_or_else(|| format!("{owner}: no sa {:#010x} in to renew", old_inbound.0))?;
        self.engine
            .replace_sa(old_inbound.0, Direction::In, &inbound, self.fresh())
            .map_err(|e| format!("{owner}: sa {:#010x} in: {e}", inbound.spi))?;
        let new_in = inbound.spi;
        self.sas[old_in].retire = Some((Instant::now() + grace, new_in));
        self.sas.push(CatalogSa {
            spec: inbound,
            dir: Direction::In,
            retire: None,
            state_error: None,
        });
        self.note(format!(
            "{owner}: renewed: sa {new_in:#010x} in beside sa {:#010x} (retiring in {} s)",
            old_inbound.0,
            grace.as_secs(),
        ));
        Ok(())
    }

    /// The second half of a renewal: every policy that sent on the old outbound SA sends on
    /// the new one from the next packet, and the old one goes.
    pub fn renew_outbound(
        &mut self,
        old_outbound: (u32, IpAddr),
        outbound: SaSpec,
        owner: &str,
    ) -> Result<(), String> {
        let Some(old_out) = self.find(old_outbound.0, Some(Direction::Out), Some(old_outbound.1))
        else {
            return Err(format!(
                "{owner}: no sa {:#010x} out to renew",
                old_outbound.0
            ));
        };
        self.check_new(&outbound, Direction::Out, None)?;
        self.engine
            .replace_sa(old_outbound.0, Direction::Out, &outbound, self.fresh())
            .map_err(|e| format!("{owner}: sa {:#010x} out: {e}", outbound.spi))?;
        self.sas.remove(old_out);
        let new_out = outbound.spi;
        self.rename_in_policies(Direction::Out, old_outbound.0, new_out);
        self.sas.push(CatalogSa {
            spec: outbound,
            dir: Direction::Out,
            retire: None,
            state_error: None,
        });
        self.note(format!(
            "{owner}: renewed: sa {new_out:#010x} out sends for sa {:#010x}",
            old_outbound.0
        ));
        Ok(())
    }

    /// Installs the redundant CHILD_SA of a rekey collision (RFC 7296 §2.8.1) beside the
    /// one that stays, whose inbound SA is `survivor_in`: the new inbound SA accepts at once
    /// and passes the inbound policy check wherever the survivor's does (the peer may send on
    /// it until it is deleted); the new outbound SA is held, but no policy sends on it.
    /// It goes with [`uninstall_negotiated`](Self::uninstall_negotiated) and no policies.
    pub fn install_beside(
        &mut self,
        survivor_in: (u32, IpAddr),
        sas: [SaSpec; 2],
        owner: &str,
    ) -> Result<(), String> {
        let [inbound, outbound] = sas;
        if self
            .find(survivor_in.0, Some(Direction::In), Some(survivor_in.1))
            .is_none()
        {
            return Err(format!(
                "{owner}: no sa {:#010x} in to stand beside",
                survivor_in.0
            ));
        }
        self.check_new_pair(&inbound, &outbound, owner)?;
        let how = self.fresh();
        self.engine
            .replace_sa(survivor_in.0, Direction::In, &inbound, how.clone())
            .map_err(|e| format!("{owner}: sa {:#010x} in: {e}", inbound.spi))?;
        if let Err(e) = self.engine.add_sa(&outbound, Direction::Out, how) {
            let _ = self
                .engine
                .remove_sa(inbound.spi, Direction::In, inbound.dst);
            return Err(format!("{owner}: sa {:#010x} out: {e}", outbound.spi));
        }
        let (new_in, new_out) = (inbound.spi, outbound.spi);
        for (spec, dir) in [(inbound, Direction::In), (outbound, Direction::Out)] {
            self.sas.push(CatalogSa {
                spec,
                dir,
                retire: None,
                state_error: None,
            });
        }
        self.note(format!(
            "{owner}: rekey collision: sa {new_in:#010x} in accepts beside sa {:#010x} until it is deleted, sa {new_out:#010x} out sends nothing",
            survivor_in.0
        ));
        Ok(())
    }

    /// Installs a connection's trap policies (`start_action = "trap"`) after every other
    /// policy: a negotiated CHILD_SA's policies, put in front, take its traffic from them.
    pub fn install_trap(
        &mut self,
        policies: Vec<PolicySpec>,
        owner: &str,
    ) -> Result<Vec<PolicyId>, String> {
        let first_id = self.next_policy_id;
        let count = policies.len() as u32;
        if let Err(e) = self.add_policies(policies, None) {
            let ids: Vec<PolicyId> = (first_id..self.next_policy_id).map(PolicyId).collect();
            self.uninstall_trap(&ids, owner);
            return Err(format!("{owner}: {e}"));
        }
        self.note(format!("{owner}: installed {count} trap policies"));
        Ok((first_id..first_id + count).map(PolicyId).collect())
    }

    /// Removes trap policies.
    pub fn uninstall_trap(&mut self, policies: &[PolicyId], owner: &str) {
        for &id in policies {
            if self.find_policy(id).is_some()
                && let Err(e) = self.del_policy(id)
            {
                self.note(format!("{owner}: removing policy {}: {e}", id.0));
            }
        }
    }

    /// Removes what [`install_negotiated`](Self::install_negotiated) installed: the
    /// policies first (packets meet the next policy, never a removed SA), then the
    /// outbound SA, then the inbound one.
    pub fn uninstall_negotiated(
        &mut self,
        inbound: (u32, IpAddr),
        outbound: (u32, IpAddr),
        policies: &[PolicyId],
        owner: &str,
    ) {
        for &id in policies {
            if self.find_policy(id).is_some()
                && let Err(e) = self.del_policy(id)
            {
                self.note(format!("{owner}: removing policy {}: {e}", id.0));
            }
        }
        for ((spi, dst), dir) in [(outbound, Direction::Out), (inbound, Direction::In)] {
            if let Some(i) = self.find(spi, Some(dir), Some(dst)) {
                match self.engine.remove_sa(spi, dir, dst) {
                    Ok(()) => {
                        self.sas.remove(i);
                    }
                    Err(e) => self.note(format!(
                        "{owner}: removing sa {spi:#010x} {}: {e}",
                        dir.name()
                    )),
                }
            }
        }
        self.note(format!(
            "{owner}: removed sa {:#010x} in and sa {:#010x} out",
            inbound.0, outbound.0
        ));
    }

    /// Every SA a policy names is held in the policy's direction.
    fn check_bundle(&self, dir: Direction, spis: &[u32]) -> Result<(), String> {
        for &spi in spis {
            match self.find(spi, Some(dir), None) {
                Some(i) if self.sas[i].retire.is_none() => {}
                Some(_) => {
                    return Err(format!(
                        "sa {spi:#010x} is retiring (it was replaced); name its replacement"
                    ));
                }
                None if self.find(spi, None, None).is_some() => {
                    return Err(format!(
                        "sa {spi:#010x} is not an {} SA: an SA carries one direction",
                        dir.name()
                    ));
                }
                None => return Err(format!("no sa {spi:#010x}")),
            }
        }
        Ok(())
    }

    fn add_policies(
        &mut self,
        specs: Vec<PolicySpec>,
        position: Option<usize>,
    ) -> Result<String, String> {
        for p in &specs {
            if p.action == PolicyAction::Protect {
                self.check_bundle(p.dir, &p.sa)?;
            }
        }
        let mut done = Vec::new();
        for (k, spec) in specs.into_iter().enumerate() {
            let id = PolicyId(self.next_policy_id);
            let at = position.map(|p| p + k);
            if spec.dir == Direction::Out
                && !self.policies[1].iter().any(|p| p.spec.dst == spec.dst)
            {
                self.routes
                    .add(spec.dst)
                    .map_err(|e| format!("routing {} into the TUN device: {e}", spec.dst))?;
            }
            if let Err(e) = self.engine.add_policy(&spec, id, at) {
                if spec.dir == Direction::Out
                    && !self.policies[1].iter().any(|p| p.spec.dst == spec.dst)
                {
                    self.routes.remove(spec.dst);
                }
                return Err(if done.is_empty() {
                    e.to_string()
                } else {
                    format!("{}\nthen: {e}", done.join("\n"))
                });
            }
            self.next_policy_id += 1;
            let list = &mut self.policies[side(spec.dir)];
            let at = at.map_or(list.len(), |a| a.min(list.len()));
            done.push(format!(
                "added policy {} ({} {} -> {} {})",
                id.0,
                spec.dir.name(),
                spec.src,
                spec.dst,
                action_name(spec.action)
            ));
            list.insert(at, CatalogPolicy { id, spec });
        }
        Ok(done.join("\n"))
    }

    fn find_policy(&self, id: PolicyId) -> Option<(Direction, usize)> {
        for dir in [Direction::In, Direction::Out] {
            if let Some(i) = self.policies[side(dir)].iter().position(|p| p.id == id) {
                return Some((dir, i));
            }
        }
        None
    }

    fn del_policy(&mut self, id: PolicyId) -> Result<String, String> {
        let (dir, i) = self
            .find_policy(id)
            .ok_or_else(|| format!("no policy {}", id.0))?;
        self.engine
            .remove_policy(dir, id)
            .map_err(|e| e.to_string())?;
        let gone = self.policies[side(dir)].remove(i);
        if dir == Direction::Out && !self.policies[1].iter().any(|p| p.spec.dst == gone.spec.dst) {
            self.routes.remove(gone.spec.dst);
        }
        Ok(format!("removed policy {}", id.0))
    }

    fn set_bundle(&mut self, id: PolicyId, spis: &[u32]) -> Result<String, String> {
        let (dir, i) = self
            .find_policy(id)
            .ok_or_else(|| format!("no policy {}", id.0))?;
        if self.policies[side(dir)][i].spec.action != PolicyAction::Protect {
            return Err(format!(
                "policy {} is not a protect policy: it has no SAs",
                id.0
            ));
        }
        self.check_bundle(dir, spis)?;
        self.engine
            .set_bundle(dir, id, spis)
            .map_err(|e| e.to_string())?;
        self.policies[side(dir)][i].spec.sa = spis.to_vec();
        Ok(format!(
            "policy {} now protects with {}",
            id.0,
            spis.iter()
                .map(|s| format!("{s:#010x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    fn rename_in_policies(&mut self, dir: Direction, old: u32, new: u32) {
        for p in &mut self.policies[side(dir)] {
            for spi in &mut p.spec.sa {
                if *spi == old {
                    *spi = new;
                }
            }
        }
    }

    /// What the guard is built from: the SAs held and the policies in search order.
    pub fn guard_db(&self) -> crate::guard::GuardDb<'_> {
        let mut policies = Vec::new();
        for dir in [Direction::Out, Direction::In] {
            policies.extend(self.policies[side(dir)].iter().map(|p| (p.id.0, &p.spec)));
        }
        crate::guard::GuardDb {
            origin: "the live SA and policy database".into(),
            sas: self.sas.iter().map(|s| &s.spec).collect(),
            policies,
        }
    }

    /// The database's lines of `espo status`: SAs that are disabled or retiring, recent
    /// changes.
    pub fn status_lines(&self) -> String {
        let mut out = String::new();
        for s in &self.sas {
            if let Some(e) = &s.state_error {
                let _ = writeln!(
                    out,
                    "sa {:#010x} {}: disabled, its state could not be read: {e}",
                    s.spec.spi,
                    s.dir.name()
                );
            }
            if let Some((at, by)) = s.retire {
                let _ = writeln!(
                    out,
                    "sa {:#010x} in: replaced by {by:#010x}, retiring in {} s",
                    s.spec.spi,
                    at.saturating_duration_since(Instant::now()).as_secs()
                );
            }
        }
        if !self.log.is_empty() {
            let _ = writeln!(out, "changes:");
            for l in &self.log {
                let _ = writeln!(out, "  {l}");
            }
        }
        out
    }

    /// `espo sa list`: every SA (never a key).
    pub fn sa_list(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<4}{:<12}{:<6}{:<34}{:<40}state",
            "dir", "spi", "proto", "algorithm", "outer"
        );
        for s in &self.sas {
            let state = match (&s.retire, &s.state_error) {
                (_, Some(e)) => format!("disabled: {e}"),
                (Some((at, by)), None) => format!(
                    "retiring in {} s (replaced by {by:#010x})",
                    at.saturating_duration_since(Instant::now()).as_secs()
                ),
                (None, None) => "active".into(),
            };
            let _ = writeln!(
                out,
                "{:<4}{:<12}{:<6}{:<34}{:<40}{}",
                s.dir.name(),
                format!("{:#010x}", s.spec.spi),
                s.spec.protocol.name(),
                algorithm(&s.spec),
                outer(&s.spec),
                state
            );
        }
        out
    }

    /// `espo policy list`: every policy, in search order per direction.
    pub fn policy_list(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<4}{:<5}{:<24}{:<24}{:<10}{:<10}sa",
            "id", "dir", "src", "dst", "protocol", "action"
        );
        for dir in [Direction::Out, Direction::In] {
            for p in &self.policies[side(dir)] {
                let _ = writeln!(
                    out,
                    "{:<4}{:<5}{:<24}{:<24}{:<10}{:<10}{}",
                    p.id.0,
                    dir.name(),
                    selector(p.spec.src, p.spec.src_port),
                    selector(p.spec.dst, p.spec.dst_port),
                    format!("{:?}", p.spec.protocol).to_lowercase(),
                    action_name(p.spec.action),
                    p.spec
                        .sa
                        .iter()
                        .map(|s| format!("{s:#010x}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        out
    }
}

fn qualifiers(dir: Option<Direction>, dst: Option<IpAddr>) -> String {
    let mut q = String::new();
    if let Some(d) = dir {
        let _ = write!(q, " {}", d.name());
    }
    if let Some(d) = dst {
        let _ = write!(q, " to {d}");
    }
    q
}

fn selector(c: Cidr, ports: espo_ipsec::selector::PortRange) -> String {
    if ports.is_any() {
        c.to_string()
    } else if ports.low == ports.high {
        format!("{c} port {}", ports.low)
    } else {
        format!("{c} ports {}-{}", ports.low, ports.high)
    }
}

fn action_name(a: PolicyAction) -> &'static str {
    a.into()
}

/// The SA's algorithms as the configuration names them.
pub fn algorithm(sa: &SaSpec) -> String {
    match (sa.protocol, sa.encryption, sa.integrity) {
        (SaProtocol::Esp, Some(e), Some(i)) => format!("{e}+{i}"),
        (SaProtocol::Esp, Some(e), None) => e.to_string(),
        (_, _, Some(i)) => i.to_string(),
        _ => "?".into(),
    }
}

/// The SA's outer addresses (and UDP port).
pub fn outer(sa: &SaSpec) -> String {
    match sa.udp_encap {
        Some(u) => format!("{} -> {} udp {}", sa.src, sa.dst, u.dst_port),
        None => format!("{} -> {}", sa.src, sa.dst),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
pub(crate) mod tests;
