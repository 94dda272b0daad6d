//! The validation loop: rounds of traffic (a burst out, a burst in), now and then an SA
//! moved or a fault injected mid-round, the engine driven until every packet of the round
//! is accounted for, then everything compared.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use espo_driver::card::IrqMode;
use espo_driver::model::{FaultKind, FaultTrigger};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::traffic::{self, Side, Tunnel};
use super::{Progress, ValidateError, ValidateOptions, ValidateReport};
use crate::testbed::{CardUnderTest, FaultInjector};
use espo_config::Config;
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::{Decapsulated, SoftwareEngine};
use espo_offload::{
    CardMode, ManualClock, MemWire, OffloadEngine, OffloadOptions, Placement, RxReport, TxReport,
    Wire, card_config,
};

/// Every fault kind, the removal last (nothing of the card is left after it).
const FAULT_ORDER: [FaultKind; 7] = [
    FaultKind::DroppedInterrupt,
    FaultKind::CorruptCompletion,
    FaultKind::IcvEngineError,
    FaultKind::DmaError,
    FaultKind::EngineHang,
    FaultKind::SurpriseReset,
    FaultKind::SurpriseRemoval,
];

/// Polls without progress before a round is closed.
const QUIET_POLLS: u32 = 4000;

/// A received frame as the reference saw it.
pub(super) struct Expected {
    pub key: Option<(u32, u32)>,
    pub verdict: Result<Decapsulated, DropReason>,
    /// The reference's inner (or bypass) packet.
    pub packet: Vec<u8>,
    pub round: u64,
}

pub(super) struct Harness {
    pub rng: StdRng,
    pub out: Vec<Tunnel>,
    pub inb: Vec<Tunnel>,
    pub sut: OffloadEngine,
    pub port: Box<dyn Wire>,
    pub fallback: MemWire,
    pub faults: Option<Box<dyn FaultInjector>>,
    pub reference: SoftwareEngine,
    pub peer_tx: SoftwareEngine,
    pub peer_rx: SoftwareEngine,
    pub report: ValidateReport,
    /// Inner packets sent, by tag (= identity).
    pub sent: HashMap<u64, Vec<u8>>,
    pub tx_outcome: HashMap<u64, TxReport>,
    /// Frames seen on the wire per identity (IP packets).
    pub wire: HashMap<u64, Vec<Vec<u8>>>,
    /// (SPI, sequence number) of every ESP packet on the wire, with a digest of its bytes.
    pub nonces: HashMap<(u32, u64), u64>,
    pub expected: VecDeque<Expected>,
    pub delivered_ids: HashMap<u32, String>,
    /// Keys of frames lost inside a faulted card.
    pub lost_keys: HashSet<(u32, u32)>,
    /// SAs with such frames.
    pub lost_spis: HashSet<u32>,
    /// Frames from the peer kept for replays, and frames held back for reordering.
    pub history: Vec<Vec<u8>>,
    pub held: Vec<(u64, Vec<u8>)>,
    pub next_tx: u64,
    pub next_rx: u32,
    pub round: u64,
    /// Rounds in which a fault struck (or may have).
    pub fault_rounds: HashSet<u64>,
    pub anonymous_drops: u64,
    /// A fault that stops the card was injected and has not been dealt with yet.
    pub fault_pending: bool,
}

fn config(text: &str, name: &str) -> Result<Config, ValidateError> {
    Config::parse(text, Path::new(name)).map_err(ValidateError::Config)
}

fn engine(c: &Config) -> Result<SoftwareEngine, ValidateError> {
    c.software_engine()
        .map_err(|e| ValidateError::Engine(Box::new(e)))
}

