//! The datapath threads and shutdown.
//!
//! Threads move packets, each owning its half of the engine (the software engine's halves
//! share no lock; the card's share the offload engine for one batch at a time, see
//! [`super::card::engine`]): one or more outbound workers, each on its own TUN queue (TUN →
//! PMTU check → encapsulate → socket; with several, each SA's numbers are shared in blocks,
//! see [`espo_ipsec::sa::SendShare`]), and one inbound thread (socket → decapsulate → TUN,
//! each flow written through the queue its replies are read from,
//! [`super::tun::queue_for`]). Each drains its source without blocking into a batch of up
//! to [`BATCH`] packets, hands the whole batch to the engine, sends the results, and polls
//! only when the source is empty — looking for a short while (`busy_poll_us`; not while
//! its packets come further apart than that, [`Look`]) before it sleeps — so under load a
//! batch forms by itself and an idle gateway costs nothing. A third thread answers `espo
//! status`.
//!
//! With TUN offloads ([`super::tun`]) a read may be a super-packet of up to 64 KiB: the
//! outbound thread cuts it into segments ([`espo_ipsec::gso`]) that then go through the PMTU
//! check and the engine exactly as packets read one by one — except with an engine that
//! takes them straight from the super-packet ([`OutboundEngine::takes_segments`]: a card,
//! which gets each segment's headers and payload written once, into its own buffer): there
//! the first segment, the largest, is checked against the path MTU, and when it passes
//! the engine takes them all, the batch before them sent first. The inbound thread hands each
//! batch's TCP packets to a coalescer ([`espo_ipsec::gro`]) and, once its sockets are empty
//! (or the coalescer full), writes a flow's consecutive segments as one super-packet,
//! everything else of TCP as it came, in arrival order; packets of other protocols, none of
//! whose flows the coalescer ever holds, are written at once.
//!
//! Shutdown: SIGINT and SIGTERM set a flag the busy loops check between batches and write
//! to a socket pair every idle poll watches, so every thread ends within one batch or one
//! poll.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::icmp::{self, ErrorSource, RateLimit};
use super::path::{
    DirectRead, InboundEngine, Incoming, MAX_PACKET, OutboundEngine, Outgoing, OutsideRx,
    OutsideTx, PacketBuf, SaSnapshot,
};
use super::pmtu::{self, Fit, FragmentError, Fragments};
use super::status::{DirectionStats, PUBLISH_INTERVAL, Published};
use super::tun::{Tun, queue_for};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::HEADROOM;
use espo_ipsec::gro::{Coalescer, Offer};
use espo_ipsec::gso::{self, VNET_HDR_LEN, VnetHdr};
use espo_ipsec::wire::Version;

/// Packets per batch handed to an engine.
pub const BATCH: usize = 32;
/// How long an idle thread sleeps in poll before it looks at the shutdown flag again.
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(200);
/// Slots of coalesced packets the inbound thread holds while its sockets have more.
const GRO_HOLD_SLOTS: usize = 8;
/// How often a busy thread takes a new snapshot of its SAs for `espo status` at most
/// (the counters are published at every idle moment; a hub's thousands of SAs are not
/// walked at each). An idle thread whose published SAs lag wakes to refresh them within it.
const SA_REFRESH: Duration = Duration::from_millis(20);
/// ICMP errors per second (and burst) the outbound thread sends at most.
const ICMP_PER_SECOND: u32 = 100;

/// The shutdown signal: a flag for busy threads and a readable socket for idle ones.
#[derive(Debug)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    wake_rx: UnixStream,
    wake_tx: UnixStream,
}

impl Shutdown {
    pub fn new() -> io::Result<Shutdown> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        Ok(Shutdown {
            flag: Arc::new(AtomicBool::new(false)),
            wake_rx,
            wake_tx,
        })
    }

    /// Triggers shutdown on SIGINT and SIGTERM.
    pub fn on_signals(&self) -> io::Result<()> {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&self.flag))?;
            signal_hook::low_level::pipe::register(sig, self.wake_tx.try_clone()?)?;
        }
        Ok(())
    }

    /// Triggers shutdown from inside espo (a thread that cannot go on).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = io::Write::write(&mut &self.wake_tx, &[1]);
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake_rx.as_fd()
    }
}

/// Waits until one of `fds` is readable or shutdown is requested; returns which of `fds`
/// are readable.
///
/// For `busy_poll` first it only looks — `poll` with a zero timeout, the core yielded
/// between looks — and sleeps only when nothing came in that time: under load the next
/// packet usually arrives within microseconds, and a thread that sleeps must then be woken
/// (on a virtual machine, an interrupt to an idle virtual CPU), which costs more than the
/// looking. Zero: it sleeps at once. A thread that waits again and again keeps a [`Look`]
/// instead ([`wait_readable_within`]), which stops looking while its waits are longer.
pub fn wait_readable(
    fds: &[BorrowedFd<'_>],
    shutdown: &Shutdown,
    ready: &mut Vec<bool>,
    busy_poll: Duration,
) {
    let mut look = Look::new(busy_poll);
    wait_readable_within(fds, None, shutdown, ready, &mut look, IDLE_POLL);
}

/// How long a datapath thread looks for more before it sleeps, from one wait to the next:
/// `busy_poll_us`, unless its last [`LONG_WAITS`] waits each lasted longer than that; then
/// none, until a wait ends within a look again. A thread whose packets come further apart
/// than a look — the thread that carries a flow's acknowledgements, one packet every few
/// tens of microseconds, or a quiet gateway — would only spin, taking the core from the
/// threads that work; it sleeps at once. A busy thread's occasional long wait (between two
/// bursts) does not stop it looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// The configured look (`busy_poll_us`).
    max: Duration,
    /// Waits in a row that lasted longer than `max`, up to [`LONG_WAITS`].
    long: u8,
}

