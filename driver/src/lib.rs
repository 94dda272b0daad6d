//! espo-driver: the userspace driver for the ESPO-1 card, over VFIO or the card model.
//!
//! The card driver ([`card::Card`]) sits on one narrow interface, [`Device`]:
//! bounds-checked BAR register access, DMA memory mapped at IOVAs ([`DmaRegion`]),
//! interrupt vectors, reset, bus mastering, and the device's clock. [`vfio::VfioDevice`]
//! implements it over Linux VFIO; `model::ModelDevice` implements it in-process over the
//! cycle-level card model (feature `model`, on by default); [`vfio_user::VfioUserDevice`]
//! over the vfio-user protocol, for a card served by another process (the card model served
//! by `vfio_user::server`, feature `model`).
//!
//! `unsafe` is confined to the MMIO ([`mmio`]), DMA-memory ([`dma`]) and syscall (`sys`)
//! modules and the vfio-user socket layer (descriptors received with `SCM_RIGHTS`); the
//! card driver and the model backend forbid it. Every system call goes
//! through the private `sys` layer, which tests replace with a simulated kernel.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[forbid(unsafe_code)]
pub mod card;
pub mod device;
pub mod dma;
pub mod error;
pub mod iova;
pub mod mmio;
#[cfg(feature = "model")]
#[forbid(unsafe_code)]
pub mod model;
pub mod pci;
mod sys;
pub mod vfio;
pub mod vfio_user;

pub use card::{Card, CardConfig, CardError, CardEvent, IrqMode};
pub use device::{Device, IrqWait};
pub use dma::{DmaMemory, DmaRegion};
pub use error::{AccessError, DeviceError};
pub use pci::PciAddress;

/// DMA memory the card driver pins by default (rings and buffer pool); what `espo probe`
/// compares the memlock limit against.
pub const DEFAULT_DMA_BUDGET_BYTES: u64 = 64 << 20;
