//! Timing parameters of the model (datasheet §14). Every stage's cost is a function of
//! these; the defaults are the ESPO-1 design point.

/// Sub-cycle resolution of the model's clock: stage costs are kept in 1/1024 cycle so
/// that fractional costs (the MAC moves 50 bytes per cycle) add up exactly.
pub const TICKS_PER_CYCLE: u64 = 1024;

/// Which way an engine runs a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Transmit: encapsulation, the padded plaintext encrypted.
    Encrypt,
    /// Receive: decapsulation, the ciphertext decrypted.
    Decrypt,
}

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
    /// Extra engine cycles per received packet (an engine that looks the SA up and reads
    /// its replay word itself); 0 where lookup and replay state are separate stages.
    pub engine_rx_extra_cycles: u64,
    /// The engine holds its packet while it streams in and out at the datapath width (one
    /// packet in flight, as the RTL core of §15): its occupancy adds the input and output
    /// beats. `false` on the design point, where buffering overlaps them.
    pub engine_holds_packet: bool,
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
            engine_rx_extra_cycles: 0,
            engine_holds_packet: false,
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

    /// The RTL core of datasheet §15 (fpga/rtl): one AES-GCM engine holding one packet at
    /// a time from its first input beat to its last output beat. Its cost per packet is
    /// `23 + in_beats + blocks + out_beats` cycles on transmit and 5 more on receive (SA
    /// lookup 3, replay word 2), §15.3: the 23 are SA read and checks 3, the hash subkey
    /// and tag-mask slots 2, AES pipeline and GHASH drain 17, finish 1. Everything outside
    /// the engine keeps the design point's figures.
    pub fn rtl_core() -> Self {
        ModelParams {
            engine_count: 1,
            engine_bytes_per_cycle: 16,
            engine_overhead_cycles: 23,
            engine_rx_extra_cycles: 5,
            engine_latency_cycles: 0,
            engine_holds_packet: true,
            ..ModelParams::default()
        }
    }

    /// Cycles an engine is occupied by one packet: `crypto_bytes` through AES-GCM (the
    /// padded plaintext on transmit, the ciphertext on receive: whole 16-byte blocks),
    /// `in_bytes` and `out_bytes` the frame entering and leaving the datapath.
    pub fn engine_cycles(
        &self,
        engine: Engine,
        crypto_bytes: u64,
        in_bytes: u64,
        out_bytes: u64,
    ) -> u64 {
        self.engine_ticks(engine, crypto_bytes, in_bytes, out_bytes)
            .div_ceil(TICKS_PER_CYCLE)
    }

    /// [`engine_cycles`](Self::engine_cycles) in ticks.
    pub(crate) fn engine_ticks(
        &self,
        engine: Engine,
        crypto_bytes: u64,
        in_bytes: u64,
        out_bytes: u64,
    ) -> u64 {
        const AES_BLOCK_BYTES: u64 = 16;
        let mut cycles = self.engine_overhead_cycles;
        if engine == Engine::Decrypt {
            cycles += self.engine_rx_extra_cycles;
        }
        if self.engine_holds_packet {
            let width = self.datapath_bytes_per_cycle.max(1);
            cycles += in_bytes.div_ceil(width) + out_bytes.div_ceil(width);
        }
        cycles * TICKS_PER_CYCLE
            + Self::ticks_for(
                crypto_bytes.next_multiple_of(AES_BLOCK_BYTES),
                self.engine_bytes_per_cycle,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_cycles_of_the_design_point_and_the_rtl_core() {
        let p = ModelParams::default();
        // 64-byte inner packet: 66 bytes of plaintext + padding = 5 blocks, + 2 slots.
        assert_eq!(p.engine_cycles(Engine::Encrypt, 66, 78, 142), 7);
        assert_eq!(p.engine_cycles(Engine::Decrypt, 80, 142, 78), 7);
        let r = ModelParams::rtl_core();
        // §15.3: 23 + in_beats + blocks + out_beats; receive 5 more.
        assert_eq!(
            r.engine_cycles(Engine::Encrypt, 66, 78, 142),
            23 + 2 + 5 + 3
        );
        assert_eq!(
            r.engine_cycles(Engine::Decrypt, 80, 142, 78),
            28 + 3 + 5 + 2
        );
        assert_eq!(r.engine_count, 1);
    }
}
