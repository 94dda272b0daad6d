//! Proposal tests: strongSwan notation, and negotiation against what strongSwan 5.9.8
//! offered and selected in captured sessions (testdata/wire).

use proptest::prelude::*;

use super::*;
use crate::wire::TransformType;
use crate::wire::sa::TransformRepr;
use crate::wire::tests::{entries, vector};
use crate::wire::{Message, Payload, PayloadType, parse_inner, sa};

const FILES: [&str; 6] = [
    crate::wire::tests::CERT_FRAGMENTS,
    crate::wire::tests::PSK_RESPONDER_DIFFERS,
    crate::wire::tests::PSK_GCM,
    crate::wire::tests::PSK_MULTI_CBC,
    crate::wire::tests::CERT_ECDSA,
    crate::wire::tests::PSK_DEFAULT,
];

fn config(file: &str, key: &str) -> Vec<String> {
    let (_, value) = entries(file).into_iter().find(|(n, _)| *n == key).unwrap();
    vec![value.to_string()]
}

fn sa_of(payloads: &[Payload]) -> sa::Repr {
    payloads
        .iter()
        .find_map(|p| {
            if let Payload::Sa(s) = p {
                Some(s.clone())
            } else {
                None
            }
        })
        .unwrap()
}

fn message_sa(file: &str, name: &str) -> sa::Repr {
    sa_of(&Message::parse(&vector(file, name)).unwrap().payloads)
}

fn inner_sa(file: &str, name: &str) -> sa::Repr {
    let first = entries(file)
        .into_iter()
        .find(|(n, _)| *n == format!("{name}_inner_first"))
        .unwrap()
        .1;
    sa_of(
        &parse_inner(
            PayloadType::from(first.parse::<u8>().unwrap()),
            &vector(file, &format!("{name}_inner")),
        )
        .unwrap(),
    )
}

#[test]
fn parses_strongswan_notation() {
    let p = Proposal::parse_ike("aes128gcm16-prfsha256-x25519").unwrap();
    assert_eq!(p.encryption, vec![(EncrId::AesGcm16, Some(128))]);
    assert_eq!(
        (p.prf.as_slice(), p.dh.as_slice()),
        (&[PrfId::HmacSha256][..], &[DhGroup::Curve25519][..])
    );
    assert!(p.integrity.is_empty() && p.esn.is_empty());
    // IKE without PRF: the integrity algorithm's PRF, as strongSwan does.
    let p = Proposal::parse_ike("aes256-sha384-ecp384").unwrap();
    assert_eq!(p.prf, vec![PrfId::HmacSha384]);
    let p = Proposal::parse_esp("aes256-sha256-modp3072").unwrap();
    assert_eq!(p.dh, vec![DhGroup::Modp3072]);
    assert_eq!(p.esn, vec![Esn::No]);
    assert!(p.without_dh().dh.is_empty());
    assert_eq!(
        Proposal::parse_esp("chacha20poly1305-esn-noesn")
            .unwrap()
            .esn,
        vec![Esn::Yes, Esn::No]
    );
    assert_eq!(
        Proposal::parse_esp("aes128gcm128").unwrap(),
        Proposal::parse_esp("aes128gcm16").unwrap()
    );
    assert_eq!(
        Proposal::parse_ike("aes-sha256-curve25519").unwrap(),
        Proposal::parse_ike("aes128-sha256-prfsha256-x25519").unwrap()
    );
}

