//! `espo validate`: the card model passes, with and without faults; a card that damages
//! frames fails; cards that are not there fail clearly.

mod common;

use common::*;
use espo_driver::card::CardConfig;
use espo_harness::testbed::{CardUnderTest, ModelCard, TestCard, TestbedError};
use espo_harness::validate::{ValidateOptions, validate};
use espo_offload::Wire;

fn last_line(out: &str) -> &str {
    out.lines().last().unwrap_or("")
}

#[test]
fn the_model_passes_2000_packets() {
    let o = run(&["validate", "--engine", "model", "--packets", "2000"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert_eq!(
        last_line(&out),
        "validate: 2000 packets, 0 mismatches, 0 lost, 0 duplicated, 0 nonces reused"
    );
    assert!(out.contains("compared byte for byte"), "{out}");
    assert!(
        out.contains("software (aes-cbc-128 not in hardware)"),
        "{out}"
    );
    assert!(out.contains("card entry"), "{out}");
}

#[test]
fn the_model_passes_with_every_fault_injected() {
    let o = run(&[
        "validate",
        "--engine",
        "model",
        "--packets",
        "2000",
        "--faults",
        "--seed",
        "3",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert_eq!(
        last_line(&out),
        "validate: 2000 packets, 0 mismatches, 0 lost, 0 duplicated, 0 nonces reused"
    );
    assert!(
        out.contains(
            "7 injected (DroppedInterrupt, CorruptCompletion, IcvEngineError, DmaError, EngineHang, SurpriseReset, SurpriseRemoval)"
        ),
        "{out}"
    );
    assert!(out.contains("software (card gone)"), "{out}");
}

/// The model, its port damaging one frame in `every` that the card sends.
struct DamagingPort {
    inner: Box<dyn Wire>,
    every: u64,
    n: u64,
}

impl Wire for DamagingPort {
    fn send(&mut self, frame: &[u8]) -> bool {
        self.inner.send(frame)
    }
    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        let got = self.inner.recv(buf);
        if got {
            self.n += 1;
            if self.n.is_multiple_of(self.every) && buf.len() > 60 {
                let last = buf.len() - 1;
                buf[last] ^= 0x10;
            }
        }
        got
    }
}

struct DamagingCard;

impl CardUnderTest for DamagingCard {
    fn describe(&self) -> String {
        "a card that damages frames".into()
    }
    fn open(&mut self, config: CardConfig) -> Result<TestCard, TestbedError> {
        let mut t = ModelCard::default().open(config)?;
        t.port = Box::new(DamagingPort {
            inner: t.port,
            every: 50,
            n: 0,
        });
        Ok(t)
    }
}

#[test]
fn a_card_that_damages_frames_fails() {
    let options = ValidateOptions {
        packets: 600,
        ..ValidateOptions::default()
    };
    let report = validate(&options, &mut DamagingCard, &mut |_| {}).unwrap();
    assert!(!report.passed());
    assert!(report.mismatches > 0, "{}", report.summary_line());
}

#[test]
fn cards_that_are_not_there_fail_clearly() {
    let o = run(&["validate", "--engine", "vfio", "--pci", "0000:ff:1f.7"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("0000:ff:1f.7") && err.contains("VFIO"),
        "{err}"
    );
    let o = run(&["validate", "--engine", "vfio"]);
    assert!(
        !o.status.success() && stderr(&o).contains("--pci"),
        "{}",
        stderr(&o)
    );
}

/// Without the `rtl` feature, `--engine rtl` says how to get it.
#[cfg(not(feature = "rtl"))]
#[test]
fn the_rtl_engine_names_its_feature_when_left_out() {
    let o = run(&["validate", "--engine", "rtl"]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("--features rtl") && err.contains("Verilator"),
        "{err}"
    );
}
