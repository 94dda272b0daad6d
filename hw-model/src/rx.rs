//! The receive path: port, classification, SA lookup, decapsulation, RX buffer and
//! completion (datasheet §7.5, §7.6, §7.8), with each stage's cycles accounted.

use crate::card::{Action, Model, PendingRx};
use crate::datapath::{Datapath, events_array, rx_refusal_counter};
use crate::decap::{Decapsulated, decapsulate};
use crate::packet::{Classified, classify};
use crate::params::{Engine, ModelParams, TICKS_PER_CYCLE};
use crate::perf::Stage;
use crate::sa_table::SaSlot;
use espo_fpga::desc::{NO_SA_INDEX, phase_for};
use espo_fpga::regs::cap::MAX_FRAME_BYTES;
use espo_fpga::regs::{ctrl, queue};
use espo_fpga::{Counter, DmaUnit, RxCompletion, RxDescriptor, Status};

impl Model {
    pub(crate) fn rx_process(&mut self) {
        self.rx_scheduled = false;
        let natt_port = self.regs.get32(&ctrl::NATT_PORT, 0) as u16;
        while let Some((arrival, len)) = self.rx_fifo.front().map(|(a, f)| (*a, f.len())) {
            if arrival > self.now {
                self.rx_scheduled = true;
                self.schedule(arrival, Action::RxProcess);
                break;
            }
            if self.hung || self.now < self.ready_at {
                break;
            }
            if len > MAX_FRAME_BYTES as usize {
                self.rx_fifo.pop_front();
                self.count(Counter::RxFrames, 1);
                self.count(Counter::RxOversize, 1);
                continue;
            }
            let class = self
                .rx_fifo
                .front()
                .map_or(Classified::Bypass, |(_, f)| classify(f, natt_port));
            let sa_index = match class {
                Classified::Esp(e) => self.sa.lookup(e.spi, &e.dst),
                _ => None,
            };
            let target = sa_index.and_then(|i| self.sa.get(i)).map_or(0, |s| {
                if u32::from(s.rx_queue) < queue::COUNT {
                    s.rx_queue
                } else {
                    0
                }
            });
            let depth = self.p.pipeline_depth;
            let Some(qp) = self.q.get(target as usize) else {
                break;
            };
            if !qp.enabled || !self.enabled {
                self.rx_fifo.pop_front();
                self.count(Counter::RxFrames, 1);
                self.count(Counter::RxNoQueue, 1);
                continue;
            }
            if qp.rxq.used() == 0 || qp.rxcq.is_full() || qp.rx_inflight >= depth {
                self.rx_blocked_since.get_or_insert(self.now);
                break;
            }
            if let Some(since) = self.rx_blocked_since.take() {
                self.count(Counter::RxPauseCycles, (self.now - since) / TICKS_PER_CYCLE);
            }
            let Some((arrival, frame)) = self.rx_fifo.pop_front() else {
                break;
            };
            if !self.packet_enters() {
                if self.hung {
                    self.rx_fifo.push_front((arrival, frame));
                }
                break;
            }
            if !self.rx_one(target, arrival, frame, class, sa_index) {
                continue;
            }
        }
    }