#[test]
fn refuses_what_strongswan_or_espo_would_refuse() {
    let err = Proposal::parse_ike("3des-sha1-modp1024").unwrap_err();
    assert_eq!(
        err,
        ProposalError::UnsupportedKeyword {
            keyword: "3des".into(),
            proposal: "3des-sha1-modp1024".into()
        }
    );
    assert!(err.to_string().contains("3des") && err.to_string().contains("3des-sha1-modp1024"));
    for unsupported in [
        "aes128ctr",
        "aes256ccm16",
        "ecp521",
        "modp1024",
        "aes192",
        "camellia128ccm16",
    ] {
        let text = format!("aes128-sha256-{unsupported}");
        assert!(
            matches!(Proposal::parse_ike(&text), Err(ProposalError::UnsupportedKeyword { keyword, .. }) if keyword == unsupported)
        );
    }
    assert!(
        matches!(Proposal::parse_ike("aes128-sha256-bogus"), Err(ProposalError::UnknownKeyword { keyword, .. }) if keyword == "bogus")
    );
    assert!(matches!(
        Proposal::parse_esp("aes128"),
        Err(ProposalError::MissingIntegrity { .. })
    ));
    assert!(matches!(
        Proposal::parse_esp("aes128gcm16-sha256"),
        Err(ProposalError::AeadMixed { .. })
    ));
    assert!(matches!(
        Proposal::parse_esp("aes128gcm16-aes128-sha256"),
        Err(ProposalError::AeadMixed { .. })
    ));
    assert!(matches!(
        Proposal::parse_ike("aes128gcm16-x25519"),
        Err(ProposalError::MissingPrf { .. })
    ));
    assert!(matches!(
        Proposal::parse_ike("aes128-sha256"),
        Err(ProposalError::MissingDh { .. })
    ));
    assert!(matches!(
        Proposal::parse_ike("sha256-x25519"),
        Err(ProposalError::MissingEncryption { .. })
    ));
    assert!(matches!(
        Proposal::parse_esp("aes128gcm16-prfsha256"),
        Err(ProposalError::NotForProtocol { .. })
    ));
    assert!(matches!(
        Proposal::parse_ike("aes128gcm16-prfsha256-x25519-esn"),
        Err(ProposalError::NotForProtocol { .. })
    ));
    assert_eq!(
        Proposal::parse_list(&[], ProtocolId::Ike),
        Err(ProposalError::Empty)
    );
}

#[test]
fn default_keyword_is_strongswan_default_restricted_to_espo() {
    let ike = Proposal::parse_list(&["default".into()], ProtocolId::Ike).unwrap();
    assert_eq!(ike.len(), 2);
    assert!(ike[0].encryption.iter().all(|(e, _)| *e == EncrId::AesCbc));
    assert!(ike[1].encryption.iter().all(|(e, _)| e.is_aead()));
    let esp = Proposal::parse_list(&["default".into()], ProtocolId::Esp).unwrap();
    assert_eq!(
        esp[1].encryption,
        vec![(EncrId::AesGcm16, Some(128)), (EncrId::AesGcm16, Some(256))]
    );
}

#[test]
fn display_is_parsed_back() {
    for text in [
        "aes128gcm16-prfsha256-x25519",
        "aes256-aes128-sha384-sha256-prfsha384-prfsha256-ecp384-x25519-modp3072",
    ] {
        let p = Proposal::parse_ike(text).unwrap();
        assert_eq!(p.to_string(), text);
    }
    assert_eq!(
        Proposal::parse_esp("aes128gcm16").unwrap().to_string(),
        "aes128gcm16"
    );
    assert_eq!(
        Proposal::parse_esp("aes256-sha512-esn")
            .unwrap()
            .to_string(),
        "aes256-sha512-esn"
    );
    for p in Proposal::parse_list(&["default".into()], ProtocolId::Ike).unwrap() {
        assert_eq!(Proposal::parse_ike(&p.to_string()).unwrap(), p);
    }
}

/// Our configured proposals on the wire are what strongSwan sent for the same strings
/// (IKE: with the KE payload's group promoted).
#[test]
fn to_wire_matches_strongswan_offers() {
    for file in [
        crate::wire::tests::PSK_GCM,
        crate::wire::tests::PSK_MULTI_CBC,
        crate::wire::tests::CERT_ECDSA,
        crate::wire::tests::PSK_RESPONDER_DIFFERS,
        crate::wire::tests::CERT_FRAGMENTS,
    ] {
        let ike = Proposal::parse_list(&config(file, "initiator_ike"), ProtocolId::Ike).unwrap();
        let ike = promote_dh(&ike, ike[0].dh[0]);
        let offer = message_sa(file, "sa_init_request");
        let ours: Vec<_> = ike
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_wire(i as u8 + 1, &[]))
            .collect();
        assert_eq!(ours, offer.proposals);
        let esp = Proposal::parse_list(&config(file, "initiator_esp"), ProtocolId::Esp).unwrap();
        let offer = inner_sa(file, "auth_request");
        let ours: Vec<_> = esp
            .iter()
            .enumerate()
            .map(|(i, p)| p.without_dh().to_wire(i as u8 + 1, &offer.proposals[i].spi))
            .collect();
        assert_eq!(ours, offer.proposals);
        for (i, repr) in offer.proposals.iter().enumerate() {
            assert_eq!(Proposal::from_wire(repr).unwrap(), esp[i].without_dh());
        }
    }
}

