//! The key schedule against published vectors and against strongSwan's own values; the
//! Diffie-Hellman groups; the SK payload under tampering.

use proptest::prelude::*;

use super::*;
use crate::wire::{ExchangeType, header};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_prfs_are_hmac_as_rfc_4231_and_rfc_2202_give_them() {
    // Test case 1 of each: key 0x0b * 20, data "Hi There".
    let key = [0x0b; 20];
    let cases = [
        (Prf::HmacSha1, "b617318655057264e28bc0b6fb378c8ef146be00"),
        (
            Prf::HmacSha256,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            Prf::HmacSha384,
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
        ),
        (
            Prf::HmacSha512,
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
        ),
    ];
    for (prf, want) in cases {
        assert_eq!(prf.compute(&key, &[b"Hi ", b"There"]).as_slice(), hex(want));
        assert_eq!(prf.output_len(), want.len() / 2);
        assert_eq!(Prf::from_id(prf.id()), Some(prf));
    }
}

#[test]
fn prf_plus_chains_its_blocks_and_stops_at_255() {
    // T1 = prf(K, S | 1), T2 = prf(K, T1 | S | 2), ...; computed with Python's hmac.
    let key: Vec<u8> = (0..32).collect();
    let want = "4fae78f37a588390e442a412cb463634d9dce644473eb1ea3b773f8b675f7a9406dc2d03dec3ba780e2a7dd6e0a052dd964a23269299ac540144a0d72e865d8ed03d2fdecaaaa847cf048a4653eb8b4479cf7b48edbfed413da1e50617270341410cddfb";
    let got = Prf::HmacSha256.plus(&key, b"seed", 100).unwrap();
    assert_eq!(got.as_slice(), hex(want));
    assert!(Prf::HmacSha256.plus(&key, b"seed", 255 * 32).is_ok());
    assert_eq!(
        Prf::HmacSha256
            .plus(&key, b"seed", 255 * 32 + 1)
            .unwrap_err(),
        CryptoError::TooMuchKeyingMaterial(255 * 32 + 1)
    );
}

/// One strongSwan session of testdata/crypto/strongswan.txt.
struct Session {
    name: String,
    values: std::collections::HashMap<String, String>,
}

impl Session {
    fn get(&self, k: &str) -> Vec<u8> {
        hex(&self.values[k])
    }

    fn text(&self, k: &str) -> &str {
        &self.values[k]
    }
}

fn sessions() -> Vec<Session> {
    let text = include_str!("../../testdata/crypto/strongswan.txt");
    let mut out: Vec<Session> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("[session ") {
            out.push(Session {
                name: name.trim_end_matches(']').into(),
                values: Default::default(),
            });
        } else if let Some((k, v)) = line.split_once(" = ") {
            out.last_mut()
                .unwrap()
                .values
                .insert(k.into(), v.trim().into());
        }
    }
    assert!(out.len() >= 4);
    out
}

/// strongSwan's algorithm names as an IKE suite.
fn suite(text: &str) -> IkeSuite {
    let parts: Vec<&str> = text.split('/').collect();
    let encryption = match parts[0] {
        "AES_GCM_16-128" => Encryption::AesGcm16(AesKeyLen::Aes128),
        "AES_GCM_16-256" => Encryption::AesGcm16(AesKeyLen::Aes256),
        "AES_CBC-128" => Encryption::AesCbc(AesKeyLen::Aes128),
        "AES_CBC-256" => Encryption::AesCbc(AesKeyLen::Aes256),
        other => panic!("{other}"),
    };
    let find = |prefix: &str| parts.iter().find(|p| p.starts_with(prefix)).copied();
    let integrity = find("HMAC_").map(|i| match i {
        "HMAC_SHA2_256_128" => Integrity::HmacSha256_128,
        "HMAC_SHA2_384_192" => Integrity::HmacSha384_192,
        "HMAC_SHA2_512_256" => Integrity::HmacSha512_256,
        other => panic!("{other}"),
    });
    let prf = match find("PRF_").unwrap() {
        "PRF_HMAC_SHA2_256" => Prf::HmacSha256,
        "PRF_HMAC_SHA2_384" => Prf::HmacSha384,
        "PRF_HMAC_SHA2_512" => Prf::HmacSha512,
        other => panic!("{other}"),
    };
    let dh = match *parts.last().unwrap() {
        "CURVE_25519" => DhGroup::Curve25519,
        "ECP_256" => DhGroup::Ecp256,
        "ECP_384" => DhGroup::Ecp384,
        "MODP_2048" => DhGroup::Modp2048,
        "MODP_3072" => DhGroup::Modp3072,
        other => panic!("{other}"),
    };
    IkeSuite::new(encryption, integrity, prf, dh).unwrap()
}

