//! `espo pcap --engine model`: the card model with software fallback, through the offload
//! engine exactly as a gateway runs it. Packets of AES-GCM SAs are transformed by the card;
//! SAs the card cannot take (AH, AES-CBC+HMAC, ChaCha20-Poly1305, bundles) run in software
//! and their packets pass the card as bypass frames, so the output keeps the input's order.

use anyhow::{Context, bail};
use espo_config::Config;
use espo_harness::testbed::{CardUnderTest, ModelCard};
use espo_ipsec::spec::Direction;
use espo_offload::{OffloadEngine, OffloadOptions, Placement, Received, SentAs, TxReport, Wire};

use super::{Operation, Outcome, SaLine, Transform};
use espo_ipsec::counters::DropReason;
use espo_ipsec::wire::ethernet::EtherType;

/// Polls without progress before the card is declared stuck.
const STUCK_POLLS: u32 = 100_000;

pub(super) struct CardTransform {
    engine: OffloadEngine,
    port: Box<dyn Wire>,
    max_frame: usize,
}

impl CardTransform {
    pub(super) fn new(config: &Config) -> anyhow::Result<Self> {
        let card = ModelCard::default()
            .open(espo_offload::card_config())
            .context("bringing up the card model")?;
        let caps = card.card.capabilities();
        let max_frame = (card.card.buffer_bytes().min(caps.max_frame)) as usize;
        let engine = OffloadEngine::new(
            &config.sas,
            &config.policies,
            Some(card.card),
            OffloadOptions::default(),
        )?;
        Ok(Self {
            engine,
            port: card.port,
            max_frame,
        })
    }

    fn encap(&mut self, packets: &[&[u8]], out: &mut Vec<Outcome>) -> anyhow::Result<()> {
        for (i, ip) in packets.iter().enumerate() {
            self.engine.submit(i as u64, ip);
        }
        let mut reports: Vec<TxReport> = Vec::with_capacity(packets.len());
        let mut idle = 0;
        while self.engine.tx_outstanding() > 0 || reports.len() < packets.len() {
            let before = reports.len();
            self.engine.poll();
            self.engine.take_tx_reports(&mut reports);
            idle = if reports.len() == before { idle + 1 } else { 0 };
            if idle > STUCK_POLLS {
                bail!("the card model stopped completing packets");
            }
        }
        // Frames leave in the order the card completes them, the order of the reports.
        let mut outcomes: Vec<Option<Outcome>> = (0..packets.len()).map(|_| None).collect();
        let mut frame = Vec::new();
        for r in &reports {
            let outcome = match r.outcome {
                Ok(sent) => {
                    if !self.port.recv(&mut frame) {
                        bail!("packet {} was reported sent but never left the card", r.tag);
                    }
                    match sent {
                        SentAs::Esp { .. } => Outcome::Transformed(frame.split_off(14)),
                        // Never submitted here: espo pcap sends no frames of its own.
                        SentAs::Bypass | SentAs::Link => Outcome::Bypass,
                    }
                }
                Err(reason) => Outcome::Dropped(reason),
            };
            if let Some(slot) = outcomes.get_mut(r.tag as usize) {
                *slot = Some(outcome);
            }
        }
        for (i, o) in outcomes.into_iter().enumerate() {
            out.push(o.with_context(|| format!("packet {i} of the batch was never reported"))?);
        }
        Ok(())
    }

    fn decap(&mut self, packets: &[&[u8]], out: &mut Vec<Outcome>) -> anyhow::Result<()> {
        // Frames go to the card's port in order; one report comes back for each, in order.
        let mut injected = Vec::with_capacity(packets.len());
        for (i, ip) in packets.iter().enumerate() {
            if 14 + ip.len() > self.max_frame {
                continue;
            }
            let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
            frame.extend_from_slice(&EtherType::of_ip(ip).to_bytes());
            frame.extend_from_slice(ip);
            self.port.send(&frame);
            injected.push(i);
        }
        let mut reports = Vec::with_capacity(injected.len());
        let mut idle = 0;
        while reports.len() < injected.len() {
            let before = reports.len();
            self.engine.poll();
            self.engine.take_rx_reports(&mut reports);
            idle = if reports.len() == before { idle + 1 } else { 0 };
            if idle > STUCK_POLLS {
                bail!(
                    "the card model returned {} of {} frames",
                    reports.len(),
                    injected.len()
                );
            }
        }
        let mut reports = reports.into_iter();
        let mut next = injected.iter().peekable();
        for i in 0..packets.len() {
            if next.peek() != Some(&&i) {
                // Larger than the card's largest frame: the port would drop it.
                out.push(Outcome::Dropped(DropReason::TooBig));
                continue;
            }
            next.next();
            let Some(r) = reports.next() else {
                bail!("frame {i} of the batch was never reported");
            };
            out.push(match r.outcome {
                Ok(Received::Inner { packet, .. }) => Outcome::Transformed(packet),
                // Not lent here (`lend_rx` off), but copied out like any other if it were.
                Ok(Received::Lent(p)) => {
                    let mut packet = Vec::new();
                    let copied = self.engine.lent_bytes(&p, &mut packet);
                    self.engine.release_lent(&p);
                    match copied {
                        Ok(()) => Outcome::Transformed(packet),
                        Err(_) => Outcome::Dropped(DropReason::DeviceError),
                    }
                }
                // espo pcap runs no IKE and its card's port is not its own: the engine
                // hands out neither IKE messages nor link-layer frames here.
                Ok(Received::Bypass { .. } | Received::Ike { .. } | Received::Link { .. }) => {
                    Outcome::Bypass
                }
                Ok(Received::Keepalive) => Outcome::Keepalive,
                Err(reason) => Outcome::Dropped(reason),
            });
        }
        Ok(())
    }
}

impl Transform for CardTransform {
    fn batch(
        &mut self,
        direction: Operation,
        packets: &[&[u8]],
        out: &mut Vec<Outcome>,
    ) -> anyhow::Result<()> {
        match direction {
            Operation::Encap => self.encap(packets, out),
            Operation::Decap => self.decap(packets, out),
        }
    }

    fn describe(&self) -> &'static str {
        "card model with software fallback"
    }

    fn sa_lines(&self, direction: Operation) -> Vec<SaLine> {
        let dir = match direction {
            Operation::Encap => Direction::Out,
            Operation::Decap => Direction::In,
        };
        let sw = self.engine.software();
        self.engine
            .placements()
            .into_iter()
            .filter(|p| p.dir == dir)
            .map(|p| {
                let protocol = match dir {
                    Direction::Out => sw
                        .outbound
                        .sas()
                        .iter()
                        .find(|s| s.params.spi == p.spi)
                        .map(|s| s.params.protocol.name()),
                    Direction::In => sw
                        .inbound
                        .sas()
                        .iter()
                        .find(|s| s.params.spi == p.spi)
                        .map(|s| s.params.protocol.name()),
                };
                SaLine {
                    spi: p.spi,
                    protocol: protocol.unwrap_or("?"),
                    place: match (p.placement, p.why_software) {
                        (Placement::Card { .. }, _) => "card".into(),
                        (Placement::Software, Some(why)) => format!("software ({why})"),
                        (Placement::Software, None) => "software".into(),
                    },
                    packets: p.counters.packets,
                    bytes: p.counters.bytes,
                }
            })
            .collect()
    }
}
