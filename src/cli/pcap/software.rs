//! `espo pcap` on the software engine: every algorithm, on the host CPU.

use espo_config::Config;
use espo_ipsec::engine::{Decapsulated, Encapsulated, EngineError, SoftwareEngine};

use super::{Operation, Outcome, SaLine, Transform};

/// Room for any tunnel overhead.
const OVERHEAD: usize = 1024;

pub(super) struct SoftwareTransform {
    engine: SoftwareEngine,
    out: Vec<u8>,
}

impl SoftwareTransform {
    pub(super) fn new(config: &Config) -> Result<Self, EngineError> {
        Ok(Self {
            engine: config.software_engine()?,
            out: vec![0u8; 65535 + OVERHEAD],
        })
    }
}

impl Transform for SoftwareTransform {
    fn batch(
        &mut self,
        direction: Operation,
        packets: &[&[u8]],
        out: &mut Vec<Outcome>,
    ) -> anyhow::Result<()> {
        for ip in packets {
            out.push(match direction {
                Operation::Encap => match self.engine.outbound.encapsulate(ip, &mut self.out) {
                    Ok(Encapsulated::Protected { len, .. }) => {
                        Outcome::Transformed(self.out[..len].to_vec())
                    }
                    Ok(Encapsulated::Bypass) => Outcome::Bypass,
                    Err(reason) => Outcome::Dropped(reason),
                },
                Operation::Decap => {
                    let mut work = ip.to_vec();
                    match self.engine.inbound.decapsulate(&mut work) {
                        Ok(Decapsulated::Inner { range, .. }) => {
                            Outcome::Transformed(work.get(range).unwrap_or(&[]).to_vec())
                        }
                        // espo pcap runs no IKE: the engine never hands IKE out here.
                        Ok(Decapsulated::Bypass | Decapsulated::Ike { .. }) => Outcome::Bypass,
                        Ok(Decapsulated::Keepalive) => Outcome::Keepalive,
                        Err(reason) => Outcome::Dropped(reason),
                    }
                }
            });
        }
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "software engine"
    }

    fn sa_lines(&self, direction: Operation) -> Vec<SaLine> {
        let line =
            |params: &espo_ipsec::sa::SaParams, c: &espo_ipsec::counters::SaCounters| SaLine {
                spi: params.spi,
                protocol: params.protocol.name(),
                place: "software".into(),
                packets: c.packets,
                bytes: c.bytes,
            };
        match direction {
            Operation::Encap => self
                .engine
                .outbound
                .sas()
                .iter()
                .map(|s| line(&s.params, &s.counters))
                .collect(),
            Operation::Decap => self
                .engine
                .inbound
                .sas()
                .iter()
                .map(|s| line(&s.params, &s.counters))
                .collect(),
        }
    }
}