/// Given strongSwan's offer and the responder's configuration, `select` answers what the
/// strongSwan responder answered, byte for byte, also where the responder's proposals and
/// their order differ from the initiator's; the initiator accepts that answer.
#[test]
fn select_picks_what_strongswan_picked() {
    for file in FILES {
        let ike = Proposal::parse_list(&config(file, "config_ike"), ProtocolId::Ike).unwrap();
        let offer = message_sa(file, "sa_init_request");
        let answer = message_sa(file, "sa_init_response");
        let selected = select(&ike, &offer.proposals).unwrap();
        assert_eq!(
            vec![selected.chosen.to_wire(selected.number, &selected.spi)],
            answer.proposals
        );
        // The initiator's view, for an offer made from its configuration (strongSwan's
        // default offer holds more algorithms than espo's, at the same proposal numbers).
        let initiator =
            Proposal::parse_list(&config(file, "initiator_ike"), ProtocolId::Ike).unwrap();
        assert_eq!(
            accept_response(&initiator, &answer.proposals[0]),
            Some(selected.chosen)
        );

        let esp: Vec<_> = Proposal::parse_list(&config(file, "config_esp"), ProtocolId::Esp)
            .unwrap()
            .iter()
            .map(Proposal::without_dh)
            .collect();
        let offer = inner_sa(file, "auth_request");
        let answer = inner_sa(file, "auth_response");
        let selected = select(&esp, &offer.proposals).unwrap();
        let initiator =
            Proposal::parse_list(&config(file, "initiator_esp"), ProtocolId::Esp).unwrap();
        let initiator: Vec<_> = initiator.iter().map(Proposal::without_dh).collect();
        assert_eq!(
            accept_response(&initiator, &answer.proposals[0]),
            Some(selected.chosen)
        );
        let mut expected = answer.proposals.clone();
        // The responder answers with its own inbound SPI.
        expected[0].spi = selected.spi.clone();
        assert_eq!(
            vec![selected.chosen.to_wire(selected.number, &selected.spi)],
            expected
        );
    }
}

#[test]
fn esn_negotiated_in_configured_order() {
    let offer = [Proposal::parse_esp("aes256gcm16-esn-noesn")
        .unwrap()
        .to_wire(1, &[9; 4])];
    let both = Proposal::parse_esp("aes256gcm16-noesn-esn").unwrap();
    assert_eq!(select(&[both], &offer).unwrap().chosen.esn, Esn::No);
    let esn_only = Proposal::parse_esp("aes256gcm16-esn").unwrap();
    let selected = select(std::slice::from_ref(&esn_only), &offer).unwrap();
    assert_eq!(
        (selected.chosen.esn, selected.spi.as_slice()),
        (Esn::Yes, &[9u8; 4][..])
    );
    let answer = selected.chosen.to_wire(1, &[7; 4]);
    assert_eq!(
        answer.transforms.last().map(|t| (t.kind, t.id)),
        Some((TransformType::Esn, 1))
    );
    // An offer without ESN transform means no ESN.
    let mut no_esn = offer[0].clone();
    no_esn.transforms.retain(|t| t.kind != TransformType::Esn);
    assert!(select(&[esn_only], std::slice::from_ref(&no_esn)).is_none());
    assert!(select(&[Proposal::parse_esp("aes256gcm16").unwrap()], &[no_esn]).is_some());
    // An IKE answer carrying an ESN transform is refused.
    let ike = [Proposal::parse_ike("aes128gcm16-prfsha256-x25519").unwrap()];
    let mut answer = ike[0].to_wire(1, &[]);
    answer
        .transforms
        .push(TransformRepr::new(TransformType::Esn, 0, None));
    assert!(accept_response(&ike, &answer).is_none());
}

#[test]
fn promote_dh_orders_the_offer_for_the_ke_group() {
    let list = Proposal::parse_list(
        &["aes128-sha256-ecp256-x25519,aes128gcm16-prfsha256-modp3072,aes256gcm16-prfsha384-ecp384-x25519".into()],
        ProtocolId::Ike,
    )
    .unwrap();
    let offer = promote_dh(&list, DhGroup::Curve25519);
    assert_eq!(offer[0].dh, vec![DhGroup::Curve25519, DhGroup::Ecp256]);
    assert_eq!(offer[1].dh, vec![DhGroup::Curve25519, DhGroup::Ecp384]);
    assert_eq!(offer[2], list[1]);
}

