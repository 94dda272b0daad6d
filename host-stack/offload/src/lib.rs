//! The offload engine: the ESPO-1 card with live fallback to the software engine.
//!
//! Every SA lives in the software engine ([`SoftwareEngine`]); each one the card can take
//! ([`placement::fitness`]) and its SA table has room for is *placed* on the card, and its
//! software copy lies dormant while the card owns its sequence counter and replay window.
//! Moving an SA (either way) carries its state along (DESIGN.md, "Sequence numbers, IVs,
//! and moving an SA"; datasheet §8.5): the outbound sequence number — read back from the
//! card by invalidate-with-export, or when the card cannot answer its driver's upper bound
//! plus [`OffloadOptions::seq_margin`] — with the ESN high half, the inbound window, and the
//! byte and packet counters, so lifetimes continue exactly. A (key, nonce) pair is never
//! used twice; gaps are legal.
//!
//! Outbound: the host's SPD decides; a packet for a card SA goes to the card's TX ring with
//! the SA's index (the card numbers and encrypts it), a packet for a software SA is
//! encapsulated here and goes to the same ring as a bypass frame, so every packet leaves
//! through the card's port in submission order. Inbound: the card hands over decapsulated
//! packets of its SAs (the host still does the RFC 4301 §5.2 policy check), and frames it
//! did not decapsulate, which the software engine takes (its SAs) or which are counted
//! under the drop reason matching the card's verdict.
//!
//! Faults (see `recover.rs`): the card is stopped and every packet accounted for — what the
//! card never took is sent again, what it may have taken is dropped and counted
//! (`device-error`), never sent twice — then re-initialised with its SAs, or, after a
//! removal or repeated faults, its SAs move to software.
//!
//! SAs and policies change while packets flow (see `live.rs`): added, removed, replaced
//! make-before-break (a rekey), policies added, removed and re-bundled — each change made
//! by the owner between two batches, so that a packet sees the database before or after
//! it, never half of it.
//!
//! The engine is driven by its owner: [`submit`](OffloadEngine::submit) packets,
//! [`poll`](OffloadEngine::poll) regularly, and take the reports
//! ([`take_tx_reports`](OffloadEngine::take_tx_reports),
//! [`take_rx_reports`](OffloadEngine::take_rx_reports),
//! [`take_events`](OffloadEngine::take_events)).
#![forbid(unsafe_code)]

mod frame;
mod lifetime;
mod live;
mod migrate;
pub mod next_hop;
mod options;
pub mod placement;
mod recover;
mod report;
mod rx;
pub mod state;
mod tx;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use espo_driver::card::{Capabilities, Card, CardError};
use espo_fpga::{AlgId, SaEntry};

use espo_ipsec::counters::{DropReason, SaCounters};
use espo_ipsec::engine::{ChangeError, EngineError, SaTable, SoftwareEngine};
use espo_ipsec::replay::ReplayWindow;
use espo_ipsec::sa::SaError;
use espo_ipsec::spec::{Direction, PolicySpec, SaSpec};
use espo_ipsec::wire::ethernet::EtherType;

pub use frame::{FRAME_HEADER, TxSlot};
pub use next_hop::NextHopMacs;
pub use options::{ENTRY_GRACE, JUMBO_BUFFER_BYTES, OffloadOptions, card_config};
pub use placement::Unfit;
pub use report::{
    CardMode, EngineEvent, LentPacket, MoveReason, OffloadCounters, Path, Placement, Received,
    Recovery, RxReport, SaPlacement, SentAs, SoftwareReason, TxReport,
};
pub use wire::{HostClock, ManualClock, MemWire, MonotonicClock, Wire};

use self::frame::Frame;
use self::options::{MAX_WIRE_FRAME, SPARE_BUFFERS, SPARE_TX_BUFFERS};
use self::tx::Work;

/// Why the engine could not be built, or a change to its SAs or policies was refused.
///
/// The live operations ([`OffloadEngine::add_sa`] and the others) fail with
/// [`Change`](OffloadError::Change) — espo-ipsec's [`ChangeError`], the same refusals the
/// software engine makes — or [`BuildSa`](OffloadError::BuildSa) when the SA's transform
/// or window cannot be built from its specification. Either way nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    #[error("building the software engine failed")]
    Software(#[source] EngineError),
    #[error("programming SA {spi:#010x} on the card failed")]
    ProgramSa {
        spi: u32,
        #[source]
        source: CardError,
    },
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("building the SA failed")]
    BuildSa(#[source] SaError),
}

