//! The RTL core as the card model's datapath ([`espo_model::Datapath`]): the model keeps
//! rings, DMA, the IOMMU and the admin queue; each SA write goes to the core through its
//! register port, each frame through its streams, one packet at a time. Each transformed
//! packet's cycles (first input beat to last output beat) are logged beside what the model
//! needs to predict them ([`CycleRecord`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use espo_fpga::{SaEntry, SaState, Status};
use espo_model::{Datapath, DatapathOutput, Engine};

use crate::{Direction, PacketIn, Rtl};

/// One packet the core transformed and what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleRecord {
    pub engine: Engine,
    /// The inner IP packet's bytes.
    pub inner_bytes: u64,
    /// Frame bytes into and out of the core.
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Bytes through AES-GCM: the padded plaintext (TX, `inner + 2` before padding) or the
    /// ciphertext (RX).
    pub crypto_bytes: u64,
    /// Cycles measured in the RTL.
    pub rtl_cycles: u64,
}

/// What the core did over a run: every transformed packet's cycles, and a tally of its
/// verdicts. Shared between the datapath and whoever reports it.
#[derive(Debug, Clone, Default)]
pub struct CycleLog(Arc<Mutex<LogInner>>);

#[derive(Debug, Default)]
struct LogInner {
    records: Vec<CycleRecord>,
    tally: VerdictTally,
}

/// The core's verdicts over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerdictTally {
    /// (direction, status) → packets; direction "TX" or "RX".
    pub by_status: BTreeMap<(&'static str, String), u64>,
    /// Transformed packets whose inner / outer header is IPv6.
    pub inner_ipv6: u64,
    pub outer_ipv6: u64,
    /// Transformed packets whose sequence number is above 2^32 (ESN).
    pub esn_high: u64,
}

impl CycleLog {
    fn with<R>(&self, f: impl FnOnce(&mut LogInner) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every cycle record so far, in order.
    pub fn records(&self) -> Vec<CycleRecord> {
        self.with(|l| l.records.clone())
    }

    /// The verdicts so far.
    pub fn tally(&self) -> VerdictTally {
        self.with(|l| l.tally.clone())
    }

    fn count(&self, dir: &'static str, out: &DatapathOutput, inner_v6: bool, outer_v6: bool) {
        self.with(|l| {
            *l.tally
                .by_status
                .entry((dir, format!("{:?}", out.status)))
                .or_default() += 1;
            if out.status == Status::Ok && out.transformed {
                l.tally.inner_ipv6 += u64::from(inner_v6);
                l.tally.outer_ipv6 += u64::from(outer_v6);
                l.tally.esn_high += u64::from(out.seq > u64::from(u32::MAX));
            }
        });
    }

    fn push(&self, r: CycleRecord) {
        self.with(|l| l.records.push(r));
    }
}

/// The RTL core behind the card model. See the module documentation.
#[derive(Debug)]
pub struct RtlDatapath {
    rtl: Rtl,
    written: BTreeSet<u32>,
    natt_port: Option<u16>,
    log: CycleLog,
}

impl RtlDatapath {
    /// A fresh core; its transformed packets' cycles go to `log`.
    pub fn new(log: CycleLog) -> RtlDatapath {
        RtlDatapath {
            rtl: Rtl::new(),
            written: BTreeSet::new(),
            natt_port: None,
            log,
        }
    }

