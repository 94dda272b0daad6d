//! Edge cases of the window, and a property test against a naive model.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

fn accept_all(window: &mut ReplayWindow, seqs: impl IntoIterator<Item = u64>) {
    for seq in seqs {
        window.accept(seq).unwrap();
    }
}

#[test]
fn zero_is_never_valid() {
    for (size, esn) in [(0, false), (64, false), (0, true), (64, true)] {
        let w = ReplayWindow::new(size, esn).unwrap();
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        let mut w = w;
        assert_eq!(w.accept(0), Err(ReplayError::Zero));
    }
}

#[test]
fn too_large_window_is_refused() {
    assert!(ReplayWindow::new(MAX_WINDOW_PACKETS, false).is_ok());
    let err = ReplayWindow::new(MAX_WINDOW_PACKETS + 1, false).unwrap_err();
    assert_eq!(
        err,
        ReplayError::WindowTooLarge {
            window_packets: MAX_WINDOW_PACKETS + 1,
            max: MAX_WINDOW_PACKETS
        }
    );
    assert!(err.to_string().contains("65536"));
}

#[test]
fn window_zero_disables_checking_but_tracks_highest() {
    let mut w = ReplayWindow::new(0, false).unwrap();
    accept_all(&mut w, [5, 5, 3, 1, 5]);
    assert_eq!(w.highest(), 5);
    assert_eq!(w.check(5), Ok(5));
    assert_eq!(w.check(1), Ok(1));
    assert_eq!(w.state().bitmap, Vec::<u64>::new());
}

#[test]
fn window_one_accepts_only_new_highest() {
    let mut w = ReplayWindow::new(1, false).unwrap();
    assert_eq!(w.check(7), Ok(7));
    w.accept(7).unwrap();
    assert_eq!(w.check(7), Err(ReplayError::Replayed { seq: 7 }));
    assert_eq!(w.check(6), Err(ReplayError::Stale { seq: 6 }));
    assert_eq!(w.check(8), Ok(8));
    w.accept(100).unwrap();
    assert_eq!(w.check(99), Err(ReplayError::Stale { seq: 99 }));
}

#[test]
fn window_64_edges() {
    let mut w = ReplayWindow::new(64, false).unwrap();
    w.accept(100).unwrap();
    // In window: 37..=100.
    assert_eq!(w.check(37), Ok(37));
    assert_eq!(w.check(36), Err(ReplayError::Stale { seq: 36 }));
    w.accept(37).unwrap();
    assert_eq!(w.check(37), Err(ReplayError::Replayed { seq: 37 }));
    assert_eq!(w.accept(37), Err(ReplayError::Replayed { seq: 37 }));
    // Slide by exactly one: 37 falls out.
    w.accept(101).unwrap();
    assert_eq!(w.check(37), Err(ReplayError::Stale { seq: 37 }));
    assert_eq!(w.check(38), Ok(38));
    // Early numbers are never stale while the highest is below the window size.
    let mut fresh = ReplayWindow::new(64, false).unwrap();
    fresh.accept(10).unwrap();
    assert_eq!(fresh.check(1), Ok(1));
}

#[test]
fn window_4096_and_odd_sizes() {
    for size in [4096, 65, 100, 1000, 63, 127, 129] {
        let mut w = ReplayWindow::new(size, false).unwrap();
        let top = u64::from(size) * 3 + 17;
        w.accept(top).unwrap();
        let oldest = top - u64::from(size) + 1;
        assert_eq!(w.check(oldest as u32), Ok(oldest), "size {size}");
        assert_eq!(
            w.check((oldest - 1) as u32),
            Err(ReplayError::Stale { seq: oldest - 1 }),
            "size {size}"
        );
        // Fill the whole window out of order, then every number in it is a replay.
        for seq in (oldest..top).rev() {
            w.accept(seq).unwrap();
        }
        for seq in oldest..=top {
            assert_eq!(
                w.check(seq as u32),
                Err(ReplayError::Replayed { seq }),
                "size {size}"
            );
        }
        // A jump of exactly the window size leaves only the new highest marked.
        w.accept(top + u64::from(size)).unwrap();
        for seq in top + 1..top + u64::from(size) {
            assert_eq!(w.check(seq as u32), Ok(seq), "size {size}");
        }
        // A jump far beyond the bitmap clears everything.
        w.accept(top + 1_000_000).unwrap();
        assert_eq!(w.check((top + 999_999) as u32), Ok(top + 999_999));
    }
}

