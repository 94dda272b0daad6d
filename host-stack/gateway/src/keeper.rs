//! Durable SA state while the gateway runs: sequence numbers reserved ahead for every
//! outbound SA, and every inbound SA's replay mark, in the state directory
//! ([`crate::state_dir`]).
//!
//! Outbound: an SA may use only numbers already reserved on disk. At start (or when an SA
//! is added) it continues after the highest number ever reserved for it — a restart leaves
//! a gap, never a repeat — and a block of [`BLOCK`] numbers is reserved and flushed to disk
//! before the first of them is used. A thread tops the reservation up, another block ahead
//! of what is used, whenever less than half a block is left ([`Keeper::reserve_ahead`],
//! every [`TICK`]); at a few million packets a second half a block lasts tens of
//! milliseconds, a flush takes a few, so the datapath does not wait for the disk. Should the
//! disk fail, the SA runs to the end of what it has and then drops (`seq-unreserved`) until
//! a write succeeds again; the status says why.
//!
//! Inbound: the highest sequence number each SA accepted is recorded every
//! [`MARK_INTERVAL`] when it moved, and at a clean stop. After a restart nothing at or below
//! it is accepted (packets accepted in the last interval before a crash are the exposure).

use std::net::IpAddr;
use std::time::Duration;

use espo_ipsec::sa::SeqReservation;
use espo_ipsec::spec::{Direction, SaSpec};

use crate::state_dir::{Recorded, StateDir, StateError, StateKey};

/// Sequence numbers reserved at a time.
pub const BLOCK: u64 = 1 << 20;
/// How often reservations are looked at.
pub const TICK: Duration = Duration::from_millis(5);
/// How often inbound replay marks are recorded (when they moved).
pub const MARK_INTERVAL: Duration = Duration::from_secs(1);

/// How an SA starts, from its durable state.
#[derive(Debug)]
pub enum Start {
    /// The last sequence number used (the next packet carries `seq + 1`) and the numbers
    /// reserved for it.
    Outbound {
        seq: u64,
        reservation: SeqReservation,
    },
    /// Nothing at or below `closed_at` is accepted.
    Inbound { closed_at: Option<u64> },
}

#[derive(Debug)]
struct Reserved {
    key: StateKey,
    reservation: SeqReservation,
    max_seq: u64,
    /// The last write failed, and why.
    error: Option<String>,
}

#[derive(Debug)]
struct Marked {
    key: StateKey,
    recorded: u64,
    error: Option<String>,
}

/// An SA about to start: the record to write (`value`: the end of an outbound SA's first
/// reservation, an inbound SA's replay mark) and how it starts once written.
struct Plan {
    key: StateKey,
    value: u64,
    start: Planned,
}

enum Planned {
    Out { seq: u64, max_seq: u64 },
    In { closed_at: Option<u64> },
}

/// The durable state of every SA. See the module documentation.
#[derive(Debug)]
pub struct Keeper {
    dir: StateDir,
    outbound: Vec<Reserved>,
    inbound: Vec<Marked>,
    /// What the last start said of an SA's earlier state (another key's file ignored).
    notes: Vec<String>,
}

impl Keeper {
    pub fn new(dir: StateDir) -> Keeper {
        Keeper {
            dir,
            outbound: Vec::new(),
            inbound: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// Loads an SA's state and starts keeping it: for an outbound SA the first block is
    /// reserved durably before this returns. An error means the SA must not run.
    pub fn start(&mut self, sa: &SaSpec, dir: Direction) -> Result<Start, StateError> {
        let plan = self.plan(sa, dir)?;
        self.dir.store(&plan.key, plan.value)?;
        Ok(self.keep(plan))
    }

    /// [`start`](Self::start) for many SAs (a gateway's start), their records written
    /// together ([`StateDir::store_all`]: two flushes for all of them, not two each); one
    /// result per SA, in order. When the writing fails, every SA whose state could be read
    /// fails with it: none runs on a reservation that may not be on disk.
    pub fn start_all(&mut self, sas: &[(&SaSpec, Direction)]) -> Vec<Result<Start, StateError>> {
        let planned: Vec<_> = sas.iter().map(|&(sa, dir)| self.plan(sa, dir)).collect();
        let records: Vec<(StateKey, u64)> = planned
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|p| (p.key.clone(), p.value)))
            .collect();
        let written = self.dir.store_all(&records).map_err(|e| e.to_string());
        planned
            .into_iter()
            .map(|plan| {
                let plan = plan?;
                match &written {
                    Ok(()) => Ok(self.keep(plan)),
                    Err(why) => Err(StateError::Write {
                        path: self.dir.file_of(&plan.key),
                        source: std::io::Error::other(why.clone()),
                    }),
                }
            })
            .collect()
    }