/// What the engine knows of one SA.
pub(crate) struct SaRecord {
    pub spi: u32,
    pub dir: Direction,
    /// Index into the software engine's SA table of its direction.
    pub index: usize,
    /// Whether the card can hold it on its own (and its algorithm there).
    pub fit_alone: Result<AlgId, Unfit>,
    /// Whether the card can hold it now: `fit_alone`, unless an ESP+AH bundle names it.
    pub fit: Result<AlgId, Unfit>,
    /// Its SA table image, when it fits on its own (keys wiped on drop).
    pub entry: Option<SaEntry>,
    pub placement: Placement,
    pub why_software: Option<SoftwareReason>,
    /// The entry it last occupied: completions of its packets may still name it.
    pub last_sa_index: Option<u32>,
    /// Soft lifetime already reported.
    pub soft_done: bool,
    /// Hard end already reported (lifetime or sequence numbers).
    pub hard_done: bool,
    /// Kept in software on request: never moved onto the card by the engine itself.
    pub pinned: bool,
    /// Host time it was installed (time lifetimes).
    pub installed: Duration,
    /// Inbound on the card: every number the host accepted for it — delivered by the card,
    /// accepted by the card and dropped for ECN, or accepted by software (outer IPv6
    /// extension headers). The host's final word on replays while the card holds the SA,
    /// and the window software continues with when the card cannot be read back.
    pub shadow: Option<ReplayWindow>,
    /// On the card: packets and bytes the host saw completed or delivered.
    pub host: SaCounters,
    /// Inbound on the card: of `host`, those software accepted (the card never saw them).
    pub host_only: SaCounters,
    /// Outbound on the card: the highest sequence number a completion reported, and
    /// packets whose number is unknown (untrusted completion, fate unknown after a fault).
    pub seq_high: u64,
    pub uncertain: u64,
    /// Outbound: packets routed to the card for it and not yet completed or accounted for.
    pub in_flight: u64,
}

/// The offload engine. See the module documentation.
pub struct OffloadEngine {
    sw: SoftwareEngine,
    card: Option<Card>,
    mode: CardMode,
    options: OffloadOptions,
    /// What the card claims and the driver enabled (`None`: built without a card).
    caps: Option<Capabilities>,
    features: u32,
    /// Every SA's record; a removed SA's record id is reused by a later one.
    records: SaTable<SaRecord>,
    /// Record ids are below this.
    record_slots: usize,
    /// Record of each outbound / inbound software SA index.
    out_rec: Vec<Option<usize>>,
    in_rec: Vec<Option<usize>>,
    /// Per usable SA table entry: its SA, and TX descriptors naming it not yet completed.
    entry_owner: Vec<Option<usize>>,
    entry_in_flight: Vec<u32>,
    /// Device time each entry was last freed: RX completions of its old SA may still be on
    /// their way for a moment, and the driver checks them against the entry as it is.
    entry_freed_at: Vec<Option<Duration>>,
    /// An entry was freed: waiting SAs may move onto the card at the next poll.
    rebalance_due: bool,
    /// The record of each (SPI, direction) (the first, if an SPI repeats).
    by_spi: HashMap<(u32, Direction), usize>,
    pending: VecDeque<(u64, Work)>,
    /// How many packets at the front of `pending` the completion pass under way has put
    /// back (see `requeue`): the next goes behind them, so that they leave in the order
    /// they came.
    requeued: usize,
    posted: tx::PostedQueue,
    /// Frame buffers of completed packets, reused for new ones.
    spare: Vec<Vec<u8>>,
    next_driver_tag: u64,
    max_frame: usize,
    tx_reports: Vec<TxReport>,
    rx_reports: Vec<RxReport>,
    events: Vec<EngineEvent>,
    counters: OffloadCounters,
    /// Host times of recent faults (the repeated-fault rule).
    fault_times: VecDeque<Duration>,
    /// Records with a time lifetime.
    timed: Vec<usize>,
    rx_batch: Vec<espo_driver::card::RxPacket>,
    /// Zero-copy receive: the frames of one batch, and one frame copied out for software.
    rx_lent: Vec<espo_driver::card::RxLent>,
    rx_copy: espo_driver::card::RxPacket,
    /// Reused per flush and per completion round (nothing allocated per packet).
    lent_posts: Vec<espo_driver::card::TxLent>,
    /// Outbound SAs the packets being routed to the card use, each with the highest
    /// sequence number the card may give them: noted in the SA's reservation before the
    /// packets are posted (`tx::note_reserved`).
    to_note: Vec<(usize, u64)>,
    /// Card TX buffers still lent to the engine, free for the next packet
    /// ([`SPARE_TX_BUFFERS`]); dropped with the card.
    spare_tx: Vec<espo_driver::card::TxBuf>,
    /// The last outbound decision: the outbound database's version, the flow, what the
    /// policies said ([`decide`](Self::decide)).
    last_decision: Option<(
        u64,
        espo_ipsec::wire::Flow,
        Result<espo_ipsec::spd::Action, DropReason>,
    )>,
    /// The last outbound packet's head parsed (a lent frame's, or one handed over from
    /// host memory), by its selector bytes, with the outbound decision on it and the
    /// outbound database's version (`frame::KeptHead`).
    kept_head: frame::KeptHead<(u64, Result<Option<espo_ipsec::spd::Bundle>, DropReason>)>,
    /// The last inbound policy verdict: the inbound database's version, the flow, the SA
    /// index the policies name, whether they admit it ([`admits`](Self::admits)).
    last_admission: Option<(u64, espo_ipsec::wire::Flow, usize, bool)>,
    /// The last lent inbound packet's head parsed, with the inbound policy verdict on it,
    /// the inbound database's version and the SA's policy key (`frame::KeptHead`).
    rx_kept: frame::KeptHead<(u64, usize, bool)>,
    tx_done: Vec<espo_driver::card::TxDone>,
    wire_buf: Vec<u8>,
    /// Lent inbound packets whose owner still held them when the card went: each buffer's
    /// bytes, copied out before the card's memory went with it.
    rescued_rx: HashMap<espo_driver::card::RxBuf, Vec<u8>>,
}

