//! Gateway A: the offload engine on the card model, the card's Ethernet port the demo's
//! link.
//!
//! The offload engine does the gateway's work: the outbound SPD lookup, then the card
//! encapsulates the packets of the SAs it holds (AES-GCM) and software those of the rest
//! (sent through the card's port as ready-made frames); inbound, the card decapsulates and
//! verifies its SAs' packets, software the rest, and the engine checks every inner packet
//! against the inbound policy (RFC 4301 §5.2).
//!
//! The model is stepped by the demo, apart from the host: once the host has handed over a
//! round of packets, the model runs until its work is done. Its simulated clock only moves
//! while the card works, so its performance counters give the rate the card itself would
//! sustain on this traffic.

use std::sync::Arc;
use std::time::Duration;

use espo_driver::card::{Card, CardConfig};
use espo_driver::model::{ModelDevice, ModelHandle, ModelOptions, ModelParams, Pacing, PerfReport};

use espo_config::Config;
use espo_offload::{MemWire, OffloadEngine, OffloadOptions, RxReport, TxReport, card_config};

use super::DemoError;
use super::link::CardPort;
use super::software_gw::{MAC_A, MAC_B};

/// Gateway A. See the module documentation.
pub struct CardGateway {
    engine: OffloadEngine,
    model: ModelHandle,
}

impl std::fmt::Debug for CardGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardGateway")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// The card's configuration for the demo: jumbo buffers, 1024-entry rings; no hang
/// detection on the host clock (the model is stepped apart from it).
fn demo_card_config() -> CardConfig {
    CardConfig {
        ring_log2: 10,
        hang_timeout: Duration::from_secs(3600),
        health_interval: None,
        ..card_config()
    }
}

impl CardGateway {
    /// Brings up a card model and the offload engine with `config` on it; returns the
    /// gateway and the far end of the cable on the card's port (the other gateway's side).
    pub fn open(config: &Config) -> Result<(CardGateway, MemWire), DemoError> {
        let (near, far) = MemWire::pair();
        Ok((CardGateway::open_on(config, near)?, far))
    }

    /// Gateway A with its card's port on `near`, one end of a cable made before.
    pub fn open_on(config: &Config, near: MemWire) -> Result<CardGateway, DemoError> {
        CardGateway::open_with(config, Box::new(CardPort(near)))
    }

    /// Gateway A with its card's port on `link`.
    pub fn open_with(
        config: &Config,
        link: Box<dyn espo_driver::model::Link>,
    ) -> Result<CardGateway, DemoError> {
        let dev = ModelDevice::new(ModelOptions {
            params: ModelParams::default(),
            pacing: Pacing::Inline,
            relax_horizon_cycles: 1,
            idle_step_cycles: 1,
        });
        let model = dev.handle();
        model.attach_link(link);
        let card = Card::open(Arc::new(dev), demo_card_config()).map_err(DemoError::Card)?;
        let options = OffloadOptions {
            local_mac: MAC_A,
            peer_mac: MAC_B,
            ..OffloadOptions::default()
        };
        let engine = OffloadEngine::new(&config.sas, &config.policies, Some(card), options)
            .map_err(DemoError::Offload)?;
        model.reset_perf();
        Ok(CardGateway { engine, model })
    }

    /// Hands an inner packet to the gateway; its fate comes back as a [`TxReport`] with
    /// `tag`.
    pub fn submit(&mut self, tag: u64, inner: &[u8]) {
        self.engine.submit(tag, inner);
    }

    /// One round: the host posts what it has, the card works until it is done, the host
    /// takes completions and received frames.
    pub fn run(&mut self, tx: &mut Vec<TxReport>, rx: &mut Vec<RxReport>) {
        self.engine.poll();
        self.model.run_until_idle();
        self.engine.poll();
        self.engine.take_tx_reports(tx);
        self.engine.take_rx_reports(rx);
    }

    /// Submitted packets not yet reported.
    pub fn outstanding(&self) -> usize {
        self.engine.tx_outstanding()
    }

    pub fn engine(&self) -> &OffloadEngine {
        &self.engine
    }

    /// The card's performance counters since it came up (simulated time).
    pub fn perf(&self) -> PerfReport {
        self.model.perf()
    }
}

