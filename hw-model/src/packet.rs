//! Minimal, bounds-checked parsing of what the port and the TX rings carry: Ethernet,
//! outer IPv4/IPv6, UDP (RFC 3948) and ESP headers, and the inner packet. Nothing here
//! can panic on any input; a frame that does not parse yields the counter of its reason.

use espo_fpga::Counter;

pub const ETH_HEADER_BYTES: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
pub const IPPROTO_ESP: u8 = 50;
pub const IPPROTO_UDP: u8 = 17;
pub const IPV4_HEADER_BYTES: usize = 20;
pub const IPV6_HEADER_BYTES: usize = 40;
pub const UDP_HEADER_BYTES: usize = 8;
pub const ESP_HEADER_BYTES: usize = 8;
pub const ESP_IV_BYTES: usize = 8;
pub const ESP_ICV_BYTES: usize = 16;
/// Next-header values of the ESP trailer in tunnel mode.
pub const NEXT_HEADER_IPV4: u8 = 4;
pub const NEXT_HEADER_IPV6: u8 = 41;

pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// One's-complement sum of 16-bit words (an odd tail byte is padded with 0).
pub(crate) fn ones_sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

pub(crate) fn fold(mut acc: u32) -> u16 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u16
}

/// The IPv4 header checksum of `header` (its checksum field included as stored).
pub(crate) fn ipv4_checksum(header: &[u8]) -> u16 {
    !fold(ones_sum(0, header))
}

/// An inner IP packet as posted for encapsulation or found after decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inner {
    pub ipv6: bool,
    /// Length from the IP header (bytes after it are padding).
    pub len: usize,
    /// IPv4 TOS / IPv6 traffic class: DSCP and ECN.
    pub tos: u8,
    /// IPv4 DF bit (false for IPv6).
    pub df: bool,
}

/// Parses an inner IP packet at the start of `pkt`.
pub(crate) fn parse_inner(pkt: &[u8]) -> Option<Inner> {
    let first = *pkt.first()?;
    match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0F) * 4;
            let len = usize::from(be16(pkt, 2)?);
            if ihl < IPV4_HEADER_BYTES || len < ihl || len > pkt.len() {
                return None;
            }
            Some(Inner {
                ipv6: false,
                len,
                tos: *pkt.get(1)?,
                df: pkt.get(6)? & 0x40 != 0,
            })
        }
        6 => {
            let len = usize::from(be16(pkt, 4)?) + IPV6_HEADER_BYTES;
            if len > pkt.len() {
                return None;
            }
            let tos = ((be16(pkt, 0)? >> 4) & 0xFF) as u8;
            Some(Inner {
                ipv6: true,
                len,
                tos,
                df: false,
            })
        }
        _ => None,
    }
}

/// An ESP packet found in a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EspFrame {
    pub outer_ipv6: bool,
    pub dst: [u8; 16],
    /// Outer TOS / traffic class (for the ECN decapsulation rule).
    pub outer_tos: u8,
    pub udp: bool,
    /// Offset of the ESP header in the frame.
    pub esp_at: usize,
    /// Bytes from the ESP header to the end of the outer IP packet.
    pub esp_len: usize,
    pub spi: u32,
    pub seq_low: u32,
}

/// How the port classifies a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Classified {
    Esp(EspFrame),
    Bypass,
    Malformed(Counter),
}

/// Classifies a received frame (datasheet §7.6).
pub(crate) fn classify(frame: &[u8], natt_port: u16) -> Classified {
    let Some(ethertype) = be16(frame, 12) else {
        return Classified::Malformed(Counter::RxRunt);
    };
    let ip = frame.get(ETH_HEADER_BYTES..).unwrap_or(&[]);
    let parsed = match ethertype {
        ETHERTYPE_IPV4 => outer_ipv4(ip),
        ETHERTYPE_IPV6 => outer_ipv6(ip),
        _ => return Classified::Bypass,
    };
    let Some((ipv6, dst, tos, proto, l4_at, l4_end)) = parsed else {
        return Classified::Malformed(Counter::RxBadOuterIp);
    };
    let (udp, esp_at) = match proto {
        Some(IPPROTO_ESP) => (false, l4_at),
        Some(IPPROTO_UDP) => {
            let Some(dport) = be16(ip, l4_at + 2) else {
                return Classified::Malformed(Counter::RxBadEsp);
            };
            let Some(ulen) = be16(ip, l4_at + 4) else {
                return Classified::Malformed(Counter::RxBadEsp);
            };
            if dport != natt_port {
                return Classified::Bypass;
            }
            if usize::from(ulen) < UDP_HEADER_BYTES || l4_at + usize::from(ulen) > l4_end {
                return Classified::Malformed(Counter::RxBadEsp);
            }
            let payload = ip.get(l4_at + UDP_HEADER_BYTES..l4_end).unwrap_or(&[]);
            // RFC 3948: a NAT keepalive is one 0xFF byte; IKE starts with a zero non-ESP marker.
            if payload == [0xFF] || payload.get(..4) == Some(&[0, 0, 0, 0]) || payload.is_empty() {
                return Classified::Bypass;
            }
            (true, l4_at + UDP_HEADER_BYTES)
        }
        _ => return Classified::Bypass,
    };
    let (Some(spi), Some(seq_low)) = (be32(ip, esp_at), be32(ip, esp_at + 4)) else {
        return Classified::Malformed(Counter::RxBadEsp);
    };
    if esp_at + ESP_HEADER_BYTES > l4_end || spi == 0 {
        return Classified::Malformed(Counter::RxBadEsp);
    }
    Classified::Esp(EspFrame {
        outer_ipv6: ipv6,
        dst,
        outer_tos: tos,
        udp,
        esp_at: ETH_HEADER_BYTES + esp_at,
        esp_len: l4_end - esp_at,
        spi,
        seq_low,
    })
}

