//! The SPD's lookup index: first match over many policies without trying each in turn.
//!
//! Policies are grouped by the shape of their address selectors — the family and prefix
//! length of the source and of the destination. Within a group every policy's addresses
//! are one key (the two prefixes), so the policies whose addresses can match a flow are
//! those under the flow's addresses masked to the group's lengths: one hash probe per
//! group. Their protocol and port selectors are then checked in search order. The answer is
//! the earliest matching policy of all groups; groups are tried in the order of their
//! earliest policy, so the search stops at the first group that cannot hold an earlier one.
//!
//! A lookup costs one probe per group tried, however many policies there are: the usual
//! database — sites with a few prefix lengths each — has a handful of groups. A database
//! with about as many shapes as policies gains nothing from probing, and a short one
//! nothing from hashing: both are searched in order instead ([`Index::build`] returns
//! `None`). The answer is the same either way: the first policy, in search order, whose
//! selectors match.
//!
//! The keys come from the configuration, and a packet only looks them up: a probe with
//! addresses an attacker chooses walks one probe sequence whose length the configured keys
//! fix, as in the inbound SA table ([`crate::engine::fast_hash`]).

use core::net::IpAddr;

use super::Policy;
use crate::engine::fast_hash::FastMap;
use crate::selector::Cidr;
use crate::wire::flow::Flow;

/// Databases this short are searched in order: trying a few selectors costs less than
/// hashing the flow's addresses (see README, "Policy lookup").
pub(super) const SEARCH_IN_ORDER_UP_TO: usize = 8;

/// The family and prefix length of one address selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    v6: bool,
    len: u8,
}

impl Shape {
    fn of(cidr: &Cidr) -> Shape {
        Shape {
            v6: !cidr.is_ipv4(),
            len: cidr.prefix_len(),
        }
    }

    /// `ip`'s bits under this shape's mask, or `None` when `ip` is of the other family.
    #[inline]
    fn key(self, ip: IpAddr) -> Option<u128> {
        match (ip, self.v6) {
            (IpAddr::V4(a), false) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                Some(u128::from(u32::from(a) & mask))
            }
            (IpAddr::V6(a), true) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                Some(u128::from(a) & mask)
            }
            _ => None,
        }
    }
}

/// Where the index files a policy.
struct Placed {
    /// Its group's source and destination shapes.
    src: Shape,
    dst: Shape,
    /// Its key in the group: its source and destination prefixes.
    key: (u128, u128),
    position: u32,
}

/// Policy `p` at position `at` as the index files it (`None` past `u32`'s positions).
fn placed(p: &Policy, at: usize) -> Option<Placed> {
    let (src, dst) = (Shape::of(&p.selector.src), Shape::of(&p.selector.dst));
    // A prefix's own address always has a key of its own shape.
    let key = (
        src.key(p.selector.src.addr())?,
        dst.key(p.selector.dst.addr())?,
    );
    Some(Placed {
        src,
        dst,
        key,
        position: u32::try_from(at).ok()?,
    })
}

/// The positions of the policies under one key, in search order: the usual one kept in the
/// map itself, several in a list.
#[derive(Clone, Debug)]
enum Positions {
    One(u32),
    Many(Vec<u32>),
}

/// No position yet.
impl Default for Positions {
    fn default() -> Self {
        Positions::Many(Vec::new())
    }
}

