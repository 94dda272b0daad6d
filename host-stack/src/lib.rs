//! espo-stack: IPsec wire formats, SAD/SPD, ESP/AH transforms, the software engine and
//! the configuration.
#![forbid(unsafe_code)]

pub mod config;
mod config_check;
mod config_redact;
pub mod counters;
pub mod crypto;
pub mod demo;
pub mod ecn;
pub mod engine;
pub mod gateway;
pub mod loopback;
pub mod offload;
pub mod pcap;
pub mod replay;
pub mod sa;
pub mod selector;
pub mod spd;
pub mod testbed;
pub mod validate;
pub mod wire;
