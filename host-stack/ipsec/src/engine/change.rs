//! The live SA and policy database: changes to a running engine.
//!
//! Each half of the software engine owns its SAs and its policies, and each change is one
//! call on the half it concerns, made between two batches of packets: a packet sees the
//! database as it was before the change or as it is after it, never half of it. The
//! operations never leave a policy naming an SA that is gone.
//!
//! - SAs: add, remove (refused while a policy names it), and *replace* — a rekey. Outbound,
//!   [`Outbound::replace_sa`] puts the new SA in and points every policy that named the old
//!   one at it, in one step: the next packet goes out on the new SA. Inbound,
//!   [`Inbound::replace_sa`] puts the new SA beside the old one, standing for it in the
//!   policy check, so that both accept; removing the old one later (after a grace period,
//!   decided by the caller) hands its place in the policies to the new one.
//! - Policies: add (at a position in the search order), remove, and change the SA bundle of
//!   a protect policy.
//!
//! Building an SA (its key schedule) happens before: a change takes ready SAs, so the
//! half that applies it does no more than move entries around.

use std::net::IpAddr;

use super::{Inbound, Outbound};
use crate::sa::{InboundSa, OutboundSa, Transform};
use crate::spd::{Action, Bundle, Policy, PolicyId, Selector, Spd};
use crate::spec::{Direction, PolicyAction, PolicySpec, SaMode, SaProtocol};

/// Why a change to the database was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("sa {spi:#010x} (destination {dst}) already exists ({dir})")]
    DuplicateSa {
        spi: u32,
        dst: IpAddr,
        dir: &'static str,
    },
    #[error("no {dir} sa {spi:#010x}")]
    UnknownSa { spi: u32, dir: &'static str },
    #[error("sa {spi:#010x} is in use by {policy}: remove the policy or change its SAs first")]
    SaInUse { spi: u32, policy: PolicyId },
    #[error("no {0}")]
    UnknownPolicy(PolicyId),
    #[error("{0} already exists")]
    DuplicatePolicy(PolicyId),
    #[error("{id} is an {actual} policy; this is the {expected} side")]
    WrongDirection {
        id: PolicyId,
        actual: &'static str,
        expected: &'static str,
    },
    #[error(
        "unsupported bundle: use [esp-tunnel], [ah-tunnel] or [esp-tunnel, ah-transport] (innermost first)"
    )]
    Bundle,
    #[error("{0} is not a protect policy: it has no SA bundle")]
    NotProtect(PolicyId),
    #[error("sa {spi:#010x}: the replacement must have the same protocol and mode")]
    ReplacementShape { spi: u32 },
}

/// What one side needs to know of an SA to check a bundle's shape.
fn shape(transform: &Transform, mode: SaMode) -> (SaProtocol, SaMode) {
    match transform {
        Transform::Esp(_) => (SaProtocol::Esp, mode),
        Transform::Ah(_) => (SaProtocol::Ah, mode),
    }
}

/// A bundle from the shapes of its SAs, innermost first: one tunnel SA, or an ESP tunnel
/// SA followed by an AH transport SA.
fn bundle_of(members: &[(usize, (SaProtocol, SaMode))]) -> Result<Bundle, ChangeError> {
    match members {
        [(i, (_, SaMode::Tunnel))] => Ok(Bundle {
            inner: *i,
            outer_ah: None,
        }),
        [
            (i, (SaProtocol::Esp, SaMode::Tunnel)),
            (a, (SaProtocol::Ah, SaMode::Transport)),
        ] => Ok(Bundle {
            inner: *i,
            outer_ah: Some(*a),
        }),
        _ => Err(ChangeError::Bundle),
    }
}

fn policy_of(spec: &PolicySpec, id: PolicyId, bundle: Option<Bundle>) -> Policy {
    let action = match (spec.action, bundle) {
        (PolicyAction::Protect, Some(b)) => Action::Protect(b),
        (PolicyAction::Bypass, _) => Action::Bypass,
        (PolicyAction::Trap, _) => Action::Trap,
        // A protect policy always comes with its bundle (see the callers).
        (PolicyAction::Discard, _) | (PolicyAction::Protect, None) => Action::Discard,
    };
    Policy {
        selector: Selector::from_spec(spec),
        action,
        id,
    }
}

impl Outbound {
    /// Adds an SA; it sends once a policy names it. Returns its index.
    pub fn add_sa(&mut self, sa: OutboundSa) -> Result<usize, ChangeError> {
        let spi = sa.params.spi;
        if self.sa_index(spi).is_some() {
            return Err(ChangeError::DuplicateSa {
                spi,
                dst: sa.params.dst,
                dir: "out",
            });
        }
        Ok(self.sas.insert(sa))
    }

