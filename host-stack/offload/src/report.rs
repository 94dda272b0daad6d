//! What the offload engine tells its owner: where SAs run, the fate of every packet,
//! events, counters.

use espo_driver::card::Fault;

use espo_ipsec::counters::{DropCounters, DropReason, SaCounters};
use espo_ipsec::lifetime::LifetimeCause;
use espo_ipsec::spec::Direction;

use super::Unfit;

/// Where an SA runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the card, in this SA table entry.
    Card {
        sa_index: u32,
    },
    Software,
}

impl Placement {
    /// `card` or `software`.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Card { .. } => "card",
            Placement::Software => "software",
        }
    }
}

/// Why an SA runs in software.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftwareReason {
    /// The card cannot do it.
    Unfit(Unfit),
    /// The card's SA table (or the share of it espo uses) is full.
    TableFull,
    /// Moved to software on request ([`OffloadEngine::move_to_software`](super::OffloadEngine::move_to_software)).
    Requested,
    /// Its life is over; it stays in software, refusing packets.
    Expired,
    /// The card faulted too often: every SA runs in software, the card carries frames only.
    CardFaulty,
    /// The card is gone.
    CardGone,
}

impl std::fmt::Display for SoftwareReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SoftwareReason::Unfit(u) => write!(f, "{u}"),
            SoftwareReason::TableFull => f.write_str("card SA table full"),
            SoftwareReason::Requested => f.write_str("moved on request"),
            SoftwareReason::Expired => f.write_str("expired"),
            SoftwareReason::CardFaulty => f.write_str("card faulted repeatedly"),
            SoftwareReason::CardGone => f.write_str("card gone"),
        }
    }
}

/// Which engine processed a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Card,
    Software,
}

/// How a submitted packet left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentAs {
    /// Encapsulated by `path` on SA `spi` with sequence number `seq`.
    Esp { spi: u32, seq: u64, path: Path },
    /// Sent as it was (bypass policy).
    Bypass,
    /// A frame of the host's link layer, sent as given
    /// ([`OffloadEngine::submit_frame`](super::OffloadEngine::submit_frame)).
    Link,
}

/// The fate of one submitted packet; exactly one per [`OffloadEngine::submit`](super::OffloadEngine::submit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxReport {
    /// The caller's tag.
    pub tag: u64,
    pub outcome: Result<SentAs, DropReason>,
}

/// What came of one received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A decapsulated inner IP packet that passed the inbound policy check.
    Inner {
        packet: Vec<u8>,
        spi: u32,
        seq: u64,
        path: Path,
    },
    /// A decapsulated inner IP packet that passed the inbound policy check, left in the
    /// card's receive buffer ([`OffloadOptions::lend_rx`](crate::OffloadOptions::lend_rx)):
    /// write it out with [`OffloadEngine::write_lent`](crate::OffloadEngine::write_lent)
    /// (or copy it with [`lent_into`](crate::OffloadEngine::lent_into) or
    /// [`lent_bytes`](crate::OffloadEngine::lent_bytes)), then give the
    /// buffer back with [`release_lent`](crate::OffloadEngine::release_lent).
    Lent(LentPacket),
    /// An unprotected IP packet that inbound policy lets through.
    Bypass { packet: Vec<u8> },
    /// A NAT keepalive, consumed.
    Keepalive,
    /// A frame for the host's link layer (ARP, neighbour discovery, an ICMP error), from a
    /// card whose port is its own ([`OffloadOptions::own_port`](crate::OffloadOptions::own_port)).
    Link { frame: Vec<u8> },
    /// An IKE message behind the non-ESP marker, for the key-management daemon
    /// ([`OffloadEngine::set_ike`](crate::OffloadEngine::set_ike)).
    Ike {
        message: Vec<u8>,
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
    },
}

/// An inner packet left in a card receive buffer ([`Received::Lent`]). Its first bytes —
/// those the inbound policy check read — are held here in host memory, and it is those
/// checked bytes that are written out, the rest straight from the buffer: what the card
/// may write into its memory afterwards cannot change what the check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LentPacket {
    pub(crate) head: [u8; espo_ipsec::wire::flow::HEAD_LEN],
    pub(crate) head_len: usize,
    pub(crate) buf: espo_driver::card::RxBuf,
    /// Length of the inner packet.
    pub len: usize,
    pub spi: u32,
    pub seq: u64,
}

