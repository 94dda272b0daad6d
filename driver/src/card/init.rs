//! Reset, initialisation and shutdown, step by step as datasheet §5 orders them.

use std::sync::Arc;
use std::time::Duration;

use espo_fpga::regs::{ctrl, irq, queue};

use super::admin::AdminQueue;
use super::bar::{self, Bar0, Blocks};
use super::caps::{self, DRIVER_KNOWN_FEATURES};
use super::error::CardError;
use super::events::EventQueue;
use super::fault::StallWatch;
use super::rx::RxQueue;
use super::sa_track::SaTrack;
use super::tx::TxQueue;
use super::{Card, CardConfig, CardState, CardStats, IrqMode, QueuePair, SaProgram, SaResults};
use crate::device::Device;

/// Polls `done` until it holds or `timeout` passes on the device's clock, relaxing between
/// polls.
pub(crate) fn poll_until(
    bar: &Bar0,
    timeout: Duration,
    mut done: impl FnMut(&Bar0) -> Result<bool, CardError>,
) -> Result<bool, CardError> {
    let device = bar.device();
    let deadline = device.now().saturating_add(timeout);
    loop {
        if done(bar)? {
            return Ok(true);
        }
        if device.now() >= deadline {
            return Ok(false);
        }
        device.relax();
    }
}

/// §5.2: write `CONTROL.RESET`, then poll `STATUS.READY`. Returns `RESET_COUNT` after it.
pub(crate) fn reset(bar: &Bar0, b: &Blocks, timeout: Duration) -> Result<u32, CardError> {
    bar.write32(b.ctrl(&ctrl::CONTROL), ctrl::control::RESET.mask() as u32)?;
    let ready = poll_until(bar, timeout, |bar| {
        let status = bar.read32(b.ctrl(&ctrl::STATUS))?;
        Ok(ctrl::status::READY.is_set(status.into()))
    })?;
    if !ready {
        return Err(CardError::ResetTimeout { timeout });
    }
    bar.read32(b.ctrl(&ctrl::RESET_COUNT))
}

fn check_config(config: &CardConfig, caps: &caps::Capabilities) -> Result<(), CardError> {
    if config.queue_pairs == 0 || u32::from(config.queue_pairs) > caps.queue_count {
        return Err(CardError::Unsupported("more queue pairs than QUEUE_COUNT"));
    }
    for log2 in [config.ring_log2, config.admin_log2, config.event_log2] {
        if !caps.ring_log2_ok(log2) {
            return Err(CardError::Unsupported("a ring size outside RING_SIZES"));
        }
    }
    if !(64..=u32::from(u16::MAX)).contains(&config.buffer_bytes) {
        return Err(CardError::Config("buffer_bytes must be 64..=65535"));
    }
    Ok(())
}

/// §5.1–§5.3, allocation, then §5.4–§5.9 through [`configure`].
pub(crate) fn open(device: Arc<dyn Device>, config: CardConfig) -> Result<Card, CardError> {
    let bar_len = device
        .bar_len(0)
        .ok_or(CardError::BlockChain("BAR0 is not mapped"))?;
    let bar = Bar0::new(Arc::clone(&device));
    // §5.1 identify: DEVICE_ID, the block chain, known types and major versions.
    let blocks = bar::discover(&bar, bar_len)?;
    let identity = caps::read_identity(&bar, &blocks)?;
    // §5.2 reset.
    let reset_count = reset(&bar, &blocks, config.reset_timeout)?;
    // §5.3 capabilities.
    let caps = caps::read_capabilities(&bar, &blocks)?;
    check_config(&config, &caps)?;
    let features = config
        .features
        .unwrap_or(caps.features & DRIVER_KNOWN_FEATURES);
    if features & !caps.features != 0 || features & !DRIVER_KNOWN_FEATURES != 0 {
        return Err(CardError::Unsupported(
            "features the card or the driver does not have",
        ));
    }
    let dev = device.as_ref();
    let buf_bytes = config.buffer_bytes as usize;
    let mut queues = Vec::with_capacity(config.queue_pairs.into());
    for q in 0..config.queue_pairs {
        queues.push(QueuePair {
            tx: TxQueue::new(dev, &blocks, q, config.ring_log2, buf_bytes)?,
            rx: RxQueue::new(dev, &blocks, q, config.ring_log2, buf_bytes)?,
            stall: StallWatch::default(),
        });
    }
    if let IrqMode::Interrupt { .. } = config.irq {
        device.enable_irqs(1 + u32::from(config.queue_pairs))?;
    }
    let mut card = Card {
        admin: AdminQueue::new(dev, config.admin_log2)?,
        events: EventQueue::new(dev, config.event_log2)?,
        bar,
        blocks,
        identity,
        caps,
        max_tx_frame: buf_bytes.min(caps.max_frame as usize),
        features,
        queues,
        sas: SaTrack::new(caps.sa_table_size),
        stats: CardStats::default(),
        state: CardState::Quiesced {
            scope: super::FaultScope::Card,
        },
        reset_count,
        eq_dropped: 0,
        last_health: device.now(),
        unreported: Vec::new(),
        config,
    };
    let results = configure(&mut card, &[])?;
    debug_assert!(results.is_empty());
    Ok(card)
}

