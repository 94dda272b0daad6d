//! `espo demo`: two gateways in one process, a tunnel between them, hosts behind each.
//!
//! Gateway A runs the offload engine on the card model (ESPO-1, with software fallback for
//! what the card cannot do); gateway B runs the software engine. The card's Ethernet port
//! is the link between them: an in-memory cable carrying whole frames, tapped to check that
//! only ESP crosses it ([`link`]). Behind each gateway
//! sit simulated hosts ([`topology`]), one pair per tunnel, that exchange UDP requests and
//! responses ([`hosts`]) in both directions — IPv4 and IPv6, mixed sizes — and every packet
//! delivered to a host is compared byte for byte with what its sender sent ([`ledger`]).
//!
//! Each gateway does a gateway's work: outbound SPD lookup and tunnel-mode encapsulation;
//! inbound SA lookup, ICV and replay check, decapsulation and the RFC 4301 §5.2 check of the
//! inner packet against the inbound policy. [`Demo`] runs the traffic; [`Summary`] is what
//! it found, with one packet shown before and after encapsulation ([`show`]).
//!
//! The configurations compiled in ([`GATEWAY_A_TOML`], [`GATEWAY_B_TOML`], from
//! `examples/demo/`) hold demo keys, published with espo: they protect nothing.

mod card_gw;
pub mod hosts;
pub mod ike;
pub mod keying;
pub mod ledger;
pub mod link;
mod run;
pub mod show;
mod software_gw;
mod summary;
pub mod topology;

pub use card_gw::CardGateway;
pub use run::{Budget, Demo, DemoOptions, MIXED_SIZES, PacketSize, Progress};
pub use software_gw::{GatewayCounters, SoftwareGateway};
pub use summary::{SaLine, Summary};

use espo_config::{Config, ConfigError};

/// Gateway A's configuration (card model), compiled in. Demo keys.
pub const GATEWAY_A_TOML: &str = include_str!("../../../../examples/demo/gw-a.toml");
/// Gateway B's configuration (software engine), compiled in. Demo keys.
pub const GATEWAY_B_TOML: &str = include_str!("../../../../examples/demo/gw-b.toml");

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo configuration is invalid")]
    Config(#[source] ConfigError),
    #[error("{0}")]
    Topology(String),
    #[error("bringing up the card model failed")]
    Card(#[source] espo_driver::card::CardError),
    #[error("building gateway A's offload engine failed")]
    Offload(#[source] espo_offload::OffloadError),
    #[error("building gateway B's software engine failed")]
    Software(#[source] espo_ipsec::engine::EngineError),
}

/// The two compiled-in configurations, parsed.
pub fn default_configs() -> Result<(Config, Config), DemoError> {
    let parse = |text: &str, name: &str| {
        Config::parse(text, std::path::Path::new(name)).map_err(DemoError::Config)
    };
    Ok((
        parse(GATEWAY_A_TOML, "examples/demo/gw-a.toml")?,
        parse(GATEWAY_B_TOML, "examples/demo/gw-b.toml")?,
    ))
}

#[cfg(test)]
mod tests;
