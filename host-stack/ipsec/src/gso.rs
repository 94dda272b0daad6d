//! TUN offloads without I/O: the virtio-net header the TUN device puts in front of every
//! packet when it runs with `IFF_VNET_HDR`, and the segmentation of the super-packets it
//! then delivers (TCP segmentation for `TUN_F_TSO4`/`TSO6`, UDP for `TUN_F_USO4`/`USO6`).
//! Coalescing in the other direction is [`crate::gro`]. The gateway's TUN device and
//! sockets use both; nothing here does I/O.
//!
//! With offloads on, the inside stack hands espo a TCP flow's data as packets of up to 64 KiB
//! with a partial checksum, and espo cuts them into segments of `gso_size` bytes itself — as
//! the NIC would have — each with its own IP length, IPv4 identification, TCP sequence
//! number, flags and a complete checksum, before the PMTU check and encryption see them as
//! ordinary packets. Every length and offset comes from the packet itself and is checked; a
//! header that does not describe the packet is a `malformed` drop.

use core::ops::Range;

use crate::counters::DropReason;
use crate::wire::checksum;

/// Length of `struct virtio_net_hdr` (without `num_buffers`), as TUN reads and writes it.
pub const VNET_HDR_LEN: usize = 10;
/// `flags`: the checksum from `csum_start` on is partial; `csum_offset` says where it goes.
pub const F_NEEDS_CSUM: u8 = 1;
/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
/// `gso_type` bit: the flow uses ECN, CWR goes on the first segment only.
pub const GSO_ECN: u8 = 0x80;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// The virtio-net header (little-endian, as TUN uses on little-endian hosts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads a header; `None` when `bytes` is shorter than [`VNET_HDR_LEN`].
    pub fn parse(bytes: &[u8]) -> Option<VnetHdr> {
        let b = bytes.get(..VNET_HDR_LEN)?;
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// Writes the header into the first [`VNET_HDR_LEN`] bytes; `false` if there are fewer.
    pub fn emit(&self, out: &mut [u8]) -> bool {
        let Some(b) = out.get_mut(..VNET_HDR_LEN) else {
            return false;
        };
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        true
    }
}

/// Where an IP packet's transport header lies: the parts segmentation and coalescing need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub v6: bool,
    /// Length of the IP header (IPv6: the fixed header; extension headers are not parsed).
    pub l3_len: usize,
    pub protocol: u8,
    /// Length of the transport header (TCP with options, or UDP's 8 bytes).
    pub l4_len: usize,
}

impl Layout {
    /// The layout of a whole, unfragmented IPv4 or IPv6 packet carrying TCP or UDP directly;
    /// `None` for anything else or a header that does not fit in `pkt`.
    pub fn of(pkt: &[u8]) -> Option<Layout> {
        let (v6, l3_len, protocol) = match pkt.first()? >> 4 {
            4 => {
                let ihl = usize::from(pkt[0] & 0x0f) * 4;
                let frag = u16::from_be_bytes([*pkt.get(6)?, *pkt.get(7)?]);
                if ihl < 20 || frag & 0x3fff != 0 {
                    return None; // a fragment, or a bad header length
                }
                (false, ihl, *pkt.get(9)?)
            }
            6 => (true, 40, *pkt.get(6)?),
            _ => return None,
        };
        let l4_len = match protocol {
            IPPROTO_TCP => usize::from(*pkt.get(l3_len + 12)? >> 4) * 4,
            IPPROTO_UDP => 8,
            _ => return None,
        };
        if (protocol == IPPROTO_TCP && l4_len < 20) || pkt.len() < l3_len + l4_len {
            return None;
        }
        Some(Layout {
            v6,
            l3_len,
            protocol,
            l4_len,
        })
    }

    pub fn headers_len(&self) -> usize {
        self.l3_len + self.l4_len
    }

    /// The pseudo-header sum of the transport checksum for `l4_bytes` of transport data.
    pub fn pseudo_sum(&self, pkt: &[u8], l4_bytes: usize) -> u16 {
        let (addrs, len) = if self.v6 {
            (
                &pkt[8..40],
                checksum::data(&(l4_bytes as u32).to_be_bytes()),
            )
        } else {
            (&pkt[12..20], l4_bytes as u16)
        };
        checksum::combine(&[checksum::data(addrs), u16::from(self.protocol), len])
    }

