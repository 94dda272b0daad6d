//! The tunnel topologies of [`espo_harness::netlab`], addressed as the configurations in
//! examples/ expect, each a panic naming what failed when it cannot be built.

use super::lab::Lab;

use espo_harness::netlab;
pub use espo_harness::netlab::Topology;

fn built<T>(result: std::io::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("building the topology: {e}"))
}

/// A host behind a gateway: `site` is 1 or 2 (10.{site}.0.0/24, fd00:{site}::/64).
pub fn host_behind(lab: &mut Lab, gw: &str, host: &str, site: u8, short: &str) {
    built(netlab::host_behind(&mut lab.inner, gw, host, site, short))
}

/// hA ── gwA ══ gwB ── hB
pub fn gateway_to_gateway(lab: &mut Lab) -> Topology {
    built(netlab::gateway_to_gateway(&mut lab.inner))
}

/// Gateway-to-gateway with gwB on the card: its outside interface has no address.
pub fn gateway_to_gateway_card(lab: &mut Lab) -> Topology {
    built(netlab::gateway_to_gateway_card(&mut lab.inner))
}

/// srv ══ gw ── hB
pub fn server_to_gateway(lab: &mut Lab) -> Topology {
    built(netlab::server_to_gateway(&mut lab.inner))
}

/// srvA ══ srvB
pub fn server_to_server(lab: &mut Lab) -> Topology {
    built(netlab::server_to_server(&mut lab.inner))
}

/// Server-to-server over IPv6: 2001:db8::1 <-> 2001:db8::2 (inner = outer).
pub fn server_to_server_v6(lab: &mut Lab) -> Topology {
    built(netlab::server_to_server_v6(&mut lab.inner))
}
