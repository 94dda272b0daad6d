//! Cryptographic transforms for ESP and AH.
//!
//! Layers, bottom up:
//!
//! - [`Aead`]: a raw AEAD seal/open (AES-128/256-GCM, ChaCha20-Poly1305) over `ring`, with a
//!   12-byte nonce and a 16-byte tag. It knows nothing about ESP.
//! - [`Integrity`]: truncated HMAC-SHA-256/384/512 (RFC 4868) over a list of byte slices,
//!   with constant-time verification. Used by AH and by ESP with AES-CBC or NULL.
//! - [`EspTransform`]: the ESP cryptographic transform of one SA, working in place on a whole
//!   ESP packet laid out as `ESP header | IV | payload+padding+trailer | ICV`. It writes the
//!   IV (AEAD: the 64-bit sequence number, RFC 4106 §3.1 / RFC 7634 §2; CBC: random bytes,
//!   RFC 3602), builds the AAD or the HMAC input with the ESN high bits where needed
//!   (RFC 4106 §5, RFC 4303 §2.2.1) and verifies the ICV before anything else of a received
//!   packet is used.
//! - [`SecretKey`]: owned key bytes parsed from configuration, zeroized on drop.
//!
//! Algorithm choice: `ring` for AES-GCM, ChaCha20-Poly1305 and HMAC (the fastest
//! implementations available on the target machines), RustCrypto `aes` + `cbc` for AES-CBC,
//! which `ring` does not offer. Nothing on the seal/open path allocates.
//!
//! # Key zeroization, and its limits
//!
//! - Raw key bytes ([`SecretKey`], the AEAD salt) are zeroized on drop with `zeroize`.
//! - The AES key schedules of RustCrypto `aes` (AES-CBC) are zeroized on drop by that crate
//!   (its `zeroize` feature is enabled).
//! - `ring`'s expanded keys (AES-GCM key schedule and GHASH table, ChaCha20 key, the HMAC
//!   inner/outer hash states) offer no zeroization. Each one is kept in its own heap
//!   allocation, and on drop that allocation is overwritten in place with a key of the same
//!   algorithm built from all-zero key bytes, followed by [`core::hint::black_box`] so the
//!   store is not optimised away. This replaces every field of the value, but it is a
//!   mitigation, not a guarantee: padding bytes inside `ring`'s types are not covered, and
//!   temporary copies are not scrubbed — the value built on the stack while constructing a
//!   key before it is moved to the heap, and the per-operation copies of the HMAC state
//!   that `ring` makes on the stack for every `compute`/`verify`.
//!
//! CBC IVs come from `rand`'s `thread_rng()`, a ChaCha12 CSPRNG per thread seeded and
//! periodically reseeded from the operating system: no system call and no allocation per
//! packet.
//!
//! `Debug` of every type here redacts key material.

mod aead;
mod algorithm;
mod cbc;
mod esp;
mod integrity;
mod key;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_esp;
#[cfg(test)]
mod tests_vectors;
#[cfg(test)]
mod tests_wycheproof;

pub use aead::{Aead, AeadAlgorithm};
pub use algorithm::EncryptionAlgorithm;
pub use esp::{ESP_HEADER_LEN, EspTransform};
pub use integrity::{Integrity, IntegrityAlgorithm};
pub use key::SecretKey;

/// Errors of the crypto layer.
///
/// Configuration-time variants name what was wrong; the per-packet variants
/// ([`Truncated`](Self::Truncated), [`Misaligned`](Self::Misaligned),
/// [`Authentication`](Self::Authentication), ...) are small and `Copy` so that the packet
/// path can count them by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A name in the configuration is not a known encryption algorithm.
    #[error(
        "unknown encryption algorithm; valid names are: {}",
        EncryptionAlgorithm::VALID_NAMES
    )]
    UnknownEncryption,
    /// A name in the configuration is not a known integrity algorithm.
    #[error(
        "unknown integrity algorithm; valid names are: {}",
        IntegrityAlgorithm::VALID_NAMES
    )]
    UnknownIntegrity,
    /// A hex key string has an odd number of digits.
    #[error("key has an odd number of hex digits ({digits})")]
    KeyHexOddLength {
        /// Number of hex digits given (after an optional `0x` prefix).
        digits: usize,
    },
    /// A hex key string contains a character that is not a hex digit.
    #[error("key has an invalid hex digit {found:?} at position {position} (counting from 1)")]
    KeyHexDigit {
        /// 1-based character position in the string as given.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// A key has the wrong length for its algorithm.
    #[error("{algorithm} needs a {expected}-byte key, got {given} bytes")]
    KeyLength {
        /// The algorithm's configuration name.
        algorithm: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Length given in bytes.
        given: usize,
    },
    /// The underlying library refused a key of the right length.
    #[error("{algorithm} refused the key")]
    KeyRejected {
        /// The algorithm's configuration name.
        algorithm: &'static str,
    },
    /// AES-CBC or NULL encryption configured without an integrity algorithm.
    #[error("encryption without integrity: {algorithm} needs an integrity algorithm")]
    EncryptionWithoutIntegrity {
        /// The encryption algorithm's configuration name.
        algorithm: &'static str,
    },
    /// An AEAD algorithm configured together with a separate integrity algorithm.
    #[error("{algorithm} is an AEAD and takes no separate integrity algorithm (got {integrity})")]
    AeadWithIntegrity {
        /// The encryption algorithm's configuration name.
        algorithm: &'static str,
        /// The integrity algorithm's configuration name.
        integrity: &'static str,
    },
    /// A packet buffer is shorter than the layout needs.
    #[error("ESP packet too short: {len_bytes} bytes, at least {min_bytes} needed")]
    Truncated {
        /// Length of the buffer given.
        len_bytes: usize,
        /// Minimum length for this transform.
        min_bytes: usize,
    },
    /// The encrypted part of a packet is not a multiple of the required alignment.
    #[error("ESP payload of {len_bytes} bytes is not a multiple of {align_bytes}")]
    Misaligned {
        /// Length of the payload (padding and trailer included).
        len_bytes: usize,
        /// Required alignment.
        align_bytes: usize,
    },
    /// `seal` was given a sequence number that the SA cannot send (0, or above 2^32-1
    /// without ESN), or one whose low 32 bits differ from the ESP header.
    #[error("sequence number {seq} cannot be sent on this SA")]
    Sequence {
        /// The sequence number given.
        seq: u64,
    },
    /// The ICV did not verify: the packet was forged, corrupted or sealed with another key.
    #[error("ICV verification failed")]
    Authentication,
    /// The underlying library failed to seal (input beyond the algorithm's limits).
    #[error("sealing failed")]
    Seal,
}

impl CryptoError {
    /// Whether the error says a received packet is malformed (too short, or its encrypted
    /// part misaligned) — as opposed to [`Authentication`](Self::Authentication), a packet
    /// of the right shape whose ICV did not verify.
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::Truncated { .. } | Self::Misaligned { .. })
    }
}
