//! Fragmentation of an IPv4 datagram (RFC 791 §3.2): pieces of at most a given length,
//! each with the original header, its offset, and More Fragments set on all but the
//! last. A datagram that is itself a fragment is cut at its own offset, its last piece
//! keeping its More Fragments flag; pieces never end past the 65535 bytes a datagram may
//! hold (so the 13-bit offset never wraps). Datagrams with options are not fragmented
//! (which options a fragment copies is not worth the code for what espo sees).

use super::{HEADER_LEN, Packet};

/// The largest IPv4 datagram, header included (its 16-bit total length): no fragment may
/// end beyond it, which also keeps every offset within the 13-bit field.
const MAX_DATAGRAM_LEN: usize = u16::MAX as usize;

/// Why a packet could not be fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentError {
    /// Not a valid IPv4 packet.
    Malformed,
    /// It carries IP options (not fragmented by espo; counted as too big).
    Options,
    /// `max_len` leaves no room for 8 bytes of payload.
    TooSmall,
    /// The packet is itself a fragment ending past the largest datagram (65535 bytes with
    /// its header): the pieces' offsets would not fit the 13-bit field.
    Overflow,
}

/// The fragments of an IPv4 packet, each at most `max_len` bytes (RFC 791 §3.2).
#[derive(Debug)]
pub struct Fragments<'a> {
    header: [u8; HEADER_LEN],
    payload: &'a [u8],
    /// Offset of `payload` in the original datagram, in bytes.
    base_offset: usize,
    /// Whether the original packet itself had more fragments after it.
    base_more: bool,
    chunk: usize,
    at: usize,
}

