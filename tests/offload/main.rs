//! The offload engine over the card model, as a gateway runs it: moves under load in both
//! directions, every fault kind mid-stream, an SA table filled past capacity, lifetimes on
//! the card. Each test checks the invariants: every packet delivered once or counted as
//! dropped with a reason, no (SPI, sequence number) used twice, replay protection intact
//! after a move.

mod capacity;
mod faults;
mod lifetimes;
mod live;
mod migration;
mod support;
