//! The transmit path: descriptor fetch, data fetch, encapsulation, port, completion
//! (datasheet §7.3, §7.4, §7.7), with each stage's cycles accounted.

use crate::card::{Action, Model, PendingTx};
use crate::datapath::{Datapath, events_array, tx_refusal_counter};
use crate::encap::{Encapsulated, TxRefusal, encap_room, encapsulate_in_place};
use crate::params::{Engine, ModelParams, TICKS_PER_CYCLE};
use crate::perf::Stage;
use espo_fpga::desc::phase_for;
use espo_fpga::regs::cap::MAX_FRAME_BYTES;
use espo_fpga::{Counter, DmaUnit, Status, TxCompletion, TxDescriptor};

impl Model {
    fn cycles(&self, c: u64) -> u64 {
        c * TICKS_PER_CYCLE
    }

    pub(crate) fn tx_fetch(&mut self, q: u16) {
        let depth = self.p.pipeline_depth;
        let batch = self.p.desc_fetch_batch.max(1);
        let Some(qp) = self.q.get_mut(q as usize) else {
            return;
        };
        qp.tx_fetch_scheduled = false;
        if !qp.enabled || !self.enabled || self.hung {
            return;
        }
        let avail = qp.txq.used();
        let cq_room = qp.txcq.entries() - qp.txcq.used().min(qp.txcq.entries());
        let room = depth.saturating_sub(qp.tx_inflight);
        let n = avail.min(batch).min(cq_room).min(room);
        if n == 0 {
            return;
        }
        let occ = self.cycles(self.p.pcie_overhead_cycles)
            + ModelParams::ticks_for(
                u64::from(n) * TxDescriptor::SIZE as u64,
                self.p.pcie_bytes_per_cycle,
            );
        let desc_end = self.res.prefetch(Stage::PcieRead, self.now, occ);
        let desc_ready = desc_end + self.cycles(self.p.pcie_read_latency_cycles);
        for _ in 0..n {
            if !self.tx_one(q, desc_ready) {
                return;
            }
        }
        if n == batch && avail > n {
            self.kick_tx(q, desc_end);
        }
    }

