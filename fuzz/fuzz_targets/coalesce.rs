//! GRO against GSO: TCP segments of a few flows and SAs, built from the input with valid
//! checksums (some left bad on purpose, some of other protocols, out of order, repeated,
//! with other flags), are offered to the coalescer as the inbound thread offers a batch.
//! Every slot it drains must be a packet as it was offered, or a super-packet that espo's
//! segmentation cuts back into exactly the packets merged into it, byte for byte — all of
//! one SA, in the order they came — and, over all slots, every packet offered comes back
//! once, none made up, and no packet is written before one of its flow that came before it.
#![no_main]

use espo_ipsec::gro::{Coalescer, Offer};
use espo_ipsec::gso::{GSO_NONE, Layout, Segments, VNET_HDR_LEN, VnetHdr};
use libfuzzer_sys::fuzz_target;

/// Reads the input a byte at a time; zeros once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

/// One TCP flow's fixed fields and where it stands.
struct FlowState {
    v6: bool,
    sport: u16,
    options: Vec<u8>,
    ack: u32,
    window: u16,
    seq: u32,
    id: u16,
    seg: usize,
}

/// Hop limit (TTL) of every packet.
const TTL: u8 = 64;

/// The IP header, then `l4` (a TCP header with options, or a UDP header), then `payload`;
/// lengths and checksums filled in.
fn packet(f: &FlowState, flow: usize, proto: u8, l4: &[u8], payload: &[u8], id: u16) -> Vec<u8> {
    // The length fields are left zero for `set_ip_len`.
    let mut p = Vec::new();
    if f.v6 {
        p.extend_from_slice(&[0x60, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[proto, TTL]);
        p.extend_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, flow as u8]);
        p.extend_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    } else {
        p.extend_from_slice(&[0x45, 0, 0, 0]);
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&[0x40, 0, TTL, proto, 0, 0]);
        p.extend_from_slice(&[10, 1, 0, flow as u8, 10, 2, 0, 1]);
    }
    p.extend_from_slice(l4);
    p.extend_from_slice(payload);
    let l = Layout::of(&p).expect("a packet made whole");
    let total = p.len();
    l.set_ip_len(&mut p, total);
    l.fill_l4_checksum(&mut p);
    p
}

/// A TCP header of flow `f` with sequence number `seq` and `flags`.
fn tcp_header(f: &FlowState, seq: u32, flags: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&f.sport.to_be_bytes());
    h.extend_from_slice(&443u16.to_be_bytes());
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&f.ack.to_be_bytes());
    h.push((((20 + f.options.len()) / 4) as u8) << 4);
    h.push(flags);
    h.extend_from_slice(&f.window.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(&f.options);
    h
}

/// What a slot held: its packets (cut apart again where it is a super-packet) and whether
/// they came from no SA.
struct Drained {
    packets: Vec<Vec<u8>>,
    no_sa: bool,
}

