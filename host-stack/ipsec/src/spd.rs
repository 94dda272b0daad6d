//! The security policy database (RFC 4301 §4.4.1): ordered policies, first match wins.

use core::sync::atomic::{AtomicU64, Ordering};

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
    /// Drop and ask key management for an SA ([`PolicyAction::Trap`]).
    Trap,
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
#[derive(Debug, Clone)]
pub struct Spd {
    policies: Vec<Policy>,
    /// Names what the policies are now: taken afresh from [`VERSIONS`] by every change,
    /// so two databases with the same version decide every flow alike (a clone keeps its
    /// original's version until either changes).
    version: u64,
}

/// Versions for [`Spd::version`], never handed out twice in a process.
static VERSIONS: AtomicU64 = AtomicU64::new(1);

fn next_version() -> u64 {
    VERSIONS.fetch_add(1, Ordering::Relaxed)
}

impl Default for Spd {
    fn default() -> Self {
        Spd {
            policies: Vec::new(),
            version: next_version(),
        }
    }
}

impl Spd {
    pub fn push(&mut self, policy: Policy) {
        self.version = next_version();
        self.policies.push(policy);
    }

    /// Puts a policy at `position` in the search order (at the end when `None` or past it).
    pub fn insert(&mut self, position: Option<usize>, policy: Policy) {
        self.version = next_version();
        let at = position.map_or(self.policies.len(), |p| p.min(self.policies.len()));
        self.policies.insert(at, policy);
    }

    /// Removes the policy `id`.
    pub fn remove(&mut self, id: PolicyId) -> Option<Policy> {
        self.version = next_version();
        let at = self.policies.iter().position(|p| p.id == id)?;
        Some(self.policies.remove(at))
    }

    pub fn get(&self, id: PolicyId) -> Option<&Policy> {
        self.policies.iter().find(|p| p.id == id)
    }

    pub fn get_mut(&mut self, id: PolicyId) -> Option<&mut Policy> {
        self.version = next_version();
        self.policies.iter_mut().find(|p| p.id == id)
    }

