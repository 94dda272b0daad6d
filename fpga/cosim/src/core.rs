//! The ESP core (fpga/rtl/espo_core.sv) through the co-simulation: SA table writes and
//! reads on its register port, and batches of packets streamed back to back.
//!
//! The register port's address map is the generated layouts laid end to end: SA_ENTRY,
//! SA_STATE, ADMIN_CMD, ADMIN_CPL (see espo_sa_table.sv); every offset here comes from the
//! espo-fpga sizes and field positions.

use crate::{Rtl, RtlError};
use espo_fpga::admin::admin_cpl;
use espo_fpga::regs::cap::MAX_FRAME_BYTES;
use espo_fpga::{AdminCommand, AdminCompletion, AdminOpcode, EventCode, SaEntry, SaState, Status};

const STATE_BASE: u32 = SaEntry::SIZE as u32;
const CMD_BASE: u32 = STATE_BASE + SaState::SIZE as u32;
const CPL_BASE: u32 = CMD_BASE + AdminCommand::SIZE as u32;
/// The admin completion word holding PHASE.
const PHASE_WORD: u32 = CPL_BASE + 4 * (admin_cpl::PHASE.offset_bits / 32);
/// Cycles an admin command may take (the replay-window clear dominates).
const ADMIN_CYCLES: u64 = 10_000;
/// Cycles per packet byte allowed before a batch counts as hung, plus a fixed margin.
const CYCLES_PER_BYTE: u64 = 4;
const CYCLES_PER_PACKET: u64 = 400;

/// Where a packet enters the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A frame posted for transmission on SA `sa_index` (§7.3); `bypass` sends it as posted.
    Outbound { sa_index: u32, bypass: bool },
    /// A frame received from the port (§7.6).
    Inbound,
}

/// An input packet: an Ethernet frame and its sideband.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketIn {
    pub frame: Vec<u8>,
    pub direction: Direction,
}

/// The core's verdict on a packet: the fields of the TX/RX completion (§7.4, §7.5) and the
/// SA events it raised (§11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub seq: u64,
    pub sa_index: u32,
    pub spi: u32,
    /// The output is the encapsulated / decapsulated packet (else the input, unchanged).
    pub transformed: bool,
    pub inner_ipv6: bool,
    pub udp_encap: bool,
    /// (event, aux) pairs: LIFETIME_SOFT / LIFETIME_HARD with their kind bits, SEQ_EXHAUSTED.
    pub events: Vec<(EventCode, u8)>,
}

/// Clock cycles of a packet through the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Cycle of the first and of the last input beat accepted.
    pub in_first: u64,
    pub in_last: u64,
    /// Cycle of the first and of the last output beat (equal to the drop cycle if dropped).
    pub out_first: u64,
    pub out_last: u64,
}

impl Timing {
    /// First input beat to last output beat, inclusive.
    pub fn latency_cycles(&self) -> u64 {
        self.out_last.saturating_sub(self.in_first) + 1
    }
}

/// The output of one input packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketOut {
    /// The output frame; empty when the frame was dropped.
    pub frame: Vec<u8>,
    /// `None` when the core dropped the frame (longer than MAX_FRAME).
    pub verdict: Option<Verdict>,
    pub timing: Timing,
}

fn regs_of(image: &[u8]) -> impl Iterator<Item = (u32, u32)> + '_ {
    image.chunks(4).enumerate().map(|(i, c)| {
        (
            4 * i as u32,
            u32::from_le_bytes([
                c[0],
                c.get(1).copied().unwrap_or(0),
                c.get(2).copied().unwrap_or(0),
                c.get(3).copied().unwrap_or(0),
            ]),
        )
    })
}

impl Rtl {
    /// Sets the UDP port recognised as ESP in UDP on receive (CTRL.NATT_PORT).
    pub fn set_natt_port(&mut self, port: u16) {
        self.sim.set_natt_port(port);
    }

    /// Any admin command (§8.2) through the register port; its completion.
    pub fn admin(
        &mut self,
        opcode: AdminOpcode,
        state: bool,
        sa_index: u32,
    ) -> Result<AdminCompletion, RtlError> {
        let cmd = AdminCommand {
            opcode,
            state,
            cid: 0x5a5a,
            sa_index,
            data_addr: 0,
            data_len: 0,
        };
        let image = cmd.encode();
        // Word 0 (OPCODE) last: writing it executes the command.
        for (off, word) in regs_of(&image).skip(1) {
            self.sim.reg_write(CMD_BASE + off, word);
        }
        if let Some((off, word)) = regs_of(&image).next() {
            self.sim.reg_write(CMD_BASE + off, word);
        }
        if !self.sim.reg_wait(PHASE_WORD, ADMIN_CYCLES) {
            return Err(RtlError::Timeout(ADMIN_CYCLES));
        }
        let mut cpl = [0u8; AdminCompletion::SIZE];
        for (i, c) in cpl.chunks_mut(4).enumerate() {
            c.copy_from_slice(&self.sim.reg_read(CPL_BASE + 4 * i as u32).to_le_bytes());
        }
        Ok(AdminCompletion::decode(&cpl))
    }