#[test]
fn out_of_range_without_esn() {
    let mut w = ReplayWindow::new(64, false).unwrap();
    assert_eq!(
        w.accept(1 << 32),
        Err(ReplayError::OutOfRange { seq: 1 << 32 })
    );
    w.accept(u64::from(u32::MAX)).unwrap();
    assert_eq!(
        w.check(u32::MAX),
        Err(ReplayError::Replayed {
            seq: u64::from(u32::MAX)
        })
    );
}

#[test]
fn esn_infers_high_bits_across_2_32() {
    let mut w = ReplayWindow::new(64, true).unwrap();
    w.accept(0xffff_fff0).unwrap();
    // Case A, seq_lo wrapped: next subspace.
    assert_eq!(w.check(5), Ok(0x1_0000_0005));
    w.accept(0x1_0000_0005).unwrap();
    assert_eq!(w.highest(), 0x1_0000_0005);
    // Case B: a late packet from the previous subspace, still in the window.
    assert_eq!(w.check(0xffff_fff1), Ok(0xffff_fff1));
    assert_eq!(
        w.check(0xffff_fff0),
        Err(ReplayError::Replayed { seq: 0xffff_fff0 })
    );
    // Left of the window in the previous subspace.
    assert_eq!(
        w.check(0xffff_ff00),
        Ok(0x1_ffff_ff00),
        "RFC 4303 A2.2 case B: below the window bottom means the current subspace"
    );
    // seq_lo 0 is fine with ESN once the high half is not 0.
    assert_eq!(w.check(0), Ok(0x1_0000_0000));
}

#[test]
fn esn_at_the_start_and_the_end() {
    let w = ReplayWindow::new(64, true).unwrap();
    // Before anything: numbers that would lie in subspace -1 cannot exist.
    assert!(matches!(
        w.check(0xffff_fff0),
        Err(ReplayError::Stale { .. })
    ));
    assert_eq!(w.check(1), Ok(1));
    let mut w = ReplayWindow::from_state(&ReplayState {
        highest: u64::MAX,
        window_packets: 64,
        esn: true,
        bitmap: vec![1],
    })
    .unwrap();
    // Past 2^64-1 nothing exists.
    assert!(matches!(w.check(0), Err(ReplayError::Stale { .. })));
    assert_eq!(w.check(u32::MAX - 1), Ok(u64::MAX - 1));
    w.accept(u64::MAX - 1).unwrap();
}

#[test]
fn esn_window_zero_infers_nearest() {
    let mut w = ReplayWindow::new(0, true).unwrap();
    w.accept(0x1_0000_0010).unwrap();
    assert_eq!(w.check(0x0f), Ok(0x1_0000_000f));
    assert_eq!(w.check(0xffff_fff0), Ok(0xffff_fff0));
    assert_eq!(w.check(0x7000_0000), Ok(0x1_7000_0000));
}

#[test]
fn check_changes_nothing() {
    let mut w = ReplayWindow::new(128, true).unwrap();
    accept_all(&mut w, [3, 9, 200]);
    let before = w.clone();
    for seq_lo in [0, 1, 3, 9, 72, 73, 200, 201, u32::MAX] {
        let _ = w.check(seq_lo);
    }
    assert_eq!(w, before);
}

#[test]
fn state_round_trip() {
    for (size, esn) in [
        (0, false),
        (1, true),
        (64, false),
        (100, true),
        (4096, false),
    ] {
        let mut w = ReplayWindow::new(size, esn).unwrap();
        assert_eq!(ReplayWindow::from_state(&w.state()).unwrap(), w);
        for seq in [50, 48, 40, 5000, 4999, 3000, 1000] {
            // Some of these are stale for the small windows; the state must still match.
            let _ = w.accept(seq);
        }
        let state = w.state();
        assert_eq!(state.highest, 5000);
        let back = ReplayWindow::from_state(&state).unwrap();
        assert_eq!(back.state(), state);
        for seq_lo in [1, 40, 48, 50, 999, 1000, 2999, 3000, 4998, 4999, 5000, 5001] {
            assert_eq!(
                back.check(seq_lo),
                w.check(seq_lo),
                "size {size} seq {seq_lo}"
            );
        }
    }
    // The bitmap format is relative to the highest: bit k is highest - k.
    let mut w = ReplayWindow::new(70, false).unwrap();
    accept_all(&mut w, [200, 199, 135, 131]);
    assert_eq!(
        w.state().bitmap,
        vec![0b11, 1 << (65 - 64) | 1 << (69 - 64)]
    );
}

