//! The offload engine behind the gateway's seams.
//!
//! The offload engine is one object for both directions (one card, one set of rings), so
//! the datapath threads — the outbound workers and the inbound thread — share it behind a
//! mutex, each holding it only for a batch:
//!
//! - outbound ([`CardOutbound`], an [`OutboundEngine`], one per worker): each packet of
//!   the batch is written once, straight into a card TX buffer the engine lends (copied in
//!   by the engine when none is free), and submitted, and the engine polled — and the
//!   segments of a TUN super-packet skip the batch: each one's headers (made on the stack)
//!   and payload (from the super-packet) are written into a lent buffer
//!   ([`OutboundEngine::encapsulate_segments`]), 32 at a time; every packet
//!   the card (or software, through the card's port) takes is [`Outgoing::Transmitted`] —
//!   the card sends it itself. A packet refused later shows up through
//!   [`OutboundEngine::settle`].
//! - inbound ([`CardRx`], an [`OutsideRx`], with [`CardInbound`], an [`InboundEngine`]):
//!   the card's receive queue is the outside. Its reports — inner packets the card (or
//!   software) decapsulated and checked against the inbound policy, and drops with their
//!   reason — become the batch and its verdicts.
//!
//! The inbound thread is the card's poller: its one descriptor is a [`Wake`] signalled when
//! frames go into the card (port thread) or packets wait on the card's TX ring (an outbound
//! worker), and it stays readable until the card is idle again — nothing waiting to enter
//! the card, nothing scheduled inside it, nothing outstanding on its rings.

use espo_ipsec::spec::Direction;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::backend::CardBackend;
use super::port::{PortQueues, Wake};
use crate::mailbox::Mailbox;
use crate::outer_pmtu::PathMtus;
use crate::path::{
    DirectRead, InboundEngine, Incoming, MAX_PACKET, OutboundEngine, Outgoing, OutsideRx,
    OutsideTx, PacketBuf, SaSnapshot, Tunnel,
};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::Outbound;
use espo_ipsec::gso::{self, Segments, VnetHdr};
use espo_ipsec::wire::IpProtocol;
use espo_ipsec::wire::flow::Flow;
use espo_offload::{
    self, EngineEvent, LentPacket, OffloadEngine, Received, RxReport, SentAs, TxReport, TxSlot,
};

/// How long the card's poller sleeps when the card is busy but has nothing to report yet.
const BUSY_PAUSE: Duration = Duration::from_micros(30);

/// What the datapath threads share.
pub struct CardShared {
    engine: Mutex<OffloadEngine>,
    /// The card has work the inbound thread must poll for.
    pub wake: Wake,
    /// Verdicts of the batch [`CardRx`] just received, for [`CardInbound`].
    verdicts: Mutex<VecDeque<Result<Incoming, DropReason>>>,
    /// Reports taken from the engine that did not fit the last batch.
    backlog: Mutex<VecDeque<RxReport>>,
    /// Packets of the batch [`CardRx`] just received that stay in the card's buffers until
    /// [`CardInbound`] writes them (their verdict [`Incoming::Held`]), in order.
    held: Mutex<VecDeque<LentPacket>>,
    queues: Arc<PortQueues>,
    backend: CardBackend,
    /// Readable while the card has signalled the engine's queue (a card that interrupts
    /// through an eventfd); the inbound thread waits on it beside `wake`.
    irq: Option<OwnedFd>,
    /// The engine's latest events (lifetimes, moves, faults), for `espo status`.
    events: Mutex<VecDeque<EngineEvent>>,
    /// Where lifetime crossings go for key management.
    feed: Option<Arc<crate::ike::LifetimeFeed>>,
    /// Per outbound worker, the TX reports another worker took from the engine (one
    /// worker: none ever are). See [`CardOutbound`].
    stash: Mutex<Vec<Vec<TxReport>>>,
    /// How many outbound workers share the engine.
    workers: usize,
}

/// Bits of a TX tag below the outbound worker's index: each worker tags its packets
/// `worker << WORKER_SHIFT | n`.
const WORKER_SHIFT: u32 = 48;