    /// Processes one TX descriptor; false when the queue stopped.
    fn tx_one(&mut self, q: u16, desc_ready: u64) -> bool {
        if !self.packet_enters() {
            return false;
        }
        let Some(qp) = self.q.get(q as usize) else {
            return false;
        };
        let (index, addr) = (
            qp.txq.cons,
            qp.txq.addr(qp.txq.cons, TxDescriptor::SIZE as u64),
        );
        let mut raw = [0u8; TxDescriptor::SIZE];
        if !self.dma_read(DmaUnit::TxDescRead, Some(q), addr, &mut raw) {
            return false;
        }
        let desc = TxDescriptor::decode(&raw);
        let len = usize::from(desc.len);
        let mut data_ready = desc_ready;
        let mut status = Status::Malformed;
        let mut seq = 0;
        let mut out: Option<Vec<u8>> = None;
        let mut inner_len = 0;
        let mut encrypted = false;
        if !(crate::packet::ETH_HEADER_BYTES..=MAX_FRAME_BYTES as usize).contains(&len) {
            self.count(Counter::TxMalformed, 1);
        } else {
            let occ = self.cycles(self.p.pcie_overhead_cycles)
                + ModelParams::ticks_for(len as u64, self.p.pcie_bytes_per_cycle);
            data_ready = self.res.reserve(Stage::PcieRead, desc_ready, occ)
                + self.cycles(self.p.pcie_read_latency_cycles);
            // The frame is read from host memory straight into the outgoing frame, behind
            // room for the outer headers, when the card's own engine encapsulates it on an SA
            // it holds (its bytes cross the card once); else into the card's scratch buffer.
            let room = match self.sa.get(desc.sa_index) {
                Some(sa) if !desc.bypass && self.datapath.is_none() => Some(encap_room(sa)),
                _ => None,
            };
            let result = if let Some(room) = room {
                let mut frame = self.link.buffer();
                frame.resize(room + len, 0);
                let dst = frame.get_mut(room..).unwrap_or_default();
                if !self.dma_read(DmaUnit::TxDataRead, Some(q), desc.addr, dst) {
                    self.link.recycle(frame);
                    return false;
                }
                let encapsulated = match self.sa.get_mut(desc.sa_index) {
                    Some(sa) => encapsulate_in_place(sa, &mut frame),
                    None => Err((Status::SaInvalid, Counter::TxSaInvalid)),
                };
                match encapsulated {
                    Ok(e) => Some(Ok((e, frame))),
                    Err(refused) => {
                        self.link.recycle(frame);
                        Some(Err(refused))
                    }
                }
            } else {
                let mut buf = std::mem::take(&mut self.scratch);
                buf.resize(len, 0);
                if !self.dma_read(DmaUnit::TxDataRead, Some(q), desc.addr, &mut buf) {
                    self.scratch = buf;
                    return false;
                }
                let result = if desc.bypass {
                    status = Status::Bypass;
                    let mut copy = self.link.buffer();
                    copy.clear();
                    copy.extend_from_slice(&buf);
                    out = Some(copy);
                    None
                } else if let Some(dp) = self.datapath.as_mut() {
                    Some(datapath_transmit(dp.as_mut(), desc.sa_index, &buf))
                } else {
                    // No SA at that index (the room is taken from the SA).
                    Some(Err((Status::SaInvalid, Counter::TxSaInvalid)))
                };
                self.scratch = buf;
                result
            };
            if let Some(result) = result {
                let icv_error = self.icv_error_next;
                match result {
                    Ok((e, frame)) => {
                        seq = e.seq;
                        inner_len = e.inner_len;
                        encrypted = true;
                        for (code, aux) in e.events.into_iter().flatten() {
                            self.post_event(code, desc.sa_index, seq, aux);
                        }
                        if icv_error {
                            self.icv_error_next = false;
                            status = Status::EngineError;
                            self.icv_engine_error(desc.sa_index);
                            self.link.recycle(frame);
                        } else {
                            status = Status::Ok;
                            self.count(Counter::TxEncapOk, 1);
                            out = Some(frame);
                        }
                    }
                    Err((s, c)) => {
                        status = s;
                        self.count(c, 1);
                    }
                }
            }
        }

        let out_len = out.as_ref().map_or(len, Vec::len) as u64;
        let dp = self.cycles(self.p.datapath_gap_cycles)
            + ModelParams::ticks_for(out_len, self.p.datapath_bytes_per_cycle);
        let mut ready = self.res.reserve(Stage::DatapathTx, data_ready, dp)
            + self.cycles(self.p.sa_lookup_cycles);
        if encrypted {
            let occ =
                self.p
                    .engine_ticks(Engine::Encrypt, inner_len as u64 + 2, len as u64, out_len);
            ready = self.res.reserve_engine(ready, occ) + self.cycles(self.p.engine_latency_cycles);
        }
        let mut stats = None;
        if let Some(frame) = out {
            let wire = self.p.mac_ticks(out_len);
            ready = self.res.reserve(Stage::MacTx, ready, wire);
            self.count(Counter::TxFrames, 1);
            self.count(Counter::TxBytes, out_len);
            stats = Some((
                out_len,
                out_len + self.p.mac_overhead_bytes,
                inner_len as u64,
            ));
            self.link_out.push_back((ready, frame));
            self.schedule(ready, Action::LinkOut);
        }
        let occ = self.cycles(self.p.pcie_overhead_cycles)
            + ModelParams::ticks_for(TxCompletion::SIZE as u64, self.p.pcie_bytes_per_cycle);
        let visible = self.res.reserve(Stage::PcieWrite, ready, occ)
            + self.cycles(self.p.pcie_write_latency_cycles);
        let now = self.now;
        let Some(qp) = self.q.get_mut(q as usize) else {
            return false;
        };
        let cpl_index = qp.txcq.prod;
        let cpl = TxCompletion {
            seq,
            sa_index: desc.sa_index,
            desc_index: index as u16,
            status,
            phase: phase_for(cpl_index, qp.txcq.log2),
        };
        qp.txq.cons = index.wrapping_add(1);
        qp.txcq.prod = cpl_index.wrapping_add(1);
        qp.tx_inflight += 1;
        let tick = visible.max(qp.last_tx_cpl);
        qp.last_tx_cpl = tick;
        qp.tx_pending.push_back(PendingTx {
            tick,
            index: cpl_index,
            cpl: cpl.encode(),
            from: now,
            stats,
        });
        self.schedule(tick, Action::TxComplete(q));
        true
    }

    pub(crate) fn tx_complete(&mut self, q: u16, p: PendingTx) {
        let PendingTx {
            index,
            mut cpl,
            from,
            stats,
            ..
        } = p;
        self.maybe_corrupt(&mut cpl);
        let Some(qp) = self.q.get_mut(q as usize) else {
            return;
        };
        qp.tx_inflight = qp.tx_inflight.saturating_sub(1);
        if qp.tx_dead {
            return;
        }
        let addr = qp.txcq.addr(index, TxCompletion::SIZE as u64);
        let more = qp.enabled && qp.txq.used() > 0;
        if !self.dma_write(DmaUnit::TxCplWrite, Some(q), addr, &cpl) {
            if let Some(qp) = self.q.get_mut(q as usize) {
                qp.tx_dead = true;
            }
            return;
        }
        if let Some((frame, wire, inner)) = stats {
            let latency = (self.now - from) / TICKS_PER_CYCLE;
            self.tx_stats.record(frame, wire, inner, latency);
        }
        self.mark_traffic(from, self.now);
        self.signal_queue(q);
        if more {
            self.kick_tx(q, self.now);
        }
    }
}

/// The transmit transform through an attached datapath, in the model's own result form.
fn datapath_transmit(
    dp: &mut dyn Datapath,
    sa_index: u32,
    frame: &[u8],
) -> Result<(Encapsulated, Vec<u8>), TxRefusal> {
    let engine_error = (Status::EngineError, Counter::EngineErrors);
    let out = dp.transmit(sa_index, frame).ok_or(engine_error)?;
    match (out.status, out.transformed) {
        (Status::Ok, true) => Ok((
            Encapsulated {
                seq: out.seq,
                inner_len: frame.len().saturating_sub(crate::packet::ETH_HEADER_BYTES),
                events: events_array(&out.events),
            },
            out.frame,
        )),
        (Status::Ok, false) => Err(engine_error),
        (status, _) => Err((status, tx_refusal_counter(status))),
    }
}
