//! IPv6 neighbour discovery (RFC 4861): neighbour solicitation (§4.3) and advertisement
//! (§4.4) with their options (§4.6), carried in ICMPv6 messages ([`super::icmpv6`]).
//!
//! `Repr::parse` applies the checks of §7.1.1 and §7.1.2 that the message itself can
//! answer (code 0, a whole fixed part, a target that is not a multicast address, options
//! of non-zero length that end with the message); those about the IPv6 header around it
//! (hop limit 255, an unspecified source without a source link-layer option) belong to
//! whoever reads that header.

use core::net::Ipv6Addr;

use super::Error;
use super::ethernet::Address;
use super::icmpv6::{self, Message};

/// Length of a solicitation or advertisement before its options: ICMPv6 header and target.
pub const FIXED_LEN: usize = icmpv6::field::TARGET.end;
/// Options are counted in units of this many bytes.
pub const OPTION_UNIT: usize = 8;
/// Length of a link-layer address option for Ethernet (type, length, six bytes).
const ETHERNET_LL_OPTION_LEN: usize = 8;

/// A neighbour discovery option type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionKind {
    /// Source link-layer address (1).
    SourceLinkLayerAddr,
    /// Target link-layer address (2).
    TargetLinkLayerAddr,
    /// Prefix information (3).
    PrefixInformation,
    /// Redirected header (4).
    RedirectedHeader,
    /// MTU (5).
    Mtu,
    /// Any other type.
    Unknown(u8),
}

impl From<u8> for OptionKind {
    fn from(value: u8) -> Self {
        match value {
            1 => OptionKind::SourceLinkLayerAddr,
            2 => OptionKind::TargetLinkLayerAddr,
            3 => OptionKind::PrefixInformation,
            4 => OptionKind::RedirectedHeader,
            5 => OptionKind::Mtu,
            other => OptionKind::Unknown(other),
        }
    }
}

impl From<OptionKind> for u8 {
    fn from(value: OptionKind) -> Self {
        match value {
            OptionKind::SourceLinkLayerAddr => 1,
            OptionKind::TargetLinkLayerAddr => 2,
            OptionKind::PrefixInformation => 3,
            OptionKind::RedirectedHeader => 4,
            OptionKind::Mtu => 5,
            OptionKind::Unknown(other) => other,
        }
    }
}

/// One option: its type and all its bytes (type and length included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdOption<'a> {
    pub kind: OptionKind,
    pub bytes: &'a [u8],
}

impl NdOption<'_> {
    /// The link-layer address of a source or target link-layer address option of
    /// Ethernet's length; `None` for any other option.
    pub fn link_layer_addr(&self) -> Option<Address> {
        match (self.kind, self.bytes) {
            (
                OptionKind::SourceLinkLayerAddr | OptionKind::TargetLinkLayerAddr,
                &[_, _, a, b, c, d, e, g],
            ) => Some(Address([a, b, c, d, e, g])),
            _ => None,
        }
    }
}

/// The options of a message, in order. An option of length zero, or one running past the
/// end, yields `Malformed` and ends the walk.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// The options in `bytes` (what follows the fixed part of the message).
    pub fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { rest: bytes }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<NdOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, after) = self.rest.split_first()?;
        let len = after
            .first()
            .map(|&units| usize::from(units) * OPTION_UNIT)
            .filter(|&len| len != 0 && len <= self.rest.len());
        let Some(len) = len else {
            self.rest = &[];
            return Some(Err(Error::Malformed));
        };
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(Ok(NdOption {
            kind: kind.into(),
            bytes,
        }))
    }
}

/// The flags of a neighbour advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(u8);

impl NeighborFlags {
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: sent in answer to a solicitation.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: the advertisement should override a cached link-layer address.
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);

    /// The flags of a flags byte; the reserved bits are dropped.
    pub const fn from_bits(bits: u8) -> NeighborFlags {
        NeighborFlags(bits & 0xe0)
    }

    /// The flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: NeighborFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for NeighborFlags {
    type Output = NeighborFlags;

    fn bitor(self, rhs: NeighborFlags) -> NeighborFlags {
        NeighborFlags(self.0 | rhs.0)
    }
}

