//! Lifetime crossings on their way from the datapath to key management: the engines count
//! every SA's bytes and packets (the software engine for its SAs, the card for its own)
//! and report a soft or hard crossing once; key management renews the CHILD_SA at the soft
//! one and deletes it at the hard one.
//!
//! The feed is bounded: a datapath thread never waits on it. A crossing that does not fit
//! is counted and lost; the CHILD_SA is then renewed by its time limit instead.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use espo_ipsec::lifetime::LifetimeEvent;

/// How many crossings wait at most.
pub const FEED_CAPACITY: usize = 4096;

#[derive(Debug, Default)]
pub struct LifetimeFeed {
    queue: Mutex<VecDeque<LifetimeEvent>>,
    lost: AtomicU64,
}

impl LifetimeFeed {
    /// Hands a crossing over (never blocks for long: the lock is held only to move events).
    pub fn push(&self, event: LifetimeEvent) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= FEED_CAPACITY {
            self.lost.fetch_add(1, Ordering::Relaxed);
        } else {
            q.push_back(event);
        }
    }

    /// Takes every waiting crossing, oldest first.
    pub fn drain(&self, out: &mut Vec<LifetimeEvent>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        out.extend(q.drain(..));
    }

    /// Crossings that did not fit.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_ipsec::lifetime::LifetimeCause;
    use espo_ipsec::spec::Direction;

    fn event(spi: u32) -> LifetimeEvent {
        LifetimeEvent {
            spi,
            dir: Direction::Out,
            hard: false,
            cause: LifetimeCause::Bytes,
        }
    }

    #[test]
    fn crossings_come_out_in_order_and_a_full_feed_counts_what_it_loses() {
        let feed = LifetimeFeed::default();
        for spi in 0..FEED_CAPACITY as u32 + 3 {
            feed.push(event(spi));
        }
        assert_eq!(feed.lost(), 3);
        let mut out = Vec::new();
        feed.drain(&mut out);
        assert_eq!(out.len(), FEED_CAPACITY);
        assert_eq!(out[0].spi, 0);
        assert_eq!(out[FEED_CAPACITY - 1].spi, FEED_CAPACITY as u32 - 1);
        out.clear();
        feed.drain(&mut out);
        assert!(out.is_empty());
    }
}
