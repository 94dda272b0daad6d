//! Raw AEAD seal/open over `ring`: a 12-byte nonce, AAD, in-place data and a 16-byte tag.

use core::fmt;
use core::hint::black_box;

use ring::aead::{self as ring_aead, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

use super::CryptoError;

/// An AEAD algorithm of the raw layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AeadAlgorithm {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305,
}

impl AeadAlgorithm {
    /// Cipher key length in bytes (no salt).
    pub const fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm | Self::ChaCha20Poly1305 => 32,
        }
    }

    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aes128Gcm => "AES-128-GCM",
            Self::Aes256Gcm => "AES-256-GCM",
            Self::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        }
    }

    fn ring(self) -> &'static ring_aead::Algorithm {
        match self {
            Self::Aes128Gcm => &ring_aead::AES_128_GCM,
            Self::Aes256Gcm => &ring_aead::AES_256_GCM,
            Self::ChaCha20Poly1305 => &ring_aead::CHACHA20_POLY1305,
        }
    }
}

/// An AEAD key ready to seal and open. Neither operation allocates.
///
/// The expanded key lives in its own heap allocation that is overwritten with a key built
/// from zero bytes on drop (see the [module documentation](super) for what that covers).
pub struct Aead {
    algorithm: AeadAlgorithm,
    key: Box<LessSafeKey>,
}

impl Aead {
    /// Nonce length in bytes.
    pub const NONCE_LEN: usize = 12;
    /// Tag length in bytes.
    pub const TAG_LEN: usize = 16;

    /// Expands `key`, which must be exactly [`AeadAlgorithm::key_len`] bytes.
    pub fn new(algorithm: AeadAlgorithm, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != algorithm.key_len() {
            return Err(CryptoError::KeyLength {
                algorithm: algorithm.name(),
                expected: algorithm.key_len(),
                given: key.len(),
            });
        }
        let unbound =
            UnboundKey::new(algorithm.ring(), key).map_err(|_| CryptoError::KeyRejected {
                algorithm: algorithm.name(),
            })?;
        Ok(Self {
            algorithm,
            key: Box::new(LessSafeKey::new(unbound)),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> AeadAlgorithm {
        self.algorithm
    }

    /// Encrypts `in_out` in place and returns the tag over `aad` and the ciphertext.
    pub fn seal(
        &self,
        nonce: &[u8; Self::NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; Self::TAG_LEN], CryptoError> {
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = [0u8; Self::TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// [`seal`](Self::seal) writing the tag straight into `tag_out` (which must be
    /// [`TAG_LEN`](Self::TAG_LEN) bytes): the per-packet path, with no tag copy in between.
    #[inline]
    pub fn seal_into(
        &self,
        nonce: &[u8; Self::NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag_out: &mut [u8],
    ) -> Result<(), CryptoError> {
        if tag_out.len() != Self::TAG_LEN {
            return Err(CryptoError::Seal);
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| CryptoError::Seal)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(())
    }

    /// Verifies `tag` over `aad` and the ciphertext in `in_out`, then leaves the plaintext in
    /// `in_out`. On [`CryptoError::Authentication`] the contents of `in_out` are unspecified
    /// and must not be used.
    pub fn open(
        &self,
        nonce: &[u8; Self::NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; Self::TAG_LEN],
    ) -> Result<(), CryptoError> {
        self.key
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                Tag::from(*tag),
                in_out,
                0..,
            )
            .map(|_| ())
            .map_err(|_| CryptoError::Authentication)
    }
}

impl Drop for Aead {
    fn drop(&mut self) {
        const ZEROS: [u8; 32] = [0; 32];
        let Some(zero_key) = ZEROS.get(..self.algorithm.key_len()) else {
            return;
        };
        if let Ok(unbound) = UnboundKey::new(self.algorithm.ring(), zero_key) {
            *self.key = LessSafeKey::new(unbound);
            black_box(&*self.key);
        }
    }
}

impl fmt::Debug for Aead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aead")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_key_length_is_refused() {
        let err = Aead::new(AeadAlgorithm::Aes128Gcm, &[0; 32]).unwrap_err();
        assert_eq!(
            err,
            CryptoError::KeyLength {
                algorithm: "AES-128-GCM",
                expected: 16,
                given: 32
            }
        );
        assert!(Aead::new(AeadAlgorithm::ChaCha20Poly1305, &[0; 16]).is_err());
        assert!(Aead::new(AeadAlgorithm::Aes256Gcm, &[]).is_err());
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        for alg in [
            AeadAlgorithm::Aes128Gcm,
            AeadAlgorithm::Aes256Gcm,
            AeadAlgorithm::ChaCha20Poly1305,
        ] {
            let aead = Aead::new(alg, &vec![7; alg.key_len()]).unwrap();
            let nonce = [1; 12];
            let plain = *b"sixteen byte msg and a bit more";
            let mut buf = plain;
            let tag = aead.seal(&nonce, b"aad", &mut buf).unwrap();
            assert_ne!(buf, plain);
            let mut opened = buf;
            aead.open(&nonce, b"aad", &mut opened, &tag).unwrap();
            assert_eq!(opened, plain);
            let mut wrong_aad = buf;
            assert_eq!(
                aead.open(&nonce, b"aae", &mut wrong_aad, &tag),
                Err(CryptoError::Authentication)
            );
            let mut bad_tag = tag;
            bad_tag[15] ^= 1;
            let mut copy = buf;
            assert_eq!(
                aead.open(&nonce, b"aad", &mut copy, &bad_tag),
                Err(CryptoError::Authentication)
            );
        }
    }

    #[test]
    fn debug_redacts() {
        let aead = Aead::new(AeadAlgorithm::Aes128Gcm, &[0xab; 16]).unwrap();
        let shown = format!("{aead:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.to_lowercase().contains("ab, "));
        assert!(!shown.contains("171"));
    }
}