    /// Receives one frame into queue `q`; false when the queue stopped on a fault.
    fn rx_one(
        &mut self,
        q: u16,
        arrival: u64,
        frame: Vec<u8>,
        class: Classified,
        sa_index: Option<u32>,
    ) -> bool {
        let len = frame.len() as u64;
        self.count(Counter::RxFrames, 1);
        self.count(Counter::RxBytes, len);
        let mac_end = self
            .res
            .reserve(Stage::MacRx, arrival, self.p.mac_ticks(len));
        let Some(qp) = self.q.get(q as usize) else {
            return false;
        };
        let desc_addr = qp.rxq.addr(qp.rxq.cons, RxDescriptor::SIZE as u64);
        let buf_index = qp.rxq.cons;
        let occ = self.p.pcie_overhead_cycles * TICKS_PER_CYCLE
            + ModelParams::ticks_for(RxDescriptor::SIZE as u64, self.p.pcie_bytes_per_cycle);
        self.res.prefetch(Stage::PcieRead, self.now, occ);
        let mut raw = [0u8; RxDescriptor::SIZE];
        if !self.dma_read(DmaUnit::RxDescRead, Some(q), desc_addr, &mut raw) {
            return false;
        }
        let desc = RxDescriptor::decode(&raw);

        let mut cpl = RxCompletion {
            seq: 0,
            sa_index: sa_index.unwrap_or(NO_SA_INDEX),
            spi: 0,
            len: 0,
            desc_index: buf_index as u16,
            status: Status::Bypass,
            decapsulated: false,
            inner_ipv6: false,
            udp_encap: false,
            truncated: false,
            wire_len: len as u16,
            phase: false,
        };
        let mut data = None;
        let mut crypto_bytes = 0u64;
        let mut inner_bytes = 0u64;
        match class {
            Classified::Malformed(c) => {
                self.count(c, 1);
                cpl.status = Status::Malformed;
            }
            Classified::Bypass => self.count(Counter::RxBypass, 1),
            Classified::Esp(e) => {
                cpl.spi = e.spi;
                cpl.udp_encap = e.udp;
                match sa_index {
                    None => {
                        self.count(Counter::RxNoSa, 1);
                        cpl.status = Status::NoSa;
                    }
                    Some(i) if self.icv_error_next => {
                        self.icv_error_next = false;
                        self.icv_engine_error(i);
                        cpl.status = Status::EngineError;
                        crypto_bytes = ciphertext_bytes(e.esp_len);
                    }
                    Some(i) => {
                        crypto_bytes = ciphertext_bytes(e.esp_len);
                        // Both transforms below replace or empty it first.
                        let mut out = self.link.buffer();
                        let natt = self.regs.get32(&ctrl::NATT_PORT, 0) as u16;
                        let result = if let Some(dp) = self.datapath.as_mut() {
                            datapath_receive(
                                dp.as_mut(),
                                self.sa.get_mut(i),
                                &frame,
                                natt,
                                &mut out,
                            )
                        } else {
                            match self.sa.get_mut(i) {
                                Some(sa) => decapsulate(sa, &frame, &e, &mut out)
                                    .map_err(|r| (r.status, r.counter, r.seq)),
                                None => Err((Status::NoSa, Counter::RxNoSa, 0)),
                            }
                        };
                        match result {
                            Ok(d) => {
                                self.count(Counter::RxDecapOk, 1);
                                cpl.status = Status::Ok;
                                cpl.seq = d.seq;
                                cpl.decapsulated = true;
                                cpl.inner_ipv6 = d.inner_ipv6;
                                inner_bytes = (out.len() - crate::packet::ETH_HEADER_BYTES) as u64;
                                for (code, aux) in d.events.into_iter().flatten() {
                                    self.post_event(code, i, d.seq, aux);
                                }
                                data = Some(out);
                            }
                            Err((status, counter, seq)) => {
                                self.count(counter, 1);
                                cpl.status = status;
                                cpl.seq = seq;
                                // The frame is delivered as it came; the buffer goes back.
                                self.link.recycle(out);
                            }
                        }
                    }
                }
            }
        }
        let mut data = match data {
            Some(decapsulated) => {
                self.link.recycle(frame);
                decapsulated
            }
            None => frame,
        };
        if data.len() > desc.len as usize {
            data.truncate(desc.len as usize);
            cpl.truncated = true;
            if cpl.status == Status::Ok {
                cpl.status = Status::TooBig;
                self.count(Counter::RxTooBig, 1);
            }
        }
        cpl.len = data.len() as u16;

        let t = |c: u64| c * TICKS_PER_CYCLE;
        let dp = t(self.p.datapath_gap_cycles)
            + ModelParams::ticks_for(len, self.p.datapath_bytes_per_cycle);
        let mut ready =
            self.res.reserve(Stage::DatapathRx, mac_end, dp) + t(self.p.sa_lookup_cycles);
        if crypto_bytes > 0 {
            let occ = self
                .p
                .engine_ticks(Engine::Decrypt, crypto_bytes, len, data.len() as u64);
            ready = self.res.reserve_engine(ready, occ) + t(self.p.engine_latency_cycles);
        }
        let occ = t(2 * self.p.pcie_overhead_cycles)
            + ModelParams::ticks_for(
                data.len() as u64 + RxCompletion::SIZE as u64,
                self.p.pcie_bytes_per_cycle,
            );
        let visible =
            self.res.reserve(Stage::PcieWrite, ready, occ) + t(self.p.pcie_write_latency_cycles);
        let Some(qp) = self.q.get_mut(q as usize) else {
            return false;
        };
        let index = qp.rxcq.prod;
        cpl.phase = phase_for(index, qp.rxcq.log2);
        qp.rxq.cons = buf_index.wrapping_add(1);
        qp.rxcq.prod = index.wrapping_add(1);
        qp.rx_inflight += 1;
        let tick = visible.max(qp.last_rx_cpl);
        qp.last_rx_cpl = tick;
        let stats = (len, len + self.p.mac_overhead_bytes, inner_bytes);
        qp.rx_pending.push_back(PendingRx {
            tick,
            index,
            buf: desc.addr,
            data,
            cpl: cpl.encode(),
            from: arrival,
            stats,
        });
        self.schedule(tick, Action::RxComplete(q));
        true
    }

