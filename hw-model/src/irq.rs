//! Interrupts: MSI-X style vectors delivered to an [`InterruptSink`], with the card-side
//! mask, pending and coalescing state (datasheet §9).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Receives interrupt messages. Called from whichever thread runs the model.
pub trait InterruptSink: Send + Sync {
    fn fire(&self, vector: u32);
}

/// An [`InterruptSink`] that latches fired vectors and lets a thread wait for them.
#[derive(Debug, Default)]
pub struct InterruptLatch {
    state: Mutex<LatchState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct LatchState {
    fired: u64,
    counts: Vec<u64>,
    waiters: usize,
}

impl InterruptLatch {
    pub fn new() -> std::sync::Arc<Self> {
        std::sync::Arc::new(InterruptLatch::default())
    }

    /// Vectors fired since the last call, as a bitmask (bit v = vector v), clearing them.
    pub fn take(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut s.fired)
    }

    /// Waits until a vector fires or `timeout` passes; returns and clears the fired mask.
    pub fn wait(&self, timeout: Duration) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.waiters += 1;
        let (mut s, _) = self
            .cv
            .wait_timeout_while(s, timeout, |s| s.fired == 0)
            .unwrap_or_else(|p| p.into_inner());
        s.waiters -= 1;
        std::mem::take(&mut s.fired)
    }

    /// Messages received on `vector` in total.
    pub fn count(&self, vector: u32) -> u64 {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.counts.get(vector as usize).copied().unwrap_or(0)
    }
}

impl InterruptSink for InterruptLatch {
    fn fire(&self, vector: u32) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.fired |= 1u64 << (vector % 64);
        if s.counts.len() <= vector as usize {
            s.counts.resize(vector as usize + 1, 0);
        }
        if let Some(c) = s.counts.get_mut(vector as usize) {
            *c += 1;
        }
        if s.waiters > 0 {
            self.cv.notify_all();
        }
    }
}

/// Card-side interrupt state.
#[derive(Debug, Clone)]
pub(crate) struct IrqState {
    pub mask: u32,
    pub pending: u32,
    /// Completions not yet signalled, per vector.
    pub unsignalled: Vec<u32>,
    /// Coalescing timer armed, per vector.
    pub timer_armed: Vec<bool>,
    /// Messages fired (delivered or lost) per vector, for diagnostics.
    pub fired: Vec<u64>,
}

impl IrqState {
    pub fn new(vectors: usize, mask: u32) -> Self {
        IrqState {
            mask,
            pending: 0,
            unsignalled: vec![0; vectors],
            timer_armed: vec![false; vectors],
            fired: vec![0; vectors],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latch_collects_and_clears() {
        let l = InterruptLatch::new();
        l.fire(0);
        l.fire(3);
        l.fire(3);
        assert_eq!(l.take(), 0b1001);
        assert_eq!(l.take(), 0);
        assert_eq!(l.count(3), 2);
        assert_eq!(
            l.wait(Duration::from_millis(1)),
            0,
            "nothing fired: the wait times out"
        );
    }
}