/// Runs a validation. See the module documentation.
pub fn run(
    options: &ValidateOptions,
    cut: &mut dyn CardUnderTest,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ValidateReport, ValidateError> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let out = traffic::outbound_tunnels(&mut rng);
    let inb = traffic::inbound_tunnels(&mut rng);
    let local = config(
        &traffic::config_text(&out, &inb, Side::Local),
        "validate-local.toml",
    )?;
    let peer = config(
        &traffic::config_text(&out, &inb, Side::Peer),
        "validate-peer.toml",
    )?;
    let mut card_cfg = card_config();
    card_cfg.irq = IrqMode::Interrupt {
        coalesce_packets: 8,
        coalesce_cycles: 500,
    };
    let testcard = cut.open(card_cfg)?;
    let (sut_end, test_end) = MemWire::pair();
    let engine_options = OffloadOptions {
        max_card_sas: Some(options.card_sas),
        max_recoveries: 100,
        fallback: Some(Box::new(sut_end)),
        clock: Arc::new(ManualClock::default()),
        ..OffloadOptions::default()
    };
    let sut = OffloadEngine::new(
        &local.sas,
        &local.policies,
        Some(testcard.card),
        engine_options,
    )
    .map_err(|e| ValidateError::Engine(Box::new(e)))?;
    let mut h = Harness {
        rng,
        out,
        inb,
        sut,
        port: testcard.port,
        fallback: test_end,
        faults: if options.faults {
            testcard.faults
        } else {
            None
        },
        reference: engine(&local)?,
        peer_tx: engine(&peer)?,
        peer_rx: engine(&peer)?,
        report: ValidateReport {
            card: cut.describe(),
            seed: options.seed,
            ..ValidateReport::default()
        },
        sent: HashMap::new(),
        tx_outcome: HashMap::new(),
        wire: HashMap::new(),
        nonces: HashMap::new(),
        expected: VecDeque::new(),
        delivered_ids: HashMap::new(),
        lost_keys: HashSet::new(),
        lost_spis: HashSet::new(),
        history: Vec::new(),
        held: Vec::new(),
        next_tx: 1,
        next_rx: 1 << 31,
        round: 0,
        fault_rounds: HashSet::new(),
        anonymous_drops: 0,
        fault_pending: false,
    };
    let expected_rounds = (options.packets / 48).max(FAULT_ORDER.len() as u64 + 2);
    let mut fault_at: Vec<(u64, FaultKind)> = FAULT_ORDER
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            (
                expected_rounds * (k as u64 + 1) / (FAULT_ORDER.len() as u64 + 1),
                *kind,
            )
        })
        .collect();
    fault_at.reverse();
    while h.report.packets < options.packets {
        h.round += 1;
        let budget = options.packets - h.report.packets;
        let n_tx = h.rng.gen_range(1..=40u64).min(budget.div_ceil(2).max(1));
        let n_rx = h.rng.gen_range(1..=40u64).min(budget - n_tx.min(budget));
        if h.faults.is_some()
            && fault_at.last().is_some_and(|(r, _)| *r <= h.round)
            && let Some((_, kind)) = fault_at.pop()
        {
            h.inject_fault(kind, n_tx + n_rx);
        }
        let tags = h.send_burst(n_tx);
        let injected = h.receive_burst(n_rx);
        if options.migrations && h.rng.gen_bool(0.12) {
            h.move_something();
        }
        let (mut tx, rx) = h.drive(&tags, injected);
        h.collect_wire();
        // In submission order, the order the engine decided in: a drop decided when a
        // packet reached the ring is reported before the sends ahead of it complete.
        tx.sort_by_key(|r| r.tag);
        for r in tx {
            h.on_tx_report(r);
        }
        for r in rx {
            h.on_rx_report(r);
        }
        h.settle_round();
        progress(&Progress {
            packets: h.report.packets,
            total: options.packets,
            mismatches: h.report.mismatches,
            faults: h.report.faults_injected.len() as u64,
        });
    }
    h.finish();
    Ok(h.report)
}

impl Harness {
    /// Schedules a fault to strike within the next `within` packets.
    fn inject_fault(&mut self, kind: FaultKind, within: u64) {
        let Some(f) = self.faults.as_ref() else {
            return;
        };
        if self.sut.mode() == CardMode::Gone {
            return;
        }
        let at = self.rng.gen_range(1..=within.max(1));
        f.inject(kind, FaultTrigger::AtPacket(at));
        // A fault that stops the card counts from now until the engine has dealt with it
        // (it strikes at the n-th packet to enter the card, perhaps in a later round); the
        // others strike within a packet or two and cost no frame without a report.
        self.fault_pending = matches!(
            kind,
            FaultKind::DmaError
                | FaultKind::EngineHang
                | FaultKind::SurpriseReset
                | FaultKind::SurpriseRemoval
        );
        self.report.faults_injected.push(kind);
        self.fault_rounds.insert(self.round);
    }

    /// Moves a random card-capable SA the other way.
    fn move_something(&mut self) {
        let placements = self.sut.placements();
        let candidates: Vec<_> = placements
            .iter()
            .filter(|p| {
                matches!(p.placement, Placement::Card { .. })
                    || matches!(
                        p.why_software,
                        Some(espo_offload::SoftwareReason::Requested)
                    )
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let p = candidates[self.rng.gen_range(0..candidates.len())];
        let moved = match p.placement {
            Placement::Card { .. } => self.sut.move_to_software(p.spi, p.dir),
            Placement::Software => self.sut.move_to_card(p.spi, p.dir),
        };
        if moved {
            self.report.moves_requested += 1;
        }
    }

    /// Drives the engine until the round's packets are all reported, or nothing moves;
    /// returns the reports.
    fn drive(&mut self, tags: &[u64], injected: u64) -> (Vec<TxReport>, Vec<RxReport>) {
        let mut tx = Vec::new();
        let mut rx = Vec::new();
        let mut quiet = 0;
        let want_tx: HashSet<u64> = tags.iter().copied().collect();
        let mut events = Vec::new();
        while quiet < QUIET_POLLS {
            if self.fault_pending {
                self.fault_rounds.insert(self.round);
            }
            self.sut.wait(Duration::from_micros(20));
            self.sut.take_events(&mut events);
            if events
                .drain(..)
                .any(|e| matches!(e, espo_offload::EngineEvent::Fault { .. }))
            {
                self.fault_rounds.insert(self.round);
                self.fault_pending = false;
            }
            let before = (tx.len(), rx.len());
            self.sut.take_tx_reports(&mut tx);
            self.sut.take_rx_reports(&mut rx);
            let got_tx = tx.iter().filter(|r| want_tx.contains(&r.tag)).count();
            if got_tx >= want_tx.len()
                && rx.len() as u64 >= injected
                && self.sut.tx_outstanding() == 0
            {
                break;
            }
            quiet = if (tx.len(), rx.len()) == before {
                quiet + 1
            } else {
                0
            };
        }
        // A pause between bursts, as real traffic has: freed SA table entries rest
        // (`ENTRY_GRACE`) and waiting SAs move onto the card.
        self.sut.wait(Duration::from_micros(300));
        self.sut.take_tx_reports(&mut tx);
        self.sut.take_rx_reports(&mut rx);
        (tx, rx)
    }

    /// Frames that left on the card's port or the fallback wire.
    fn collect_wire(&mut self) {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        while self.port.recv(&mut buf) {
            frames.push(std::mem::take(&mut buf));
        }
        frames.extend(self.fallback.drain());
        for f in frames {
            self.on_wire(f);
        }
    }
}