/// (ipv6, dst, tos, protocol (None for a fragment), L4 offset, IP end) of an outer header.
type Outer = (bool, [u8; 16], u8, Option<u8>, usize, usize);

fn outer_ipv4(ip: &[u8]) -> Option<Outer> {
    let first = *ip.first()?;
    let ihl = usize::from(first & 0x0F) * 4;
    let total = usize::from(be16(ip, 2)?);
    if first >> 4 != 4 || ihl < IPV4_HEADER_BYTES || total < ihl || total > ip.len() {
        return None;
    }
    if ipv4_checksum(ip.get(..ihl)?) != 0 {
        return None;
    }
    let frag = be16(ip, 6)?;
    let proto = if frag & 0x3FFF != 0 {
        None
    } else {
        Some(*ip.get(9)?)
    };
    let mut dst = [0u8; 16];
    dst[..4].copy_from_slice(ip.get(16..20)?);
    Some((false, dst, *ip.get(1)?, proto, ihl, total))
}

fn outer_ipv6(ip: &[u8]) -> Option<Outer> {
    let total = usize::from(be16(ip, 4)?) + IPV6_HEADER_BYTES;
    if ip.first()? >> 4 != 6 || total > ip.len() {
        return None;
    }
    let mut dst = [0u8; 16];
    dst.copy_from_slice(ip.get(24..40)?);
    let tos = ((be16(ip, 0)? >> 4) & 0xFF) as u8;
    Some((true, dst, tos, Some(*ip.get(6)?), IPV6_HEADER_BYTES, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        let len = (20 + payload.len()) as u16;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        let c = ipv4_checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn eth(ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn classifies_esp_udp_keepalive_and_junk() {
        let esp = [0, 0, 0x10, 0x01, 0, 0, 0, 7, 1, 2, 3, 4];
        match classify(&eth(ETHERTYPE_IPV4, &ipv4(50, &esp)), 4500) {
            Classified::Esp(e) => {
                assert_eq!(
                    (e.spi, e.seq_low, e.esp_at, e.esp_len, e.udp),
                    (0x1001, 7, 34, 12, false)
                );
                assert_eq!(&e.dst[..4], &[192, 0, 2, 2]);
            }
            other => panic!("{other:?}"),
        }
        let mut udp = vec![0x11, 0x94, 0x11, 0x94, 0, 20, 0, 0];
        udp.extend_from_slice(&esp);
        assert!(matches!(
            classify(&eth(ETHERTYPE_IPV4, &ipv4(17, &udp)), 4500),
            Classified::Esp(EspFrame { udp: true, .. })
        ));
        let keepalive = [0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xFF];
        assert_eq!(
            classify(&eth(ETHERTYPE_IPV4, &ipv4(17, &keepalive)), 4500),
            Classified::Bypass
        );
        assert_eq!(
            classify(&eth(ETHERTYPE_IPV4, &ipv4(6, &[0; 20])), 4500),
            Classified::Bypass
        );
        assert_eq!(
            classify(&[0; 10], 4500),
            Classified::Malformed(Counter::RxRunt)
        );
        let mut bad = ipv4(50, &esp);
        bad[10] ^= 1;
        assert_eq!(
            classify(&eth(ETHERTYPE_IPV4, &bad), 4500),
            Classified::Malformed(Counter::RxBadOuterIp)
        );
        assert_eq!(classify(&eth(0x0806, &[0; 28]), 4500), Classified::Bypass);
    }

    #[test]
    fn inner_length_comes_from_the_header() {
        let p = ipv4(6, &[0; 8]);
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(parse_inner(&padded).map(|i| i.len), Some(28));
        assert_eq!(parse_inner(&p[..27]), None);
        assert_eq!(parse_inner(&[0x60, 0, 0, 0, 0, 1]), None);
    }
}