    /// What the policies are now, as a number unique in the process: a decision
    /// [`lookup`](Self::lookup) made under one version holds while the version is the
    /// same (a cache of recent decisions checks it).
    pub fn version(&self) -> u64 {
        self.version
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
        self.version = next_version();
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

    /// The RFC 4301 §5.2 check of a decapsulated packet: the first policy whose selectors
    /// match the inner packet decides, and it admits the packet only if it protects with
    /// exactly the SAs that were removed. A later policy is never consulted: otherwise the
    /// peer of one SA could send with the source of a site an earlier policy reserves for
    /// another SA. Bypass, discard and no match refuse.
    pub fn admits_decapsulated(&self, flow: &Flow, removed_outermost_first: &[usize]) -> bool {
        match self.lookup(flow).map(|p| p.action) {
            Some(Action::Protect(b)) => b.is_exactly(removed_outermost_first),
            Some(Action::Bypass | Action::Discard | Action::Trap) | None => false,
        }
    }
}

impl From<PolicyAction> for &'static str {
    fn from(a: PolicyAction) -> &'static str {
        match a {
            PolicyAction::Protect => "protect",
            PolicyAction::Bypass => "bypass",
            PolicyAction::Discard => "discard",
            PolicyAction::Trap => "trap",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IpProtocol;

    fn flow(src: &str, dst: &str) -> Flow {
        Flow {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            protocol: IpProtocol::Udp,
            src_port: Some(40000),
            dst_port: Some(7),
            icmp_type_code: None,
        }
    }

    fn policy(src: &str, dst: &str, action: Action, id: u32) -> Policy {
        Policy {
            selector: Selector {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                protocol: ProtocolSelector::Any,
                src_port: PortRange::ANY,
                dst_port: PortRange::ANY,
            },
            action,
            id: PolicyId(id),
        }
    }

    fn protect(inner: usize) -> Action {
        Action::Protect(Bundle {
            inner,
            outer_ah: None,
        })
    }

    /// `in 10.9.0.0/16 -> 10.2.0.0/16 protect [A]`, then `in 10.0.0.0/8 -> 10.2.0.0/16
    /// protect [B]`: SA A has index 0, SA B index 1.
    fn two_sites() -> Spd {
        let mut spd = Spd::default();
        spd.push(policy("10.9.0.0/16", "10.2.0.0/16", protect(0), 0));
        spd.push(policy("10.0.0.0/8", "10.2.0.0/16", protect(1), 1));
        spd
    }

    /// Every change gives the database a version no database had before; a clone keeps
    /// its original's (same policies, same decisions) until either changes.
    #[test]
    fn every_change_gives_a_new_version() {
        let mut spd = two_sites();
        let mut seen = vec![Spd::default().version(), spd.version()];
        let copy = spd.clone();
        assert_eq!(copy.version(), spd.version());
        spd.insert(
            Some(0),
            policy("10.1.0.0/16", "10.2.0.0/16", Action::Bypass, 5),
        );
        seen.push(spd.version());
        spd.get_mut(PolicyId(5)).unwrap().action = Action::Discard;
        seen.push(spd.version());
        spd.rename_sa(0, 3);
        seen.push(spd.version());
        spd.remove(PolicyId(5));
        seen.push(spd.version());
        spd.push(policy("10.5.0.0/16", "10.2.0.0/16", protect(1), 6));
        seen.push(spd.version());
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{seen:?}");
        // Looking does not change it.
        let v = spd.version();
        let _ = spd.lookup(&flow("10.5.0.1", "10.2.0.1"));
        let _ = spd.get(PolicyId(6));
        assert_eq!(spd.version(), v);
        assert_ne!(copy.version(), v);
    }

    #[test]
    fn the_first_matching_policy_decides_even_when_its_bundle_differs() {
        let spd = two_sites();
        // A packet with A's site as source, authenticated by B: A's policy decides, and B
        // is not its bundle. B's peer cannot send as A's site.
        assert!(!spd.admits_decapsulated(&flow("10.9.1.1", "10.2.0.5"), &[1]));
        // The same packet through A is what A's policy asks for.
        assert!(spd.admits_decapsulated(&flow("10.9.1.1", "10.2.0.5"), &[0]));
        // B's own site (outside A's prefix) is B's.
        assert!(spd.admits_decapsulated(&flow("10.7.1.1", "10.2.0.5"), &[1]));
        assert!(!spd.admits_decapsulated(&flow("10.7.1.1", "10.2.0.5"), &[0]));
    }

    #[test]
    fn bypass_discard_and_no_policy_refuse_a_decapsulated_packet() {
        let mut spd = Spd::default();
        spd.push(policy("10.5.0.0/16", "10.2.0.0/16", Action::Bypass, 0));
        spd.push(policy("10.6.0.0/16", "10.2.0.0/16", Action::Discard, 1));
        spd.push(policy("10.0.0.0/8", "10.2.0.0/16", protect(0), 2));
        assert!(!spd.admits_decapsulated(&flow("10.5.0.1", "10.2.0.1"), &[0]));
        assert!(!spd.admits_decapsulated(&flow("10.6.0.1", "10.2.0.1"), &[0]));
        assert!(spd.admits_decapsulated(&flow("10.7.0.1", "10.2.0.1"), &[0]));
        assert!(!spd.admits_decapsulated(&flow("192.0.2.1", "10.2.0.1"), &[0]));
    }

    #[test]
    fn an_esp_ah_bundle_must_be_removed_whole_and_in_order() {
        let mut spd = Spd::default();
        let bundle = Action::Protect(Bundle {
            inner: 0,
            outer_ah: Some(1),
        });
        spd.push(policy("10.1.0.0/16", "10.2.0.0/16", bundle, 0));
        let f = flow("10.1.0.1", "10.2.0.1");
        assert!(spd.admits_decapsulated(&f, &[1, 0]));
        assert!(!spd.admits_decapsulated(&f, &[0, 1]));
        assert!(!spd.admits_decapsulated(&f, &[0]));
        assert!(!spd.admits_decapsulated(&f, &[1]));
        assert!(!spd.admits_decapsulated(&f, &[]));
    }
}
