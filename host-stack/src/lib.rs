//! espo-stack: IPsec wire formats, SAD/SPD, ESP/AH transforms, the software engine and
//! the configuration.
#![forbid(unsafe_code)]
pub mod pcap;
pub mod ecn;
pub mod counters;
pub mod selector;
pub mod config;
mod config_check;
pub mod engine;
pub mod sa;
pub mod spd;
pub mod loopback;
