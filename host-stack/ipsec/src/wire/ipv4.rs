//! IPv4 (RFC 791). Options are tolerated on parse; `Repr` emits a 20-byte header;
//! [`Fragments`] cuts a datagram into fragments.

use core::net::Ipv4Addr;

use super::field::{self as f, Field};
use super::{ChecksumCaps, Error, IpProtocol, checksum};

mod fragment;

pub use fragment::{FragmentError, Fragments};

mod field {
    use super::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// Longest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors on a short buffer read zeros.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after `check_len` and a version check (`BadVersion` unless 4).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        Ok(packet)
    }

    /// Ensures the buffer holds the header including options and the whole datagram that
    /// the total length announces; trailing bytes beyond it (link padding) are allowed.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if len < total_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field.
    pub fn version(&self) -> u8 {
        f::read_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// The header length in bytes, options included (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(f::read_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// The whole DS/ECN byte (formerly Type of Service).
    pub fn tos(&self) -> u8 {
        f::read_u8(self.buffer.as_ref(), field::DSCP_ECN)
    }

    /// The Differentiated Services Code Point (upper six bits of the TOS byte).
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// The Explicit Congestion Notification bits (lower two bits of the TOS byte).
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// The total length field: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The identification field.
    pub fn ident(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::IDENT)
    }

    fn flags_and_offset(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// The Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.flags_and_offset() & FLAG_DF != 0
    }

    /// The More Fragments flag.
    pub fn more_frags(&self) -> bool {
        self.flags_and_offset() & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_and_offset() & OFFSET_MASK) << 3
    }

    /// Whether this datagram is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time to live.
    pub fn hop_limit(&self) -> u8 {
        f::read_u8(self.buffer.as_ref(), field::TTL)
    }

    /// The protocol field.
    pub fn next_header(&self) -> IpProtocol {
        f::read_u8(self.buffer.as_ref(), field::PROTOCOL).into()
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(f::read_array::<4>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    /// The destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(f::read_array::<4>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The options bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        f::slice(self.buffer.as_ref(), HEADER_LEN..self.header_len())
    }

    /// The header including options.
    pub fn header(&self) -> &[u8] {
        f::slice(self.buffer.as_ref(), 0..self.header_len())
    }

    /// The header and payload, without trailing link padding.
    pub fn packet_bytes(&self) -> &[u8] {
        f::slice(self.buffer.as_ref(), 0..usize::from(self.total_len()))
    }

    /// The payload, bounded by the total length (link-layer padding excluded).
    pub fn payload(&self) -> &[u8] {
        f::slice(
            self.buffer.as_ref(),
            self.header_len()..usize::from(self.total_len()),
        )
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let header = self.header();
        header.len() >= HEADER_LEN && checksum::data(header) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let byte = f::read_u8(self.buffer.as_ref(), field::VER_IHL);
        f::write_u8(
            self.buffer.as_mut(),
            field::VER_IHL,
            (version << 4) | (byte & 0x0f),
        );
    }

    /// Sets the header length in bytes; it is stored divided by four.
    pub fn set_header_len(&mut self, len_bytes: usize) {
        let ihl = u8::try_from(len_bytes / 4).unwrap_or(0x0f).min(0x0f);
        let byte = f::read_u8(self.buffer.as_ref(), field::VER_IHL);
        f::write_u8(self.buffer.as_mut(), field::VER_IHL, (byte & 0xf0) | ihl);
    }

    /// Sets the whole DS/ECN byte.
    pub fn set_tos(&mut self, tos: u8) {
        f::write_u8(self.buffer.as_mut(), field::DSCP_ECN, tos);
    }

    /// Sets the DSCP, keeping the ECN bits.
    pub fn set_dscp(&mut self, dscp: u8) {
        let ecn = self.ecn();
        self.set_tos((dscp << 2) | ecn);
    }

    /// Sets the ECN bits, keeping the DSCP.
    pub fn set_ecn(&mut self, ecn: u8) {
        let tos = self.tos();
        self.set_tos((tos & 0xfc) | (ecn & 0x03));
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len_bytes: u16) {
        f::write_u16(self.buffer.as_mut(), field::LENGTH, len_bytes);
    }

    /// Sets the identification field.
    pub fn set_ident(&mut self, ident: u16) {
        f::write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    fn set_flags_and_offset(&mut self, value: u16) {
        f::write_u16(self.buffer.as_mut(), field::FLG_OFF, value);
    }

    /// Clears the flags and the fragment offset.
    pub fn clear_flags(&mut self) {
        let offset = self.flags_and_offset() & OFFSET_MASK;
        self.set_flags_and_offset(offset);
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, value: bool) {
        let raw = self.flags_and_offset();
        self.set_flags_and_offset(if value { raw | FLAG_DF } else { raw & !FLAG_DF });
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, value: bool) {
        let raw = self.flags_and_offset();
        self.set_flags_and_offset(if value { raw | FLAG_MF } else { raw & !FLAG_MF });
    }

    /// Sets the fragment offset in bytes (a multiple of 8; the low three bits are dropped).
    pub fn set_frag_offset(&mut self, offset_bytes: u16) {
        let raw = self.flags_and_offset();
        self.set_flags_and_offset((raw & !OFFSET_MASK) | (offset_bytes >> 3));
    }

    /// Sets the time to live.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        f::write_u8(self.buffer.as_mut(), field::TTL, hop_limit);
    }

    /// Sets the protocol field.
    pub fn set_next_header(&mut self, protocol: IpProtocol) {
        f::write_u8(self.buffer.as_mut(), field::PROTOCOL, protocol.into());
    }

    /// Sets the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        f::write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        f::write_bytes(self.buffer.as_mut(), field::SRC_ADDR, &addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        f::write_bytes(self.buffer.as_mut(), field::DST_ADDR, &addr.octets());
    }

    /// Computes and stores the header checksum over the header including options.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.header());
        self.set_checksum(!sum);
    }

    /// The options bytes, mutably.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        f::slice_mut(self.buffer.as_mut(), HEADER_LEN..end)
    }

    /// The payload (bounded by the total length), mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        f::slice_mut(self.buffer.as_mut(), range)
    }
}

