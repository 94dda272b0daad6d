//! Inbound anti-replay window (RFC 4303 §3.4.3 and Appendix A), kept as an RFC 6479 bitmap.
//!
//! Receive order, as RFC 4303 §3.4.3 asks: [`ReplayWindow::check`] first (infers the full
//! 64-bit sequence number and rejects replayed, stale and zero numbers without changing
//! anything), then the ICV check, then [`ReplayWindow::accept`], which marks the number and
//! slides the window. A forged packet therefore never moves the window.
//!
//! The bitmap is a ring of `u64` blocks whose count is a power of two, with one block more
//! than the window needs (RFC 6479 §2): sliding forward clears whole blocks and never
//! touches bits that are still inside the window, so every operation is O(1) amortised.
//! The bitmap is allocated once, when the window is created.
//!
//! With ESN the high half of the sequence number is inferred from the low half as in RFC
//! 4303 Appendix A2.2. With a window of 0 (replay checking disabled) inference still needs
//! a window; it then uses half the 32-bit space, picking the candidate closest to the
//! highest number seen.

use thiserror::Error;

/// Largest window, in packets.
pub const MAX_WINDOW_PACKETS: u32 = 65_536;

/// Inference window used with ESN when replay checking is disabled (window 0).
const DISABLED_INFERENCE_WINDOW: u32 = 1 << 31;

const BLOCK_BITS: u64 = u64::BITS as u64;

/// Why a sequence number is refused, or a window cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplayError {
    /// The number is inside the window and was already received.
    #[error("sequence number {seq} replayed")]
    Replayed {
        /// The full sequence number.
        seq: u64,
    },
    /// The number is left of the window (too old to tell).
    #[error("sequence number {seq} is left of the window")]
    Stale {
        /// The full sequence number, or for ESN numbers that cannot exist the low half.
        seq: u64,
    },
    /// Sequence number 0 is never sent (for ESN: the 64-bit value 0).
    #[error("sequence number 0 is never valid")]
    Zero,
    /// A number above 2^32-1 on an SA without ESN.
    #[error("sequence number {seq} is out of range without ESN")]
    OutOfRange {
        /// The sequence number.
        seq: u64,
    },
    /// The requested window is larger than supported.
    #[error("replay window of {window_packets} packets is larger than the maximum {max}")]
    WindowTooLarge {
        /// The requested size.
        window_packets: u32,
        /// [`MAX_WINDOW_PACKETS`].
        max: u32,
    },
    /// An imported [`ReplayState`] is inconsistent.
    #[error("invalid replay state: {reason}")]
    InvalidState {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The full state of a window, for moving an inbound SA between card and software.
///
/// The bitmap is independent of any implementation's layout: bit `k` (bit `k % 64` of word
/// `k / 64`) says whether `highest - k` was received, for `k` below `window_packets`. It
/// holds `window_packets.div_ceil(64)` words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayState {
    /// Highest sequence number received (0: none yet).
    pub highest: u64,
    /// Window size in packets (0: replay checking disabled).
    pub window_packets: u32,
    /// Whether the SA uses extended sequence numbers.
    pub esn: bool,
    /// Received numbers, relative to `highest` (see above).
    pub bitmap: Vec<u64>,
}

/// An inbound anti-replay window.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u64,
    window_packets: u32,
    esn: bool,
    /// Ring of blocks; bit `seq % 64` of block `(seq / 64) % blocks.len()` marks `seq`.
    blocks: Box<[u64]>,
}

impl ReplayWindow {
    /// A window of `window_packets` (0 disables replay checking) with nothing received.
    pub fn new(window_packets: u32, esn: bool) -> Result<Self, ReplayError> {
        if window_packets > MAX_WINDOW_PACKETS {
            return Err(ReplayError::WindowTooLarge {
                window_packets,
                max: MAX_WINDOW_PACKETS,
            });
        }
        let blocks = if window_packets == 0 {
            0
        } else {
            // One spare block so sliding never clears bits still in the window.
            (window_packets.div_ceil(u64::BITS) as usize + 1).next_power_of_two()
        };
        Ok(Self {
            highest: 0,
            window_packets,
            esn,
            blocks: vec![0; blocks].into_boxed_slice(),
        })
    }

