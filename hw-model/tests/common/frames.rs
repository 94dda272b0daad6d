//! Test traffic: an SA entry and Ethernet frames carrying IPv4 or IPv6 packets.

use espo_fpga::{AlgId, SaEntry};

/// An AES-GCM-128 SA between 192.0.2.1 and 192.0.2.2.
pub fn gcm_sa(outbound: bool, spi: u32, key: [u8; 16], salt: [u8; 4]) -> SaEntry {
    let mut e = SaEntry {
        outbound,
        spi,
        alg: Some(AlgId::AesGcm128),
        replay_window: 64,
        salt,
        ..SaEntry::default()
    };
    e.key[..16].copy_from_slice(&key);
    e.src_addr[..4].copy_from_slice(&[192, 0, 2, 1]);
    e.dst_addr[..4].copy_from_slice(&[192, 0, 2, 2]);
    e
}

/// Sets `e`'s outer header: IPv6 between 2001:db8::1 and 2001:db8::2 when `ipv6` (else
/// the IPv4 addresses it has), UDP 4500 both ways when `udp` (RFC 3948).
pub fn set_outer(e: &mut SaEntry, ipv6: bool, udp: bool) {
    e.outer_ipv6 = ipv6;
    e.udp_encap = udp;
    e.udp_src_port = 4500;
    e.udp_dst_port = 4500;
    if ipv6 {
        e.src_addr = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        e.dst_addr = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    }
}

/// An Ethernet frame carrying an IPv4/UDP packet of `len` total IP bytes.
pub fn ipv4_frame(len: usize, tos: u8, id: u16, fill: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![
        0x45, tos, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 11, 0, 1, 10, 12, 0, 1,
    ];
    ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let payload = len - 20;
    ip.extend_from_slice(&[0x30, 0x39, 0x30, 0x39]);
    ip.extend_from_slice(&(payload as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend((0..payload.saturating_sub(8)).map(|i| fill.wrapping_add(i as u8)));
    f.extend_from_slice(&ip);
    f
}

/// An Ethernet frame carrying an IPv6/UDP packet of `len` total IP bytes.
pub fn ipv6_frame(len: usize, tc: u8, fill: u8) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xDD];
    let vtf = (6u32 << 28) | (u32::from(tc) << 20) | 0x12345;
    f.extend_from_slice(&vtf.to_be_bytes());
    f.extend_from_slice(&((len - 40) as u16).to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend((0..len - 40).map(|i| fill.wrapping_add(i as u8)));
    f
}
