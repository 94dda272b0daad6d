//! `espo bench --engine vfio-user`: the offload engine over a card served by another
//! process (`espo card serve`). The host figure is what the engine and driver spend per
//! packet, now including the vfio-user messages (doorbells and register reads become
//! socket messages; DMA and completions stay in shared memory). The card itself runs in
//! the server in real time, so its throughput is not measured here; waiting for it is not
//! counted (the engine is polled, timed, with untimed pauses between polls). Host time is
//! this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): the server shares the machine, and
//! wall time would count this thread's waits for a core as the engine's cost.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use espo_config::Config;
use espo_driver::card::{Card, CardConfig};
use espo_driver::vfio_user::port::PortPeer;
use espo_driver::vfio_user::{VfioUserDevice, VfioUserOptions};
use espo_ipsec::engine::Encapsulated;
use espo_offload::{OffloadEngine, OffloadOptions, Received, SentAs, card_config};

use super::model::Direction;

/// Packets per round.
const ROUND: usize = 256;
/// Untimed pause between two polls while the card works.
const PAUSE: Duration = Duration::from_micros(20);

/// CPU time this thread has used.
fn cpu_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// A stopwatch of this thread's CPU time.
struct Cpu(Duration);

impl Cpu {
    fn start() -> Self {
        Cpu(cpu_now())
    }

    fn elapsed(&self) -> Duration {
        cpu_now().saturating_sub(self.0)
    }
}

fn card(socket: &Path, size: usize) -> anyhow::Result<(Card, PortPeer)> {
    let dev = VfioUserDevice::connect(socket, VfioUserOptions::default()).with_context(|| {
        format!(
            "connecting to the card served at {} (is `espo card serve --socket {}` running?)",
            socket.display(),
            socket.display()
        )
    })?;
    let mut port = socket.as_os_str().to_owned();
    port.push(".port");
    let mut own = port.clone();
    own.push(format!(".bench-{}", std::process::id()));
    let peer = PortPeer::connect(port.as_ref(), own.as_ref())
        .context("connecting to the served card's port")?;
    let config = CardConfig {
        ring_log2: 10,
        buffer_bytes: (size as u32 + 256).clamp(2048, espo_offload::JUMBO_BUFFER_BYTES),
        ..card_config()
    };
    let card = Card::open(Arc::new(dev), config).context("bringing up the served card")?;
    Ok((card, peer))
}

/// Encapsulation through the served card for about `budget`.
pub fn encap(
    socket: &Path,
    tx_config: &Config,
    inner: &[u8],
    budget: Duration,
) -> anyhow::Result<Direction> {
    let (card, mut peer) = card(socket, inner.len())?;
    let mut engine = OffloadEngine::new(
        &tx_config.sas,
        &tx_config.policies,
        Some(card),
        OffloadOptions::default(),
    )?;
    let mut d = Direction::default();
    let mut reports = Vec::with_capacity(ROUND);
    let started = Instant::now();
    let mut tag = 0u64;
    while started.elapsed() < budget || d.packets == 0 {
        let t = Cpu::start();
        for _ in 0..ROUND {
            engine.submit(tag, inner);
            tag += 1;
        }
        engine.poll();
        d.host += t.elapsed();
        reports.clear();
        let deadline = Instant::now() + Duration::from_secs(5);
        while reports.len() < ROUND {
            let untimed = Instant::now();
            std::thread::sleep(PAUSE);
            while peer.recv().is_some() {}
            d.model += untimed.elapsed();
            let t = Cpu::start();
            engine.poll();
            engine.take_tx_reports(&mut reports);
            d.host += t.elapsed();
            if Instant::now() > deadline {
                bail!("the served card stopped completing packets");
            }
        }
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
    }
    Ok(d)
}

/// Decapsulation through the served card for about `budget`: a software sender makes the
/// frames and sends them to the card's port (untimed), the engine takes what it delivers.
pub fn decap(
    socket: &Path,
    tx_config: &Config,
    rx_config: &Config,
    inner: &[u8],
    budget: Duration,
) -> anyhow::Result<Direction> {
    let (card, peer) = card(socket, inner.len())?;
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
    let started = Instant::now();
    while started.elapsed() < budget || d.packets == 0 {
        let untimed = Instant::now();
        for _ in 0..ROUND {
            let Ok(Encapsulated::Protected { len, .. }) =
                sender.outbound.encapsulate(inner, &mut buf)
            else {
                bail!("the sender could not encapsulate the benchmark packet");
            };
            let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
            frame.extend_from_slice(&buf[..len]);
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Err(e) = peer.send(&frame) {
                if e.kind() != std::io::ErrorKind::WouldBlock || Instant::now() > deadline {
                    bail!("the served card's port does not take frames: {e}");
                }
                std::thread::sleep(PAUSE);
            }
        }
        d.model += untimed.elapsed();
        reports.clear();
        let deadline = Instant::now() + Duration::from_secs(5);
        while reports.len() < ROUND {
            let untimed = Instant::now();
            std::thread::sleep(PAUSE);
            d.model += untimed.elapsed();
            let t = Cpu::start();
            engine.poll();
            engine.take_rx_reports(&mut reports);
            d.host += t.elapsed();
            if Instant::now() > deadline {
                bail!("the served card stopped delivering frames");
            }
        }
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
    Ok(d)
}