#[test]
fn invalid_states_are_refused() {
    let base = ReplayState {
        highest: 100,
        window_packets: 64,
        esn: false,
        bitmap: vec![1],
    };
    assert!(ReplayWindow::from_state(&base).is_ok());
    let cases = [
        ReplayState {
            bitmap: vec![1, 0],
            ..base.clone()
        },
        ReplayState {
            bitmap: vec![],
            ..base.clone()
        },
        ReplayState {
            bitmap: vec![0],
            ..base.clone()
        },
        ReplayState {
            highest: 1 << 32,
            ..base.clone()
        },
        ReplayState {
            highest: 3,
            bitmap: vec![0b1001],
            ..base.clone()
        },
        ReplayState {
            window_packets: 10,
            bitmap: vec![1 << 10 | 1],
            ..base.clone()
        },
        ReplayState {
            highest: 0,
            ..base.clone()
        },
    ];
    for state in cases {
        assert!(
            matches!(
                ReplayWindow::from_state(&state),
                Err(ReplayError::InvalidState { .. })
            ),
            "{state:?}"
        );
    }
    assert!(matches!(
        ReplayWindow::from_state(&ReplayState {
            window_packets: 70_000,
            ..base
        }),
        Err(ReplayError::WindowTooLarge { .. })
    ));
}

/// A naive model: the set of accepted numbers, and the RFC rules written out directly.
struct Model {
    accepted: HashSet<u64>,
    highest: u64,
    window: u64,
    esn: bool,
}

impl Model {
    fn new(window: u32, esn: bool) -> Self {
        Self {
            accepted: HashSet::new(),
            highest: 0,
            window: u64::from(window),
            esn,
        }
    }

    /// RFC 4303 A2.2 stated as: the unique number congruent to seq_lo in
    /// [bottom, bottom + 2^32), bottom = highest - W + 1 (W = 2^31 when disabled).
    fn infer(&self, seq_lo: u32) -> Result<u64, ReplayError> {
        if !self.esn {
            return if seq_lo == 0 {
                Err(ReplayError::Zero)
            } else {
                Ok(u64::from(seq_lo))
            };
        }
        let w = if self.window == 0 {
            1i128 << 31
        } else {
            i128::from(self.window)
        };
        let bottom = i128::from(self.highest) - w + 1;
        let seq = bottom + (i128::from(seq_lo) - bottom).rem_euclid(1 << 32);
        if seq == 0 {
            Err(ReplayError::Zero)
        } else if seq < 0 || seq > i128::from(u64::MAX) {
            Err(ReplayError::Stale {
                seq: u64::from(seq_lo),
            })
        } else {
            Ok(seq as u64)
        }
    }

