//! Reliable exchanges over UDP (RFC 7296 §2.1–§2.3): message IDs, the window of one
//! outstanding request each way, retransmission with exponential back-off, and the cached
//! response that answers a retransmitted request.
//!
//! Each IKE SA holds one [`Requests`] (what it asked the peer) and one [`Responses`] (what
//! the peer asked it). Both keep messages as the bytes sent — each one a list of datagrams,
//! so that a message sent in fragments (RFC 7383) is resent as the same fragments.

use std::time::{Duration, Instant};

/// When to resend an unanswered request and when to give up: strongSwan's defaults are a
/// first timeout of 4 s, growing by 1.8 each time, five retransmissions — the peer is
/// declared dead about 165 s after the request was first sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        }
    }
}

impl Backoff {
    /// How long to wait after transmission number `attempt` (0: the first) before the next.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.timeout.mul_f64(self.base.powi(attempt.min(64) as i32))
    }

    /// From the first transmission to giving up.
    pub fn total(&self) -> Duration {
        (0..=self.tries).map(|a| self.delay(a)).sum()
    }
}

/// A request in flight.
#[derive(Debug)]
struct Outstanding {
    id: u32,
    datagrams: Vec<Vec<u8>>,
    /// Transmissions so far, less one.
    attempt: u32,
    next_at: Instant,
}

/// What [`Requests::poll`] asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Due<'a> {
    /// Nothing yet.
    Idle,
    /// Send these datagrams again (the request, unchanged).
    Resend(&'a [Vec<u8>]),
    /// The peer did not answer in time: the IKE SA is dead (§2.4).
    GiveUp { id: u32 },
}

/// Why a request cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("a request is already waiting for its response (window size 1)")]
    Busy,
    #[error("every message ID of this IKE SA is used: it must be rekeyed")]
    Exhausted,
}

/// The requests this end sends on one IKE SA.
#[derive(Debug)]
pub struct Requests {
    next_id: u32,
    outstanding: Option<Outstanding>,
    backoff: Backoff,
}

impl Requests {
    /// `first_id`: 0 for a new IKE SA's initiator; after IKE_SA_INIT the initiator's next
    /// request is 1, the responder's first request 0.
    pub fn new(first_id: u32, backoff: Backoff) -> Requests {
        Requests {
            next_id: first_id,
            outstanding: None,
            backoff,
        }
    }

    /// The ID the next request will carry.
    pub fn next_id(&self) -> u32 {
        self.next_id
    }

    pub fn busy(&self) -> bool {
        self.outstanding.is_some()
    }

    /// Claims the next message ID for a request about to be built (the ID goes in its
    /// header before it is encrypted); [`sent`](Self::sent) then records its datagrams.
    pub fn claim(&mut self) -> Result<u32, WindowError> {
        if self.outstanding.is_some() {
            return Err(WindowError::Busy);
        }
        if self.next_id == u32::MAX {
            return Err(WindowError::Exhausted);
        }
        Ok(self.next_id)
    }

    /// Records the request with the claimed ID as sent at `now`.
    pub fn sent(&mut self, id: u32, datagrams: Vec<Vec<u8>>, now: Instant) {
        debug_assert_eq!(id, self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        self.outstanding = Some(Outstanding {
            id,
            datagrams,
            attempt: 0,
            next_at: now + self.backoff.delay(0),
        });
    }

    /// A response with this ID arrived (already authenticated): whether it answers the
    /// outstanding request. A response to anything else is ignored (§2.3).
    pub fn answered(&mut self, id: u32) -> bool {
        match &self.outstanding {
            Some(o) if o.id == id => {
                self.outstanding = None;
                true
            }
            _ => false,
        }
    }

    /// The outstanding request is abandoned (the IKE SA is going).
    pub fn abandon(&mut self) {
        self.outstanding = None;
    }

    /// When [`poll`](Self::poll) next has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.next_at)
    }

    /// Retransmits or gives up once the timer ran out.
    pub fn poll(&mut self, now: Instant) -> Due<'_> {
        let backoff = self.backoff;
        let (id, attempt) = match &self.outstanding {
            Some(o) if now >= o.next_at => (o.id, o.attempt),
            _ => return Due::Idle,
        };
        if attempt >= backoff.tries {
            self.outstanding = None;
            return Due::GiveUp { id };
        }
        match self.outstanding.as_mut() {
            Some(o) => {
                o.attempt += 1;
                o.next_at = now + backoff.delay(o.attempt);
                Due::Resend(&o.datagrams)
            }
            None => Due::Idle,
        }
    }
}

