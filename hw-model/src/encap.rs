//! ESP tunnel-mode encapsulation exactly as the datasheet's §7.7 specifies the bytes:
//! RFC 4303 with RFC 4106 AES-GCM (IV = the 64-bit sequence number), default padding to
//! 16 bytes, RFC 6040 normal-mode ECN with the DSCP copied, IPv4 DF per the SA's
//! `DF_MODE` and identification = the low 16 bits of the sequence number, optional RFC
//! 3948 UDP encapsulation. These are espo's outer header rules (README.md "Outer header
//! rules"); the software engine produces the same bytes.

use crate::packet::*;
use crate::sa_table::{SaEvents, SaSlot};
use espo_fpga::regs::cap::MAX_FRAME_BYTES;
use espo_fpga::{Counter, DfMode, EventCode, Status};

/// ESP payload alignment on transmit: inner packet + padding + 2 trailer bytes is a
/// multiple of the AES block (§7.7).
pub(crate) const PAD_ALIGN_BYTES: usize = 16;

/// Default padding length (RFC 4303 §2.4) for an inner packet of `inner_len` bytes.
pub(crate) fn pad_len(inner_len: usize) -> usize {
    (PAD_ALIGN_BYTES - (inner_len + 2) % PAD_ALIGN_BYTES) % PAD_ALIGN_BYTES
}

/// The outer IPv4 DF bit for `mode` and the inner packet.
fn outer_df(mode: DfMode, inner: &Inner) -> bool {
    match mode {
        DfMode::Set => true,
        DfMode::Clear => false,
        // Copy; an unknown mode is refused at SA_WRITE.
        _ => inner.ipv6 || inner.df,
    }
}

/// Writes `bytes` into `head` at `*at` and moves `*at` past them.
fn put(head: &mut [u8], at: &mut usize, bytes: &[u8]) {
    if let Some(d) = head.get_mut(*at..*at + bytes.len()) {
        d.copy_from_slice(bytes);
    }
    *at += bytes.len();
}

/// A refused TX packet: its status and the counter it feeds.
pub(crate) type TxRefusal = (Status, Counter);

pub(crate) struct Encapsulated {
    pub seq: u64,
    pub inner_len: usize,
    pub events: SaEvents,
}

/// Bytes of outer headers (IP, UDP when encapsulated, ESP header and IV) `sa` puts in front
/// of the inner packet: a frame placed that far into the outgoing buffer has its inner
/// packet where [`encapsulate_in_place`] encrypts it, and its own Ethernet header where the
/// ESP header and IV go.
pub(crate) fn encap_room(sa: &SaSlot) -> usize {
    let ip_hdr = if sa.outer_ipv6 {
        IPV6_HEADER_BYTES
    } else {
        IPV4_HEADER_BYTES
    };
    let udp = if sa.udp_encap { UDP_HEADER_BYTES } else { 0 };
    ip_hdr + udp + ESP_HEADER_BYTES + ESP_IV_BYTES
}