impl std::fmt::Debug for OffloadEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffloadEngine")
            .field("mode", &self.mode)
            .field("sas", &self.records.len())
            .field("pending", &self.pending.len())
            .field("posted", &self.posted.len())
            .finish_non_exhaustive()
    }
}

impl OffloadEngine {
    /// Builds the engine for these SAs and policies over `card` (`None`: software only, frames through
    /// the fallback wire) and places every SA the card can take while its table has room,
    /// in configuration order.
    pub fn new(
        sas: &[SaSpec],
        policies: &[PolicySpec],
        card: Option<Card>,
        options: OffloadOptions,
    ) -> Result<OffloadEngine, OffloadError> {
        let sw = SoftwareEngine::new(sas, policies).map_err(OffloadError::Software)?;
        let now = options.clock.now();
        let (caps, features, capacity, max_frame) = match &card {
            Some(c) => {
                let caps = c.capabilities();
                let capacity = options
                    .max_card_sas
                    .map_or(caps.sa_table_size, |m| m.min(caps.sa_table_size));
                let frame = (c.buffer_bytes() as usize).min(caps.max_frame as usize);
                (Some(caps), c.features(), capacity, frame)
            }
            None => (None, 0, 0, MAX_WIRE_FRAME),
        };
        let mode = if card.is_some() {
            CardMode::Offload
        } else {
            CardMode::Gone
        };
        let mut engine = OffloadEngine {
            sw,
            card,
            mode,
            options,
            caps,
            features,
            records: SaTable::default(),
            record_slots: 0,
            out_rec: Vec::new(),
            in_rec: Vec::new(),
            entry_owner: vec![None; capacity as usize],
            entry_in_flight: vec![0; capacity as usize],
            entry_freed_at: vec![None; capacity as usize],
            rebalance_due: false,
            by_spi: HashMap::new(),
            pending: VecDeque::new(),
            requeued: 0,
            posted: Default::default(),
            spare: Vec::new(),
            next_driver_tag: 0,
            max_frame,
            tx_reports: Vec::new(),
            rx_reports: Vec::new(),
            events: Vec::new(),
            counters: OffloadCounters::default(),
            fault_times: VecDeque::new(),
            timed: Vec::new(),
            rx_batch: vec![espo_driver::card::RxPacket::default(); 32],
            rx_lent: Vec::with_capacity(32),
            rx_copy: espo_driver::card::RxPacket::default(),
            lent_posts: Vec::new(),
            to_note: Vec::new(),
            last_decision: None,
            kept_head: frame::KeptHead::default(),
            last_admission: None,
            rx_kept: frame::KeptHead::default(),
            spare_tx: Vec::new(),
            tx_done: Vec::new(),
            wire_buf: Vec::new(),
            rescued_rx: HashMap::new(),
        };
        // Outbound SAs first, each direction in configuration order (the software engine's).
        let out: Vec<(usize, u32)> = engine
            .sw
            .outbound
            .sas()
            .entries()
            .map(|(i, sa)| (i, sa.params.spi))
            .collect();
        for (index, spi) in out {
            let spec = sas.iter().find(|s| s.spi == spi);
            engine.install_record(spec, Direction::Out, index, now);
        }
        let inb: Vec<(usize, u32, std::net::IpAddr)> = engine
            .sw
            .inbound
            .sas()
            .entries()
            .map(|(i, sa)| (i, sa.params.spi, sa.params.dst))
            .collect();
        for (index, spi, dst) in inb {
            let spec = sas.iter().find(|s| s.spi == spi && s.dst == dst);
            engine.install_record(spec, Direction::In, index, now);
        }
        engine.refit_bundles();
        engine.place_initial()?;
        Ok(engine)
    }

