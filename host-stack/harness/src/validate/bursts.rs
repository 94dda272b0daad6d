//! The traffic of a validation round: inner packets for the engine to send, and frames
//! from the peer — some reordered, replayed, corrupted, re-addressed, ECN-marked or
//! unprotected — for it to receive, each with the reference's verdict.

use rand::Rng;
use rand::rngs::StdRng;

use super::run::{Expected, Harness};
use super::traffic;
use espo_ipsec::engine::{Decapsulated, Encapsulated};
use espo_ipsec::wire::{IpProtocol, ip};
use espo_offload::CardMode;

impl Harness {
    /// Submits `n` inner packets: mostly to the tunnels, some bypassed, discarded or
    /// matching no policy.
    pub(super) fn send_burst(&mut self, n: u64) -> Vec<u64> {
        let mut tags = Vec::new();
        for _ in 0..n {
            let to = match self.rng.gen_range(0..100) {
                0..=4 => traffic::BYPASS_NET,
                5..=6 => traffic::DISCARD_NET,
                7 => traffic::NO_POLICY_NET,
                _ => {
                    let i = self.rng.gen_range(0..self.out.len());
                    self.out[i].net
                }
            };
            let v6 = to < traffic::BYPASS_NET && self.rng.gen_bool(0.5);
            let tag = self.next_tx;
            self.next_tx += 1;
            let len = traffic::payload_len(&mut self.rng);
            let inner =
                traffic::inner_packet(&mut self.rng, traffic::LOCAL_NET, to, v6, tag as u32, len);
            self.sut.submit(tag, &inner);
            self.sent.insert(tag, inner);
            tags.push(tag);
        }
        self.report.tx.submitted += n;
        self.report.packets += n;
        tags
    }

    /// Builds `n` frames from the peer (some mutated) and hands each to the engine under
    /// test (through the card's port, or the fallback wire once the card is gone) and to
    /// the reference. Returns how many were injected.
    pub(super) fn receive_burst(&mut self, n: u64) -> u64 {
        let mut injected = 0;
        while injected < n {
            let frame = match self.rng.gen_range(0..100) {
                0..=5 if !self.history.is_empty() => {
                    // A replay of something sent before.
                    let i = self.rng.gen_range(0..self.history.len());
                    self.history[i].clone()
                }
                6..=10 if !self.held.is_empty() => {
                    // A packet held back, now reordered (or stale).
                    let i = self.rng.gen_range(0..self.held.len());
                    self.held.swap_remove(i).1
                }
                11..=13 => self.plain_frame(),
                _ => {
                    let Some(mut f) = self.peer_frame() else {
                        continue;
                    };
                    match self.rng.gen_range(0..100) {
                        0..=7 => {
                            self.held.push((self.round, f));
                            continue;
                        }
                        8..=12 => corrupt(&mut self.rng, &mut f),
                        13..=14 => unknown_spi(&mut f),
                        15..=17 => mark_ce(&mut f),
                        _ => {}
                    }
                    f
                }
            };
            if self.history.len() < 4096 {
                self.history.push(frame.clone());
            }
            self.expect(&frame);
            if self.sut.mode() == CardMode::Gone {
                self.fallback.send_bytes(&frame);
            } else {
                self.port.send(&frame);
            }
            injected += 1;
        }
        self.report.rx.injected += injected;
        self.report.packets += injected;
        injected
    }

    /// An ESP frame from the peer on a random inbound tunnel.
    fn peer_frame(&mut self) -> Option<Vec<u8>> {
        let i = self.rng.gen_range(0..self.inb.len());
        let v6 = self.rng.gen_bool(0.5);
        let id = self.next_rx;
        self.next_rx += 1;
        let len = traffic::payload_len(&mut self.rng);
        let inner = traffic::inner_packet(
            &mut self.rng,
            self.inb[i].net,
            traffic::LOCAL_NET,
            v6,
            id,
            len,
        );
        let mut out = vec![0u8; inner.len() + 256];
        match self.peer_tx.outbound.encapsulate(&inner, &mut out) {
            Ok(Encapsulated::Protected { len, .. }) => {
                out.truncate(len);
                Some(eth_frame(&out))
            }
            _ => None,
        }
    }

    /// An unprotected packet: bypassed, or refused as unprotected.
    fn plain_frame(&mut self) -> Vec<u8> {
        let from = if self.rng.gen_bool(0.6) {
            traffic::BYPASS_NET
        } else {
            self.inb[self.rng.gen_range(0..self.inb.len())].net
        };
        let id = self.next_rx;
        self.next_rx += 1;
        let len = self.rng.gen_range(0..600);
        eth_frame(&traffic::inner_packet(
            &mut self.rng,
            from,
            traffic::LOCAL_NET,
            false,
            id,
            len,
        ))
    }

    /// The reference's verdict on a frame, in arrival order.
    fn expect(&mut self, frame: &[u8]) {
        let ip = frame.get(14..).unwrap_or(&[]);
        let key = self.reference.inbound.spi_seq_of(ip);
        let mut buf = ip.to_vec();
        let verdict = self.reference.inbound.decapsulate(&mut buf);
        let packet = match &verdict {
            Ok(Decapsulated::Inner { range, .. }) => buf.get(range.clone()).unwrap_or(&[]).to_vec(),
            Ok(Decapsulated::Bypass) => ip.to_vec(),
            _ => Vec::new(),
        };
        self.expected.push_back(Expected {
            key,
            verdict,
            packet,
            round: self.round,
        });
    }
}

fn eth_frame(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&espo_ipsec::wire::ethernet::EtherType::of_ip(ip).to_bytes());
    f.extend_from_slice(ip);
    f
}

/// Flips a byte of the ESP payload (after the header), so the ICV fails.
fn corrupt(rng: &mut StdRng, frame: &mut [u8]) {
    let len = frame.len();
    if len > 14 + 60 {
        let at = rng.gen_range(14 + 60..len);
        frame[at] ^= 1 << rng.gen_range(0..8);
    }
}

/// Re-addresses the frame to an SPI nobody has (the SPI sits 8 bytes after the end of the
/// outer header, or right after it).
fn unknown_spi(frame: &mut [u8]) {
    let Some(Ok(packet)) = frame.get(14..).map(ip::Packet::new_checked) else {
        return;
    };
    let (hl, proto) = (packet.header_len(), packet.next_header());
    let at = 14 + hl + if proto == IpProtocol::Udp { 8 } else { 0 };
    if matches!(proto, IpProtocol::Esp | IpProtocol::Udp)
        && let Some(spi) = frame.get_mut(at..at + 4)
    {
        spi.copy_from_slice(&0x0DEA_D000u32.to_be_bytes());
    }
}

/// Marks the outer header Congestion Experienced (as a router on the way would).
fn mark_ce(frame: &mut [u8]) {
    // The IPv4 header checksum follows the ECN bits.
    if let Some(Ok(mut packet)) = frame.get_mut(14..).map(ip::Packet::new_checked) {
        packet.set_ecn(0b11);
    }
}
