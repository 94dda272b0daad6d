//! ESP tunnel-mode decapsulation (datasheet §7.8): replay pre-check, ICV, window update,
//! trailer and inner-packet checks, TFC padding trimmed, RFC 6040 ECN, exact counters.

use crate::packet::*;
use crate::replay::{Verdict, infer_esn};
use crate::sa_table::{SaEvents, SaSlot};
use espo_fpga::{Counter, Status};

/// A received ESP packet the card refused; `seq` is 0 when not yet known.
pub(crate) struct RxRefusal {
    pub status: Status,
    pub counter: Counter,
    pub seq: u64,
}

fn refuse(status: Status, counter: Counter, seq: u64) -> RxRefusal {
    RxRefusal {
        status,
        counter,
        seq,
    }
}

pub(crate) struct Decapsulated {
    pub seq: u64,
    pub inner_ipv6: bool,
    pub events: SaEvents,
}

/// Decapsulates `esp` of `frame` on `sa` into `out` (Ethernet header + inner packet).
pub(crate) fn decapsulate(
    sa: &mut SaSlot,
    frame: &[u8],
    esp: &EspFrame,
    out: &mut Vec<u8>,
) -> Result<Decapsulated, RxRefusal> {
    if sa.hard_expired {
        return Err(refuse(Status::SaExpired, Counter::RxExpired, 0));
    }
    let fixed = ESP_HEADER_BYTES + ESP_IV_BYTES + ESP_ICV_BYTES;
    let ct_len =
        esp.esp_len
            .checked_sub(fixed)
            .ok_or(refuse(Status::Malformed, Counter::RxBadEsp, 0))?;
    if ct_len < 4 || ct_len % 4 != 0 {
        return Err(refuse(Status::Malformed, Counter::RxBadEsp, 0));
    }
    let inferred = if sa.esn {
        infer_esn(sa.replay.top(), sa.replay.size(), esp.seq_low)
    } else {
        Some(u64::from(esp.seq_low))
    };
    let (verdict, seq) = match inferred {
        Some(seq) => (sa.replay.verdict(seq), seq),
        None => (Verdict::Stale, u64::from(esp.seq_low)),
    };
    let status = match verdict {
        Verdict::Fresh => None,
        Verdict::Replayed => Some(Status::Replay),
        Verdict::Stale => Some(Status::Stale),
    };
    if let Some(status) = status {
        sa.replay_drops = sa.replay_drops.wrapping_add(1);
        return Err(refuse(status, Counter::RxReplay, seq));
    }
    let iv_at = esp.esp_at + ESP_HEADER_BYTES;
    let ct_at = iv_at + ESP_IV_BYTES;
    let bad_esp = || refuse(Status::Malformed, Counter::RxBadEsp, seq);
    let iv = frame.get(iv_at..ct_at).ok_or_else(bad_esp)?;
    let ct = frame.get(ct_at..ct_at + ct_len).ok_or_else(bad_esp)?;
    let icv = frame
        .get(ct_at + ct_len..ct_at + ct_len + ESP_ICV_BYTES)
        .ok_or_else(bad_esp)?;

    out.clear();
    out.extend_from_slice(frame.get(..12).ok_or_else(bad_esp)?);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(ct);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(&sa.salt);
    nonce[4..].copy_from_slice(iv);
    let mut aad = [0u8; 12];
    aad[..4].copy_from_slice(&esp.spi.to_be_bytes());
    let aad_len = if sa.esn {
        aad[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        aad[8..].copy_from_slice(&esp.seq_low.to_be_bytes());
        12
    } else {
        aad[4..8].copy_from_slice(&esp.seq_low.to_be_bytes());
        8
    };
    let pt = out.get_mut(ETH_HEADER_BYTES..).unwrap_or(&mut []);
    if !sa
        .cipher
        .open(&nonce, aad.get(..aad_len).unwrap_or(&[]), pt, icv)
    {
        sa.icv_failures = sa.icv_failures.wrapping_add(1);
        return Err(refuse(Status::IcvFail, Counter::RxIcvFail, seq));
    }
    sa.replay.update(seq);

    let bad_trailer = || refuse(Status::Malformed, Counter::RxBadTrailer, seq);
    let pt = out.get(ETH_HEADER_BYTES..).unwrap_or(&[]);
    let (pad_len, next_header) = match pt {
        [.., p, n] => (usize::from(*p), *n),
        _ => return Err(bad_trailer()),
    };
    let body_len = ct_len.checked_sub(pad_len + 2).ok_or_else(bad_trailer)?;
    let pad = pt
        .get(body_len..body_len + pad_len)
        .ok_or_else(bad_trailer)?;
    if pad
        .iter()
        .enumerate()
        .any(|(i, &b)| usize::from(b) != i + 1)
    {
        return Err(bad_trailer());
    }
    let inner_ipv6 = match next_header {
        NEXT_HEADER_IPV4 => false,
        NEXT_HEADER_IPV6 => true,
        _ => return Err(bad_trailer()),
    };
    let bad_inner = || refuse(Status::Malformed, Counter::RxBadInner, seq);
    let inner = parse_inner(pt.get(..body_len).ok_or_else(bad_inner)?).ok_or_else(bad_inner)?;
    if inner.ipv6 != inner_ipv6 {
        return Err(bad_inner());
    }
    let ecn = decap_ecn(esp.outer_tos & 3, inner.tos & 3).ok_or(refuse(
        Status::EcnDrop,
        Counter::RxEcnDrop,
        seq,
    ))?;
    out.truncate(ETH_HEADER_BYTES + inner.len);
    let ethertype = if inner_ipv6 {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    };
    if let Some(t) = out.get_mut(12..14) {
        t.copy_from_slice(&ethertype.to_be_bytes());
    }
    if ecn != inner.tos & 3 {
        set_ecn(
            out.get_mut(ETH_HEADER_BYTES..).unwrap_or(&mut []),
            inner_ipv6,
            ecn,
        );
    }
    let events = sa.account(inner.len as u64);
    Ok(Decapsulated {
        seq,
        inner_ipv6,
        events,
    })
}

/// RFC 6040 §4.2 decapsulation: the inner ECN field to forward, or `None` to drop.
pub(crate) fn decap_ecn(outer: u8, inner: u8) -> Option<u8> {
    const NOT_ECT: u8 = 0;
    const ECT1: u8 = 1;
    const CE: u8 = 3;
    match (inner, outer) {
        (NOT_ECT, CE) => None,
        (NOT_ECT, _) => Some(NOT_ECT),
        (CE, _) => Some(CE),
        (_, CE) => Some(CE),
        (_, ECT1) => Some(ECT1),
        (i, _) => Some(i),
    }
}

fn set_ecn(ip: &mut [u8], ipv6: bool, ecn: u8) {
    if ipv6 {
        if let Some(b) = ip.get_mut(1) {
            *b = (*b & !0x30) | (ecn << 4);
        }
    } else {
        if let Some(b) = ip.get_mut(1) {
            *b = (*b & !3) | ecn;
        }
        let ihl = usize::from(ip.first().copied().unwrap_or(0) & 0x0F) * 4;
        if let Some(c) = ip.get_mut(10..12) {
            c.copy_from_slice(&[0, 0]);
        }
        let sum = ipv4_checksum(ip.get(..ihl).unwrap_or(&[]));
        if let Some(c) = ip.get_mut(10..12) {
            c.copy_from_slice(&sum.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6040_table() {
        // Indexed by codepoint: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE (RFC 6040 Figure 4).
        let expected = [
            [Some(0), Some(0), Some(0), None],
            [Some(1), Some(1), Some(1), Some(3)],
            [Some(2), Some(1), Some(2), Some(3)],
            [Some(3), Some(3), Some(3), Some(3)],
        ];
        for inner in 0..4u8 {
            for outer in 0..4u8 {
                assert_eq!(
                    decap_ecn(outer, inner),
                    expected[inner as usize][outer as usize],
                    "inner {inner} outer {outer}"
                );
            }
        }
    }
}
