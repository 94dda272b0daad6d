//! The software engine in a running gateway: each datapath thread owns its half
//! ([`SoftwareHalf`]), and the control thread changes the halves through their mailboxes
//! ([`SoftwareLive`], the [`Engine`] of a software-engine gateway).
//!
//! Per batch a half costs one atomic load for its mailbox; every [`LIFETIME_CHECK`] it
//! also checks its SAs' lifetimes (time lifetimes need a clock, which espo-ipsec does not
//! read itself), so an SA whose `hard_seconds` are over stops within that interval.

use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::ChangeError;
use espo_ipsec::engine::{Inbound, Outbound};
use espo_ipsec::lifetime::LifetimeEvent;
use espo_ipsec::sa::{InboundSa, OutboundSa, SaParams, SendShare, SeqReservation};
use espo_ipsec::spd::PolicyId;
use espo_ipsec::spec::{Direction, PolicySpec, SaSpec};

use crate::live::{Engine, EngineChangeError, Install};
use crate::mailbox::Mailbox;
use crate::path::{
    InboundEngine, Incoming, OutboundEngine, Outgoing, PacketBuf, SaSnapshot, Tunnel,
};
use crate::sockets::RxPlan;

/// How often a half checks its SAs' lifetimes.
pub const LIFETIME_CHECK: Duration = Duration::from_millis(100);
/// How long the control thread waits for a datapath thread to take a change.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Lifetime events a half keeps for `espo status`.
const EVENTS_KEPT: usize = 8;

/// One half of the software engine, owned by its datapath thread.
pub struct SoftwareHalf<H> {
    half: H,
    mailbox: Arc<Mailbox<H>>,
    /// The gateway's clock: SAs' install times count from it.
    started: Instant,
    checked: Instant,
    events: Vec<LifetimeEvent>,
    fresh: Vec<LifetimeEvent>,
    /// Where crossings go for key management.
    feed: Option<Arc<crate::ike::LifetimeFeed>>,
}

impl<H> SoftwareHalf<H> {
    pub fn new(half: H, mailbox: Arc<Mailbox<H>>, started: Instant) -> SoftwareHalf<H> {
        SoftwareHalf {
            half,
            mailbox,
            started,
            checked: Instant::now(),
            events: Vec::new(),
            fresh: Vec::new(),
            feed: None,
        }
    }

    /// Lifetime crossings also go to `feed` (key management renews CHILD_SAs by them).
    pub fn with_feed(mut self, feed: Arc<crate::ike::LifetimeFeed>) -> SoftwareHalf<H> {
        self.feed = Some(feed);
        self
    }

    /// Runs waiting changes; checks lifetimes when due (`check` does it on the half).
    fn maintain(&mut self, check: impl FnOnce(&mut H, Duration, &mut Vec<LifetimeEvent>)) {
        self.mailbox.run_pending(&mut self.half);
        if self.checked.elapsed() >= LIFETIME_CHECK {
            self.checked = Instant::now();
            check(&mut self.half, self.started.elapsed(), &mut self.fresh);
            for e in self.fresh.drain(..) {
                if let Some(feed) = &self.feed {
                    feed.push(e);
                }
                if self.events.len() == EVENTS_KEPT {
                    self.events.remove(0);
                }
                self.events.push(e);
            }
        }
    }
}

impl OutboundEngine for SoftwareHalf<Outbound> {
    fn overhead(&self, inner: &[u8]) -> Result<Option<usize>, DropReason> {
        self.half.overhead(inner)
    }

    fn tunnel(&self, inner: &[u8]) -> Result<Option<Tunnel>, DropReason> {
        OutboundEngine::tunnel(&self.half, inner)
    }

    fn max_overhead(&self) -> usize {
        self.half.max_overhead()
    }

