//! How the offload engine runs: its options and the card configuration it is built for.

use std::sync::Arc;
use std::time::Duration;

use espo_driver::card::CardConfig;

use super::next_hop::NextHopMacs;
use super::wire::{HostClock, MonotonicClock, Wire};

/// How to run the engine.
pub struct OffloadOptions {
    /// The card's queue pair used.
    pub queue: u16,
    /// Source MAC of transmitted frames.
    pub local_mac: [u8; 6],
    /// Destination MAC of transmitted frames (the next hop), where the port's owner
    /// rewrites it on the way out anyway; see `own_port`.
    pub peer_mac: [u8; 6],
    /// The card's port is its own (a card on the bus, or a served card on an interface):
    /// frames are posted with their next hop's MAC from this table (one the next hop has
    /// not resolved yet is dropped as [`DropReason::Unresolved`]), and received frames for
    /// the link layer ([`NextHopMacs::takes`]) are handed over as
    /// [`Received::Link`](crate::Received::Link).
    ///
    /// [`DropReason::Unresolved`]: espo_ipsec::counters::DropReason::Unresolved
    pub own_port: Option<Arc<NextHopMacs>>,
    /// Use at most this many SA table entries (`None`: the whole table).
    pub max_card_sas: Option<u32>,
    /// Sequence numbers skipped beyond the driver's upper bound when an outbound SA leaves
    /// a card that cannot be read back.
    pub seq_margin: u64,
    /// Card faults tolerated within `fault_window`; one more and every SA moves to software.
    pub max_recoveries: u32,
    pub fault_window: Duration,
    /// Where frames go, and come from, once the card is gone.
    pub fallback: Option<Box<dyn Wire>>,
    /// The host clock (time lifetimes, the fault window).
    pub clock: Arc<dyn HostClock>,
    /// Zero-copy receive: an inner packet the card decapsulated stays in the card's
    /// receive buffer and is handed over as [`Received::Lent`](crate::Received::Lent), to
    /// be written out from there and given back (default false: copied out).
    pub lend_rx: bool,
}

impl Default for OffloadOptions {
    fn default() -> Self {
        Self {
            queue: 0,
            local_mac: [0x02, 0, 0, 0, 0, 1],
            peer_mac: [0x02, 0, 0, 0, 0, 2],
            own_port: None,
            max_card_sas: None,
            seq_margin: 64,
            max_recoveries: 3,
            fault_window: Duration::from_secs(60),
            fallback: None,
            clock: Arc::new(MonotonicClock),
            lend_rx: false,
        }
    }
}

impl std::fmt::Debug for OffloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffloadOptions")
            .field("queue", &self.queue)
            .field("max_card_sas", &self.max_card_sas)
            .field("seq_margin", &self.seq_margin)
            .field("max_recoveries", &self.max_recoveries)
            .field("fallback", &self.fallback.is_some())
            .field("own_port", &self.own_port.is_some())
            .field("lend_rx", &self.lend_rx)
            .finish_non_exhaustive()
    }
}

/// The card configuration the engine is designed for: jumbo buffers (the card's largest
/// frame, 9216 bytes), 256-entry rings, fault detection within a few milliseconds.
pub fn card_config() -> CardConfig {
    CardConfig {
        ring_log2: 8,
        buffer_bytes: JUMBO_BUFFER_BYTES,
        hang_timeout: Duration::from_millis(5),
        health_interval: Some(Duration::from_millis(2)),
        ..CardConfig::default()
    }
}

/// Bytes of each card buffer in [`card_config`]: the card's largest frame.
pub const JUMBO_BUFFER_BYTES: u32 = 9216;

/// How long a freed SA table entry rests before another SA may use it: longer than a
/// frame the card took before the entry was freed can take to complete — a full pipeline
/// (256 frames, datasheet §14) of the largest frames (9216 bytes, 0.74 µs each at
/// 100 Gbit/s) drains in about 190 µs.
pub const ENTRY_GRACE: Duration = Duration::from_micros(250);

/// Frame buffers kept for reuse.
pub(super) const SPARE_BUFFERS: usize = 1024;

/// Card TX buffers kept lent for the next [`tx_slot`](crate::OffloadEngine::tx_slot) once
/// their frame was sent: a buffer goes from a completion to the next packet without a
/// round trip through the driver's free list. Two batches' worth.
pub(super) const SPARE_TX_BUFFERS: usize = 128;

/// Largest frame sent through the fallback wire.
pub(super) const MAX_WIRE_FRAME: usize = 65535 + 14;
