//! The software engine: every transform espo supports, on the host CPU.
//!
//! It is split by direction — [`Outbound`] owns the outbound SAs (and their sequence
//! counters) and the outbound SPD, [`Inbound`] the inbound SAs (and their replay windows)
//! and the inbound SPD — so the two directions share no mutable state and can run on
//! different cores.
//!
//! Which SAs go where follows their `dir` and the policies: an SA named by an `out` policy
//! is outbound, an SA named by an `in` policy inbound. An SA named by neither and with no
//! `dir` is inbound (a receiver can
//! hold SAs before any policy uses them; their packets fail the policy check and are
//! counted). While the engine runs, SAs and policies change through the operations of
//! [`change`] (the live SA and policy database), each applied by the half it concerns
//! between two batches.

mod change;
pub mod fast_hash;
mod inbound;
mod lifetimes;
mod outbound;
mod table;

pub use change::ChangeError;
pub use inbound::{Decapsulated, Inbound};
pub use outbound::{Encapsulated, EncapsulatedInPlace, HEADROOM, Outbound, TAILROOM, Tunnel};
pub use table::SaTable;

use crate::sa::{InboundSa, OutboundSa, SaError, SaParams};
use crate::spd::{Action, Bundle, Policy, PolicyId, Selector};
use crate::spec::{Direction, PolicyAction, PolicySpec, SaSpec};

/// Why the software engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Sa(#[from] SaError),
    #[error("policy[{index}] names sa {spi:#010x}, which is not an SA of its direction")]
    MissingSa { index: usize, spi: u32 },
}

/// Both directions of the software engine.
#[derive(Debug, Default)]
pub struct SoftwareEngine {
    pub outbound: Outbound,
    pub inbound: Inbound,
}

/// Whether a policy of `dir` names this SA.
fn named_by(policies: &[PolicySpec], sa: &SaSpec, dir: Direction) -> bool {
    policies
        .iter()
        .any(|p| p.dir == dir && p.sa.contains(&sa.spi))
}

impl SoftwareEngine {
    /// Builds both halves from SA and policy specifications.
    pub fn new(sas: &[SaSpec], policies: &[PolicySpec]) -> Result<SoftwareEngine, EngineError> {
        let mut engine = SoftwareEngine::default();
        for sa in sas {
            let out = sa.dir == Some(Direction::Out) || named_by(policies, sa, Direction::Out);
            let inbound = sa.dir == Some(Direction::In)
                || named_by(policies, sa, Direction::In)
                || (sa.dir.is_none() && !out);
            if out {
                engine
                    .outbound
                    .sas
                    .insert(OutboundSa::new(SaParams::from_spec(sa)?, sa.seq));
            }
            if inbound {
                let inbound = InboundSa::new(SaParams::from_spec(sa)?, sa.replay_window, sa.seq)?;
                let idx = engine.inbound.sas.insert(inbound);
                engine.inbound.by_spi.insert((sa.spi, sa.dst), idx);
                if let Some(u) = sa.udp_encap
                    && !engine.inbound.encap_ports.contains(&u.dst_port)
                {
                    engine.inbound.encap_ports.push(u.dst_port);
                }
            }
        }
        for (index, p) in policies.iter().enumerate() {
            let action = match p.action {
                PolicyAction::Bypass => Action::Bypass,
                PolicyAction::Discard => Action::Discard,
                PolicyAction::Trap => Action::Trap,
                PolicyAction::Protect => {
                    let find = |spi: u32| -> Result<usize, EngineError> {
                        let found = match p.dir {
                            Direction::Out => engine.outbound.sa_index(spi),
                            Direction::In => engine.inbound.sas.position(|s| s.params.spi == spi),
                        };
                        found.ok_or(EngineError::MissingSa { index, spi })
                    };
                    let inner = find(p.sa[0])?;
                    let outer_ah = p.sa.get(1).map(|spi| find(*spi)).transpose()?;
                    Action::Protect(Bundle { inner, outer_ah })
                }
            };
            let policy = Policy {
                selector: Selector::from_spec(p),
                action,
                id: PolicyId(index as u32),
            };
            match p.dir {
                Direction::Out => engine.outbound.spd.push(policy),
                Direction::In => engine.inbound.spd.push(policy),
            }
        }
        Ok(engine)
    }
}

#[cfg(test)]
mod workers;