    fn verdict(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            Err(ReplayError::Zero)
        } else if !self.esn && seq > u64::from(u32::MAX) {
            Err(ReplayError::OutOfRange { seq })
        } else if self.window == 0 || seq > self.highest {
            Ok(())
        } else if self.highest - seq >= self.window {
            Err(ReplayError::Stale { seq })
        } else if self.accepted.contains(&seq) {
            Err(ReplayError::Replayed { seq })
        } else {
            Ok(())
        }
    }

    fn check(&self, seq_lo: u32) -> Result<u64, ReplayError> {
        let seq = self.infer(seq_lo)?;
        self.verdict(seq).map(|()| seq)
    }

    fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.verdict(seq)?;
        self.accepted.insert(seq);
        self.highest = self.highest.max(seq);
        Ok(())
    }

    fn bitmap(&self) -> Vec<u64> {
        let mut words = vec![0u64; self.window.div_ceil(64) as usize];
        for k in 0..self.window.min(self.highest) {
            if self.accepted.contains(&(self.highest - k)) {
                words[(k / 64) as usize] |= 1 << (k % 64);
            }
        }
        words
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A packet `delta` away from the current highest: check, then accept when
    /// `icv_ok` and the check passed.
    Receive { delta: i64, icv_ok: bool },
    /// `accept` called directly with a number relative to the highest.
    AcceptDirect { delta: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let delta = prop_oneof![
        6 => -200i64..200,
        2 => -5000i64..5000,
        1 => -(1i64 << 33)..(1i64 << 33),
    ];
    prop_oneof![
        8 => (delta.clone(), prop::bool::weighted(0.9))
            .prop_map(|(delta, icv_ok)| Op::Receive { delta, icv_ok }),
        1 => delta.prop_map(|delta| Op::AcceptDirect { delta }),
    ]
}

fn run(window: u32, esn: bool, start: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut real = ReplayWindow::new(window, esn).unwrap();
    let mut model = Model::new(window, esn);
    if start > 0 {
        real.accept(start).unwrap();
        model.accept(start).unwrap();
    }
    for op in ops {
        let target = |delta: i64| model.highest.saturating_add_signed(delta);
        match *op {
            Op::Receive { delta, icv_ok } => {
                let seq_lo = target(delta) as u32;
                let checked = real.check(seq_lo);
                prop_assert_eq!(checked, model.check(seq_lo), "check({:#x})", seq_lo);
                if let (Ok(seq), true) = (checked, icv_ok) {
                    prop_assert_eq!(real.accept(seq), model.accept(seq));
                }
            }
            Op::AcceptDirect { delta } => {
                let seq = target(delta);
                prop_assert_eq!(real.accept(seq), model.accept(seq), "accept({:#x})", seq);
            }
        }
        prop_assert_eq!(real.highest(), model.highest);
    }
    let state = real.state();
    prop_assert_eq!(&state.bitmap, &model.bitmap());
    prop_assert_eq!(ReplayWindow::from_state(&state).unwrap().state(), state);
    Ok(())
}

const SIZES: [u32; 10] = [0, 1, 2, 63, 64, 65, 100, 128, 1000, 4096];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_model_without_esn(
        size in prop::sample::select(SIZES.to_vec()),
        start in prop_oneof![Just(0u64), 1u64..10_000, (u64::from(u32::MAX) - 10_000)..=u64::from(u32::MAX)],
        ops in prop::collection::vec(op(), 1..200),
    ) {
        run(size, false, start, &ops)?;
    }

    #[test]
    fn matches_model_with_esn_across_2_32(
        size in prop::sample::select(SIZES.to_vec()),
        start in prop_oneof![
            Just(0u64),
            1u64..10_000,
            ((1u64 << 32) - 5_000)..((1u64 << 32) + 5_000),
            ((5u64 << 32) - 5_000)..((5u64 << 32) + 5_000),
            (u64::MAX - 10_000)..=u64::MAX,
        ],
        ops in prop::collection::vec(op(), 1..200),
    ) {
        run(size, true, start, &ops)?;
    }
}

#[test]
fn a_closed_window_refuses_everything_up_to_the_mark() {
    // Nothing received yet; closed at 100: 1..=100 refused, 101 on accepted.
    let mut w = ReplayWindow::new(64, false).unwrap();
    w.close_at(100).unwrap();
    assert_eq!(w.highest(), 100);
    assert!(matches!(w.check(100), Err(ReplayError::Replayed { .. })));
    assert!(matches!(w.check(37), Err(ReplayError::Replayed { .. })));
    assert!(matches!(w.check(36), Err(ReplayError::Stale { .. })));
    assert_eq!(w.check(101), Ok(101));
    // Received above the mark stays received, the gaps below it close.
    let mut w = ReplayWindow::new(64, false).unwrap();
    for s in [10, 12, 20] {
        w.accept(s).unwrap();
    }
    w.close_at(15).unwrap();
    assert_eq!(w.highest(), 20);
    assert!(matches!(w.check(11), Err(ReplayError::Replayed { .. })));
    assert!(matches!(w.check(15), Err(ReplayError::Replayed { .. })));
    assert_eq!(w.check(16), Ok(16), "above the mark, never received");
    assert!(matches!(w.check(20), Err(ReplayError::Replayed { .. })));
    // With ESN, across 2^32.
    let mut w = ReplayWindow::new(128, true).unwrap();
    w.close_at((1 << 32) + 5).unwrap();
    assert!(matches!(w.check(5), Err(ReplayError::Replayed { .. })));
    assert_eq!(w.check(6), Ok((1 << 32) + 6));
}