/// Waits in a row longer than a look after which a thread stops looking.
pub const LONG_WAITS: u8 = 4;

impl Look {
    /// Looks of at most `max`; the first wait looks.
    pub fn new(max: Duration) -> Look {
        Look { max, long: 0 }
    }

    /// How long the next wait looks.
    pub fn next(&self) -> Duration {
        if self.long >= LONG_WAITS {
            Duration::ZERO
        } else {
            self.max
        }
    }

    /// A wait ended after `waited` (looking and sleeping).
    fn waited(&mut self, waited: Duration) {
        self.long = if waited <= self.max {
            0
        } else {
            self.long.saturating_add(1).min(LONG_WAITS)
        };
    }
}

/// Descriptors a wait polls from the stack (with shutdown's); a wait on more allocates.
const WAIT_ON_STACK: usize = 16;

/// [`wait_readable`] on `fds` and `extra` after them (`ready` says which of those, in
/// that order), looking as `look` says (and updating it for the next wait), sleeping at
/// most `idle` (rounded up to a millisecond) instead of [`IDLE_POLL`]. Up to
/// [`WAIT_ON_STACK`] descriptors it allocates nothing (`ready` keeps its room from one
/// wait to the next).
pub fn wait_readable_within(
    fds: &[BorrowedFd<'_>],
    extra: Option<BorrowedFd<'_>>,
    shutdown: &Shutdown,
    ready: &mut Vec<bool>,
    look: &mut Look,
    idle: Duration,
) {
    let n = fds.len() + usize::from(extra.is_some());
    // Descriptor i: `fds`, then `extra`, then shutdown's (from n on).
    let fd = |i: usize| match (fds.get(i), extra) {
        (Some(fd), _) => *fd,
        (None, Some(e)) if i == fds.len() => e,
        _ => shutdown.fd(),
    };
    let poll_fd = |i: usize| PollFd::new(fd(i), PollFlags::POLLIN);
    let mut on_stack: [PollFd; WAIT_ON_STACK];
    let mut spilled: Vec<PollFd>;
    let pfds: &mut [PollFd] = if n < WAIT_ON_STACK {
        on_stack = std::array::from_fn(poll_fd);
        &mut on_stack[..=n]
    } else {
        spilled = (0..=n).map(poll_fd).collect();
        &mut spilled
    };
    ready.clear();
    let readable = |pfds: &[PollFd], ready: &mut Vec<bool>| {
        ready.extend(pfds[..n].iter().map(|p| {
            p.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
        }))
    };
    let started = Instant::now();
    let looking = look.next();
    if !looking.is_zero() {
        let until = started + looking;
        loop {
            match poll(pfds, PollTimeout::ZERO) {
                Ok(k) if k > 0 => return readable(pfds, ready),
                Ok(_) => {}
                Err(_) => break,
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::yield_now();
        }
    }
    let idle = idle.min(IDLE_POLL).max(Duration::from_millis(1));
    let timeout = PollTimeout::try_from(idle).unwrap_or(PollTimeout::NONE);
    match poll(pfds, timeout) {
        Ok(_) => readable(pfds, ready),
        Err(_) => ready.resize(n, false),
    }
    look.waited(started.elapsed());
}

/// Everything the outbound thread needs besides its engine.
pub struct OutboundCtx<'a, T: OutsideTx> {
    pub tun: &'a Tun,
    pub tx: &'a T,
    pub outer_mtu: usize,
    /// What ICMP errors announce: the largest inner packet that always fits.
    pub tunnel_mtu: usize,
    pub icmp_source: ErrorSource,
    pub shutdown: &'a Shutdown,
    pub published: &'a Published,
    /// Where trap policies that matched go, for key management (`None`: none runs).
    pub acquires: Option<&'a std::sync::Mutex<Vec<espo_ipsec::spd::PolicyId>>>,
    /// How long the worker looks for more before it sleeps ([`wait_readable`]).
    pub busy_poll: Duration,
}

struct Outbound<'a, E: OutboundEngine + ?Sized, T: OutsideTx> {
    ctx: OutboundCtx<'a, T>,
    engine: &'a mut E,
    batch: Vec<PacketBuf>,
    verdicts: Vec<Result<Outgoing, DropReason>>,
    stats: DirectionStats,
    sas: Vec<SaSnapshot>,
    icmp_buf: Vec<u8>,
    icmp_limit: RateLimit,
    headers: T::Scratch,
    last_publish: Instant,
    /// When `sas` was last taken from the engine (`None`: take it at the next publication),
    /// and whether a publication since went without.
    sas_at: Option<Instant>,
    sas_stale: bool,
    acquired: Vec<espo_ipsec::spd::PolicyId>,
    /// What [`OutboundEngine::encapsulate_segments`] made of each segment it took.
    segments_taken: Vec<(usize, Result<(), DropReason>)>,
}

