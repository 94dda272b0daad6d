//! ICMPv6 (RFC 4443): echo, the errors espo sends and reads — destination unreachable,
//! packet too big, time exceeded — and neighbour solicitation and advertisement
//! ([`super::ndisc`]).
//!
//! The checksum covers the IPv6 pseudo-header (RFC 8200 §8.1), so `parse` and `emit` take
//! the packet's source and destination addresses. An error carries the start of the
//! datagram it is about (its *quote*, read with [`super::ip::Quote`]).

use core::fmt;
use core::net::Ipv6Addr;

use super::field::{self as f, Field, Rest};
use super::{ChecksumCaps, Error, IpProtocol, checksum, ndisc};

pub(crate) mod field {
    use super::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    /// Packet too big: the MTU; parameter problem: the pointer; otherwise unused.
    pub const WORD: Field = 4..8;
    pub const DATA: Rest = 8..;
    /// Neighbour advertisement: the R, S and O flags.
    pub const FLAGS: usize = 4;
    /// Neighbour solicitation and advertisement: the target address, then options.
    pub const TARGET: Field = 8..24;
    pub const OPTIONS: Rest = 24..;
}

/// Length of the ICMPv6 header (type, code, checksum and the four type-specific bytes).
pub const HEADER_LEN: usize = field::DATA.start;

/// An ICMPv6 message type. Types espo does not name are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// Destination unreachable (1).
    DstUnreachable,
    /// Packet too big (2).
    PktTooBig,
    /// Time exceeded (3).
    TimeExceeded,
    /// Parameter problem (4).
    ParamProblem,
    /// Echo request (128).
    EchoRequest,
    /// Echo reply (129).
    EchoReply,
    /// Router solicitation (133).
    RouterSolicit,
    /// Router advertisement (134).
    RouterAdvert,
    /// Neighbour solicitation (135).
    NeighborSolicit,
    /// Neighbour advertisement (136).
    NeighborAdvert,
    /// Redirect (137).
    Redirect,
    /// Any other type.
    Unknown(u8),
}

impl Message {
    /// Whether this is an error message (types 0–127, RFC 4443 §2.1): no ICMPv6 error is
    /// ever sent about one (§2.4 (e.1)).
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            1 => Message::DstUnreachable,
            2 => Message::PktTooBig,
            3 => Message::TimeExceeded,
            4 => Message::ParamProblem,
            128 => Message::EchoRequest,
            129 => Message::EchoReply,
            133 => Message::RouterSolicit,
            134 => Message::RouterAdvert,
            135 => Message::NeighborSolicit,
            136 => Message::NeighborAdvert,
            137 => Message::Redirect,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::DstUnreachable => 1,
            Message::PktTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::Unknown(other) => other,
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::DstUnreachable => f.write_str("destination unreachable"),
            Message::PktTooBig => f.write_str("packet too big"),
            Message::TimeExceeded => f.write_str("time exceeded"),
            Message::ParamProblem => f.write_str("parameter problem"),
            Message::EchoRequest => f.write_str("echo request"),
            Message::EchoReply => f.write_str("echo reply"),
            Message::RouterSolicit => f.write_str("router solicitation"),
            Message::RouterAdvert => f.write_str("router advertisement"),
            Message::NeighborSolicit => f.write_str("neighbour solicitation"),
            Message::NeighborAdvert => f.write_str("neighbour advertisement"),
            Message::Redirect => f.write_str("redirect"),
            Message::Unknown(other) => write!(f, "type {other}"),
        }
    }
}