/// How often each outbound worker lets the engine do its housekeeping besides traffic.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(10);
/// Events `espo status` keeps.
const EVENTS_KEPT: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CardShared {
    pub fn new(
        engine: OffloadEngine,
        queues: Arc<PortQueues>,
        backend: CardBackend,
    ) -> std::io::Result<CardShared> {
        let irq = engine.card_irq_fd();
        Ok(CardShared {
            engine: Mutex::new(engine),
            wake: Wake::new()?,
            verdicts: Mutex::default(),
            backlog: Mutex::default(),
            held: Mutex::new(VecDeque::with_capacity(crate::threads::BATCH)),
            queues,
            backend,
            irq,
            events: Mutex::default(),
            feed: None,
            stash: Mutex::new(vec![Vec::new()]),
            workers: 1,
        })
    }

    /// `n` outbound workers share the engine (one by default).
    pub fn with_outbound_workers(mut self, n: usize) -> CardShared {
        self.workers = n.max(1);
        *lock(&self.stash) = (0..self.workers).map(|_| Vec::new()).collect();
        self
    }

    /// Sorts the TX reports `worker` took from the engine: another worker's go to its
    /// stash, and what other workers took for `worker` joins `reports`.
    fn sort_reports(&self, worker: usize, reports: &mut Vec<TxReport>) {
        if self.workers <= 1 {
            return;
        }
        let mut stash = lock(&self.stash);
        let mut i = 0;
        while i < reports.len() {
            let owner = (reports[i].tag >> WORKER_SHIFT) as usize;
            match stash.get_mut(owner) {
                Some(theirs) if owner != worker => theirs.push(reports.swap_remove(i)),
                _ => i += 1,
            }
        }
        if let Some(mine) = stash.get_mut(worker) {
            reports.append(mine);
        }
    }

    /// Lifetime crossings also go to `feed` (key management renews CHILD_SAs by them).
    pub fn with_feed(mut self, feed: Arc<crate::ike::LifetimeFeed>) -> CardShared {
        self.feed = Some(feed);
        self
    }

    /// Polls the engine (its housekeeping: card health, time lifetimes, events) and keeps
    /// its latest events.
    pub fn housekeeping(&self) {
        let mut events = Vec::new();
        {
            let mut engine = self.engine();
            engine.poll();
            engine.take_events(&mut events);
        }
        if !events.is_empty() {
            if let Some(feed) = &self.feed {
                for e in &events {
                    if let EngineEvent::Lifetime {
                        spi,
                        dir,
                        hard,
                        cause,
                    } = *e
                    {
                        feed.push(espo_ipsec::lifetime::LifetimeEvent {
                            spi,
                            dir,
                            hard,
                            cause,
                        });
                    }
                }
            }
            let mut kept = lock(&self.events);
            for e in events {
                if kept.len() == EVENTS_KEPT {
                    kept.pop_front();
                }
                kept.push_back(e);
            }
        }
    }

    /// The latest events, oldest first.
    pub fn events(&self) -> Vec<EngineEvent> {
        lock(&self.events).iter().copied().collect()
    }

    pub fn engine(&self) -> MutexGuard<'_, OffloadEngine> {
        lock(&self.engine)
    }

    /// Whether the card interrupts (the inbound thread waits on its eventfd).
    pub fn interrupts(&self) -> bool {
        self.irq.is_some()
    }

    /// Where the card is.
    pub fn backend(&self) -> &CardBackend {
        &self.backend
    }

    /// Where each SA of `dir` runs, with its sequence number and counters.
    pub(crate) fn snapshot(&self, dir: Direction, out: &mut Vec<SaSnapshot>) {
        let engine = self.engine();
        let sw = engine.software();
        // Every SA has its software copy, dormant while it runs on the card: its
        // destination and, in software, its sequence number — found by SPI in one pass,
        // so that a hub's thousands of SAs cost their number, not its square.
        let mut copies: HashMap<u32, (IpAddr, u64)> = HashMap::new();
        match dir {
            Direction::Out => {
                for s in sw.outbound.sas().iter() {
                    copies
                        .entry(s.params.spi)
                        .or_insert((s.params.dst, s.seq()));
                }
            }
            Direction::In => {
                for s in sw.inbound.sas().iter() {
                    let mark = s.replay.highest();
                    copies.entry(s.params.spi).or_insert((s.params.dst, mark));
                }
            }
        }
        for p in engine.placements().into_iter().filter(|p| p.dir == dir) {
            let copy = copies.get(&p.spi).copied();
            let dst = copy.map_or(IpAddr::from([0u8; 4]), |(dst, _)| dst);
            let seq = match p.placement {
                espo_offload::Placement::Card { sa_index } => {
                    let card = engine.card();
                    match dir {
                        Direction::Out => card.and_then(|c| c.sa_seq_upper_bound(sa_index)),
                        Direction::In => card.and_then(|c| c.sa_rx_seq_high(sa_index)),
                    }
                }
                espo_offload::Placement::Software => copy.map(|(_, seq)| seq),
            };
            out.push(SaSnapshot {
                spi: p.spi,
                dst,
                direction: dir,
                seq: seq.unwrap_or(0),
                packets: p.counters.packets,
                bytes: p.counters.bytes,
                placement: p.placement,
            });
        }
    }
}