    fn stage_state(&mut self, state: &SaState) {
        for (off, word) in regs_of(&state.encode()) {
            self.sim.reg_write(STATE_BASE + off, word);
        }
    }

    fn staged_state(&mut self) -> SaState {
        let mut image = [0u8; SaState::SIZE];
        for (i, c) in image.chunks_mut(4).enumerate() {
            c.copy_from_slice(&self.sim.reg_read(STATE_BASE + 4 * i as u32).to_le_bytes());
        }
        SaState::decode(&image)
    }

    /// SA_WRITE (§8.4) through the register port: the entry, and with `state` its imported
    /// state (scalar fields and, inbound, the replay window BITMAP). Returns the command
    /// status.
    pub fn write_sa(
        &mut self,
        index: u32,
        entry: &SaEntry,
        state: Option<&SaState>,
    ) -> Result<Status, RtlError> {
        for (off, word) in regs_of(&entry.encode()) {
            self.sim.reg_write(off, word);
        }
        if let Some(s) = state {
            self.stage_state(s);
        }
        Ok(self
            .admin(AdminOpcode::SaWrite, state.is_some(), index)?
            .status)
    }

    /// SA_READ (§8.5): the SA's state (BITMAP reads as zero from the RTL).
    pub fn read_sa(&mut self, index: u32) -> Result<(Status, SaState), RtlError> {
        let cpl = self.admin(AdminOpcode::SaRead, false, index)?;
        Ok((cpl.status, self.staged_state()))
    }

    /// SA_INVALIDATE with STATE (§8.5): the final state, and the entry invalidated.
    pub fn invalidate_sa(&mut self, index: u32) -> Result<(Status, SaState), RtlError> {
        let cpl = self.admin(AdminOpcode::SaInvalidate, true, index)?;
        Ok((cpl.status, self.staged_state()))
    }

    /// Streams `packets` through the core back to back, in order, and returns one output
    /// per input, in order, with its verdict and cycle stamps.
    pub fn process(&mut self, packets: &[PacketIn]) -> Result<Vec<PacketOut>, RtlError> {
        let mut budget = 0u64;
        for p in packets {
            let (outbound, bypass, sa_index) = match p.direction {
                Direction::Outbound { sa_index, bypass } => (true, bypass, sa_index),
                Direction::Inbound => (false, false, 0),
            };
            self.sim.push(&p.frame, outbound, bypass, sa_index);
            budget += CYCLES_PER_PACKET + CYCLES_PER_BYTE * p.frame.len() as u64;
        }
        if !self.sim.run(budget) {
            return Err(RtlError::Timeout(budget));
        }
        let mut buf = vec![0u8; MAX_FRAME_BYTES as usize + 256];
        let mut out = Vec::with_capacity(packets.len());
        while let Some(o) = self.sim.pop(&mut buf) {
            let len = (o.len as usize).min(buf.len());
            let timing = Timing {
                in_first: o.in_first,
                in_last: o.in_last,
                out_first: o.out_first,
                out_last: o.out_last,
            };
            if o.dropped != 0 {
                out.push(PacketOut {
                    frame: Vec::new(),
                    verdict: None,
                    timing,
                });
                continue;
            }
            let flag = |bit: u8| o.flags & (1 << bit) != 0;
            let mut events = Vec::new();
            if flag(2) {
                events.push((EventCode::LifetimeSoft, (o.aux >> 2) & 3));
            }
            if flag(1) {
                events.push((EventCode::LifetimeHard, o.aux & 3));
            }
            if flag(0) {
                events.push((EventCode::SeqExhausted, 0));
            }
            out.push(PacketOut {
                frame: buf[..len].to_vec(),
                verdict: Some(Verdict {
                    status: Status::from_value(o.status),
                    seq: o.seq,
                    sa_index: o.sa_index,
                    spi: o.spi,
                    transformed: flag(5),
                    inner_ipv6: flag(4),
                    udp_encap: flag(3),
                    events,
                }),
                timing,
            });
        }
        Ok(out)
    }
}