/// The outbound thread: TUN → encapsulate → outside, until shutdown. Returns the final
/// counters, and the error that stopped it if the TUN device failed.
pub fn run_outbound<E: OutboundEngine + ?Sized, T: OutsideTx>(
    ctx: OutboundCtx<'_, T>,
    engine: &mut E,
) -> (DirectionStats, Option<io::Error>) {
    let headers = ctx.tx.scratch();
    let mut o = Outbound {
        ctx,
        engine,
        batch: (0..BATCH).map(|_| PacketBuf::default()).collect(),
        verdicts: Vec::with_capacity(BATCH),
        stats: DirectionStats::default(),
        sas: Vec::new(),
        icmp_buf: vec![0u8; 2048],
        icmp_limit: RateLimit::new(ICMP_PER_SECOND, ICMP_PER_SECOND),
        headers,
        last_publish: Instant::now(),
        sas_at: None,
        sas_stale: false,
        acquired: Vec::with_capacity(16),
        segments_taken: Vec::with_capacity(64),
    };
    let mut ready = Vec::new();
    let mut look = Look::new(o.ctx.busy_poll);
    let mut spare = PacketBuf::default();
    // With TUN offloads: where each read lands, and where a super-packet waits while it is
    // cut into the batch. Reads land in this one buffer, which a flow of super-packets
    // keeps in the cache, rather than in the batch's slots in turn (each 64 KiB, cold by
    // the time its turn comes again); a single packet read takes the slot's place in the
    // batch, and the slot's buffer takes the next read.
    let vnet = o.ctx.tun.vnet_hdr();
    let mut whole = if vnet {
        PacketBuf::default()
    } else {
        PacketBuf::empty()
    };
    // An engine that reads into its own buffers (a card) gets each read while the batch is
    // empty and the read before was a single packet: a flow of super-packets, which are
    // cut into segments from host memory, is read into host memory.
    let direct = o.engine.reads_into_buffers();
    let mut last_single = true;
    o.publish_all();
    while !o.ctx.shutdown.requested() {
        o.engine.housekeeping();
        let mut n = 0;
        let mut empty = false;
        // Packets handed on straight from the engine's buffers this round.
        let mut sent_direct = 0;
        while n < BATCH && sent_direct < BATCH {
            let mut read = None;
            if direct && n == 0 && last_single {
                let (head, area) = if vnet {
                    whole.buffer_mut()[HEADROOM - VNET_HDR_LEN..HEADROOM + MAX_PACKET]
                        .split_at_mut(VNET_HDR_LEN)
                } else {
                    (&mut [][..], o.batch[n].receive_area(HEADROOM))
                };
                let fd = o.ctx.tun.as_fd();
                match o
                    .engine
                    .read_into_buffer(fd, head, area, o.ctx.outer_mtu, None)
                {
                    Some(Ok(DirectRead::Sent { len })) => {
                        o.stats.reads += 1;
                        o.stats.received += 1;
                        o.stats.reads_direct += 1;
                        o.stats.forwarded += 1;
                        o.stats.forwarded_bytes += len as u64;
                        sent_direct += 1;
                        continue;
                    }
                    Some(Ok(DirectRead::Dropped { reason })) => {
                        o.stats.reads += 1;
                        o.stats.received += 1;
                        o.stats.drops.count(reason);
                        continue;
                    }
                    Some(Ok(DirectRead::InHost { read: len })) => read = Some(Ok(len)),
                    Some(Err(e)) => read = Some(Err(e)),
                    None => {}
                }
            }
            let read = match read {
                Some(read) => read,
                None => {
                    let area = if vnet {
                        // The header lands in the headroom, the packet at HEADROOM.
                        &mut whole.buffer_mut()[HEADROOM - VNET_HDR_LEN..HEADROOM + MAX_PACKET]
                    } else {
                        o.batch[n].receive_area(HEADROOM)
                    };
                    o.ctx.tun.recv(area)
                }
            };
            if read.is_ok() {
                o.stats.reads += 1;
                if vnet {
                    // The packet into the batch; a super-packet or a drop swaps it back.
                    std::mem::swap(&mut o.batch[n], &mut whole);
                }
            }
            match read {
                Ok(len) if vnet => match o.offloaded(n, len) {
                    Some(None) => {
                        o.stats.received += 1;
                        last_single = true;
                    }
                    Some(Some(hdr)) => {
                        std::mem::swap(&mut o.batch[n], &mut whole);
                        last_single = false;
                        n = o.segment(&whole, &hdr, n, &mut spare);
                        continue;
                    }
                    None => {
                        std::mem::swap(&mut o.batch[n], &mut whole);
                        continue;
                    }
                },
                Ok(len) => {
                    o.batch[n].set_range(HEADROOM..HEADROOM + len);
                    o.stats.received += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    empty = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The device is gone (deleted under espo) or broken: nothing more
                    // will come from it, so the gateway stops.
                    o.engine.post_reads();
                    o.flush(n);
                    o.publish_all();
                    o.engine.close();
                    return (o.stats, Some(e));
                }
            }
            n = o.take(n, &mut spare);
        }
        if sent_direct > 0 {
            // What was handed on from the engine's buffers goes first: it was read first.
            o.engine.post_reads();
        }
        o.flush(n);
        if empty {
            o.settle();
            o.publish(true);
            // The TUN queue, and the engine's wake-up where it has one.
            let tun = [o.ctx.tun.as_fd()];
            let wake = o.engine.wake_fd();
            let idle = if o.sas_stale { SA_REFRESH } else { IDLE_POLL };
            wait_readable_within(&tun, wake, o.ctx.shutdown, &mut ready, &mut look, idle);
        }
    }
    o.settle();
    o.publish_all();
    o.engine.close();
    (o.stats, None)
}

enum Admit {
    /// Goes into the batch.
    Keep,
    /// Dealt with (dropped, or answered with an ICMP error).
    Done,
    /// Must be fragmented first.
    Fragment { max_len: usize },
}

