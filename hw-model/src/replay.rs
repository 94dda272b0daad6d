//! Anti-replay window (RFC 6479 ring of 64-bit words) and ESN inference (RFC 4303
//! Appendix A). The window is checked before the ICV and moved only after it.

/// The replay pre-check's answer for one sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not yet received and not left of the window.
    Fresh,
    /// Inside the window and already received (or 0, which is never sent).
    Replayed,
    /// Left of the window: too old to tell.
    Stale,
}

/// The inbound window of one SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    /// Window size in packets; 0 disables replay checking.
    size: u32,
    /// Highest authenticated sequence number (64-bit).
    top: u64,
    /// Ring of words; bit `s & 63` of word `(s >> 6) & mask` stands for sequence `s`.
    words: Vec<u64>,
}

impl ReplayWindow {
    pub fn new(size: u32) -> Self {
        let words = if size == 0 {
            0
        } else {
            ((size as usize).div_ceil(64) + 1).next_power_of_two()
        };
        ReplayWindow {
            size,
            top: 0,
            words: vec![0; words],
        }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn top(&self) -> u64 {
        self.top
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let mask = self.words.len().saturating_sub(1);
        (((seq >> 6) as usize) & mask, 1u64 << (seq & 63))
    }

    /// Whether `seq` may be accepted (not yet seen and not left of the window).
    #[cfg(test)]
    pub fn check(&self, seq: u64) -> bool {
        self.verdict(seq) == Verdict::Fresh
    }

    /// The replay pre-check of §7.8: 0 is never valid (a replay), a number left of the
    /// window is stale, one inside it that was already received a replay.
    pub fn verdict(&self, seq: u64) -> Verdict {
        if seq == 0 {
            return Verdict::Replayed;
        }
        if self.size == 0 || seq > self.top {
            return Verdict::Fresh;
        }
        if self.top - seq >= u64::from(self.size) {
            return Verdict::Stale;
        }
        let (w, bit) = self.slot(seq);
        if self.words.get(w).is_some_and(|word| word & bit == 0) {
            Verdict::Fresh
        } else {
            Verdict::Replayed
        }
    }

    /// Records an authenticated `seq` (call only after [`check`](Self::check) and the ICV).
    pub fn update(&mut self, seq: u64) {
        if self.size == 0 {
            self.top = self.top.max(seq);
            return;
        }
        if seq > self.top {
            let old_word = self.top >> 6;
            let new_word = seq >> 6;
            let n = self.words.len() as u64;
            let clear = (new_word - old_word).min(n);
            for i in 1..=clear {
                let (w, _) = self.slot((old_word + i) << 6);
                if let Some(word) = self.words.get_mut(w) {
                    *word = 0;
                }
            }
            self.top = seq;
        }
        let (w, bit) = self.slot(seq);
        if let Some(word) = self.words.get_mut(w) {
            *word |= bit;
        }
    }

    /// The window in the SA_STATE form: bit i set when `top - i` was received.
    pub fn export(&self, bitmap: &mut [u8; 512]) {
        *bitmap = [0; 512];
        if self.size == 0 || self.top == 0 {
            return;
        }
        for i in 0..u64::from(self.size).min(self.top) {
            let s = self.top - i;
            let (w, bit) = self.slot(s);
            if self.words.get(w).is_some_and(|word| word & bit != 0)
                && let Some(b) = bitmap.get_mut((i / 8) as usize)
            {
                *b |= 1 << (i % 8);
            }
        }
    }

    /// Restores a window exported by [`export`](Self::export) (possibly by another owner).
    pub fn import(&mut self, top: u64, bitmap: &[u8; 512]) {
        self.words.iter_mut().for_each(|w| *w = 0);
        self.top = top;
        if self.size == 0 {
            return;
        }
        for i in 0..u64::from(self.size).min(top) {
            if bitmap
                .get((i / 8) as usize)
                .is_some_and(|b| b & (1 << (i % 8)) != 0)
            {
                let (w, bit) = self.slot(top - i);
                if let Some(word) = self.words.get_mut(w) {
                    *word |= bit;
                }
            }
        }
    }
}

/// The full 64-bit sequence number of a packet carrying `seq_low`, given the window top
/// and size (RFC 4303 Appendix A.2). A disabled window infers over half the space.
/// `None` when the inferred high half would fall before the first 2^32 subspace or past
/// the last: no such number was ever sent, and the packet is stale (§7.8).
pub(crate) fn infer_esn(top: u64, window: u32, seq_low: u32) -> Option<u64> {
    let w = if window == 0 {
        1u64 << 31
    } else {
        u64::from(window)
    };
    let tl = top & 0xFFFF_FFFF;
    let th = (top >> 32) as u32;
    let sl = u64::from(seq_low);
    let seq_high = if tl >= w - 1 {
        // Case A: the window lies within one subspace.
        if sl >= tl - (w - 1) {
            Some(th)
        } else {
            th.checked_add(1)
        }
    } else {
        // Case B: the window spans two subspaces.
        let low_edge = (tl.wrapping_sub(w - 1)) & 0xFFFF_FFFF;
        if sl >= low_edge {
            th.checked_sub(1)
        } else {
            Some(th)
        }
    };
    Some((u64::from(seq_high?) << 32) | sl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_new_refuses_replays_and_old() {
        let mut w = ReplayWindow::new(64);
        assert!(!w.check(0), "sequence number 0 is never valid");
        for s in [1, 3, 2, 70] {
            assert!(w.check(s));
            w.update(s);
        }
        assert!(!w.check(3), "replay");
        assert!(w.check(10), "inside window, unseen");
        assert!(!w.check(6), "70 - 6 = 64: left of a 64-packet window");
        assert_eq!(w.verdict(6), Verdict::Stale);
        w.update(60);
        assert_eq!(w.verdict(60), Verdict::Replayed);
        assert_eq!(w.verdict(0), Verdict::Replayed);
        assert!(w.check(7));
        w.update(1000);
        assert!(!w.check(70));
        assert!(w.check(999));
    }

    #[test]
    fn export_import_round_trip_keeps_decisions() {
        let mut w = ReplayWindow::new(4096);
        for s in (1..5000u64).filter(|s| s % 3 != 0) {
            w.update(s);
        }
        let mut map = [0u8; 512];
        w.export(&mut map);
        let mut v = ReplayWindow::new(4096);
        v.import(w.top(), &map);
        for s in 800..5100u64 {
            assert_eq!(w.check(s), v.check(s), "seq {s}");
        }
    }

    proptest::proptest! {
        /// The ring of words decides exactly like a set of every sequence number seen.
        #[test]
        fn window_matches_a_reference_set(size in 1u32..300, seqs in proptest::collection::vec(1u64..2000, 1..400)) {
            let mut w = ReplayWindow::new(size);
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u64;
            for s in seqs {
                let expected = s > top || (top - s < u64::from(size) && !seen.contains(&s));
                proptest::prop_assert_eq!(w.check(s), expected, "seq {} top {} size {}", s, top, size);
                if expected {
                    w.update(s);
                    seen.insert(s);
                    top = top.max(s);
                }
            }
            let mut map = [0u8; 512];
            w.export(&mut map);
            let mut v = ReplayWindow::new(size);
            v.import(w.top(), &map);
            for s in 1..2100u64 {
                proptest::prop_assert_eq!(w.check(s), v.check(s));
            }
        }
    }

    #[test]
    fn esn_inference_follows_rfc4303_appendix_a() {
        let top = (1u64 << 32) + 10; // Th = 1, Tl = 10, window spans two subspaces
        assert_eq!(infer_esn(top, 64, 5), Some((1 << 32) + 5));
        assert_eq!(
            infer_esn(top, 64, 0xFFFF_FFF0),
            Some(0xFFFF_FFF0),
            "just before the wrap: Th - 1"
        );
        assert_eq!(
            infer_esn(0xFFFF_FFF0, 64, 3),
            Some((1 << 32) + 3),
            "past the wrap: Th + 1"
        );
        assert_eq!(infer_esn(0xFFFF_FFF0, 64, 0xFFFF_FFE0), Some(0xFFFF_FFE0));
        assert_eq!(
            infer_esn(10, 64, 0xFFFF_FFF0),
            None,
            "Th - 1 before the first subspace: never sent"
        );
        assert_eq!(
            infer_esn(u64::MAX - 5, 64, 3),
            None,
            "Th + 1 past the last subspace: never sent"
        );
    }
}
