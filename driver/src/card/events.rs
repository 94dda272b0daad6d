//! The event queue (datasheet §11): lifetime and sequence events, engine and DMA faults,
//! each checked before it is believed.

use std::sync::atomic::{Ordering, fence};

use espo_fpga::admin::{LIFETIME_AUX_BYTES, LIFETIME_AUX_PACKETS, NO_QUEUE_INDEX};
use espo_fpga::regs::event;
use espo_fpga::{DmaUnit, EventCode, EventEntry};

use super::bar::{Bar0, Blocks};
use super::error::CardError;
use super::fault::Fault;
use super::ring::CplRing;
use super::validate::{BadCompletion, BadCompletionCounts};
use crate::device::Device;

/// Something the card reported that the caller acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardEvent {
    /// An SA crossed its soft byte or packet lifetime (`seq`: the packet that crossed it).
    LifetimeSoft {
        /// SA table index.
        sa_index: u32,
        /// The byte lifetime was crossed.
        bytes: bool,
        /// The packet lifetime was crossed.
        packets: bool,
        /// Sequence number of the packet that crossed it.
        seq: u64,
    },
    /// An SA reached its hard lifetime and stopped: later packets complete `SA_EXPIRED`.
    LifetimeHard {
        /// SA table index.
        sa_index: u32,
        /// The byte lifetime was reached.
        bytes: bool,
        /// The packet lifetime was reached.
        packets: bool,
        /// Sequence number of the packet that reached it.
        seq: u64,
    },
    /// An outbound SA sent its last sequence number and stopped (hard expiry).
    SeqExhausted {
        /// SA table index.
        sa_index: u32,
        /// The last sequence number sent.
        seq: u64,
    },
    /// The ICV unit failed on a packet of this SA (not fatal; the packet completed
    /// `ENGINE_ERROR`).
    IcvEngineError {
        /// SA table index.
        sa_index: u32,
    },
    /// Events were lost because the event ring was full: SA state should be read back.
    EventsLost {
        /// Events lost since the last report.
        count: u32,
    },
    /// A fault: the datapath must be recovered ([`Card::quiesce`](super::Card::quiesce),
    /// then [`Card::reinit`](super::Card::reinit)). Reported once per fault, and again when
    /// a later fault widens what recovery must cover.
    Fault(Fault),
}

pub(crate) struct EventQueue {
    ring: CplRing<2>,
}

impl EventQueue {
    pub(crate) fn new(device: &dyn Device, log2: u32) -> Result<Self, CardError> {
        Ok(Self {
            ring: CplRing::new(device, log2)?,
        })
    }

    /// §5.5 for the event ring.
    pub(crate) fn program(&mut self, bar: &Bar0, b: &Blocks) -> Result<(), CardError> {
        self.ring.reset()?;
        bar.write64(b.event(&event::EQ_BASE), self.ring.mem.iova())?;
        bar.write32(b.event(&event::EQ_LOG2), self.ring.log2)?;
        Ok(())
    }

    /// Takes every new event, checked, into `out` (faults as [`Fault`]s into `faults`);
    /// returns the slots with one doorbell.
    pub(crate) fn poll(
        &mut self,
        bar: &Bar0,
        b: &Blocks,
        limits: EventLimits,
        out: &mut Vec<CardEvent>,
        faults: &mut Vec<Fault>,
        bad: &mut BadCompletionCounts,
    ) -> Result<usize, CardError> {
        let mut n = 0usize;
        while n < 1 << self.ring.log2 {
            let Some(words) = self.ring.peek()? else {
                break;
            };
            self.ring.head = self.ring.head.wrapping_add(1);
            n += 1;
            let mut raw = [0u8; EventEntry::SIZE];
            raw[..8].copy_from_slice(&words[0].to_le_bytes());
            raw[8..].copy_from_slice(&words[1].to_le_bytes());
            match decode(&EventEntry::decode(&raw), limits) {
                Ok(Decoded::Event(e)) => out.push(e),
                Ok(Decoded::Fault(f)) => faults.push(f),
                Err(reason) => bad.add(reason),
            }
        }
        if n > 0 {
            fence(Ordering::Release);
            bar.write32(b.event(&event::EQ_HEAD), self.ring.head)?;
        }
        Ok(n)
    }
}

