//! ICMP for IPv4 (RFC 792): echo, and the errors espo sends and reads — destination
//! unreachable with RFC 1191's next-hop MTU ("fragmentation needed") and time exceeded.
//!
//! An error carries the start of the datagram it is about (its *quote*, read with
//! [`super::ip::Quote`]). The view covers every message type; `Repr` the ones above, and
//! `parse` refuses others as `Unsupported`.

use core::fmt;

use super::field::{self as f, Field, Rest};
use super::{ChecksumCaps, Error, checksum};

mod field {
    use super::{Field, Rest};

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    /// Destination unreachable, code 4: the MTU of the next hop (RFC 1191 §4).
    pub const NEXT_HOP_MTU: Field = 6..8;
    pub const DATA: Rest = 8..;
}

/// Length of the ICMP header (type, code, checksum and the four type-specific bytes).
pub const HEADER_LEN: usize = field::DATA.start;

/// An ICMP message type. Types espo does not name are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// Echo reply (0).
    EchoReply,
    /// Destination unreachable (3).
    DstUnreachable,
    /// Source quench (4, deprecated by RFC 6633).
    SourceQuench,
    /// Redirect (5).
    Redirect,
    /// Echo request (8).
    EchoRequest,
    /// Time exceeded (11).
    TimeExceeded,
    /// Parameter problem (12).
    ParamProblem,
    /// Any other type.
    Unknown(u8),
}

impl Message {
    /// Whether this is an error message: no ICMP error is ever sent about one
    /// (RFC 1122 §3.2.2).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Message::DstUnreachable
                | Message::SourceQuench
                | Message::Redirect
                | Message::TimeExceeded
                | Message::ParamProblem
        )
    }
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            4 => Message::SourceQuench,
            5 => Message::Redirect,
            8 => Message::EchoRequest,
            11 => Message::TimeExceeded,
            12 => Message::ParamProblem,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::SourceQuench => 4,
            Message::Redirect => 5,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::ParamProblem => 12,
            Message::Unknown(other) => other,
        }
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::EchoReply => f.write_str("echo reply"),
            Message::DstUnreachable => f.write_str("destination unreachable"),
            Message::SourceQuench => f.write_str("source quench"),
            Message::Redirect => f.write_str("redirect"),
            Message::EchoRequest => f.write_str("echo request"),
            Message::TimeExceeded => f.write_str("time exceeded"),
            Message::ParamProblem => f.write_str("parameter problem"),
            Message::Unknown(other) => write!(f, "type {other}"),
        }
    }
}

/// The code of a destination unreachable message (RFC 792, RFC 1812 §5.2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DstUnreachable {
    /// Network unreachable (0).
    NetUnreachable,
    /// Host unreachable (1).
    HostUnreachable,
    /// Protocol unreachable (2).
    ProtoUnreachable,
    /// Port unreachable (3).
    PortUnreachable,
    /// Fragmentation needed and DF set (4): the next-hop MTU says how much fits.
    FragRequired,
    /// Source route failed (5).
    SrcRouteFailed,
    /// Communication administratively prohibited (13).
    CommProhibited,
    /// Any other code.
    Unknown(u8),
}

impl From<u8> for DstUnreachable {
    fn from(value: u8) -> Self {
        match value {
            0 => DstUnreachable::NetUnreachable,
            1 => DstUnreachable::HostUnreachable,
            2 => DstUnreachable::ProtoUnreachable,
            3 => DstUnreachable::PortUnreachable,
            4 => DstUnreachable::FragRequired,
            5 => DstUnreachable::SrcRouteFailed,
            13 => DstUnreachable::CommProhibited,
            other => DstUnreachable::Unknown(other),
        }
    }
}

impl From<DstUnreachable> for u8 {
    fn from(value: DstUnreachable) -> Self {
        match value {
            DstUnreachable::NetUnreachable => 0,
            DstUnreachable::HostUnreachable => 1,
            DstUnreachable::ProtoUnreachable => 2,
            DstUnreachable::PortUnreachable => 3,
            DstUnreachable::FragRequired => 4,
            DstUnreachable::SrcRouteFailed => 5,
            DstUnreachable::CommProhibited => 13,
            DstUnreachable::Unknown(other) => other,
        }
    }
}

/// A zero-copy view of an ICMP message (the payload of its IPv4 packet).
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

    /// Destination unreachable, fragmentation needed: the next-hop MTU (zero from a router
    /// older than RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        f::read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// What follows the header: echo data, or an error's quote.
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(field::DATA).unwrap_or(&[])
    }

    /// Whether the checksum over the whole message is correct.
    pub fn verify_checksum(&self) -> bool {
        let bytes = self.buffer.as_ref();
        bytes.len() >= HEADER_LEN && checksum::data(bytes) == 0xffff
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

    /// Sets the four type-specific bytes of a destination unreachable message: zero, then
    /// the next-hop MTU.
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        f::write_u16(self.buffer.as_mut(), field::ECHO_IDENT, 0);
        f::write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, mtu);
    }

    /// What follows the header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut().get_mut(field::DATA).unwrap_or(&mut [])
    }

    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }
}