/// The outbound half. See the module documentation.
///
/// Several outbound workers may share one engine, each holding it for a batch at a time —
/// or, for a packet read straight into a card buffer
/// ([`read_into_buffer`](OutboundEngine::read_into_buffer)), for that one read (the card,
/// or the engine's software half under the same lock, numbers the packets).
/// Each tags its packets with its index in the tag's top bits; a worker that takes another
/// one's reports from the engine leaves them in that worker's stash.
pub struct CardOutbound<'a> {
    shared: &'a CardShared,
    /// This worker's index (0 for the first or only one).
    worker: usize,
    /// The software engine's outbound half: the overhead of a packet (its SPD and SAs,
    /// never its sequence numbers), changed with the database through `sizing_changes`.
    sizing: Outbound,
    sizing_changes: Arc<Mailbox<Outbound>>,
    next_tag: u64,
    reports: Vec<TxReport>,
    late: Vec<DropReason>,
    housekept: Instant,
    /// A segment assembled in host memory, for when the card lends no buffer.
    scratch: Vec<u8>,
    /// The largest overhead any outbound bundle of `sizing` adds, taken again whenever
    /// `sizing` changes.
    max_overhead: usize,
    /// Packets [`read_into_buffer`](OutboundEngine::read_into_buffer) handed on since the
    /// last [`post_reads`](OutboundEngine::post_reads).
    unposted: usize,
}

impl<'a> CardOutbound<'a> {
    pub fn new(
        shared: &'a CardShared,
        sizing: Outbound,
        sizing_changes: Arc<Mailbox<Outbound>>,
    ) -> Self {
        let max_overhead = sizing.max_tunnel_overhead();
        CardOutbound {
            shared,
            worker: 0,
            sizing,
            sizing_changes,
            next_tag: 0,
            reports: Vec::new(),
            late: Vec::new(),
            housekept: Instant::now(),
            scratch: Vec::new(),
            max_overhead,
            unposted: 0,
        }
    }
}

/// Hands a packet to the engine: written once, straight into a card TX buffer the engine
/// lends (nothing copies it again on the way to the card), or copied in when none is free.
fn submit(engine: &mut OffloadEngine, tag: u64, packet: &[u8]) {
    match engine.tx_slot() {
        Some(slot) => engine.submit_into_slot(tag, slot, packet),
        None => engine.submit(tag, packet),
    }
}

