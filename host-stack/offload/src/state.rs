//! SA state between the card and software (DESIGN.md, "Sequence numbers, IVs, and moving
//! an SA"; datasheet §8.5): the card's `SaState` (64-bit sequence number with the ESN high
//! half, byte/packet counters, expiry flags, window bitmap) against the software engine's
//! [`OutboundSa`]/[`InboundSa`] (sequence counter, [`ReplayWindow`], counters).
//!
//! Both bitmaps say the same thing — bit `k` set: `top - k` was received — the card's as
//! bytes (bit `k % 8` of byte `k / 8`), software's as 64-bit words. A window moves with
//! the intersection of both sizes; a number the two disagree about is always kept as
//! received (refusing an authentic packet once is acceptable, accepting a replay is not).

use espo_fpga::SaState;

use espo_ipsec::counters::SaCounters;
use espo_ipsec::replay::{ReplayError, ReplayState, ReplayWindow};
use espo_ipsec::sa::{InboundSa, OutboundSa};

/// Bits of the card's bitmap.
const CARD_BITMAP_BITS: u64 = 512 * 8;

/// Whether bit `k` of a card bitmap is set.
fn card_bit(bitmap: &[u8; 512], k: u64) -> bool {
    bitmap
        .get((k / 8) as usize)
        .is_some_and(|b| b & (1 << (k % 8)) != 0)
}

/// A software window of `window_packets` (ESN per `esn`) holding what the card's state
/// says was received: top `state.seq`, bits below it as far as both windows reach. The
/// top itself is marked received once anything was (a card written with a starting top
/// and nothing received since reports it unmarked).
pub fn replay_from_card(
    state: &SaState,
    window_packets: u32,
    esn: bool,
) -> Result<ReplayWindow, ReplayError> {
    let size = u64::from(window_packets);
    let mut bitmap = vec![0u64; size.div_ceil(64) as usize];
    let live = size
        .min(state.seq)
        .min(u64::from(state.window).max(1))
        .min(CARD_BITMAP_BITS);
    for k in 0..live {
        if card_bit(&state.bitmap, k)
            && let Some(word) = bitmap.get_mut((k / 64) as usize)
        {
            *word |= 1 << (k % 64);
        }
    }
    if state.seq > 0
        && let Some(first) = bitmap.first_mut()
    {
        *first |= 1;
    }
    ReplayWindow::from_state(&ReplayState {
        highest: state.seq,
        window_packets,
        esn,
        bitmap,
    })
}

/// The union of two windows of the same SA: the higher top, and every number either marks
/// as received. Used when the card's read-back and the host's record of what it delivered
/// are both known.
pub fn merge_windows(a: &ReplayWindow, b: &ReplayWindow) -> Result<ReplayWindow, ReplayError> {
    let (hi, lo) = if a.highest() >= b.highest() {
        (a.state(), b.state())
    } else {
        (b.state(), a.state())
    };
    let mut merged = hi.clone();
    let shift = hi.highest - lo.highest;
    let size = u64::from(hi.window_packets);
    for k in 0..u64::from(lo.window_packets).min(lo.highest) {
        let received = lo
            .bitmap
            .get((k / 64) as usize)
            .is_some_and(|w| w & (1 << (k % 64)) != 0);
        let at = k + shift;
        if received
            && at < size.min(hi.highest)
            && let Some(word) = merged.bitmap.get_mut((at / 64) as usize)
        {
            *word |= 1 << (at % 64);
        }
    }
    ReplayWindow::from_state(&merged)
}

/// The card state that moves an outbound software SA onto the card: its last sequence
/// number and its counters (so lifetimes continue exactly).
pub fn card_state_outbound(sa: &OutboundSa, soft_crossed: bool) -> SaState {
    SaState {
        seq: sa.seq(),
        bytes: sa.counters.bytes,
        packets: sa.counters.packets,
        valid: true,
        soft_expired: soft_crossed,
        ..SaState::default()
    }
}

