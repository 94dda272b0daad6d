//! Authentication against strongSwan's own IKE_AUTH messages (their SK payloads opened with
//! the keys charon logged, their PSK and ECDSA AUTH values verified), identities, and
//! signatures made here verified by the same code both ways.

use std::collections::HashMap;

use super::*;
use crate::crypto::{AesKeyLen, Encryption, Integrity, SkCipher};
use crate::wire::{self, Payload};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The key schedule's sessions, by their initiator SPI.
fn sessions() -> Vec<HashMap<String, String>> {
    include_str!("../../testdata/crypto/strongswan.txt")
        .split("[session ")
        .skip(1)
        .map(fields)
        .collect()
}

struct Case {
    keys: HashMap<String, String>,
    wire: HashMap<String, String>,
}

fn cases() -> Vec<Case> {
    let wires = [
        include_str!("../../testdata/wire/psk_gcm.txt"),
        include_str!("../../testdata/wire/psk_default.txt"),
        include_str!("../../testdata/wire/psk_multi_cbc.txt"),
        include_str!("../../testdata/wire/cert_ecdsa.txt"),
    ];
    let sessions = sessions();
    wires
        .iter()
        .map(|w| {
            let wire = fields(w);
            let spi = &wire["sa_init_request"][..16];
            let keys = sessions
                .iter()
                .find(|s| s["spi_i"] == spi)
                .unwrap_or_else(|| panic!("no keys for {spi}"))
                .clone();
            Case { keys, wire }
        })
        .collect()
}

fn ike_algorithms(name: &str) -> (Encryption, Option<Integrity>, Prf) {
    let e = if name.starts_with("AES_GCM_16-128") {
        Encryption::AesGcm16(AesKeyLen::Aes128)
    } else if name.starts_with("AES_CBC-128") {
        Encryption::AesCbc(AesKeyLen::Aes128)
    } else if name.starts_with("AES_CBC-256") {
        Encryption::AesCbc(AesKeyLen::Aes256)
    } else {
        panic!("{name}")
    };
    let i = if name.contains("HMAC_SHA2_256_128") {
        Some(Integrity::HmacSha256_128)
    } else if name.contains("HMAC_SHA2_384_192") {
        Some(Integrity::HmacSha384_192)
    } else {
        None
    };
    let p = if name.contains("PRF_HMAC_SHA2_384") {
        Prf::HmacSha384
    } else {
        Prf::HmacSha256
    };
    (e, i, p)
}

/// Opens one of strongSwan's IKE_AUTH messages; returns its inner payloads.
fn open(case: &Case, which: &str, initiator: bool) -> Vec<Payload> {
    let (e, i, _) = ike_algorithms(&case.keys["ike"]);
    let (ek, ak) = if initiator {
        (&case.keys["sk_ei"], &case.keys["sk_ai"])
    } else {
        (&case.keys["sk_er"], &case.keys["sk_ar"])
    };
    let cipher = SkCipher::new(e, i, &hex(ek), &hex(ak)).unwrap();
    let message = hex(&case.wire[which]);
    let (first, plain) = cipher.open(&message).unwrap();
    assert_eq!(
        plain.as_slice(),
        hex(&case.wire[&format!("{which}_inner")]),
        "{which}: the plaintext the independent decryption found"
    );
    wire::parse_inner(first, &plain).unwrap()
}

#[test]
fn strongswans_ike_auth_messages_open_and_their_psk_auth_verifies() {
    let mut psk_cases = 0;
    for case in cases() {
        let (_, _, prf) = ike_algorithms(&case.keys["ike"]);
        let (ni, nr) = (hex(&case.keys["ni"]), hex(&case.keys["nr"]));
        for (which, initiator) in [("auth_request", true), ("auth_response", false)] {
            let inner = open(&case, which, initiator);
            let id = inner
                .iter()
                .find_map(|p| match p {
                    Payload::IdI(id) | Payload::IdR(id) => Some(id.body()),
                    _ => None,
                })
                .unwrap();
            let auth = inner
                .iter()
                .find_map(|p| match p {
                    Payload::Auth(a) => Some(a.clone()),
                    _ => None,
                })
                .unwrap();
            let (sk_p, init, nonce) = if initiator {
                (&case.keys["sk_pi"], "sa_init_request", &nr)
            } else {
                (&case.keys["sk_pr"], "sa_init_response", &ni)
            };
            let octets = signed_octets(prf, &hex(sk_p), &hex(&case.wire[init]), nonce, &id);
            match case.keys.get("psk") {
                Some(psk) => {
                    psk_cases += 1;
                    assert_eq!(u8::from(auth.method), method::PSK);
                    assert!(
                        verify_psk_auth(prf, &hex(psk), &octets, &auth.data),
                        "{which}"
                    );
                    assert!(!verify_psk_auth(prf, b"another key", &octets, &auth.data));
                    let mut other = octets.clone();
                    other[0] ^= 1;
                    assert!(!verify_psk_auth(prf, &hex(psk), &other, &auth.data));
                }
                None => {
                    // A certificate session: the end entity's key verifies the signature.
                    let cert = inner
                        .iter()
                        .find_map(|p| match p {
                            Payload::Cert(c) => Some(Certificate::from_der(&c.data).unwrap()),
                            _ => None,
                        })
                        .unwrap();
                    let key = cert.public_key().unwrap();
                    let scheme =
                        verify_auth(&key, u8::from(auth.method), &auth.data, &octets).unwrap();
                    assert!(scheme.starts_with("ECDSA"), "{scheme}");
                    let identity = Identity::from_body(&id).unwrap();
                    assert!(cert.matches_identity(&identity), "{identity}");
                    let mut other = octets.clone();
                    other[5] ^= 1;
                    assert!(verify_auth(&key, u8::from(auth.method), &auth.data, &other).is_err());
                }
            }
        }
    }
    assert_eq!(psk_cases, 6);
}

