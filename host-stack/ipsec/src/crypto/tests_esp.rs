//! `EspTransform`: construction rules, seal/open properties, tampering, truncation,
//! a differential check against RustCrypto `aes-gcm`, and key redaction.

use aes_gcm::aead::{AeadInOut, KeyInit};
use proptest::prelude::*;

use super::*;

/// Every supported (encryption, integrity) combination.
fn configs() -> Vec<(EncryptionAlgorithm, Option<IntegrityAlgorithm>)> {
    let mut out = Vec::new();
    for enc in EncryptionAlgorithm::ALL {
        if enc.is_aead() {
            out.push((enc, None));
        } else {
            out.extend(IntegrityAlgorithm::ALL.map(|integ| (enc, Some(integ))));
        }
    }
    out
}

fn transform(
    enc: EncryptionAlgorithm,
    integ: Option<IntegrityAlgorithm>,
    key_byte: u8,
) -> EspTransform {
    let key = vec![key_byte; enc.key_len()];
    let integ_key = integ.map(|alg| vec![key_byte ^ 0x55; alg.key_len()]);
    let integ = integ.zip(integ_key.as_deref());
    EspTransform::new(enc, &key, integ).unwrap()
}

/// A packet ready for `seal`: header with `spi` and the low half of `seq`, zeroed IV,
/// `payload_len` bytes of payload pattern, zeroed ICV.
fn packet(t: &EspTransform, spi: u32, seq: u64, payload_len: usize) -> Vec<u8> {
    let mut esp = Vec::new();
    esp.extend(spi.to_be_bytes());
    esp.extend((seq as u32).to_be_bytes());
    esp.resize(t.payload_offset(), 0);
    esp.extend((0..payload_len).map(|i| (i * 7 + 3) as u8));
    esp.resize(esp.len() + t.icv_len(), 0);
    esp
}

#[test]
fn construction_rules() {
    use EncryptionAlgorithm::*;
    use IntegrityAlgorithm::*;
    assert_eq!(
        EspTransform::new(AesGcm128, &[0; 16], None).unwrap_err(),
        CryptoError::KeyLength {
            algorithm: "aes-gcm-128",
            expected: 20,
            given: 16
        }
    );
    let msg = EspTransform::new(AesCbc256, &[0; 16], Some((HmacSha256_128, &[0; 32])))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("32") && msg.contains("16"), "{msg}");
    for enc in [AesCbc128, AesCbc256, Null] {
        let err = EspTransform::new(enc, &vec![0; enc.key_len()], None).unwrap_err();
        assert_eq!(
            err,
            CryptoError::EncryptionWithoutIntegrity {
                algorithm: enc.name()
            }
        );
        assert!(err.to_string().contains("encryption without integrity"));
    }
    for enc in [AesGcm128, AesGcm256, ChaCha20Poly1305] {
        let err = EspTransform::new(
            enc,
            &vec![0; enc.key_len()],
            Some((HmacSha256_128, &[0; 32])),
        )
        .unwrap_err();
        assert!(
            matches!(err, CryptoError::AeadWithIntegrity { .. }),
            "{err}"
        );
    }
    assert_eq!(
        EspTransform::new(Null, &[], Some((HmacSha512_256, &[0; 63]))).unwrap_err(),
        CryptoError::KeyLength {
            algorithm: "hmac-sha512-256",
            expected: 64,
            given: 63
        }
    );
    for (enc, integ) in configs() {
        let t = transform(enc, integ, 1);
        assert_eq!(t.algorithm(), enc);
        assert_eq!(t.integrity_algorithm(), integ);
        assert_eq!(t.iv_len(), enc.iv_len());
        assert_eq!(t.pad_align(), enc.pad_align());
        let icv = integ.map_or(16, IntegrityAlgorithm::icv_len);
        assert_eq!(t.icv_len(), icv);
    }
}