#[test]
fn select_prefers_configured_order_and_refuses_extras() {
    let offer: Vec<_> = ["aes128-sha256-x25519", "aes256gcm16-prfsha384-ecp384"]
        .iter()
        .enumerate()
        .map(|(i, t)| Proposal::parse_ike(t).unwrap().to_wire(i as u8 + 1, &[]))
        .collect();
    let configured = [
        Proposal::parse_ike("aes256gcm16-aes128gcm16-prfsha384-ecp384-x25519").unwrap(),
        Proposal::parse_ike("aes128-sha256-x25519").unwrap(),
    ];
    let selected = select(&configured, &offer).unwrap();
    assert_eq!(selected.number, 2);
    assert_eq!(selected.chosen.encryption, (EncrId::AesGcm16, Some(256)));
    assert_eq!(selected.chosen.dh, Some(DhGroup::Ecp384));
    // Nothing in common.
    assert!(
        select(
            &[Proposal::parse_ike("chacha20poly1305-prfsha512-modp3072").unwrap()],
            &offer
        )
        .is_none()
    );
    // PFS asked for by one side only.
    let esp_pfs = Proposal::parse_esp("aes128gcm16-x25519")
        .unwrap()
        .to_wire(1, &[1, 2, 3, 4]);
    assert!(
        select(
            &[Proposal::parse_esp("aes128gcm16").unwrap()],
            std::slice::from_ref(&esp_pfs)
        )
        .is_none()
    );
    // An answer with two encryption transforms, or one not offered, is refused.
    let offered = [Proposal::parse_ike("aes128-aes256-sha256-x25519").unwrap()];
    let mut two = offered[0].to_wire(1, &[]);
    assert!(accept_response(&offered, &two).is_none());
    two.transforms.remove(0);
    assert!(accept_response(&offered, &two).is_some());
    let other = Proposal::parse_ike("aes128-sha384-x25519")
        .unwrap()
        .to_wire(1, &[]);
    assert!(accept_response(&offered, &other).is_none());
    let mut wrong_number = two.clone();
    wrong_number.number = 2;
    assert!(accept_response(&offered, &wrong_number).is_none());
}

fn arb_proposal() -> impl Strategy<Value = Proposal> {
    let encr = prop_oneof![
        Just((EncrId::AesCbc, Some(128u16))),
        Just((EncrId::AesCbc, Some(256))),
        Just((EncrId::AesGcm16, Some(128))),
        Just((EncrId::AesGcm16, Some(256))),
        Just((EncrId::ChaCha20Poly1305, None)),
    ];
    let integ = prop_oneof![
        Just(IntegId::HmacSha1_96),
        Just(IntegId::HmacSha256_128),
        Just(IntegId::HmacSha384_192),
        Just(IntegId::HmacSha512_256)
    ];
    let prf = prop_oneof![
        Just(PrfId::HmacSha1),
        Just(PrfId::HmacSha256),
        Just(PrfId::HmacSha384),
        Just(PrfId::HmacSha512)
    ];
    let dh = prop_oneof![
        Just(DhGroup::Modp2048),
        Just(DhGroup::Modp3072),
        Just(DhGroup::Ecp256),
        Just(DhGroup::Ecp384),
        Just(DhGroup::Curve25519)
    ];
    (
        proptest::collection::vec(encr, 1..4),
        proptest::collection::vec(integ, 0..3),
        proptest::collection::vec(prf, 0..3),
        proptest::collection::vec(dh, 0..3),
    )
        .prop_map(|(encryption, integrity, prf, dh)| {
            let mut p = Proposal {
                protocol: ProtocolId::Ike,
                encryption,
                integrity,
                prf,
                dh,
                esn: Vec::new(),
            };
            p.encryption.dedup();
            p.integrity.dedup();
            p.prf.dedup();
            p.dh.dedup();
            p
        })
}

proptest! {
    /// Whatever the responder selects from an offer, the initiator accepts, and it is made
    /// of algorithms both sides listed.
    #[test]
    fn selection_is_accepted(offer in proptest::collection::vec(arb_proposal(), 1..4), configured in proptest::collection::vec(arb_proposal(), 1..4)) {
        let wire: Vec<_> = offer.iter().enumerate().map(|(i, p)| p.to_wire(i as u8 + 1, &[])).collect();
        if let Some(selected) = select(&configured, &wire) {
            let answer = selected.chosen.to_wire(selected.number, &selected.spi);
            prop_assert_eq!(accept_response(&offer, &answer), Some(selected.chosen));
            prop_assert!(configured.iter().any(|c| c.encryption.contains(&selected.chosen.encryption)));
        }
        for p in &offer {
            prop_assert_eq!(Proposal::from_wire(&p.to_wire(1, &[])), Some(p.clone()));
        }
    }
}
