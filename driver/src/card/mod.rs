//! The ESPO-1 card driver, per its datasheet (`fpga/README.md`), over any [`Device`].
//!
//! [`Card::open`] identifies the card by walking its self-describing register blocks
//! (§5.1), resets it (§5.2), reads its capabilities (§5.3) and initialises it in the
//! datasheet's order (§5.4–§5.9). Then:
//!
//! - SAs are written, read back, invalidated and exported through the admin queue
//!   ([`Card::sa_write`], [`Card::sa_read`], [`Card::sa_invalidate`], [`Card::sa_export`]).
//! - Packets go out with [`Card::tx_batch`] (one doorbell per batch; every packet carries
//!   the caller's tag) and their completions come back with [`Card::tx_completions`];
//!   frames come in with [`Card::rx_batch`]. Zero-copy: [`Card::tx_lend`] lends a DMA
//!   buffer to write a frame into (a TUN read straight into it) and [`Card::tx_post`]
//!   posts it; [`Card::rx_lend`] hands received frames over in their buffers, which go
//!   back with [`Card::rx_return`]. Steady state reads no register: progress is
//!   learnt from completions and their phase bits alone. Poll, or wait for interrupts
//!   ([`IrqMode::Interrupt`], [`Card::wait_queue`]).
//! - Everything the card writes is checked before it is used ([`BadCompletion`]).
//! - [`Card::service`] reads the event queue (lifetimes, sequence exhaustion, faults),
//!   watches for hung queues and checks the card's health now and then. After a
//!   [`CardEvent::Fault`], [`Card::quiesce`] stops the card and accounts for every
//!   submitted packet — completed, or not completed with its tag — and every SA's sequence
//!   state; [`Card::reinit`] brings the card back and re-programs the SAs the caller names.
//!
//! A `Card` is driven from one thread (`&mut self` everywhere); it is `Send`.

mod admin;
mod bar;
mod caps;
mod datapath;
mod error;
mod events;
mod fault;
mod init;
mod pool;
mod recover;
mod ring;
mod rx;
mod sa_track;
mod tx;
mod validate;

use std::sync::Arc;
use std::time::Duration;

use espo_fpga::Counter;

pub use caps::{Capabilities, DRIVER_KNOWN_FEATURES, Identity};
pub use error::{CardError, TxRequestError};
pub use events::CardEvent;
pub use fault::{Fault, FaultScope};
pub use recover::{FaultReport, NotCompleted, SaProgram, SaRecovery, SaResults, Taken};
pub use rx::{RxBuf, RxInfo, RxLent, RxPacket};
pub use sa_track::SaDirection;
pub use tx::{TxAction, TxBuf, TxDone, TxLent, TxOutcome, TxRequest};
pub use validate::{BadCompletion, BadCompletionCounts};

use self::admin::AdminQueue;
use self::bar::{Bar0, Blocks};
use self::events::EventQueue;
use self::fault::StallWatch;
use self::rx::RxQueue;
use self::sa_track::SaTrack;
use self::tx::TxQueue;
use crate::device::Device;

/// Whether the card signals completions by interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqMode {
    /// Every vector stays masked on the card; the caller polls.
    Poll,
    /// Vector 0 (admin, events, errors) and one vector per queue pair are enabled
    /// (datasheet §9), with the card's coalescing.
    Interrupt {
        /// A queue vector fires after this many unsignalled completions (`COAL_PACKETS`).
        coalesce_packets: u32,
        /// … or this many cycles after the first unsignalled one (`COAL_CYCLES`, 0: never).
        coalesce_cycles: u32,
    },
}