impl LentPacket {
    /// The packet's first bytes (up to `HEAD_LEN`, 64), as checked.
    pub fn head(&self) -> &[u8] {
        self.head.get(..self.head_len).unwrap_or(&[])
    }
}

/// The fate of one received frame; exactly one per frame the engine received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxReport {
    pub outcome: Result<Received, DropReason>,
    /// SPI and low sequence-number half of the outermost AH or ESP header, as the frame
    /// arrived (for matching frames to reports; `None` for anything else).
    pub spi_seq: Option<(u32, u32)>,
}

/// Why an SA moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveReason {
    /// Room on the card freed up.
    RoomFreed,
    /// The owner asked for it.
    Requested,
    /// A card fault (removal, repeated faults, an SA the card refused on re-initialisation).
    Fault,
    /// The SA expired and left the card.
    Expired,
    /// An ESP+AH bundle came to name the SA: the card does not do bundles.
    Bundled,
}

/// How a card fault was dealt with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Stopped, accounted for and re-initialised with its SAs.
    Reinitialised,
    /// Re-initialised without SAs: every SA runs in software from now on.
    SasToSoftware,
    /// The card is gone: every SA runs in software; frames use the fallback wire, if any.
    CardGone,
}

/// Something the owner of the engine hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineEvent {
    /// An SA crossed its soft lifetime (rekey now) or reached its hard lifetime (it sends
    /// or accepts nothing more).
    Lifetime {
        spi: u32,
        dir: Direction,
        hard: bool,
        cause: LifetimeCause,
    },
    /// An SA moved between the card and software, with its state.
    Moved {
        spi: u32,
        dir: Direction,
        to: Placement,
        reason: MoveReason,
    },
    /// A card fault and what was done about it.
    Fault {
        fault: Option<Fault>,
        recovery: Recovery,
    },
}

/// Counters of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffloadCounters {
    /// Packets the card encapsulated and sent.
    pub tx_card: u64,
    /// Packets encapsulated in software and sent (through the card, or the fallback wire).
    pub tx_software: u64,
    /// Packets sent as they were (bypass policy).
    pub tx_bypass: u64,
    /// Submitted packets dropped, by reason.
    pub tx_dropped: DropCounters,
    /// Packets sent again after a fault because the card never took them.
    pub tx_resent: u64,
    /// Packets the card may have sent before a fault or whose completion was not
    /// trustworthy: dropped (`device-error`), never sent again.
    pub tx_fate_unknown: u64,
    /// Packets the card decapsulated and delivered.
    pub rx_card: u64,
    /// Packets software decapsulated and delivered.
    pub rx_software: u64,
    /// Unprotected packets delivered (bypass policy), keepalives included.
    pub rx_bypass: u64,
    /// Frames handed to the host's link layer (a card whose port is its own).
    pub rx_link: u64,
    /// Frames of the host's link layer sent through the card's port.
    pub tx_link: u64,
    /// Received frames dropped, by reason.
    pub rx_dropped: DropCounters,
    /// SAs moved from software onto the card (initial placement not counted).
    pub moves_to_card: u64,
    /// SAs moved from the card to software, for any reason.
    pub moves_to_software: u64,
    /// Of those, moves forced by a card fault.
    pub fallbacks: u64,
    /// Card faults handled.
    pub faults: u64,
    /// Re-initialisations after a fault.
    pub recoveries: u64,
}

/// How far the engine still uses the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardMode {
    /// SAs on the card, frames through it.
    Offload,
    /// Frames through it, every SA in software (after repeated faults).
    FramesOnly,
    /// No card: frames through the fallback wire, if any.
    Gone,
}

/// One SA as [`OffloadEngine::placements`](super::OffloadEngine::placements) lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaPlacement {
    pub spi: u32,
    pub dir: Direction,
    pub placement: Placement,
    pub why_software: Option<SoftwareReason>,
    /// Packets and bytes through it, as far as the host has seen them.
    pub counters: SaCounters,
}
