//! espo-rtl: the ESPO-1 RTL (fpga/rtl) compiled by Verilator and driven from Rust.
//!
//! [`Rtl`] owns one simulation. Its crypto benches ([`Rtl::aes_encrypt`], [`Rtl::gcm_seal`],
//! [`Rtl::gcm_open`]) drive the standalone AES pipeline and GCM unit; the ESP core is
//! driven through [`Rtl::process`] (see [`core`]). [`RtlDatapath`] puts the core in the
//! card model's place of its datapath (`espo validate --engine rtl`).
//!
//! `unsafe` is confined to the `ffi` module (the C ABI of the verilated model).
#![deny(unsafe_code)]

pub mod core;
mod crypto;
pub mod cycle_table;
pub mod datapath;
mod ffi;

pub use crate::core::{Direction, PacketIn, PacketOut, Timing, Verdict};
pub use crypto::{GcmKind, GcmResult};
pub use cycle_table::{CycleRow, cycle_rows, cycle_table, predicted_cycles, verdict_lines};
pub use datapath::{CycleLog, CycleRecord, RtlDatapath, VerdictTally};

/// Why a request to the RTL could not be carried out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RtlError {
    #[error("AES key of {0} bytes: the core takes 16 (AES-128) or 32 (AES-256)")]
    KeyLength(usize),
    #[error("the RTL produced no result within {0} cycles")]
    Timeout(u64),
}

/// One verilated simulation of the RTL, reset and ready.
#[derive(Debug)]
pub struct Rtl {
    sim: ffi::Sim,
}

impl Default for Rtl {
    fn default() -> Self {
        Rtl::new()
    }
}

impl Rtl {
    pub fn new() -> Rtl {
        Rtl {
            sim: ffi::Sim::new(),
        }
    }

    /// Clock cycles simulated since the simulation was created.
    pub fn cycle(&self) -> u64 {
        self.sim.cycle()
    }
}