#[test]
fn seal_refuses_bad_layouts_and_sequence_numbers() {
    let gcm = transform(EncryptionAlgorithm::AesGcm128, None, 9);
    let mut esp = packet(&gcm, 1, 5, 6);
    assert_eq!(
        gcm.seal(&mut esp, 5, false),
        Err(CryptoError::Misaligned {
            len_bytes: 6,
            align_bytes: 4
        })
    );
    let mut esp = packet(&gcm, 1, 5, 8);
    let untouched = esp.clone();
    assert_eq!(
        gcm.seal(&mut esp, 6, false),
        Err(CryptoError::Sequence { seq: 6 })
    );
    assert_eq!(
        gcm.seal(&mut esp, 0, false),
        Err(CryptoError::Sequence { seq: 0 })
    );
    let mut wide = packet(&gcm, 1, 1 << 32, 8);
    assert_eq!(
        gcm.seal(&mut wide, 1 << 32, false),
        Err(CryptoError::Sequence { seq: 1 << 32 })
    );
    assert_eq!(esp, untouched, "a refused seal leaves the packet as it was");
    assert!(gcm.seal(&mut wide, 1 << 32, true).is_ok());

    let cbc = transform(
        EncryptionAlgorithm::AesCbc256,
        Some(IntegrityAlgorithm::HmacSha384_192),
        2,
    );
    let mut esp = packet(&cbc, 1, 5, 20);
    assert_eq!(
        cbc.seal(&mut esp, 5, false),
        Err(CryptoError::Misaligned {
            len_bytes: 20,
            align_bytes: 16
        })
    );
    let mut esp = packet(&cbc, 1, 5, 0);
    assert_eq!(
        cbc.seal(&mut esp, 5, false),
        Err(CryptoError::Truncated {
            len_bytes: 8 + 16 + 24,
            min_bytes: 8 + 16 + 16 + 24
        })
    );
}

#[test]
fn open_refuses_misaligned_cbc_before_anything_else() {
    let cbc = transform(
        EncryptionAlgorithm::AesCbc128,
        Some(IntegrityAlgorithm::HmacSha256_128),
        4,
    );
    let mut esp = packet(&cbc, 7, 1, 32);
    cbc.seal(&mut esp, 1, false).unwrap();
    esp.insert(30, 0);
    let err = cbc.open(&mut esp, None).unwrap_err();
    assert_eq!(
        err,
        CryptoError::Misaligned {
            len_bytes: 33,
            align_bytes: 16
        }
    );
    assert!(err.is_malformed());
    assert!(cbc.open(&mut esp[..20], None).unwrap_err().is_malformed());
    assert!(!CryptoError::Authentication.is_malformed());
}

/// RFC 4303 §2.2.1 / §3.3.2.1: with ESN the high half is appended to the HMAC input but
/// not sent.
#[test]
fn esn_high_bits_enter_the_hmac_but_not_the_packet() {
    let integ_alg = IntegrityAlgorithm::HmacSha256_128;
    let integrity = Integrity::new(integ_alg, &[3 ^ 0x55; 32]).unwrap();
    for enc in [EncryptionAlgorithm::AesCbc128, EncryptionAlgorithm::Null] {
        let t = transform(enc, Some(integ_alg), 3);
        let seq = 0x0000_0007_0000_0009;
        let mut esp = packet(&t, 0x1234, seq, 32);
        let len = esp.len();
        t.seal(&mut esp, seq, true).unwrap();
        assert_eq!(esp.len(), len);
        let (body, icv) = esp.split_at(len - 16);
        let mut expected = [0u8; 16];
        integrity.compute(&[body, &7u32.to_be_bytes()], &mut expected);
        assert_eq!(icv, expected, "{enc}");
        integrity.compute(&[body], &mut expected);
        assert_ne!(icv, expected, "{enc}");
    }
}

#[test]
fn cbc_ivs_are_fresh() {
    let cbc = transform(
        EncryptionAlgorithm::AesCbc128,
        Some(IntegrityAlgorithm::HmacSha256_128),
        4,
    );
    let mut ivs = std::collections::HashSet::new();
    for seq in 1..=200u64 {
        let mut esp = packet(&cbc, 7, seq, 16);
        cbc.seal(&mut esp, seq, false).unwrap();
        assert!(ivs.insert(esp[8..24].to_vec()), "IV repeated at seq {seq}");
    }
}

