//! Cycle accounting: the pipeline stages, their occupancy, and the performance report.

use crate::calendar::Calendar;
use crate::params::TICKS_PER_CYCLE;

/// A pipeline stage whose occupancy the model accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// PCIe reads: descriptors, TX data, admin commands.
    PcieRead,
    /// PCIe writes: RX data, completions, events.
    PcieWrite,
    /// TX packet datapath (512-bit).
    DatapathTx,
    /// RX packet datapath (512-bit).
    DatapathRx,
    /// AES-GCM engines (occupancy averaged over the engines).
    Crypto,
    /// Port transmit.
    MacTx,
    /// Port receive.
    MacRx,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::PcieRead,
        Stage::PcieWrite,
        Stage::DatapathTx,
        Stage::DatapathRx,
        Stage::Crypto,
        Stage::MacTx,
        Stage::MacRx,
    ];
}

impl Stage {
    /// Whether both directions share the stage: its work is booked into free gaps (see
    /// [`Calendar`]); a stage of one direction serves its packets in order.
    fn shared(self) -> bool {
        matches!(self, Stage::PcieRead | Stage::PcieWrite)
    }
}

/// When each stage is next free, and how long it has been busy (ticks).
#[derive(Debug, Clone, Default)]
pub(crate) struct Resources {
    /// In-order stages: when each is next free.
    pub free: [u64; 7],
    pub busy: [u64; 7],
    /// Shared stages: their booked intervals.
    shared: [Calendar; 7],
    engines: Vec<Calendar>,
}

impl Resources {
    pub fn new(engines: u32) -> Self {
        Resources {
            free: [0; 7],
            busy: [0; 7],
            shared: Default::default(),
            engines: vec![Calendar::default(); engines.max(1) as usize],
        }
    }

    /// Occupies `stage` for `ticks` from no earlier than `ready`; returns the end tick.
    /// An in-order stage starts after the work booked before; a shared one at its first
    /// free gap.
    pub fn reserve(&mut self, stage: Stage, ready: u64, ticks: u64) -> u64 {
        let i = stage as usize;
        self.busy[i] += ticks;
        let start = if stage.shared() {
            let c = &mut self.shared[i];
            let start = c.fit(ready.max(self.free[i]), ticks);
            c.book(start, ticks);
            start
        } else {
            let start = ready.max(self.free[i]);
            self.free[i] = start + ticks;
            start
        };
        start + ticks
    }

    /// Forgets bookings over by `now`.
    pub fn retire(&mut self, now: u64) {
        self.shared.iter_mut().for_each(|c| c.retire(now));
        self.engines.iter_mut().for_each(|c| c.retire(now));
    }

    /// Makes the engines busy until `until` (a reset).
    pub fn block_engines_until(&mut self, until: u64) {
        self.engines.iter_mut().for_each(|c| c.block_until(until));
    }

    /// Counts `ticks` of bandwidth on `stage` for a request issued ahead of the data it
    /// describes (descriptor prefetch): it overlaps other transfers, so it does not
    /// delay them; returns when it completes.
    pub fn prefetch(&mut self, stage: Stage, ready: u64, ticks: u64) -> u64 {
        self.busy[stage as usize] += ticks;
        ready + ticks
    }

    /// Occupies the engine that can start first (the engines serve both directions, so
    /// at its first free gap); returns the end tick.
    pub fn reserve_engine(&mut self, ready: u64, ticks: u64) -> u64 {
        let n = self.engines.len() as u64;
        let Some((start, e)) = self
            .engines
            .iter_mut()
            .map(|c| (c.fit(ready, ticks), c))
            .min_by_key(|(start, _)| *start)
        else {
            return ready + ticks;
        };
        e.book(start, ticks);
        self.busy[Stage::Crypto as usize] += ticks.div_ceil(n.max(1));
        start + ticks
    }
}

/// Totals of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    pub packets: u64,
    /// Bytes of frames on the port (without FCS).
    pub frame_bytes: u64,
    /// Bytes the port occupied, preamble, FCS and inter-frame gap included.
    pub wire_bytes: u64,
    /// Inner packet bytes (what the host posted or received).
    pub inner_bytes: u64,
    pub latency_min_cycles: u64,
    pub latency_max_cycles: u64,
    pub latency_sum_cycles: u64,
}

impl DirectionStats {
    pub(crate) fn record(&mut self, frame: u64, wire: u64, inner: u64, latency_cycles: u64) {
        if self.packets == 0 || latency_cycles < self.latency_min_cycles {
            self.latency_min_cycles = latency_cycles;
        }
        self.latency_max_cycles = self.latency_max_cycles.max(latency_cycles);
        self.latency_sum_cycles += latency_cycles;
        self.packets += 1;
        self.frame_bytes += frame;
        self.wire_bytes += wire;
        self.inner_bytes += inner;
    }

    pub fn latency_mean_cycles(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.latency_sum_cycles as f64 / self.packets as f64
        }
    }
}

/// What the model measured since the last [`crate::Model::reset_perf`].
#[derive(Debug, Clone, Default)]
pub struct PerfReport {
    pub clock_hz: u64,
    /// First and last cycle with traffic.
    pub first_cycle: u64,
    pub last_cycle: u64,
    pub tx: DirectionStats,
    pub rx: DirectionStats,
    /// Busy cycles per stage.
    pub busy_cycles: Vec<(Stage, f64)>,
}

impl PerfReport {
    /// Cycles from the first to the last packet.
    pub fn elapsed_cycles(&self) -> u64 {
        self.last_cycle.saturating_sub(self.first_cycle).max(1)
    }

    fn gbps(&self, bytes: u64) -> f64 {
        bytes as f64 * 8.0 * self.clock_hz as f64 / self.elapsed_cycles() as f64 / 1e9
    }

    /// Port transmit rate, Gbit/s, counting the wire overhead (comparable to line rate).
    pub fn tx_line_gbps(&self) -> f64 {
        self.gbps(self.tx.wire_bytes)
    }

    /// Inner (plaintext) bytes sent per second, Gbit/s.
    pub fn tx_inner_gbps(&self) -> f64 {
        self.gbps(self.tx.inner_bytes)
    }

    pub fn rx_line_gbps(&self) -> f64 {
        self.gbps(self.rx.wire_bytes)
    }

    pub fn rx_inner_gbps(&self) -> f64 {
        self.gbps(self.rx.inner_bytes)
    }

    /// Fraction of the elapsed time each stage was busy.
    pub fn utilisation(&self) -> Vec<(Stage, f64)> {
        self.busy_cycles
            .iter()
            .map(|&(s, b)| (s, b / self.elapsed_cycles() as f64))
            .collect()
    }

    /// The busiest stage.
    pub fn bottleneck(&self) -> Option<(Stage, f64)> {
        self.utilisation()
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }
}

pub(crate) fn ticks_to_cycles(t: u64) -> u64 {
    t / TICKS_PER_CYCLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_serialises_and_engines_run_in_parallel() {
        let mut r = Resources::new(2);
        assert_eq!(r.reserve(Stage::MacTx, 0, 10), 10);
        assert_eq!(r.reserve(Stage::MacTx, 5, 10), 20, "waits for the stage");
        assert_eq!(r.reserve(Stage::MacTx, 50, 10), 60, "idle gap skipped");
        assert_eq!(r.reserve_engine(0, 8), 8);
        assert_eq!(r.reserve_engine(0, 8), 8, "second engine free");
        assert_eq!(r.reserve_engine(0, 8), 16);
        assert_eq!(r.busy[Stage::MacTx as usize], 30);
    }
}