    /// Removes an SA no policy names; returns it (its final sequence number and counters).
    pub fn remove_sa(&mut self, spi: u32) -> Result<OutboundSa, ChangeError> {
        let index = self
            .sa_index(spi)
            .ok_or(ChangeError::UnknownSa { spi, dir: "out" })?;
        if let Some(p) = self.spd.naming(index) {
            return Err(ChangeError::SaInUse { spi, policy: p.id });
        }
        self.sas
            .remove(index)
            .ok_or(ChangeError::UnknownSa { spi, dir: "out" })
    }

    /// Make-before-break, outbound: `new` takes the place of SA `old_spi` in every policy
    /// at once, and the old SA leaves. Returns the new SA's index and the old SA.
    pub fn replace_sa(
        &mut self,
        old_spi: u32,
        new: OutboundSa,
    ) -> Result<(usize, OutboundSa), ChangeError> {
        let old = self.sa_index(old_spi).ok_or(ChangeError::UnknownSa {
            spi: old_spi,
            dir: "out",
        })?;
        let old_sa = &self.sas[old];
        if shape(&old_sa.params.transform, old_sa.params.mode)
            != shape(&new.params.transform, new.params.mode)
        {
            return Err(ChangeError::ReplacementShape { spi: old_spi });
        }
        let index = self.add_sa(new)?;
        self.spd.rename_sa(old, index);
        let old_sa = self.sas.remove(old).ok_or(ChangeError::UnknownSa {
            spi: old_spi,
            dir: "out",
        })?;
        Ok((index, old_sa))
    }

    /// The bundle of SPIs `spis`, innermost first, from this side's SAs.
    fn resolve(&self, spis: &[u32]) -> Result<Bundle, ChangeError> {
        let mut members = Vec::with_capacity(spis.len());
        for &spi in spis {
            let i = self
                .sa_index(spi)
                .ok_or(ChangeError::UnknownSa { spi, dir: "out" })?;
            let p = &self.sas[i].params;
            members.push((i, shape(&p.transform, p.mode)));
        }
        bundle_of(&members)
    }

    /// Adds an outbound policy at `position` in the search order (`None`: last).
    pub fn add_policy(
        &mut self,
        spec: &PolicySpec,
        id: PolicyId,
        position: Option<usize>,
    ) -> Result<(), ChangeError> {
        let policy = new_policy(&self.spd, spec, id, Direction::Out, |spis| {
            self.resolve(spis)
        })?;
        self.spd.insert(position, policy);
        Ok(())
    }

    /// Removes an outbound policy.
    pub fn remove_policy(&mut self, id: PolicyId) -> Result<Policy, ChangeError> {
        self.spd.remove(id).ok_or(ChangeError::UnknownPolicy(id))
    }

    /// Changes the SA bundle of a protect policy.
    pub fn set_bundle(&mut self, id: PolicyId, spis: &[u32]) -> Result<(), ChangeError> {
        let bundle = self.resolve(spis)?;
        set_bundle(&mut self.spd, id, bundle)
    }
}

/// The policy `spec` describes, for the `side` whose database is `spd`, checked before
/// anything changes: its direction, its id unused, its SAs (`resolve`) a valid bundle.
fn new_policy(
    spd: &Spd,
    spec: &PolicySpec,
    id: PolicyId,
    side: Direction,
    resolve: impl FnOnce(&[u32]) -> Result<Bundle, ChangeError>,
) -> Result<Policy, ChangeError> {
    if spec.dir != side {
        return Err(ChangeError::WrongDirection {
            id,
            actual: spec.dir.name(),
            expected: side.name(),
        });
    }
    if spd.get(id).is_some() {
        return Err(ChangeError::DuplicatePolicy(id));
    }
    let bundle = match spec.action {
        PolicyAction::Protect => Some(resolve(&spec.sa)?),
        _ => None,
    };
    Ok(policy_of(spec, id, bundle))
}

/// Points protect policy `id` at `bundle`.
fn set_bundle(spd: &mut Spd, id: PolicyId, bundle: Bundle) -> Result<(), ChangeError> {
    let action = spd.action_mut(id).ok_or(ChangeError::UnknownPolicy(id))?;
    match action {
        Action::Protect(b) => *b = bundle,
        _ => return Err(ChangeError::NotProtect(id)),
    }
    Ok(())
}