    /// What starting an SA records, from what its file holds.
    fn plan(&mut self, sa: &SaSpec, dir: Direction) -> Result<Plan, StateError> {
        let key = StateKey::of(sa, dir);
        let recorded = match self.dir.load(&key)? {
            Recorded::Value(v) => Some(v),
            Recorded::Nothing => None,
            Recorded::OtherKey => {
                self.notes.push(format!(
                    "{}: left by another key under SPI {:#010x}; not used, replaced",
                    self.dir.file_of(&key).display(),
                    sa.spi
                ));
                None
            }
        };
        self.forget_key(&key);
        Ok(match dir {
            Direction::Out => {
                let max_seq = if sa.esn {
                    u64::MAX
                } else {
                    u64::from(u32::MAX)
                };
                let seq = sa.seq.max(recorded.unwrap_or(0)).min(max_seq);
                let limit = seq.saturating_add(BLOCK).min(max_seq);
                Plan {
                    key,
                    value: limit,
                    start: Planned::Out { seq, max_seq },
                }
            }
            Direction::In => Plan {
                key,
                value: recorded.unwrap_or(0).max(sa.seq),
                start: Planned::In {
                    closed_at: recorded.filter(|m| *m > 0),
                },
            },
        })
    }

    /// Starts keeping an SA whose record ([`plan`](Self::plan)) is on disk.
    fn keep(&mut self, plan: Plan) -> Start {
        let Plan { key, value, start } = plan;
        match start {
            Planned::Out { seq, max_seq } => {
                let reservation = SeqReservation::new(value, seq);
                self.outbound.push(Reserved {
                    key,
                    reservation: reservation.clone(),
                    max_seq,
                    error: None,
                });
                Start::Outbound { seq, reservation }
            }
            Planned::In { closed_at } => {
                self.inbound.push(Marked {
                    key,
                    recorded: value,
                    error: None,
                });
                Start::Inbound { closed_at }
            }
        }
    }

    fn forget_key(&mut self, key: &StateKey) {
        self.outbound.retain(|r| r.key != *key);
        self.inbound.retain(|m| m.key != *key);
    }

    /// Stops keeping an SA's state; `retired`: its key is done with for good (a rekey
    /// replaced it), so its record goes too.
    pub fn forget(&mut self, sa: &SaSpec, dir: Direction, retired: bool) {
        let key = StateKey::of(sa, dir);
        self.forget_key(&key);
        if retired {
            self.dir.remove(&key);
        }
    }

    /// Tops up every reservation with less than half a block left.
    pub fn reserve_ahead(&mut self) {
        for r in &mut self.outbound {
            let (used, limit) = (r.reservation.used(), r.reservation.limit());
            if limit >= r.max_seq || limit.saturating_sub(used) >= BLOCK / 2 {
                continue;
            }
            let next = used.saturating_add(BLOCK).min(r.max_seq).max(limit);
            match self.dir.store(&r.key, next) {
                Ok(()) => {
                    r.reservation.set_limit(next);
                    r.error = None;
                }
                Err(e) => r.error = Some(e.to_string()),
            }
        }
    }

    /// Records every inbound mark that moved; `highest` says where an SA (SPI, destination)
    /// stands now.
    pub fn record_marks(&mut self, highest: impl Fn(u32, IpAddr) -> Option<u64>) {
        for m in &mut self.inbound {
            let Some(h) = highest(m.key.spi, m.key.dst) else {
                continue;
            };
            if h <= m.recorded {
                continue;
            }
            match self.dir.store(&m.key, h) {
                Ok(()) => {
                    m.recorded = h;
                    m.error = None;
                }
                Err(e) => m.error = Some(e.to_string()),
            }
        }
    }

    /// What `espo status` shows: failed writes and ignored records.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.notes.clone();
        for r in &self.outbound {
            if let Some(e) = &r.error {
                out.push(format!(
                    "sa {:#010x} out: reserving sequence numbers failed: {e}",
                    r.key.spi
                ));
            }
        }
        for m in &self.inbound {
            if let Some(e) = &m.error {
                out.push(format!(
                    "sa {:#010x} in: recording the replay mark failed: {e}",
                    m.key.spi
                ));
            }
        }
        out
    }
}

/// The state directory's lines of `espo status`.
pub fn status_lines(keeper: &Keeper) -> String {
    let mut out = format!(
        "state: {} (sequence numbers reserved {} at a time)\n",
        keeper.dir.path().display(),
        BLOCK
    );
    for p in keeper.problems() {
        out.push_str(&format!("  {p}\n"));
    }
    out
}

#[cfg(test)]
mod tests;
