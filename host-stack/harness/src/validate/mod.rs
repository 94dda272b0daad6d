//! `espo validate`: the same seeded random traffic through a card under test — with the
//! offload engine and its software fallback around it — and through the software engine
//! as the reference, compared packet by packet and verdict by verdict.
//!
//! Outbound, each packet the engine sends is read back off the card's port (or the
//! fallback wire) by a peer that decrypts it, so its content is checked whatever happened;
//! where the reference can produce the same packet (same SA and sequence number;
//! deterministic algorithm) the bytes must be identical. After a fault or a move the
//! engine's sequence numbers may legitimately run ahead of the reference's: the reference
//! then skips ahead to the same number, so bytes stay comparable. Inbound, a peer sends
//! ESP for every tunnel, some of it reordered, replayed, corrupted, held back past the
//! window, re-addressed to an unknown SPI, ECN-marked, or unprotected; each frame goes to
//! the card's port and to the reference receiver, and their verdicts must agree.
//!
//! Invariants counted on top: a packet handed to the engine is delivered once or reported
//! dropped with a reason (`lost` otherwise), never delivered twice (`duplicated`), and no
//! (SPI, sequence number) of an ESP SA is ever sent with two different contents (`nonces
//! reused`). With faults, each kind of fault the card under test can inject is injected
//! mid-stream, the card removal last (the run then finishes in software over the fallback
//! wire).
//!
//! Differences that follow from a fault and are accounted for are not mismatches but are
//! reported: packets dropped as `device-error` (their fate unknown: never sent twice),
//! frames lost inside a card while it faulted, and verdicts that follow from those.

mod bursts;
mod check;
mod run;
pub mod traffic;

use std::fmt::Write as _;

use espo_driver::model::FaultKind;

use crate::testbed::{CardUnderTest, TestbedError};
use espo_ipsec::counters::DropCounters;
use espo_offload::{OffloadCounters, SaPlacement};

pub use run::run;

/// How to run a validation.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// Packets in total: sent (outbound) and received (inbound) frames.
    pub packets: u64,
    pub seed: u64,
    /// Inject every fault kind the card under test supports, mid-stream.
    pub faults: bool,
    /// SA table entries the engine may use: fewer than the card-capable SAs, so that some
    /// wait in software and move onto the card when room frees.
    pub card_sas: u32,
    /// Move SAs between card and software now and then, mid-stream.
    pub migrations: bool,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        Self {
            packets: 2000,
            seed: 1,
            faults: false,
            card_sas: 11,
            migrations: true,
        }
    }
}

/// Why a validation could not run (a mismatch is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Testbed(#[from] TestbedError),
    #[error("the generated configuration is invalid (a defect of validate itself)")]
    Config(#[source] espo_config::ConfigError),
    #[error("setting up the engines failed")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Progress, reported after every round of traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub packets: u64,
    pub total: u64,
    pub mismatches: u64,
    pub faults: u64,
}

/// What a validation found.
#[derive(Debug, Clone, Default)]
pub struct ValidateReport {
    pub card: String,
    pub seed: u64,
    /// Packets sent through the engine plus frames received by it.
    pub packets: u64,
    pub mismatches: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub nonces_reused: u64,
    pub tx: TxTally,
    pub rx: RxTally,
    /// Faults injected, in order.
    pub faults_injected: Vec<FaultKind>,
    /// Explicit moves requested mid-stream.
    pub moves_requested: u64,
    /// Differences that follow from faults and were accounted for (see the module docs).
    pub explained: u64,
    pub engine: OffloadCounters,
    pub placements: Vec<SaPlacement>,
    /// The first mismatches, described.
    pub examples: Vec<String>,
}

/// Outbound figures.
#[derive(Debug, Clone, Default)]
pub struct TxTally {
    pub submitted: u64,
    pub card: u64,
    pub software: u64,
    pub bypass: u64,
    pub dropped: DropCounters,
    /// Packets compared byte for byte with the reference.
    pub bytes_compared: u64,
    /// Packets whose content only could be compared (random IVs, or numbers the reference
    /// had already passed).
    pub content_compared: u64,
    /// Times the reference skipped ahead to the engine's sequence number.
    pub resynced: u64,
}

/// Inbound figures.
#[derive(Debug, Clone, Default)]
pub struct RxTally {
    pub injected: u64,
    pub delivered_card: u64,
    pub delivered_software: u64,
    pub bypassed: u64,
    /// Verdicts that agreed with the reference, drops included.
    pub agreed: u64,
    pub dropped: DropCounters,
    /// Frames lost inside a card while it faulted (never handed to the engine).
    pub lost_in_faulted_card: u64,
}

