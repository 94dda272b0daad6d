//! The seams between the path MTU table and the datapath threads, around any engine and
//! outside: [`Learning`] tells the outbound thread's PMTU check what an SA's path allows
//! and notes the tunnel packets the engine hands back to send; [`LearningRx`] adds the raw
//! ICMP sockets of the software engine's outside to the inbound thread's queues.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use super::PathMtus;
use super::sockets::IcmpRx;
use crate::path::{DirectRead, OutboundEngine, Outgoing, OutsideRx, PacketBuf, SaSnapshot, Tunnel};
use crate::pmtu::{self, PathLimit};
use espo_ipsec::counters::DropReason;

/// An outbound engine whose tunnels carry the path MTU learnt for their SA.
pub struct Learning<'a, E: ?Sized> {
    engine: &'a mut E,
    mtus: &'a PathMtus,
    max_overhead: usize,
}

impl<'a, E: OutboundEngine + ?Sized> Learning<'a, E> {
    pub fn new(engine: &'a mut E, mtus: &'a PathMtus) -> Learning<'a, E> {
        let max_overhead = engine.max_overhead();
        Learning {
            engine,
            mtus,
            max_overhead,
        }
    }
}

impl<E: OutboundEngine + ?Sized> OutboundEngine for Learning<'_, E> {
    fn overhead(&self, inner: &[u8]) -> Result<Option<usize>, DropReason> {
        self.engine.overhead(inner)
    }

    /// The engine's tunnel, with the path of its SA when an ICMP error lowered it: the
    /// outer MTU learnt, and the inner MTU an error about a packet too big then announces
    /// (the learnt MTU less the largest tunnel overhead, as for the interface's MTU).
    fn tunnel(&self, inner: &[u8]) -> Result<Option<Tunnel>, DropReason> {
        let mut tunnel = self.engine.tunnel(inner)?;
        if let Some(t) = tunnel.as_mut()
            && let Some(spi) = t.spi
            && let Some(outer_mtu) = self.mtus.path_mtu(spi)
        {
            t.path = Some(PathLimit {
                outer_mtu,
                tunnel_mtu: pmtu::tunnel_mtu(outer_mtu, self.max_overhead),
            });
        }
        Ok(tunnel)
    }

    fn max_overhead(&self) -> usize {
        self.max_overhead
    }

    /// Encapsulates; every tunnel packet handed back to send is noted as used by its SA
    /// (packets an engine transmits itself are noted where they leave: the card's port).
    fn encapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Outgoing, DropReason>>,
    ) {
        self.engine.encapsulate(batch, verdicts);
        for (p, v) in batch.iter().zip(verdicts.iter()) {
            if let Ok(Outgoing::Protected { .. }) = v {
                self.mtus.note_sent(p.packet());
            }
        }
    }

    fn takes_segments(&self) -> bool {
        self.engine.takes_segments()
    }

    /// The engine's (an engine that takes segments transmits them itself: nothing comes
    /// back to note).
    fn encapsulate_segments(
        &mut self,
        segments: &mut espo_ipsec::gso::Segments<'_>,
        out: &mut Vec<(usize, Result<(), DropReason>)>,
    ) {
        self.engine.encapsulate_segments(segments, out);
    }

    fn reads_into_buffers(&self) -> bool {
        self.engine.reads_into_buffers()
    }

    /// The engine's, with the table while a path MTU an ICMP error lowered for some SA
    /// may hold (until it expires): a packet the engine would hand on from its buffer is
    /// then also checked against its own SA's path, and one too big for it is left in host
    /// memory, for the PMTU check. Until one is learnt, one atomic load.
    fn read_into_buffer(
        &mut self,
        fd: BorrowedFd<'_>,
        vnet: &mut [u8],
        area: &mut [u8],
        outer_mtu: usize,
        _learnt: Option<&PathMtus>,
    ) -> Option<std::io::Result<DirectRead>> {
        let learnt = self.mtus.any_learnt().then_some(self.mtus);
        self.engine
            .read_into_buffer(fd, vnet, area, outer_mtu, learnt)
    }

    fn post_reads(&mut self) {
        self.engine.post_reads();
    }

    fn snapshot(&self, out: &mut Vec<SaSnapshot>) {
        self.engine.snapshot(out);
    }

    fn settle(&mut self, out: &mut Vec<DropReason>) {
        self.engine.settle(out);
    }

    fn sent(&mut self) {
        self.engine.sent();
    }

    fn take_acquires(&mut self, out: &mut Vec<espo_ipsec::spd::PolicyId>) {
        self.engine.take_acquires(out);
    }

    fn housekeeping(&mut self) {
        self.engine.housekeeping();
    }

    fn close(&mut self) {
        self.engine.close();
    }

    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        self.engine.wake_fd()
    }

    fn lifetime_events(&self) -> &[espo_ipsec::lifetime::LifetimeEvent] {
        self.engine.lifetime_events()
    }
}

/// The software engine's outside with its raw ICMP sockets as extra queues: the inbound
/// thread polls them with the tunnel sockets, and reading one feeds the table (it yields
/// no packets).
pub struct LearningRx<'a, R> {
    rx: &'a R,
    /// How many queues `rx` has: the ICMP sockets' come after them.
    tunnel_queues: usize,
    icmp: &'a IcmpRx,
    mtus: &'a PathMtus,
}

impl<'a, R: OutsideRx> LearningRx<'a, R> {
    pub fn new(rx: &'a R, icmp: &'a IcmpRx, mtus: &'a PathMtus) -> LearningRx<'a, R> {
        LearningRx {
            rx,
            tunnel_queues: rx.fds().len(),
            icmp,
            mtus,
        }
    }
}

impl<R: OutsideRx> OutsideRx for LearningRx<'_, R> {
    type Scratch = (R::Scratch, Vec<u8>);

    fn scratch(&self) -> Self::Scratch {
        (self.rx.scratch(), vec![0u8; super::sockets::MAX_ICMP_LEN])
    }

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = self.rx.fds();
        fds.extend(self.icmp.fds());
        fds
    }

    fn calls(&self, scratch: &Self::Scratch) -> u64 {
        self.rx.calls(&scratch.0)
    }

    fn recv_batch(
        &self,
        queue: usize,
        bufs: &mut [PacketBuf],
        scratch: &mut Self::Scratch,
    ) -> std::io::Result<usize> {
        match queue.checked_sub(self.tunnel_queues) {
            None => self.rx.recv_batch(queue, bufs, &mut scratch.0),
            Some(icmp) => {
                self.icmp
                    .drain(icmp, &mut scratch.1, self.mtus, Instant::now());
                Ok(0)
            }
        }
    }
}
