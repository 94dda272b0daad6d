//! espo-ike: IKEv2 (RFC 7296) for espo — the messages and their payloads, proposals in
//! strongSwan's notation, the key schedule, the SK payload, authentication (pre-shared keys
//! and signatures with certificates), and the state machines of IKE SAs and CHILD_SAs.
//!
//! Nothing here does I/O or reads a clock: messages come in and go out as bytes, time is a
//! parameter, and the CHILD_SAs it negotiates come out as espo-ipsec SA and policy
//! specifications for the live database. The gateway (espo-gateway) owns the sockets and
//! the timers.
#![forbid(unsafe_code)]

pub mod auth;
pub mod child;
pub mod connection;
pub mod crypto;
pub mod daemon;
pub mod datagram;
pub mod exchange;
pub mod manager;
pub mod proposal;
pub mod ts;
pub mod wire;