impl<'a> Fragments<'a> {
    /// The fragments of `pkt` (a whole IPv4 datagram, or itself a fragment), each at most
    /// `max_len` bytes long.
    pub fn new(pkt: &'a [u8], max_len: usize) -> Result<Fragments<'a>, FragmentError> {
        let p = Packet::new_checked(pkt).map_err(|_| FragmentError::Malformed)?;
        if p.header_len() != HEADER_LEN {
            return Err(FragmentError::Options);
        }
        let chunk = max_len.saturating_sub(HEADER_LEN) & !7;
        if chunk == 0 {
            return Err(FragmentError::TooSmall);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&pkt[..HEADER_LEN]);
        let end = usize::from(p.total_len());
        let payload = pkt.get(HEADER_LEN..end).ok_or(FragmentError::Malformed)?;
        // A packet that is itself a fragment is cut at its own offset in the original
        // datagram; the pieces must still fit it.
        let base_offset = usize::from(p.frag_offset());
        if HEADER_LEN + base_offset + payload.len() > MAX_DATAGRAM_LEN {
            return Err(FragmentError::Overflow);
        }
        Ok(Fragments {
            header,
            payload,
            base_offset,
            base_more: p.more_frags(),
            chunk,
            at: 0,
        })
    }

    /// Writes the next fragment into `out`; returns its length, or `None` when done (or
    /// `out` is too small).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.at >= self.payload.len() {
            return None;
        }
        let len = self.chunk.min(self.payload.len() - self.at);
        let last = self.at + len == self.payload.len();
        // Within the 13-bit field by construction (`new` checked the end).
        let offset = u16::try_from(self.base_offset + self.at).ok()?;
        let total = HEADER_LEN + len;
        let out = out.get_mut(..total)?;
        out[..HEADER_LEN].copy_from_slice(&self.header);
        out[HEADER_LEN..].copy_from_slice(&self.payload[self.at..self.at + len]);
        let mut p = Packet::new_unchecked(&mut *out);
        p.set_total_len(total as u16);
        // The last piece ends where the original did: more fragments follow it only if
        // they followed the original.
        p.set_more_frags(!last || self.base_more);
        p.set_frag_offset(offset);
        p.fill_checksum();
        self.at += len;
        Some(total)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::{ChecksumCaps, IpProtocol, ipv4};
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    fn packet(len: usize, df: bool) -> Vec<u8> {
        let mut p = vec![0u8; len];
        let repr = ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 1, 0, 2),
            dst_addr: Ipv4Addr::new(10, 2, 0, 2),
            next_header: IpProtocol::Udp,
            payload_len: len - HEADER_LEN,
            hop_limit: 64,
            tos: 0,
            dont_frag: df,
            ident: 0x1234,
        };
        repr.emit(
            &mut Packet::new_unchecked(&mut p[..]),
            &ChecksumCaps::default(),
        )
        .unwrap();
        for (i, b) in p[HEADER_LEN..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        p
    }

    /// Reassembles fragments (no overlap handling: they come from `Fragments`).
    fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = Vec::new();
        for f in frags {
            let p = Packet::new_checked(&f[..]).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(
                usize::from(p.frag_offset()),
                payload.len(),
                "fragments are contiguous"
            );
            payload.extend_from_slice(p.payload());
        }
        payload
    }

    #[test]
    fn fragments_cover_the_payload_in_order() {
        let pkt = packet(3000, false);
        let mut f = Fragments::new(&pkt, 1416).unwrap();
        let mut frags = Vec::new();
        let mut buf = [0u8; 2000];
        while let Some(n) = f.next_into(&mut buf) {
            frags.push(buf[..n].to_vec());
        }
        assert_eq!(frags.len(), 3);
        for (i, fr) in frags.iter().enumerate() {
            let p = Packet::new_checked(&fr[..]).unwrap();
            assert!(fr.len() <= 1416);
            assert_eq!(p.more_frags(), i < 2);
            assert_eq!(p.ident(), 0x1234);
            if i < 2 {
                assert_eq!(p.payload().len() % 8, 0);
            }
        }
        assert_eq!(reassemble(&frags), pkt[HEADER_LEN..]);
    }

    #[test]
    fn fragments_refuse_options_and_tiny_mtus() {
        let mut opt = packet(200, false);
        opt[0] = 0x46;
        assert_eq!(
            Fragments::new(&opt, 100).unwrap_err(),
            FragmentError::Options
        );
        assert_eq!(
            Fragments::new(&packet(200, false), 27).unwrap_err(),
            FragmentError::TooSmall
        );
        assert_eq!(
            Fragments::new(&[1, 2, 3], 500).unwrap_err(),
            FragmentError::Malformed
        );
    }

    /// `pkt` made a fragment at `offset_bytes` of its original datagram, MF as given.
    fn as_fragment(mut pkt: Vec<u8>, offset_bytes: u16, more: bool) -> Vec<u8> {
        let mut p = Packet::new_unchecked(&mut pkt[..]);
        p.set_frag_offset(offset_bytes);
        p.set_more_frags(more);
        p.fill_checksum();
        pkt
    }

    fn all_fragments(pkt: &[u8], max_len: usize) -> Vec<Vec<u8>> {
        let mut f = Fragments::new(pkt, max_len).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        while let Some(n) = f.next_into(&mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    #[test]
    fn a_late_fragment_is_cut_at_its_own_offset_and_keeps_its_more_fragments_flag() {
        for more in [true, false] {
            let pkt = as_fragment(packet(3000, false), 1480, more);
            let frags = all_fragments(&pkt, 1416);
            assert_eq!(frags.len(), 3);
            let mut expected_offset = 1480;
            for (i, fr) in frags.iter().enumerate() {
                let p = Packet::new_checked(&fr[..]).unwrap();
                assert_eq!(usize::from(p.frag_offset()), expected_offset, "{i}");
                let last = i == frags.len() - 1;
                assert_eq!(
                    p.more_frags(),
                    !last || more,
                    "piece {i}, original MF {more}"
                );
                expected_offset += p.payload().len();
            }
            assert_eq!(expected_offset, 1480 + 3000 - HEADER_LEN);
        }
    }

    #[test]
    fn pieces_past_the_largest_fragment_offset_are_refused_not_wrapped() {
        // 64000 + 2980 bytes of data: past 65535, where the 13-bit offset (in 8-byte units)
        // and the datagram's 16-bit length end. Fragmenting it would wrap the offsets.
        let pkt = as_fragment(packet(3000, false), 64000, true);
        assert_eq!(
            Fragments::new(&pkt, 1416).unwrap_err(),
            FragmentError::Overflow
        );
        // The largest that fits: the reassembled datagram (header included) is 65535 bytes.
        let data = 65535 - HEADER_LEN - 64000;
        let pkt = as_fragment(packet(HEADER_LEN + data, false), 64000, false);
        let frags = all_fragments(&pkt, 1416);
        let last = Packet::new_checked(&frags.last().unwrap()[..]).unwrap();
        assert_eq!(
            usize::from(last.frag_offset()) + last.payload().len(),
            64000 + data
        );
        let pkt = as_fragment(packet(HEADER_LEN + data + 1, false), 64000, false);
        assert_eq!(
            Fragments::new(&pkt, 1416).unwrap_err(),
            FragmentError::Overflow
        );
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600), max_len in 0usize..2000) {
            if let Ok(mut f) = Fragments::new(&data, max_len) {
                let mut buf = vec![0u8; 2048];
                let mut n = 0;
                while f.next_into(&mut buf).is_some() {
                    n += 1;
                    prop_assert!(n < 10_000);
                }
            }
        }

        #[test]
        fn refragmenting_a_fragment_never_wraps(len in 28usize..9000, max_len in 28usize..2000, units in 0u16..8192, more: bool) {
            let pkt = as_fragment(packet(len, false), units * 8, more);
            let base = usize::from(units) * 8;
            let data = len - HEADER_LEN;
            match Fragments::new(&pkt, max_len) {
                Err(e) => prop_assert_eq!(e, FragmentError::Overflow),
                Ok(mut f) => {
                    prop_assert!(HEADER_LEN + base + data <= 65535);
                    let mut buf = vec![0u8; 2048];
                    let mut at = base;
                    let mut last_more = None;
                    while let Some(n) = f.next_into(&mut buf) {
                        let p = Packet::new_checked(&buf[..n]).unwrap();
                        prop_assert_eq!(usize::from(p.frag_offset()), at);
                        at += p.payload().len();
                        last_more = Some(p.more_frags());
                    }
                    prop_assert_eq!(at, base + data);
                    prop_assert_eq!(last_more, Some(more));
                }
            }
        }

        #[test]
        fn fragmenting_round_trips(len in 28usize..9000, max_len in 28usize..2000) {
            let pkt = packet(len, false);
            let mut f = Fragments::new(&pkt, max_len).unwrap();
            let mut frags = Vec::new();
            let mut buf = vec![0u8; 2048];
            while let Some(n) = f.next_into(&mut buf) {
                prop_assert!(n <= max_len);
                frags.push(buf[..n].to_vec());
            }
            let last = Packet::new_checked(&frags.last().unwrap()[..]).unwrap();
            prop_assert!(!last.more_frags());
            prop_assert_eq!(reassemble(&frags), pkt[HEADER_LEN..].to_vec());
        }
    }
}
