//! The delivery ledger: every packet a host sends is recorded with its bytes, and every
//! packet a host receives is compared with what was sent, byte for byte.

use std::collections::HashMap;

use super::hosts::{self, Message};

/// What became of a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Exactly the bytes that were sent, to the host they were sent to.
    Intact(Message),
    /// A packet of this run whose bytes differ from what was sent.
    Corrupted,
    /// Not a packet in flight: never sent, or delivered already.
    Unexpected,
}

/// Packets in flight and the tally of their fates.
#[derive(Debug, Default)]
pub struct Ledger {
    in_flight: HashMap<u64, Vec<u8>>,
    /// Packets sent by the hosts.
    pub sent: u64,
    /// Delivered exactly as sent.
    pub delivered: u64,
    /// Inner bytes of the packets delivered intact.
    pub delivered_bytes: u64,
    pub corrupted: u64,
    pub unexpected: u64,
    /// Refused by the sending gateway (its drop counters say why).
    pub refused: u64,
}

impl Ledger {
    /// Records a packet as sent.
    pub fn sent(&mut self, message: Message, packet: Vec<u8>) {
        self.sent += 1;
        self.in_flight.insert(message.key(), packet);
    }

    /// A gateway refused the packet with this key: it is no longer in flight.
    pub fn refused(&mut self, key: u64) {
        if self.in_flight.remove(&key).is_some() {
            self.refused += 1;
        }
    }

    /// Checks a packet a host received.
    pub fn received(&mut self, packet: &[u8]) -> Verdict {
        let Some(parsed) = hosts::parse(packet) else {
            // Its demo header is gone: it cannot even be matched to what was sent.
            self.corrupted += 1;
            return Verdict::Corrupted;
        };
        let key = parsed.message.key();
        match self.in_flight.get(&key) {
            None => {
                self.unexpected += 1;
                Verdict::Unexpected
            }
            Some(sent) if sent.as_slice() != packet => {
                self.corrupted += 1;
                self.in_flight.remove(&key);
                Verdict::Corrupted
            }
            Some(_) => {
                self.in_flight.remove(&key);
                self.delivered += 1;
                self.delivered_bytes += packet.len() as u64;
                Verdict::Intact(parsed.message)
            }
        }
    }

    /// Packets sent and not (yet) delivered or refused.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether every packet sent arrived intact.
    pub fn all_delivered(&self) -> bool {
        self.sent == self.delivered && self.corrupted == 0 && self.unexpected == 0
    }
}

#[cfg(test)]
mod tests {
    use super::super::hosts::{Kind, build};
    use super::super::topology::Host;
    use super::*;

    fn packet(exchange: u64, kind: Kind) -> (Message, Vec<u8>) {
        let h = |a: &str| Host {
            name: "h".into(),
            addr: a.parse().unwrap(),
            port: 9,
        };
        let m = Message { kind, exchange };
        let p = build(&h("10.1.1.10"), &h("10.2.1.10"), m, 128, &mut |b| {
            b.fill(0x5a)
        });
        (m, p.unwrap())
    }

    #[test]
    fn delivery_is_checked_byte_for_byte_and_only_once() {
        let mut l = Ledger::default();
        let (m, p) = packet(1, Kind::Request);
        l.sent(m, p.clone());
        assert_eq!(l.in_flight(), 1);
        assert_eq!(l.received(&p), Verdict::Intact(m));
        assert_eq!(l.received(&p), Verdict::Unexpected, "a duplicate");
        assert_eq!((l.delivered, l.unexpected, l.in_flight()), (1, 1, 0));
        assert!(!l.all_delivered());
    }

    #[test]
    fn a_changed_byte_is_corruption_and_a_refusal_leaves_flight() {
        let mut l = Ledger::default();
        let (m, p) = packet(2, Kind::Response);
        l.sent(m, p.clone());
        let mut ttl = p.clone();
        ttl[8] -= 1; // TTL: the UDP checksum does not cover it, the ledger does
        ttl[10] = 0;
        ttl[11] = 0;
        let mut fixed = espo_ipsec::wire::ipv4::Packet::new_unchecked(&mut ttl[..]);
        fixed.fill_checksum();
        assert_eq!(l.received(&ttl), Verdict::Corrupted);
        let (m2, p2) = packet(3, Kind::Request);
        l.sent(m2, p2);
        l.refused(m2.key());
        assert_eq!((l.sent, l.delivered, l.corrupted, l.refused), (2, 0, 1, 1));
        assert_eq!(l.in_flight(), 0);
        assert!(!l.all_delivered());
    }

    #[test]
    fn a_clean_run_is_all_delivered() {
        let mut l = Ledger::default();
        for e in 0..10 {
            let (m, p) = packet(e, Kind::Request);
            l.sent(m, p.clone());
            l.received(&p);
        }
        assert!(l.all_delivered());
        assert_eq!(l.delivered_bytes, 10 * 128);
    }
}
