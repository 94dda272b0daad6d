//! espo-model: a cycle-level model of the ESPO-1 card (fpga/README.md), driven only as
//! the hardware is: 32/64-bit BAR0 reads and writes, and DMA into host memory through an
//! IOMMU of mapped IOVA windows.
//!
//! The model is deterministic and event-driven. A BAR write (a doorbell) records work;
//! [`Model::run_until_idle`], [`Model::run_until`] and [`Model::advance`] process it,
//! each pipeline stage (PCIe, datapath, SA lookup, AES-GCM engines, MAC) accounting its
//! cycles; idle time costs nothing. Interrupts go to an [`InterruptSink`]; the Ethernet
//! port is attached to a [`Link`]. Faults are injected with [`Model::inject`].
#![forbid(unsafe_code)]

mod admin;
mod bar;
mod calendar;
mod card;
pub mod datapath;
mod decap;
mod encap;
mod fault;
pub mod irq;
pub mod link;
pub mod memory;
mod packet;
pub mod params;
pub mod perf;
mod regfile;
mod replay;
mod rx;
mod sa_table;
mod state;
mod tx;

pub use card::Model;
pub use datapath::{Datapath, DatapathOutput};
pub use fault::{FaultKind, FaultTrigger};
pub use irq::{InterruptLatch, InterruptSink};
pub use link::{CaptureLink, CollectSink, Frame, FrameSink, FrameSource, Link, MemLink, NullLink};
pub use memory::{HostMemory, Iommu, MapError, VecMemory};
pub use params::{Engine, ModelParams};
pub use perf::{DirectionStats, PerfReport, Stage};
