//! espo-harness: the tools around espo's gateway, outside the production API — `espo demo`
//! (two gateways and their hosts in one process), `espo validate` (a card against the
//! software engine), the card under test they share, pcap files, fixed tunnels for
//! benchmarks and tests, and a lab of network namespaces (`espo bench tunnel`, the
//! end-to-end tests).
#![forbid(unsafe_code)]

pub mod demo;
pub mod loopback;
pub mod netlab;
pub mod pcap;
pub mod testbed;
pub mod validate;