/// A validated IPv4 header without options, of an unfragmented datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub next_header: IpProtocol,
    /// Payload length in bytes (total length minus the header, options included).
    pub payload_len: usize,
    /// Time to live.
    pub hop_limit: u8,
    /// The DS/ECN byte.
    pub tos: u8,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// Identification.
    pub ident: u16,
}

impl Repr {
    /// Validates a checked packet: the header checksum (unless the hardware verified it)
    /// and that it is not a fragment (`Unsupported`). Options are tolerated and not kept.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>, caps: &ChecksumCaps) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        if caps.ipv4.rx() && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()).saturating_sub(packet.header_len()),
            hop_limit: packet.hop_limit(),
            tos: packet.tos(),
            dont_frag: packet.dont_frag(),
            ident: packet.ident(),
        })
    }

    /// The number of header bytes `emit` writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (no options) at the start of the packet's buffer and, unless the
    /// hardware fills it, the header checksum. A payload too long for the 16-bit total
    /// length is `Malformed`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        caps: &ChecksumCaps,
    ) -> Result<(), Error> {
        let total_len = HEADER_LEN
            .checked_add(self.payload_len)
            .and_then(|len| u16::try_from(len).ok())
            .ok_or(Error::Malformed)?;
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        f::write_u8(packet.buffer.as_mut(), field::VER_IHL, 0x45);
        packet.set_tos(self.tos);
        packet.set_total_len(total_len);
        packet.set_ident(self.ident);
        packet.set_flags_and_offset(if self.dont_frag { FLAG_DF } else { 0 });
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.set_checksum(if caps.ipv4.tx() {
            self.header_checksum()
        } else {
            0
        });
        Ok(())
    }

    /// The RFC 791 header checksum of the header [`emit`](Self::emit) writes (IHL 5, no
    /// options), from the field values: no reading back of bytes just written, which on a
    /// per-packet path can wait for the narrow stores that wrote them.
    pub fn header_checksum(&self) -> u16 {
        let total_len = (HEADER_LEN + self.payload_len) as u64;
        let flags = if self.dont_frag { FLAG_DF } else { 0 };
        let mut sum = (0x4500 | u64::from(self.tos))
            + total_len
            + u64::from(self.ident)
            + u64::from(flags)
            + ((u64::from(self.hop_limit) << 8) | u64::from(u8::from(self.next_header)));
        for addr in [u32::from(self.src_addr), u32::from(self.dst_addr)] {
            sum += u64::from(addr >> 16) + u64::from(addr & 0xffff);
        }
        !checksum::fold(sum)
    }
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;
    use crate::wire::Checksum;
    use proptest::prelude::*;

    // Captured: 192.0.2.1 -> 198.51.100.7, TOS 0xb8, ID 0x1234, DF, TTL 64, UDP 4500 -> 500.
    pub(crate) const IPV4_UDP: [u8; 33] = [
        0x45, 0xb8, 0x00, 0x21, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x3b, 0xa4, 0xc0, 0x00, 0x02,
        0x01, 0xc6, 0x33, 0x64, 0x07, 0x11, 0x94, 0x01, 0xf4, 0x00, 0x0d, 0x09, 0x2d, 0x65, 0x73,
        0x70, 0x6f, 0x21,
    ];

    // Captured: 10.0.0.1 -> 10.0.0.2, TTL 3, options Router Alert, Record Route (one slot,
    // 10.9.9.9 recorded), NOP, EOL + padding; ICMP echo request "ping".
    pub(crate) const IPV4_OPTIONS: [u8; 48] = [
        0x49, 0x00, 0x00, 0x30, 0x00, 0x07, 0x00, 0x00, 0x03, 0x01, 0xea, 0xa4, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, 0x94, 0x04, 0x00, 0x00, 0x07, 0x07, 0x08, 0x0a, 0x09, 0x09,
        0x09, 0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x19, 0x2c, 0x00, 0x01, 0x00, 0x02, 0x70,
        0x69, 0x6e, 0x67,
    ];

    fn udp_repr() -> Repr {
        Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            next_header: IpProtocol::Udp,
            payload_len: 13,
            hop_limit: 64,
            tos: 0xb8,
            dont_frag: true,
            ident: 0x1234,
        }
    }

    #[test]
    fn parses_captured_udp_datagram() {
        let packet = Packet::new_checked(&IPV4_UDP[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!((packet.tos(), packet.dscp(), packet.ecn()), (0xb8, 46, 0));
        assert_eq!(packet.total_len(), 33);
        assert_eq!(packet.ident(), 0x1234);
        assert!(packet.dont_frag() && !packet.more_frags() && !packet.is_fragment());
        assert_eq!(packet.frag_offset(), 0);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.next_header(), IpProtocol::Udp);
        assert_eq!(packet.checksum(), 0x3ba4);
        assert!(packet.verify_checksum());
        assert_eq!(packet.options(), &[] as &[u8]);
        assert_eq!(packet.payload(), &IPV4_UDP[20..]);
        assert_eq!(
            Repr::parse(&packet, &ChecksumCaps::default()),
            Ok(udp_repr())
        );
    }

    #[test]
    fn parses_captured_options() {
        let packet = Packet::new_checked(&IPV4_OPTIONS[..]).unwrap();
        assert_eq!(packet.header_len(), 36);
        assert_eq!(packet.options(), &IPV4_OPTIONS[20..36]);
        assert_eq!(packet.options()[..2], [0x94, 0x04]);
        assert_eq!(packet.next_header(), IpProtocol::Icmp);
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &IPV4_OPTIONS[36..]);
        let repr = Repr::parse(&packet, &ChecksumCaps::default()).unwrap();
        assert_eq!(repr.payload_len, 12);
        assert_eq!(repr.hop_limit, 3);
    }

    #[test]
    fn trailing_link_padding_is_excluded_from_payload() {
        let mut padded = [0u8; 46];
        padded[..33].copy_from_slice(&IPV4_UDP);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &IPV4_UDP[20..]);
    }

    #[test]
    fn rejects_bad_lengths_version_and_checksum() {
        assert_eq!(
            Packet::new_checked(&IPV4_UDP[..19]).err(),
            Some(Error::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&IPV4_UDP[..32]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = IPV4_UDP;
        bytes[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
        bytes[0] = 0x4f;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Truncated)
        );
        bytes[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::BadVersion)
        );
        let mut bytes = IPV4_UDP;
        bytes[3] = 19;
        assert_eq!(
            Packet::new_checked(&bytes[..]).err(),
            Some(Error::Malformed)
        );
        let mut bytes = IPV4_UDP;
        bytes[8] = 63;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(
            Repr::parse(&packet, &ChecksumCaps::default()),
            Err(Error::BadChecksum)
        );
        let trusted = ChecksumCaps {
            ipv4: Checksum::Tx,
            ..ChecksumCaps::default()
        };
        assert!(Repr::parse(&packet, &trusted).is_ok());
    }

    #[test]
    fn repr_rejects_fragments() {
        let mut bytes = IPV4_UDP;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_more_frags(true);
        packet.fill_checksum();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.is_fragment());
        assert_eq!(
            Repr::parse(&packet, &ChecksumCaps::default()),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn setters_write_their_fields_only() {
        let mut bytes = IPV4_UDP;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_ecn(0b11);
        assert_eq!(packet.tos(), 0xbb);
        packet.set_dscp(10);
        assert_eq!(packet.tos(), (10 << 2) | 0b11);
        packet.set_dont_frag(false);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert!(!packet.dont_frag() && packet.more_frags());
        assert_eq!(packet.frag_offset(), 1480);
        packet.clear_flags();
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_hop_limit(1);
        packet.set_next_header(IpProtocol::Esp);
        packet.set_src_addr(Ipv4Addr::new(1, 2, 3, 4));
        packet.set_dst_addr(Ipv4Addr::new(5, 6, 7, 8));
        packet.set_ident(7);
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &IPV4_UDP[20..]);
        assert_eq!(
            (packet.hop_limit(), packet.next_header(), packet.ident()),
            (1, IpProtocol::Esp, 7)
        );
        assert_eq!(packet.src_addr(), Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(5, 6, 7, 8));
    }

    #[test]
    fn emit_matches_capture_over_poison() {
        let mut bytes = [0xa5u8; 33];
        bytes[20..].copy_from_slice(&IPV4_UDP[20..]);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        udp_repr()
            .emit(&mut packet, &ChecksumCaps::default())
            .unwrap();
        assert_eq!(bytes, IPV4_UDP);
    }

    #[test]
    fn emit_rejects_short_buffer_and_oversize_payload() {
        let mut short = [0u8; 19];
        let caps = ChecksumCaps::default();
        let err = udp_repr().emit(&mut Packet::new_unchecked(&mut short[..]), &caps);
        assert_eq!(err, Err(Error::BufferTooSmall));
        let mut bytes = [0u8; 20];
        let repr = Repr {
            payload_len: 65_516,
            ..udp_repr()
        };
        let err = repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &caps);
        assert_eq!(err, Err(Error::Malformed));
    }

    #[test]
    fn emit_with_offloaded_checksum_leaves_zero() {
        let mut bytes = [0xa5u8; 20];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        udp_repr()
            .emit(&mut packet, &ChecksumCaps::offloaded())
            .unwrap();
        assert_eq!(packet.checksum(), 0);
    }

    prop_compose! {
        fn any_repr()(
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            protocol in any::<u8>(),
            payload_len in 0usize..=65_515,
            hop_limit in any::<u8>(),
            tos in any::<u8>(),
            dont_frag in any::<bool>(),
            ident in any::<u16>(),
        ) -> Repr {
            Repr {
                src_addr: src.into(),
                dst_addr: dst.into(),
                next_header: protocol.into(),
                payload_len,
                hop_limit,
                tos,
                dont_frag,
                ident,
            }
        }
    }

    proptest! {
        #[test]
        fn repr_round_trips(repr in any_repr()) {
            let mut bytes = std::vec![0xa5u8; HEADER_LEN + repr.payload_len];
            let caps = ChecksumCaps::default();
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &caps).unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum());
            prop_assert_eq!(Repr::parse(&packet, &caps), Ok(repr));
        }

        #[test]
        fn any_bytes_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..96),
            plausible in any::<bool>(),
        ) {
            // Half the cases get version 4 and a total length that fits, to reach the
            // accessors past `new_checked`.
            if plausible && bytes.len() >= HEADER_LEN {
                bytes[0] = 0x40 | (bytes[0] & 0x0f);
                let total_len = u16::try_from(bytes.len()).unwrap();
                bytes[2..4].copy_from_slice(&total_len.to_be_bytes());
            }
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (
                    packet.version(), packet.header_len(), packet.tos(), packet.dscp(),
                    packet.ecn(), packet.total_len(), packet.ident(), packet.dont_frag(),
                    packet.more_frags(), packet.frag_offset(), packet.hop_limit(),
                    packet.next_header(), packet.checksum(), packet.src_addr(),
                    packet.dst_addr(), packet.verify_checksum(),
                );
                prop_assert_eq!(packet.options().len(), packet.header_len() - HEADER_LEN);
                prop_assert_eq!(
                    packet.payload().len(),
                    usize::from(packet.total_len()) - packet.header_len()
                );
                let _ = Repr::parse(&packet, &ChecksumCaps::default());
            }
        }
    }
}
