//! espo-fpga: the ESPO-1 card's hardware/software contract — register map, descriptor,
//! completion and SA-entry layouts, capability bits, codes. The single source of truth;
//! the SystemVerilog package (`fpga/rtl/espo_pkg.sv`) and the datasheet's tables
//! (`fpga/README.md`) are generated from it by [`generate`].
#![forbid(unsafe_code)]

pub mod admin;
pub mod codes;
pub mod desc;
pub mod generate;
pub mod layout;
pub mod reg;
pub mod regs;
pub mod sa;

pub use admin::{AdminCommand, AdminCompletion, EventEntry};
pub use codes::{AdminOpcode, AlgId, Counter, DfMode, DmaUnit, EventCode, FaultCode, Status};
pub use desc::{RxCompletion, RxDescriptor, TxCompletion, TxDescriptor};
pub use layout::{Layout, LayoutField};
pub use reg::{Access, Block, Field, Register};
pub use sa::{SaEntry, SaState};

/// Every DMA structure, in datasheet order.
pub const LAYOUTS: &[Layout] = &[
    desc::tx_desc::LAYOUT,
    desc::tx_cpl::LAYOUT,
    desc::rx_desc::LAYOUT,
    desc::rx_cpl::LAYOUT,
    admin::admin_cmd::LAYOUT,
    admin::admin_cpl::LAYOUT,
    admin::event_entry::LAYOUT,
    sa::sa_entry::LAYOUT,
    sa::sa_state::LAYOUT,
];

const _: () = assert!(TxDescriptor::SIZE == desc::tx_desc::LAYOUT.size_bytes);
const _: () = assert!(TxCompletion::SIZE == desc::tx_cpl::LAYOUT.size_bytes);
const _: () = assert!(RxDescriptor::SIZE == desc::rx_desc::LAYOUT.size_bytes);
const _: () = assert!(RxCompletion::SIZE == desc::rx_cpl::LAYOUT.size_bytes);
const _: () = assert!(AdminCommand::SIZE == admin::admin_cmd::LAYOUT.size_bytes);
const _: () = assert!(AdminCompletion::SIZE == admin::admin_cpl::LAYOUT.size_bytes);
const _: () = assert!(EventEntry::SIZE == admin::event_entry::LAYOUT.size_bytes);
const _: () = assert!(SaEntry::SIZE == sa::sa_entry::LAYOUT.size_bytes);
const _: () = assert!(SaState::SIZE == sa::sa_state::LAYOUT.size_bytes);
const _: () = assert!(sa::sa_state::BITMAP.width_bits == regs::cap::REPLAY_WINDOW_MAX_PACKETS);
