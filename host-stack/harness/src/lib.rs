//! espo-harness: the tools around espo's gateway, outside the production API — `espo demo`
//! (two gateways and their hosts in one process), `espo validate` (a card against the
//! software engine), the card under test they share, pcap files, and fixed tunnels for
//! benchmarks and tests.
#![forbid(unsafe_code)]

pub mod demo;
pub mod loopback;
pub mod pcap;
pub mod testbed;
pub mod validate;