fn esp_suite(text: &str) -> ChildSuite {
    match text {
        "AES_GCM_16-128" => ChildSuite::esp(EncryptionAlgorithm::AesGcm128, None),
        "AES_GCM_16-256" => ChildSuite::esp(EncryptionAlgorithm::AesGcm256, None),
        "AES_CBC-128/HMAC_SHA2_256_128" => ChildSuite::esp(
            EncryptionAlgorithm::AesCbc128,
            Some(IntegrityAlgorithm::HmacSha256_128),
        ),
        other => panic!("{other}"),
    }
}

#[test]
fn the_key_schedule_gives_strongswans_keys() {
    for s in sessions() {
        let suite = suite(s.text("ike"));
        let (ni, nr) = (s.get("ni"), s.get("nr"));
        let skeyseed = skeyseed(suite.prf, &ni, &nr, &s.get("g_ir"));
        assert_eq!(skeyseed.as_slice(), s.get("skeyseed"), "{}", s.name);
        let spi = |k: &str| u64::from_str_radix(s.text(k), 16).unwrap();
        let keys =
            IkeSaKeys::derive(&suite, &skeyseed, &ni, &nr, spi("spi_i"), spi("spi_r")).unwrap();
        for (name, got) in [
            ("sk_d", &keys.sk_d),
            ("sk_ai", &keys.sk_ai),
            ("sk_ar", &keys.sk_ar),
            ("sk_ei", &keys.sk_ei),
            ("sk_er", &keys.sk_er),
            ("sk_pi", &keys.sk_pi),
            ("sk_pr", &keys.sk_pr),
        ] {
            assert_eq!(got.as_slice(), s.get(name), "{} {name}", s.name);
        }
        // The first CHILD_SA (IKE_AUTH: no PFS, the IKE SA's nonces).
        let child = esp_suite(s.text("esp"));
        let keymat = ChildSaKeys::derive(suite.prf, &keys.sk_d, None, &ni, &nr, &child).unwrap();
        for (dir, got) in [
            ("esp_i2r", &keymat.initiator_to_responder),
            ("esp_r2i", &keymat.responder_to_initiator),
        ] {
            let want = s.text(dir);
            let (key, integ) = want.split_once(':').unwrap_or((want, ""));
            assert_eq!(got.encryption.as_slice(), hex(key), "{} {dir}", s.name);
            assert_eq!(
                got.integrity
                    .as_deref()
                    .map(|i| i.to_vec())
                    .unwrap_or_default(),
                hex(integ),
                "{} {dir} integrity",
                s.name
            );
        }
    }
}

#[test]
fn a_rekeyed_skeyseed_uses_the_old_sk_d() {
    // §2.18: prf(SK_d (old), g^ir (new) | Ni | Nr), cross-checked with compute().
    let got = rekey_skeyseed(Prf::HmacSha256, b"old sk_d", b"gir", b"ni", b"nr");
    let want = Prf::HmacSha256.compute(b"old sk_d", &[b"girninr"]);
    assert_eq!(got, want);
}