fn drain(coalescer: &mut Coalescer, out: &mut Vec<Drained>) {
    coalescer.drain(|bytes, count, offered_bytes, no_sa| {
        let hdr = VnetHdr::parse(bytes).expect("a slot starts with its virtio-net header");
        let pkt = &bytes[VNET_HDR_LEN..];
        let packets = if hdr.gso_type == GSO_NONE {
            assert_eq!(count, 1, "a slot without segmentation holds one packet");
            vec![pkt.to_vec()]
        } else {
            let mut cut = Segments::new(pkt, &hdr).expect("a super-packet segmentation takes");
            assert_eq!(cut.count() as u64, count, "segments against packets merged");
            let mut seg = vec![0u8; pkt.len()];
            let mut packets = Vec::new();
            while let Some(n) = cut.next_into(&mut seg) {
                packets.push(seg[..n].to_vec());
            }
            packets
        };
        let bytes: usize = packets.iter().map(Vec::len).sum();
        assert_eq!(bytes as u64, offered_bytes, "bytes written against offered");
        out.push(Drained { packets, no_sa });
    });
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let slots = usize::from(input.byte() % 8) + 1;
    let mut flows: Vec<FlowState> = (0..3)
        .map(|_| {
            let v6 = input.byte() & 1 == 1;
            let options = match input.byte() % 4 {
                0 => Vec::new(),
                1 => vec![1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], // NOP NOP timestamps
                n => vec![1; usize::from(n) * 4],
            };
            FlowState {
                v6,
                sport: 1000 + u16::from(input.byte() % 4),
                options,
                ack: input.u32(),
                window: input.u16(),
                seq: input.u32(),
                id: input.u16(),
                seg: usize::from(input.byte() % 64) * 24 + 1,
            }
        })
        .collect();
    // The packets as offered: SA, bytes, flow (same addresses, ports and protocol).
    let mut offered: Vec<(u32, Vec<u8>, usize)> = Vec::new();
    let mut out = Vec::new();
    let mut coalescer = Coalescer::new(slots);
    for _ in 0..48 {
        if input.0.is_empty() {
            break;
        }
        let op = input.byte();
        let flow = usize::from(op % 3);
        // Mostly one SA per flow, sometimes another (a rekey) or none.
        let spi = match input.byte() % 8 {
            0 => 0,
            1 => 9,
            _ => flow as u32 + 1,
        };
        let f = &mut flows[flow];
        let shape = input.byte();
        let mut len = f.seg;
        if shape & 0x03 == 0 {
            len = usize::from(input.u16()) % (f.seg + 1); // a short one (or none)
        }
        let payload: Vec<u8> = (0..len).map(|i| (i as u8) ^ op).collect();
        let mut seq = f.seq;
        if shape & 0x0c == 0 {
            seq = seq.wrapping_add(input.u32() % 3000); // out of order
        }
        let flags = match (shape >> 4) % 8 {
            0 => 0x18,         // ACK|PSH
            1 => 0x11,         // FIN|ACK
            2 => 0x10 | 0x80,  // ACK|CWR
            3 => input.byte(), // anything
            _ => 0x10,         // ACK
        };
        let id = if shape & 0x40 != 0 && shape & 0x80 != 0 {
            f.id.wrapping_add(2)
        } else {
            f.id
        };
        let udp = shape >> 5 == 7;
        let mut pkt = if udp {
            // UDP between the same addresses and ports
            let mut udp = Vec::new();
            udp.extend_from_slice(&f.sport.to_be_bytes());
            udp.extend_from_slice(&443u16.to_be_bytes());
            udp.extend_from_slice(&[0, 0, 0, 0]);
            packet(f, flow, 17, &udp, &payload, id)
        } else {
            let tcp = tcp_header(f, seq, flags);
            packet(f, flow, 6, &tcp, &payload, id)
        };
        if shape & 0x0f == 0x0e && pkt.len() > 50 {
            let last = pkt.len() - 1;
            pkt[last] ^= 0x5a; // a bad checksum
        }
        f.seq = seq.wrapping_add(len as u32);
        f.id = id.wrapping_add(1);
        if op & 0x80 != 0 {
            // A repeat of the packet before it (a retransmission).
            if let Some((s, p, fl)) = offered.last().cloned() {
                if coalescer.offer(s, &p) == Offer::Full {
                    drain(&mut coalescer, &mut out);
                    out.push(Drained {
                        packets: vec![p.clone()],
                        no_sa: s == 0,
                    });
                }
                offered.push((s, p, fl));
            }
        }
        if coalescer.offer(spi, &pkt) == Offer::Full {
            // The caller writes it itself once the coalescer is drained.
            drain(&mut coalescer, &mut out);
            out.push(Drained {
                packets: vec![pkt.clone()],
                no_sa: spi == 0,
            });
        }
        offered.push((spi, pkt, flow * 2 + usize::from(udp)));
    }
    drain(&mut coalescer, &mut out);

    // Each slot's packets are offered packets of one SA, in the order they came, each
    // taken once: the earliest match not taken yet, of one SA for the whole slot.
    let mut taken = vec![false; offered.len()];
    let mut order: Vec<usize> = Vec::new();
    for d in &out {
        let first = d.packets.first().expect("a slot holds a packet");
        let mut chosen = None;
        for start in (0..offered.len()).filter(|&i| !taken[i] && &offered[i].1 == first) {
            let spi = offered[start].0;
            let mut picks = vec![start];
            for p in &d.packets[1..] {
                let after = *picks.last().unwrap_or(&start);
                match (after + 1..offered.len())
                    .find(|&i| !taken[i] && offered[i].0 == spi && &offered[i].1 == p)
                {
                    Some(i) => picks.push(i),
                    None => break,
                }
            }
            if picks.len() == d.packets.len() {
                chosen = Some((spi, picks));
                break;
            }
        }
        let (spi, picks) =
            chosen.expect("a slot's packets are offered packets of one SA, in order");
        assert_eq!(d.no_sa, spi == 0, "a slot's SA against its packets'");
        for i in picks {
            taken[i] = true;
            order.push(i);
        }
    }
    assert!(taken.iter().all(|&t| t), "a packet offered was not written");
    // Per flow (addresses, ports and protocol, whatever the SA), written in the order offered.
    for flow in 0..flows.len() * 2 {
        let written: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| offered[i].2 == flow)
            .collect();
        assert!(
            written.windows(2).all(|w| w[0] < w[1]),
            "a packet of flow {flow} written before one that came before it: {written:?}"
        );
    }
});