    fn encapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Outgoing, DropReason>>,
    ) {
        OutboundEngine::encapsulate(&mut self.half, batch, verdicts)
    }

    fn snapshot(&self, out: &mut Vec<SaSnapshot>) {
        OutboundEngine::snapshot(&self.half, out)
    }

    fn take_acquires(&mut self, out: &mut Vec<espo_ipsec::spd::PolicyId>) {
        OutboundEngine::take_acquires(&mut self.half, out)
    }

    fn sent(&mut self) {
        OutboundEngine::sent(&mut self.half)
    }

    fn housekeeping(&mut self) {
        self.maintain(|h, now, out| h.check_lifetimes(now, out));
    }

    fn close(&mut self) {
        self.mailbox.close(&mut self.half);
    }

    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.mailbox.wake_fd())
    }

    fn lifetime_events(&self) -> &[LifetimeEvent] {
        &self.events
    }
}

impl InboundEngine for SoftwareHalf<Inbound> {
    fn decapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Incoming, DropReason>>,
    ) {
        InboundEngine::decapsulate(&mut self.half, batch, verdicts)
    }

    fn snapshot(&self, out: &mut Vec<SaSnapshot>) {
        InboundEngine::snapshot(&self.half, out)
    }

    fn housekeeping(&mut self) {
        self.maintain(|h, now, out| h.check_lifetimes(now, out));
    }

    fn close(&mut self) {
        self.mailbox.close(&mut self.half);
    }

    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.mailbox.wake_fd())
    }

    fn lifetime_events(&self) -> &[LifetimeEvent] {
        &self.events
    }
}

/// Builds an outbound SA as `how` says (key schedule on the caller's thread, not the
/// datapath's).
pub fn outbound_sa(sa: &SaSpec, how: &Install) -> Result<OutboundSa, EngineChangeError> {
    let params = SaParams::from_spec(sa).map_err(|e| EngineChangeError::Failed(e.to_string()))?;
    let mut out = OutboundSa::new(params, sa.seq);
    out.installed = how.installed;
    if let Some(r) = &how.reservation {
        out = out.with_reservation(r.clone());
    }
    if how.disabled {
        // Nothing reserved: every packet is dropped `seq-unreserved`.
        out = out.with_reservation(SeqReservation::new(sa.seq, sa.seq));
    }
    Ok(out)
}

/// Builds an inbound SA as `how` says.
pub fn inbound_sa(sa: &SaSpec, how: &Install) -> Result<InboundSa, EngineChangeError> {
    let params = SaParams::from_spec(sa).map_err(|e| EngineChangeError::Failed(e.to_string()))?;
    let mut inb = InboundSa::new(params, sa.replay_window, sa.seq)
        .map_err(|e| EngineChangeError::Failed(e.to_string()))?;
    inb.installed = how.installed;
    if let Some(mark) = how.closed_at {
        inb.close_replay_at(mark)
            .map_err(|e| EngineChangeError::Failed(e.to_string()))?;
    }
    inb.expired = how.disabled;
    Ok(inb)
}

/// The control thread's handle on a software-engine gateway's halves: one outbound half
/// per outbound worker, one inbound half.
///
/// A change to the outbound side goes to every worker's half in turn; each takes it between
/// two of its batches. A new outbound SA is built once per worker, its copies sharing one
/// sequence counter ([`SendShare`]), so the workers never number two packets alike. While
/// a change is on its way, one worker may already apply it and another not yet (at most
/// one batch each); a change a stopping gateway's worker no longer takes is reported
/// failed, though the workers before it took it.
pub struct SoftwareLive {
    pub outbound: Vec<Arc<Mailbox<Outbound>>>,
    pub inbound: Arc<Mailbox<Inbound>>,
    /// What the inbound sockets receive (opened at start).
    pub receives: RxPlan,
}