    /// Hands an inner IP packet to the engine; its fate comes back as one [`TxReport`]
    /// with `tag`.
    pub fn submit(&mut self, tag: u64, inner: &[u8]) {
        let decided = espo_ipsec::wire::Flow::parse(inner)
            .map_err(|_| DropReason::Malformed)
            .and_then(|flow| self.decide(&flow).map(|bundle| (flow.dst, bundle)));
        match decided {
            Ok((dst, bundle)) => {
                let frame = Frame::Heap(self.frame_for(inner));
                self.enqueue(tag, frame, dst, bundle);
            }
            Err(reason) => self.tx_drop(tag, reason),
        }
    }

    /// Sends an Ethernet frame of the host's link layer (ARP, neighbour discovery, IKE,
    /// addressed by the caller) through the card's port as it is, in order with what was
    /// submitted before it; its fate comes back as one [`TxReport`] with `tag`
    /// ([`SentAs::Link`]). Meant for a card whose port is its own
    /// ([`OffloadOptions::own_port`]).
    pub fn submit_frame(&mut self, tag: u64, frame: &[u8]) {
        let mut f = self.buffer(frame.len());
        f.extend_from_slice(frame);
        self.pending.push_back((
            tag,
            Work::Ready {
                frame: Frame::Heap(f),
                sent: SentAs::Link,
            },
        ));
    }

    /// Does the work that is due: packets to the card, completions, received frames, card
    /// events and faults, time lifetimes. Call it after submitting and whenever idle.
    pub fn poll(&mut self) {
        self.check_time_lifetimes();
        self.service();
        self.flush();
        self.complete();
        self.receive();
    }

    /// Interrupt mode: a descriptor that is readable while the card has signalled the
    /// engine's queue, where the device has one; after it was readable, [`wait`](Self::wait)
    /// with a zero timeout takes the interrupt and polls.
    pub fn card_irq_fd(&self) -> Option<std::os::fd::OwnedFd> {
        self.card.as_ref()?.queue_irq_fd(self.options.queue)
    }

    /// Waits up to `timeout` for the card to signal its queue (interrupt mode; a lost
    /// interrupt costs at most the timeout: the rings are checked whatever happens), then
    /// polls. In poll mode, or without a card, it just polls.
    pub fn wait(&mut self, timeout: Duration) {
        if self.mode != CardMode::Gone
            && let Some(card) = self.card.as_mut()
            && card.state() == espo_driver::card::CardState::Running
        {
            // A fault shows in the poll that follows.
            let _ = card.wait_queue(self.options.queue, timeout);
        }
        self.poll();
    }

    /// The highest sequence number outbound SA `spi` has used, or may have used: on the
    /// card, every number of a packet in flight counts as used.
    pub fn seq_used(&self, spi: u32) -> Option<u64> {
        let index = self.sw.outbound.sa_index(spi)?;
        Some(self.sw.outbound.sas()[index].reservation().used())
    }