/// What becomes of a TUN read of `read` bytes into `slot`
/// ([`OffloadEngine::tx_slot_read_parts`]: the virtio-net header in `vnet`, none when it
/// is empty; the packet in the slot while it fits, the rest of a longer one in `area` past
/// the slot's room). A single packet whole in the slot that fits `outer_mtu` with
/// `max_overhead`, is not link-scope and that `too_big` (given the packet's first bytes,
/// at most 66, and its length) does not keep back is submitted from there with `tag`, its partial
/// checksum completed where it lies (and the header's `NEEDS_CSUM` cleared) — never
/// copied. Anything else has the slot's bytes copied in front of the rest in `area`, as a
/// read into `area` would have left them, and the slot given back.
#[allow(clippy::too_many_arguments)]
pub fn hand_on_read(
    engine: &mut OffloadEngine,
    tag: u64,
    mut slot: TxSlot,
    read: usize,
    vnet: &mut [u8],
    area: &mut [u8],
    max_overhead: usize,
    outer_mtu: usize,
    too_big: impl FnOnce(&[u8], usize) -> bool,
) -> DirectRead {
    let room = engine.tx_slot_room().min(area.len());
    let len = read.saturating_sub(vnet.len());
    let hdr = match vnet.is_empty() {
        true => Some(None),
        false if read < vnet.len() => None,
        false => VnetHdr::parse(vnet).map(Some),
    };
    let single = match hdr {
        Some(None) => true,
        Some(Some(h)) => h.gso_type & !gso::GSO_ECN == gso::GSO_NONE,
        None => false,
    };
    if single && len > 0 && len <= room && len + max_overhead <= outer_mtu {
        let completed = match hdr {
            Some(Some(h)) if h.flags & gso::F_NEEDS_CSUM != 0 => {
                let (start, offset) = (usize::from(h.csum_start), usize::from(h.csum_offset));
                let done = engine
                    .tx_slot_complete_checksum(&slot, len, start, offset)
                    .is_ok();
                if done {
                    // Complete now: whoever reads the header next must not sum again.
                    vnet[0] &= !gso::F_NEEDS_CSUM;
                }
                done
            }
            _ => true,
        };
        if completed {
            // Link-scope traffic stays on the host: never sent, counted consumed.
            let refuse = |head: &[u8]| crate::threads::link_local(head) || too_big(head, len);
            match engine.submit_slot_unless(tag, slot, len, refuse) {
                Ok(()) => return DirectRead::Sent { len },
                Err(back) => slot = back,
            }
        }
    }
    let copied = engine.tx_slot_read(&slot, 0, &mut area[..len.min(room)]);
    engine.release_slot(slot);
    match copied {
        Ok(()) => DirectRead::InHost { read },
        Err(_) => DirectRead::Dropped {
            reason: DropReason::DeviceError,
        },
    }
}

/// Segments a card takes at once (its buffers lent, submitted, the engine polled), as
/// many as a batch.
const SEGMENTS_AT_ONCE: usize = crate::threads::BATCH;
/// Room for a segment's headers: at most 60 bytes of IPv4 header and 60 of TCP header.
pub const SEGMENT_HEAD: usize = 128;

/// Hands the next of `segments` to the engine (`None`: there is none): its headers, made
/// on the stack (`head`), and its payload, from the super-packet, each written once,
/// straight into a card TX buffer the engine lends; assembled in `scratch` and copied in
/// when none is free. Returns the segment's length.
pub fn submit_segment(
    engine: &mut OffloadEngine,
    tag: u64,
    segments: &mut Segments<'_>,
    head: &mut [u8; SEGMENT_HEAD],
    scratch: &mut Vec<u8>,
) -> Option<usize> {
    let (hl, payload) = segments.next_parts(head)?;
    let head = &head[..hl];
    match engine.tx_slot() {
        Some(slot) => engine.submit_parts_into_slot(tag, slot, head, payload),
        None => {
            scratch.clear();
            scratch.extend_from_slice(head);
            scratch.extend_from_slice(payload);
            engine.submit(tag, scratch);
        }
    }
    Some(hl + payload.len())
}

fn outgoing(outcome: Result<SentAs, DropReason>) -> Result<Outgoing, DropReason> {
    match outcome {
        Ok(SentAs::Esp { spi, .. }) => Ok(Outgoing::Transmitted { spi }),
        Ok(SentAs::Bypass | SentAs::Link) => Ok(Outgoing::Transmitted { spi: 0 }),
        Err(reason) => Err(reason),
    }
}