    /// Sets the IP length fields for a packet of `total` bytes (IPv4: and its checksum).
    pub fn set_ip_len(&self, pkt: &mut [u8], total: usize) {
        if self.v6 {
            let payload = (total - self.l3_len) as u16;
            pkt[4..6].copy_from_slice(&payload.to_be_bytes());
        } else {
            pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            pkt[10..12].fill(0);
            let sum = !checksum::data(&pkt[..self.l3_len]);
            pkt[10..12].copy_from_slice(&sum.to_be_bytes());
        }
    }

    /// Byte offset of the transport checksum.
    pub fn csum_at(&self) -> usize {
        self.l3_len + if self.protocol == IPPROTO_TCP { 16 } else { 6 }
    }

    /// Computes and writes the transport checksum of a whole packet.
    pub fn fill_l4_checksum(&self, pkt: &mut [u8]) {
        let at = self.csum_at();
        pkt[at..at + 2].fill(0);
        let l4 = &pkt[self.l3_len..];
        let sum = !checksum::combine(&[self.pseudo_sum(pkt, l4.len()), checksum::data(l4)]);
        // UDP sends an all-zero result as all ones (zero means "no checksum").
        let sum = if sum == 0 && self.protocol == IPPROTO_UDP {
            0xffff
        } else {
            sum
        };
        pkt[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Completes a partial checksum (`F_NEEDS_CSUM`): the one's-complement sum from
/// `csum_start` to the end, written at `csum_start + csum_offset`.
pub fn complete_checksum(pkt: &mut [u8], hdr: &VnetHdr) -> Result<(), DropReason> {
    let start = usize::from(hdr.csum_start);
    let at = start + usize::from(hdr.csum_offset);
    if at + 2 > pkt.len() || start > pkt.len() {
        return Err(DropReason::Malformed);
    }
    let sum = !checksum::data(&pkt[start..]);
    pkt[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Makes a packet read with a virtio-net header whole again when it is a single packet
/// (no segmentation): its partial checksum completed. `Ok(false)`: it is a super-packet
/// for [`Segments`].
pub fn finish_single(pkt: &mut [u8], hdr: &VnetHdr) -> Result<bool, DropReason> {
    if hdr.gso_type & !GSO_ECN != GSO_NONE {
        return Ok(false);
    }
    if hdr.flags & F_NEEDS_CSUM != 0 {
        complete_checksum(pkt, hdr)?;
    }
    Ok(true)
}

/// The segments of a TCP or UDP super-packet, written one at a time into caller buffers.
///
/// Every segment's checksums are computed from the super-packet, not from the segment
/// once written: the header words that are the same in every segment are summed once,
/// and each segment adds its own fields and its payload's sum, read from the source while
/// it is copied. Reading a header just written back in wide words can wait for the
/// narrow stores that patched it.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    pkt: &'a [u8],
    layout: Layout,
    seg_size: usize,
    /// Payload bytes already cut.
    done: usize,
    index: u16,
    /// IPv4: the header's sum without its total length, identification and checksum.
    ip_fixed: u64,
    /// The pseudo-header's addresses and protocol, and the transport header's words that
    /// no segment changes (TCP: all but the sequence number, offset-and-flags word and
    /// checksum; UDP: the ports).
    l4_fixed: u64,
    /// The first segment's IPv4 identification, TCP sequence number and TCP
    /// offset-and-flags word.
    id: u16,
    seq: u32,
    tcp_word: u16,
}

impl<'a> Segments<'a> {
    /// Checks that `hdr` describes `pkt` (type matches the packet's family and protocol, a
    /// non-zero segment size); the segments cover the packet's payload.
    pub fn new(pkt: &'a [u8], hdr: &VnetHdr) -> Result<Segments<'a>, DropReason> {
        let layout = Layout::of(pkt).ok_or(DropReason::Malformed)?;
        let fits = match hdr.gso_type & !GSO_ECN {
            GSO_TCPV4 => !layout.v6 && layout.protocol == IPPROTO_TCP,
            GSO_TCPV6 => layout.v6 && layout.protocol == IPPROTO_TCP,
            GSO_UDP_L4 => layout.protocol == IPPROTO_UDP,
            _ => false,
        };
        if !fits || hdr.gso_size == 0 {
            return Err(DropReason::Malformed);
        }
        let sum = |r: Range<usize>| u64::from(checksum::data(&pkt[r]));
        let t = layout.l3_len;
        let (ip_fixed, addrs) = if layout.v6 {
            (0, sum(8..40))
        } else {
            (sum(0..2) + sum(6..10) + sum(12..t), sum(12..20))
        };
        let mut l4_fixed = addrs + u64::from(layout.protocol) + sum(t..t + 4);
        let (mut seq, mut tcp_word) = (0, 0);
        if layout.protocol == IPPROTO_TCP {
            l4_fixed += sum(t + 8..t + 12) + sum(t + 14..t + 16) + sum(t + 18..t + layout.l4_len);
            seq = u32::from_be_bytes([pkt[t + 4], pkt[t + 5], pkt[t + 6], pkt[t + 7]]);
            tcp_word = be16(&pkt[t + 12..t + 14]);
        }
        Ok(Segments {
            pkt,
            layout,
            seg_size: usize::from(hdr.gso_size),
            done: 0,
            index: 0,
            ip_fixed,
            l4_fixed,
            id: if layout.v6 { 0 } else { be16(&pkt[4..6]) },
            seq,
            tcp_word,
        })
    }

    fn payload_len(&self) -> usize {
        self.pkt.len() - self.layout.headers_len()
    }

    /// How many segments there are in all.
    pub fn count(&self) -> usize {
        self.payload_len().div_ceil(self.seg_size).max(1)
    }

    /// Writes the next segment into `out`; returns its length, `None` when every segment
    /// was written or `out` is too small for the next.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        let (hl, chunk) = self.next_extent()?;
        let len = hl + chunk;
        let seg = out.get_mut(..len)?;
        let payload = &self.pkt[hl + self.done..hl + self.done + chunk];
        // The headers are even in length, so the payload's sum lines up with the segment's.
        let payload_sum = checksum::copy_data(&mut seg[hl..], payload);
        self.headers_into(&mut seg[..hl], len, payload_sum);
        Some(len)
    }

    /// The next segment in two parts, for a writer that puts it where it is sent from
    /// (a card's memory) without assembling it first: its headers written into `head`,
    /// and its payload, which lies in the super-packet. Returns the headers' length and
    /// the payload; `None` when every segment was given or `head` is too small. The
    /// segment is the headers followed by the payload, byte for byte what
    /// [`next_into`](Self::next_into) writes.
    pub fn next_parts(&mut self, head: &mut [u8]) -> Option<(usize, &'a [u8])> {
        let (hl, chunk) = self.next_extent()?;
        let head = head.get_mut(..hl)?;
        let pkt = self.pkt;
        let payload = &pkt[hl + self.done..hl + self.done + chunk];
        self.headers_into(head, hl + chunk, checksum::data(payload));
        Some((hl, payload))
    }

    /// The headers' length and the next segment's payload length; `None` when done.
    fn next_extent(&self) -> Option<(usize, usize)> {
        let total = self.payload_len();
        if self.done >= total && !(total == 0 && self.index == 0) {
            return None;
        }
        let chunk = (total - self.done).min(self.seg_size);
        Some((self.layout.headers_len(), chunk))
    }

    /// Writes the next segment's headers (`seg`, exactly the headers' length) for a
    /// segment of `len` bytes whose payload sums to `payload_sum`, and moves past it.
    fn headers_into(&mut self, seg: &mut [u8], len: usize, payload_sum: u16) {
        let l = self.layout;
        let hl = l.headers_len();
        let total = self.payload_len();
        let chunk = len - hl;
        seg.copy_from_slice(&self.pkt[..hl]);
        let mut l4_sum = self.l4_fixed + u64::from(payload_sum);
        let l4_len = len - l.l3_len;
        if l.v6 {
            seg[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4_sum += (l4_len >> 16) as u64 + (l4_len & 0xffff) as u64;
        } else {
            let id = self.id.wrapping_add(self.index);
            seg[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            seg[4..6].copy_from_slice(&id.to_be_bytes());
            let ip_sum = !checksum::fold(self.ip_fixed + len as u64 + u64::from(id));
            seg[10..12].copy_from_slice(&ip_sum.to_be_bytes());
            l4_sum += l4_len as u64;
        }
        let t = l.l3_len;
        let csum = if l.protocol == IPPROTO_TCP {
            let first = self.index == 0;
            let last = self.done + chunk >= total;
            let seq = self.seq.wrapping_add(self.done as u32);
            let mut word = self.tcp_word;
            if !last {
                word &= !0x09; // FIN and PSH only on the last segment
            }
            if !first {
                word &= !0x80; // CWR only on the first (as Linux segments)
            }
            seg[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
            seg[t + 12..t + 14].copy_from_slice(&word.to_be_bytes());
            l4_sum += u64::from(seq >> 16) + u64::from(seq & 0xffff) + u64::from(word);
            !checksum::fold(l4_sum)
        } else {
            // UDP's length is in its header as well as in the pseudo-header.
            seg[t + 4..t + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4_sum += l4_len as u64;
            // UDP sends an all-zero result as all ones (zero means "no checksum").
            match !checksum::fold(l4_sum) {
                0 => 0xffff,
                sum => sum,
            }
        };
        let at = l.csum_at();
        seg[at..at + 2].copy_from_slice(&csum.to_be_bytes());
        self.done += chunk;
        self.index = self.index.wrapping_add(1);
    }
}

/// A run of IPv4 UDP datagrams a UDP socket can send with one `sendmsg` and `UDP_SEGMENT`
/// (UDP generic segmentation offload): the same addresses, ports, TOS, TTL 64 and DF set
/// (what the socket's own headers carry), payloads of one size but the last, which may be
/// shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRun {
    pub src: std::net::SocketAddrV4,
    pub dst: std::net::SocketAddrV4,
    pub tos: u8,
    /// Payload bytes of every datagram but the last.
    pub seg_len: usize,
    /// How many datagrams, from the first one given.
    pub count: usize,
}

/// Most datagrams in one run (the kernel's `UDP_MAX_SEGMENTS`).
pub const UDP_MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one run.
pub const UDP_MAX_RUN_BYTES: usize = 65000;

/// The UDP payload, addresses, ports and TOS of an IPv4 datagram a socket could have sent
/// itself (no options, no fragment, DF set, TTL 64, lengths consistent).
fn udp_datagram(pkt: &[u8]) -> Option<(&[u8], std::net::SocketAddrV4, std::net::SocketAddrV4, u8)> {
    let h = pkt.get(..28)?;
    let total = usize::from(be16(&h[2..4]));
    if h[0] != 0x45 || h[9] != IPPROTO_UDP || be16(&h[6..8]) != 0x4000 || h[8] != 64 {
        return None;
    }
    if total != pkt.len() || usize::from(be16(&h[24..26])) != pkt.len() - 20 {
        return None;
    }
    let addr = |a: &[u8], p: &[u8]| {
        std::net::SocketAddrV4::new(std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]), be16(p))
    };
    Some((
        &pkt[28..],
        addr(&h[12..16], &h[20..22]),
        addr(&h[16..20], &h[22..24]),
        h[1],
    ))
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The UDP payload of an IPv4 datagram [`udp_run`] accepted.
pub fn udp_payload(pkt: &[u8]) -> &[u8] {
    pkt.get(28..).unwrap_or(&[])
}

/// The run that starts at `pkts[0]`, if it is a datagram a socket could send; `count` is 1
/// when nothing follows that can join it.
pub fn udp_run(pkts: &[&[u8]]) -> Option<UdpRun> {
    let (payload, src, dst, tos) = udp_datagram(pkts.first()?)?;
    let seg_len = payload.len();
    if seg_len == 0 {
        return None;
    }
    let mut run = UdpRun {
        src,
        dst,
        tos,
        seg_len,
        count: 1,
    };
    let mut bytes = seg_len;
    for p in &pkts[1..] {
        let Some((pl, s, d, t)) = udp_datagram(p) else {
            break;
        };
        if (s, d, t) != (src, dst, tos)
            || pl.is_empty()
            || pl.len() > seg_len
            || run.count == UDP_MAX_SEGMENTS
            || bytes + pl.len() > UDP_MAX_RUN_BYTES
        {
            break;
        }
        run.count += 1;
        bytes += pl.len();
        if pl.len() < seg_len {
            break; // a shorter one ends the run
        }
    }
    Some(run)
}

#[cfg(test)]
pub(crate) mod tests;
