//! The security policy database (RFC 4301 §4.4.1): ordered policies, first match wins.

use crate::selector::{Cidr, PortRange, ProtocolSelector};
use crate::spec::{PolicyAction, PolicySpec};
use crate::wire::flow::Flow;

/// What a policy matches: RFC 4301 selectors over the inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    pub src: Cidr,
    pub dst: Cidr,
    pub protocol: ProtocolSelector,
    pub src_port: PortRange,
    pub dst_port: PortRange,
}

impl Selector {
    pub fn from_spec(p: &PolicySpec) -> Selector {
        Selector {
            src: p.src,
            dst: p.dst,
            protocol: p.protocol,
            src_port: p.src_port,
            dst_port: p.dst_port,
        }
    }

    #[inline]
    pub fn matches(&self, flow: &Flow) -> bool {
        self.src.contains(flow.src)
            && self.dst.contains(flow.dst)
            && self.protocol.matches(u8::from(flow.protocol))
            && self.src_port.matches(flow.src_port)
            && self.dst_port.matches(flow.dst_port)
    }
}

/// An SA bundle as indices into one direction's SA table, innermost first: one tunnel SA,
/// or an ESP tunnel SA followed by an AH transport SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bundle {
    pub inner: usize,
    pub outer_ah: Option<usize>,
}

impl Bundle {
    /// Whether the SAs removed from an inbound packet, outermost first, are exactly this
    /// bundle.
    pub fn is_exactly(&self, removed_outermost_first: &[usize]) -> bool {
        match (self.outer_ah, removed_outermost_first) {
            (None, [only]) => *only == self.inner,
            (Some(ah), [first, second]) => *first == ah && *second == self.inner,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Protect(Bundle),
    Bypass,
    Discard,
}

/// A policy's name while the gateway runs: the index of its `[[policy]]` entry for the
/// configured ones, the next free number for those added later. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub u32);

impl core::fmt::Display for PolicyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "policy {}", self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub selector: Selector,
    pub action: Action,
    pub id: PolicyId,
}

/// The policies of one direction, in order: the first match wins.
#[derive(Debug, Clone, Default)]
pub struct Spd {
    policies: Vec<Policy>,
}

impl Spd {
    pub fn push(&mut self, policy: Policy) {
        self.policies.push(policy);
    }

    /// Puts a policy at `position` in the search order (at the end when `None` or past it).
    pub fn insert(&mut self, position: Option<usize>, policy: Policy) {
        let at = position.map_or(self.policies.len(), |p| p.min(self.policies.len()));
        self.policies.insert(at, policy);
    }

    /// Removes the policy `id`.
    pub fn remove(&mut self, id: PolicyId) -> Option<Policy> {
        let at = self.policies.iter().position(|p| p.id == id)?;
        Some(self.policies.remove(at))
    }

    pub fn get(&self, id: PolicyId) -> Option<&Policy> {
        self.policies.iter().find(|p| p.id == id)
    }

    pub fn get_mut(&mut self, id: PolicyId) -> Option<&mut Policy> {
        self.policies.iter_mut().find(|p| p.id == id)
    }

    /// The first policy whose bundle names SA `index`.
    pub fn naming(&self, index: usize) -> Option<&Policy> {
        self.policies.iter().find(|p| match p.action {
            Action::Protect(b) => b.inner == index || b.outer_ah == Some(index),
            _ => false,
        })
    }

    /// Makes every bundle that names SA `old` name SA `new` instead.
    pub fn rename_sa(&mut self, old: usize, new: usize) {
        for p in &mut self.policies {
            if let Action::Protect(b) = &mut p.action {
                if b.inner == old {
                    b.inner = new;
                }
                if b.outer_ah == Some(old) {
                    b.outer_ah = Some(new);
                }
            }
        }
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The first policy whose selectors match the flow.
    #[inline]
    pub fn lookup(&self, flow: &Flow) -> Option<&Policy> {
        self.policies.iter().find(|p| p.selector.matches(flow))
    }

    /// The RFC 4301 §5.2 check of a decapsulated packet: walking the policies in order, the
    /// first matching policy that is not a protect policy for some other bundle decides —
    /// accepted only if it protects with exactly the SAs that were removed.
    pub fn admits_decapsulated(&self, flow: &Flow, removed_outermost_first: &[usize]) -> bool {
        for p in self.policies.iter().filter(|p| p.selector.matches(flow)) {
            match p.action {
                Action::Protect(b) if b.is_exactly(removed_outermost_first) => return true,
                Action::Protect(_) => continue,
                Action::Bypass | Action::Discard => return false,
            }
        }
        false
    }
}

impl From<PolicyAction> for &'static str {
    fn from(a: PolicyAction) -> &'static str {
        match a {
            PolicyAction::Protect => "protect",
            PolicyAction::Bypass => "bypass",
            PolicyAction::Discard => "discard",
        }
    }
}