impl CardOutbound<'_> {
    /// Sorts the reports just taken from the engine: each of a packet tagged from `first`
    /// on goes to `set` with its index from there, any other refusal is a late one (a
    /// packet of an earlier call); wakes the card's poller when work is `outstanding`.
    fn reported(
        &mut self,
        first: u64,
        outstanding: usize,
        mut set: impl FnMut(usize, Result<SentAs, DropReason>),
    ) {
        self.shared.sort_reports(self.worker, &mut self.reports);
        for r in self.reports.drain(..) {
            match r.tag.checked_sub(first) {
                Some(i) if i < self.next_tag - first => set(i as usize, r.outcome),
                _ => {
                    if let Err(reason) = r.outcome {
                        self.late.push(reason);
                    }
                }
            }
        }
        if outstanding > 0 {
            self.shared.wake.signal();
        }
    }

    /// This half is outbound worker `worker` of those
    /// [`with_outbound_workers`](CardShared::with_outbound_workers) names.
    pub fn worker(mut self, worker: usize) -> Self {
        self.worker = worker;
        self.next_tag = (worker as u64) << WORKER_SHIFT;
        self
    }
}

impl OutboundEngine for CardOutbound<'_> {
    fn overhead(&self, inner: &[u8]) -> Result<Option<usize>, DropReason> {
        self.sizing.tunnel_overhead(inner)
    }

    fn tunnel(&self, inner: &[u8]) -> Result<Option<Tunnel>, DropReason> {
        Ok(self.sizing.tunnel_for(inner)?.map(Tunnel::of))
    }

    fn max_overhead(&self) -> usize {
        self.max_overhead
    }

    fn encapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Outgoing, DropReason>>,
    ) {
        verdicts.clear();
        let first = self.next_tag;
        let outstanding = {
            let mut engine = self.shared.engine();
            for p in batch.iter() {
                submit(&mut engine, self.next_tag, p.packet());
                self.next_tag += 1;
            }
            engine.poll();
            engine.take_tx_reports(&mut self.reports);
            engine.tx_outstanding()
        };
        // Handed to the card: sent unless a report says otherwise.
        verdicts.resize(batch.len(), Ok(Outgoing::Transmitted { spi: 0 }));
        self.reported(first, outstanding, |i, outcome| {
            if let Some(v) = verdicts.get_mut(i) {
                *v = outgoing(outcome);
            }
        });
    }

    fn takes_segments(&self) -> bool {
        true
    }

    fn encapsulate_segments(
        &mut self,
        segments: &mut Segments<'_>,
        out: &mut Vec<(usize, Result<(), DropReason>)>,
    ) {
        let mut head = [0u8; SEGMENT_HEAD];
        loop {
            let first = self.next_tag;
            let start = out.len();
            let outstanding = {
                let mut engine = self.shared.engine();
                while out.len() - start < SEGMENTS_AT_ONCE {
                    let tag = self.next_tag;
                    let Some(len) =
                        submit_segment(&mut engine, tag, segments, &mut head, &mut self.scratch)
                    else {
                        break;
                    };
                    self.next_tag += 1;
                    out.push((len, Ok(())));
                }
                if out.len() == start {
                    return;
                }
                engine.poll();
                engine.take_tx_reports(&mut self.reports);
                engine.tx_outstanding()
            };
            let taken = &mut out[start..];
            self.reported(first, outstanding, |i, outcome| {
                if let Some((_, fate)) = taken.get_mut(i) {
                    *fate = outcome.map(|_| ());
                }
            });
        }
    }

    fn reads_into_buffers(&self) -> bool {
        true
    }

    /// Reads into a TX buffer the engine lends, holding the engine for the read, and
    /// hands the packet on from there or back to host memory ([`hand_on_read`]).
    fn read_into_buffer(
        &mut self,
        fd: BorrowedFd<'_>,
        vnet: &mut [u8],
        area: &mut [u8],
        outer_mtu: usize,
        learnt: Option<&PathMtus>,
    ) -> Option<std::io::Result<DirectRead>> {
        let (sizing, max_overhead) = (&self.sizing, self.max_overhead);
        // Too big for its SA's learnt path once encapsulated (judged from its head, as the
        // PMTU check judges the whole packet), or not to be judged from its head: left in
        // host memory, for the PMTU check.
        let too_big = |head: &[u8], len: usize| {
            learnt.is_some_and(|mtus| match sizing.tunnel_for_head(head, len) {
                Ok(Some(t)) => mtus
                    .path_mtu(t.outer_spi)
                    .is_some_and(|mtu| len + t.overhead > mtu),
                Ok(None) => false,
                Err(_) => true,
            })
        };
        let mut engine = self.shared.engine();
        let slot = engine.tx_slot()?;
        let room = engine.tx_slot_room().min(area.len());
        let read = match engine.tx_slot_read_parts(&slot, fd, vnet, &mut area[room..]) {
            Ok(read) => read,
            Err(e) => {
                engine.release_slot(slot);
                return Some(Err(e));
            }
        };
        let fate = hand_on_read(
            &mut engine,
            self.next_tag,
            slot,
            read,
            vnet,
            area,
            max_overhead,
            outer_mtu,
            too_big,
        );
        if let DirectRead::Sent { .. } = fate {
            self.next_tag += 1;
            self.unposted += 1;
        }
        Some(Ok(fate))
    }

    fn post_reads(&mut self) {
        if self.unposted == 0 {
            return;
        }
        self.unposted = 0;
        let outstanding = {
            let mut engine = self.shared.engine();
            engine.poll();
            engine.take_tx_reports(&mut self.reports);
            engine.tx_outstanding()
        };
        // Each was counted sent when handed on: a refusal is a late one.
        let first = self.next_tag;
        self.reported(first, outstanding, |_, _| {});
    }

    fn snapshot(&self, out: &mut Vec<SaSnapshot>) {
        // The engine's SAs are every worker's: in the workers' published views once, by
        // the first. (`espo status` itself reads them from the engine when asked:
        // `Datapath::sa_rows`.)
        if self.worker == 0 {
            self.shared.snapshot(Direction::Out, out);
        }
    }

    fn housekeeping(&mut self) {
        if self.sizing_changes.run_pending(&mut self.sizing) {
            self.max_overhead = self.sizing.max_tunnel_overhead();
        }
    }

    fn close(&mut self) {
        self.sizing_changes.close(&mut self.sizing);
    }

    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sizing_changes.wake_fd())
    }

    fn settle(&mut self, out: &mut Vec<DropReason>) {
        // Called after every batch and at least every idle poll interval: the engine's
        // housekeeping runs even when no traffic does.
        if self.housekept.elapsed() >= HOUSEKEEPING_INTERVAL {
            self.shared.housekeeping();
            self.housekept = Instant::now();
        }
        self.shared.engine().take_tx_reports(&mut self.reports);
        self.shared.sort_reports(self.worker, &mut self.reports);
        for r in self.reports.drain(..) {
            if let Err(reason) = r.outcome {
                self.late.push(reason);
            }
        }
        out.append(&mut self.late);
    }
}