#[test]
fn suites_pair_encryption_with_integrity_as_rfc_7296_asks() {
    let gcm = Encryption::AesGcm16(AesKeyLen::Aes128);
    let cbc = Encryption::AesCbc(AesKeyLen::Aes128);
    assert!(
        IkeSuite::new(
            gcm,
            Some(Integrity::HmacSha256_128),
            Prf::HmacSha256,
            DhGroup::Curve25519
        )
        .is_err()
    );
    assert!(IkeSuite::new(cbc, None, Prf::HmacSha256, DhGroup::Curve25519).is_err());
    assert!(
        IkeSuite::new(
            cbc,
            Some(Integrity::HmacSha256_128),
            Prf::HmacSha256,
            DhGroup::Curve25519
        )
        .is_ok()
    );
    assert_eq!(
        Encryption::from_id(20, Some(256)),
        Some(Encryption::AesGcm16(AesKeyLen::Aes256))
    );
    assert_eq!(Encryption::from_id(20, Some(192)), None);
    assert_eq!(Encryption::from_id(3, None), None);
}

const GROUPS: [DhGroup; 5] = [
    DhGroup::Curve25519,
    DhGroup::Ecp256,
    DhGroup::Ecp384,
    DhGroup::Modp2048,
    DhGroup::Modp3072,
];

#[test]
fn both_ends_of_every_group_agree() {
    for g in GROUPS {
        let a = KeyExchange::generate(g).unwrap();
        let b = KeyExchange::generate(g).unwrap();
        assert_eq!(a.public_value().len(), g.public_len(), "{g}");
        assert_ne!(a.public_value(), b.public_value());
        let (pa, pb) = (a.public_value().to_vec(), b.public_value().to_vec());
        let sa = a.agree(&pb).unwrap();
        let sb = b.agree(&pa).unwrap();
        assert_eq!(sa.as_ref(), sb.as_ref(), "{g}");
        assert!(sa.as_ref().iter().any(|b| *b != 0));
    }
}

#[test]
fn bad_public_values_are_refused() {
    for g in GROUPS {
        let len = g.public_len();
        let short = KeyExchange::generate(g).unwrap();
        assert!(short.agree(&vec![1; len - 1]).is_err(), "{g} short");
    }
    // MODP: 0, 1, p - 1 and p are not public values (RFC 6989).
    let p = hex(super::dh::tests_prime_2048());
    let mut p_minus_1 = p.clone();
    *p_minus_1.last_mut().unwrap() -= 1;
    let mut one = vec![0u8; 256];
    one[255] = 1;
    for bad in [vec![0u8; 256], one, p_minus_1, p] {
        let ke = KeyExchange::generate(DhGroup::Modp2048).unwrap();
        assert_eq!(
            ke.agree(&bad).unwrap_err(),
            CryptoError::BadPublicValue("outside 1 < y < p - 1")
        );
    }
    // ECP: a point not on the curve.
    let ke = KeyExchange::generate(DhGroup::Ecp256).unwrap();
    assert!(ke.agree(&[7u8; 64]).is_err());
    // X25519: a low-order point gives an all-zero secret.
    let ke = KeyExchange::generate(DhGroup::Curve25519).unwrap();
    assert!(ke.agree(&[0u8; 32]).is_err());
}

fn header(id: u32) -> header::Repr {
    header::Repr {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: 0x1112_1314_1516_1718,
        next_payload: PayloadType::Sk,
        minor_version: 0,
        exchange_type: ExchangeType::IkeAuth,
        flags: wire::Flags {
            initiator: true,
            version: false,
            response: false,
        },
        message_id: id,
        length: 0,
    }
}

fn ciphers() -> Vec<(SkCipher, SkCipher)> {
    let gcm = Encryption::AesGcm16(AesKeyLen::Aes256);
    let cbc = Encryption::AesCbc(AesKeyLen::Aes128);
    let chacha = Encryption::ChaCha20Poly1305;
    let make = |e: Encryption, i: Option<Integrity>| {
        let ek: Vec<u8> = (0..e.key_len() as u8).collect();
        let ak: Vec<u8> = (0..i.map_or(0, |i| i.key_len()) as u8).collect();
        (
            SkCipher::new(e, i, &ek, &ak).unwrap(),
            SkCipher::new(e, i, &ek, &ak).unwrap(),
        )
    };
    vec![
        make(gcm, None),
        make(cbc, Some(Integrity::HmacSha256_128)),
        make(cbc, Some(Integrity::HmacSha512_256)),
        make(chacha, None),
    ]
}