    pub(crate) fn rx_complete(&mut self, q: u16, p: PendingRx) {
        let PendingRx {
            index,
            buf,
            data,
            mut cpl,
            from,
            stats,
            ..
        } = p;
        self.maybe_corrupt(&mut cpl);
        let Some(qp) = self.q.get_mut(q as usize) else {
            return;
        };
        qp.rx_inflight = qp.rx_inflight.saturating_sub(1);
        if qp.rx_dead {
            return;
        }
        let addr = qp.rxcq.addr(index, RxCompletion::SIZE as u64);
        if !self.dma_write(DmaUnit::RxDataWrite, Some(q), buf, &data)
            || !self.dma_write(DmaUnit::RxCplWrite, Some(q), addr, &cpl)
        {
            if let Some(qp) = self.q.get_mut(q as usize) {
                qp.rx_dead = true;
            }
            return;
        }
        self.link.recycle(data);
        let (frame, wire, inner) = stats;
        self.rx_stats
            .record(frame, wire, inner, (self.now - from) / TICKS_PER_CYCLE);
        self.mark_traffic(from, self.now);
        self.signal_queue(q);
        self.kick_rx(self.now);
    }
}

/// Bytes of an ESP payload the engine decrypts: all but the ESP header (8), the IV (8)
/// and the ICV (16), which it never runs through AES.
fn ciphertext_bytes(esp_len: usize) -> u64 {
    use crate::packet::{ESP_HEADER_BYTES, ESP_ICV_BYTES, ESP_IV_BYTES};
    esp_len.saturating_sub(ESP_HEADER_BYTES + ESP_IV_BYTES + ESP_ICV_BYTES) as u64
}

/// The receive transform through an attached datapath, in the model's own result form.
/// The model's slot follows the accepted sequence numbers into its replay window (the
/// window bitmap a read-back carries, see [`crate::datapath`]).
fn datapath_receive(
    dp: &mut dyn Datapath,
    slot: Option<&mut SaSlot>,
    frame: &[u8],
    natt_port: u16,
    out: &mut Vec<u8>,
) -> Result<Decapsulated, (Status, Counter, u64)> {
    let Some(d) = dp.receive(frame, natt_port) else {
        return Err((Status::EngineError, Counter::EngineErrors, 0));
    };
    match (d.status, d.transformed) {
        (Status::Ok, true) => {
            if let Some(slot) = slot {
                slot.replay.update(d.seq);
            }
            *out = d.frame;
            Ok(Decapsulated {
                seq: d.seq,
                inner_ipv6: d.inner_ipv6,
                events: events_array(&d.events),
            })
        }
        (Status::Ok, false) => Err((Status::EngineError, Counter::EngineErrors, d.seq)),
        (status, _) => Err((status, rx_refusal_counter(status), d.seq)),
    }
}