impl ValidateReport {
    /// The last line of `espo validate`'s output.
    pub fn summary_line(&self) -> String {
        format!(
            "validate: {} packets, {} mismatches, {} lost, {} duplicated, {} nonces reused",
            self.packets, self.mismatches, self.lost, self.duplicated, self.nonces_reused
        )
    }

    /// Whether the card under test passed.
    pub fn passed(&self) -> bool {
        self.mismatches == 0 && self.lost == 0 && self.duplicated == 0 && self.nonces_reused == 0
    }

    /// A human-readable account of the run, before the summary line.
    pub fn details(&self) -> String {
        let mut o = String::new();
        let t = &self.tx;
        let r = &self.rx;
        let e = &self.engine;
        let _ = writeln!(o, "validate: {} (seed {})", self.card, self.seed);
        let _ = writeln!(
            o,
            "  outbound {:>7} submitted: {} by the card, {} in software, {} bypass, {} dropped",
            t.submitted,
            t.card,
            t.software,
            t.bypass,
            t.dropped.total()
        );
        let _ = writeln!(
            o,
            "           {} compared byte for byte, {} by content, reference resynced {} times",
            t.bytes_compared, t.content_compared, t.resynced
        );
        for (reason, n) in t.dropped.nonzero() {
            let _ = writeln!(o, "           dropped {:<18} {n:>7}", reason.name());
        }
        let _ = writeln!(
            o,
            "  inbound  {:>7} frames: {} decapsulated by the card, {} in software, {} bypass, {} verdicts agreed",
            r.injected, r.delivered_card, r.delivered_software, r.bypassed, r.agreed
        );
        for (reason, n) in r.dropped.nonzero() {
            let _ = writeln!(o, "           dropped {:<18} {n:>7}", reason.name());
        }
        if !self.faults_injected.is_empty() {
            let kinds: Vec<String> = self
                .faults_injected
                .iter()
                .map(|k| format!("{k:?}"))
                .collect();
            let _ = writeln!(
                o,
                "  faults   {} injected ({}); {} handled, {} recoveries, {} SA fallbacks; {} frames lost inside the faulted card",
                self.faults_injected.len(),
                kinds.join(", "),
                e.faults,
                e.recoveries,
                e.fallbacks,
                r.lost_in_faulted_card
            );
            let _ = writeln!(
                o,
                "           {} packets resent (never taken by the card), {} of unknown fate dropped, {} differences explained by faults",
                e.tx_resent, e.tx_fate_unknown, self.explained
            );
        }
        let _ = writeln!(
            o,
            "  moves    {} requested; {} onto the card, {} to software",
            self.moves_requested, e.moves_to_card, e.moves_to_software
        );
        let _ = writeln!(o, "  placement at the end:");
        for p in &self.placements {
            let place = match p.placement {
                espo_offload::Placement::Card { sa_index } => format!("card entry {sa_index}"),
                espo_offload::Placement::Software => match p.why_software {
                    Some(why) => format!("software ({why})"),
                    None => "software".into(),
                },
            };
            let _ = writeln!(
                o,
                "    sa {:#010x} {:<3} {:<44} {:>7} packets",
                p.spi,
                p.dir.name(),
                place,
                p.counters.packets
            );
        }
        for x in &self.examples {
            let _ = writeln!(o, "  MISMATCH {x}");
        }
        o
    }
}

/// Runs a validation of `cut` (see [`run`]).
pub fn validate(
    options: &ValidateOptions,
    cut: &mut dyn CardUnderTest,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ValidateReport, ValidateError> {
    run(options, cut, progress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testbed::ModelCard;

    #[test]
    fn a_short_run_on_the_model_passes() {
        let options = ValidateOptions {
            packets: 400,
            ..ValidateOptions::default()
        };
        let report = validate(&options, &mut ModelCard::default(), &mut |_| {}).unwrap();
        assert!(
            report.passed(),
            "{}{}",
            report.details(),
            report.summary_line()
        );
        assert_eq!(report.packets, 400);
        assert_eq!(report.tx.submitted + report.rx.injected, 400);
        assert!(
            report.tx.card > 0 && report.tx.software > 0,
            "both paths ran"
        );
        assert!(report.tx.bytes_compared > 0 && report.rx.agreed > 0);
    }
}
