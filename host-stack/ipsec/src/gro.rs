//! Coalescing decapsulated TCP segments into super-packets for a TUN device with offloads
//! (generic receive offload done by espo), without I/O.
//!
//! The inbound thread offers every packet of a batch it will write to the inside; the
//! coalescer copies it into a slot, appending it to the latest slot of the same flow when
//! it continues it exactly, and the thread then writes each slot once, with a virtio-net
//! header describing it ([`crate::gso`]). One write then carries many segments, and the
//! inside stack forwards them as one packet.
//!
//! A segment joins the slot of its flow only when it is its exact continuation: the same SA,
//! addresses, ports, IPv4 without options with the next identification, the same TOS/TTL/DF
//! (IPv6: traffic class, flow label, hop limit), the same TCP header length, options,
//! acknowledgement number and window, flags ACK (PSH allowed, which closes the slot), a
//! sequence number that starts where the slot ends, a payload no longer than the first
//! segment's (a shorter one closes the slot), a valid TCP checksum, and room left in 64 KiB.
//! Everything else — other protocols, SYN/FIN/RST/URG, out-of-order segments — gets a slot
//! of its own and is written unchanged, in the order packets arrived.

use crate::gso::{F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, Layout, VNET_HDR_LEN, VnetHdr};
use crate::wire::checksum;

const IPPROTO_TCP: u8 = 6;
/// Largest IP packet a slot may grow to.
const MAX_SUPER: usize = 65535;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

#[derive(Debug)]
struct Slot {
    /// The virtio-net header's room, then the packet.
    buf: Box<[u8]>,
    /// Length of the packet (after the header room).
    len: usize,
    spi: u32,
    /// The TCP layout when the slot may still grow; `None` when it is closed.
    open: Option<Layout>,
    /// Payload length of the first segment: the segment size of the super-packet.
    seg_size: usize,
    segments: u16,
    /// Sum of the lengths of the packets it holds, as they were offered.
    offered_bytes: usize,
    next_seq: u32,
    last_id: u16,
}

impl Slot {
    fn pkt(&self) -> &[u8] {
        &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.len]
    }
}

/// A batch's worth of slots, allocated once.
#[derive(Debug)]
pub struct Coalescer {
    slots: Vec<Slot>,
    used: usize,
}

/// What [`Coalescer::offer`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Appended to the slot of its flow.
    Merged,
    /// Copied into a slot of its own.
    Held,
    /// No slot left (or longer than a slot): the caller writes it itself, after
    /// [`Coalescer::drain`]ing, so that order holds.
    Full,
}

impl Coalescer {
    /// A coalescer of `slots` slots, each for a packet of up to 64 KiB.
    pub fn new(slots: usize) -> Coalescer {
        Coalescer {
            slots: (0..slots)
                .map(|_| Slot {
                    buf: vec![0u8; VNET_HDR_LEN + MAX_SUPER].into_boxed_slice(),
                    len: 0,
                    spi: 0,
                    open: None,
                    seg_size: 0,
                    segments: 0,
                    offered_bytes: 0,
                    next_seq: 0,
                    last_id: 0,
                })
                .collect(),
            used: 0,
        }
    }

    /// Takes `pkt`, a packet decapsulated from SA `spi`.
    pub fn offer(&mut self, spi: u32, pkt: &[u8]) -> Offer {
        let layout = candidate(pkt);
        if let Some(l) = layout {
            // Only the latest slot of the flow can be continued, and only by a packet of
            // its SA: a packet of the flow's earlier slot would pass those in between.
            if let Some(i) = (0..self.used)
                .rev()
                .find(|&i| same_flow(self.slots[i].pkt(), pkt, &l))
                && self.slots[i].spi == spi
                && self.merge(i, pkt, &l)
            {
                return Offer::Merged;
            }
        }
        if self.used == self.slots.len() || pkt.len() > MAX_SUPER {
            return Offer::Full;
        }
        let s = &mut self.slots[self.used];
        self.used += 1;
        let to = &mut s.buf[VNET_HDR_LEN..VNET_HDR_LEN + pkt.len()];
        // A candidate's transport bytes are summed as they are copied.
        let l4_sum = match layout {
            Some(l) => {
                to[..l.l3_len].copy_from_slice(&pkt[..l.l3_len]);
                checksum::copy_data(&mut to[l.l3_len..], &pkt[l.l3_len..])
            }
            None => {
                to.copy_from_slice(pkt);
                0
            }
        };
        s.len = pkt.len();
        s.spi = spi;
        s.segments = 1;
        s.offered_bytes = pkt.len();
        s.open = None;
        if let Some(l) = layout {
            let t = l.l3_len;
            let payload = pkt.len() - l.headers_len();
            s.seg_size = payload;
            s.next_seq = be32(&pkt[t + 4..t + 8]).wrapping_add(payload as u32);
            s.last_id = if l.v6 { 0 } else { be16(&pkt[4..6]) };
            // A first segment with a bad checksum is written as it came: merging would
            // have the kernel compute a fresh checksum over it.
            if pkt[t + 13] & TCP_PSH == 0 && checksum_ok(pkt, &l, l4_sum) {
                s.open = Some(l);
            }
        }
        Offer::Held
    }

