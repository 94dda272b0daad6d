//! The admin queue (datasheet §8): one command at a time, each waited for, and the SA
//! commands built on it — write (with state import), read-back, invalidate, export.

use std::sync::atomic::{Ordering, fence};
use std::time::Duration;

use espo_fpga::regs::admin;
use espo_fpga::sa::wipe;
use espo_fpga::{AdminCommand, AdminCompletion, AdminOpcode, SaEntry, SaState, Status};

use super::Card;
use super::bar::{Bar0, Blocks};
use super::error::CardError;
use super::ring::{CplRing, DescRing};
use super::validate::{BadCompletion, BadCompletionCounts};
use crate::device::Device;
use crate::dma::DmaRegion;

/// Bytes of the admin data buffer: an SA entry and an SA state (§8.2).
const DATA_BYTES: usize = SaEntry::SIZE + SaState::SIZE;

pub(crate) struct AdminQueue {
    sq: DescRing,
    cq: CplRing<2>,
    data: DmaRegion,
    tail: u32,
    next_cid: u16,
}

impl AdminQueue {
    pub(crate) fn new(device: &dyn Device, log2: u32) -> Result<Self, CardError> {
        Ok(Self {
            sq: DescRing::new(device, log2, AdminCommand::SIZE)?,
            cq: CplRing::new(device, log2)?,
            data: device.alloc_dma(DATA_BYTES)?,
            tail: 0,
            next_cid: 1,
        })
    }

    /// §5.5 for the admin rings: host indices to 0, completions zero-filled, registers.
    pub(crate) fn program(&mut self, bar: &Bar0, b: &Blocks) -> Result<(), CardError> {
        self.tail = 0;
        self.cq.reset()?;
        bar.write64(b.admin(&admin::ASQ_BASE), self.sq.mem.iova())?;
        bar.write32(b.admin(&admin::ASQ_LOG2), self.sq.log2)?;
        bar.write64(b.admin(&admin::ACQ_BASE), self.cq.mem.iova())?;
        bar.write32(b.admin(&admin::ACQ_LOG2), self.cq.log2)?;
        Ok(())
    }

    /// Submits one command and waits for its completion on the device's clock.
    #[allow(clippy::too_many_arguments, reason = "the queue's context, passed in")]
    fn execute(
        &mut self,
        bar: &Bar0,
        b: &Blocks,
        bad: &mut BadCompletionCounts,
        timeout: Duration,
        op: &'static str,
        opcode: AdminOpcode,
        state: bool,
        sa_index: u32,
        data_len: usize,
    ) -> Result<AdminCompletion, CardError> {
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1).max(1);
        let cmd = AdminCommand {
            opcode,
            state,
            cid,
            sa_index,
            data_addr: self.data.iova(),
            data_len: data_len as u32,
        };
        self.sq
            .mem
            .write_bytes(self.sq.offset(self.tail), &cmd.encode())?;
        self.tail = self.tail.wrapping_add(1);
        fence(Ordering::Release);
        bar.write32(b.admin(&admin::ASQ_TAIL), self.tail)?;
        let device = bar.device();
        let deadline = device.now().saturating_add(timeout);
        loop {
            let answered = self.cq.peek()?;
            if let Some(words) = answered {
                self.cq.head = self.cq.head.wrapping_add(1);
                fence(Ordering::Release);
                bar.write32(b.admin(&admin::ACQ_HEAD), self.cq.head)?;
                let mut raw = [0u8; AdminCompletion::SIZE];
                raw[..8].copy_from_slice(&words[0].to_le_bytes());
                raw[8..].copy_from_slice(&words[1].to_le_bytes());
                let cpl = AdminCompletion::decode(&raw);
                if cpl.cid == cid {
                    if let Status::Unknown(_) = cpl.status {
                        bad.add(BadCompletion::UnknownStatus);
                        return Err(CardError::AdminCompletion { op });
                    }
                    return Ok(cpl);
                }
                // A late answer to a command that timed out, or a card making things up:
                // counted, and the wait goes on for this command's own answer.
                bad.add(BadCompletion::AdminCid);
            }
            if device.now() >= deadline {
                return Err(CardError::AdminTimeout { op, timeout });
            }
            if answered.is_none() {
                device.relax();
            }
        }
    }

    fn read_state(&self) -> Result<SaState, CardError> {
        let mut raw = [0u8; SaState::SIZE];
        self.data.read_bytes(0, &mut raw)?;
        Ok(SaState::decode(&raw))
    }
}

impl Card {
    fn check_sa_index(&self, index: u32) -> Result<(), CardError> {
        let table_size = self.caps.sa_table_size;
        if index >= table_size {
            return Err(CardError::SaIndex { index, table_size });
        }
        Ok(())
    }

    fn admin(
        &mut self,
        op: &'static str,
        opcode: AdminOpcode,
        state: bool,
        sa_index: u32,
        data_len: usize,
    ) -> Result<AdminCompletion, CardError> {
        self.usable_admin()?;
        let timeout = self.config.admin_timeout;
        let r = self.admin.execute(
            &self.bar,
            &self.blocks,
            &mut self.stats.bad,
            timeout,
            op,
            opcode,
            state,
            sa_index,
            data_len,
        );
        if let Err(CardError::Removed) = r {
            self.card_removed();
        }
        r
    }

