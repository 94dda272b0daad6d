//! Admin commands and completions (datasheet §8) and event-queue entries (§11).

use crate::codes::{AdminOpcode, EventCode, Status};
use crate::layout::{Layout, LayoutField as F, field_at, layout_is_valid};

/// Admin command (64 bytes) field layout.
pub mod admin_cmd {
    use super::*;
    pub const OPCODE: F = F::new("OPCODE", 0, 8, "AdminOpcode.");
    pub const STATE: F = F::new(
        "STATE",
        8,
        1,
        "SA_WRITE: import the SA_STATE that follows the SA_ENTRY. SA_INVALIDATE: export SA_STATE first.",
    );
    pub const RSVD0: F = F::new("RSVD0", 9, 7, "Reserved, 0.");
    pub const CID: F = F::new(
        "CID",
        16,
        16,
        "Command identifier, echoed in the completion.",
    );
    pub const SA_INDEX: F = F::new("SA_INDEX", 32, 32, "SA table index.");
    pub const DATA_ADDR: F = F::new("DATA_ADDR", 64, 64, "IOVA of the command's data buffer.");
    pub const DATA_LEN: F = F::new("DATA_LEN", 128, 32, "Length of the data buffer, bytes.");
    pub const RSVD1: F = F::new("RSVD1", 160, 352, "Reserved, 0.");
    pub const LAYOUT: Layout = Layout {
        name: "ADMIN_CMD",
        size_bytes: 64,
        fields: &[
            OPCODE, STATE, RSVD0, CID, SA_INDEX, DATA_ADDR, DATA_LEN, RSVD1,
        ],
        doc: "Admin command.",
    };
    const _: () = assert!(layout_is_valid(&LAYOUT) && field_at(&DATA_ADDR, 64, 64));
}

/// Admin completion (16 bytes) field layout.
pub mod admin_cpl {
    use super::*;
    pub const RESULT: F = F::new(
        "RESULT",
        0,
        64,
        "Command result (SA_READ, SA_INVALIDATE: the SA's SEQ).",
    );
    pub const CID: F = F::new("CID", 64, 16, "CID of the command.");
    pub const SQ_HEAD: F = F::new(
        "SQ_HEAD",
        80,
        16,
        "Low 16 bits of the card's admin submission consumer index.",
    );
    pub const STATUS: F = F::new("STATUS", 96, 8, "Status code.");
    pub const RSVD0: F = F::new("RSVD0", 104, 16, "Reserved, 0.");
    pub const RSVD1: F = F::new("RSVD1", 120, 7, "Reserved, 0.");
    pub const PHASE: F = F::new("PHASE", 127, 1, "Phase bit.");
    pub const LAYOUT: Layout = Layout {
        name: "ADMIN_CPL",
        size_bytes: 16,
        fields: &[RESULT, CID, SQ_HEAD, STATUS, RSVD0, RSVD1, PHASE],
        doc: "Admin completion.",
    };
    const _: () = assert!(layout_is_valid(&LAYOUT));
}

/// Event entry (16 bytes) field layout.
pub mod event_entry {
    use super::*;
    pub const DETAIL: F = F::new(
        "DETAIL",
        0,
        64,
        "Event detail (IOVA, sequence number, engine).",
    );
    pub const INDEX: F = F::new("INDEX", 64, 32, "SA index or queue index.");
    pub const CODE: F = F::new("CODE", 96, 8, "EventCode.");
    pub const AUX: F = F::new("AUX", 104, 8, "Code-specific: lifetime kind bits, DmaUnit.");
    pub const RSVD0: F = F::new("RSVD0", 112, 8, "Reserved, 0.");
    pub const RSVD1: F = F::new("RSVD1", 120, 7, "Reserved, 0.");
    pub const PHASE: F = F::new("PHASE", 127, 1, "Phase bit.");
    pub const LAYOUT: Layout = Layout {
        name: "EVENT",
        size_bytes: 16,
        fields: &[DETAIL, INDEX, CODE, AUX, RSVD0, RSVD1, PHASE],
        doc: "Event entry.",
    };
    const _: () = assert!(layout_is_valid(&LAYOUT));
}