#[test]
fn debug_never_shows_keys() {
    let key_bytes: Vec<u8> = (0..36u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(0x9c))
        .collect();
    let integ_bytes: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(11).wrapping_add(0xc3))
        .collect();
    let hex_of = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let secret = SecretKey::from_hex(&hex_of(&key_bytes)).unwrap();
    let shown = [
        format!("{secret:?}"),
        format!(
            "{:?}",
            EspTransform::new(EncryptionAlgorithm::ChaCha20Poly1305, &key_bytes, None).unwrap()
        ),
        format!(
            "{:?}",
            EspTransform::new(
                EncryptionAlgorithm::AesCbc256,
                &key_bytes[..32],
                Some((IntegrityAlgorithm::HmacSha512_256, &integ_bytes))
            )
            .unwrap()
        ),
        format!(
            "{:?}",
            Integrity::new(IntegrityAlgorithm::HmacSha512_256, &integ_bytes).unwrap()
        ),
        format!(
            "{:?}",
            Aead::new(AeadAlgorithm::Aes256Gcm, &key_bytes[..32]).unwrap()
        ),
    ];
    for text in &shown {
        for bytes in [&key_bytes[..], &integ_bytes[..]] {
            for window in bytes.windows(3) {
                assert!(!text.to_lowercase().contains(&hex_of(window)), "{text}");
                let decimal = format!("{}, {}, {}", window[0], window[1], window[2]);
                assert!(!text.contains(&decimal), "{text}");
            }
        }
        assert!(text.contains("redacted"), "{text}");
    }
}

fn config() -> impl Strategy<Value = (EncryptionAlgorithm, Option<IntegrityAlgorithm>)> {
    prop::sample::select(configs())
}