impl<E: OutboundEngine + ?Sized, T: OutsideTx> Outbound<'_, E, T> {
    /// Takes the packet in slot `n` (admitted or not); returns the next free slot, after
    /// encapsulating the batch when a packet had to be fragmented.
    fn take(&mut self, n: usize, spare: &mut PacketBuf) -> usize {
        let admit = self.admit(n);
        self.taken(n, admit, spare)
    }

    /// [`take`](Self::take) for the packet in slot `n` once admitted (`admit`).
    fn taken(&mut self, n: usize, admit: Admit, spare: &mut PacketBuf) -> usize {
        match admit {
            Admit::Keep => n + 1,
            Admit::Done => n,
            Admit::Fragment { max_len } => {
                self.flush(n);
                std::mem::swap(&mut self.batch[n], spare);
                self.fragment(spare, max_len);
                0
            }
        }
    }

    /// A read of `len` bytes with a virtio-net header into slot `n`: `Some(None)` when it
    /// is a single packet (checksum completed, in place), `Some(Some(header))` for a
    /// super-packet, `None` when it was dropped (counted).
    fn offloaded(&mut self, n: usize, len: usize) -> Option<Option<VnetHdr>> {
        let slot = &mut self.batch[n];
        let hdr = VnetHdr::parse(&slot.buffer_mut()[HEADROOM - VNET_HDR_LEN..]);
        let (Some(hdr), Some(len)) = (hdr, len.checked_sub(VNET_HDR_LEN)) else {
            self.stats.received += 1;
            self.stats.drops.count(DropReason::Malformed);
            return None;
        };
        slot.set_range(HEADROOM..HEADROOM + len);
        match gso::finish_single(slot.packet_mut(), &hdr) {
            Ok(true) => Some(None),
            Ok(false) => Some(Some(hdr)),
            Err(reason) => {
                self.stats.received += 1;
                self.stats.drops.count(reason);
                None
            }
        }
    }

    /// Cuts a super-packet into segments from slot `n` on, each taken as a packet read
    /// from the device; returns the next free slot.
    fn segment(
        &mut self,
        whole: &PacketBuf,
        hdr: &VnetHdr,
        mut n: usize,
        spare: &mut PacketBuf,
    ) -> usize {
        let mut segments = match gso::Segments::new(whole.packet(), hdr) {
            Ok(s) => s,
            Err(reason) => {
                self.stats.received += 1;
                self.stats.drops.count(reason);
                return n;
            }
        };
        // An engine that takes segments straight from the super-packet (a card: into its
        // buffers) gets them all once the first, the largest, is admitted.
        let mut first = self.engine.takes_segments();
        // Whether the segment before was admitted with nothing flushed since. The segments
        // of one super-packet share their addresses, protocol and ports — one policy, one
        // tunnel, one path — and none is longer than the one before, so once one fits the
        // path MTU the rest do: each is admitted as that one was. A flush, after which the
        // engine may hold other policies, has the next one looked at again.
        let mut admitted = false;
        loop {
            let from_here = first.then(|| segments.clone());
            let slot = &mut self.batch[n];
            let Some(len) = segments.next_into(slot.receive_area(HEADROOM)) else {
                return n;
            };
            slot.set_range(HEADROOM..HEADROOM + len);
            let admit = if admitted { Admit::Keep } else { self.admit(n) };
            if let (Admit::Keep, Some(all)) = (&admit, from_here) {
                // What came before goes first.
                self.flush(n);
                self.segments_to_engine(all);
                return 0;
            }
            first = false;
            admitted = matches!(admit, Admit::Keep);
            self.stats.received += 1;
            n = self.taken(n, admit, spare);
            if n == BATCH {
                self.flush(n);
                n = 0;
                admitted = false;
            }
        }
    }

    /// Hands the engine every segment `segments` has left
    /// ([`OutboundEngine::encapsulate_segments`]) and counts each.
    fn segments_to_engine(&mut self, mut segments: gso::Segments<'_>) {
        let mut taken = std::mem::take(&mut self.segments_taken);
        taken.clear();
        self.engine.encapsulate_segments(&mut segments, &mut taken);
        for (len, fate) in taken.drain(..) {
            self.stats.received += 1;
            self.stats.segments_direct += 1;
            match fate {
                Ok(()) => {
                    self.stats.forwarded += 1;
                    self.stats.forwarded_bytes += len as u64;
                }
                Err(reason) => self.stats.drops.count(reason),
            }
        }
        self.segments_taken = taken;
        self.settle();
        self.publish(false);
    }

    /// Checks the packet in slot `i` against the path MTU.
    fn admit(&mut self, i: usize) -> Admit {
        let pkt = self.batch[i].packet();
        if link_local(pkt) {
            // The inside stack's own link-scope traffic on the device (an MLD report when
            // an address is added): never tunnel traffic, counted as consumed.
            self.stats.consumed += 1;
            return Admit::Done;
        }
        let tunnel = match self.engine.tunnel(pkt) {
            Ok(Some(t)) => t,
            Ok(None) => return Admit::Keep,
            Err(reason) => {
                self.stats.drops.count(reason);
                return Admit::Done;
            }
        };
        // The interface's MTU, or the SA's path's where ICMP errors lowered it.
        let limit = pmtu::limit(self.ctx.outer_mtu, self.ctx.tunnel_mtu, tunnel.path);
        match pmtu::fit(pkt, tunnel.overhead, limit.outer_mtu, limit.tunnel_mtu) {
            Fit::Fits => Admit::Keep,
            Fit::Fragment { max_len } => Admit::Fragment { max_len },
            Fit::TooBig { mtu } => {
                self.stats.drops.count(DropReason::TooBig);
                self.send_icmp(i, mtu);
                Admit::Done
            }
        }
    }

    fn send_icmp(&mut self, i: usize, mtu: usize) {
        if !self.icmp_limit.allow(Instant::now()) {
            return;
        }
        let pkt = self.batch[i].packet();
        let len = icmp::too_big(pkt, &self.ctx.icmp_source, mtu, &mut self.icmp_buf);
        if let Some(len) = len {
            match self.ctx.tun.send_packet(&self.icmp_buf[..len]) {
                Ok(_) => self.stats.icmp_errors += 1,
                Err(_) => self.stats.write_errors += 1,
            }
        }
    }

    /// Fragments `original` into the batch, flushing as it fills.
    fn fragment(&mut self, original: &PacketBuf, max_len: usize) {
        let mut frags = match Fragments::new(original.packet(), max_len) {
            Ok(f) => f,
            Err(FragmentError::Malformed | FragmentError::Overflow) => {
                self.stats.drops.count(DropReason::Malformed);
                return;
            }
            Err(FragmentError::Options | FragmentError::TooSmall) => {
                self.stats.drops.count(DropReason::TooBig);
                return;
            }
        };
        self.stats.fragmented += 1;
        let mut n = 0;
        loop {
            let slot = &mut self.batch[n];
            let Some(len) = frags.next_into(slot.receive_area(HEADROOM)) else {
                break;
            };
            slot.set_range(HEADROOM..HEADROOM + len);
            self.stats.fragments += 1;
            n += 1;
            if n == BATCH {
                self.flush(n);
                n = 0;
            }
        }
        self.flush(n);
    }

    /// Encapsulates the first `n` packets of the batch and sends them. Packets the engine
    /// refused `seq-busy` (other workers hold numbers of their SA too far behind) are
    /// encapsulated again once the rest are sent, until none is left.
    fn flush(&mut self, mut n: usize) {
        let mut idle_rounds = 0u32;
        while n > 0 {
            self.engine
                .encapsulate(&mut self.batch[..n], &mut self.verdicts);
            if let Some(acquires) = self.ctx.acquires {
                self.engine.take_acquires(&mut self.acquired);
                if !self.acquired.is_empty() {
                    acquires
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .append(&mut self.acquired);
                }
            }
            let stopping = self.ctx.shutdown.requested();
            let mut later = 0;
            // What leaves through the outside: no allocation per batch.
            let mut out: [&[u8]; BATCH] = [&[]; BATCH];
            let mut m = 0;
            for (p, v) in self.batch[..n].iter().zip(self.verdicts.iter()) {
                match v {
                    Ok(Outgoing::Transmitted { .. }) => {
                        self.stats.forwarded += 1;
                        self.stats.forwarded_bytes += p.packet().len() as u64;
                    }
                    Ok(kind) => {
                        if *kind == Outgoing::Bypass {
                            self.stats.bypassed += 1;
                        }
                        if let Some(slot) = out.get_mut(m) {
                            *slot = p.packet();
                            m += 1;
                        }
                    }
                    Err(DropReason::SeqBusy) if !stopping => later += 1,
                    Err(reason) => self.stats.drops.count(*reason),
                }
            }
            if m > 0 {
                let out = &out[..m];
                let failed = self.ctx.tx.send_batch(out, &mut self.headers);
                self.stats.writes = self.ctx.tx.calls(&self.headers);
                let bytes: usize = out.iter().map(|p| p.len()).sum();
                self.stats.forwarded += (out.len() - failed) as u64;
                self.stats.forwarded_bytes += bytes as u64;
                self.stats.write_errors += failed as u64;
            }
            self.engine.sent();
            if later > 0 {
                // The waiting packets, in their order, to the front of the batch.
                let mut k = 0;
                for i in 0..n {
                    if self.verdicts[i] == Err(DropReason::SeqBusy) {
                        self.batch.swap(k, i);
                        k += 1;
                    }
                }
                if later == n {
                    // Nothing went: the other workers send first.
                    idle_rounds += 1;
                    if idle_rounds > 64 {
                        std::thread::sleep(Duration::from_micros(50));
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
            n = later;
        }
        self.settle();
        self.publish(false);
    }

    /// Counts packets the engine reported transmitted but could not send after all.
    fn settle(&mut self) {
        let mut late = Vec::new();
        self.engine.settle(&mut late);
        for reason in late {
            self.stats.forwarded = self.stats.forwarded.saturating_sub(1);
            self.stats.drops.count(reason);
        }
    }

    /// Publishes the counters for `espo status`: `now` when idle, at start and at exit;
    /// otherwise at most every [`PUBLISH_INTERVAL`], and never waiting for a reader.
    /// The SAs' snapshot is taken again at most every [`SA_REFRESH`] (see
    /// [`publish_all`](Self::publish_all)).
    fn publish(&mut self, now: bool) {
        if !now && self.last_publish.elapsed() < PUBLISH_INTERVAL {
            return;
        }
        if self.sas_at.is_none_or(|at| at.elapsed() >= SA_REFRESH) {
            self.sas.clear();
            self.engine.snapshot(&mut self.sas);
            self.sas_at = Some(Instant::now());
            self.sas_stale = false;
        } else {
            self.sas_stale = true;
        }
        let events = self.engine.lifetime_events();
        if now {
            self.ctx.published.publish(&self.stats, &self.sas, events);
            self.last_publish = Instant::now();
        } else if self
            .ctx
            .published
            .try_publish(&self.stats, &self.sas, events)
        {
            self.last_publish = Instant::now();
        }
    }

    /// [`publish`](Self::publish) now, with a fresh snapshot of the SAs: at start and at
    /// exit.
    fn publish_all(&mut self) {
        self.sas_at = None;
        self.publish(true);
    }
}

/// Whether a packet is link-scope traffic no router forwards: IPv4 to 224.0.0.0/24, IPv6
/// from or to fe80::/10 or to a link-scope multicast group (ff02::/16).
pub(crate) fn link_local(pkt: &[u8]) -> bool {
    match Version::of(pkt) {
        Some(Version::Ipv4) => pkt.get(16..19) == Some(&[224, 0, 0]),
        Some(Version::Ipv6) => {
            let (Some(src), Some(dst)) = (pkt.get(8..10), pkt.get(24..26)) else {
                return false;
            };
            let ll = |a: &[u8]| a[0] == 0xfe && a[1] & 0xc0 == 0x80;
            ll(src) || ll(dst) || (dst[0] == 0xff && dst[1] & 0x0f == 0x02)
        }
        _ => false,
    }
}

/// Everything the inbound thread needs besides its engine.
pub struct InboundCtx<'a, R: OutsideRx> {
    /// The TUN device's queues: each flow is written through one of them
    /// ([`super::tun::queue_for`]).
    pub tun: &'a [Tun],
    pub rx: &'a R,
    pub shutdown: &'a Shutdown,
    pub published: &'a Published,
    /// Where IKE messages go (the key-management daemon), when one runs.
    pub ike: Option<&'a crate::ike::IkeInbox>,
    /// How long the thread looks for more before it sleeps ([`wait_readable`]).
    pub busy_poll: Duration,
}

/// The inbound thread: outside → decapsulate → TUN, until shutdown. Returns the final
/// counters.
pub fn run_inbound<E: InboundEngine + ?Sized, R: OutsideRx>(
    ctx: InboundCtx<'_, R>,
    engine: &mut E,
) -> DirectionStats {
    let mut batch: Vec<PacketBuf> = (0..BATCH).map(|_| PacketBuf::default()).collect();
    let mut verdicts = Vec::with_capacity(BATCH);
    let mut stats = DirectionStats::default();
    let mut sas = Vec::new();
    let mut last_publish = Instant::now();
    let mut sas_at: Option<Instant> = None;
    let queues = ctx.rx.fds().len();
    let mut ready = vec![true; queues];
    let mut look = Look::new(ctx.busy_poll);
    // As the outbound thread's `publish` (`all`: its `publish_all`); true when the SAs
    // published lag behind.
    let mut publish = |stats: &DirectionStats, engine: &E, now: bool, all: bool| -> bool {
        if !now && last_publish.elapsed() < PUBLISH_INTERVAL {
            return false;
        }
        let stale = !all && sas_at.is_some_and(|at| at.elapsed() < SA_REFRESH);
        if !stale {
            sas.clear();
            engine.snapshot(&mut sas);
            sas_at = Some(Instant::now());
        }
        let events = engine.lifetime_events();
        if now {
            ctx.published.publish(stats, &sas, events);
            last_publish = Instant::now();
        } else if ctx.published.try_publish(stats, &sas, events) {
            last_publish = Instant::now();
        }
        stale
    };
    publish(&stats, engine, true, true);
    let mut sas_stale = false;
    let mut headers = ctx.rx.scratch();
    let fds: Vec<BorrowedFd<'_>> = ctx.rx.fds();
    // With TUN offloads, a batch's TCP segments are written coalesced.
    let mut gro = ctx.tun[0].vnet_hdr().then(|| Coalescer::new(BATCH));
    // What the engine wrote from where it holds packets (a card's buffers).
    let mut held = Vec::with_capacity(BATCH);
    while !ctx.shutdown.requested() {
        engine.housekeeping();
        // Fill a batch from the sockets that were readable, one recvmmsg each.
        let mut n = 0;
        let mut more = false;
        for (i, readable) in ready.iter_mut().enumerate() {
            if !*readable || n == BATCH {
                continue;
            }
            match ctx.rx.recv_batch(i, &mut batch[n..], &mut headers) {
                Ok(k) => {
                    n += k;
                    // A full batch may have left packets behind on this socket.
                    *readable = n == BATCH;
                    more |= *readable;
                }
                Err(_) => *readable = false,
            }
        }
        stats.received += n as u64;
        stats.reads = ctx.rx.calls(&headers);
        if n > 0 {
            engine.decapsulate(&mut batch[..n], &mut verdicts);
            // The packets the engine holds, written first: none has a packet of its flow
            // in the batch before it.
            held.clear();
            engine.write_held(ctx.tun, &mut held);
            for &(len, ok) in &held {
                written(&mut stats, ok, false, 1, len as u64);
                stats.writes_direct += 1;
            }
            for (p, v) in batch[..n].iter_mut().zip(verdicts.iter()) {
                // What goes to the inside, and its SA (0 for none: no SA has SPI 0).
                let (inside, spi) = match v {
                    Ok(Incoming::Inner { spi }) => (true, *spi),
                    Ok(Incoming::Unprotected) => (true, 0),
                    _ => (false, 0),
                };
                if inside {
                    let unprotected = spi == 0;
                    // A packet of a flow the coalescer never holds (not TCP) is written at
                    // once: nothing of its flow waits there, so its order holds without the
                    // copy a slot of its own would take.
                    let offered = gro
                        .as_mut()
                        .filter(|_| !never_coalesced(p.packet()))
                        .map(|c| c.offer(spi, p.packet()));
                    if matches!(offered, Some(Offer::Merged | Offer::Held)) {
                        continue;
                    }
                    if let Some(c) = gro.as_mut().filter(|_| offered.is_some()) {
                        drain(c, &ctx, &mut stats); // what came before goes first
                    }
                    let len = p.packet().len() as u64;
                    let ok = queue_for(ctx.tun, p.packet()).send_buf(p).is_ok();
                    written(&mut stats, ok, unprotected, 1, len);
                    continue;
                }
                match v {
                    Ok(Incoming::Bypass) => stats.bypassed += 1,
                    Ok(Incoming::Consumed) => stats.consumed += 1,
                    Ok(Incoming::Ike { src, dst }) => {
                        let message = crate::ike::IkeMessage {
                            bytes: p.packet().to_vec(),
                            src: *src,
                            dst: *dst,
                        };
                        match ctx.ike.map(|inbox| inbox.offer(message)) {
                            Some(true) => stats.consumed += 1,
                            _ => stats.drops.count(DropReason::IkeBacklog),
                        }
                    }
                    Err(reason) => stats.drops.count(*reason),
                    Ok(Incoming::Inner { .. } | Incoming::Unprotected | Incoming::Held { .. }) => {}
                }
            }
        }
        // While the sockets still hold packets, segments may continue what is held: write
        // it once they are empty, or when it fills a few slots (at most a few hundred KiB
        // wait).
        if let Some(c) = gro.as_mut().filter(|c| !more || c.held() >= GRO_HOLD_SLOTS) {
            drain(c, &ctx, &mut stats);
        }
        sas_stale = publish(&stats, engine, !more, false) || (sas_stale && more);
        if !more {
            let idle = if sas_stale { SA_REFRESH } else { IDLE_POLL };
            let wake = engine.wake_fd();
            wait_readable_within(&fds, wake, ctx.shutdown, &mut ready, &mut look, idle);
            ready.truncate(queues);
        }
    }
    if let Some(c) = gro.as_mut() {
        drain(c, &ctx, &mut stats);
    }
    publish(&stats, engine, true, true);
    engine.close();
    stats
}

/// Whether `pkt` belongs to a flow the coalescer never holds a packet of — any protocol but
/// TCP: IPv4's protocol field (a fragment of TCP says TCP too); IPv6's upper-layer
/// protocol, behind any extension headers (a fragment's is in its Fragment header). Its
/// packets may be written past what the coalescer holds. What cannot be read says TCP.
pub(crate) fn never_coalesced(pkt: &[u8]) -> bool {
    use espo_ipsec::wire::{IpProtocol, ipv6};
    match Version::of(pkt) {
        Some(Version::Ipv4) => pkt.get(9).is_some_and(|&p| p != 6),
        Some(Version::Ipv6) => match pkt.get(6) {
            Some(6) | None => false,
            Some(17 | 58) => true,
            Some(_) => ipv6::Packet::new_checked(pkt)
                .and_then(|p| ipv6::walk_extension_headers(&p))
                .is_ok_and(|u| u.protocol != IpProtocol::Tcp),
        },
        _ => false,
    }
}

/// Counts packets written to the inside (`ok`) or not.
fn written(stats: &mut DirectionStats, ok: bool, unprotected: bool, packets: u64, bytes: u64) {
    stats.writes += 1;
    match (ok, unprotected) {
        (true, false) => {
            stats.forwarded += packets;
            stats.forwarded_bytes += bytes;
        }
        (true, true) => stats.bypassed += packets,
        (false, _) => stats.write_errors += packets,
    }
}

/// Writes what a coalescer holds to the inside.
fn drain<R: OutsideRx>(c: &mut Coalescer, ctx: &InboundCtx<'_, R>, stats: &mut DirectionStats) {
    c.drain(|bytes, packets, inner_bytes, unprotected| {
        let packet = bytes.get(VNET_HDR_LEN..).unwrap_or_default();
        let ok = queue_for(ctx.tun, packet).send(bytes).is_ok();
        written(stats, ok, unprotected, packets, inner_bytes);
    });
}

#[cfg(test)]
mod tests {
    use super::{
        IDLE_POLL, LONG_WAITS, Look, Shutdown, link_local, never_coalesced, wait_readable,
        wait_readable_within,
    };
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    /// Readiness is right whether the data is there at once, comes while the thread
    /// only looks, or comes once it sleeps; and a thread that looks still sleeps when
    /// nothing comes.
    #[test]
    fn busy_polling_finds_what_comes_and_then_sleeps() {
        let shutdown = Shutdown::new().unwrap();
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let (_quiet_tx, quiet) = UnixStream::pair().unwrap();
        let mut ready = Vec::new();
        for busy in [Duration::ZERO, Duration::from_millis(50)] {
            // There at once.
            tx.write_all(&[1]).unwrap();
            wait_readable(&[quiet.as_fd(), rx.as_fd()], &shutdown, &mut ready, busy);
            assert_eq!(ready, [false, true], "busy {busy:?}");
            let mut b = [0u8; 8];
            std::io::Read::read(&mut &rx, &mut b).unwrap();
        }
        // Comes while it looks (50 ms of looking, written after 5); comes after the looking
        // ended (1 ms of it, written after 30): the sleep finds it.
        for (written_after, looking) in [(5, 50), (30, 1)] {
            let writer = {
                let mut tx = tx.try_clone().unwrap();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(written_after));
                    tx.write_all(&[2]).unwrap();
                })
            };
            let busy = Duration::from_millis(looking);
            wait_readable(&[rx.as_fd()], &shutdown, &mut ready, busy);
            writer.join().unwrap();
            assert_eq!(ready, [true], "written after {written_after} ms");
            let mut b = [0u8; 8];
            std::io::Read::read(&mut &rx, &mut b).unwrap();
        }
        // Nothing comes: it looks, then sleeps its idle poll out, and says nothing is ready.
        let started = Instant::now();
        wait_readable(
            &[quiet.as_fd()],
            &shutdown,
            &mut ready,
            Duration::from_millis(2),
        );
        assert_eq!(ready, [false]);
        assert!(started.elapsed() >= IDLE_POLL, "it slept after looking");
        // Shutdown ends the looking too.
        shutdown.trigger();
        let started = Instant::now();
        wait_readable(
            &[quiet.as_fd()],
            &shutdown,
            &mut ready,
            Duration::from_secs(5),
        );
        assert_eq!(ready, [false]);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "shutdown seen while looking"
        );
    }

    /// A thread stops looking after [`LONG_WAITS`] waits in a row that a look could not
    /// have shortened — its packets come further apart than a look — and looks again after
    /// one that ended within a look; a single long wait does not stop it.
    #[test]
    fn a_thread_looks_only_while_its_waits_are_short() {
        let max = Duration::from_millis(5);
        let long = Duration::from_millis(6);
        let mut look = Look::new(max);
        assert_eq!(look.next(), max, "the first wait looks");
        look.waited(Duration::from_millis(2));
        assert_eq!(look.next(), max, "a short wait: look again");
        for _ in 1..LONG_WAITS {
            look.waited(long);
            assert_eq!(
                look.next(),
                max,
                "fewer long waits than LONG_WAITS: still looks"
            );
        }
        look.waited(Duration::from_millis(1));
        for _ in 1..LONG_WAITS {
            look.waited(long);
        }
        assert_eq!(look.next(), max, "a short wait starts the count again");
        look.waited(long);
        assert_eq!(
            look.next(),
            Duration::ZERO,
            "LONG_WAITS long waits: sleep at once"
        );
        look.waited(Duration::from_millis(40));
        assert_eq!(look.next(), Duration::ZERO);
        look.waited(max);
        assert_eq!(look.next(), max, "a wait within a look: look again");
        // A look of zero never looks.
        let mut none = Look::new(Duration::ZERO);
        none.waited(Duration::ZERO);
        assert_eq!(none.next(), Duration::ZERO);

        // Through real waits: what comes 20 ms after each wait began ends it (the look
        // then sleeps); after LONG_WAITS of those the next wait does not look. What is
        // there at once ends a wait at once, and the one after looks again.
        let shutdown = Shutdown::new().unwrap();
        let (tx, rx) = UnixStream::pair().unwrap();
        let mut ready = Vec::new();
        let mut look = Look::new(Duration::from_millis(2));
        let idle = Duration::from_secs(1);
        let mut b = [0u8; 8];
        for _ in 0..LONG_WAITS {
            let writer = {
                let mut tx = tx.try_clone().unwrap();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    tx.write_all(&[1]).unwrap();
                })
            };
            wait_readable_within(&[rx.as_fd()], None, &shutdown, &mut ready, &mut look, idle);
            writer.join().unwrap();
            assert_eq!(ready, [true]);
            std::io::Read::read(&mut &rx, &mut b).unwrap();
        }
        assert_eq!(
            look.next(),
            Duration::ZERO,
            "packets come further apart than a look"
        );
        (&tx).write_all(&[2]).unwrap();
        wait_readable_within(&[rx.as_fd()], None, &shutdown, &mut ready, &mut look, idle);
        assert_eq!(ready, [true]);
        assert_eq!(
            look.next(),
            Duration::from_millis(2),
            "a wait that ended at once"
        );
    }

    #[test]
    fn link_scope_packets_are_recognised() {
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[24] = 0xff;
        v6[25] = 0x02; // ff02::16, an MLD report
        assert!(link_local(&v6));
        v6[25] = 0x0e; // ff0e::, global scope
        assert!(!link_local(&v6));
        v6[8] = 0xfe;
        v6[9] = 0x80; // from fe80::
        assert!(link_local(&v6));
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[16..20].copy_from_slice(&[224, 0, 0, 22]);
        assert!(link_local(&v4));
        v4[16..20].copy_from_slice(&[239, 1, 1, 1]);
        assert!(!link_local(&v4));
        assert!(!link_local(&[0x60, 0, 0]));
    }

    /// Only flows whose packets the coalescer can never hold are written past it: TCP, and
    /// whatever cannot be read, stay in its order.
    #[test]
    fn packets_written_past_the_coalescer_are_never_tcp() {
        let mut v4 = [0u8; 28];
        v4[0] = 0x45;
        for (proto, past) in [(17, true), (1, true), (50, true), (6, false)] {
            v4[9] = proto;
            assert_eq!(never_coalesced(&v4), past, "IPv4 protocol {proto}");
        }
        // A later fragment of a TCP segment says TCP as well.
        v4[9] = 6;
        v4[6..8].copy_from_slice(&[0x00, 0xb9]);
        assert!(!never_coalesced(&v4));

        // IPv6: the upper-layer protocol, behind extension headers.
        let v6 = |next: u8, ext: &[u8]| {
            let mut p = vec![0u8; 40];
            p[0] = 0x60;
            p[6] = next;
            p.extend_from_slice(ext);
            p.extend_from_slice(&[0u8; 8]);
            let payload = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&payload.to_be_bytes());
            p
        };
        assert!(never_coalesced(&v6(17, &[])));
        assert!(never_coalesced(&v6(58, &[])));
        assert!(!never_coalesced(&v6(6, &[])));
        // Hop-by-hop options, then TCP or UDP.
        let hbh = |next: u8| [next, 0, 1, 4, 0, 0, 0, 0];
        assert!(!never_coalesced(&v6(0, &hbh(6))));
        assert!(never_coalesced(&v6(0, &hbh(17))));
        // Fragments: the first and a later one of a UDP datagram, a later one of TCP.
        assert!(never_coalesced(&v6(44, &[17, 0, 0x00, 0x01, 0, 0, 0, 7])));
        assert!(never_coalesced(&v6(44, &[17, 0, 0x05, 0x00, 0, 0, 0, 7])));
        assert!(!never_coalesced(&v6(44, &[6, 0, 0x05, 0x00, 0, 0, 0, 7])));
        // What cannot be read stays in the coalescer's order.
        assert!(!never_coalesced(&v6(0, &[17, 9])[..44]));
        assert!(!never_coalesced(&[0x60, 0, 0]));
        assert!(!never_coalesced(&[]));
        assert!(!never_coalesced(&[0x45]));
    }
}
