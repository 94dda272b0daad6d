//! The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers of RFC 768 and
//! RFC 8200 §8.1.
//!
//! `data` and the pseudo-header functions return the folded one's-complement *sum*; the
//! value written into a header is its complement (`!sum`). A buffer whose stored checksum
//! is correct sums to `0xffff`.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::IpProtocol;

/// Folds a wide one's-complement accumulator to 16 bits.
pub fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The one's-complement sum of `bytes` taken as big-endian 16-bit words, an odd final byte
/// padded with a zero byte.
pub fn data(bytes: &[u8]) -> u16 {
    // The sum does not depend on byte order (RFC 1071 §2(B)): summing little-endian words
    // gives the byte-swapped sum, swapped back at the end — no swap per word. Summing the
    // 32-bit halves of 64-bit words into two 64-bit accumulators gives the same
    // one's-complement sum as summing 16-bit words, because 2^16 ≡ 1 (mod 2^16 − 1), and
    // lets the compiler vectorize the loop (2^32 words of 2^32 each cannot overflow).
    let (mut lo, mut hi) = (0u64, 0u64);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        lo += w & 0xffff_ffff;
        hi += w >> 32;
    }
    finish(lo, hi, words.remainder())
}

/// Copies `src` into `dst` (as many bytes as the shorter holds) and returns the
/// [`data`] sum of what was copied: one pass over the bytes where a copy and a sum take two.
pub fn copy_data(dst: &mut [u8], src: &[u8]) -> u16 {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    let (mut lo, mut hi) = (0u64, 0u64);
    let mut to = dst.chunks_exact_mut(8);
    let mut from = src.chunks_exact(8);
    for (d, s) in (&mut to).zip(&mut from) {
        let w = u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        d.copy_from_slice(&w.to_le_bytes());
        lo += w & 0xffff_ffff;
        hi += w >> 32;
    }
    to.into_remainder().copy_from_slice(from.remainder());
    finish(lo, hi, from.remainder())
}

/// The sum of [`data`] from its two word accumulators and the bytes after the last word.
fn finish(lo: u64, hi: u64, rest: &[u8]) -> u16 {
    let mut sum = u128::from(lo) + u128::from(hi);
    let mut tail = rest.chunks_exact(2);
    for half in &mut tail {
        if let &[a, b] = half {
            sum += u128::from(u16::from_le_bytes([a, b]));
        }
    }
    if let [last] = tail.remainder() {
        sum += u128::from(*last);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    (sum as u16).swap_bytes()
}

/// Combines partial one's-complement sums (each over an even number of bytes, or the last).
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The sum of the IPv4 pseudo-header: source, destination, zero, protocol, length.
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: IpProtocol, length: u16) -> u16 {
    combine(&[
        data(&src.octets()),
        data(&dst.octets()),
        u16::from(u8::from(protocol)),
        length,
    ])
}

/// The sum of the IPv6 pseudo-header: source, destination, 32-bit upper-layer length,
/// three zero bytes, next header.
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, protocol: IpProtocol, length: u32) -> u16 {
    combine(&[
        data(&src.octets()),
        data(&dst.octets()),
        data(&length.to_be_bytes()),
        u16::from(u8::from(protocol)),
    ])
}

/// The pseudo-header sum for an address pair of either family. A mixed pair (which no
/// packet carries) sums both addresses as they are with the IPv6 layout; it never panics.
pub fn pseudo_header(src: &IpAddr, dst: &IpAddr, protocol: IpProtocol, length: u32) -> u16 {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            // An IPv4 datagram is at most 65535 bytes; a larger length cannot verify.
            let length = u16::try_from(length).unwrap_or(u16::MAX);
            pseudo_header_v4(src, dst, protocol, length)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => pseudo_header_v6(src, dst, protocol, length),
        _ => combine(&[
            addr_sum(src),
            addr_sum(dst),
            data(&length.to_be_bytes()),
            u16::from(u8::from(protocol)),
        ]),
    }
}

fn addr_sum(addr: &IpAddr) -> u16 {
    match addr {
        IpAddr::V4(addr) => data(&addr.octets()),
        IpAddr::V6(addr) => data(&addr.octets()),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// Reference: plain RFC 1071 loop over 16-bit words.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = match pair {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                [hi] => u16::from_be_bytes([*hi, 0]),
                _ => 0,
            };
            sum += u32::from(word);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(!data(&bytes), 0x220d);
    }

    #[test]
    fn captured_ipv4_header_sums_to_ffff() {
        // IPv4 header of a captured UDP datagram 192.0.2.1 -> 198.51.100.7, checksum 0x3ba4.
        let header = [
            0x45, 0xb8, 0x00, 0x21, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3b, 0xa4, 0xc0, 0x00,
            0x02, 0x01, 0xc6, 0x33, 0x64, 0x07,
        ];
        assert_eq!(data(&header), 0xffff);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn pseudo_header_v4_layout() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&src.octets());
        bytes[4..8].copy_from_slice(&dst.octets());
        bytes[9] = 17;
        bytes[10..12].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            pseudo_header_v4(&src, &dst, IpProtocol::Udp, 100),
            data(&bytes)
        );
        assert_eq!(
            pseudo_header(&src.into(), &dst.into(), IpProtocol::Udp, 100),
            data(&bytes)
        );
    }

    #[test]
    fn pseudo_header_v6_layout() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut bytes = [0u8; 40];
        bytes[..16].copy_from_slice(&src.octets());
        bytes[16..32].copy_from_slice(&dst.octets());
        bytes[32..36].copy_from_slice(&70_000u32.to_be_bytes());
        bytes[39] = 58;
        let sum = pseudo_header_v6(&src, &dst, IpProtocol::Icmpv6, 70_000);
        assert_eq!(sum, data(&bytes));
        assert_eq!(
            pseudo_header(&src.into(), &dst.into(), IpProtocol::Icmpv6, 70_000),
            sum
        );
    }

    proptest! {
        #[test]
        fn matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            // 0x0000 and 0xffff are both one's-complement zero; compare modulo that.
            let ours = data(&bytes);
            let theirs = reference(&bytes);
            prop_assert!(ours == theirs || (ours % 0xffff == theirs % 0xffff));
        }

        #[test]
        fn copy_data_copies_and_sums(bytes in proptest::collection::vec(any::<u8>(), 0..600), spare in 0usize..9) {
            let mut dst = vec![0xa5u8; bytes.len() + spare];
            prop_assert_eq!(copy_data(&mut dst, &bytes), reference(&bytes));
            prop_assert_eq!(&dst[..bytes.len()], &bytes[..]);
            prop_assert!(dst[bytes.len()..].iter().all(|&b| b == 0xa5));
            // A shorter destination takes (and sums) only what fits.
            let mut short = vec![0u8; bytes.len() / 2];
            prop_assert_eq!(copy_data(&mut short, &bytes), reference(&bytes[..bytes.len() / 2]));
            prop_assert_eq!(&short[..], &bytes[..bytes.len() / 2]);
        }

        #[test]
        fn combine_of_halves_equals_whole(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            split in 0usize..300,
        ) {
            let split = (split * 2).min(bytes.len() & !1);
            let (a, b) = bytes.split_at(split);
            prop_assert_eq!(combine(&[data(a), data(b)]) % 0xffff, data(&bytes) % 0xffff);
        }
    }
}