/// A sendable sequence number: ESN anywhere, otherwise below 2^32; biased to the edges.
fn seq_and_esn() -> impl Strategy<Value = (u64, bool)> {
    prop_oneof![
        (1u64..=u64::from(u32::MAX)).prop_map(|seq| (seq, false)),
        (1u64..=u64::MAX).prop_map(|seq| (seq, true)),
        Just((u64::from(u32::MAX), false)),
        Just((1u64 << 32, true)),
        Just((u64::MAX, true)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn seal_then_open_is_identity(
        (enc, integ) in config(),
        key_byte in any::<u8>(),
        spi in any::<u32>(),
        (seq, esn) in seq_and_esn(),
        units in 1usize..100,
    ) {
        let t = transform(enc, integ, key_byte);
        let payload_len = units * t.pad_align();
        let original = packet(&t, spi, seq, payload_len);
        let mut esp = original.clone();
        t.seal(&mut esp, seq, esn).unwrap();
        prop_assert_eq!(&esp[..8], &original[..8], "header untouched");
        if enc.is_aead() {
            prop_assert_eq!(&esp[8..16], &seq.to_be_bytes()[..], "IV is the sequence number");
        }
        if enc != EncryptionAlgorithm::Null {
            prop_assert_ne!(&esp[t.payload_offset()..], &original[t.payload_offset()..]);
        }
        let seq_hi = esn.then_some((seq >> 32) as u32);
        let range = t.open(&mut esp, seq_hi).unwrap();
        prop_assert_eq!(range.clone(), t.payload_offset()..t.payload_offset() + payload_len);
        prop_assert_eq!(&esp[range.clone()], &original[range]);
    }

    #[test]
    fn any_flipped_bit_fails_authentication(
        (enc, integ) in config(),
        (seq, esn) in seq_and_esn(),
        units in 1usize..20,
        bit in any::<prop::sample::Index>(),
    ) {
        let t = transform(enc, integ, 0x42);
        let mut esp = packet(&t, 0x1001, seq, units * t.pad_align());
        t.seal(&mut esp, seq, esn).unwrap();
        let bit = bit.index(esp.len() * 8);
        esp[bit / 8] ^= 1 << (bit % 8);
        let seq_hi = esn.then_some((seq >> 32) as u32);
        prop_assert_eq!(t.open(&mut esp, seq_hi), Err(CryptoError::Authentication));
    }

    #[test]
    fn wrong_seq_hi_or_key_fails_authentication(
        (enc, integ) in config(),
        seq in 1u64..=u64::MAX,
        other_hi in any::<u32>(),
    ) {
        let t = transform(enc, integ, 0x42);
        let mut esp = packet(&t, 0x1001, seq, t.pad_align());
        t.seal(&mut esp, seq, true).unwrap();
        let seq_hi = (seq >> 32) as u32;
        prop_assume!(other_hi != seq_hi);
        prop_assert_eq!(t.open(&mut esp.clone(), Some(other_hi)), Err(CryptoError::Authentication));
        prop_assert_eq!(t.open(&mut esp.clone(), None), Err(CryptoError::Authentication));
        let other_key = transform(enc, integ, 0x43);
        prop_assert_eq!(other_key.open(&mut esp, Some(seq_hi)), Err(CryptoError::Authentication));
    }

    #[test]
    fn truncation_at_every_length_is_an_error(
        (enc, integ) in config(),
        units in 1usize..6,
        esn in any::<bool>(),
    ) {
        let t = transform(enc, integ, 7);
        let mut sealed = packet(&t, 1, 3, units * t.pad_align());
        t.seal(&mut sealed, 3, esn).unwrap();
        let seq_hi = esn.then_some(0);
        for len in 0..sealed.len() {
            let mut cut = sealed[..len].to_vec();
            prop_assert!(t.open(&mut cut, seq_hi).is_err(), "open of {} bytes", len);
            let mut fresh = packet(&t, 1, 3, units * t.pad_align());
            fresh.truncate(len);
            let sealed_short = t.seal(&mut fresh, 3, esn);
            if len < t.min_len() {
                prop_assert!(
                    matches!(sealed_short, Err(CryptoError::Truncated { .. })),
                    "seal of {} bytes",
                    len
                );
            }
        }
    }

    /// The AES-GCM path against an independent implementation (RustCrypto `aes-gcm`, the
    /// one the card model uses): nonce salt || seq, AAD per RFC 4106 §5.
    #[test]
    fn aes_gcm_matches_rustcrypto(
        key in prop::collection::vec(any::<u8>(), 36),
        wide in any::<bool>(),
        spi in any::<u32>(),
        (seq, esn) in seq_and_esn(),
        units in 1usize..40,
    ) {
        let (enc, key) = if wide {
            (EncryptionAlgorithm::AesGcm256, &key[..])
        } else {
            (EncryptionAlgorithm::AesGcm128, &key[..20])
        };
        let t = EspTransform::new(enc, key, None).unwrap();
        let original = packet(&t, spi, seq, units * 4);
        let mut esp = original.clone();
        t.seal(&mut esp, seq, esn).unwrap();

        let (cipher_key, salt) = key.split_at(key.len() - 4);
        let nonce = [salt, &seq.to_be_bytes()].concat();
        let aad = if esn {
            [&spi.to_be_bytes()[..], &((seq >> 32) as u32).to_be_bytes(), &(seq as u32).to_be_bytes()].concat()
        } else {
            [&spi.to_be_bytes()[..], &(seq as u32).to_be_bytes()].concat()
        };
        let mut body = original[16..original.len() - 16].to_vec();
        let nonce = aes_gcm::Nonce::try_from(nonce.as_slice()).unwrap();
        let tag = if wide {
            aes_gcm::Aes256Gcm::new_from_slice(cipher_key).unwrap()
                .encrypt_inout_detached(&nonce, &aad, body.as_mut_slice().into()).unwrap()
        } else {
            aes_gcm::Aes128Gcm::new_from_slice(cipher_key).unwrap()
                .encrypt_inout_detached(&nonce, &aad, body.as_mut_slice().into()).unwrap()
        };
        prop_assert_eq!(&esp[16..esp.len() - 16], &body[..]);
        prop_assert_eq!(&esp[esp.len() - 16..], tag.as_slice());
    }
}