/// AUX bits of lifetime events.
pub const LIFETIME_AUX_BYTES: u8 = 1;
pub const LIFETIME_AUX_PACKETS: u8 = 2;
/// INDEX of an event that concerns the admin or event queue rather than a queue pair.
pub const NO_QUEUE_INDEX: u32 = 0xFFFF_FFFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminCommand {
    pub opcode: AdminOpcode,
    pub state: bool,
    pub cid: u16,
    pub sa_index: u32,
    pub data_addr: u64,
    pub data_len: u32,
}

impl AdminCommand {
    pub const SIZE: usize = 64;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        admin_cmd::OPCODE.put(&mut b, self.opcode.value().into());
        admin_cmd::STATE.put_flag(&mut b, self.state);
        admin_cmd::CID.put(&mut b, self.cid.into());
        admin_cmd::SA_INDEX.put(&mut b, self.sa_index.into());
        admin_cmd::DATA_ADDR.put(&mut b, self.data_addr);
        admin_cmd::DATA_LEN.put(&mut b, self.data_len.into());
        b
    }
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        AdminCommand {
            opcode: AdminOpcode::from_value(admin_cmd::OPCODE.get(b) as u8),
            state: admin_cmd::STATE.is_set(b),
            cid: admin_cmd::CID.get(b) as u16,
            sa_index: admin_cmd::SA_INDEX.get(b) as u32,
            data_addr: admin_cmd::DATA_ADDR.get(b),
            data_len: admin_cmd::DATA_LEN.get(b) as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminCompletion {
    pub result: u64,
    pub cid: u16,
    pub sq_head: u16,
    pub status: Status,
    pub phase: bool,
}

impl AdminCompletion {
    pub const SIZE: usize = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        admin_cpl::RESULT.put(&mut b, self.result);
        admin_cpl::CID.put(&mut b, self.cid.into());
        admin_cpl::SQ_HEAD.put(&mut b, self.sq_head.into());
        admin_cpl::STATUS.put(&mut b, self.status.value().into());
        admin_cpl::PHASE.put_flag(&mut b, self.phase);
        b
    }
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        AdminCompletion {
            result: admin_cpl::RESULT.get(b),
            cid: admin_cpl::CID.get(b) as u16,
            sq_head: admin_cpl::SQ_HEAD.get(b) as u16,
            status: Status::from_value(admin_cpl::STATUS.get(b) as u8),
            phase: admin_cpl::PHASE.is_set(b),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventEntry {
    pub detail: u64,
    pub index: u32,
    pub code: EventCode,
    pub aux: u8,
    pub phase: bool,
}

impl EventEntry {
    pub const SIZE: usize = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        event_entry::DETAIL.put(&mut b, self.detail);
        event_entry::INDEX.put(&mut b, self.index.into());
        event_entry::CODE.put(&mut b, self.code.value().into());
        event_entry::AUX.put(&mut b, self.aux.into());
        event_entry::PHASE.put_flag(&mut b, self.phase);
        b
    }
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        EventEntry {
            detail: event_entry::DETAIL.get(b),
            index: event_entry::INDEX.get(b) as u32,
            code: EventCode::from_value(event_entry::CODE.get(b) as u8),
            aux: event_entry::AUX.get(b) as u8,
            phase: event_entry::PHASE.is_set(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_command_round_trip() {
        let c = AdminCommand {
            opcode: AdminOpcode::SaWrite,
            state: true,
            cid: 0xBEEF,
            sa_index: 4095,
            data_addr: 0x10_0000,
            data_len: 704,
        };
        let b = c.encode();
        assert_eq!(b[0], 1);
        assert_eq!(b[1], 1);
        assert_eq!(&b[2..4], &0xBEEFu16.to_le_bytes());
        assert_eq!(AdminCommand::decode(&b), c);
        let mut raw = [0u8; 64];
        raw[0] = 0x7F;
        assert_eq!(
            AdminCommand::decode(&raw).opcode,
            AdminOpcode::Unknown(0x7F)
        );
    }

    #[test]
    fn completion_and_event_round_trip() {
        let c = AdminCompletion {
            result: u64::MAX,
            cid: 1,
            sq_head: 2,
            status: Status::InvalidSaIndex,
            phase: true,
        };
        assert_eq!(AdminCompletion::decode(&c.encode()), c);
        let e = EventEntry {
            detail: 0xDEAD_0000,
            index: 3,
            code: EventCode::DmaFault,
            aux: 2,
            phase: true,
        };
        assert_eq!(EventEntry::decode(&e.encode()), e);
    }
}
