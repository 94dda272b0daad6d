//! The busy intervals of a unit that serves both directions (a PCIe direction, an AES-GCM
//! engine), so that work booked later in simulation order can still use an earlier idle
//! gap: the transmit and receive paths book their packets ahead of the clock, each in
//! its own bursts, and the hardware's arbiter serves them in time order.

use std::collections::VecDeque;

/// Disjoint busy intervals `[start, end)` in ticks, sorted by start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Calendar {
    busy: VecDeque<(u64, u64)>,
}

impl Calendar {
    /// The earliest start at or after `ready` with `ticks` free.
    pub fn fit(&self, ready: u64, ticks: u64) -> u64 {
        let mut t = ready;
        for &(s, e) in &self.busy {
            if e <= t {
                continue;
            }
            if s >= t + ticks {
                break;
            }
            t = e;
        }
        t
    }

    /// Books `[start, start + ticks)`; the caller found `start` with [`fit`](Self::fit).
    pub fn book(&mut self, start: u64, ticks: u64) {
        if ticks == 0 {
            return;
        }
        let at = self.busy.partition_point(|&(s, _)| s < start);
        self.busy.insert(at, (start, start + ticks));
    }

    /// Forgets the intervals over by `now` (nothing is booked before the clock).
    pub fn retire(&mut self, now: u64) {
        while self.busy.front().is_some_and(|&(_, e)| e <= now) {
            self.busy.pop_front();
        }
    }

    /// Makes the unit busy until `until` and forgets the rest (a reset).
    pub fn block_until(&mut self, until: u64) {
        self.busy.clear();
        self.busy.push_back((0, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_bookings_fill_earlier_gaps_without_overlap() {
        let mut c = Calendar::default();
        c.book(c.fit(0, 10), 10);
        c.book(c.fit(30, 10), 10);
        assert_eq!(c.fit(0, 10), 10, "the gap 10..30 holds 10 ticks");
        assert_eq!(c.fit(0, 25), 40, "but not 25");
        assert_eq!(c.fit(15, 15), 15);
        c.book(10, 20);
        assert_eq!(c.fit(0, 1), 40, "gap filled");
        c.retire(20);
        assert_eq!(c.busy.len(), 2);
        c.block_until(100);
        assert_eq!(c.fit(0, 5), 100);
    }
}
