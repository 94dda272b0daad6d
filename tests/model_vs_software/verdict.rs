//! The verdicts of the two receivers, in terms both engines share.

use espo_fpga::{RxCompletion, Status};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::Decapsulated;

/// What a receiver did with one packet, in terms both engines share.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Inner {
        spi: u32,
        seq: u64,
        packet: Vec<u8>,
    },
    BadIcv,
    Replayed,
    Stale,
    UnknownSpi,
    EcnDrop,
    /// Anything else, named by the engine that said it (never equal across engines).
    Other(String),
}

impl Verdict {
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Inner { .. } => "inner",
            Verdict::BadIcv => "bad-icv",
            Verdict::Replayed => "replayed",
            Verdict::Stale => "stale",
            Verdict::UnknownSpi => "unknown-spi",
            Verdict::EcnDrop => "ecn-drop",
            Verdict::Other(_) => "other",
        }
    }

    pub fn from_card(c: &RxCompletion, data: &[u8]) -> Verdict {
        match c.status {
            Status::Ok if c.decapsulated => Verdict::Inner {
                spi: c.spi,
                seq: c.seq,
                packet: data.get(14..).unwrap_or(&[]).to_vec(),
            },
            Status::IcvFail => Verdict::BadIcv,
            Status::Replay => Verdict::Replayed,
            Status::Stale => Verdict::Stale,
            Status::NoSa => Verdict::UnknownSpi,
            Status::EcnDrop => Verdict::EcnDrop,
            s => Verdict::Other(format!("card {s:?}")),
        }
    }

    pub fn from_software(r: Result<Decapsulated, DropReason>, buf: &[u8]) -> Verdict {
        match r {
            Ok(Decapsulated::Inner { range, spi, seq }) => Verdict::Inner {
                spi,
                seq,
                packet: buf[range].to_vec(),
            },
            Err(DropReason::BadIcv) => Verdict::BadIcv,
            Err(DropReason::Replayed) => Verdict::Replayed,
            Err(DropReason::Stale) => Verdict::Stale,
            Err(DropReason::UnknownSpi) => Verdict::UnknownSpi,
            Err(DropReason::EcnDrop) => Verdict::EcnDrop,
            other => Verdict::Other(format!("software {other:?}")),
        }
    }
}
