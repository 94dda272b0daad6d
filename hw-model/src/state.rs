//! Card-side state the model schedules around: rings, queue pairs, completions waiting
//! for their tick, and the scheduler's entries.

use std::cmp::Ordering;
use std::collections::VecDeque;

/// A ring in host memory: base, size, producer and consumer free-running indices.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ring {
    pub base: u64,
    pub log2: u32,
    pub prod: u32,
    pub cons: u32,
}

impl Ring {
    pub fn entries(&self) -> u32 {
        1 << self.log2
    }
    pub fn used(&self) -> u32 {
        self.prod.wrapping_sub(self.cons)
    }
    pub fn is_full(&self) -> bool {
        self.used() >= self.entries()
    }
    pub fn addr(&self, index: u32, entry_bytes: u64) -> u64 {
        self.base
            .wrapping_add(u64::from(index & (self.entries() - 1)) * entry_bytes)
    }
}

/// One queue pair's card-side state.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueuePair {
    pub enabled: bool,
    pub error: bool,
    pub txq: Ring,
    pub txcq: Ring,
    pub rxq: Ring,
    pub rxcq: Ring,
    pub tx_inflight: u32,
    pub rx_inflight: u32,
    pub tx_fetch_scheduled: bool,
    /// A completion (or RX data) write of this ring faulted: later completions are not
    /// written, so the ring never has a gap.
    pub tx_dead: bool,
    pub rx_dead: bool,
    pub last_tx_cpl: u64,
    pub last_rx_cpl: u64,
    pub tx_pending: VecDeque<PendingTx>,
    pub rx_pending: VecDeque<PendingRx>,
}

/// A TX completion waiting for its tick. Per queue these are in tick order.
#[derive(Debug, Clone)]
pub(crate) struct PendingTx {
    pub tick: u64,
    pub index: u32,
    pub cpl: [u8; 16],
    pub from: u64,
    /// (frame bytes, wire bytes, inner bytes) of a sent frame.
    pub stats: Option<(u64, u64, u64)>,
}

/// An RX data + completion write waiting for its tick, in tick order per queue.
#[derive(Debug, Clone)]
pub(crate) struct PendingRx {
    pub tick: u64,
    pub index: u32,
    pub buf: u64,
    pub data: Vec<u8>,
    pub cpl: [u8; 32],
    pub from: u64,
    pub stats: (u64, u64, u64),
}

/// Work scheduled at a tick. Payloads wait in per-source FIFOs (their ticks are
/// monotonic per source), so that the scheduler moves small entries only.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    TxFetch(u16),
    TxComplete(u16),
    LinkOut,
    RxProcess,
    RxComplete(u16),
    AdminProcess,
    AdminComplete,
    CoalesceTimer(u32),
    ResetDone,
    Watchdog,
}

#[derive(Debug)]
pub(crate) struct Scheduled {
    pub tick: u64,
    pub order: u64,
    pub action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.tick, self.order) == (other.tick, other.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed so that `BinaryHeap` pops the earliest tick first (FIFO within a tick).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.tick, other.order).cmp(&(self.tick, self.order))
    }
}