/// The card's receive queue as the inbound thread's outside.
pub struct CardRx<'a> {
    pub shared: &'a CardShared,
    /// Whether packets the card left in its buffers (`lend_rx`) of flows the coalescer
    /// never holds (not TCP) stay there, while no packet of their flow went into the
    /// batch, to be written from
    /// there ([`Incoming::Held`], [`InboundEngine::write_held`]); otherwise each is copied
    /// into the batch.
    pub hold: bool,
    /// Whether TCP segments are held too: where no coalescer runs (a TUN device without
    /// offloads), every packet is written as it came.
    pub hold_tcp: bool,
}

impl OutsideRx for CardRx<'_> {
    type Scratch = Vec<RxReport>;

    fn scratch(&self) -> Self::Scratch {
        Vec::new()
    }

    /// None: the card's receive queue is in memory.
    fn calls(&self, _scratch: &Self::Scratch) -> u64 {
        0
    }

    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.shared.wake.fd()];
        fds.extend(self.shared.irq.as_ref().map(AsFd::as_fd));
        fds
    }

    fn recv_batch(
        &self,
        _queue: usize,
        bufs: &mut [PacketBuf],
        reports: &mut Self::Scratch,
    ) -> std::io::Result<usize> {
        let s = self.shared;
        // Re-armed below unless the card is idle; a signal after this wakes the thread.
        s.wake.clear();
        let frames_waiting = s.queues.frames_for_card() > 0;
        let card_busy = || s.backend.busy();
        // Busy before the poll: completions may still come. Busy after it: the poll gave
        // the card buffers back, and frames that waited for them are on their way.
        let busy_before = card_busy();
        let outstanding = {
            let mut engine = s.engine();
            if s.irq.is_some() {
                // Takes the interrupt that woke this thread (if one did), then polls.
                engine.wait(Duration::ZERO);
            } else {
                engine.poll();
            }
            engine.take_rx_reports(reports);
            engine.tx_outstanding()
        };
        let busy_after = card_busy();
        let mut backlog = lock(&s.backlog);
        backlog.extend(reports.drain(..));
        // The inbound thread fills one batch from each of its descriptors that was
        // readable (the wake-up and the card's interrupt) before it decapsulates: the
        // verdicts of every call wait, in order, for that one decapsulate.
        let mut verdicts = lock(&s.verdicts);
        // Taken for the first packet left in the card's buffer, and kept for the batch.
        let mut engine = None;
        let mut held = lock(&s.held);
        // A packet written after the batch was decided (the usual way) must not be passed
        // by one of its flow written first from the card's buffer: a packet is held only
        // while no packet of its flow went into the batch. (Other flows' packets may pass
        // it, as the coalescer lets them pass the TCP segments it holds.)
        let mut batched = BatchedFlows::new(self.hold_tcp);
        let mut n = 0;
        while n < bufs.len() {
            let Some(report) = backlog.pop_front() else {
                break;
            };
            let buf = &mut bufs[n];
            buf.set_range(0..0);
            let verdict = match report.outcome {
                Ok(Received::Inner { packet, spi, .. }) => match buf.load(&packet) {
                    true => Ok(Incoming::Inner { spi }),
                    false => Err(DropReason::TooBig),
                },
                Ok(Received::Bypass { packet }) => match buf.load(&packet) {
                    true => Ok(Incoming::Unprotected),
                    false => Err(DropReason::TooBig),
                },
                // Left in the card's buffer (`lend_rx`): copied once, straight into the
                // batch's buffer (the coalescer reads it there), and the card's buffer
                // given back.
                Ok(Received::Lent(p))
                    if self.hold
                        && (self.hold_tcp || crate::threads::never_coalesced(p.head()))
                        && !batched.has_flow_of(p.head(), p.len) =>
                {
                    let spi = p.spi;
                    held.push_back(p);
                    Ok(Incoming::Held { spi })
                }
                Ok(Received::Lent(p)) => {
                    let engine = engine.get_or_insert_with(|| s.engine());
                    let copied = buf.load_with(p.len, |dst| engine.lent_into(&p, dst).is_ok());
                    engine.release_lent(&p);
                    match (copied, p.len > MAX_PACKET) {
                        (true, _) => Ok(Incoming::Inner { spi: p.spi }),
                        (false, true) => Err(DropReason::TooBig),
                        (false, false) => Err(DropReason::DeviceError),
                    }
                }
                Ok(Received::Keepalive) => Ok(Incoming::Consumed),
                // ARP, neighbour discovery, ICMP errors, IKE from a card whose port is its
                // own: the port thread's, as from its socket.
                Ok(Received::Link { frame }) => match s.queues.push_for_host(frame) {
                    true => Ok(Incoming::Consumed),
                    false => Err(DropReason::IkeBacklog),
                },
                Ok(Received::Ike { message, src, dst }) => match buf.load(&message) {
                    true => Ok(Incoming::Ike { src, dst }),
                    false => Err(DropReason::TooBig),
                },
                Err(reason) => Err(reason),
            };
            if self.hold && matches!(verdict, Ok(Incoming::Inner { .. } | Incoming::Unprotected)) {
                batched.note(buf.packet());
            }
            verdicts.push_back(verdict);
            n += 1;
        }
        // A card that interrupts wakes this thread itself when completions arrive: only
        // reports already taken keep it polling. Otherwise it polls while the card may
        // still produce any.
        let busy = !backlog.is_empty()
            || (s.irq.is_none()
                && (frames_waiting || busy_before || busy_after || outstanding > 0));
        drop(engine);
        drop(verdicts);
        drop(backlog);
        if busy {
            s.wake.signal();
            if n == 0 {
                std::thread::sleep(BUSY_PAUSE);
            }
        }
        Ok(n)
    }
}

