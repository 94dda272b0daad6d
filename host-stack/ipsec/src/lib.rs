//! espo-ipsec: the IPsec core of espo — wire formats, crypto, anti-replay, selectors, SA and
//! policy specifications, and the software engine.
//!
//! Nothing here does I/O, reads configuration files or knows the card: the engine is built
//! from typed specifications ([`spec::SaSpec`], [`spec::PolicySpec`]) wherever they come
//! from, and works on packets in caller-owned buffers without allocating.
#![forbid(unsafe_code)]

pub mod counters;
pub mod crypto;
pub mod ecn;
pub mod engine;
pub mod gro;
pub mod gso;
pub mod lifetime;
pub mod replay;
pub mod sa;
pub mod selector;
pub mod spd;
pub mod spec;
pub mod wire;
