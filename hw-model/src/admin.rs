//! The admin queue: SA write, invalidate and read-back (datasheet §8).

use crate::card::{Action, Model};
use crate::params::{ModelParams, TICKS_PER_CYCLE};
use crate::perf::Stage;
use crate::sa_table::SaSlot;
use espo_fpga::desc::phase_for;
use espo_fpga::sa::wipe;
use espo_fpga::{AdminCommand, AdminCompletion, AdminOpcode, DmaUnit, SaEntry, SaState, Status};

impl Model {
    pub(crate) fn admin_process(&mut self) {
        self.admin_scheduled = false;
        while self.admin_enabled && self.asq.used() > 0 && !self.acq.is_full() {
            let index = self.asq.cons;
            let addr = self.asq.addr(index, AdminCommand::SIZE as u64);
            let occ = self.p.pcie_overhead_cycles * TICKS_PER_CYCLE
                + ModelParams::ticks_for(AdminCommand::SIZE as u64, self.p.pcie_bytes_per_cycle);
            self.res.prefetch(Stage::PcieRead, self.now, occ);
            let mut raw = [0u8; AdminCommand::SIZE];
            if !self.dma_read(DmaUnit::AdminCmdRead, None, addr, &mut raw) {
                return;
            }
            self.asq.cons = index.wrapping_add(1);
            let cmd = AdminCommand::decode(&raw);
            let (status, result) = match self.admin_execute(&cmd) {
                Ok(r) => (Status::Ok, r),
                Err(s) => (s, 0),
            };
            let cpl_index = self.acq.prod;
            self.acq.prod = cpl_index.wrapping_add(1);
            let cpl = AdminCompletion {
                result,
                cid: cmd.cid,
                sq_head: self.asq.cons as u16,
                status,
                phase: phase_for(cpl_index, self.acq.log2),
            };
            let cost = self.p.admin_cycles
                + self.p.pcie_read_latency_cycles
                + self.p.pcie_write_latency_cycles;
            let tick = (self.now + cost * TICKS_PER_CYCLE).max(self.last_admin_cpl);
            self.last_admin_cpl = tick;
            self.admin_pending
                .push_back((tick, cpl_index, cpl.encode()));
            self.schedule(tick, Action::AdminComplete);
        }
    }

    pub(crate) fn admin_complete(&mut self, index: u32, cpl: [u8; 16]) {
        if !self.admin_enabled {
            return;
        }
        let addr = self.acq.addr(index, AdminCompletion::SIZE as u64);
        if self.dma_write(DmaUnit::AdminCplWrite, None, addr, &cpl) {
            self.fire(0);
        }
        if self.asq.used() > 0 {
            self.kick_admin(self.now);
        }
    }

    fn admin_execute(&mut self, cmd: &AdminCommand) -> Result<u64, Status> {
        let in_table = (cmd.sa_index as usize) < self.sa.capacity();
        match cmd.opcode {
            AdminOpcode::Nop => Ok(0),
            AdminOpcode::SaWrite => {
                if !in_table {
                    return Err(Status::InvalidSaIndex);
                }
                let need = SaEntry::SIZE + if cmd.state { SaState::SIZE } else { 0 };
                if (cmd.data_len as usize) < need {
                    return Err(Status::DataTooShort);
                }
                let mut raw = vec![0u8; need];
                if !self.dma_read(DmaUnit::AdminData, None, cmd.data_addr, &mut raw) {
                    return Err(Status::DataDmaFault);
                }
                let mut entry_bytes = [0u8; SaEntry::SIZE];
                entry_bytes
                    .copy_from_slice(raw.get(..SaEntry::SIZE).unwrap_or(&[0; SaEntry::SIZE]));
                wipe(&mut raw[..SaEntry::SIZE]);
                let entry = SaEntry::decode(&entry_bytes);
                wipe(&mut entry_bytes);
                let mut slot = SaSlot::from_entry(&entry, self.features)?;
                let mut imported = None;
                if cmd.state {
                    let mut st = [0u8; SaState::SIZE];
                    st.copy_from_slice(raw.get(SaEntry::SIZE..need).unwrap_or(&[0; SaState::SIZE]));
                    let state = SaState::decode(&st);
                    slot.import(&state);
                    imported = Some(state);
                }
                self.sa.install(cmd.sa_index, slot)?;
                if let Some(dp) = self.datapath.as_mut() {
                    let status = dp.write_sa(cmd.sa_index, &entry, imported.as_ref());
                    if status != Status::Ok {
                        self.sa.remove(cmd.sa_index);
                        return Err(status);
                    }
                }
                Ok(0)
            }
            AdminOpcode::SaInvalidate => {
                if !in_table {
                    return Err(Status::InvalidSaIndex);
                }
                let state = self.sa_state(cmd.sa_index, true)?;
                if cmd.state {
                    if (cmd.data_len as usize) < SaState::SIZE {
                        return Err(Status::DataTooShort);
                    }
                    if !self.dma_write(DmaUnit::AdminData, None, cmd.data_addr, &state.encode()) {
                        return Err(Status::DataDmaFault);
                    }
                }
                self.sa.remove(cmd.sa_index);
                Ok(state.seq)
            }
            AdminOpcode::SaRead => {
                if !in_table {
                    return Err(Status::InvalidSaIndex);
                }
                if (cmd.data_len as usize) < SaState::SIZE {
                    return Err(Status::DataTooShort);
                }
                let state = self.sa_state(cmd.sa_index, false)?;
                if !self.dma_write(DmaUnit::AdminData, None, cmd.data_addr, &state.encode()) {
                    return Err(Status::DataDmaFault);
                }
                Ok(state.seq)
            }
            AdminOpcode::Unknown(_) => Err(Status::InvalidOpcode),
        }
    }

    /// The SA_STATE of entry `index` (default when empty). With a datapath attached, its
    /// sequence number, counters and flags are the datapath's (invalidating the entry there
    /// when `invalidate`), the window bitmap the model's slot (see [`crate::datapath`]).
    /// A defective card ([`crate::FaultKind::StaleSeqExport`]) reports an outbound SA's
    /// sequence number as it was written.
    fn sa_state(&mut self, index: u32, invalidate: bool) -> Result<SaState, Status> {
        let own = self.sa.get(index).map(|s| s.state());
        let stale = self
            .sa
            .get(index)
            .filter(|s| self.stale_seq_export && s.outbound)
            .map(|s| s.written_seq);
        let mut state = match self.datapath.as_mut() {
            None => own.unwrap_or_default(),
            Some(dp) => {
                let answer = if invalidate {
                    dp.invalidate_sa(index)
                } else {
                    dp.read_sa(index)
                };
                let mut state = answer.ok_or(Status::EngineError)?;
                if let Some(own) = own.filter(|_| state.valid) {
                    state.window = own.window;
                    state.bitmap = own.bitmap;
                }
                state
            }
        };
        if let Some(written) = stale {
            state.seq = written;
        }
        Ok(state)
    }
}