/// A neighbour solicitation or advertisement, with the link-layer address option that
/// matters to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// Who has `target_addr`? `lladdr`: the sender's source link-layer address option.
    NeighborSolicit {
        target_addr: Ipv6Addr,
        lladdr: Option<Address>,
    },
    /// `target_addr` is at `lladdr` (its target link-layer address option).
    NeighborAdvert {
        flags: NeighborFlags,
        target_addr: Ipv6Addr,
        lladdr: Option<Address>,
    },
}

impl Repr {
    /// Reads a checked solicitation or advertisement whose checksum was verified by
    /// [`icmpv6::Repr::parse`]: code 0, at least the fixed part, a target that is not a
    /// multicast address, and options that walk to the end of the message (otherwise
    /// `Malformed`, or `Truncated` for a short message). The link-layer address is the last
    /// source (solicitation) or target (advertisement) link-layer option of Ethernet's
    /// length; other options are skipped. Any other message type is `Unsupported`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &icmpv6::Packet<&T>) -> Result<Repr, Error> {
        let wanted = match packet.msg_type() {
            Message::NeighborSolicit => OptionKind::SourceLinkLayerAddr,
            Message::NeighborAdvert => OptionKind::TargetLinkLayerAddr,
            _ => return Err(Error::Unsupported),
        };
        if packet.msg_code() != 0 {
            return Err(Error::Malformed);
        }
        if packet.len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        let target_addr = packet.target_addr();
        if target_addr.is_multicast() {
            return Err(Error::Malformed);
        }
        let mut lladdr = None;
        for option in Options::new(packet.options()) {
            let option = option?;
            if option.kind == wanted {
                lladdr = option.link_layer_addr().or(lladdr);
            }
        }
        Ok(match packet.msg_type() {
            Message::NeighborSolicit => Repr::NeighborSolicit {
                target_addr,
                lladdr,
            },
            _ => Repr::NeighborAdvert {
                flags: packet.neighbor_flags(),
                target_addr,
                lladdr,
            },
        })
    }

    /// The ICMPv6 message type.
    pub fn msg_type(&self) -> Message {
        match self {
            Repr::NeighborSolicit { .. } => Message::NeighborSolicit,
            Repr::NeighborAdvert { .. } => Message::NeighborAdvert,
        }
    }

    fn lladdr(&self) -> Option<Address> {
        match *self {
            Repr::NeighborSolicit { lladdr, .. } | Repr::NeighborAdvert { lladdr, .. } => lladdr,
        }
    }

    /// The message's length: what `emit` writes.
    pub fn buffer_len(&self) -> usize {
        FIXED_LEN + self.lladdr().map_or(0, |_| ETHERNET_LL_OPTION_LEN)
    }

    /// Writes the message, all but its checksum (see [`icmpv6::Repr::emit`]), at the start
    /// of the packet's buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut icmpv6::Packet<T>,
    ) -> Result<(), Error> {
        if packet.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        packet.set_msg_type(self.msg_type());
        packet.set_msg_code(0);
        packet.set_checksum(0);
        let (flags, target_addr, option) = match *self {
            Repr::NeighborSolicit { target_addr, .. } => (
                NeighborFlags::default(),
                target_addr,
                OptionKind::SourceLinkLayerAddr,
            ),
            Repr::NeighborAdvert {
                flags, target_addr, ..
            } => (flags, target_addr, OptionKind::TargetLinkLayerAddr),
        };
        packet.set_neighbor_flags(flags);
        packet.set_target_addr(target_addr);
        if let Some(Address(mac)) = self.lladdr() {
            let options = packet.options_mut();
            if let Some(out) = options.get_mut(..ETHERNET_LL_OPTION_LEN) {
                out[0] = option.into();
                out[1] = 1;
                out[2..].copy_from_slice(&mac);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::ChecksumCaps;
    use crate::wire::icmpv6::Repr as Icmpv6Repr;
    use crate::wire::icmpv6::test::split;
    use proptest::prelude::*;

    // Captured (scapy_vectors.py): 2001:db8::1 -> ff02::1:ff00:2, hop limit 255, who has
    // 2001:db8::2, source link-layer address 02:00:00:00:00:0a.
    const ICMPV6_NS: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x02, 0x87, 0x00, 0x1c, 0x1e, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a,
    ];

    // Captured: duplicate address detection, :: -> ff02::1:ff00:2, no option.
    const ICMPV6_NS_DAD: [u8; 64] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x02, 0x87, 0x00, 0x4c, 0xeb, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02,
    ];

    // Captured: 2001:db8::2 -> 2001:db8::1, solicited and override, 2001:db8::2 is at
    // 02:00:00:00:00:0b.
    const ICMPV6_NA: [u8; 72] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0x00, 0x8a, 0x68, 0x60,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0b,
    ];

    // Captured: the solicitation with an MTU option (1500) before its source link-layer
    // address.
    const ICMPV6_NS_MTU_OPT: [u8; 80] = [
        0x60, 0x00, 0x00, 0x00, 0x00, 0x28, 0x3a, 0xff, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x02, 0x87, 0x00, 0x11, 0x39, 0x00,
        0x00, 0x00, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x05, 0xdc, 0x01, 0x01, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x0a,
    ];

    const MAC_A: Address = Address([0x02, 0, 0, 0, 0, 0x0a]);
    const MAC_B: Address = Address([0x02, 0, 0, 0, 0, 0x0b]);

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn parse(captured: &[u8]) -> Result<Repr, Error> {
        let (src, dst, icmp) = split(captured);
        let packet = icmpv6::Packet::new_checked(icmp).unwrap();
        match Icmpv6Repr::parse(&src, &dst, &packet, &ChecksumCaps::default())? {
            Icmpv6Repr::Ndisc(nd) => Ok(nd),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_captured_solicitations_and_an_advertisement() {
        let solicit = Repr::NeighborSolicit {
            target_addr: v6("2001:db8::2"),
            lladdr: Some(MAC_A),
        };
        assert_eq!(parse(&ICMPV6_NS), Ok(solicit));
        assert_eq!(
            parse(&ICMPV6_NS_MTU_OPT),
            Ok(solicit),
            "other options skipped"
        );
        assert_eq!(
            parse(&ICMPV6_NS_DAD),
            Ok(Repr::NeighborSolicit {
                target_addr: v6("2001:db8::2"),
                lladdr: None,
            })
        );
        let advert = parse(&ICMPV6_NA).unwrap();
        assert_eq!(
            advert,
            Repr::NeighborAdvert {
                flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                target_addr: v6("2001:db8::2"),
                lladdr: Some(MAC_B),
            }
        );
        let Repr::NeighborAdvert { flags, .. } = advert else {
            unreachable!()
        };
        assert!(flags.contains(NeighborFlags::SOLICITED) && !flags.contains(NeighborFlags::ROUTER));
    }

    #[test]
    fn walks_the_options_of_a_capture() {
        let (_, _, icmp) = split(&ICMPV6_NS_MTU_OPT);
        let packet = icmpv6::Packet::new_checked(icmp).unwrap();
        let options: std::vec::Vec<_> =
            Options::new(packet.options()).map(Result::unwrap).collect();
        assert_eq!(options.len(), 2);
        assert_eq!(options[0].kind, OptionKind::Mtu);
        assert_eq!(options[0].bytes, &[5, 1, 0, 0, 0, 0, 0x05, 0xdc]);
        assert_eq!(options[0].link_layer_addr(), None);
        assert_eq!(options[1].link_layer_addr(), Some(MAC_A));
    }

    /// The message of `captured` after `damage`, with its checksum made right again.
    fn damaged(captured: &[u8], damage: impl Fn(&mut [u8])) -> Result<Repr, Error> {
        let (src, dst, icmp) = split(captured);
        let mut bytes = icmp.to_vec();
        damage(&mut bytes);
        let mut packet = icmpv6::Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(&src, &dst);
        let packet = icmpv6::Packet::new_checked(&bytes[..])?;
        match Icmpv6Repr::parse(&src, &dst, &packet, &ChecksumCaps::default())? {
            Icmpv6Repr::Ndisc(nd) => Ok(nd),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_what_rfc_4861_calls_invalid() {
        assert_eq!(
            damaged(&ICMPV6_NS, |b| b[1] = 1),
            Err(Error::Malformed),
            "code"
        );
        assert_eq!(
            damaged(&ICMPV6_NS, |b| b[8] = 0xff),
            Err(Error::Malformed),
            "multicast target"
        );
        assert_eq!(
            damaged(&ICMPV6_NS, |b| b[25] = 0),
            Err(Error::Malformed),
            "option of length 0"
        );
        assert_eq!(
            damaged(&ICMPV6_NS, |b| b[25] = 2),
            Err(Error::Malformed),
            "option past the end"
        );
        let (src, dst, icmp) = split(&ICMPV6_NS);
        for len in icmpv6::HEADER_LEN..FIXED_LEN {
            let mut bytes = icmp[..len].to_vec();
            let mut packet = icmpv6::Packet::new_unchecked(&mut bytes[..]);
            packet.fill_checksum(&src, &dst);
            let packet = icmpv6::Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(
                Icmpv6Repr::parse(&src, &dst, &packet, &ChecksumCaps::default()),
                Err(Error::Truncated),
                "{len}"
            );
        }
        // A link-layer option of another length than Ethernet's carries no address espo
        // can use: skipped, not refused.
        let long = damaged(&ICMPV6_NS_MTU_OPT, |b| {
            b[24..40].copy_from_slice(&[1, 2, 2, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0]);
        });
        assert_eq!(
            long,
            Ok(Repr::NeighborSolicit {
                target_addr: v6("2001:db8::2"),
                lladdr: None,
            })
        );
    }

    #[test]
    fn emit_matches_captures_over_poison() {
        let caps = ChecksumCaps::default();
        for (captured, repr) in [
            (
                &ICMPV6_NS[..],
                Repr::NeighborSolicit {
                    target_addr: v6("2001:db8::2"),
                    lladdr: Some(MAC_A),
                },
            ),
            (
                &ICMPV6_NS_DAD[..],
                Repr::NeighborSolicit {
                    target_addr: v6("2001:db8::2"),
                    lladdr: None,
                },
            ),
            (
                &ICMPV6_NA[..],
                Repr::NeighborAdvert {
                    flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                    target_addr: v6("2001:db8::2"),
                    lladdr: Some(MAC_B),
                },
            ),
        ] {
            let (src, dst, icmp) = split(captured);
            let message = Icmpv6Repr::Ndisc(repr);
            assert_eq!(message.buffer_len(), icmp.len());
            let mut bytes = std::vec![0xa5u8; icmp.len()];
            message
                .emit(
                    &src,
                    &dst,
                    &mut icmpv6::Packet::new_unchecked(&mut bytes[..]),
                    &caps,
                )
                .unwrap();
            assert_eq!(bytes, icmp, "{repr:?}");
        }
        let repr = Repr::NeighborSolicit {
            target_addr: v6("2001:db8::2"),
            lladdr: Some(MAC_A),
        };
        let mut short = [0u8; 31];
        assert_eq!(
            repr.emit(&mut icmpv6::Packet::new_unchecked(&mut short[..])),
            Err(Error::BufferTooSmall)
        );
    }

    proptest! {
        #[test]
        fn repr_round_trips(
            advert in any::<bool>(),
            flags in any::<u8>(),
            target in any::<[u8; 16]>(),
            mac in proptest::option::of(any::<[u8; 6]>()),
        ) {
            let mut target = target;
            target[0] &= 0xfe; // not ff00::/8
            let (target_addr, lladdr) = (Ipv6Addr::from(target), mac.map(Address));
            let repr = if advert {
                Repr::NeighborAdvert { flags: NeighborFlags::from_bits(flags), target_addr, lladdr }
            } else {
                Repr::NeighborSolicit { target_addr, lladdr }
            };
            let (src, dst) = (v6("fe80::1"), v6("ff02::1"));
            let message = Icmpv6Repr::Ndisc(repr);
            let mut bytes = std::vec![0xa5u8; message.buffer_len()];
            let caps = ChecksumCaps::default();
            message.emit(&src, &dst, &mut icmpv6::Packet::new_unchecked(&mut bytes[..]), &caps).unwrap();
            let packet = icmpv6::Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(Icmpv6Repr::parse(&src, &dst, &packet, &caps), Ok(message));
        }

        #[test]
        fn any_options_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut seen = 0;
            for option in Options::new(&bytes) {
                match option {
                    Ok(o) => {
                        prop_assert!(o.bytes.len() >= OPTION_UNIT);
                        seen += o.bytes.len();
                    }
                    Err(_) => break,
                }
            }
            prop_assert!(seen <= bytes.len());
        }
    }
}