    fn merge(&mut self, i: usize, pkt: &[u8], l: &Layout) -> bool {
        let s = &mut self.slots[i];
        let Some(sl) = s.open else { return false };
        let t = l.l3_len;
        let payload = &pkt[l.headers_len()..];
        let head = s.pkt();
        let id = be16(&pkt[4..6]);
        if sl != *l
            || be32(&pkt[t + 4..t + 8]) != s.next_seq
            || payload.len() > s.seg_size
            || s.len + payload.len() > MAX_SUPER
            || (!l.v6 && id != s.last_id.wrapping_add(1))
            // ack number, data offset, flags (PSH aside) and window
            || head[t + 8..t + 13] != pkt[t + 8..t + 13]
            || head[t + 13] & !TCP_PSH != pkt[t + 13] & !TCP_PSH
            || head[t + 14..t + 16] != pkt[t + 14..t + 16]
            || head[t + 20..t + l.l4_len] != pkt[t + 20..t + l.l4_len]
            || !headers_match(head, pkt, l)
        {
            return false;
        }
        // The payload goes after the slot's end as its sum is taken; a bad checksum leaves
        // the slot's length as it was, so the bytes copied are not part of it.
        let at = VNET_HDR_LEN + s.len;
        let payload_sum = checksum::copy_data(&mut s.buf[at..at + payload.len()], payload);
        let l4_sum = checksum::combine(&[checksum::data(&pkt[t..l.headers_len()]), payload_sum]);
        if !checksum_ok(pkt, l, l4_sum) {
            return false;
        }
        s.len += payload.len();
        s.next_seq = s.next_seq.wrapping_add(payload.len() as u32);
        s.last_id = id;
        s.segments += 1;
        s.offered_bytes += pkt.len();
        if pkt[t + 13] & TCP_PSH != 0 {
            s.buf[VNET_HDR_LEN + t + 13] |= TCP_PSH;
            s.open = None;
        }
        if payload.len() < s.seg_size {
            s.open = None;
        }
        true
    }

    /// Hands every held slot, in arrival order, to `write` as the bytes to write to the TUN
    /// device (virtio-net header first) with how many packets it holds, their bytes as
    /// offered and whether they came from no SA (SPI 0), and empties the coalescer.
    pub fn drain(&mut self, mut write: impl FnMut(&[u8], u64, u64, bool)) {
        for s in &mut self.slots[..self.used] {
            let mut hdr = VnetHdr::default();
            if s.segments > 1 {
                // Merged slots have a layout: only TCP candidates merge.
                let Some(l) = Layout::of(&s.buf[VNET_HDR_LEN..VNET_HDR_LEN + s.len]) else {
                    continue;
                };
                let pkt = &mut s.buf[VNET_HDR_LEN..VNET_HDR_LEN + s.len];
                l.set_ip_len(pkt, s.len);
                // The kernel completes the checksum from the pseudo-header sum (and
                // segments again where the packet leaves on a link without TSO).
                let at = l.csum_at();
                let pseudo = l.pseudo_sum(pkt, s.len - l.l3_len);
                pkt[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
                hdr = VnetHdr {
                    flags: F_NEEDS_CSUM,
                    gso_type: if l.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                    hdr_len: l.headers_len() as u16,
                    gso_size: s.seg_size as u16,
                    csum_start: l.l3_len as u16,
                    csum_offset: 16,
                };
            }
            hdr.emit(&mut s.buf[..VNET_HDR_LEN]);
            write(
                &s.buf[..VNET_HDR_LEN + s.len],
                u64::from(s.segments),
                s.offered_bytes as u64,
                s.spi == 0,
            );
        }
        self.used = 0;
    }

    /// Packets held (slots in use).
    pub fn held(&self) -> usize {
        self.used
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The layout of a TCP segment that may be coalesced: no IPv4 options, flags ACK or
/// ACK|PSH, some payload, IP length consistent with the packet.
fn candidate(pkt: &[u8]) -> Option<Layout> {
    let l = Layout::of(pkt)?;
    if l.protocol != IPPROTO_TCP || (!l.v6 && l.l3_len != 20) {
        return None;
    }
    let ip_len = if l.v6 {
        usize::from(be16(&pkt[4..6])) + 40
    } else {
        usize::from(be16(&pkt[2..4]))
    };
    let flags = pkt[l.l3_len + 13];
    (ip_len == pkt.len() && flags & !TCP_PSH == TCP_ACK && pkt.len() > l.headers_len()).then_some(l)
}

/// Same addresses and ports.
fn same_flow(a: &[u8], b: &[u8], l: &Layout) -> bool {
    let (addrs, t) = if l.v6 { (8..40, 40) } else { (12..20, 20) };
    a.len() >= l.headers_len()
        && a.first().map(|v| v >> 4) == b.first().map(|v| v >> 4)
        && a.get(9) == b.get(9)
        && a[addrs.clone()] == b[addrs]
        && a[t..t + 4] == b[t..t + 4]
}

/// The IP header fields that must not differ inside a super-packet.
fn headers_match(a: &[u8], b: &[u8], l: &Layout) -> bool {
    if l.v6 {
        // version, traffic class, flow label; next header, hop limit
        a[0..4] == b[0..4] && a[6..8] == b[6..8]
    } else {
        // TOS, DF (and no fragment), TTL, protocol
        a[1] == b[1] && a[6..8] == b[6..8] && a[8..10] == b[8..10]
    }
}

/// Whether the TCP checksum of a whole segment is right, given the [`checksum::data`] sum
/// of its transport bytes.
fn checksum_ok(pkt: &[u8], l: &Layout, l4_sum: u16) -> bool {
    let l4_len = pkt.len() - l.l3_len;
    checksum::combine(&[l.pseudo_sum(pkt, l4_len), l4_sum]) == 0xffff
}

#[cfg(test)]
mod tests;
