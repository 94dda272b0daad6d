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

/// The policies of one shape.
#[derive(Clone)]
struct Group {
    src: Shape,
    dst: Shape,
    /// The position of the group's earliest policy.
    first: usize,
    /// (source prefix, destination prefix) → positions of the policies with exactly those
    /// addresses, in search order.
    policies: FastMap<(u128, u128), Vec<u32>>,
}

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
            let (src, dst) = (Shape::of(&p.selector.src), Shape::of(&p.selector.dst));
            // A prefix's own address always has a key of its own shape.
            let (Some(s), Some(d)) = (
                src.key(p.selector.src.addr()),
                dst.key(p.selector.dst.addr()),
            ) else {
                return None;
            };
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
            // `at` fits: the length was checked above.
            groups[g]
                .policies
                .entry((s, d))
                .or_default()
                .push(at as u32);
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
            for &at in candidates {
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

    #[cfg(test)]
    pub(super) fn groups(&self) -> usize {
        self.groups.len()
    }
}