/// Encapsulates the frame (Ethernet header + inner IP packet) in `buf` from byte
/// [`encap_room`]`(sa)` on, where the card's DMA read places it, on `sa`: the outer headers
/// are written in front of the inner packet and the trailer after it, and the packet is
/// encrypted where it lies. `buf` is left holding the outgoing frame. On refusal no
/// sequence number is used, and `buf`'s contents are of no meaning.
pub(crate) fn encapsulate_in_place(
    sa: &mut SaSlot,
    buf: &mut Vec<u8>,
) -> Result<Encapsulated, TxRefusal> {
    let malformed = (Status::Malformed, Counter::TxMalformed);
    let room = encap_room(sa);
    let frame = buf.get(room..).ok_or(malformed)?;
    let ethertype = be16(frame, 12).ok_or(malformed)?;
    let ip = frame.get(ETH_HEADER_BYTES..).ok_or(malformed)?;
    let inner = parse_inner(ip).ok_or(malformed)?;
    let expected_type = if inner.ipv6 {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    };
    if ethertype != expected_type {
        return Err(malformed);
    }
    if !sa.outbound {
        return Err((Status::SaInvalid, Counter::TxSaInvalid));
    }
    if sa.hard_expired {
        return Err((Status::SaExpired, Counter::TxExpired));
    }
    if sa.seq_exhausted || sa.seq >= sa.seq_limit() {
        return Err((Status::SeqExhausted, Counter::TxSeqExhausted));
    }
    let pad = pad_len(inner.len);
    let ct_len = inner.len + pad + 2;
    let esp_len = ESP_HEADER_BYTES + ESP_IV_BYTES + ct_len + ESP_ICV_BYTES;
    let udp_len = if sa.udp_encap {
        UDP_HEADER_BYTES + esp_len
    } else {
        0
    };
    let ip_hdr = if sa.outer_ipv6 {
        IPV6_HEADER_BYTES
    } else {
        IPV4_HEADER_BYTES
    };
    let l4_len = if sa.udp_encap { udp_len } else { esp_len };
    let frame_len = ETH_HEADER_BYTES + ip_hdr + l4_len;
    if frame_len > MAX_FRAME_BYTES as usize {
        return Err((Status::TooBig, Counter::TxTooBig));
    }
    let mut macs = [0u8; 12];
    macs.copy_from_slice(frame.get(..12).ok_or(malformed)?);

    let seq = sa.seq + 1;
    sa.seq = seq;
    let mut events: SaEvents = [None; 3];
    if seq == sa.seq_limit() {
        sa.seq_exhausted = true;
        events[2] = Some((EventCode::SeqExhausted, 0));
    }

    // The inner packet stays where it is (from `ct_at` on); whatever followed it in the
    // frame (Ethernet padding) goes, and the headers are written in front of it.
    let ct_at = ETH_HEADER_BYTES + room;
    buf.truncate(ct_at + inner.len);
    let mut head = [0u8; ETH_HEADER_BYTES + IPV6_HEADER_BYTES + UDP_HEADER_BYTES + 16];
    let mut at = 0;
    put(&mut head, &mut at, &macs);
    let outer_proto = if sa.udp_encap {
        IPPROTO_UDP
    } else {
        IPPROTO_ESP
    };
    if sa.outer_ipv6 {
        put(&mut head, &mut at, &ETHERTYPE_IPV6.to_be_bytes());
        let vtf = (6u32 << 28) | (u32::from(inner.tos) << 20);
        put(&mut head, &mut at, &vtf.to_be_bytes());
        put(&mut head, &mut at, &(l4_len as u16).to_be_bytes());
        put(&mut head, &mut at, &[outer_proto, sa.ttl]);
        put(&mut head, &mut at, &sa.src);
        put(&mut head, &mut at, &sa.dst);
    } else {
        put(&mut head, &mut at, &ETHERTYPE_IPV4.to_be_bytes());
        let total = (IPV4_HEADER_BYTES + l4_len) as u16;
        let df = if outer_df(sa.df_mode, &inner) {
            0x40
        } else {
            0
        };
        // Identification: the low 16 bits of the sequence number (unique per SA while
        // a datagram could live; fragments are reassembled before decapsulation).
        let ident = (seq as u16).to_be_bytes();
        put(&mut head, &mut at, &[0x45, inner.tos]);
        put(&mut head, &mut at, &total.to_be_bytes());
        put(
            &mut head,
            &mut at,
            &[ident[0], ident[1], df, 0, sa.ttl, outer_proto, 0, 0],
        );
        put(&mut head, &mut at, sa.src.get(..4).unwrap_or(&[0; 4]));
        put(&mut head, &mut at, sa.dst.get(..4).unwrap_or(&[0; 4]));
    }
    let udp_at = at;
    if sa.udp_encap {
        put(&mut head, &mut at, &sa.udp_src_port.to_be_bytes());
        put(&mut head, &mut at, &sa.udp_dst_port.to_be_bytes());
        put(&mut head, &mut at, &(udp_len as u16).to_be_bytes());
        put(&mut head, &mut at, &[0, 0]);
    }
    let esp_at = at;
    put(&mut head, &mut at, &sa.spi.to_be_bytes());
    put(&mut head, &mut at, &(seq as u32).to_be_bytes());
    put(&mut head, &mut at, &seq.to_be_bytes());
    debug_assert_eq!(at, ct_at);
    if !sa.outer_ipv6 {
        let hdr = ETH_HEADER_BYTES..ETH_HEADER_BYTES + IPV4_HEADER_BYTES;
        let sum = ipv4_checksum(head.get(hdr).unwrap_or(&[]));
        if let Some(c) = head.get_mut(ETH_HEADER_BYTES + 10..ETH_HEADER_BYTES + 12) {
            c.copy_from_slice(&sum.to_be_bytes());
        }
    }
    if let (Some(d), Some(h)) = (buf.get_mut(..ct_at), head.get(..ct_at)) {
        d.copy_from_slice(h);
    }
    let mut trailer = [0u8; PAD_ALIGN_BYTES + 1];
    for (i, b) in trailer.iter_mut().enumerate().take(pad) {
        *b = i as u8 + 1;
    }
    if let Some(t) = trailer.get_mut(pad..pad + 2) {
        t.copy_from_slice(&[
            pad as u8,
            if inner.ipv6 {
                NEXT_HEADER_IPV6
            } else {
                NEXT_HEADER_IPV4
            },
        ]);
    }
    buf.extend_from_slice(trailer.get(..pad + 2).unwrap_or(&[]));

    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&sa.salt);
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    let mut aad = [0u8; 12];
    aad[..4].copy_from_slice(&sa.spi.to_be_bytes());
    let aad_len = if sa.esn {
        aad[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        aad[8..].copy_from_slice(&(seq as u32).to_be_bytes());
        12
    } else {
        aad[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        8
    };
    let icv = sa
        .cipher
        .seal(
            &nonce,
            aad.get(..aad_len).unwrap_or(&[]),
            buf.get_mut(ct_at..).unwrap_or(&mut []),
        )
        .ok_or((Status::EngineError, Counter::EngineErrors))?;
    buf.extend_from_slice(&icv);
    debug_assert_eq!(buf.len(), frame_len);
    debug_assert_eq!(buf.len() - esp_at, esp_len);

    if sa.udp_encap && sa.outer_ipv6 {
        // IPv6 UDP checksum over the pseudo-header (RFC 8200 §8.1).
        let mut acc = ones_sum(0, &sa.src);
        acc = ones_sum(acc, &sa.dst);
        acc += udp_len as u32 + u32::from(IPPROTO_UDP);
        acc = ones_sum(acc, buf.get(udp_at..).unwrap_or(&[]));
        let mut sum = !fold(acc);
        if sum == 0 {
            sum = 0xFFFF;
        }
        if let Some(c) = buf.get_mut(udp_at + 6..udp_at + 8) {
            c.copy_from_slice(&sum.to_be_bytes());
        }
    }

    let lifetime = sa.account(inner.len as u64);
    events[0] = lifetime[0];
    events[1] = lifetime[1];
    Ok(Encapsulated {
        seq,
        inner_len: inner.len,
        events,
    })
}