/// The flows of the packets a receive put into its batch (each written to the inside
/// after the packets held in the card's buffers): a packet of one of them is not held.
/// Up to [`BATCHED_FLOWS`] flows; past that, or after a packet whose flow cannot be read,
/// nothing more is held. TCP flows are not kept where TCP segments are never held: no
/// held packet can be of one.
struct BatchedFlows {
    flows: [Option<Flow>; BATCHED_FLOWS],
    len: usize,
    /// A packet went into the batch whose flow is not among `flows`.
    unknown: bool,
    /// Whether TCP segments may be held ([`CardRx::hold_tcp`]).
    tcp: bool,
}

/// Flows [`BatchedFlows`] keeps for one batch.
const BATCHED_FLOWS: usize = 8;

impl BatchedFlows {
    fn new(tcp: bool) -> BatchedFlows {
        BatchedFlows {
            flows: [None; BATCHED_FLOWS],
            len: 0,
            unknown: false,
            tcp,
        }
    }

    /// Notes the IP packet `packet`, which went into the batch.
    fn note(&mut self, packet: &[u8]) {
        match Flow::parse_head(packet, packet.len()) {
            Ok(flow) if !self.tcp && flow.protocol == IpProtocol::Tcp => {}
            Ok(flow) if self.flows[..self.len].contains(&Some(flow)) => {}
            Ok(flow) if self.len < BATCHED_FLOWS => {
                self.flows[self.len] = Some(flow);
                self.len += 1;
            }
            _ => self.unknown = true,
        }
    }