/// A validated ICMP message of the kinds espo sends and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
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
    /// Destination unreachable, about the datagram `quote` starts.
    DstUnreachable {
        reason: DstUnreachable,
        /// RFC 1191's next-hop MTU (with `FragRequired`; zero otherwise, and from old
        /// routers).
        next_hop_mtu: u16,
        quote: &'a [u8],
    },
    /// Time exceeded (code 0 in transit, 1 in reassembly), about the datagram `quote`
    /// starts.
    TimeExceeded { code: u8, quote: &'a [u8] },
}

impl<'a> Repr<'a> {
    /// Reads a checked message: the checksum (unless the hardware verified it), then the
    /// fields of its type. Other types are `Unsupported`; echo with a code other than 0 is
    /// `Malformed`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        caps: &ChecksumCaps,
    ) -> Result<Repr<'a>, Error> {
        packet.check_len()?;
        if caps.icmp.rx() && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let bytes: &'a [u8] = <T as AsRef<[u8]>>::as_ref(packet.buffer);
        let data = bytes.get(field::DATA).unwrap_or(&[]);
        match (packet.msg_type(), packet.msg_code()) {
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
            (Message::EchoRequest | Message::EchoReply, _) => Err(Error::Malformed),
            (Message::DstUnreachable, code) => Ok(Repr::DstUnreachable {
                reason: code.into(),
                next_hop_mtu: packet.next_hop_mtu(),
                quote: data,
            }),
            (Message::TimeExceeded, code) => Ok(Repr::TimeExceeded { code, quote: data }),
            _ => Err(Error::Unsupported),
        }
    }

    /// The message's length: what `emit` writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => data,
            Repr::DstUnreachable { quote, .. } | Repr::TimeExceeded { quote, .. } => quote,
        }
    }

    /// Writes the message into the first `buffer_len()` bytes of the packet's buffer and,
    /// unless the hardware fills it, its checksum over them.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
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
        match *self {
            Repr::EchoRequest { ident, seq_no, .. } | Repr::EchoReply { ident, seq_no, .. } => {
                message.set_msg_type(match self {
                    Repr::EchoRequest { .. } => Message::EchoRequest,
                    _ => Message::EchoReply,
                });
                message.set_msg_code(0);
                message.set_echo_ident(ident);
                message.set_echo_seq_no(seq_no);
            }
            Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                ..
            } => {
                message.set_msg_type(Message::DstUnreachable);
                message.set_msg_code(reason.into());
                message.set_next_hop_mtu(next_hop_mtu);
            }
            Repr::TimeExceeded { code, .. } => {
                message.set_msg_type(Message::TimeExceeded);
                message.set_msg_code(code);
                message.set_next_hop_mtu(0);
            }
        }
        message.data_mut().copy_from_slice(self.data());
        if caps.icmp.tx() {
            message.fill_checksum();
        } else {
            message.set_checksum(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::ip::{Quote, Version};
    use crate::wire::{Checksum, IpProtocol, ipv4};
    use proptest::prelude::*;

    // Captured (scapy_vectors.py): echo request, identifier 0x1234, sequence 7, "espo ping".
    const ICMP_ECHO_REQUEST: [u8; 17] = [
        0x08, 0x00, 0x1f, 0x03, 0x12, 0x34, 0x00, 0x07, 0x65, 0x73, 0x70, 0x6f, 0x20, 0x70, 0x69,
        0x6e, 0x67,
    ];

    // Captured: 198.51.100.254 -> 192.0.2.1, fragmentation needed, next-hop MTU 1300,
    // quoting the first 36 bytes of a 1436-byte DF ESP packet 192.0.2.1 -> 198.51.100.2
    // (SPI 0x0000a101, sequence number 7).
    pub(crate) const ICMP_FRAG_NEEDED: [u8; 64] = [
        0x45, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x8d, 0x8a, 0xc6, 0x33, 0x64,
        0xfe, 0xc0, 0x00, 0x02, 0x01, 0x03, 0x04, 0x56, 0xd8, 0x00, 0x00, 0x05, 0x14, 0x45, 0x00,
        0x05, 0x9c, 0x00, 0x05, 0x40, 0x00, 0x40, 0x32, 0x48, 0xf4, 0xc0, 0x00, 0x02, 0x01, 0xc6,
        0x33, 0x64, 0x02, 0x00, 0x00, 0xa1, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x07,
    ];

    #[test]
    fn parses_a_captured_echo_request() {
        let packet = Packet::new_checked(&ICMP_ECHO_REQUEST[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::EchoRequest);
        assert_eq!((packet.msg_code(), packet.checksum()), (0, 0x1f03));
        assert_eq!((packet.echo_ident(), packet.echo_seq_no()), (0x1234, 7));
        assert!(packet.verify_checksum());
        assert_eq!(
            Repr::parse(&packet, &ChecksumCaps::default()),
            Ok(Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 7,
                data: b"espo ping",
            })
        );
    }

    #[test]
    fn parses_a_captured_fragmentation_needed_and_its_quote() {
        let ip = ipv4::Packet::new_checked(&ICMP_FRAG_NEEDED[..]).unwrap();
        assert_eq!(ip.next_header(), IpProtocol::Icmp);
        let packet = Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(packet.msg_type(), Message::DstUnreachable);
        assert!(packet.msg_type().is_error());
        assert_eq!(packet.next_hop_mtu(), 1300);
        let repr = Repr::parse(&packet, &ChecksumCaps::default()).unwrap();
        let Repr::DstUnreachable {
            reason: DstUnreachable::FragRequired,
            next_hop_mtu: 1300,
            quote,
        } = repr
        else {
            panic!("{repr:?}")
        };
        let quote = Quote::parse(quote).unwrap();
        assert_eq!(quote.version, Version::Ipv4);
        assert_eq!(
            quote.src_addr,
            "192.0.2.1".parse::<core::net::IpAddr>().unwrap()
        );
        assert_eq!(
            quote.dst_addr,
            "198.51.100.2".parse::<core::net::IpAddr>().unwrap()
        );
        assert_eq!((quote.total_len, quote.protocol), (1436, IpProtocol::Esp));
        assert_eq!(
            quote.payload,
            &[0, 0, 0xa1, 0x01, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 7]
        );
    }

    #[test]
    fn refuses_bad_checksums_codes_and_unknown_types() {
        assert_eq!(
            Packet::new_checked(&ICMP_ECHO_REQUEST[..7]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = ICMP_ECHO_REQUEST;
        bytes[9] ^= 1;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(
            Repr::parse(&packet, &ChecksumCaps::default()),
            Err(Error::BadChecksum)
        );
        let trusted = ChecksumCaps {
            icmp: Checksum::Tx,
            ..ChecksumCaps::default()
        };
        assert!(Repr::parse(&packet, &trusted).is_ok());
        let caps = ChecksumCaps::offloaded();
        let mut bytes = ICMP_ECHO_REQUEST;
        bytes[1] = 1;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet, &caps), Err(Error::Malformed));
        bytes[0] = 13; // timestamp
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.msg_type(), Message::Unknown(13));
        assert!(!packet.msg_type().is_error());
        assert_eq!(Repr::parse(&packet, &caps), Err(Error::Unsupported));
    }

    #[test]
    fn emit_matches_captures_over_poison() {
        let caps = ChecksumCaps::default();
        let echo = Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 7,
            data: b"espo ping",
        };
        let mut bytes = [0xa5u8; 17];
        echo.emit(&mut Packet::new_unchecked(&mut bytes[..]), &caps)
            .unwrap();
        assert_eq!(bytes, ICMP_ECHO_REQUEST);

        let quote = &ICMP_FRAG_NEEDED[28..];
        let error = Repr::DstUnreachable {
            reason: DstUnreachable::FragRequired,
            next_hop_mtu: 1300,
            quote,
        };
        assert_eq!(error.buffer_len(), 44);
        // A longer buffer: only the message is written, and its checksum covers it alone.
        let mut bytes = [0xa5u8; 50];
        error
            .emit(&mut Packet::new_unchecked(&mut bytes[..]), &caps)
            .unwrap();
        assert_eq!(bytes[..44], ICMP_FRAG_NEEDED[20..]);
        assert_eq!(bytes[44..], [0xa5; 6]);
        let mut short = [0u8; 43];
        assert_eq!(
            error.emit(&mut Packet::new_unchecked(&mut short[..]), &caps),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn time_exceeded_round_trips() {
        let caps = ChecksumCaps::default();
        let repr = Repr::TimeExceeded {
            code: 1,
            quote: &ICMP_FRAG_NEEDED[28..],
        };
        let mut bytes = [0xa5u8; 44];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &caps)
            .unwrap();
        assert_eq!(bytes[4..8], [0; 4], "unused bytes written");
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet, &caps), Ok(repr));
    }

    proptest! {
        #[test]
        fn repr_round_trips(
            kind in 0u8..4,
            a in any::<u16>(),
            b in any::<u16>(),
            code in any::<u8>(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let repr = match kind {
                0 => Repr::EchoRequest { ident: a, seq_no: b, data: &data },
                1 => Repr::EchoReply { ident: a, seq_no: b, data: &data },
                2 => Repr::DstUnreachable { reason: code.into(), next_hop_mtu: a, quote: &data },
                _ => Repr::TimeExceeded { code, quote: &data },
            };
            let caps = ChecksumCaps::default();
            let mut bytes = std::vec![0xa5u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &caps).unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum());
            prop_assert_eq!(Repr::parse(&packet, &caps), Ok(repr));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (
                    packet.msg_type(), packet.msg_code(), packet.echo_ident(),
                    packet.echo_seq_no(), packet.next_hop_mtu(), packet.verify_checksum(),
                );
                prop_assert_eq!(packet.data().len(), bytes.len() - HEADER_LEN);
                let _ = Repr::parse(&packet, &ChecksumCaps::offloaded());
            }
        }
    }
}