impl Positions {
    #[inline]
    fn as_slice(&self) -> &[u32] {
        match self {
            Positions::One(at) => core::slice::from_ref(at),
            Positions::Many(list) => list,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u32] {
        match self {
            Positions::One(at) => core::slice::from_mut(at),
            Positions::Many(list) => list,
        }
    }

    /// Puts `at` in its place in search order (kept alone where it is the only one).
    fn insert(&mut self, at: u32) {
        let mut list = match core::mem::take(self) {
            Positions::Many(list) if list.is_empty() => {
                *self = Positions::One(at);
                return;
            }
            Positions::One(x) => vec![x],
            Positions::Many(list) => list,
        };
        let i = list.partition_point(|&x| x < at);
        list.insert(i, at);
        *self = Positions::Many(list);
    }

    /// Takes `at` out; `false` when it was not there. May leave the list empty.
    fn remove(&mut self, at: u32) -> bool {
        match self {
            Positions::One(x) if *x == at => {
                *self = Positions::Many(Vec::new());
                true
            }
            Positions::One(_) => false,
            Positions::Many(list) => match list.iter().position(|&x| x == at) {
                Some(i) => {
                    list.remove(i);
                    true
                }
                None => false,
            },
        }
    }
}

/// The policies of one shape.
#[derive(Clone)]
struct Group {
    src: Shape,
    dst: Shape,
    /// The position of the group's earliest policy.
    first: usize,
    /// (source prefix, destination prefix) → positions of the policies with exactly those
    /// addresses, in search order.
    policies: FastMap<(u128, u128), Positions>,
}

/// An index's groups in a form that compares ([`Index::canonical`]).
#[cfg(test)]
pub(super) type Canonical = Vec<(bool, u8, bool, u8, usize, Vec<((u128, u128), Vec<u32>)>)>;

/// Policy positions grouped by shape, the groups in the order of their earliest policy.
#[derive(Clone)]
pub(super) struct Index {
    groups: Vec<Group>,
}

impl core::fmt::Debug for Index {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Index")
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl Index {
    /// The index of `policies`, or `None` when searching them in order is as quick: at
    /// most [`SEARCH_IN_ORDER_UP_TO`] of them, or more than one shape for every four
    /// policies.
    pub(super) fn build(policies: &[Policy]) -> Option<Index> {
        if policies.len() <= SEARCH_IN_ORDER_UP_TO || u32::try_from(policies.len()).is_err() {
            return None;
        }
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: FastMap<(Shape, Shape), usize> = FastMap::default();
        for (at, p) in policies.iter().enumerate() {
            let Placed {
                src,
                dst,
                key,
                position,
            } = placed(p, at)?;
            let g = match group_of.get(&(src, dst)) {
                Some(&g) => g,
                None => {
                    if groups.len() * 4 >= policies.len() {
                        return None;
                    }
                    groups.push(Group {
                        src,
                        dst,
                        first: at,
                        policies: FastMap::default(),
                    });
                    group_of.insert((src, dst), groups.len() - 1);
                    groups.len() - 1
                }
            };
            groups[g].policies.entry(key).or_default().insert(position);
        }
        // Made in order of first appearance: already sorted by `first`.
        Some(Index { groups })
    }

    /// The position of the first policy whose selectors match `flow`.
    #[inline]
    pub(super) fn lookup(&self, policies: &[Policy], flow: &Flow) -> Option<usize> {
        let mut best = usize::MAX;
        for g in &self.groups {
            if g.first >= best {
                break;
            }
            let (Some(s), Some(d)) = (g.src.key(flow.src), g.dst.key(flow.dst)) else {
                continue;
            };
            let Some(candidates) = g.policies.get(&(s, d)) else {
                continue;
            };
            for &at in candidates.as_slice() {
                let at = at as usize;
                if at >= best {
                    break;
                }
                if policies.get(at).is_some_and(|p| p.selector.matches(flow)) {
                    best = at;
                    break;
                }
            }
        }
        (best != usize::MAX).then_some(best)
    }

    /// Takes in `policies[at]`, just put there (those from `at` on moved one place down),
    /// without building the index again: every position from `at` on one more, the new
    /// policy's under its group. `false` when the index should be built afresh instead
    /// (and is left as it was): a database [`build`](Self::build) would search in order.
    pub(super) fn inserted(&mut self, policies: &[Policy], at: usize) -> bool {
        let Some(Placed {
            src,
            dst,
            key,
            position,
        }) = policies.get(at).and_then(|p| placed(p, at))
        else {
            return false;
        };
        let known = self.groups.iter().any(|g| g.src == src && g.dst == dst);
        let groups = self.groups.len() + usize::from(!known);
        if !Self::worth_it(groups, policies.len()) {
            return false;
        }
        self.shift(at, |x| x + 1);
        match self
            .groups
            .iter_mut()
            .find(|g| g.src == src && g.dst == dst)
        {
            Some(g) => {
                g.policies.entry(key).or_default().insert(position);
                g.first = g.first.min(at);
            }
            None => {
                let mut policies = FastMap::default();
                policies.insert(key, Positions::One(position));
                self.groups.push(Group {
                    src,
                    dst,
                    first: at,
                    policies,
                });
            }
        }
        self.groups.sort_by_key(|g| g.first);
        true
    }

    /// Lets go of `removed`, which was at position `at` of the database that is now
    /// `policies` (those after it moved one place up). `false` as for
    /// [`inserted`](Self::inserted), the index then in no state to use.
    pub(super) fn removed(&mut self, policies: &[Policy], removed: &Policy, at: usize) -> bool {
        let Some(Placed {
            src,
            dst,
            key,
            position,
        }) = placed(removed, at)
        else {
            return false;
        };
        let Some(g) = self
            .groups
            .iter()
            .position(|g| g.src == src && g.dst == dst)
        else {
            return false;
        };
        let group = &mut self.groups[g];
        let Some(list) = group.policies.get_mut(&key) else {
            return false;
        };
        if !list.remove(position) {
            return false;
        }
        if list.as_slice().is_empty() {
            group.policies.remove(&key);
        }
        if group.policies.is_empty() {
            self.groups.remove(g);
        } else if group.first == at {
            group.first = group
                .policies
                .values()
                .filter_map(|l| l.as_slice().first())
                .min()
                .map_or(usize::MAX, |&x| x as usize);
        }
        self.shift(at + 1, |x| x - 1);
        self.groups.sort_by_key(|g| g.first);
        Self::worth_it(self.groups.len(), policies.len())
    }

    /// Whether `groups` groups over `policies` policies are worth probing: what
    /// [`build`](Self::build) decides for a whole database.
    fn worth_it(groups: usize, policies: usize) -> bool {
        policies > SEARCH_IN_ORDER_UP_TO
            && u32::try_from(policies).is_ok()
            && groups.saturating_sub(1) * 4 < policies
    }

    /// Every position from `from` on, and every group's first, through `f`.
    fn shift(&mut self, from: usize, f: impl Fn(usize) -> usize) {
        let from32 = u32::try_from(from).unwrap_or(u32::MAX);
        for g in &mut self.groups {
            if g.first >= from {
                g.first = f(g.first);
            }
            for list in g.policies.values_mut() {
                // Each list is in search order: only its tail moves.
                let list = list.as_mut_slice();
                let i = list.partition_point(|&x| x < from32);
                for x in &mut list[i..] {
                    *x = f(*x as usize) as u32;
                }
            }
        }
    }

    /// The groups as (source shape, destination shape, first, every key with its
    /// positions, sorted): two indexes of the same policies compare equal.
    #[cfg(test)]
    pub(super) fn canonical(&self) -> Canonical {
        self.groups
            .iter()
            .map(|g| {
                let mut keys: Vec<_> = g
                    .policies
                    .iter()
                    .map(|(k, v)| (*k, v.as_slice().to_vec()))
                    .collect();
                keys.sort();
                (g.src.v6, g.src.len, g.dst.v6, g.dst.len, g.first, keys)
            })
            .collect()
    }

    #[cfg(test)]
    pub(super) fn groups(&self) -> usize {
        self.groups.len()
    }
}