    /// Whether the packet of `len` bytes starting with `head` may be of a flow that went
    /// into the batch.
    fn has_flow_of(&self, head: &[u8], len: usize) -> bool {
        if self.len == 0 && !self.unknown {
            return false;
        }
        match Flow::parse_head(head, len) {
            Ok(flow) => self.unknown || self.flows[..self.len].contains(&Some(flow)),
            Err(_) => true,
        }
    }
}

/// The inbound half: the card's reports, already decapsulated and checked.
pub struct CardInbound<'a> {
    pub shared: &'a CardShared,
}

impl CardInbound<'_> {
    /// [`write_held`](InboundEngine::write_held), each packet written to the descriptor
    /// `to` picks from its first bytes, after the prefix it gives (a TUN queue and its
    /// virtio-net header).
    pub fn write_held_to<'t>(
        &mut self,
        to: impl Fn(&[u8]) -> (BorrowedFd<'t>, &'t [u8]),
        out: &mut Vec<(usize, bool)>,
    ) {
        let mut held = lock(&self.shared.held);
        if held.is_empty() {
            return;
        }
        let mut engine = self.shared.engine();
        for p in held.drain(..) {
            let (fd, prefix) = to(p.head());
            let wrote = engine.write_lent(&p, fd, prefix);
            engine.release_lent(&p);
            out.push((p.len, wrote.is_ok_and(|n| n == prefix.len() + p.len)));
        }
    }
}

impl InboundEngine for CardInbound<'_> {
    fn write_held(&mut self, tun: &[crate::tun::Tun], out: &mut Vec<(usize, bool)>) {
        self.write_held_to(
            |head| {
                let queue = crate::tun::queue_for(tun, head);
                (queue.as_fd(), queue.header())
            },
            out,
        );
    }

    fn decapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Incoming, DropReason>>,
    ) {
        verdicts.clear();
        let mut ready = lock(&self.shared.verdicts);
        for _ in 0..batch.len() {
            verdicts.push(ready.pop_front().unwrap_or(Err(DropReason::DeviceError)));
        }
        // One verdict per packet received: none can be left over, and none may be taken
        // for a later batch's packets.
        ready.clear();
    }

    fn snapshot(&self, out: &mut Vec<SaSnapshot>) {
        self.shared.snapshot(Direction::In, out);
    }
}

/// The outbound workers' outside: nothing, the card sends on its own port.
#[derive(Debug, Default)]
pub struct CardSends;

impl OutsideTx for CardSends {
    type Scratch = ();

    fn scratch(&self) -> Self::Scratch {}

    /// Never given a packet ([`CardOutbound`] reports every packet transmitted or
    /// dropped); anything given is counted as not sent.
    fn send_batch(&self, packets: &[&[u8]], _scratch: &mut Self::Scratch) -> usize {
        packets.len()
    }

    fn calls(&self, _scratch: &Self::Scratch) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests;
