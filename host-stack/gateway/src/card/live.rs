//! The live SA and policy database on the card gateway: each change goes to the offload
//! engine under the lock its datapath takes for one batch at a time (so it falls between
//! two batches), then to each outbound worker's sizing copy of the outbound SPD (what the
//! PMTU check measures packets with) through its mailbox, and a new SA's endpoints to the
//! port (answered for, learnt).

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use espo_ipsec::engine::{ChangeError, Outbound};
use espo_ipsec::spd::PolicyId;
use espo_ipsec::spec::{Direction, PolicySpec, SaSpec};
use espo_offload::OffloadError;

use super::engine::CardShared;
use super::port::Endpoints;
use crate::live::{Engine, EngineChangeError, Install};
use crate::mailbox::Mailbox;
use crate::software::outbound_sa;

/// How long the control thread waits for an outbound worker to take a sizing change.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(2);

fn refused(e: OffloadError) -> EngineChangeError {
    match e {
        OffloadError::Change(c) => EngineChangeError::Refused(c),
        other => EngineChangeError::Failed(other.to_string()),
    }
}

/// The control thread's handle on a card gateway.
pub struct CardLive<'a> {
    pub shared: &'a CardShared,
    /// Each outbound worker's sizing copy of the outbound SAs and policies.
    pub sizing: Vec<Arc<Mailbox<Outbound>>>,
    pub endpoints: &'a RwLock<Endpoints>,
    /// The configured next hop per family.
    pub next_hops: Vec<IpAddr>,
}

impl CardLive<'_> {
    fn learn_endpoints(&self, sa: &SaSpec, dir: Direction) {
        let (local, peer) = match dir {
            Direction::Out => (sa.src, sa.dst),
            Direction::In => (sa.dst, sa.src),
        };
        let hop = self
            .next_hops
            .iter()
            .copied()
            .find(|h| h.is_ipv4() == peer.is_ipv4())
            .unwrap_or(peer);
        self.endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add(local, hop);
    }

    /// Runs `change` on every outbound worker's sizing copy, one after the other.
    fn sizing(
        &self,
        change: impl Fn(&mut Outbound) -> Result<(), ChangeError> + Clone + Send + 'static,
    ) -> Result<(), EngineChangeError> {
        Ok(Mailbox::call_each(&self.sizing, change, CHANGE_TIMEOUT)??)
    }

    /// Adds (or, with `old_spi`, puts in place of that SA) outbound SA `sa` to every
    /// worker's sizing copy.
    fn sizing_sa(
        &self,
        sa: &SaSpec,
        how: &Install,
        old_spi: Option<u32>,
    ) -> Result<(), EngineChangeError> {
        for mailbox in &self.sizing {
            let copy = outbound_sa(sa, how)?;
            mailbox.call(
                move |h| match old_spi {
                    Some(old) => h.replace_sa(old, copy).map(drop),
                    None => h.add_sa(copy).map(drop),
                },
                CHANGE_TIMEOUT,
            )??;
        }
        Ok(())
    }
}

impl Engine for CardLive<'_> {
    fn add_sa(&self, sa: &SaSpec, dir: Direction, how: Install) -> Result<(), EngineChangeError> {
        {
            let mut e = self.shared.engine();
            e.add_sa(sa, dir).map_err(refused)?;
            if let (Direction::Out, Some(r)) = (dir, &how.reservation) {
                e.set_reservation(sa.spi, r.clone());
            }
        }
        self.learn_endpoints(sa, dir);
        if dir == Direction::Out {
            self.sizing_sa(sa, &how, None)?;
        }
        Ok(())
    }

    fn remove_sa(&self, spi: u32, dir: Direction, dst: IpAddr) -> Result<(), EngineChangeError> {
        self.shared
            .engine()
            .remove_sa(spi, dir, Some(dst))
            .map_err(refused)?;
        if dir == Direction::Out {
            self.sizing(move |h| h.remove_sa(spi).map(drop))?;
        }
        Ok(())
    }

    fn replace_sa(
        &self,
        old_spi: u32,
        dir: Direction,
        new: &SaSpec,
        how: Install,
    ) -> Result<(), EngineChangeError> {
        {
            let mut e = self.shared.engine();
            e.replace_sa(old_spi, dir, new).map_err(refused)?;
            if let (Direction::Out, Some(r)) = (dir, &how.reservation) {
                e.set_reservation(new.spi, r.clone());
            }
        }
        self.learn_endpoints(new, dir);
        if dir == Direction::Out {
            self.sizing_sa(new, &how, Some(old_spi))?;
        }
        Ok(())
    }

    fn add_policy(
        &self,
        policy: &PolicySpec,
        id: PolicyId,
        position: Option<usize>,
    ) -> Result<(), EngineChangeError> {
        self.shared
            .engine()
            .add_policy(policy, id, position)
            .map_err(refused)?;
        if policy.dir == Direction::Out {
            let p = policy.clone();
            self.sizing(move |h| h.add_policy(&p, id, position))?;
        }
        Ok(())
    }

    fn remove_policy(&self, dir: Direction, id: PolicyId) -> Result<(), EngineChangeError> {
        self.shared.engine().remove_policy(id).map_err(refused)?;
        if dir == Direction::Out {
            self.sizing(move |h| h.remove_policy(id).map(drop))?;
        }
        Ok(())
    }

    fn set_bundle(
        &self,
        dir: Direction,
        id: PolicyId,
        spis: &[u32],
    ) -> Result<(), EngineChangeError> {
        self.shared.engine().set_bundle(id, spis).map_err(refused)?;
        if dir == Direction::Out {
            let spis = spis.to_vec();
            self.sizing(move |h| h.set_bundle(id, &spis))?;
        }
        Ok(())
    }
}
