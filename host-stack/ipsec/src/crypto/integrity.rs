//! Truncated HMAC-SHA-2 integrity (RFC 4868) for AH and for ESP with AES-CBC or NULL.

use core::fmt;
use core::hint::black_box;
use core::str::FromStr;

use ring::hmac;
use subtle::ConstantTimeEq;

use super::CryptoError;

/// An integrity algorithm, by its configuration name (RFC 4868).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)] // the suffix is the ICV length, as in the RFC's names
pub enum IntegrityAlgorithm {
    /// HMAC-SHA-256 truncated to 128 bits, `hmac-sha256-128`.
    HmacSha256_128,
    /// HMAC-SHA-384 truncated to 192 bits, `hmac-sha384-192`.
    HmacSha384_192,
    /// HMAC-SHA-512 truncated to 256 bits, `hmac-sha512-256`.
    HmacSha512_256,
}

impl IntegrityAlgorithm {
    /// Every algorithm.
    pub const ALL: [Self; 3] = [
        Self::HmacSha256_128,
        Self::HmacSha384_192,
        Self::HmacSha512_256,
    ];

    /// The valid configuration names, for error messages.
    pub const VALID_NAMES: &'static str = "hmac-sha256-128, hmac-sha384-192, hmac-sha512-256";

    /// The configuration name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HmacSha256_128 => "hmac-sha256-128",
            Self::HmacSha384_192 => "hmac-sha384-192",
            Self::HmacSha512_256 => "hmac-sha512-256",
        }
    }

    /// Key length in bytes: the hash output length (RFC 4868 §2.1.1).
    pub const fn key_len(self) -> usize {
        match self {
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
        }
    }

    /// ICV length in bytes: half the hash output (RFC 4868 §2.3).
    pub const fn icv_len(self) -> usize {
        match self {
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Self::HmacSha256_128 => hmac::HMAC_SHA256,
            Self::HmacSha384_192 => hmac::HMAC_SHA384,
            Self::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }
}

impl fmt::Display for IntegrityAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for IntegrityAlgorithm {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.name() == s)
            .ok_or(CryptoError::UnknownIntegrity)
    }
}

/// An HMAC key ready to compute and verify truncated ICVs. Neither operation allocates.
///
/// The HMAC state lives in its own heap allocation that is overwritten with the state of an
/// all-zero key on drop (see the [module documentation](super) for what that covers).
pub struct Integrity {
    algorithm: IntegrityAlgorithm,
    key: Box<hmac::Key>,
}

impl Integrity {
    /// Builds the HMAC key; `key` must be exactly [`IntegrityAlgorithm::key_len`] bytes.
    pub fn new(algorithm: IntegrityAlgorithm, key: &[u8]) -> Result<Self, CryptoError> {
        if key.len() != algorithm.key_len() {
            return Err(CryptoError::KeyLength {
                algorithm: algorithm.name(),
                expected: algorithm.key_len(),
                given: key.len(),
            });
        }
        Ok(Self {
            algorithm,
            key: Box::new(hmac::Key::new(algorithm.ring(), key)),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> IntegrityAlgorithm {
        self.algorithm
    }

    /// ICV length in bytes.
    pub fn icv_len(&self) -> usize {
        self.algorithm.icv_len()
    }

    fn full_tag(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in parts {
            ctx.update(part);
        }
        ctx.sign()
    }

    /// Writes the truncated HMAC over the concatenation of `parts` to `out`, which should be
    /// [`icv_len`](Self::icv_len) bytes long: a shorter `out` receives the leading bytes of
    /// the ICV, bytes of a longer one past the ICV are left as they were.
    pub fn compute(&self, parts: &[&[u8]], out: &mut [u8]) {
        debug_assert_eq!(out.len(), self.icv_len(), "ICV buffer length");
        let tag = self.full_tag(parts);
        let icv = tag.as_ref().get(..self.icv_len()).unwrap_or_default();
        for (dst, src) in out.iter_mut().zip(icv) {
            *dst = *src;
        }
    }

    /// Whether `icv` is the truncated HMAC over the concatenation of `parts`. The comparison
    /// is constant time; an `icv` of the wrong length is refused.
    pub fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> bool {
        if icv.len() != self.icv_len() {
            return false;
        }
        let tag = self.full_tag(parts);
        let Some(expected) = tag.as_ref().get(..self.icv_len()) else {
            return false;
        };
        expected.ct_eq(icv).into()
    }
}

impl Drop for Integrity {
    fn drop(&mut self) {
        const ZEROS: [u8; 64] = [0; 64];
        let zero_key = ZEROS.get(..self.algorithm.key_len()).unwrap_or_default();
        *self.key = hmac::Key::new(self.algorithm.ring(), zero_key);
        black_box(&*self.key);
    }
}

impl fmt::Debug for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integrity")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parameters() {
        for (alg, key, icv) in [
            (IntegrityAlgorithm::HmacSha256_128, 32, 16),
            (IntegrityAlgorithm::HmacSha384_192, 48, 24),
            (IntegrityAlgorithm::HmacSha512_256, 64, 32),
        ] {
            assert_eq!(alg.to_string().parse(), Ok(alg));
            assert_eq!(alg.key_len(), key);
            assert_eq!(alg.icv_len(), icv);
        }
        let msg = "hmac-md5-96"
            .parse::<IntegrityAlgorithm>()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("hmac-sha256-128") && msg.contains("hmac-sha512-256"));
    }

    #[test]
    fn wrong_key_length_is_refused() {
        let err = Integrity::new(IntegrityAlgorithm::HmacSha384_192, &[0; 32]).unwrap_err();
        assert_eq!(
            err,
            CryptoError::KeyLength {
                algorithm: "hmac-sha384-192",
                expected: 48,
                given: 32
            }
        );
    }

    #[test]
    fn parts_are_concatenated_and_verify_is_strict() {
        let integ = Integrity::new(IntegrityAlgorithm::HmacSha256_128, &[3; 32]).unwrap();
        let mut whole = [0u8; 16];
        integ.compute(&[b"hello world"], &mut whole);
        let mut split = [0u8; 16];
        integ.compute(&[b"hel", b"", b"lo wor", b"ld"], &mut split);
        assert_eq!(whole, split);
        assert!(integ.verify(&[b"hello ", b"world"], &whole));
        assert!(!integ.verify(&[b"hello world!"], &whole));
        assert!(!integ.verify(&[b"hello world"], &whole[..15]));
        let mut longer = [0u8; 17];
        longer[..16].copy_from_slice(&whole);
        assert!(!integ.verify(&[b"hello world"], &longer));
        for bit in 0..128 {
            let mut flipped = whole;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(!integ.verify(&[b"hello world"], &flipped));
        }
    }

    #[test]
    fn debug_redacts() {
        let integ = Integrity::new(IntegrityAlgorithm::HmacSha256_128, &[0x5a; 32]).unwrap();
        let shown = format!("{integ:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.contains("90")); // 0x5a = 90
    }
}
