//! What the offload engine needs besides the card: a fallback link for the frames of a
//! card that is gone, and the host clock its time lifetimes run on.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A link that carries whole Ethernet frames: where the engine sends and receives when the
/// card is gone (an on-board NIC of the appliance, a raw socket, a test's tap).
pub trait Wire: Send {
    /// Sends a frame (Ethernet header and IP packet); false when it could not be sent.
    fn send(&mut self, frame: &[u8]) -> bool;
    /// Moves the next received frame into `buf` (replacing its contents); false when none
    /// is waiting.
    fn recv(&mut self, buf: &mut Vec<u8>) -> bool;
}

type Queue = Arc<Mutex<VecDeque<Vec<u8>>>>;

fn lock(q: &Queue) -> std::sync::MutexGuard<'_, VecDeque<Vec<u8>>> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}

/// One end of an in-memory cable: frames sent on one end are received on the other.
#[derive(Debug, Clone, Default)]
pub struct MemWire {
    outgoing: Queue,
    incoming: Queue,
}

impl MemWire {
    /// Both ends of a cable.
    pub fn pair() -> (MemWire, MemWire) {
        let a: Queue = Arc::default();
        let b: Queue = Arc::default();
        (
            MemWire {
                outgoing: a.clone(),
                incoming: b.clone(),
            },
            MemWire {
                outgoing: b,
                incoming: a,
            },
        )
    }

    /// Takes every frame waiting at this end.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        lock(&self.incoming).drain(..).collect()
    }

    /// Sends a copy of `frame`.
    pub fn send_bytes(&self, frame: &[u8]) {
        lock(&self.outgoing).push_back(frame.to_vec());
    }
}

impl Wire for MemWire {
    fn send(&mut self, frame: &[u8]) -> bool {
        self.send_bytes(frame);
        true
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        match lock(&self.incoming).pop_front() {
            Some(f) => {
                *buf = f;
                true
            }
            None => false,
        }
    }
}

/// The host clock (time lifetimes, the repeated-fault window).
pub trait HostClock: Send + Sync {
    /// Time since an arbitrary, fixed origin.
    fn now(&self) -> Duration;
}

/// The host's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl HostClock for MonotonicClock {
    fn now(&self) -> Duration {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
}

/// A clock that moves only when told to: deterministic tests and validation runs.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// Moves the clock on.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(ns, Ordering::AcqRel);
    }
}

impl HostClock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cable_carries_frames_both_ways_in_order() {
        let (mut a, mut b) = MemWire::pair();
        assert!(a.send(&[1, 2]) && a.send(&[3]));
        b.send_bytes(&[9]);
        let mut buf = Vec::new();
        assert!(b.recv(&mut buf) && buf == [1, 2]);
        assert!(b.recv(&mut buf) && buf == [3]);
        assert!(!b.recv(&mut buf));
        assert_eq!(a.drain(), vec![vec![9]]);
    }

    #[test]
    fn the_manual_clock_moves_only_when_told() {
        let c = ManualClock::default();
        let t0 = c.now();
        c.advance(Duration::from_secs(3));
        assert_eq!(c.now() - t0, Duration::from_secs(3));
        assert_eq!(c.clone().now(), c.now(), "clones share the time");
    }
}