/// How to bring a card up.
#[derive(Debug, Clone)]
pub struct CardConfig {
    /// Queue pairs to use (at most `QUEUE_COUNT`).
    pub queue_pairs: u16,
    /// TX and RX rings (descriptors and completions) of 2^`ring_log2` entries.
    pub ring_log2: u32,
    /// Bytes of each packet buffer: the largest TX frame and the most of an RX frame kept.
    pub buffer_bytes: u32,
    /// Admin rings of 2^`admin_log2` entries.
    pub admin_log2: u32,
    /// Event ring of 2^`event_log2` entries.
    pub event_log2: u32,
    /// `DRIVER_FEATURES` to enable; `None`: everything the card offers that the driver knows.
    pub features: Option<u32>,
    /// Poll or interrupts.
    pub irq: IrqMode,
    /// Longest wait for `STATUS.READY` after a reset (datasheet §5.2: 10 ms).
    pub reset_timeout: Duration,
    /// Longest wait for an admin completion.
    pub admin_timeout: Duration,
    /// Longest wait for a disabled queue pair to become idle (§5.10).
    pub stop_timeout: Duration,
    /// A queue with packets outstanding and no completion for this long is hung.
    pub hang_timeout: Duration,
    /// How often [`Card::service`] reads the card's status registers (`None`: only when a
    /// queue looks hung).
    pub health_interval: Option<Duration>,
}

impl Default for CardConfig {
    fn default() -> Self {
        Self {
            queue_pairs: 1,
            ring_log2: 9,
            buffer_bytes: 2048,
            admin_log2: 5,
            event_log2: 8,
            features: None,
            irq: IrqMode::Poll,
            reset_timeout: Duration::from_millis(10),
            admin_timeout: Duration::from_millis(100),
            stop_timeout: Duration::from_millis(10),
            hang_timeout: Duration::from_millis(100),
            health_interval: Some(Duration::from_millis(100)),
        }
    }
}

/// Where the card is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardState {
    /// Initialised; the datapath runs.
    Running,
    /// A fault was detected; the datapath refuses work until [`Card::quiesce`] and
    /// [`Card::reinit`].
    Faulted {
        /// The first fault.
        fault: Fault,
        /// What recovery must cover (widened by later faults).
        scope: FaultScope,
    },
    /// Stopped and accounted for by [`Card::quiesce`]; waiting for [`Card::reinit`].
    Quiesced {
        /// What was stopped.
        scope: FaultScope,
    },
    /// The card is gone; nothing touches it any more.
    Lost {
        /// [`Card::quiesce`] has accounted for everything that was outstanding.
        accounted: bool,
    },
}

/// Counters kept by the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardStats {
    /// Packets accepted by `tx_batch`.
    pub tx_submitted: u64,
    /// TX completions handed to the caller (including unverified ones).
    pub tx_completed: u64,
    /// Submitted packets reported not completed by recovery.
    pub tx_not_completed: u64,
    /// `tx_batch` calls that found the ring full.
    pub tx_ring_full: u64,
    /// Frames handed to the caller by `rx_batch`.
    pub rx_delivered: u64,
    /// Completions, admin completions and events not trusted, by reason.
    pub bad: BadCompletionCounts,
    /// Events read from the event queue.
    pub events: u64,
    /// Events the card lost because the event ring was full.
    pub events_lost: u64,
    /// Interrupt waits that returned with the vector fired.
    pub irq_wakeups: u64,
    /// Interrupt waits that timed out.
    pub irq_timeouts: u64,
    /// Faults detected.
    pub faults: u64,
    /// Recoveries completed by `reinit`.
    pub recoveries: u64,
}

pub(crate) struct QueuePair {
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub stall: StallWatch,
}