/// §5.4–§5.9 on a card fresh out of reset; programs `sas` at §5.8 and returns each SA's
/// result. Leaves the card running.
pub(crate) fn configure(card: &mut Card, sas: &[SaProgram<'_>]) -> Result<SaResults, CardError> {
    let b = card.blocks;
    let bar = &card.bar;
    // §5.4 negotiate features.
    bar.write32(b.ctrl(&ctrl::DRIVER_FEATURES), card.features)?;
    // §5.5 admin and event rings (completion rings zero-filled).
    card.admin.program(bar, &b)?;
    card.events.program(bar, &b)?;
    // §5.6 interrupts: coalescing, then unmask the vectors serviced.
    let vectors = 1 + u32::from(card.queue_pairs());
    match card.config.irq {
        IrqMode::Poll => {}
        IrqMode::Interrupt {
            coalesce_packets,
            coalesce_cycles,
        } => {
            bar.write32(b.irq(&irq::COAL_PACKETS), coalesce_packets)?;
            bar.write32(b.irq(&irq::COAL_CYCLES), coalesce_cycles)?;
            let all = (1u64 << card.caps.vectors) - 1;
            let serviced = (1u64 << vectors) - 1;
            bar.write32(b.irq(&irq::INT_MASK), (all & !serviced) as u32)?;
        }
    }
    // The card reads host memory from ENABLE on.
    bar.device().set_bus_master(true)?;
    // §5.7 enable.
    bar.write32(b.ctrl(&ctrl::CONTROL), ctrl::control::ENABLE.mask() as u32)?;
    let status = bar.read32(b.ctrl(&ctrl::STATUS))?;
    if !ctrl::status::ENABLED.is_set(status.into()) {
        let fault_code = bar.read32(b.ctrl(&ctrl::FAULT_CODE))?;
        return Err(CardError::EnableRefused { fault_code });
    }
    card.reset_count = bar.read32(b.ctrl(&ctrl::RESET_COUNT))?;
    card.eq_dropped = 0;
    card.state = CardState::Running;
    // §5.8 program SAs.
    let mut results = Vec::with_capacity(sas.len());
    for p in sas {
        let r = card.sa_write(p.index, p.entry, p.state);
        if let Err(CardError::Removed) = r {
            return Err(CardError::Removed);
        }
        results.push((p.index, r));
    }
    // §5.9 queue pairs.
    for q in 0..card.queue_pairs() {
        start_queue(card, q)?;
    }
    card.last_health = card.bar.device().now();
    Ok(results)
}

/// §5.9 for one queue pair: rings registered, `Q_CTRL.ENABLE`, `Q_STATUS.ENABLED`
/// checked, every RX buffer posted.
pub(crate) fn start_queue(card: &mut Card, q: u16) -> Result<(), CardError> {
    let b = card.blocks;
    let now = card.bar.device().now();
    let Some(qp) = card.queues.get_mut(q as usize) else {
        return Err(CardError::NoSuchQueue {
            queue: q,
            queues: card.queues.len() as u16,
        });
    };
    let bar = &card.bar;
    qp.tx.program(bar)?;
    qp.rx.program(bar)?;
    qp.stall = StallWatch::start(qp.tx.completed_total, now);
    bar.write32(
        b.queue_reg(q, &queue::Q_CTRL),
        queue::q_ctrl::ENABLE.mask() as u32,
    )?;
    let status = bar.read32(b.queue_reg(q, &queue::Q_STATUS))?;
    if !queue::q_status::ENABLED.is_set(status.into()) {
        let fault_code = bar.read32(b.ctrl(&ctrl::FAULT_CODE))?;
        return Err(CardError::QueueEnableRefused {
            queue: q,
            fault_code,
        });
    }
    let entries = 1u32 << card.config.ring_log2;
    qp.rx.post(bar, entries)
}

/// §5.10: stop every queue pair, disable, reset, bus mastering off — best effort, bounded by
/// the configured timeouts, and nothing at all once the card is gone. The DMA regions are
/// unmapped afterwards, when the card's fields drop.
pub(crate) fn shutdown(card: &mut Card) {
    if card.bar.is_removed() || matches!(card.state, CardState::Lost { .. }) {
        return;
    }
    let b = card.blocks;
    let bar = &card.bar;
    for q in 0..card.queues.len() as u16 {
        let _ = bar.write32(b.queue_reg(q, &queue::Q_CTRL), 0);
        let _ = poll_until(bar, card.config.stop_timeout, |bar| {
            let s = bar.read32(b.queue_reg(q, &queue::Q_STATUS))?;
            Ok(queue::q_status::IDLE.is_set(s.into()))
        });
    }
    let _ = bar.write32(b.ctrl(&ctrl::CONTROL), 0);
    let _ = reset(bar, &b, card.config.reset_timeout);
    let _ = bar.device().set_bus_master(false);
}