/// What to do with a request from the peer, by its message ID (§2.2).
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// The next request: process it, then [`Responses::answered`].
    New,
    /// A retransmission of the request last answered: send the same response again,
    /// without processing the request a second time.
    Again(&'a [Vec<u8>]),
    /// Older, or beyond the window: drop it.
    Ignore,
}

/// The requests this end answers on one IKE SA.
#[derive(Debug, Default)]
pub struct Responses {
    expected: u32,
    last: Option<(u32, Vec<Vec<u8>>)>,
}

impl Responses {
    /// `expected`: the ID of the peer's next request (1 after IKE_SA_INIT for the
    /// responder; 0 for the initiator).
    pub fn new(expected: u32) -> Responses {
        Responses {
            expected,
            last: None,
        }
    }

    pub fn expected(&self) -> u32 {
        self.expected
    }

    /// Classifies a request's message ID. Call before decrypting a request only for
    /// `Ignore`; the cached response of `Again` is sent only for a request whose bytes
    /// authenticate (§2.1: a retransmission is the same message).
    pub fn classify(&self, id: u32) -> Incoming<'_> {
        match &self.last {
            Some((last, bytes)) if *last == id => Incoming::Again(bytes),
            _ if id == self.expected => Incoming::New,
            _ => Incoming::Ignore,
        }
    }

    /// The response to request `id` was sent: cache it and expect the next ID.
    pub fn answered(&mut self, id: u32, datagrams: Vec<Vec<u8>>) {
        self.last = Some((id, datagrams));
        self.expected = id.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_strongswans_schedule() {
        let b = Backoff::default();
        let secs: Vec<f64> = (0..=5).map(|a| b.delay(a).as_secs_f64()).collect();
        let want = [4.0, 7.2, 12.96, 23.328, 41.99, 75.58];
        for (got, want) in secs.iter().zip(want) {
            assert!((got - want).abs() < 0.01, "{secs:?}");
        }
        assert!(
            (b.total().as_secs_f64() - 165.06).abs() < 0.1,
            "{:?}",
            b.total()
        );
    }

    #[test]
    fn a_request_is_resent_with_growing_gaps_then_given_up() {
        let t0 = Instant::now();
        let mut r = Requests::new(0, Backoff::default());
        let id = r.claim().unwrap();
        r.sent(id, vec![b"req".to_vec()], t0);
        assert_eq!(r.claim(), Err(WindowError::Busy));
        assert_eq!(r.poll(t0 + Duration::from_secs(3)), Due::Idle);
        let mut resent = 0;
        let at = loop {
            let at = r.deadline().unwrap();
            match r.poll(at) {
                Due::Resend(d) => {
                    assert_eq!(d, &[b"req".to_vec()]);
                    resent += 1;
                }
                Due::GiveUp { id } => {
                    assert_eq!(id, 0);
                    break at;
                }
                Due::Idle => panic!("due at its deadline"),
            }
        };
        assert_eq!(resent, 5);
        assert!((at - t0).as_secs_f64() > 165.0);
        assert_eq!(r.deadline(), None);
        // The window moved on: the next request has the next ID.
        assert_eq!(r.claim(), Ok(1));
    }

    #[test]
    fn only_the_outstanding_id_answers() {
        let t0 = Instant::now();
        let mut r = Requests::new(1, Backoff::default());
        let id = r.claim().unwrap();
        r.sent(id, vec![vec![1]], t0);
        assert!(!r.answered(0));
        assert!(!r.answered(2));
        assert!(r.busy());
        assert!(r.answered(1));
        assert!(!r.answered(1), "a duplicate response changes nothing");
        assert_eq!(r.poll(t0 + Duration::from_secs(60)), Due::Idle);
        assert_eq!(r.next_id(), 2);
    }

    #[test]
    fn message_ids_run_out() {
        let mut r = Requests::new(u32::MAX, Backoff::default());
        assert_eq!(r.claim(), Err(WindowError::Exhausted));
    }

    #[test]
    fn a_retransmitted_request_gets_the_cached_response() {
        let mut s = Responses::new(1);
        assert_eq!(s.classify(0), Incoming::Ignore);
        assert_eq!(s.classify(2), Incoming::Ignore);
        assert_eq!(s.classify(1), Incoming::New);
        s.answered(1, vec![b"resp".to_vec(), b"frag2".to_vec()]);
        assert_eq!(
            s.classify(1),
            Incoming::Again(&[b"resp".to_vec(), b"frag2".to_vec()])
        );
        assert_eq!(s.classify(2), Incoming::New);
        assert_eq!(s.classify(0), Incoming::Ignore);
        s.answered(2, vec![b"second".to_vec()]);
        assert_eq!(
            s.classify(1),
            Incoming::Ignore,
            "only the last response is kept"
        );
    }
}