#[test]
fn identities_read_as_strongswan_writes_them() {
    let cases = [
        ("192.0.2.1", 1, "192.0.2.1"),
        ("2001:db8::1", 5, "2001:db8::1"),
        ("gw.example.com", 2, "gw.example.com"),
        ("@literal", 2, "literal"),
        ("user@example.com", 3, "user@example.com"),
        ("C=CH, O=espo, CN=gw", 9, "C=CH, O=espo, CN=gw"),
        ("@#0a0b", 11, "#0a0b"),
    ];
    for (text, id_type, shown) in cases {
        let id = Identity::parse_config(text).unwrap();
        assert_eq!(id.id_type(), id_type, "{text}");
        assert_eq!(id.to_string(), shown);
        let body = id.body();
        assert_eq!(&body[1..4], &[0, 0, 0]);
        assert_eq!(Identity::from_body(&body).unwrap(), id);
    }
    assert_eq!(
        Identity::parse_config("GW.example.com").unwrap(),
        Identity::parse_config("gw.EXAMPLE.com").unwrap()
    );
    assert!(Identity::parse_config("").is_err());
    assert!(Identity::parse_config("X=1").is_err());
    for bad in [&[][..], &[1, 0, 0, 0, 1, 2][..], &[99, 0, 0, 0, 1][..]] {
        assert!(Identity::from_body(bad).is_err());
    }
}

#[test]
fn psk_auth_is_the_keyed_prf_of_rfc_7296() {
    // prf(prf(K, "Key Pad for IKEv2"), octets), written out with compute().
    let inner = Prf::HmacSha256.compute(b"secret", &[b"Key Pad for IKEv2"]);
    let want = Prf::HmacSha256.compute(&inner, &[b"octets"]);
    assert_eq!(
        psk_auth(Prf::HmacSha256, b"secret", b"octets"),
        want.to_vec()
    );
}

/// 2027-06-01, inside every fixture's validity but `expired`'s and `future`'s.
const NOW: u64 = 1_811_808_000;

