//! Property tests of the message layer: generated messages and inner chains round-trip,
//! arbitrary and mutated bytes never panic.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::tests::{ALL, messages};
use super::*;

fn arb_payload() -> impl Strategy<Value = Payload> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    let transform = (1u8..6, any::<u16>(), proptest::option::of(any::<u16>()))
        .prop_map(|(k, id, bits)| sa::TransformRepr::new(TransformType::from(k), id, bits));
    let proposal = (0u8..4, bytes(9), proptest::collection::vec(transform, 0..6))
        .prop_map(|(p, spi, transforms)| (ProtocolId::from(p), spi, transforms));
    let selector = (
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        any::<u128>(),
        any::<u128>(),
    )
        .prop_map(|(protocol, start_port, end_port, v4, a, b)| {
            let (start, end) = if v4 {
                (
                    IpAddr::from(Ipv4Addr::from(a as u32)),
                    IpAddr::from(Ipv4Addr::from(b as u32)),
                )
            } else {
                (
                    IpAddr::from(std::net::Ipv6Addr::from(a)),
                    IpAddr::from(std::net::Ipv6Addr::from(b)),
                )
            };
            crate::ts::TsRange {
                protocol,
                start_port,
                end_port,
                start,
                end,
            }
        });
    prop_oneof![
        proptest::collection::vec(proposal, 1..4).prop_map(|ps| Payload::Sa(sa::Repr {
            proposals: ps
                .into_iter()
                .enumerate()
                .map(|(i, (protocol, spi, transforms))| sa::ProposalRepr {
                    number: i as u8 + 1,
                    protocol,
                    spi,
                    transforms,
                })
                .collect()
        })),
        (
            0x4000u16..0x5000,
            proptest::collection::vec(any::<u8>(), 1..40)
        )
            .prop_map(|(g, data)| Payload::Ke(ke::Repr {
                group: DhGroup::from(g),
                data
            })),
        "[a-z.]{1,30}".prop_map(|s| Payload::IdI(id::Repr::new(&id::Identity::Fqdn(s)))),
        (any::<[u8; 3]>(), any::<u128>()).prop_map(|(reserved, a)| {
            let mut r = id::Repr::new(&id::Identity::Ipv6(a.into()));
            r.reserved = reserved;
            Payload::IdR(r)
        }),
        (any::<u8>(), bytes(50)).prop_map(|(e, data)| Payload::Cert(cert::Repr {
            encoding: e.into(),
            data
        })),
        (any::<u8>(), bytes(50)).prop_map(|(e, data)| Payload::CertReq(cert::Repr {
            encoding: e.into(),
            data
        })),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 1..60)).prop_map(|(m, data)| {
            Payload::Auth(auth::Repr {
                method: m.into(),
                data,
            })
        }),
        proptest::collection::vec(any::<u8>(), 16..=256)
            .prop_map(|data| Payload::Nonce(nonce::Repr { data })),
        (0u8..4, bytes(9), 20000u16..30000, bytes(40)).prop_map(|(p, spi, k, data)| {
            Payload::Notify(notify::Repr {
                protocol: p.into(),
                spi,
                kind: k.into(),
                data,
            })
        }),
        (0u8..4, 1u8..9, 0usize..5).prop_map(|(p, size, n)| Payload::Delete(delete::Repr {
            protocol: p.into(),
            spi_size: size,
            spis: (0..n).map(|i| vec![i as u8; size as usize]).collect()
        })),
        bytes(40).prop_map(|id| Payload::VendorId(vendor::Repr { id })),
        proptest::collection::vec(selector.clone(), 1..4)
            .prop_map(|selectors| Payload::TsI(ts::Repr { selectors })),
        proptest::collection::vec(selector, 1..4)
            .prop_map(|selectors| Payload::TsR(ts::Repr { selectors })),
        (
            1u8..5,
            proptest::collection::vec((0u16..0x8000, bytes(20)), 0..4)
        )
            .prop_map(|(t, attrs)| Payload::Cp(cp::Repr {
                cfg_type: t.into(),
                attributes: attrs
                    .into_iter()
                    .map(|(kind, value)| cp::Attribute { kind, value })
                    .collect()
            })),
        bytes(40).prop_map(|message| Payload::Eap(eap::Repr { message })),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        proptest::collection::vec(arb_payload(), 0..6),
        proptest::option::of((1u8..49, proptest::collection::vec(any::<u8>(), 0..40))),
    )
        .prop_map(
            |(spi_i, spi_r, exchange, flags, message_id, mut payloads, sk)| {
                match sk {
                    // An SKF payload: first fragment when the type is odd.
                    Some((first, body)) if first % 3 == 0 => {
                        payloads.push(Payload::Skf(sk::FragmentRepr {
                            number: if first % 2 == 1 { 1 } else { 2 },
                            total: 2,
                            first: if first % 2 == 1 {
                                PayloadType::from(first)
                            } else {
                                PayloadType::None
                            },
                            body,
                        }))
                    }
                    Some((first, body)) => payloads.push(Payload::Sk {
                        first: PayloadType::from(first),
                        body,
                    }),
                    None => {}
                }
                Message {
                    spi_i,
                    spi_r,
                    exchange_type: exchange.into(),
                    flags: Flags::from_bits(flags),
                    message_id,
                    payloads,
                }
            },
        )
}

proptest! {
    #[test]
    fn messages_round_trip(message in arb_message()) {
        let bytes = message.to_bytes().unwrap();
        prop_assert_eq!(Message::parse(&bytes).unwrap(), message.clone());
        let inner: Vec<_> = message.payloads.iter().filter(|p| !matches!(p, Payload::Sk { .. } | Payload::Skf(_))).cloned().collect();
        let (first, chain) = chain_to_bytes(&inner).unwrap();
        prop_assert_eq!(parse_inner(first, &chain).unwrap(), inner);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), first in any::<u8>()) {
        let _ = Message::parse(&bytes);
        let _ = sk::locate(&bytes);
        let _ = parse_inner(PayloadType::from(first), &bytes);
        for parse in [
            |b: &[u8]| sa::Repr::parse(b).map(|_| ()),
            |b: &[u8]| ts::Repr::parse(b).map(|_| ()),
            |b: &[u8]| cp::Repr::parse(b).map(|_| ()),
            |b: &[u8]| delete::Repr::parse(b).map(|_| ()),
            |b: &[u8]| notify::Repr::parse(b).map(|_| ()),
            |b: &[u8]| id::Repr::parse(b).map(|_| ()),
        ] {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn mutated_strongswan_messages_never_panic(
        which in 0usize..20,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let all: Vec<_> = ALL.iter().flat_map(|f| messages(f)).collect();
        let mut bytes = all[which % all.len()].1.clone();
        for (at, value) in edits {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        if let Ok(message) = Message::parse(&bytes) {
            let again = message.to_bytes().unwrap();
            prop_assert_eq!(Message::parse(&again).unwrap(), message);
        }
    }
}