/// A zero-copy view of an ICMPv6 message (the upper-layer payload of its IPv6 packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors on a short buffer read zeros.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the buffer holds the 8-byte header. The whole buffer is the message: its
    /// checksum covers all of it.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Whether the buffer is empty (never, once checked).
    pub fn is_empty(&self) -> bool {
        self.buffer.as_ref().is_empty()
    }

    /// The message type.
    pub fn msg_type(&self) -> Message {
        f::read_u8(self.buffer.as_ref(), field::TYPE).into()
    }

    /// The message code.
    pub fn msg_code(&self) -> u8 {
        f::read_u8(self.buffer.as_ref(), field::CODE)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo request and reply: the identifier.
    pub fn echo_ident(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo request and reply: the sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Packet too big: the MTU of the next hop.
    pub fn pkt_too_big_mtu(&self) -> u32 {
        f::read_u32(self.buffer.as_ref(), field::WORD)
    }

    /// Parameter problem: the offset of the problem in the quoted datagram.
    pub fn param_problem_ptr(&self) -> u32 {
        f::read_u32(self.buffer.as_ref(), field::WORD)
    }

    /// What follows the 8-byte header: echo data, or an error's quote.
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(field::DATA).unwrap_or(&[])
    }

    /// Neighbour solicitation and advertisement: the target address.
    pub fn target_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(f::read_array::<16>(self.buffer.as_ref(), field::TARGET))
    }

    /// Neighbour advertisement: the flags byte.
    pub fn neighbor_flags(&self) -> ndisc::NeighborFlags {
        ndisc::NeighborFlags::from_bits(f::read_u8(self.buffer.as_ref(), field::FLAGS))
    }

    /// Neighbour solicitation and advertisement: the options after the target address.
    pub fn options(&self) -> &[u8] {
        self.buffer.as_ref().get(field::OPTIONS).unwrap_or(&[])
    }

    /// Whether the checksum over the pseudo-header of `src` → `dst` and the whole
    /// message is correct.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let bytes = self.buffer.as_ref();
        let Ok(len) = u32::try_from(bytes.len()) else {
            return false;
        };
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, len);
        bytes.len() >= HEADER_LEN && checksum::combine(&[pseudo, checksum::data(bytes)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, message: Message) {
        f::write_u8(self.buffer.as_mut(), field::TYPE, message.into());
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, code: u8) {
        f::write_u8(self.buffer.as_mut(), field::CODE, code);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        f::write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, ident: u16) {
        f::write_u16(self.buffer.as_mut(), field::ECHO_IDENT, ident);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, seq_no: u16) {
        f::write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, seq_no);
    }

    /// Sets the four type-specific bytes (packet too big's MTU, parameter problem's
    /// pointer, zero where unused).
    pub fn set_word(&mut self, value: u32) {
        f::write_u32(self.buffer.as_mut(), field::WORD, value);
    }

    /// Sets the neighbour advertisement flags and clears the reserved bytes after them.
    pub fn set_neighbor_flags(&mut self, flags: ndisc::NeighborFlags) {
        self.set_word(u32::from(flags.bits()) << 24);
    }

    /// Sets the target address of a neighbour solicitation or advertisement.
    pub fn set_target_addr(&mut self, addr: Ipv6Addr) {
        f::write_bytes(self.buffer.as_mut(), field::TARGET, &addr.octets());
    }

    /// What follows the 8-byte header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut().get_mut(field::DATA).unwrap_or(&mut [])
    }

    /// The options after a target address, mutably.
    pub fn options_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::OPTIONS)
            .unwrap_or(&mut [])
    }

    /// Computes and stores the checksum over the pseudo-header of `src` → `dst` and the
    /// whole buffer.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let bytes = self.buffer.as_ref();
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, len);
        let sum = checksum::combine(&[pseudo, checksum::data(bytes)]);
        self.set_checksum(!sum);
    }
}

