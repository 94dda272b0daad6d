//! BAR0: register reads and writes with their side effects (datasheet §3, §5, §7).

use crate::card::{Action, Model, Ring};
use crate::params::TICKS_PER_CYCLE;
use espo_fpga::regs::{admin, cap, ctrl, event, irq, queue, stats};
use espo_fpga::{Access, FaultCode};

const RING_ALIGN: u64 = 64;

impl Model {
    /// Reads a 32-bit register. All ones after surprise removal.
    pub fn bar0_read32(&self, offset: u32) -> u32 {
        if self.removed {
            return u32::MAX;
        }
        let counters = stats::BASE + stats::COUNTERS_OFFSET..stats::BASE + stats::BLOCK.size;
        if counters.contains(&offset) && offset.is_multiple_of(4) {
            let i = (offset - counters.start) / 8;
            let v = self.counters.get(i as usize).copied().unwrap_or(0);
            return (if offset % 8 == 4 { v >> 32 } else { v }) as u32;
        }
        let Some(info) = self.regs.info(offset) else {
            return 0;
        };
        let live = self.live_value(info.reg.name, info.instance, info.addr);
        match live {
            Some(v) => (if info.high { v >> 32 } else { v }) as u32,
            None => self.regs.get(offset),
        }
    }

    /// Reads a 64-bit register (two 32-bit reads, low word first).
    pub fn bar0_read64(&self, offset: u32) -> u64 {
        u64::from(self.bar0_read32(offset))
            | u64::from(self.bar0_read32(offset.wrapping_add(4))) << 32
    }

    /// Writes a 64-bit register (low word first, then high word).
    pub fn bar0_write64(&mut self, offset: u32, value: u64) {
        self.bar0_write32(offset, value as u32);
        self.bar0_write32(offset.wrapping_add(4), (value >> 32) as u32);
    }

    fn live_value(&self, name: &str, instance: u32, addr: u32) -> Option<u64> {
        let block_of = |base: u32| addr >= base && addr < base + 0x100;
        if block_of(ctrl::BASE) {
            return match name {
                "STATUS" => {
                    let mut s = 0;
                    s = ctrl::status::READY.put(s, u64::from(self.now >= self.ready_at));
                    s = ctrl::status::ENABLED.put(s, u64::from(self.enabled));
                    Some(ctrl::status::FAULT.put(s, u64::from(self.halted)))
                }
                "ERR_CAUSE" => Some(self.err_cause.into()),
                "FAULT_CODE" => Some(self.fault_code.into()),
                "FAULT_ADDR" => Some(self.fault_addr),
                "RESET_COUNT" => Some(self.reset_count.into()),
                _ => None,
            };
        }
        if block_of(irq::BASE) {
            return match name {
                "INT_MASK" => Some(self.irq.mask.into()),
                "INT_PENDING" => Some(self.irq.pending.into()),
                _ => None,
            };
        }
        if name == "ASQ_HEAD" && block_of(admin::BASE) {
            return Some(self.asq.cons.into());
        }
        if name == "EQ_DROPPED" && block_of(event::BASE) {
            return Some(self.eq_dropped.into());
        }
        if addr >= queue::BASE {
            let qp = self.q.get(instance as usize)?;
            return match name {
                "Q_STATUS" => {
                    let mut s = queue::q_status::ENABLED.put(0, u64::from(qp.enabled));
                    s = queue::q_status::ERROR.put(s, u64::from(qp.error));
                    Some(
                        queue::q_status::IDLE
                            .put(s, u64::from(qp.tx_inflight == 0 && qp.rx_inflight == 0)),
                    )
                }
                "TXQ_HEAD" => Some(qp.txq.cons.into()),
                "RXQ_HEAD" => Some(qp.rxq.cons.into()),
                _ => None,
            };
        }
        None
    }

    /// Writes a 32-bit register. Ignored after surprise removal and during reset.
    pub fn bar0_write32(&mut self, offset: u32, value: u32) {
        if self.removed || self.now < self.ready_at {
            return;
        }
        let Some(info) = self.regs.info(offset) else {
            return;
        };
        match info.access() {
            Access::Ro => {}
            Access::W1c => match info.reg.name {
                "ERR_CAUSE" => {
                    self.err_cause &= !value;
                    if self.err_cause == 0 {
                        self.fault_code = 0;
                        self.fault_addr = 0;
                    }
                }
                "INT_PENDING" => self.irq.pending &= !value,
                _ => {}
            },
            Access::Rw => {
                let old = self.regs.get(offset);
                self.regs.set(offset, value);
                if !info.high {
                    self.write_side_effect(info.reg.name, info.instance, old, value);
                }
            }
        }
    }