/// An ESPO-1 card. See the module documentation.
pub struct Card {
    bar: Bar0,
    blocks: Blocks,
    identity: Identity,
    caps: Capabilities,
    config: CardConfig,
    features: u32,
    admin: AdminQueue,
    events: EventQueue,
    queues: Vec<QueuePair>,
    sas: SaTrack,
    stats: CardStats,
    state: CardState,
    /// `RESET_COUNT` after the driver's last reset: any other value is a reset it did not ask for.
    reset_count: u32,
    /// `EQ_DROPPED` already reported.
    eq_dropped: u32,
    /// Device time of the last health check.
    last_health: Duration,
    /// Events raised outside [`Card::service`], reported by its next call.
    unreported: Vec<CardEvent>,
    /// Largest TX frame: `MAX_FRAME` and the buffer size.
    max_tx_frame: usize,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("identity", &self.identity)
            .field("state", &self.state)
            .field("queue_pairs", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl Card {
    /// Identifies, resets and initialises the card behind `device` (datasheet §5.1–§5.7,
    /// §5.9). SAs (§5.8) are written afterwards with [`Card::sa_write`].
    pub fn open(device: Arc<dyn Device>, config: CardConfig) -> Result<Self, CardError> {
        init::open(device, config)
    }

    /// What the card says about itself.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// Interrupt mode: a descriptor that is readable while `queue`'s vector has fired, where
    /// the device has one ([`Device::irq_wake_fd`]), for a caller that waits on it with
    /// other descriptors and then calls [`wait_queue`](Self::wait_queue) with a zero timeout.
    pub fn queue_irq_fd(&self, queue: u16) -> Option<std::os::fd::OwnedFd> {
        if self.config.irq == IrqMode::Poll || queue >= self.config.queue_pairs {
            return None;
        }
        self.bar.device().irq_wake_fd(1 + u32::from(queue))
    }

    /// What the card does in hardware.
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// The `DRIVER_FEATURES` in use.
    pub fn features(&self) -> u32 {
        self.features
    }

    /// Queue pairs in use.
    pub fn queue_pairs(&self) -> u16 {
        self.queues.len() as u16
    }

    /// Bytes of each packet buffer.
    pub fn buffer_bytes(&self) -> u32 {
        self.config.buffer_bytes
    }

    /// Where the card is in its life cycle.
    pub fn state(&self) -> CardState {
        self.state
    }

    /// The driver's counters.
    pub fn stats(&self) -> &CardStats {
        &self.stats
    }

    /// Packets submitted on `queue` and not yet completed.
    pub fn tx_outstanding(&self, queue: u16) -> Result<u32, CardError> {
        Ok(self.queue(queue)?.tx.outstanding())
    }

    /// Free TX slots of `queue`: how many packets the next `tx_batch` takes at most.
    pub fn tx_free(&self, queue: u16) -> Result<u32, CardError> {
        Ok(self.queue(queue)?.tx.free())
    }

    /// The direction of SA entry `index` while it is programmed.
    pub fn sa_direction(&self, index: u32) -> Option<SaDirection> {
        self.sas.direction(index)
    }

    /// Outbound SA `index`: no sequence number above this has been used by the card,
    /// counting every packet submitted for the SA and not (verifiably) completed as one
    /// number. What software continues from when the card cannot be read (plus a margin).
    pub fn sa_seq_upper_bound(&self, index: u32) -> Option<u64> {
        self.sas.seq_upper_bound(index)
    }

    /// Inbound SA `index`: the highest sequence number delivered as decapsulated.
    pub fn sa_rx_seq_high(&self, index: u32) -> Option<u64> {
        self.sas.rx_seq_high(index)
    }

    /// The device's clock (simulated time on the model): what the driver's timeouts use.
    pub fn now(&self) -> Duration {
        self.bar.device().now()
    }

    /// A STATS counter (an MMIO read: for reports, not the packet path).
    pub fn counter(&self, counter: Counter) -> Result<u64, CardError> {
        self.bar.read64(self.blocks.counter(counter.value()))
    }

    fn queue(&self, queue: u16) -> Result<&QueuePair, CardError> {
        self.queues
            .get(queue as usize)
            .ok_or(CardError::NoSuchQueue {
                queue,
                queues: self.queues.len() as u16,
            })
    }
}

/// A card moves between threads (one at a time drives it).
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Card>();
};

impl Drop for Card {
    fn drop(&mut self) {
        init::shutdown(self);
    }
}
