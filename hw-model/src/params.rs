//! Timing parameters of the model (datasheet §14). Every stage's cost is a function of
//! these; the defaults are the ESPO-1 design point.

/// Sub-cycle resolution of the model's clock: stage costs are kept in 1/1024 cycle so
/// that fractional costs (the MAC moves 50 bytes per cycle) add up exactly.
pub const TICKS_PER_CYCLE: u64 = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelParams {
    /// Core clock.
    pub clock_hz: u64,
    /// Host write (doorbell) to the card seeing it.
    pub doorbell_latency_cycles: u64,
    /// Round trip of a DMA read (request to data), cycles.
    pub pcie_read_latency_cycles: u64,
    /// Posted DMA write to the data being visible in host memory, cycles.
    pub pcie_write_latency_cycles: u64,
    /// Payload bandwidth of each PCIe direction, bytes per cycle.
    pub pcie_bytes_per_cycle: u64,
    /// Fixed cost of one DMA transaction (TLP headers, credits), cycles.
    pub pcie_overhead_cycles: u64,
    /// TX descriptors fetched per DMA read.
    pub desc_fetch_batch: u32,
    /// SA table lookup latency, cycles (pipelined: one lookup per cycle).
    pub sa_lookup_cycles: u64,
    /// Width of the packet datapath, bytes per cycle (512 bits).
    pub datapath_bytes_per_cycle: u64,
    /// Cycles between packets on the datapath (header insertion / removal beat).
    pub datapath_gap_cycles: u64,
    /// AES-GCM engines.
    pub engine_count: u32,
    /// Bytes per cycle of one engine (one AES block).
    pub engine_bytes_per_cycle: u64,
    /// Extra engine cycles per packet (AAD and length blocks).
    pub engine_overhead_cycles: u64,
    /// Pipeline latency of an engine, cycles.
    pub engine_latency_cycles: u64,
    /// Port line rate, bits per cycle (100 Gbit/s at 250 MHz = 400).
    pub mac_bits_per_cycle: u64,
    /// Bytes on the wire per frame beyond the frame itself: preamble+SFD 8, FCS 4, IFG 12.
    pub mac_overhead_bytes: u64,
    /// Packets one direction may have between descriptor fetch and completion.
    pub pipeline_depth: u32,
    /// Received frames held while no RX buffer is free; beyond it the port pauses the link.
    pub rx_fifo_frames: usize,
    /// Admin command execution, cycles.
    pub admin_cycles: u64,
    /// Reset duration, cycles.
    pub reset_cycles: u64,
    /// Engine watchdog: a hung engine is reported this long after it stopped, cycles.
    pub watchdog_cycles: u64,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            clock_hz: 250_000_000,
            doorbell_latency_cycles: 50,
            pcie_read_latency_cycles: 200,
            pcie_write_latency_cycles: 100,
            pcie_bytes_per_cycle: 100,
            pcie_overhead_cycles: 1,
            desc_fetch_batch: 8,
            sa_lookup_cycles: 4,
            datapath_bytes_per_cycle: 64,
            datapath_gap_cycles: 1,
            engine_count: 4,
            engine_bytes_per_cycle: 16,
            engine_overhead_cycles: 2,
            engine_latency_cycles: 30,
            mac_bits_per_cycle: 400,
            mac_overhead_bytes: 24,
            pipeline_depth: 256,
            rx_fifo_frames: 256,
            admin_cycles: 50,
            reset_cycles: 2_500,
            watchdog_cycles: 250_000,
        }
    }
}

impl ModelParams {
    /// Every latency zero and every bandwidth unbounded: the card costs nothing, so that a
    /// host-side benchmark measures only the host.
    pub fn zero_latency() -> Self {
        ModelParams {
            doorbell_latency_cycles: 0,
            pcie_read_latency_cycles: 0,
            pcie_write_latency_cycles: 0,
            pcie_bytes_per_cycle: 1 << 20,
            pcie_overhead_cycles: 0,
            sa_lookup_cycles: 0,
            datapath_bytes_per_cycle: 1 << 20,
            datapath_gap_cycles: 0,
            engine_bytes_per_cycle: 1 << 20,
            engine_overhead_cycles: 0,
            engine_latency_cycles: 0,
            mac_bits_per_cycle: 1 << 30,
            mac_overhead_bytes: 0,
            admin_cycles: 0,
            reset_cycles: 0,
            ..ModelParams::default()
        }
    }

    /// Ticks to move `bytes` through a stage of `per_cycle` bytes per cycle (at least 0).
    pub(crate) fn ticks_for(bytes: u64, per_cycle: u64) -> u64 {
        (bytes * TICKS_PER_CYCLE).div_ceil(per_cycle.max(1))
    }

    /// Ticks the MAC needs for a frame of `frame_bytes` (without FCS).
    pub(crate) fn mac_ticks(&self, frame_bytes: u64) -> u64 {
        ((frame_bytes + self.mac_overhead_bytes) * 8 * TICKS_PER_CYCLE)
            .div_ceil(self.mac_bits_per_cycle.max(1))
    }

    /// Line rate in bit/s.
    pub fn line_rate_bps(&self) -> f64 {
        self.mac_bits_per_cycle as f64 * self.clock_hz as f64
    }
}