fn pem(name: &str) -> String {
    let path = format!("{}/testdata/auth/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn cert(name: &str) -> Certificate {
    Certificate::from_pem(&pem(&format!("{name}.crt"))).unwrap()
}

#[test]
fn strongswan_pki_certificates_validate_to_their_ca() {
    let ca = [cert("ca")];
    for name in ["ee-ecdsa", "ee-rsa", "ee-ed25519", "ee-p384"] {
        validate_chain(&cert(name), &[], &ca, NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // Through an intermediate, given in the CERT payloads.
    validate_chain(&cert("under-sub"), &[cert("sub")], &ca, NOW).unwrap();
}

#[test]
fn chains_that_must_not_validate_say_why() {
    let ca = [cert("ca")];
    // (end entity, intermediates, trusted CAs, when, what the refusal says)
    type Case<'a> = (&'a str, Vec<Certificate>, &'a [Certificate], u64, &'a str);
    let cases: [Case; 7] = [
        ("expired", vec![], &ca, NOW, "has expired"),
        ("future", vec![], &ca, NOW, "not valid yet"),
        ("ee-ecdsa", vec![], &ca, 1_700_000_000, "not valid yet"),
        ("stranger", vec![], &ca, NOW, "no trusted CA issued"),
        (
            "deep",
            vec![cert("sub"), cert("subsub")],
            &ca,
            NOW,
            "longer than",
        ),
        (
            "not-ca-child",
            vec![cert("ee-ecdsa")],
            &ca,
            NOW,
            "is not a CA",
        ),
        (
            "ee-ecdsa",
            vec![],
            &[cert("other-ca")],
            NOW,
            "no trusted CA issued",
        ),
    ];
    for (name, intermediates, trusted, now, says) in cases {
        let e = validate_chain(&cert(name), &intermediates, trusted, now)
            .expect_err(name)
            .to_string();
        assert!(e.contains(says), "{name}: {e}");
    }
    // A certificate whose signature was tampered with.
    let mut der = cert("ee-ecdsa").der().to_vec();
    let at = der.len() - 5;
    der[at] ^= 1;
    if let Ok(forged) = Certificate::from_der(&der) {
        let e = validate_chain(&forged, &[], &ca, NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not verify"), "{e}");
    }
}

#[test]
fn identities_match_the_subject_or_a_subject_alt_name() {
    let ecdsa = cert("ee-ecdsa");
    let rsa = cert("ee-rsa");
    let id = |t: &str| Identity::parse_config(t).unwrap();
    assert!(ecdsa.matches_identity(&id("gw-a.espo.test")));
    assert!(ecdsa.matches_identity(&id("GW-A.espo.test")));
    assert!(ecdsa.matches_identity(&id("192.0.2.1")));
    assert!(ecdsa.matches_identity(&id("C=XX, O=espo test, CN=gw-a.espo.test")));
    assert!(rsa.matches_identity(&id("user@espo.test")));
    assert!(!ecdsa.matches_identity(&id("gw-b.espo.test")));
    assert!(!ecdsa.matches_identity(&id("192.0.2.2")));
    assert!(!ecdsa.matches_identity(&id("C=XX, O=espo test, CN=gw-b.espo.test")));
    assert!(!rsa.matches_identity(&id("gw-a.espo.test")));
}

#[test]
fn every_key_type_signs_and_its_certificate_verifies() {
    let octets = b"message | nonce | prf(SK_p, ID')";
    for name in ["ee-ecdsa", "ee-rsa", "ee-ed25519", "ee-p384"] {
        let key = PrivateKey::from_pem(&pem(&format!("{name}.key"))).unwrap();
        let public = cert(name).public_key().unwrap();
        // RFC 7427, as to a peer that announced SHA-2 and "identity".
        let (method, data) = sign_auth(&key, HashAlgorithm::SUPPORTED, octets).unwrap();
        assert_eq!(method, method::DIGITAL_SIGNATURE, "{name}");
        verify_auth(&public, method, &data, octets).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(verify_auth(&public, method, &data, b"other octets").is_err());
        // Another certificate's key does not verify it.
        let other = cert(if name == "ee-ecdsa" {
            "ee-p384"
        } else {
            "ee-ecdsa"
        })
        .public_key()
        .unwrap();
        assert!(
            verify_auth(&other, method, &data, octets).is_err(),
            "{name}"
        );
        // Without RFC 7427: the classic ECDSA methods, and clear refusals otherwise.
        match sign_auth(&key, &[], octets) {
            Ok((m, data)) => {
                assert!(
                    matches!(m, method::ECDSA_P256 | method::ECDSA_P384),
                    "{name}"
                );
                verify_auth(&public, m, &data, octets).unwrap();
            }
            Err(e) => assert!(name == "ee-rsa" || name == "ee-ed25519", "{name}: {e}"),
        }
    }
}

#[test]
fn keys_espo_cannot_use_are_refused_with_the_reason() {
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let e = PrivateKey::from_pem(encrypted).unwrap_err().to_string();
    assert!(e.contains("encrypted"), "{e}");
    let e = PrivateKey::from_pem(&pem("ca.crt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a private key"), "{e}");
    assert!(PrivateKey::from_pem("not pem at all").is_err());
    assert!(Certificate::from_pem(&pem("ca.key")).is_err());
    assert!(Certificate::from_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
}

#[test]
fn rsa_keys_sign_with_pss_as_openssl_writes_its_algorithm_identifier() {
    // The signatureAlgorithm OpenSSL 3.0 wrote into a certificate it signed with
    // `openssl req -x509 -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32`.
    let openssl = "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120";
    let key = PrivateKey::from_pem(&pem("ee-rsa.key")).unwrap();
    let (m, data) = sign_auth(&key, &[HashAlgorithm::SHA2_256], b"octets").unwrap();
    assert_eq!(m, method::DIGITAL_SIGNATURE);
    let len = data[0] as usize;
    assert_eq!(&data[1..1 + len], hex(openssl).as_slice());
    let scheme = verify_auth(&cert("ee-rsa").public_key().unwrap(), m, &data, b"octets").unwrap();
    assert_eq!(scheme, "RSA-PSS SHA-256");
}