impl Inbound {
    /// Adds an SA; it accepts packets at once (they pass the policy check once a policy
    /// names it). Returns its index.
    pub fn add_sa(&mut self, sa: InboundSa) -> Result<usize, ChangeError> {
        let (spi, dst) = (sa.params.spi, sa.params.dst);
        if self.by_spi.contains_key(&(spi, dst)) {
            return Err(ChangeError::DuplicateSa {
                spi,
                dst,
                dir: "in",
            });
        }
        let port = sa.params.udp_encap.map(|u| u.dst_port);
        let index = self.sas.insert(sa);
        self.by_spi.insert((spi, dst), index);
        if let Some(port) = port
            && !self.encap_ports.contains(&port)
        {
            self.encap_ports.push(port);
        }
        Ok(index)
    }

    /// The index of inbound SA `spi` (with destination `dst`, or the first with that SPI).
    fn find(&self, spi: u32, dst: Option<IpAddr>) -> Result<usize, ChangeError> {
        let found = match dst {
            Some(dst) => self.sa_index(spi, dst),
            None => self.sas.position(|s| s.params.spi == spi),
        };
        found.ok_or(ChangeError::UnknownSa { spi, dir: "in" })
    }

    /// Removes an SA and returns it. An SA some policy names can go only when a replacement
    /// stands for it ([`replace_sa`](Self::replace_sa)): the replacement then takes its
    /// place in the policies.
    pub fn remove_sa(&mut self, spi: u32, dst: Option<IpAddr>) -> Result<InboundSa, ChangeError> {
        let index = self.find(spi, dst)?;
        let successor = self
            .sas
            .entries()
            .find(|(i, s)| *i != index && s.stands_for == Some(index))
            .map(|(i, _)| i);
        if let Some(p) = self.spd.naming(index)
            && successor.is_none()
        {
            return Err(ChangeError::SaInUse { spi, policy: p.id });
        }
        if let Some(next) = successor {
            self.spd.rename_sa(index, next);
            for (i, s) in self.sas.entries_mut() {
                if s.stands_for == Some(index) {
                    s.stands_for = (i != next).then_some(next);
                }
            }
        }
        let sa = self
            .sas
            .remove(index)
            .ok_or(ChangeError::UnknownSa { spi, dir: "in" })?;
        self.by_spi.remove(&(sa.params.spi, sa.params.dst));
        self.encap_ports = self
            .sas
            .iter()
            .filter_map(|s| s.params.udp_encap.map(|u| u.dst_port))
            .fold(self.kept_ports.clone(), |mut ports, p| {
                if !ports.contains(&p) {
                    ports.push(p);
                }
                ports
            });
        Ok(sa)
    }

    /// Make-before-break, inbound: `new` accepts beside SA `old_spi` and passes the policy
    /// check wherever the old one does. Remove the old SA when its grace period is over;
    /// the new one then takes its place in the policies. Returns the new SA's index.
    pub fn replace_sa(
        &mut self,
        old_spi: u32,
        old_dst: Option<IpAddr>,
        mut new: InboundSa,
    ) -> Result<usize, ChangeError> {
        let old = self.find(old_spi, old_dst)?;
        let old_sa = &self.sas[old];
        if shape(&old_sa.params.transform, old_sa.params.mode)
            != shape(&new.params.transform, new.params.mode)
        {
            return Err(ChangeError::ReplacementShape { spi: old_spi });
        }
        new.stands_for = Some(old_sa.stands_for.unwrap_or(old));
        self.add_sa(new)
    }

    /// The bundle of SPIs `spis`, innermost first, from this side's SAs.
    fn resolve(&self, spis: &[u32]) -> Result<Bundle, ChangeError> {
        let mut members = Vec::with_capacity(spis.len());
        for &spi in spis {
            let i = self.find(spi, None)?;
            let p = &self.sas[i].params;
            members.push((i, shape(&p.transform, p.mode)));
        }
        bundle_of(&members)
    }

    /// Adds an inbound policy at `position` in the search order (`None`: last).
    pub fn add_policy(
        &mut self,
        spec: &PolicySpec,
        id: PolicyId,
        position: Option<usize>,
    ) -> Result<(), ChangeError> {
        let policy = new_policy(&self.spd, spec, id, Direction::In, |spis| {
            self.resolve(spis)
        })?;
        self.spd.insert(position, policy);
        Ok(())
    }

    /// Removes an inbound policy.
    pub fn remove_policy(&mut self, id: PolicyId) -> Result<Policy, ChangeError> {
        self.spd.remove(id).ok_or(ChangeError::UnknownPolicy(id))
    }

    /// Changes the SA bundle of a protect policy.
    pub fn set_bundle(&mut self, id: PolicyId, spis: &[u32]) -> Result<(), ChangeError> {
        let bundle = self.resolve(spis)?;
        set_bundle(&mut self.spd, id, bundle)
    }
}

#[cfg(test)]
pub(crate) mod tests;