/// What indices an event may name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventLimits {
    pub sa_table_size: u32,
    pub queue_count: u32,
}

pub(crate) enum Decoded {
    Event(CardEvent),
    Fault(Fault),
}

fn decode(e: &EventEntry, limits: EventLimits) -> Result<Decoded, BadCompletion> {
    let sa = || {
        (e.index < limits.sa_table_size)
            .then_some(e.index)
            .ok_or(BadCompletion::EventIndex)
    };
    let queue = || match e.index {
        NO_QUEUE_INDEX => Ok(None),
        q if q < limits.queue_count => Ok(Some(q as u16)),
        _ => Err(BadCompletion::EventIndex),
    };
    let bytes = e.aux & LIFETIME_AUX_BYTES != 0;
    let packets = e.aux & LIFETIME_AUX_PACKETS != 0;
    Ok(match e.code {
        EventCode::LifetimeSoft => Decoded::Event(CardEvent::LifetimeSoft {
            sa_index: sa()?,
            bytes,
            packets,
            seq: e.detail,
        }),
        EventCode::LifetimeHard => Decoded::Event(CardEvent::LifetimeHard {
            sa_index: sa()?,
            bytes,
            packets,
            seq: e.detail,
        }),
        EventCode::SeqExhausted => Decoded::Event(CardEvent::SeqExhausted {
            sa_index: sa()?,
            seq: e.detail,
        }),
        EventCode::IcvEngineError => Decoded::Event(CardEvent::IcvEngineError { sa_index: sa()? }),
        EventCode::DmaFault => Decoded::Fault(Fault::DmaFault {
            queue: queue()?,
            unit: DmaUnit::from_value(e.aux),
            iova: e.detail,
        }),
        EventCode::EngineHang => Decoded::Fault(Fault::EngineHang),
        EventCode::QueueStopped => match queue()? {
            Some(queue) => Decoded::Fault(Fault::QueueStopped { queue }),
            None => return Err(BadCompletion::EventIndex),
        },
        EventCode::Unknown(_) => return Err(BadCompletion::EventCode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: EventLimits = EventLimits {
        sa_table_size: 16,
        queue_count: 4,
    };

    fn entry(code: EventCode, index: u32, aux: u8) -> EventEntry {
        EventEntry {
            detail: 77,
            index,
            code,
            aux,
            phase: true,
        }
    }

    #[test]
    fn events_are_decoded_and_their_indices_checked() {
        let soft = decode(&entry(EventCode::LifetimeSoft, 3, 2), LIMITS);
        assert!(matches!(
            soft,
            Ok(Decoded::Event(CardEvent::LifetimeSoft {
                sa_index: 3,
                bytes: false,
                packets: true,
                seq: 77
            }))
        ));
        let dma = decode(&entry(EventCode::DmaFault, NO_QUEUE_INDEX, 8), LIMITS);
        assert!(matches!(
            dma,
            Ok(Decoded::Fault(Fault::DmaFault {
                queue: None,
                unit: DmaUnit::AdminData,
                iova: 77
            }))
        ));
        for (e, reason) in [
            (
                entry(EventCode::LifetimeHard, 16, 1),
                BadCompletion::EventIndex,
            ),
            (
                entry(EventCode::QueueStopped, 4, 0),
                BadCompletion::EventIndex,
            ),
            (
                entry(EventCode::QueueStopped, NO_QUEUE_INDEX, 0),
                BadCompletion::EventIndex,
            ),
            (
                entry(EventCode::Unknown(200), 0, 0),
                BadCompletion::EventCode,
            ),
        ] {
            assert!(matches!(decode(&e, LIMITS), Err(r) if r == reason), "{e:?}");
        }
    }
}