    fn write_side_effect(&mut self, name: &str, instance: u32, old: u32, value: u32) {
        let doorbell_at = self.now + self.p.doorbell_latency_cycles * TICKS_PER_CYCLE;
        let q = instance as usize;
        match name {
            "CONTROL" => {
                self.regs.set(
                    ctrl::CONTROL.addr(),
                    value & !(ctrl::control::RESET.mask() as u32),
                );
                if ctrl::control::RESET.is_set(value.into()) {
                    self.reset();
                } else {
                    let on = ctrl::control::ENABLE.is_set(value.into());
                    if on && !self.enabled {
                        self.enable();
                    } else if !on && self.enabled {
                        self.disable();
                    }
                }
            }
            "INT_MASK" => {
                self.irq.mask = value & ((1 << irq::VECTORS) - 1);
                self.fire_unmasked_pending();
            }
            "ASQ_TAIL" if self.admin_enabled => {
                if value.wrapping_sub(self.asq.cons) > self.asq.entries() {
                    self.config_fault(u32::from(u16::MAX));
                    self.admin_enabled = false;
                    return;
                }
                self.asq.prod = value;
                self.kick_admin(doorbell_at);
            }
            "ACQ_HEAD" if self.admin_enabled => {
                if self.acq.prod.wrapping_sub(value) > self.acq.entries() {
                    self.config_fault(u32::from(u16::MAX));
                    self.admin_enabled = false;
                    return;
                }
                self.acq.cons = value;
                self.kick_admin(doorbell_at);
            }
            "EQ_HEAD" if self.eq_enabled => {
                if self.eq.prod.wrapping_sub(value) > self.eq.entries() {
                    self.config_fault(u32::from(u16::MAX));
                    self.eq_enabled = false;
                    return;
                }
                self.eq.cons = value;
            }
            "Q_CTRL" => {
                let on = queue::q_ctrl::ENABLE.is_set(value.into());
                let was = queue::q_ctrl::ENABLE.is_set(old.into());
                if on && !was {
                    self.enable_queue(q);
                } else if !on
                    && was
                    && let Some(qp) = self.q.get_mut(q)
                {
                    qp.enabled = false;
                }
            }
            "TXQ_TAIL" | "RXQ_TAIL" | "TXCQ_HEAD" | "RXCQ_HEAD" => {
                self.queue_doorbell(q, name, value, doorbell_at)
            }
            _ => {}
        }
    }

    fn queue_doorbell(&mut self, q: usize, name: &str, value: u32, at: u64) {
        let Some(qp) = self.q.get_mut(q) else { return };
        if !qp.enabled {
            return;
        }
        let ring = match name {
            "TXQ_TAIL" => &mut qp.txq,
            "RXQ_TAIL" => &mut qp.rxq,
            "TXCQ_HEAD" => &mut qp.txcq,
            _ => &mut qp.rxcq,
        };
        let producer_doorbell = name.ends_with("TAIL");
        let valid = if producer_doorbell {
            value.wrapping_sub(ring.cons) <= ring.entries()
        } else {
            ring.prod.wrapping_sub(value) <= ring.entries()
        };
        if !valid {
            // An index that would put more entries in flight than the ring holds.
            qp.enabled = false;
            qp.error = true;
            self.config_fault(q as u32);
            return;
        }
        if producer_doorbell {
            ring.prod = value;
        } else {
            ring.cons = value;
        }
        if name.starts_with("TX") {
            self.kick_tx(q as u16, at);
        } else {
            self.kick_rx(at);
        }
    }

    pub(crate) fn kick_tx(&mut self, q: u16, at: u64) {
        if let Some(qp) = self.q.get_mut(q as usize)
            && !qp.tx_fetch_scheduled
        {
            qp.tx_fetch_scheduled = true;
            self.schedule(at, Action::TxFetch(q));
        }
    }

    pub(crate) fn kick_rx(&mut self, at: u64) {
        if !self.rx_scheduled && !self.rx_fifo.is_empty() {
            self.rx_scheduled = true;
            self.schedule(at, Action::RxProcess);
        }
    }