    /// Highest sequence number accepted (0: none yet).
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Window size in packets.
    pub fn window_packets(&self) -> u32 {
        self.window_packets
    }

    /// Whether the SA uses extended sequence numbers.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Infers the full sequence number of a received packet from the 32 bits it carries and
    /// says whether it would be accepted. Changes nothing: call it before the ICV check.
    pub fn check(&self, seq_lo: u32) -> Result<u64, ReplayError> {
        let seq = self.infer(seq_lo)?;
        self.verdict(seq)?;
        Ok(seq)
    }

    /// Marks `seq` as received, sliding the window when it is the new highest. Call it only
    /// after the packet's ICV verified. Checks again, so a number that became a replay
    /// between `check` and `accept` is still refused.
    pub fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
        if !self.esn && seq > u64::from(u32::MAX) {
            return Err(ReplayError::OutOfRange { seq });
        }
        self.verdict(seq)?;
        if self.window_packets > 0 {
            if seq > self.highest {
                self.slide_to(seq);
            }
            let (block, bit) = self.position(seq);
            if let Some(word) = self.blocks.get_mut(block) {
                *word |= bit;
            }
        }
        self.highest = self.highest.max(seq);
        Ok(())
    }

    /// RFC 4303 Appendix A2.2 (ESN) or the low half as is (no ESN).
    fn infer(&self, seq_lo: u32) -> Result<u64, ReplayError> {
        if !self.esn {
            return match seq_lo {
                0 => Err(ReplayError::Zero),
                _ => Ok(u64::from(seq_lo)),
            };
        }
        let window = match self.window_packets {
            0 => DISABLED_INFERENCE_WINDOW,
            w => w,
        };
        let top_lo = self.highest as u32;
        let top_hi = (self.highest >> 32) as u32;
        let span = window - 1;
        let seq_hi = if top_lo >= span {
            // Case A: the window lies within one 2^32 subspace.
            if seq_lo >= top_lo - span {
                Some(top_hi)
            } else {
                top_hi.checked_add(1)
            }
        } else if seq_lo >= top_lo.wrapping_sub(span) {
            // Case B: the window spans two subspaces and seq_lo is in the lower one.
            top_hi.checked_sub(1)
        } else {
            Some(top_hi)
        };
        match seq_hi {
            // Before the first subspace or past the last: cannot be a live number.
            None => Err(ReplayError::Stale {
                seq: u64::from(seq_lo),
            }),
            Some(hi) => match (u64::from(hi) << 32) | u64::from(seq_lo) {
                0 => Err(ReplayError::Zero),
                seq => Ok(seq),
            },
        }
    }

    /// Whether a full sequence number would be accepted now.
    fn verdict(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if self.window_packets == 0 || seq > self.highest {
            return Ok(());
        }
        if self.highest - seq >= u64::from(self.window_packets) {
            return Err(ReplayError::Stale { seq });
        }
        let (block, bit) = self.position(seq);
        match self.blocks.get(block) {
            Some(word) if word & bit != 0 => Err(ReplayError::Replayed { seq }),
            _ => Ok(()),
        }
    }

    /// Block index and bit mask of `seq` in the ring.
    fn position(&self, seq: u64) -> (usize, u64) {
        let mask = (self.blocks.len() as u64).saturating_sub(1);
        (
            ((seq / BLOCK_BITS) & mask) as usize,
            1 << (seq % BLOCK_BITS),
        )
    }

    /// Moves the highest to `seq` (> highest), clearing the blocks it passes (RFC 6479 §3).
    fn slide_to(&mut self, seq: u64) {
        let current = self.highest / BLOCK_BITS;
        let target = seq / BLOCK_BITS;
        let count = (target - current).min(self.blocks.len() as u64);
        let mask = (self.blocks.len() as u64).saturating_sub(1);
        for step in 1..=count {
            let index = (current.wrapping_add(step) & mask) as usize;
            if let Some(word) = self.blocks.get_mut(index) {
                *word = 0;
            }
        }
        self.highest = seq;
    }

    /// Exports the full state.
    pub fn state(&self) -> ReplayState {
        let window = u64::from(self.window_packets);
        let mut bitmap = vec![0u64; window.div_ceil(BLOCK_BITS) as usize];
        // Numbers at or below 0 do not exist.
        for k in 0..window.min(self.highest) {
            let seq = self.highest - k;
            let (block, bit) = self.position(seq);
            let received = self.blocks.get(block).is_some_and(|word| word & bit != 0);
            if let (true, Some(word)) = (received, bitmap.get_mut((k / BLOCK_BITS) as usize)) {
                *word |= 1 << (k % BLOCK_BITS);
            }
        }
        ReplayState {
            highest: self.highest,
            window_packets: self.window_packets,
            esn: self.esn,
            bitmap,
        }
    }

    /// Counts every number up to `mark` as received, whatever the window held — what a
    /// durable record says was accepted before a restart; numbers above `mark` stay as
    /// they were. The top moves up to `mark` if it was below. A number left of the window
    /// is refused as stale in any case.
    pub fn close_at(&mut self, mark: u64) -> Result<(), ReplayError> {
        let mut state = self.state();
        // Bit k stands for `top - k`; at or below the mark means k >= top - mark.
        let top = state.highest.max(mark);
        let first = top - mark;
        let live = u64::from(state.window_packets).min(top);
        if top > state.highest {
            state.bitmap.iter_mut().for_each(|w| *w = 0);
        }
        state.highest = top;
        for k in first..live {
            if let Some(word) = state.bitmap.get_mut((k / BLOCK_BITS) as usize) {
                *word |= 1 << (k % BLOCK_BITS);
            }
        }
        *self = Self::from_state(&state)?;
        Ok(())
    }

    /// Rebuilds a window from an exported state, after checking it is consistent: the
    /// bitmap has the right length, marks nothing outside the window or at or below 0, and
    /// marks the highest number itself once anything was received.
    pub fn from_state(state: &ReplayState) -> Result<Self, ReplayError> {
        let mut window = Self::new(state.window_packets, state.esn)?;
        let invalid = |reason| Err(ReplayError::InvalidState { reason });
        if !state.esn && state.highest > u64::from(u32::MAX) {
            return invalid("highest sequence number above 2^32-1 without ESN");
        }
        let size = u64::from(state.window_packets);
        if state.bitmap.len() as u64 != size.div_ceil(BLOCK_BITS) {
            return invalid("bitmap length does not match the window size");
        }
        let live = size.min(state.highest);
        for (index, &word) in state.bitmap.iter().enumerate() {
            for bit in 0..BLOCK_BITS {
                let k = index as u64 * BLOCK_BITS + bit;
                if word & (1 << bit) != 0 && k >= live {
                    return invalid("bitmap marks numbers outside the window");
                }
            }
        }
        let highest_marked = state.bitmap.first().is_some_and(|word| word & 1 != 0);
        if state.highest > 0 && size > 0 && !highest_marked {
            return invalid("the highest sequence number is not marked as received");
        }
        window.highest = state.highest;
        for k in 0..live {
            let marked = state
                .bitmap
                .get((k / BLOCK_BITS) as usize)
                .is_some_and(|word| word & (1 << (k % BLOCK_BITS)) != 0);
            if marked {
                let (block, bit) = window.position(state.highest - k);
                if let Some(word) = window.blocks.get_mut(block) {
                    *word |= bit;
                }
            }
        }
        Ok(window)
    }
}

impl core::fmt::Debug for ReplayWindow {
    /// Leaves out the bitmap, which can be thousands of words; [`ReplayWindow::state`]
    /// exports it.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest)
            .field("window_packets", &self.window_packets)
            .field("esn", &self.esn)
            .field(
                "received_in_window",
                &self.blocks.iter().map(|w| w.count_ones()).sum::<u32>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests;
