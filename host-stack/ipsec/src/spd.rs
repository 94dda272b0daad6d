//! The security policy database (RFC 4301 §4.4.1): ordered policies, first match wins.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::selector::{Cidr, PortRange, ProtocolSelector};
use crate::spec::{PolicyAction, PolicySpec};
use crate::wire::flow::Flow;

mod index;

use index::Index;

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
    /// Groups the policies for [`lookup`](Spd::lookup) when there are many (`None`
    /// inside: searched in order). Built by the first lookup, so that loading many
    /// policies one by one builds it once; a change while it is built takes the policy in
    /// ([`Index::inserted`], [`Index::removed`]) or, where the database is to be searched
    /// in order, forgets it.
    index: OnceLock<Option<Index>>,
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
            index: OnceLock::new(),
        }
    }
}

impl Spd {
    pub fn push(&mut self, policy: Policy) {
        self.insert(None, policy);
    }

    /// Puts a policy at `position` in the search order (at the end when `None` or past it).
    pub fn insert(&mut self, position: Option<usize>, policy: Policy) {
        self.version = next_version();
        let at = position.map_or(self.policies.len(), |p| p.min(self.policies.len()));
        self.policies.insert(at, policy);
        // An index in use takes the policy in; none yet is built by the next lookup.
        let kept = match self.index.get_mut() {
            Some(Some(index)) => index.inserted(&self.policies, at),
            _ => false,
        };
        if !kept {
            self.reindex();
        }
    }

    /// Removes the policy `id`.
    pub fn remove(&mut self, id: PolicyId) -> Option<Policy> {
        self.version = next_version();
        let at = self.policies.iter().position(|p| p.id == id)?;
        let removed = self.policies.remove(at);
        let kept = match self.index.get_mut() {
            Some(Some(index)) => index.removed(&self.policies, &removed, at),
            _ => false,
        };
        if !kept {
            self.reindex();
        }
        Some(removed)
    }

    pub fn get(&self, id: PolicyId) -> Option<&Policy> {
        self.policies.iter().find(|p| p.id == id)
    }

