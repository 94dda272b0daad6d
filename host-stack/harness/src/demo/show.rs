//! One packet shown before and after encapsulation: its headers decoded and the bytes of
//! each part in hex — the inner IP packet, then outer IP | (UDP) | ESP (SPI, sequence
//! number) | IV | ciphertext | ICV.

use std::fmt::Write as _;
use std::net::IpAddr;

use espo_ipsec::wire::{IpProtocol, esp, ip, udp};
use espo_offload::Path;

/// Bytes of each part shown in hex at most.
const HEX_BYTES: usize = 16;

/// The packet the demo shows, as it is followed through the run.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    /// Its ledger key, while it is followed.
    pub key: Option<u64>,
    pub tunnel: usize,
    pub inner: Vec<u8>,
    /// How it left gateway A.
    pub spi: u32,
    pub seq: u64,
    pub path: Option<Path>,
    /// The outer IP packet, as it arrived at gateway B.
    pub outer: Option<Vec<u8>>,
}

impl Shown {
    pub(super) fn start(&mut self, tunnel: usize, inner: &[u8], key: u64) {
        *self = Shown {
            key: Some(key),
            tunnel,
            inner: inner.to_vec(),
            ..Shown::default()
        };
    }

    pub(super) fn sent(&mut self, spi: u32, seq: u64, path: Path) {
        (self.spi, self.seq, self.path) = (spi, seq, Some(path));
    }
}

/// Up to `HEX_BYTES` bytes in hex, and how many more there are.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes.iter().take(HEX_BYTES) {
        if !s.is_empty() {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > HEX_BYTES {
        let _ = write!(s, " .. (+{} bytes)", bytes.len() - HEX_BYTES);
    }
    s
}

/// The IP header of a packet in one line, and its length: `None` if it is no IP packet.
fn ip_line(pkt: &[u8]) -> Option<(String, usize, IpProtocol, usize)> {
    let packet = ip::Packet::new_checked(pkt).ok()?;
    let line = match &packet {
        ip::Packet::Ipv4(p) => format!(
            "IPv4 {} -> {}  ttl {}  id {:#06x}{}  total {} bytes",
            p.src_addr(),
            p.dst_addr(),
            p.hop_limit(),
            p.ident(),
            if p.dont_frag() { "  DF" } else { "" },
            p.total_len()
        ),
        ip::Packet::Ipv6(p) => format!(
            "IPv6 {} -> {}  hop limit {}  total {} bytes",
            p.src_addr(),
            p.dst_addr(),
            p.hop_limit(),
            p.total_len()
        ),
    };
    Some((
        line,
        packet.header_len(),
        packet.next_header(),
        packet.total_len(),
    ))
}

/// The inner packet: its headers and the start of its bytes.
pub fn render_inner(pkt: &[u8]) -> Vec<String> {
    let Some((line, ip_len, next, _)) = ip_line(pkt) else {
        return vec![format!("(not an IP packet) {}", hex(pkt))];
    };
    let mut out = vec![line];
    if next == IpProtocol::Udp
        && let Some(u) = pkt
            .get(ip_len..)
            .and_then(|b| udp::Packet::new_checked(b).ok())
    {
        out.push(format!(
            "UDP {} -> {}  {} bytes of payload",
            u.src_port(),
            u.dst_port(),
            u.payload().len()
        ));
    }
    out.push(format!("inner IP packet | {}", hex(pkt)));
    out
}