    /// Submitted packets whose report has not been produced yet.
    pub fn tx_outstanding(&self) -> usize {
        self.pending.len() + self.posted.len()
    }

    /// Moves the reports of submitted packets to `out`.
    pub fn take_tx_reports(&mut self, out: &mut Vec<TxReport>) {
        out.append(&mut self.tx_reports);
    }

    /// Moves the reports of received frames to `out`.
    pub fn take_rx_reports(&mut self, out: &mut Vec<RxReport>) {
        out.append(&mut self.rx_reports);
    }

    /// Moves the events since the last call to `out`.
    pub fn take_events(&mut self, out: &mut Vec<EngineEvent>) {
        out.append(&mut self.events);
    }

    pub fn counters(&self) -> &OffloadCounters {
        &self.counters
    }

    pub fn mode(&self) -> CardMode {
        self.mode
    }

    /// The card, while the engine uses one.
    pub fn card(&self) -> Option<&Card> {
        self.card.as_ref()
    }

    /// The software engine holding every SA (the dormant copies of card SAs included).
    pub fn software(&self) -> &SoftwareEngine {
        &self.sw
    }

    /// Where every SA runs, outbound SAs first, each direction in the order the software
    /// engine holds them (configuration order, SAs added later in the entries they took).
    pub fn placements(&self) -> Vec<SaPlacement> {
        let mut recs: Vec<&SaRecord> = self.records.iter().collect();
        recs.sort_by_key(|r| (r.dir == Direction::In, r.index));
        recs.into_iter()
            .map(|r| SaPlacement {
                spi: r.spi,
                dir: r.dir,
                placement: r.placement,
                why_software: match r.placement {
                    Placement::Card { .. } => None,
                    Placement::Software => r.why_software,
                },
                counters: match (r.placement, r.dir) {
                    (Placement::Card { .. }, _) => r.host,
                    (Placement::Software, Direction::Out) => {
                        self.sw.outbound.sas()[r.index].counters
                    }
                    (Placement::Software, Direction::In) => self.sw.inbound.sas()[r.index].counters,
                },
            })
            .collect()
    }

    /// The record of the SA `spi` in `dir`.
    fn record_of(&self, spi: u32, dir: Direction) -> Option<usize> {
        self.by_spi.get(&(spi, dir)).copied()
    }

    /// The record of software SA `index` of direction `dir`.
    pub(crate) fn rec_of(&self, dir: Direction, index: usize) -> Option<usize> {
        let map = match dir {
            Direction::Out => &self.out_rec,
            Direction::In => &self.in_rec,
        };
        map.get(index).copied().flatten()
    }

    /// An Ethernet frame around an IP packet, the EtherType from its version.
    fn frame_for(&mut self, ip: &[u8]) -> Vec<u8> {
        let mut f = self.buffer(14 + ip.len());
        f.extend_from_slice(&self.options.peer_mac);
        f.extend_from_slice(&self.options.local_mac);
        f.extend_from_slice(&EtherType::of_ip(ip).to_bytes());
        f.extend_from_slice(ip);
        f
    }

    /// An empty buffer for at least `len` bytes, reused when one is spare.
    pub(crate) fn buffer(&mut self, len: usize) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut b) => {
                b.clear();
                b.reserve(len);
                b
            }
            None => Vec::with_capacity(len + 128),
        }
    }

    /// A buffer whose packet is done with, kept for reuse (a bounded number of them).
    pub(crate) fn recycle(&mut self, b: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(b);
        }
    }

    fn tx_drop(&mut self, tag: u64, reason: DropReason) {
        self.counters.tx_dropped.count(reason);
        self.tx_reports.push(TxReport {
            tag,
            outcome: Err(reason),
        });
    }

    /// A card call failed: a fault to recover from, or the card refusing work it should
    /// have taken (dealt with as a fault too).
    fn card_failed(&mut self, _e: &CardError) {
        // A fault (`NeedsRecovery`, `Removed`) or anything else the card should not have
        // done: either way, stop it, account for everything and bring it back.
        self.recover();
    }
}

/// The engine moves to the thread that runs the datapath.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<OffloadEngine>();
};

#[cfg(test)]
mod tests;