    fn one(&mut self, frame: &[u8], direction: Direction) -> Option<(DatapathOutput, u64)> {
        let packet = PacketIn {
            frame: frame.to_vec(),
            direction,
        };
        let out = self.rtl.process(std::slice::from_ref(&packet)).ok()?;
        let o = out.into_iter().next()?;
        let cycles = o.timing.latency_cycles();
        let v = o.verdict?;
        Some((
            DatapathOutput {
                status: v.status,
                seq: v.seq,
                transformed: v.transformed,
                inner_ipv6: v.inner_ipv6,
                events: v.events,
                frame: o.frame,
            },
            cycles,
        ))
    }
}

const ETH_HEADER_BYTES: u64 = 14;
/// ESP header, IV and ICV: the bytes of an ESP payload AES-GCM does not decrypt.
const ESP_OVERHEAD_BYTES: u64 = 32;

/// Outer IP header bytes of a received frame (IPv4 IHL, or 40 for IPv6).
fn outer_header_bytes(frame: &[u8]) -> u64 {
    match frame.get(12..14) {
        Some([0x86, 0xdd]) => 40,
        _ => frame.get(14).map_or(20, |b| u64::from(b & 0x0f) * 4),
    }
}

impl Datapath for RtlDatapath {
    fn reset(&mut self) {
        for index in std::mem::take(&mut self.written) {
            let _ = self.rtl.invalidate_sa(index);
        }
    }

    fn write_sa(&mut self, index: u32, entry: &SaEntry, state: Option<&SaState>) -> Status {
        match self.rtl.write_sa(index, entry, state) {
            Ok(status) => {
                if status == Status::Ok {
                    self.written.insert(index);
                }
                status
            }
            Err(_) => Status::EngineError,
        }
    }

    fn read_sa(&mut self, index: u32) -> Option<SaState> {
        match self.rtl.read_sa(index).ok()? {
            (Status::Ok, state) => Some(state),
            _ => Some(SaState::default()),
        }
    }

    fn invalidate_sa(&mut self, index: u32) -> Option<SaState> {
        self.written.remove(&index);
        match self.rtl.invalidate_sa(index).ok()? {
            (Status::Ok, state) => Some(state),
            _ => Some(SaState::default()),
        }
    }

    fn transmit(&mut self, sa_index: u32, frame: &[u8]) -> Option<DatapathOutput> {
        let direction = Direction::Outbound {
            sa_index,
            bypass: false,
        };
        let (out, cycles) = self.one(frame, direction)?;
        self.log
            .count("TX", &out, is_ipv6(frame), is_ipv6(&out.frame));
        if out.status == Status::Ok && out.transformed {
            let inner = (frame.len() as u64).saturating_sub(ETH_HEADER_BYTES);
            self.log.push(CycleRecord {
                engine: Engine::Encrypt,
                inner_bytes: inner,
                in_bytes: frame.len() as u64,
                out_bytes: out.frame.len() as u64,
                crypto_bytes: inner + 2,
                rtl_cycles: cycles,
            });
        }
        Some(out)
    }

    fn receive(&mut self, frame: &[u8], natt_port: u16) -> Option<DatapathOutput> {
        if self.natt_port != Some(natt_port) {
            self.rtl.set_natt_port(natt_port);
            self.natt_port = Some(natt_port);
        }
        let (out, cycles) = self.one(frame, Direction::Inbound)?;
        self.log.count("RX", &out, out.inner_ipv6, is_ipv6(frame));
        if out.status == Status::Ok && out.transformed {
            let udp = if is_udp(frame) { 8 } else { 0 };
            let esp = (frame.len() as u64)
                .saturating_sub(ETH_HEADER_BYTES + outer_header_bytes(frame) + udp);
            self.log.push(CycleRecord {
                engine: Engine::Decrypt,
                inner_bytes: (out.frame.len() as u64).saturating_sub(ETH_HEADER_BYTES),
                in_bytes: frame.len() as u64,
                out_bytes: out.frame.len() as u64,
                crypto_bytes: esp.saturating_sub(ESP_OVERHEAD_BYTES),
                rtl_cycles: cycles,
            });
        }
        Some(out)
    }
}

/// The frame's EtherType is IPv6.
fn is_ipv6(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&[0x86, 0xdd])
}

/// The outer header carries UDP (ESP in UDP, RFC 3948).
fn is_udp(frame: &[u8]) -> bool {
    match frame.get(12..14) {
        Some([0x86, 0xdd]) => frame.get(20) == Some(&17),
        _ => frame.get(23) == Some(&17),
    }
}