impl super::keying::Keyed for CardGateway {
    fn inbound_beside(
        &mut self,
        old_spi: u32,
        new: &espo_ipsec::spec::SaSpec,
    ) -> Result<(), String> {
        self.engine
            .replace_sa(old_spi, espo_ipsec::spec::Direction::In, new)
            .map_err(|e| e.to_string())
    }

    fn outbound_instead(
        &mut self,
        old_spi: u32,
        new: &espo_ipsec::spec::SaSpec,
    ) -> Result<(), String> {
        self.engine
            .replace_sa(old_spi, espo_ipsec::spec::Direction::Out, new)
            .map_err(|e| e.to_string())
    }

    fn outbound_idle(&mut self, new: &espo_ipsec::spec::SaSpec) -> Result<(), String> {
        self.engine
            .add_sa(new, espo_ipsec::spec::Direction::Out)
            .map_err(|e| e.to_string())
    }

    fn remove(
        &mut self,
        spi: u32,
        dir: espo_ipsec::spec::Direction,
        dst: std::net::IpAddr,
    ) -> Result<(), String> {
        self.engine
            .remove_sa(spi, dir, Some(dst))
            .map_err(|e| e.to_string())
    }

    fn lifetimes(&mut self, out: &mut Vec<espo_ipsec::lifetime::LifetimeEvent>) {
        let mut events = Vec::new();
        self.engine.take_events(&mut events);
        out.extend(events.into_iter().filter_map(|e| match e {
            espo_offload::EngineEvent::Lifetime {
                spi,
                dir,
                hard,
                cause,
            } => Some(espo_ipsec::lifetime::LifetimeEvent {
                spi,
                dir,
                hard,
                cause,
            }),
            _ => None,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::super::software_gw::SoftwareGateway;
    use super::*;
    use espo_offload::{Path as EnginePath, Placement, Received, SentAs};
    use std::path::Path;

    #[test]
    fn the_card_takes_aes_gcm_and_software_the_rest_and_both_reach_gateway_b() {
        let a = Config::parse(super::super::GATEWAY_A_TOML, Path::new("a")).unwrap();
        let b = Config::parse(super::super::GATEWAY_B_TOML, Path::new("b")).unwrap();
        let (mut gw_a, link) = CardGateway::open(&a).expect("card gateway");
        let mut gw_b = SoftwareGateway::new(&b, Box::new(link)).expect("software gateway");
        let placed: Vec<(u32, bool)> = gw_a
            .engine()
            .placements()
            .iter()
            .map(|p| (p.spi, matches!(p.placement, Placement::Card { .. })))
            .collect();
        for (spi, on_card) in &placed {
            assert_eq!(*on_card, spi & 0xff < 3, "sa {spi:#x}");
        }
        let tunnels = super::super::topology::tunnels(&a).unwrap();
        let mut sent = Vec::new();
        for (i, t) in tunnels.iter().enumerate() {
            let m = super::super::hosts::Message {
                kind: super::super::hosts::Kind::Request,
                exchange: i as u64,
            };
            let pkt = super::super::hosts::build(&t.a, &t.b, m, 1400, &mut |b| b.fill(7)).unwrap();
            gw_a.submit(i as u64, &pkt);
            sent.push(pkt);
        }
        let (mut tx, mut rx) = (Vec::new(), Vec::new());
        gw_a.run(&mut tx, &mut rx);
        assert_eq!(tx.len(), 4);
        for r in &tx {
            let Ok(SentAs::Esp { path, .. }) = r.outcome else {
                panic!("not sent: {r:?}");
            };
            let card = r.tag < 2;
            assert_eq!(path == EnginePath::Card, card, "packet {}", r.tag);
        }
        let mut got = Vec::new();
        gw_b.receive(&mut |p| got.push(p.to_vec()));
        got.sort();
        sent.sort();
        assert_eq!(got, sent, "every tunnel delivers byte for byte");
        // And back: B's responses reach A through the card.
        for p in &sent {
            let resp = super::super::hosts::respond(p).unwrap();
            gw_b.send(&resp).expect("sent");
        }
        gw_a.run(&mut tx, &mut rx);
        assert_eq!(rx.len(), 4);
        let card_rx = rx
            .iter()
            .filter(|r| {
                matches!(
                    r.outcome,
                    Ok(Received::Inner {
                        path: EnginePath::Card,
                        ..
                    })
                )
            })
            .count();
        assert_eq!(card_rx, 2);
        assert!(gw_a.perf().tx.packets >= 4);
    }
}