/// The card state that moves an inbound software SA onto the card: window top and bitmap
/// (as far as the card's bitmap reaches), counters.
pub fn card_state_inbound(sa: &InboundSa, soft_crossed: bool) -> SaState {
    let window = sa.replay.state();
    let mut state = SaState {
        seq: window.highest,
        bytes: sa.counters.bytes,
        packets: sa.counters.packets,
        valid: true,
        soft_expired: soft_crossed,
        window: window.window_packets,
        ..SaState::default()
    };
    let live = u64::from(window.window_packets)
        .min(window.highest)
        .min(CARD_BITMAP_BITS);
    for k in 0..live {
        let received = window
            .bitmap
            .get((k / 64) as usize)
            .is_some_and(|w| w & (1 << (k % 64)) != 0);
        if received && let Some(byte) = state.bitmap.get_mut((k / 8) as usize) {
            *byte |= 1 << (k % 8);
        }
    }
    state
}

/// Counters as the card reports them.
pub fn counters_of(state: &SaState) -> SaCounters {
    SaCounters {
        packets: state.packets,
        bytes: state.bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window_with(size: u32, esn: bool, seqs: &[u64]) -> ReplayWindow {
        let mut w = ReplayWindow::new(size, esn).unwrap();
        for &s in seqs {
            let _ = w.accept(s);
        }
        w
    }

    fn card_state_of(w: &ReplayWindow) -> SaState {
        let mut s = SaState {
            seq: w.highest(),
            window: w.window_packets(),
            valid: true,
            ..SaState::default()
        };
        let st = w.state();
        for k in 0..u64::from(st.window_packets).min(st.highest) {
            if st.bitmap[(k / 64) as usize] & (1 << (k % 64)) != 0 {
                s.bitmap[(k / 8) as usize] |= 1 << (k % 8);
            }
        }
        s
    }

    #[test]
    fn a_fresh_top_from_the_card_is_marked_received() {
        let state = SaState {
            seq: 500,
            window: 64,
            valid: true,
            ..SaState::default()
        };
        let w = replay_from_card(&state, 64, false).unwrap();
        assert_eq!(w.highest(), 500);
        assert!(
            w.check(500).is_err(),
            "the top is refused, never accepted twice"
        );
        assert!(w.check(499).is_ok());
        assert!(w.check(501).is_ok());
    }

    #[test]
    fn esn_top_keeps_its_high_half() {
        let top = (3u64 << 32) | 7;
        let state = SaState {
            seq: top,
            window: 128,
            valid: true,
            ..SaState::default()
        };
        let w = replay_from_card(&state, 128, true).unwrap();
        assert_eq!(w.highest(), top);
        assert_eq!(w.check(8).unwrap(), (3 << 32) | 8);
        assert_eq!(
            w.check(u32::MAX - 3).unwrap(),
            (2 << 32) | u64::from(u32::MAX - 3)
        );
    }

    proptest! {
        #[test]
        fn card_and_software_windows_decide_alike(
            size in prop::sample::select(vec![32u32, 64, 100, 1024, 4096]),
            seqs in prop::collection::vec(1u64..6000, 1..300),
            probes in prop::collection::vec(1u64..6100, 1..100),
        ) {
            let sw = window_with(size, false, &seqs);
            // software -> card image -> software
            let mut sa_state = card_state_of(&sw);
            let back = replay_from_card(&sa_state, size, false).unwrap();
            for &p in &probes {
                prop_assert_eq!(sw.check(p as u32).is_ok(), back.check(p as u32).is_ok(), "probe {}", p);
            }
            // a smaller software window keeps a subset, never accepting what the card refused
            sa_state.window = size;
            let small = replay_from_card(&sa_state, 32, false).unwrap();
            for &p in &probes {
                if sw.check(p as u32).is_err() && p + 32 > sw.highest() {
                    prop_assert!(small.check(p as u32).is_err());
                }
            }
        }

        #[test]
        fn merging_refuses_what_either_refuses(
            a_seqs in prop::collection::vec(1u64..3000, 1..200),
            b_seqs in prop::collection::vec(1u64..3000, 1..200),
            probes in prop::collection::vec(1u64..3100, 1..100),
        ) {
            let a = window_with(256, false, &a_seqs);
            let b = window_with(256, false, &b_seqs);
            let m = merge_windows(&a, &b).unwrap();
            prop_assert_eq!(m.highest(), a.highest().max(b.highest()));
            for &p in &probes {
                if a.check(p as u32).is_err() || b.check(p as u32).is_err() {
                    // Refused by one: refused by the merge too, unless it fell off the left.
                    prop_assert!(m.check(p as u32).is_err());
                }
            }
        }
    }
}
