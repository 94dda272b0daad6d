//! espo-driver: the userspace driver for the ESPO-1 card, over VFIO or the card model.
//!
//! The card driver sits on one narrow interface, [`Device`]: bounds-checked BAR register
//! access, DMA memory mapped at IOVAs ([`DmaRegion`]), interrupt vectors, reset and bus
//! mastering. [`vfio::VfioDevice`] implements it over Linux VFIO; the card model implements it
//! in-process (feature `model`).
//!
//! `unsafe` is confined to the MMIO ([`mmio`]), DMA-memory ([`dma`]) and syscall (`sys`)
//! modules; every system call goes through the private `sys` layer, which tests replace with
//! a simulated kernel.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod card;
pub mod device;
pub mod dma;
pub mod error;
pub mod iova;
pub mod mmio;
#[cfg(feature = "model")]
pub mod model;
pub mod pci;
mod sys;
pub mod vfio;

pub use card::{Card, CardConfig, CardError, CardEvent, IrqMode};
pub use device::{Device, IrqWait};
pub use dma::{DmaMemory, DmaRegion};
pub use error::{AccessError, DeviceError};
pub use pci::PciAddress;

/// DMA memory the card driver pins by default (rings and buffer pool); what `espo probe`
/// compares the memlock limit against.
pub const DEFAULT_DMA_BUDGET_BYTES: u64 = 64 << 20;