/// A validated ICMPv6 message of the kinds espo sends and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Destination unreachable, about the datagram `quote` starts.
    DstUnreachable { code: u8, quote: &'a [u8] },
    /// Packet too big: `mtu` is what fits the next hop.
    PktTooBig { mtu: u32, quote: &'a [u8] },
    /// Time exceeded (code 0 hop limit, 1 reassembly).
    TimeExceeded { code: u8, quote: &'a [u8] },
    /// Echo request.
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// Neighbour solicitation or advertisement.
    Ndisc(ndisc::Repr),
}

impl<'a> Repr<'a> {
    /// Reads a checked message sent from `src` to `dst`: the checksum (unless the hardware
    /// verified it), then the fields of its type. Other types are `Unsupported`; echo or
    /// packet too big with a code other than 0 is `Malformed`, and so is neighbour
    /// discovery that breaks RFC 4861 §7.1 (see [`ndisc::Repr::parse`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        packet: &Packet<&'a T>,
        caps: &ChecksumCaps,
    ) -> Result<Repr<'a>, Error> {
        packet.check_len()?;
        if caps.icmp.rx() && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let data = bytes.get(field::DATA).unwrap_or(&[]);
        match (packet.msg_type(), packet.msg_code()) {
            (Message::DstUnreachable, code) => Ok(Repr::DstUnreachable { code, quote: data }),
            (Message::PktTooBig, 0) => Ok(Repr::PktTooBig {
                mtu: packet.pkt_too_big_mtu(),
                quote: data,
            }),
            (Message::TimeExceeded, code) => Ok(Repr::TimeExceeded { code, quote: data }),
            (Message::EchoRequest, 0) => Ok(Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Message::EchoReply, 0) => Ok(Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            (Message::PktTooBig | Message::EchoRequest | Message::EchoReply, _) => {
                Err(Error::Malformed)
            }
            (Message::NeighborSolicit | Message::NeighborAdvert, _) => {
                ndisc::Repr::parse(packet).map(Repr::Ndisc)
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// The message's length: what `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::Ndisc(nd) => nd.buffer_len(),
            _ => HEADER_LEN + self.data().len(),
        }
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            Repr::DstUnreachable { quote, .. }
            | Repr::PktTooBig { quote, .. }
            | Repr::TimeExceeded { quote, .. } => quote,
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => data,
            Repr::Ndisc(_) => &[],
        }
    }

    /// Writes the message sent from `src` to `dst` into the first `buffer_len()` bytes of
    /// the packet's buffer and, unless the hardware fills it, its checksum over them.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        packet: &mut Packet<T>,
        caps: &ChecksumCaps,
    ) -> Result<(), Error> {
        let len = self.buffer_len();
        let buffer = packet
            .buffer
            .as_mut()
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall)?;
        let mut message = Packet::new_unchecked(buffer);
        let finish = |mut message: Packet<&mut [u8]>| {
            if caps.icmp.tx() {
                message.fill_checksum(src, dst);
            } else {
                message.set_checksum(0);
            }
        };
        let echo = |ident: u16, seq_no: u16| u32::from(ident) << 16 | u32::from(seq_no);
        let (kind, code, word) = match *self {
            Repr::Ndisc(nd) => return nd.emit(&mut message).map(|()| finish(message)),
            Repr::DstUnreachable { code, .. } => (Message::DstUnreachable, code, 0),
            Repr::PktTooBig { mtu, .. } => (Message::PktTooBig, 0, mtu),
            Repr::TimeExceeded { code, .. } => (Message::TimeExceeded, code, 0),
            Repr::EchoRequest { ident, seq_no, .. } => {
                (Message::EchoRequest, 0, echo(ident, seq_no))
            }
            Repr::EchoReply { ident, seq_no, .. } => (Message::EchoReply, 0, echo(ident, seq_no)),
        };
        message.set_msg_type(kind);
        message.set_msg_code(code);
        message.set_word(word);
        message.data_mut().copy_from_slice(self.data());
        finish(message);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;
    use crate::wire::ip::{Quote, Version};
    use crate::wire::{Checksum, ipv6};
    use proptest::prelude::*;

    // Captured (scapy_vectors.py): 2001:db8::1 -> 2001:db8::2, echo request, identifier 9,
    // sequence 1, "espo".
    const ICMPV6_ECHO_REQUEST: [u8; 52] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x80, 0x00, 0x4e, 0x57, 0x00,
        0x09, 0x00, 0x01, 0x65, 0x73, 0x70, 0x6f,
    ];

    // Captured: 2001:db8::fe -> 2001:db8::1, packet too big, MTU 1280, quoting the first 56
    // bytes of a 1456-byte ESP packet 2001:db8::1 -> 2001:db8:1::2 (SPI 0x0000a102,
    // sequence number 9).
    pub(crate) const ICMPV6_PTB: [u8; 104] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x40, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x07, 0xc1, 0x00,
        0x00, 0x05, 0x00, 0x60, 0x00, 0x00, 0x00, 0x05, 0x88, 0x32, 0x40, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d,
        0xb8, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
        0xa1, 0x02, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
    ];

    /// The IPv6 packet's addresses and its ICMPv6 message.
    pub(crate) fn split(bytes: &[u8]) -> (Ipv6Addr, Ipv6Addr, &[u8]) {
        let ip = ipv6::Packet::new_checked(bytes).unwrap();
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        let icmp = &bytes[ipv6::HEADER_LEN..ip.total_len()];
        (ip.src_addr(), ip.dst_addr(), icmp)
    }

    #[test]
    fn parses_a_captured_echo_request() {
        let (src, dst, icmp) = split(&ICMPV6_ECHO_REQUEST);
        let packet = Packet::new_checked(icmp).unwrap();
        assert_eq!(packet.msg_type(), Message::EchoRequest);
        assert!(!packet.msg_type().is_error());
        assert!(packet.verify_checksum(&src, &dst));
        assert_eq!(
            Repr::parse(&src, &dst, &packet, &ChecksumCaps::default()),
            Ok(Repr::EchoRequest {
                ident: 9,
                seq_no: 1,
                data: b"espo",
            })
        );
    }

    #[test]
    fn parses_a_captured_packet_too_big_and_its_quote() {
        let (src, dst, icmp) = split(&ICMPV6_PTB);
        let packet = Packet::new_checked(icmp).unwrap();
        assert_eq!(packet.msg_type(), Message::PktTooBig);
        assert!(packet.msg_type().is_error());
        assert_eq!(packet.pkt_too_big_mtu(), 1280);
        let repr = Repr::parse(&src, &dst, &packet, &ChecksumCaps::default()).unwrap();
        let Repr::PktTooBig { mtu: 1280, quote } = repr else {
            panic!("{repr:?}")
        };
        let quote = Quote::parse(quote).unwrap();
        assert_eq!(quote.version, Version::Ipv6);
        assert_eq!(
            quote.src_addr,
            "2001:db8::1".parse::<core::net::IpAddr>().unwrap()
        );
        assert_eq!(
            quote.dst_addr,
            "2001:db8:1::2".parse::<core::net::IpAddr>().unwrap()
        );
        assert_eq!((quote.total_len, quote.protocol), (1456, IpProtocol::Esp));
        assert_eq!(&quote.payload[..8], &[0, 0, 0xa1, 0x02, 0, 0, 0, 9]);
    }

    #[test]
    fn refuses_bad_checksums_codes_and_unknown_types() {
        let (src, dst, icmp) = split(&ICMPV6_ECHO_REQUEST);
        assert_eq!(
            Packet::new_checked(&icmp[..7]).err(),
            Some(Error::Truncated)
        );
        let caps = ChecksumCaps::default();
        let wrong_dst: Ipv6Addr = "2001:db8::3".parse().unwrap();
        let packet = Packet::new_checked(icmp).unwrap();
        assert_eq!(
            Repr::parse(&src, &wrong_dst, &packet, &caps),
            Err(Error::BadChecksum),
            "the pseudo-header counts"
        );
        let trusted = ChecksumCaps {
            icmp: Checksum::Tx,
            ..ChecksumCaps::default()
        };
        assert!(Repr::parse(&src, &wrong_dst, &packet, &trusted).is_ok());
        let mut bytes = icmp.to_vec();
        bytes[1] = 1;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let caps = ChecksumCaps::offloaded();
        assert_eq!(
            Repr::parse(&src, &dst, &packet, &caps),
            Err(Error::Malformed)
        );
        bytes[0] = 2; // packet too big, code 1
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            Repr::parse(&src, &dst, &packet, &caps),
            Err(Error::Malformed)
        );
        bytes[0] = 134; // router advertisement
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::RouterAdvert);
        assert_eq!(
            Repr::parse(&src, &dst, &packet, &caps),
            Err(Error::Unsupported)
        );
    }

    #[test]
    fn emit_matches_captures_over_poison() {
        let caps = ChecksumCaps::default();
        let (src, dst, icmp) = split(&ICMPV6_ECHO_REQUEST);
        let echo = Repr::EchoRequest {
            ident: 9,
            seq_no: 1,
            data: b"espo",
        };
        let mut bytes = [0xa5u8; 12];
        echo.emit(
            &src,
            &dst,
            &mut Packet::new_unchecked(&mut bytes[..]),
            &caps,
        )
        .unwrap();
        assert_eq!(bytes, icmp);

        let (src, dst, icmp) = split(&ICMPV6_PTB);
        let ptb = Repr::PktTooBig {
            mtu: 1280,
            quote: &icmp[8..],
        };
        let mut bytes = [0xa5u8; 70];
        ptb.emit(
            &src,
            &dst,
            &mut Packet::new_unchecked(&mut bytes[..]),
            &caps,
        )
        .unwrap();
        assert_eq!(bytes[..64], *icmp);
        assert_eq!(bytes[64..], [0xa5; 6], "only the message is written");
        let mut short = [0u8; 63];
        assert_eq!(
            ptb.emit(
                &src,
                &dst,
                &mut Packet::new_unchecked(&mut short[..]),
                &caps
            ),
            Err(Error::BufferTooSmall)
        );
    }

    proptest! {
        #[test]
        fn repr_round_trips(
            kind in 0u8..5,
            a in any::<u16>(),
            b in any::<u16>(),
            code in any::<u8>(),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let repr = match kind {
                0 => Repr::EchoRequest { ident: a, seq_no: b, data: &data },
                1 => Repr::EchoReply { ident: a, seq_no: b, data: &data },
                2 => Repr::DstUnreachable { code, quote: &data },
                3 => Repr::PktTooBig { mtu: u32::from(a) << 16 | u32::from(b), quote: &data },
                _ => Repr::TimeExceeded { code, quote: &data },
            };
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let caps = ChecksumCaps::default();
            let mut bytes = std::vec![0xa5u8; repr.buffer_len()];
            repr.emit(&src, &dst, &mut Packet::new_unchecked(&mut bytes[..]), &caps).unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum(&src, &dst));
            prop_assert_eq!(Repr::parse(&src, &dst, &packet, &caps), Ok(repr));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (
                    packet.msg_type(), packet.msg_code(), packet.echo_ident(),
                    packet.pkt_too_big_mtu(), packet.target_addr(), packet.neighbor_flags(),
                    packet.options(),
                );
                prop_assert_eq!(packet.data().len(), bytes.len() - HEADER_LEN);
                let any = Ipv6Addr::UNSPECIFIED;
                let _ = Repr::parse(&any, &any, &packet, &ChecksumCaps::offloaded());
            }
        }
    }
}
