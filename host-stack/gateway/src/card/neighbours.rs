//! The card port's neighbour cache: the MAC address of each next hop, learnt from ARP
//! replies and neighbour advertisements, with the frames waiting for it.
//!
//! An entry is *reachable* for [`REACHABLE`] after it was learnt; past that it is *stale*:
//! still used, and re-resolved (one request a [`RETRANSMIT`], [`MAX_REQUESTS`] at most).
//! An entry never resolved, or one whose re-resolution went unanswered, has no address:
//! frames for it wait (at most [`MAX_WAITING`]) while requests go out, and are dropped and
//! counted when [`MAX_REQUESTS`] go unanswered. Time is passed in, so the rules are tested
//! without waiting.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::resolve::Mac;

/// How long a learnt address is used without asking again.
pub const REACHABLE: Duration = Duration::from_secs(30);
/// Time between two requests for the same neighbour.
pub const RETRANSMIT: Duration = Duration::from_secs(1);
/// Requests sent before a neighbour is given up on (until the next frame for it).
pub const MAX_REQUESTS: u32 = 3;
/// Frames held per unresolved neighbour.
pub const MAX_WAITING: usize = 64;
/// Neighbours tracked at most (next hops only: there are a handful).
pub const MAX_ENTRIES: usize = 64;

#[derive(Debug)]
struct Entry {
    ip: IpAddr,
    mac: Option<Mac>,
    learnt: Option<Instant>,
    /// Requests sent in the current round, and when the last one went.
    requests: u32,
    last_request: Option<Instant>,
    waiting: VecDeque<Vec<u8>>,
}

impl Entry {
    fn new(ip: IpAddr) -> Entry {
        Entry {
            ip,
            mac: None,
            learnt: None,
            requests: 0,
            last_request: None,
            waiting: VecDeque::new(),
        }
    }
}

/// What to do with a frame for a neighbour.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Send it to this address.
    Send(Mac),
    /// It waits; nothing to send now.
    Queued,
    /// Not kept (too many waiting, or the cache is full): count it as unresolved.
    Dropped,
}

/// One neighbour as `espo status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourView {
    pub ip: IpAddr,
    pub mac: Option<Mac>,
    /// Seconds since it was learnt.
    pub age_secs: Option<u64>,
    pub waiting: usize,
}

/// The cache. See the module documentation.
#[derive(Debug, Default)]
pub struct Neighbours {
    entries: Vec<Entry>,
    /// Neighbours to send a request to now.
    due: Vec<IpAddr>,
}

