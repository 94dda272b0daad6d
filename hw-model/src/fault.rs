//! Fault injection, DMA with IOMMU checking, fault reporting, events and interrupt
//! signalling (datasheet §9–§11).

use crate::card::{Action, Model};
use crate::params::TICKS_PER_CYCLE;
use espo_fpga::admin::NO_QUEUE_INDEX;
use espo_fpga::desc::phase_for;
use espo_fpga::regs::{ctrl, irq};
use espo_fpga::{Counter, DmaUnit, EventCode, EventEntry, FaultCode};

/// A fault the model can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The next DMA fails on PCIe (completion error).
    DmaError,
    /// A crypto engine stops; packets in flight never complete; the watchdog reports it.
    EngineHang,
    /// The ICV unit reports an internal error on the next packet.
    IcvEngineError,
    /// The card resets itself.
    SurpriseReset,
    /// The card disappears from the bus: BAR reads return all ones, nothing else happens.
    SurpriseRemoval,
    /// The next interrupt message is lost.
    DroppedInterrupt,
    /// A hostile or broken card: the next TX or RX completion is written with a valid
    /// phase bit but nonsense in every other field (index, length, SA, status), so that a
    /// driver's validation of device-written data can be tested. Not a hardware fault.
    CorruptCompletion,
    /// A defective card: from when it strikes, SA_READ and SA_INVALIDATE with STATE report
    /// an outbound SA's `SEQ` as it was when the entry was written (or its state imported),
    /// not the last number used — a stale export, lower than numbers already on the wire.
    /// It stays for the life of the card, resets included. Not a hardware fault; a host
    /// that continued from such an export alone would reuse nonces.
    StaleSeqExport,
}

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTrigger {
    /// At this simulated cycle.
    AtCycle(u64),
    /// On the n-th packet (TX or RX) to enter the datapath from now on (1 = the next).
    AtPacket(u64),
}

impl Model {
    pub(crate) fn apply_fault(&mut self, kind: FaultKind) {
        match kind {
            FaultKind::DmaError => self.dma_error_next = true,
            FaultKind::IcvEngineError => self.icv_error_next = true,
            FaultKind::DroppedInterrupt => self.drop_irq_next = true,
            FaultKind::CorruptCompletion => self.corrupt_cpl_next = true,
            FaultKind::StaleSeqExport => self.stale_seq_export = true,
            FaultKind::SurpriseReset => self.reset(),
            FaultKind::SurpriseRemoval => {
                self.removed = true;
                self.sched.clear();
            }
            FaultKind::EngineHang => {
                if self.hung {
                    return;
                }
                self.hung = true;
                // Work past this instant is stuck in the engine: it never completes.
                let now = self.now;
                let keep: Vec<_> = std::mem::take(&mut self.sched)
                    .into_iter()
                    .filter(|s| {
                        s.tick <= now
                            || !matches!(
                                s.action,
                                Action::TxComplete(_)
                                    | Action::RxComplete(_)
                                    | Action::LinkOut
                                    | Action::TxFetch(_)
                            )
                    })
                    .collect();
                self.sched = keep.into_iter().collect();
                self.link_out.retain(|(t, _)| *t <= now);
                for qp in &mut self.q {
                    qp.tx_fetch_scheduled = false;
                    qp.tx_pending.retain(|p| p.tick <= now);
                    qp.rx_pending.retain(|p| p.tick <= now);
                }
                self.schedule(
                    now + self.p.watchdog_cycles * TICKS_PER_CYCLE,
                    Action::Watchdog,
                );
            }
        }
    }

    /// Overwrites every field of a completion but its phase bit when a corruption is due.
    pub(crate) fn maybe_corrupt(&mut self, cpl: &mut [u8]) {
        if !std::mem::take(&mut self.corrupt_cpl_next) {
            return;
        }
        let n = cpl.len();
        for (i, b) in cpl.iter_mut().enumerate() {
            let garbage = 0xA5u8.rotate_left(i as u32) ^ 0xFF;
            *b = if i + 1 == n {
                (*b & 0x80) | (garbage & 0x7F)
            } else {
                garbage
            };
        }
    }

    /// Called as each packet enters the datapath; applies packet-triggered faults. Returns
    /// false when the datapath can no longer take the packet (hung).
    pub(crate) fn packet_enters(&mut self) -> bool {
        let mut due = Vec::new();
        self.packet_faults.retain_mut(|(n, kind)| {
            *n -= 1;
            if *n == 0 {
                due.push(*kind);
                false
            } else {
                true
            }
        });
        for kind in due {
            self.apply_fault(kind);
        }
        !self.hung && !self.removed && self.now >= self.ready_at
    }

    pub(crate) fn watchdog(&mut self) {
        self.halted = true;
        self.record_fault(
            ctrl::err::ENGINE_HANG.mask() as u32,
            FaultCode::EngineHang,
            0,
            NO_QUEUE_INDEX,
            0,
        );
        self.post_event(EventCode::EngineHang, NO_QUEUE_INDEX, 0, 0);
    }

    /// Reports an ICV-unit error on a packet of SA `sa_index`.
    pub(crate) fn icv_engine_error(&mut self, sa_index: u32) {
        self.count(Counter::EngineErrors, 1);
        self.record_fault(
            ctrl::err::ICV_ENGINE.mask() as u32,
            FaultCode::IcvEngine,
            0,
            NO_QUEUE_INDEX,
            0,
        );
        self.post_event(EventCode::IcvEngineError, sa_index, 0, 0);
    }

