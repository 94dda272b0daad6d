//! Identification and capabilities (datasheet §5.1, §5.3, §6).

use espo_fpga::AlgId;
use espo_fpga::reg::Field;
use espo_fpga::regs::{cap, ident, irq};

use super::bar::{Bar0, Blocks};
use super::error::CardError;

/// Features this driver can use: the ESPO-1 feature bits (AH, bundles and transport mode
/// are never done in hardware).
pub const DRIVER_KNOWN_FEATURES: u32 = {
    let all = cap::features::ALL;
    let mut mask = 0u64;
    let mut i = 0;
    while i < all.len() {
        if all[i].lsb <= cap::features::INT_COALESCE.lsb {
            mask |= all[i].mask();
        }
        i += 1;
    }
    mask as u32
};

/// What the card says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// `DEVICE_ID` ("ESPO").
    pub device_id: u32,
    /// Hardware revision.
    pub revision: u32,
    /// Core clock, kHz.
    pub clock_khz: u32,
}

/// What the card does in hardware (CAP block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `CAP_ALGS`: bit n set when algorithm n is done in hardware.
    pub algs: u32,
    /// `CAP_FEATURES`.
    pub features: u32,
    /// SA table entries.
    pub sa_table_size: u32,
    /// Queue pairs.
    pub queue_count: u32,
    /// Smallest and largest ring, log2 entries.
    pub ring_min_log2: u32,
    /// Largest ring, log2 entries.
    pub ring_max_log2: u32,
    /// Largest anti-replay window, packets.
    pub replay_window_max: u32,
    /// Largest frame, bytes, without FCS.
    pub max_frame: u32,
    /// AES-GCM engines (informative).
    pub engines: u32,
    /// Interrupt vectors.
    pub vectors: u32,
}

impl Capabilities {
    /// Whether algorithm `alg` is done in hardware.
    pub fn has_alg(&self, alg: AlgId) -> bool {
        let bit = u32::from(alg.value());
        bit < 32 && self.algs & (1 << bit) != 0
    }

    /// Whether the card has feature `field` (one of `espo_fpga::regs::cap::features`).
    pub fn has_feature(&self, field: Field) -> bool {
        field.is_set(self.features.into())
    }

    /// Whether the ring size 2^`log2` is allowed.
    pub fn ring_log2_ok(&self, log2: u32) -> bool {
        (self.ring_min_log2..=self.ring_max_log2).contains(&log2)
    }
}

pub(crate) fn read_identity(bar: &Bar0, b: &Blocks) -> Result<Identity, CardError> {
    Ok(Identity {
        device_id: bar.read32(b.ident(&ident::DEVICE_ID))?,
        revision: bar.read32(b.ident(&ident::REVISION))?,
        clock_khz: bar.read32(b.ident(&ident::CLOCK_KHZ))?,
    })
}

/// Datasheet §5.3, with the sanity limits the driver relies on: a card claiming more than
/// these is refused rather than trusted with allocation sizes.
pub(crate) fn read_capabilities(bar: &Bar0, b: &Blocks) -> Result<Capabilities, CardError> {
    let sizes = u64::from(bar.read32(b.cap(&cap::RING_SIZES))?);
    let caps = Capabilities {
        algs: bar.read32(b.cap(&cap::CAP_ALGS))?,
        features: bar.read32(b.cap(&cap::CAP_FEATURES))?,
        sa_table_size: bar.read32(b.cap(&cap::SA_TABLE_SIZE))?,
        queue_count: bar.read32(b.cap(&cap::QUEUE_COUNT))?,
        ring_min_log2: cap::ring_sizes::MIN_LOG2.get(sizes) as u32,
        ring_max_log2: cap::ring_sizes::MAX_LOG2.get(sizes) as u32,
        replay_window_max: bar.read32(b.cap(&cap::REPLAY_WINDOW_MAX))?,
        max_frame: bar.read32(b.cap(&cap::MAX_FRAME))?,
        engines: cap::engines::COUNT.get(bar.read32(b.cap(&cap::ENGINES))?.into()) as u32,
        vectors: bar.read32(Blocks::at(b.irq, &irq::VECTOR_COUNT))?,
    };
    if caps.sa_table_size == 0 || caps.sa_table_size > 1 << 20 {
        return Err(CardError::Unsupported("SA_TABLE_SIZE outside 1..=2^20"));
    }
    if caps.queue_count == 0 || caps.queue_count > b.queue_count {
        return Err(CardError::Unsupported(
            "QUEUE_COUNT disagrees with the QUEUES block",
        ));
    }
    if caps.ring_min_log2 > caps.ring_max_log2 || caps.ring_max_log2 > 16 {
        return Err(CardError::Unsupported("RING_SIZES outside 2^0..=2^16"));
    }
    if !(64..=u32::from(u16::MAX)).contains(&caps.max_frame) {
        return Err(CardError::Unsupported("MAX_FRAME outside 64..=65535"));
    }
    if caps.vectors < 1 + caps.queue_count || caps.vectors > 32 {
        return Err(CardError::Unsupported(
            "fewer interrupt vectors than queue pairs + 1",
        ));
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_knows_the_espo1_features() {
        assert_eq!(u64::from(DRIVER_KNOWN_FEATURES), cap::features::ESPO1);
    }
}