#[test]
fn sealed_messages_open_and_every_flipped_bit_is_refused() {
    for (mut tx, rx) in ciphers() {
        let inner = b"\x00\x00\x00\x08\x01\x00\x00\x00 some inner payload bytes";
        let msg = tx.seal(&header(1), PayloadType::IdI, inner).unwrap();
        let parsed = wire::Message::parse(&msg).unwrap();
        assert_eq!(parsed.message_id, 1);
        let (first, plain) = rx.open(&msg).unwrap();
        assert_eq!(first, PayloadType::IdI);
        assert_eq!(plain.as_slice(), inner);
        for bit in 0..msg.len() * 8 {
            let mut bad = msg.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(rx.open(&bad).is_err(), "bit {bit} of {}", msg.len());
        }
        // Two messages never share an IV.
        let again = tx.seal(&header(1), PayloadType::IdI, inner).unwrap();
        assert_ne!(again, msg);
    }
}

#[test]
fn fragments_open_with_their_numbers_which_are_authenticated() {
    for (mut tx, rx) in ciphers() {
        let chunk = b"a piece of an inner chain";
        let msg = tx
            .seal_fragment(&header(3), PayloadType::IdI, 1, 4, chunk)
            .unwrap();
        let parsed = wire::Message::parse(&msg).unwrap();
        assert_eq!(parsed.message_id, 3);
        assert_eq!(
            msg.len(),
            chunk.len() + tx.overhead(chunk.len(), true),
            "overhead says the size"
        );
        let (first, plain, fragment) = rx.open_any(&msg).unwrap();
        assert_eq!(
            (first, plain.as_slice(), fragment),
            (PayloadType::IdI, &chunk[..], Some((1, 4)))
        );
        assert!(rx.open(&msg).is_err(), "open takes whole messages only");
        // A later fragment names no first payload.
        let later = tx
            .seal_fragment(&header(3), PayloadType::None, 4, 4, chunk)
            .unwrap();
        assert_eq!(rx.open_any(&later).unwrap().2, Some((4, 4)));
        // The fragment fields are covered by the ICV: another number or total is refused.
        let at = wire::header::HEADER_LEN + 4;
        for field in [at + 1, at + 3] {
            let mut bad = msg.clone();
            bad[field] ^= 2;
            assert!(rx.open_any(&bad).is_err(), "byte {field}");
        }
        // A whole message reads as no fragment.
        let whole = tx.seal(&header(3), PayloadType::IdI, chunk).unwrap();
        assert_eq!(whole.len(), chunk.len() + tx.overhead(chunk.len(), false));
        assert_eq!(rx.open_any(&whole).unwrap().2, None);
    }
}

#[test]
fn an_sk_payload_that_is_too_short_is_refused() {
    for (mut tx, rx) in ciphers() {
        let msg = tx.seal(&header(2), PayloadType::None, b"").unwrap();
        assert!(
            rx.open(&msg).is_ok(),
            "an empty inner chain (a liveness check)"
        );
        for cut in 1..msg.len() {
            assert!(rx.open(&msg[..cut]).is_err());
        }
    }
}

proptest! {
    #[test]
    fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for (_, rx) in ciphers() {
            let _ = rx.open(&bytes);
        }
    }

    #[test]
    fn any_inner_chain_round_trips(inner in proptest::collection::vec(any::<u8>(), 0..600), id in any::<u32>()) {
        for (mut tx, rx) in ciphers() {
            let msg = tx.seal(&header(id), PayloadType::Notify, &inner).unwrap();
            let (first, plain) = rx.open(&msg).unwrap();
            prop_assert_eq!(first, PayloadType::Notify);
            prop_assert_eq!(plain.as_slice(), inner.as_slice());
        }
    }
}