    fn dma_ok(&mut self, unit: DmaUnit, queue: Option<u16>, iova: u64, done: bool) -> bool {
        let code = if std::mem::take(&mut self.dma_error_next) {
            FaultCode::DmaError
        } else if done {
            return true;
        } else {
            FaultCode::DmaUnmapped
        };
        self.dma_fault(unit, queue, iova, code);
        false
    }

    /// DMA read through the IOMMU; on a fault it is reported and `false` returned.
    pub(crate) fn dma_read(
        &mut self,
        unit: DmaUnit,
        queue: Option<u16>,
        iova: u64,
        buf: &mut [u8],
    ) -> bool {
        let done = !self.dma_error_next && self.iommu.read(iova, buf);
        self.dma_ok(unit, queue, iova, done)
    }

    /// DMA write through the IOMMU; on a fault it is reported and `false` returned.
    pub(crate) fn dma_write(
        &mut self,
        unit: DmaUnit,
        queue: Option<u16>,
        iova: u64,
        data: &[u8],
    ) -> bool {
        let done = !self.dma_error_next && self.iommu.write(iova, data);
        self.dma_ok(unit, queue, iova, done)
    }

    /// A refused or failed DMA: error cause, fault record, the ring's owner stopped, events.
    fn dma_fault(&mut self, unit: DmaUnit, queue: Option<u16>, iova: u64, code: FaultCode) {
        self.count(Counter::DmaFaults, 1);
        let qi = queue.map_or(NO_QUEUE_INDEX, u32::from);
        self.record_fault(
            ctrl::err::DMA_FAULT.mask() as u32,
            code,
            unit.value(),
            qi,
            iova,
        );
        match (unit, queue) {
            (DmaUnit::EventWrite, _) => {
                self.eq_enabled = false;
                self.fire(0);
                return;
            }
            (DmaUnit::AdminCmdRead | DmaUnit::AdminCplWrite, _) => self.admin_enabled = false,
            (_, Some(q)) => {
                if let Some(qp) = self.q.get_mut(q as usize) {
                    qp.enabled = false;
                    qp.error = true;
                }
            }
            _ => {}
        }
        self.post_event(EventCode::DmaFault, qi, iova, unit.value());
        if let Some(q) = queue {
            self.post_event(EventCode::QueueStopped, u32::from(q), 0, 0);
        }
    }

    /// Writes an event entry (vector 0). A full ring loses it and counts EQ_DROPPED.
    pub(crate) fn post_event(&mut self, code: EventCode, index: u32, detail: u64, aux: u8) {
        if !self.eq_enabled {
            return;
        }
        if self.eq.is_full() {
            self.eq_dropped = self.eq_dropped.wrapping_add(1);
            self.err_cause |= ctrl::err::EVENT_OVERFLOW.mask() as u32;
            self.fire(0);
            return;
        }
        let slot = self.eq.prod;
        let entry = EventEntry {
            detail,
            index,
            code,
            aux,
            phase: phase_for(slot, self.eq.log2),
        };
        let addr = self.eq.addr(slot, EventEntry::SIZE as u64);
        if self.dma_write(DmaUnit::EventWrite, None, addr, &entry.encode()) {
            self.eq.prod = slot.wrapping_add(1);
            self.fire(0);
        }
    }

    /// A queue vector's completion: coalesced per COAL_PACKETS / COAL_CYCLES.
    pub(crate) fn signal_queue(&mut self, q: u16) {
        let v = 1 + u32::from(q);
        let Some(count) = self.irq.unsignalled.get_mut(v as usize) else {
            return;
        };
        *count += 1;
        let threshold = self.regs.get32(&irq::COAL_PACKETS, 0).max(1);
        if *count >= threshold {
            self.fire(v);
            return;
        }
        let delay = u64::from(self.regs.get32(&irq::COAL_CYCLES, 0));
        if delay > 0
            && !self
                .irq
                .timer_armed
                .get(v as usize)
                .copied()
                .unwrap_or(true)
        {
            if let Some(t) = self.irq.timer_armed.get_mut(v as usize) {
                *t = true;
            }
            self.schedule(self.now + delay * TICKS_PER_CYCLE, Action::CoalesceTimer(v));
        }
    }

    pub(crate) fn coalesce_timer(&mut self, v: u32) {
        if let Some(t) = self.irq.timer_armed.get_mut(v as usize) {
            *t = false;
        }
        if self.irq.unsignalled.get(v as usize).is_some_and(|&c| c > 0) {
            self.fire(v);
        }
    }

    /// Sends (or, masked, marks pending) the message of vector `v`.
    pub(crate) fn fire(&mut self, v: u32) {
        if let Some(c) = self.irq.unsignalled.get_mut(v as usize) {
            *c = 0;
        }
        if self.irq.mask & (1 << v) != 0 {
            self.irq.pending |= 1 << v;
            return;
        }
        if let Some(f) = self.irq.fired.get_mut(v as usize) {
            *f += 1;
        }
        if std::mem::take(&mut self.drop_irq_next) {
            return;
        }
        if let Some(sink) = &self.sink {
            sink.fire(v);
        }
    }

    pub(crate) fn fire_unmasked_pending(&mut self) {
        let due = self.irq.pending & !self.irq.mask;
        self.irq.pending &= !due;
        for v in 0..irq::VECTORS {
            if due & (1 << v) != 0 {
                self.fire(v);
            }
        }
    }
}