impl Neighbours {
    fn find(&mut self, ip: IpAddr) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.ip == ip)
    }

    /// Where a frame for `ip` goes; the frame is kept when it must wait.
    pub fn lookup(&mut self, ip: IpAddr, frame: &[u8], now: Instant) -> Lookup {
        self.round(ip, Some(frame), now)
    }

    /// Keeps `ip` resolved without a frame for it (a card whose port is its own sends its
    /// frames itself, addressed from [`resolved`](Self::resolved)): asked for when it has
    /// no address (a new round once a round went unanswered) or its address went stale,
    /// as a frame for it would have it asked for.
    pub fn keep_resolved(&mut self, ip: IpAddr, now: Instant) {
        self.round(ip, None, now);
    }

    /// The rules of [`lookup`](Self::lookup), a `frame` kept when it must wait; without
    /// one, only the requests.
    fn round(&mut self, ip: IpAddr, frame: Option<&[u8]>, now: Instant) -> Lookup {
        if self.find(ip).is_none() {
            if self.entries.len() >= MAX_ENTRIES {
                return Lookup::Dropped;
            }
            self.entries.push(Entry::new(ip));
        }
        let mut request = false;
        let lookup = match self.find(ip) {
            None => Lookup::Dropped,
            Some(e) => {
                let idle = e.requests == 0
                    || e.last_request
                        .is_none_or(|t| now.duration_since(t) >= RETRANSMIT);
                match e.mac {
                    Some(mac) => {
                        let stale = e.learnt.is_none_or(|t| now.duration_since(t) >= REACHABLE);
                        // A stale entry is re-resolved once its round starts.
                        request = stale && e.requests == 0 && idle;
                        Lookup::Send(mac)
                    }
                    None if frame.is_some() && e.waiting.len() >= MAX_WAITING => Lookup::Dropped,
                    None => {
                        if let Some(frame) = frame {
                            e.waiting.push_back(frame.to_vec());
                        }
                        // A neighbour given up on gets a new round with new frames.
                        request = e.requests == 0 || (e.requests >= MAX_REQUESTS && idle);
                        if request {
                            e.requests = 0;
                        }
                        Lookup::Queued
                    }
                }
            }
        };
        if request {
            self.request_now(ip, now);
        }
        lookup
    }

    /// The neighbours with an address.
    pub fn resolved(&self) -> Vec<(IpAddr, Mac)> {
        self.entries
            .iter()
            .filter_map(|e| Some((e.ip, e.mac?)))
            .collect()
    }

    fn request_now(&mut self, ip: IpAddr, now: Instant) {
        if let Some(e) = self.find(ip) {
            e.requests += 1;
            e.last_request = Some(now);
            if !self.due.contains(&ip) {
                self.due.push(ip);
            }
        }
    }

    /// `ip` is at `mac`: learnt when espo asked for it (an entry exists), or `always` (the
    /// neighbour asked for one of espo's addresses, so it will be talked to). Returns the
    /// frames that waited for it, their destination set.
    pub fn learn(&mut self, ip: IpAddr, mac: Mac, now: Instant, always: bool) -> Vec<Vec<u8>> {
        // A group (multicast or broadcast) address is never a neighbour's: the parser
        // refuses frames that claim one, and nothing is learnt from them here either.
        if mac[0] & 1 != 0 {
            return Vec::new();
        }
        if self.find(ip).is_none() {
            if !always || self.entries.len() >= MAX_ENTRIES {
                return Vec::new();
            }
            self.entries.push(Entry::new(ip));
        }
        let Some(e) = self.find(ip) else {
            return Vec::new();
        };
        e.mac = Some(mac);
        e.learnt = Some(now);
        e.requests = 0;
        e.last_request = None;
        let mut frames: Vec<Vec<u8>> = e.waiting.drain(..).collect();
        for f in &mut frames {
            if let Some(dst) = f.get_mut(..6) {
                dst.copy_from_slice(&mac);
            }
        }
        frames
    }

    /// Moves time on: requests that are due again, and the frames of neighbours given up
    /// on (returned count, to be counted as unresolved).
    pub fn tick(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        let mut again = Vec::new();
        for e in &mut self.entries {
            let Some(last) = e.last_request else { continue };
            if e.requests == 0 || now.duration_since(last) < RETRANSMIT {
                continue;
            }
            if e.requests < MAX_REQUESTS {
                again.push(e.ip);
            } else if e.requests == MAX_REQUESTS {
                // Unanswered: the address is no longer trusted, waiting frames go.
                e.mac = None;
                e.learnt = None;
                e.requests += 1;
                dropped += e.waiting.len();
                e.waiting.clear();
            }
        }
        for ip in again {
            self.request_now(ip, now);
        }
        dropped
    }

    /// The neighbours to send a request to now (taken).
    pub fn take_due(&mut self) -> Vec<IpAddr> {
        std::mem::take(&mut self.due)
    }

    /// When [`tick`](Self::tick) has something to do next, if ever.
    pub fn next_timer(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|e| e.requests > 0 && e.requests <= MAX_REQUESTS)
            .filter_map(|e| e.last_request.map(|t| t + RETRANSMIT))
            .min()
    }

    pub fn view(&self, now: Instant) -> Vec<NeighbourView> {
        self.entries
            .iter()
            .map(|e| NeighbourView {
                ip: e.ip,
                mac: e.mac,
                age_secs: e.learnt.map(|t| now.duration_since(t).as_secs()),
                waiting: e.waiting.len(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: Mac = [0x02, 0, 0, 0, 0, 0x22];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_next_hop_is_kept_resolved_without_frames() {
        let mut n = Neighbours::default();
        let hop = ip("192.0.2.1");
        let t0 = Instant::now();
        n.keep_resolved(hop, t0);
        assert_eq!(n.take_due(), vec![hop]);
        // Not again within a retransmit interval; again after it, until the round ends.
        n.keep_resolved(hop, t0 + Duration::from_millis(10));
        assert!(n.take_due().is_empty());
        assert!(n.resolved().is_empty());
        n.learn(hop, PEER, t0 + RETRANSMIT / 2, false);
        assert_eq!(n.resolved(), vec![(hop, PEER)]);
        // Reachable: no request; stale: one, the address kept meanwhile.
        n.keep_resolved(hop, t0 + RETRANSMIT);
        assert!(n.take_due().is_empty());
        let later = t0 + REACHABLE + RETRANSMIT;
        n.keep_resolved(hop, later);
        assert_eq!(n.take_due(), vec![hop]);
        assert_eq!(n.resolved(), vec![(hop, PEER)]);
        // Unanswered: the address goes, and a new round starts after it.
        let mut t = later;
        for _ in 0..MAX_REQUESTS {
            t += RETRANSMIT;
            n.tick(t);
            n.take_due();
        }
        assert!(n.resolved().is_empty());
        n.keep_resolved(hop, t + RETRANSMIT);
        assert_eq!(n.take_due(), vec![hop]);
    }

    #[test]
    fn a_group_address_is_never_learnt() {
        let mut n = Neighbours::default();
        let t0 = Instant::now();
        for group in [
            [0xff; 6],
            [0x33, 0x33, 0xff, 0, 0, 2],
            [0x01, 0, 0x5e, 0, 0, 1],
        ] {
            assert!(n.learn(ip("192.0.2.9"), group, t0, true).is_empty());
            assert!(n.view(t0).is_empty(), "{group:02x?} learnt");
        }
        // Nor does it overwrite an address already known.
        n.learn(ip("192.0.2.9"), PEER, t0, true);
        n.learn(ip("192.0.2.9"), [0xff; 6], t0, true);
        assert_eq!(n.view(t0)[0].mac, Some(PEER));
    }

    #[test]
    fn frames_wait_for_the_reply_and_leave_with_its_address() {
        let mut n = Neighbours::default();
        let t0 = Instant::now();
        let hop = ip("192.0.2.2");
        assert_eq!(n.lookup(hop, &[0u8; 20], t0), Lookup::Queued);
        assert_eq!(n.lookup(hop, &[1u8; 20], t0), Lookup::Queued);
        assert_eq!(n.take_due(), vec![hop], "one request, not one per frame");
        assert!(n.take_due().is_empty());
        let sent = n.learn(hop, PEER, t0, false);
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|f| f[..6] == PEER && f.len() == 20));
        assert_eq!(sent[1][6], 1, "in order");
        assert_eq!(n.lookup(hop, &[0u8; 20], t0), Lookup::Send(PEER));
    }

    #[test]
    fn unanswered_requests_are_retried_then_the_frames_dropped() {
        let mut n = Neighbours::default();
        let t0 = Instant::now();
        let hop = ip("2001:db8::2");
        n.lookup(hop, &[0u8; 20], t0);
        assert_eq!(n.take_due().len(), 1);
        assert_eq!(n.next_timer(), Some(t0 + RETRANSMIT));
        assert_eq!(n.tick(t0 + Duration::from_millis(500)), 0);
        assert!(n.take_due().is_empty(), "not before the retransmit time");
        assert_eq!(n.tick(t0 + RETRANSMIT), 0);
        assert_eq!(n.take_due(), vec![hop]);
        assert_eq!(n.tick(t0 + RETRANSMIT * 2), 0);
        assert_eq!(n.take_due(), vec![hop], "the third request");
        assert_eq!(n.tick(t0 + RETRANSMIT * 3), 1, "given up: the frame goes");
        assert!(n.take_due().is_empty());
        assert_eq!(n.next_timer(), None);
        // A new frame starts a new round.
        let t4 = t0 + RETRANSMIT * 4;
        assert_eq!(n.lookup(hop, &[0u8; 20], t4), Lookup::Queued);
        assert_eq!(n.take_due(), vec![hop]);
    }

    #[test]
    fn a_stale_address_is_used_while_it_is_re_resolved_and_forgotten_if_unanswered() {
        let mut n = Neighbours::default();
        let t0 = Instant::now();
        let hop = ip("192.0.2.254");
        n.lookup(hop, &[0u8; 20], t0);
        n.take_due();
        n.learn(hop, PEER, t0, false);
        assert_eq!(
            n.lookup(hop, &[0u8; 20], t0 + REACHABLE / 2),
            Lookup::Send(PEER)
        );
        assert!(n.take_due().is_empty(), "fresh: no request");
        let stale = t0 + REACHABLE;
        assert_eq!(n.lookup(hop, &[0u8; 20], stale), Lookup::Send(PEER));
        assert_eq!(n.take_due(), vec![hop], "stale: asked again");
        assert_eq!(n.lookup(hop, &[0u8; 20], stale), Lookup::Send(PEER));
        assert!(n.take_due().is_empty(), "one request per round");
        // Answered: fresh again.
        n.learn(hop, [0x02, 0, 0, 0, 0, 0x33], stale, false);
        let later = stale + REACHABLE / 2;
        assert_eq!(
            n.lookup(hop, &[0u8; 20], later),
            Lookup::Send([0x02, 0, 0, 0, 0, 0x33]),
            "the new address"
        );
        // Stale again and unanswered: forgotten, frames wait.
        let t = stale + REACHABLE;
        n.lookup(hop, &[0u8; 20], t);
        n.take_due();
        n.tick(t + RETRANSMIT);
        n.tick(t + RETRANSMIT * 2);
        n.tick(t + RETRANSMIT * 3);
        assert_eq!(
            n.lookup(hop, &[0u8; 20], t + RETRANSMIT * 4),
            Lookup::Queued
        );
    }

    #[test]
    fn unsolicited_replies_do_not_fill_the_cache_and_waiting_is_bounded() {
        let mut n = Neighbours::default();
        let t0 = Instant::now();
        assert!(n.learn(ip("192.0.2.9"), PEER, t0, false).is_empty());
        assert!(n.view(t0).is_empty(), "nobody asked for it");
        n.learn(ip("192.0.2.9"), PEER, t0, true);
        assert_eq!(n.view(t0)[0].mac, Some(PEER), "it asked for us");
        let hop = ip("192.0.2.2");
        for _ in 0..MAX_WAITING {
            assert_eq!(n.lookup(hop, &[0u8; 20], t0), Lookup::Queued);
        }
        assert_eq!(n.lookup(hop, &[0u8; 20], t0), Lookup::Dropped);
        for i in 0..MAX_ENTRIES as u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000u32 + i));
            n.learn(a, PEER, t0, true);
        }
        assert_eq!(n.view(t0).len(), MAX_ENTRIES);
        assert_eq!(n.lookup(ip("10.9.9.9"), &[0u8; 20], t0), Lookup::Dropped);
    }
}
