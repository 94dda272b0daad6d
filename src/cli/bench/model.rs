//! `espo bench --engine model`: the offload engine over the card model. Two figures per
//! direction: the host CPU the engine and driver spend per packet, and the card's
//! throughput as the model simulates it (its performance counters: inner bytes per
//! simulated second), which is what the hardware would do.
//!
//! The model runs in the same thread, apart and untimed: a round of packets is handed to
//! the engine, the model runs until idle, the engine takes the results. The driver's
//! polls between them step an idle model by one cycle only, so they neither cost host time
//! worth counting nor stretch the simulated time the throughput is measured over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use espo_config::Config;
use espo_driver::card::{Card, CardConfig};
use espo_driver::model::{MemLink, ModelDevice, ModelHandle, ModelOptions, ModelParams, Pacing};
use espo_ipsec::engine::Encapsulated;
use espo_offload::{OffloadEngine, OffloadOptions, Received, SentAs, card_config};

/// Packets per round: the model runs once per round.
const ROUND: usize = 512;

/// What was measured for one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direction {
    pub packets: u64,
    /// Host CPU in the engine and driver.
    pub host: Duration,
    /// Host CPU the simulation itself took (informative).
    pub model: Duration,
    /// The card's inner throughput in simulated time, Gbit/s, and its port's line rate.
    pub card_inner_gbps: f64,
    pub card_line_gbps: f64,
    pub card_mpps: f64,
    /// How many of the packets the card itself transformed (the rest: software).
    pub by_card: u64,
}

impl Direction {
    pub fn host_ns_per_packet(&self) -> f64 {
        self.host.as_nanos() as f64 / self.packets.max(1) as f64
    }
}

fn card(size: usize) -> anyhow::Result<(Card, ModelHandle, MemLink)> {
    let dev = ModelDevice::new(ModelOptions {
        params: ModelParams::default(),
        pacing: Pacing::Inline,
        relax_horizon_cycles: 1,
        idle_step_cycles: 1,
    });
    let handle = dev.handle();
    let (near, far) = MemLink::pair();
    handle.attach_link(Box::new(near));
    let config = CardConfig {
        ring_log2: 10,
        buffer_bytes: (size as u32 + 256).clamp(2048, espo_offload::JUMBO_BUFFER_BYTES),
        // Host time runs on while the model is stepped apart: no fault detection here.
        hang_timeout: Duration::from_secs(3600),
        health_interval: None,
        ..card_config()
    };
    let card = Card::open(Arc::new(dev), config).context("bringing up the card model")?;
    Ok((card, handle, far))
}

/// Encapsulation through the card for about `budget`.
pub fn encap(tx_config: &Config, inner: &[u8], budget: Duration) -> anyhow::Result<Direction> {
    let (card, model, far) = card(inner.len())?;
    let mut engine = OffloadEngine::new(
        &tx_config.sas,
        &tx_config.policies,
        Some(card),
        OffloadOptions::default(),
    )?;
    let mut d = Direction::default();
    let mut reports = Vec::with_capacity(ROUND);
    model.reset_perf();
    let started = Instant::now();
    let mut tag = 0u64;
    while started.elapsed() < budget || d.packets == 0 {
        let t = Instant::now();
        for _ in 0..ROUND {
            engine.submit(tag, inner);
            tag += 1;
        }
        engine.poll();
        d.host += t.elapsed();
        let t = Instant::now();
        model.run_until_idle();
        d.model += t.elapsed();
        let mut t = Instant::now();
        reports.clear();
        while reports.len() < ROUND {
            engine.poll();
            engine.take_tx_reports(&mut reports);
            if engine.tx_outstanding() > 0 && reports.len() < ROUND {
                // The ring took less than a round: let the card work through it.
                d.host += t.elapsed();
                let m = Instant::now();
                model.run_until_idle();
                d.model += m.elapsed();
                t = Instant::now();
            }
        }
        d.host += t.elapsed();
        for r in &reports {
            match r.outcome {
                Ok(SentAs::Esp {
                    path: espo_offload::Path::Card,
                    ..
                }) => d.by_card += 1,
                Ok(_) => {}
                Err(reason) => bail!("the benchmark packet was dropped: {reason}"),
            }
        }
        d.packets += reports.len() as u64;
        far.drain();
    }
    let perf = model.perf();
    d.card_inner_gbps = perf.tx_inner_gbps();
    d.card_line_gbps = perf.tx_line_gbps();
    d.card_mpps =
        perf.tx.packets as f64 * perf.clock_hz as f64 / perf.elapsed_cycles() as f64 / 1e6;
    Ok(d)
}

/// Decapsulation through the card for about `budget`: a software sender makes the frames
/// (untimed), the card receives them, the engine takes what it delivers.
pub fn decap(
    tx_config: &Config,
    rx_config: &Config,
    inner: &[u8],
    budget: Duration,
) -> anyhow::Result<Direction> {
    let (card, model, far) = card(inner.len())?;
    let mut engine = OffloadEngine::new(
        &rx_config.sas,
        &rx_config.policies,
        Some(card),
        OffloadOptions::default(),
    )?;
    let mut sender = tx_config.software_engine().context("the sender")?;
    let mut d = Direction::default();
    let mut reports = Vec::with_capacity(ROUND);
    let mut buf = vec![0u8; inner.len() + 256];
    model.reset_perf();
    let started = Instant::now();
    while started.elapsed() < budget || d.packets == 0 {
        for _ in 0..ROUND {
            let Ok(Encapsulated::Protected { len, .. }) =
                sender.outbound.encapsulate(inner, &mut buf)
            else {
                bail!("the sender could not encapsulate the benchmark packet");
            };
            let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
            frame.extend_from_slice(&buf[..len]);
            far.send_bytes(&frame);
        }
        let t = Instant::now();
        model.run_until_idle();
        d.model += t.elapsed();
        let mut t = Instant::now();
        reports.clear();
        let mut spins = 0u32;
        while reports.len() < ROUND {
            engine.poll();
            engine.take_rx_reports(&mut reports);
            spins += 1;
            if spins.is_multiple_of(64) {
                // The card paused its port while its RX ring was full: let it go on.
                d.host += t.elapsed();
                let m = Instant::now();
                model.run_until_idle();
                d.model += m.elapsed();
                t = Instant::now();
            }
            if spins > 1_000_000 {
                bail!("the card model stopped delivering frames");
            }
        }
        d.host += t.elapsed();
        for r in &reports {
            match &r.outcome {
                Ok(Received::Inner {
                    path: espo_offload::Path::Card,
                    ..
                }) => d.by_card += 1,
                Ok(_) => {}
                Err(reason) => bail!("the benchmark frame was dropped: {reason}"),
            }
        }
        d.packets += reports.len() as u64;
    }
    let perf = model.perf();
    d.card_inner_gbps = perf.rx_inner_gbps();
    d.card_line_gbps = perf.rx_line_gbps();
    d.card_mpps =
        perf.rx.packets as f64 * perf.clock_hz as f64 / perf.elapsed_cycles() as f64 / 1e6;
    Ok(d)
}
