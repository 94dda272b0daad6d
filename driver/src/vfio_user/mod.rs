//! The vfio-user backend: a card served by another process (QEMU's vfio-user protocol,
//! `docs/interop/vfio-user.rst`), behind the same [`Device`](crate::Device) interface as
//! VFIO and the in-process model.
//!
//! - [`proto`]: the wire format, every message typed and bounds-checked.
//! - `channel`: whole messages over a unix stream socket, descriptors as `SCM_RIGHTS`,
//!   every receive bounded by a deadline, oversized messages refused.
//! - [`VfioUserDevice`]: the client (`--engine vfio-user --socket PATH`).
//! - `server::CardServer` (feature `model`): the card model served as a PCI device
//!   (`espo card serve`), with its Ethernet port on a unix datagram socket ([`port`]) or
//!   whatever [`Link`](crate::model::Link) the caller attaches.
//!
//! The two processes share nothing but the socket, the DMA windows (sealed memfds the
//! client passes and the server maps) and the interrupt eventfds. A server that dies,
//! hangs or sends garbage is a device that is gone: the client stops all access and the
//! card driver handles it as surprise removal.
//!
//! # Why not rust-vmm's `vfio-user` crate
//!
//! It is written for VMMs serving guest memory (it takes whole guest memory tables and
//! pulls in their types); espo needs a dozen messages with strict checks on every field it
//! receives and a deadline on every wait. The protocol subset here is small enough to keep
//! in a few hundred lines that follow the spec's tables.

// Without feature `model` there is no server, and the parts of these only it uses are
// unused. Only the channel (descriptors received with SCM_RIGHTS) has `unsafe`.
#[cfg_attr(not(feature = "model"), allow(dead_code))]
mod channel;
#[forbid(unsafe_code)]
mod client;
#[cfg_attr(not(feature = "model"), allow(dead_code))]
#[forbid(unsafe_code)]
mod config;
#[forbid(unsafe_code)]
mod error;
#[forbid(unsafe_code)]
mod memory;
#[forbid(unsafe_code)]
pub mod port;
#[forbid(unsafe_code)]
pub mod proto;
#[cfg(feature = "model")]
#[forbid(unsafe_code)]
pub mod server;

pub use channel::RecvError;
pub use client::{VfioUserDevice, VfioUserOptions};
pub use config::{ESPO1_DEVICE_ID, ESPO1_VENDOR_ID};
pub use error::VfioUserError;