    pub(crate) fn kick_admin(&mut self, at: u64) {
        if !self.admin_scheduled {
            self.admin_scheduled = true;
            self.schedule(at, Action::AdminProcess);
        }
    }

    fn ring_from_regs(
        &self,
        base: &espo_fpga::Register,
        log2: &espo_fpga::Register,
        instance: u32,
    ) -> Option<Ring> {
        let base = self.regs.get64(base, instance);
        let log2 = self.regs.get32(log2, instance);
        let ok = (cap::RING_MIN_LOG2..=cap::RING_MAX_LOG2).contains(&log2)
            && base != 0
            && base.is_multiple_of(RING_ALIGN);
        ok.then_some(Ring {
            base,
            log2,
            prod: 0,
            cons: 0,
        })
    }

    /// CONTROL.ENABLE 0 -> 1 (datasheet §5.7).
    fn enable(&mut self) {
        let wanted = u64::from(self.regs.get32(&ctrl::DRIVER_FEATURES, 0));
        let rings = (
            self.ring_from_regs(&admin::ASQ_BASE, &admin::ASQ_LOG2, 0),
            self.ring_from_regs(&admin::ACQ_BASE, &admin::ACQ_LOG2, 0),
            self.ring_from_regs(&event::EQ_BASE, &event::EQ_LOG2, 0),
        );
        match rings {
            (Some(asq), Some(acq), Some(eq)) if wanted & !cap::features::ESPO1 == 0 => {
                self.asq = asq;
                self.acq = acq;
                self.eq = eq;
                self.features = wanted;
                self.enabled = true;
                self.admin_enabled = true;
                self.eq_enabled = true;
            }
            _ => {
                self.regs.set(ctrl::CONTROL.addr(), 0);
                self.config_fault(u32::from(u16::MAX));
            }
        }
    }

    fn disable(&mut self) {
        self.enabled = false;
        self.admin_enabled = false;
        self.eq_enabled = false;
        for qp in &mut self.q {
            qp.enabled = false;
        }
    }

    /// Q_CTRL.ENABLE 0 -> 1 (datasheet §5.9).
    fn enable_queue(&mut self, q: usize) {
        let i = q as u32;
        let rings = (
            self.ring_from_regs(&queue::TXQ_BASE, &queue::TXQ_LOG2, i),
            self.ring_from_regs(&queue::TXCQ_BASE, &queue::TXCQ_LOG2, i),
            self.ring_from_regs(&queue::RXQ_BASE, &queue::RXQ_LOG2, i),
            self.ring_from_regs(&queue::RXCQ_BASE, &queue::RXCQ_LOG2, i),
        );
        let enabled = self.enabled;
        for reg in [
            &queue::TXQ_TAIL,
            &queue::TXCQ_HEAD,
            &queue::RXQ_TAIL,
            &queue::RXCQ_HEAD,
        ] {
            self.regs.set(reg.addr_in(i), 0);
        }
        let Some(qp) = self.q.get_mut(q) else { return };
        match rings {
            (Some(txq), Some(txcq), Some(rxq), Some(rxcq)) if enabled => {
                *qp = crate::card::QueuePair {
                    enabled: true,
                    txq,
                    txcq,
                    rxq,
                    rxcq,
                    ..Default::default()
                };
            }
            _ => {
                qp.enabled = false;
                qp.error = true;
                self.regs.set(queue::Q_CTRL.addr_in(i), 0);
                self.config_fault(i);
            }
        }
    }

    fn config_fault(&mut self, queue_index: u32) {
        self.record_fault(
            ctrl::err::CONFIG.mask() as u32,
            FaultCode::Config,
            0,
            queue_index,
            0,
        );
    }

    /// Sets an error cause and, if it is the first since ERR_CAUSE was clear, the fault record.
    pub(crate) fn record_fault(
        &mut self,
        cause_bit: u32,
        code: FaultCode,
        unit: u8,
        queue_index: u32,
        addr: u64,
    ) {
        if self.err_cause == 0 {
            let mut v = ctrl::fault::CODE.put(0, code.value().into());
            v = ctrl::fault::UNIT.put(v, unit.into());
            self.fault_code = ctrl::fault::QUEUE.put(v, (queue_index & 0xFFFF).into()) as u32;
            self.fault_addr = addr;
        }
        self.err_cause |= cause_bit;
    }
}