impl SoftwareLive {
    /// One copy of the SA per outbound worker, sharing one sequence counter when there
    /// are several.
    fn outbound_copies(
        &self,
        sa: &SaSpec,
        how: &Install,
    ) -> Result<Vec<OutboundSa>, EngineChangeError> {
        let first = outbound_sa(sa, how)?;
        if self.outbound.len() <= 1 {
            return Ok(vec![first]);
        }
        let share = SendShare::new(first.seq(), self.outbound.len());
        let mut copies = vec![first.share_with(share.clone(), 0)];
        for slot in 1..self.outbound.len() {
            copies.push(outbound_sa(sa, how)?.share_with(share.clone(), slot));
        }
        Ok(copies)
    }

    /// Runs `change` on every outbound worker's half, one after the other.
    fn each_outbound(
        &self,
        change: impl Fn(&mut Outbound) -> Result<(), ChangeError> + Clone + Send + 'static,
    ) -> Result<(), EngineChangeError> {
        Ok(Mailbox::call_each(&self.outbound, change, CHANGE_TIMEOUT)??)
    }
}

impl Engine for SoftwareLive {
    fn add_sa(&self, sa: &SaSpec, dir: Direction, how: Install) -> Result<(), EngineChangeError> {
        match dir {
            Direction::Out => {
                for (mailbox, new) in self.outbound.iter().zip(self.outbound_copies(sa, &how)?) {
                    mailbox.call(move |h| h.add_sa(new).map(|_| ()), CHANGE_TIMEOUT)??;
                }
            }
            Direction::In => {
                let new = inbound_sa(sa, &how)?;
                self.inbound
                    .call(move |h| h.add_sa(new).map(|_| ()), CHANGE_TIMEOUT)??;
            }
        }
        Ok(())
    }

    fn remove_sa(&self, spi: u32, dir: Direction, dst: IpAddr) -> Result<(), EngineChangeError> {
        match dir {
            Direction::Out => self.each_outbound(move |h| h.remove_sa(spi).map(|_| ()))?,
            Direction::In => self.inbound.call(
                move |h| h.remove_sa(spi, Some(dst)).map(|_| ()),
                CHANGE_TIMEOUT,
            )??,
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
        match dir {
            Direction::Out => {
                for (mailbox, sa) in self.outbound.iter().zip(self.outbound_copies(new, &how)?) {
                    mailbox.call(
                        move |h| h.replace_sa(old_spi, sa).map(|_| ()),
                        CHANGE_TIMEOUT,
                    )??;
                }
            }
            Direction::In => {
                let sa = inbound_sa(new, &how)?;
                self.inbound.call(
                    move |h| h.replace_sa(old_spi, None, sa).map(|_| ()),
                    CHANGE_TIMEOUT,
                )??;
            }
        }
        Ok(())
    }

    fn add_policy(
        &self,
        policy: &PolicySpec,
        id: PolicyId,
        position: Option<usize>,
    ) -> Result<(), EngineChangeError> {
        let p = policy.clone();
        match policy.dir {
            Direction::Out => self.each_outbound(move |h| h.add_policy(&p, id, position))?,
            Direction::In => self
                .inbound
                .call(move |h| h.add_policy(&p, id, position), CHANGE_TIMEOUT)??,
        }
        Ok(())
    }

    fn remove_policy(&self, dir: Direction, id: PolicyId) -> Result<(), EngineChangeError> {
        match dir {
            Direction::Out => self.each_outbound(move |h| h.remove_policy(id).map(|_| ()))?,
            Direction::In => self
                .inbound
                .call(move |h| h.remove_policy(id).map(|_| ()), CHANGE_TIMEOUT)??,
        }
        Ok(())
    }

    fn set_bundle(
        &self,
        dir: Direction,
        id: PolicyId,
        spis: &[u32],
    ) -> Result<(), EngineChangeError> {
        let spis = spis.to_vec();
        match dir {
            Direction::Out => self.each_outbound(move |h| h.set_bundle(id, &spis))?,
            Direction::In => self
                .inbound
                .call(move |h| h.set_bundle(id, &spis), CHANGE_TIMEOUT)??,
        }
        Ok(())
    }

    fn can_receive(&self, sa: &SaSpec) -> Result<(), String> {
        self.receives.covers(sa)
    }
}