    /// NOP: checks that the admin queue answers.
    pub fn admin_nop(&mut self) -> Result<(), CardError> {
        let c = self.admin("NOP", AdminOpcode::Nop, false, 0, 0)?;
        match c.status {
            Status::Ok => Ok(()),
            status => Err(CardError::SaRefused {
                op: "NOP",
                index: 0,
                status,
            }),
        }
    }

    /// SA_WRITE (§8.4): replaces entry `index` whole; with `state`, imports its sequence
    /// number, replay window, counters and expiry flags (moving an SA onto the card, §8.5).
    /// A refusal (`ALG_UNSUPPORTED`, `FEATURE_NOT_ENABLED`, `INVALID_FIELD`, …) is
    /// [`CardError::SaRefused`]: the SA belongs in software.
    pub fn sa_write(
        &mut self,
        index: u32,
        entry: &SaEntry,
        state: Option<&SaState>,
    ) -> Result<(), CardError> {
        self.check_sa_index(index)?;
        let mut bytes = entry.encode();
        let written = self.admin.data.write_bytes(0, &bytes);
        wipe(&mut bytes);
        written?;
        let len = match state {
            Some(s) => {
                self.admin.data.write_bytes(SaEntry::SIZE, &s.encode())?;
                DATA_BYTES
            }
            None => SaEntry::SIZE,
        };
        let r = self.admin(
            "SA_WRITE",
            AdminOpcode::SaWrite,
            state.is_some(),
            index,
            len,
        );
        // The key leaves host DMA memory as soon as the card has read it (or failed to).
        self.admin.data.fill(0, SaEntry::SIZE, 0)?;
        let c = r?;
        if c.status != Status::Ok {
            return Err(CardError::SaRefused {
                op: "SA_WRITE",
                index,
                status: c.status,
            });
        }
        self.sas.written(index, entry, state);
        Ok(())
    }

    fn state_command(
        &mut self,
        op: &'static str,
        opcode: AdminOpcode,
        export: bool,
        index: u32,
    ) -> Result<SaState, CardError> {
        self.check_sa_index(index)?;
        self.admin.data.fill(0, SaState::SIZE, 0)?;
        let c = self.admin(op, opcode, export, index, SaState::SIZE)?;
        if c.status != Status::Ok {
            return Err(CardError::SaRefused {
                op,
                index,
                status: c.status,
            });
        }
        let state = self.admin.read_state()?;
        if c.result != state.seq {
            self.stats.bad.add(BadCompletion::AdminResult);
            return Err(CardError::AdminCompletion { op });
        }
        Ok(state)
    }

    /// SA_READ (§8.5): the SA's exact state — outbound: the last sequence number used
    /// (ESN high half included); inbound: the window top and bitmap; byte and packet
    /// counters, drop counts, flags. An empty slot reads `valid: false`.
    pub fn sa_read(&mut self, index: u32) -> Result<SaState, CardError> {
        self.state_command("SA_READ", AdminOpcode::SaRead, false, index)
    }

    /// SA_INVALIDATE with STATE (§8.5): the final state is exported and the entry
    /// invalidated in one step, so no packet uses the SA between the two. Packets already
    /// taken still complete and are covered by the exported `seq`.
    pub fn sa_export(&mut self, index: u32) -> Result<SaState, CardError> {
        let state = self.state_command("SA_INVALIDATE", AdminOpcode::SaInvalidate, true, index)?;
        self.sas.invalidated(index);
        Ok(state)
    }

    /// SA_INVALIDATE without export; returns the SA's last sequence number.
    pub fn sa_invalidate(&mut self, index: u32) -> Result<u64, CardError> {
        self.check_sa_index(index)?;
        let c = self.admin("SA_INVALIDATE", AdminOpcode::SaInvalidate, false, index, 0)?;
        if c.status != Status::Ok {
            return Err(CardError::SaRefused {
                op: "SA_INVALIDATE",
                index,
                status: c.status,
            });
        }
        self.sas.invalidated(index);
        Ok(c.result)
    }
}

#[cfg(all(test, feature = "model"))]
mod tests {
    use std::sync::Arc;

    use espo_fpga::AlgId;
    use espo_model::ModelParams;

    use super::*;
    use crate::card::CardConfig;
    use crate::model::ModelDevice;

    #[test]
    fn the_key_leaves_dma_memory_once_the_card_has_read_it() {
        let dev = Arc::new(ModelDevice::with_params(ModelParams::zero_latency()));
        let mut card = Card::open(dev, CardConfig::default()).unwrap();
        let mut sa = SaEntry {
            outbound: true,
            spi: 0x100,
            alg: Some(AlgId::AesGcm256),
            ..SaEntry::default()
        };
        sa.key = [0xA5; 32];
        card.sa_write(0, &sa, None).unwrap();
        let mut data = [0u8; DATA_BYTES];
        card.admin.data.read_bytes(0, &mut data).unwrap();
        assert!(
            data.iter().all(|&b| b == 0),
            "entry wiped from the data buffer"
        );
        // Refused too: wiped all the same.
        sa.alg = Some(AlgId::Chacha20Poly1305);
        assert!(card.sa_write(1, &sa, None).is_err());
        card.admin.data.read_bytes(0, &mut data).unwrap();
        assert!(!data.windows(4).any(|w| w == [0xA5; 4]));
    }
}