/// The tunnel packet: outer IP | (UDP) | ESP | IV | ciphertext | ICV, for an ESP SA with
/// `iv_len` and `icv_len`, around an inner packet of `inner_len` bytes.
pub fn render_outer(pkt: &[u8], iv_len: usize, icv_len: usize, inner_len: usize) -> Vec<String> {
    let Some((line, ip_len, next, total)) = ip_line(pkt) else {
        return vec![format!("(not an IP packet) {}", hex(pkt))];
    };
    let pkt = pkt.get(..total).unwrap_or(pkt);
    let mut out = vec![line];
    let part = |range: std::ops::Range<usize>| pkt.get(range).unwrap_or_default();
    out.push(format!("outer IP   | {}", hex(part(0..ip_len))));
    let mut at = ip_len;
    if next == IpProtocol::Udp {
        let u = part(at..at + udp::HEADER_LEN);
        let ports = udp::Packet::new_checked(u)
            .map(|u| format!("{} -> {}", u.src_port(), u.dst_port()))
            .unwrap_or_default();
        out.push(format!(
            "UDP        | {}  (ESP in UDP, RFC 3948: {ports})",
            hex(u)
        ));
        at += udp::HEADER_LEN;
    } else if next != IpProtocol::Esp {
        out.push(format!(
            "payload    | {}  (not ESP)",
            hex(part(at..pkt.len()))
        ));
        return out;
    }
    let Ok(e) = esp::Packet::new_checked(part(at..pkt.len())) else {
        out.push(format!(
            "ESP        | {}  (truncated)",
            hex(part(at..pkt.len()))
        ));
        return out;
    };
    out.push(format!(
        "ESP        | {}  (SPI {:#010x}, sequence number {})",
        hex(part(at..at + esp::HEADER_LEN)),
        e.spi(),
        e.sequence_number()
    ));
    at += esp::HEADER_LEN;
    out.push(format!("IV         | {}", hex(part(at..at + iv_len))));
    at += iv_len;
    let icv_at = pkt.len().saturating_sub(icv_len).max(at);
    let ct = part(at..icv_at);
    out.push(format!("ciphertext | {}", hex(ct)));
    out.push(format!(
        "             ({} bytes: the inner packet's {inner_len}, {} of padding, pad length, next header)",
        ct.len(),
        ct.len().saturating_sub(inner_len + esp::TRAILER_LEN)
    ));
    out.push(format!("ICV        | {}", hex(part(icv_at..pkt.len()))));
    out
}

/// The address family of an address, for labels.
pub fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_ipsec::wire::ipv4;

    #[test]
    fn hex_shows_the_start_and_counts_the_rest() {
        assert_eq!(hex(&[0, 1, 0xab]), "00 01 ab");
        let long = hex(&[7u8; 40]);
        assert!(long.ends_with(".. (+24 bytes)"), "{long}");
        assert_eq!(long.matches("07").count(), 16);
    }

    #[test]
    fn an_esp_packet_is_cut_into_its_parts() {
        // IPv4 192.0.2.1 -> 192.0.2.2, ESP, SPI 0xa101, seq 1, 8-byte IV, 20 bytes of
        // ciphertext, 16-byte ICV.
        let mut pkt = vec![0u8; 20 + 8 + 8 + 20 + 16];
        let total = pkt.len();
        let mut ip = ipv4::Packet::new_unchecked(&mut pkt[..]);
        ipv4::Repr {
            src_addr: [192, 0, 2, 1].into(),
            dst_addr: [192, 0, 2, 2].into(),
            next_header: IpProtocol::Esp,
            payload_len: total - 20,
            hop_limit: 64,
            tos: 0,
            dont_frag: false,
            ident: 1,
        }
        .emit(&mut ip, &Default::default())
        .unwrap();
        pkt[20..28].copy_from_slice(&[0, 0, 0xa1, 0x01, 0, 0, 0, 1]);
        pkt[total - 16..].fill(0xcc);
        let lines = render_outer(&pkt, 8, 16, 16);
        let text = lines.join("\n");
        assert!(text.contains("IPv4 192.0.2.1 -> 192.0.2.2"), "{text}");
        assert!(text.contains("SPI 0x0000a101, sequence number 1"), "{text}");
        assert!(
            text.contains("(20 bytes: the inner packet's 16, 2 of padding"),
            "{text}"
        );
        assert!(
            text.contains(&format!("ICV        | {}", hex(&[0xcc; 16]))),
            "{text}"
        );
        assert!(render_outer(&[1, 2, 3], 8, 16, 0)[0].contains("not an IP packet"));
    }
}