    /// The action of policy `id`, to change (its selectors and place stay).
    pub fn action_mut(&mut self, id: PolicyId) -> Option<&mut Action> {
        self.version = next_version();
        self.policies
            .iter_mut()
            .find(|p| p.id == id)
            .map(|p| &mut p.action)
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

    /// The first policy whose selectors match the flow. A long database is searched
    /// through an index of its policies grouped by the shape of their address selectors
    /// (README: "Policy lookup"), a short one in order: the same answer.
    #[inline]
    pub fn lookup(&self, flow: &Flow) -> Option<&Policy> {
        match self.index() {
            Some(index) => self.policies.get(index.lookup(&self.policies, flow)?),
            None => self.lookup_in_order(flow),
        }
    }

    /// [`lookup`](Self::lookup) trying each policy in turn, whatever the length.
    #[inline]
    pub fn lookup_in_order(&self, flow: &Flow) -> Option<&Policy> {
        self.policies.iter().find(|p| p.selector.matches(flow))
    }

    /// Forgets the index: the next lookup builds it for the policies as they are then.
    fn reindex(&mut self) {
        self.index = OnceLock::new();
    }

    /// The index, built now if a change forgot it; `None` when searched in order.
    fn index(&self) -> Option<&Index> {
        self.index
            .get_or_init(|| Index::build(&self.policies))
            .as_ref()
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
        *spd.action_mut(PolicyId(5)).unwrap() = Action::Discard;
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

    /// Many sites, one /24 each, and a catch-all behind them: the index is used, and
    /// finds each site's policy, a more specific one before it, and the catch-all.
    #[test]
    fn a_long_database_is_searched_through_its_index() {
        let mut spd = Spd::default();
        for i in 0..1000u32 {
            let site = format!("10.{}.{}.0/24", 100 + i / 256, i % 256);
            spd.push(policy(&site, "10.1.0.0/16", protect(i as usize), i));
        }
        spd.push(policy("0.0.0.0/0", "0.0.0.0/0", Action::Bypass, 1000));
        // Ahead of everything: one host of site 7, UDP to port 7 only.
        let mut only = policy("10.100.7.9/32", "10.1.0.0/16", Action::Discard, 1001);
        only.selector.protocol = ProtocolSelector::Number(17);
        only.selector.dst_port = PortRange { low: 7, high: 7 };
        spd.insert(Some(0), only);
        assert_eq!(spd.index().map(|i| i.groups()), Some(3));
        let id = |spd: &Spd, f: &Flow| spd.lookup(f).map(|p| p.id.0);
        assert_eq!(id(&spd, &flow("10.100.7.1", "10.1.2.3")), Some(7));
        assert_eq!(id(&spd, &flow("10.103.231.200", "10.1.0.1")), Some(999));
        assert_eq!(id(&spd, &flow("10.100.7.9", "10.1.2.3")), Some(1001));
        let mut tcp = flow("10.100.7.9", "10.1.2.3");
        tcp.protocol = IpProtocol::Tcp;
        assert_eq!(id(&spd, &tcp), Some(7));
        assert_eq!(id(&spd, &flow("10.104.0.1", "10.1.2.3")), Some(1000));
        assert_eq!(id(&spd, &flow("fd00::1", "fd00::2")), None);
        // Removing a site's policy leaves its traffic to the catch-all.
        spd.remove(PolicyId(999));
        assert_eq!(id(&spd, &flow("10.103.231.200", "10.1.0.1")), Some(1000));
    }

    /// A database with about as many shapes of address selectors as policies, and a short
    /// one, are searched in order.
    #[test]
    fn many_shapes_or_few_policies_are_searched_in_order() {
        let mut spd = Spd::default();
        for len in 0..=index::SEARCH_IN_ORDER_UP_TO as u8 {
            let net = Cidr::new("0.0.0.0".parse().unwrap(), len).unwrap();
            spd.push(policy(
                &net.to_string(),
                "10.1.0.0/16",
                Action::Bypass,
                len.into(),
            ));
            assert!(spd.index().is_none(), "{len}");
        }
        for i in 0..100u32 {
            let net = format!("10.{i}.0.0/16");
            spd.push(policy(&net, "10.1.0.0/16", Action::Bypass, 100 + i));
        }
        assert!(spd.index().is_some());
    }

    /// The index as built afresh for the policies as they are.
    fn fresh(spd: &Spd) -> Option<index::Canonical> {
        Index::build(&spd.policies).map(|i| i.canonical())
    }

    /// Policies loaded one by one build the index once, at the first lookup after them; a
    /// change to a database with an index in use updates it — what building it afresh
    /// would give — and one that makes the database searched in order forgets it.
    #[test]
    fn the_index_is_built_by_the_first_lookup_and_kept_by_changes() {
        let mut spd = Spd::default();
        for i in 0..100u32 {
            let site = format!("10.{}.{}.0/24", 100 + i / 256, i % 256);
            spd.push(policy(&site, "10.1.0.0/16", protect(i as usize), i));
            assert!(spd.index.get().is_none());
        }
        let f = flow("10.100.42.1", "10.1.0.1");
        assert_eq!(spd.lookup(&f).map(|p| p.id), Some(PolicyId(42)));
        assert!(spd.index.get().is_some_and(Option::is_some));
        let kept = |spd: &Spd| {
            spd.index
                .get()
                .and_then(Option::as_ref)
                .map(Index::canonical)
        };
        spd.insert(
            Some(0),
            policy("10.100.42.0/24", "10.1.0.0/16", Action::Discard, 500),
        );
        assert_eq!(kept(&spd), fresh(&spd));
        assert_eq!(spd.lookup(&f).map(|p| p.id), Some(PolicyId(500)));
        // A shape of its own, in the middle: a group of its own.
        spd.insert(
            Some(50),
            policy("10.100.42.1/32", "10.1.0.0/24", Action::Bypass, 502),
        );
        assert_eq!(kept(&spd), fresh(&spd));
        assert_eq!(
            spd.index.get().and_then(Option::as_ref).map(Index::groups),
            Some(2)
        );
        spd.remove(PolicyId(500));
        assert_eq!(kept(&spd), fresh(&spd));
        assert_eq!(spd.lookup(&f).map(|p| p.id), Some(PolicyId(42)));
        spd.remove(PolicyId(502));
        assert_eq!(kept(&spd), fresh(&spd));
        assert_eq!(
            spd.index.get().and_then(Option::as_ref).map(Index::groups),
            Some(1)
        );
        // A clone keeps the index built; changing either leaves the other's as it was.
        let copy = spd.clone();
        let before = kept(&copy);
        spd.push(policy("10.200.0.0/16", "10.1.0.0/16", Action::Bypass, 501));
        assert_eq!(kept(&copy), before);
        assert_eq!(kept(&spd), fresh(&spd));
        assert_ne!(kept(&spd), before);
        // Down to 8 policies: searched in order, the index forgotten.
        while spd.policies.len() > 8 {
            let id = spd.policies[3].id;
            spd.remove(id);
        }
        assert!(spd.index.get().is_none());
        spd.lookup(&f);
        assert!(matches!(spd.index.get(), Some(None)));
    }

    mod index_agrees {
        use super::super::*;
        use crate::wire::IpProtocol;
        use proptest::prelude::*;
        use std::net::IpAddr;

        /// A prefix of `len` bits (IPv6 when `v6`) from a small pool of networks, so that
        /// prefixes and overlaps repeat.
        fn cidr(v6: bool, len: u8) -> impl Strategy<Value = Cidr> {
            (0u8..4, any::<u128>()).prop_map(move |(net, host)| {
                let a: IpAddr = if v6 {
                    let len = len.min(128);
                    let a = (0xfd00u128 << 112)
                        | (u128::from(net) << 80)
                        | (host & u128::from(u64::MAX));
                    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                    IpAddr::from((a & mask).to_be_bytes())
                } else {
                    let len = len.min(32);
                    let a = u32::from_be_bytes([10, net, 0, 0]) | (host as u32 & 0xffff);
                    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    IpAddr::from((a & mask).to_be_bytes())
                };
                Cidr::new(a, if v6 { len.min(128) } else { len.min(32) }).unwrap()
            })
        }

        /// The shape of an address selector: family and prefix length.
        fn shape() -> impl Strategy<Value = (bool, u8)> {
            prop_oneof![
                4 => prop::sample::select(vec![0u8, 8, 16, 24, 30, 32]).prop_map(|l| (false, l)),
                1 => prop::sample::select(vec![0u8, 48, 64, 128]).prop_map(|l| (true, l)),
            ]
        }

        fn ports() -> impl Strategy<Value = PortRange> {
            prop_oneof![
                Just(PortRange::ANY),
                (0u16..10).prop_map(|p| PortRange { low: p, high: p }),
                (0u16..10).prop_map(|p| PortRange {
                    low: p,
                    high: p + 3
                }),
            ]
        }

        /// A policy whose address selectors have one of `shapes`.
        fn a_policy(shapes: Vec<((bool, u8), (bool, u8))>) -> impl Strategy<Value = Selector> {
            prop::sample::select(shapes)
                .prop_flat_map(|((sv6, sl), (dv6, dl))| {
                    (
                        cidr(sv6, sl),
                        cidr(dv6, dl),
                        prop::sample::select(vec![None, Some(6u8), Some(17)]),
                        ports(),
                        ports(),
                    )
                })
                .prop_map(|(src, dst, protocol, src_port, dst_port)| Selector {
                    src,
                    dst,
                    protocol: protocol.map_or(ProtocolSelector::Any, ProtocolSelector::Number),
                    src_port,
                    dst_port,
                })
        }

        /// A few shapes (a database with many shapes is searched in order), mostly of one
        /// family at both ends, now and then mixed (never matching).
        fn shapes() -> impl Strategy<Value = Vec<((bool, u8), (bool, u8))>> {
            prop::collection::vec(
                prop_oneof![
                    8 => shape().prop_flat_map(|(v6, l)| {
                        let lens = if v6 { vec![0u8, 48, 64, 128] } else { vec![0u8, 8, 16, 24, 30, 32] };
                        prop::sample::select(lens).prop_map(move |d| ((v6, l), (v6, d)))
                    }),
                    1 => (shape(), shape()),
                ],
                1..5,
            )
        }

        /// A flow inside one of the policies' prefixes, or anywhere.
        fn a_flow(near: Vec<Selector>) -> impl Strategy<Value = Flow> {
            let n = near.len().max(1);
            (
                0..n,
                any::<u128>(),
                any::<u128>(),
                prop::sample::select(vec![6u8, 17, 1]),
                0u16..12,
                0u16..12,
                prop::bool::weighted(0.85),
            )
                .prop_map(move |(i, rs, rd, protocol, sp, dp, inside)| {
                    let pick = |c: Option<&Cidr>, r: u128| -> IpAddr {
                        match c {
                            Some(c) if inside => match c.addr() {
                                IpAddr::V4(a) => {
                                    let host = u32::MAX
                                        .checked_shr(u32::from(c.prefix_len()))
                                        .unwrap_or(0);
                                    IpAddr::from((u32::from(a) | (r as u32 & host)).to_be_bytes())
                                }
                                IpAddr::V6(a) => {
                                    let host = u128::MAX
                                        .checked_shr(u32::from(c.prefix_len()))
                                        .unwrap_or(0);
                                    IpAddr::from((u128::from(a) | (r & host)).to_be_bytes())
                                }
                            },
                            _ => {
                                IpAddr::from((0x0a00_0000 | (r as u32 & 0x03ff_ffff)).to_be_bytes())
                            }
                        }
                    };
                    let s = near.get(i);
                    let src = pick(s.map(|s| &s.src), rs);
                    let mut dst = pick(s.map(|s| &s.dst), rd);
                    // One packet, one family.
                    if src.is_ipv4() != dst.is_ipv4() {
                        dst = src;
                    }
                    let ported = protocol != 1;
                    Flow {
                        src,
                        dst,
                        protocol: IpProtocol::from(protocol),
                        src_port: ported.then_some(sp),
                        dst_port: ported.then_some(dp),
                        icmp_type_code: None,
                    }
                })
        }

        /// Policies, flows near them, and policies to put in front later.
        type Database = (Vec<Selector>, Vec<Flow>, Vec<Selector>);

        fn database() -> impl Strategy<Value = Database> {
            shapes()
                .prop_flat_map(|shapes| {
                    (
                        prop::collection::vec(a_policy(shapes.clone()), 0..80),
                        prop::collection::vec(a_policy(shapes), 0..4),
                    )
                })
                .prop_flat_map(|(sels, front)| {
                    let flows = prop::collection::vec(a_flow(sels.clone()), 1..40);
                    (Just(sels), flows, Just(front))
                })
        }

        fn spd_of(sels: &[Selector]) -> Spd {
            let mut spd = Spd::default();
            for (i, &selector) in sels.iter().enumerate() {
                spd.push(Policy {
                    selector,
                    action: Action::Bypass,
                    id: PolicyId(i as u32),
                });
            }
            spd
        }

        proptest! {
            /// Whatever the policies and the flow, the index finds the policy a search in
            /// order finds; also after policies are put in front and taken out.
            #[test]
            fn the_index_finds_what_searching_in_order_finds(
                (sels, flows, front) in database(),
                out in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let mut spd = spd_of(&sels);
                let check = |spd: &Spd| -> Result<(), TestCaseError> {
                    // An index kept through the changes is the one building it afresh
                    // gives (and none is kept where a fresh one would not be used).
                    if let Some(Some(index)) = spd.index.get() {
                        let fresh = Index::build(&spd.policies).map(|i| i.canonical());
                        prop_assert_eq!(Some(index.canonical()), fresh);
                    }
                    for f in &flows {
                        prop_assert_eq!(
                            spd.lookup(f).map(|p| p.id),
                            spd.lookup_in_order(f).map(|p| p.id),
                            "{:?}", f
                        );
                    }
                    Ok(())
                };
                check(&spd)?;
                for (i, &selector) in front.iter().enumerate() {
                    spd.insert(Some(i * 7 % (spd.policies().len() + 1)), Policy {
                        selector,
                        action: Action::Discard,
                        id: PolicyId(10_000 + i as u32),
                    });
                    check(&spd)?;
                }
                for o in &out {
                    if spd.policies().is_empty() {
                        break;
                    }
                    let id = spd.policies()[o.index(spd.policies().len())].id;
                    spd.remove(id);
                    check(&spd)?;
                }
            }
        }
    }
}
