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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub selector: Selector,
    pub action: Action,
    /// Index of the `[[policy]]` entry this came from, for messages and counters.
    pub config_index: usize,
}

/// The policies of one direction, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct Spd {
    policies: Vec<Policy>,
}

impl Spd {
    pub fn push(&mut self, policy: Policy) {
        self.policies.push(policy);
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
