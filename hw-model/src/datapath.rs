//! The datapath seam: the per-frame ESP transform and the SA table writes it depends on,
//! replaceable by another implementation of the card's datapath (the RTL core in
//! co-simulation, fpga/README.md §15).
//!
//! With a [`Datapath`] attached ([`Model::attach_datapath`](crate::Model::attach_datapath)),
//! the model keeps everything around the transform — rings, descriptor and data DMA, the
//! IOMMU, the admin queue and its DMA, classification and the SA lookup that picks the RX
//! queue, interrupts, faults, timing — and hands the datapath:
//!
//! - each SA_WRITE the model accepted (entry and imported state), each SA_INVALIDATE, and
//!   SA_READ (the datapath's sequence numbers and counters are the card's);
//! - each TX frame posted on an SA (not bypass), and each received ESP frame whose SA the
//!   lookup found; its output frame and verdict become the completion.
//!
//! The model's own SA slots stay installed for the lookup and the RX queue, and follow the
//! datapath's accepted sequence numbers into their replay window, so that a read-back
//! carries the window bitmap even where the datapath cannot export one (§15.4).

use espo_fpga::{Counter, EventCode, SaEntry, SaState, Status};

/// What a datapath made of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatapathOutput {
    /// The completion's status.
    pub status: Status,
    /// The sequence number assigned (TX) or carried (RX), 0 if none.
    pub seq: u64,
    /// `frame` is the encapsulated / decapsulated packet; otherwise the input, unchanged.
    pub transformed: bool,
    /// RX: the inner packet is IPv6.
    pub inner_ipv6: bool,
    /// (event, aux) pairs the packet raised (§11).
    pub events: Vec<(EventCode, u8)>,
    /// The output frame (Ethernet header first).
    pub frame: Vec<u8>,
}

/// The card's ESP datapath. See the module documentation.
pub trait Datapath: Send {
    /// The card was reset: every SA is gone.
    fn reset(&mut self);
    /// SA_WRITE of `entry` at `index`, with `state` imported when given; the command status.
    fn write_sa(&mut self, index: u32, entry: &SaEntry, state: Option<&SaState>) -> Status;
    /// SA_READ: the SA's state (`None` when the datapath could not answer).
    fn read_sa(&mut self, index: u32) -> Option<SaState>;
    /// SA_INVALIDATE: the final state, and the entry gone.
    fn invalidate_sa(&mut self, index: u32) -> Option<SaState>;
    /// A frame posted for transmission on SA `sa_index`; `None` when the datapath failed.
    fn transmit(&mut self, sa_index: u32, frame: &[u8]) -> Option<DatapathOutput>;
    /// A frame received from the port, ESP in UDP recognised on `natt_port`
    /// (CTRL.NATT_PORT); `None` when the datapath failed or dropped it.
    fn receive(&mut self, frame: &[u8], natt_port: u16) -> Option<DatapathOutput>;
}

/// The counter a refused TX packet's status feeds.
pub(crate) fn tx_refusal_counter(status: Status) -> Counter {
    match status {
        Status::SaInvalid => Counter::TxSaInvalid,
        Status::SaExpired => Counter::TxExpired,
        Status::SeqExhausted => Counter::TxSeqExhausted,
        Status::TooBig => Counter::TxTooBig,
        Status::Malformed => Counter::TxMalformed,
        _ => Counter::EngineErrors,
    }
}

/// The counter a refused RX frame's status feeds. A datapath's `MALFORMED` does not say
/// which check failed; it counts as `RX_BAD_ESP`.
pub(crate) fn rx_refusal_counter(status: Status) -> Counter {
    match status {
        Status::Replay | Status::Stale => Counter::RxReplay,
        Status::IcvFail => Counter::RxIcvFail,
        Status::Malformed => Counter::RxBadEsp,
        Status::EcnDrop => Counter::RxEcnDrop,
        Status::SaExpired => Counter::RxExpired,
        Status::NoSa => Counter::RxNoSa,
        _ => Counter::EngineErrors,
    }
}

/// The events of a datapath output in the model's fixed-size form.
pub(crate) fn events_array(events: &[(EventCode, u8)]) -> crate::sa_table::SaEvents {
    let mut out: crate::sa_table::SaEvents = [None; 3];
    for (slot, e) in out.iter_mut().zip(events) {
        *slot = Some(*e);
    }
    out
}
