//! ESP encryption algorithms and their parameters.

use core::fmt;
use core::str::FromStr;

use super::CryptoError;

/// Length of the salt that follows the cipher key of an AEAD SA (RFC 4106 §8.1, RFC 7634 §4).
pub(crate) const AEAD_SALT_LEN: usize = 4;

/// An ESP encryption algorithm, by its configuration name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionAlgorithm {
    /// AES-GCM with a 128-bit key and 16-byte ICV (RFC 4106), `aes-gcm-128`.
    AesGcm128,
    /// AES-GCM with a 256-bit key and 16-byte ICV (RFC 4106), `aes-gcm-256`.
    AesGcm256,
    /// ChaCha20-Poly1305 (RFC 7634), `chacha20-poly1305`.
    ChaCha20Poly1305,
    /// AES-CBC with a 128-bit key (RFC 3602), `aes-cbc-128`; needs an integrity algorithm.
    AesCbc128,
    /// AES-CBC with a 256-bit key (RFC 3602), `aes-cbc-256`; needs an integrity algorithm.
    AesCbc256,
    /// No encryption (RFC 2410), `null`; needs an integrity algorithm.
    Null,
}

impl EncryptionAlgorithm {
    /// Every algorithm, in configuration-name order.
    pub const ALL: [Self; 6] = [
        Self::AesGcm128,
        Self::AesGcm256,
        Self::ChaCha20Poly1305,
        Self::AesCbc128,
        Self::AesCbc256,
        Self::Null,
    ];

    /// The valid configuration names, for error messages.
    pub const VALID_NAMES: &'static str =
        "aes-gcm-128, aes-gcm-256, chacha20-poly1305, aes-cbc-128, aes-cbc-256, null";

    /// The configuration name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::AesGcm128 => "aes-gcm-128",
            Self::AesGcm256 => "aes-gcm-256",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::AesCbc128 => "aes-cbc-128",
            Self::AesCbc256 => "aes-cbc-256",
            Self::Null => "null",
        }
    }

    /// Length in bytes of the configured key. For the AEADs this is the cipher key followed
    /// by the 4-byte salt, as Linux `rfc4106(gcm(aes))` and `rfc7539esp` take it.
    pub const fn key_len(self) -> usize {
        match self {
            Self::AesGcm128 => 16 + AEAD_SALT_LEN,
            Self::AesGcm256 | Self::ChaCha20Poly1305 => 32 + AEAD_SALT_LEN,
            Self::AesCbc128 => 16,
            Self::AesCbc256 => 32,
            Self::Null => 0,
        }
    }

    /// Length in bytes of the IV carried in each packet.
    pub const fn iv_len(self) -> usize {
        match self {
            Self::AesGcm128 | Self::AesGcm256 | Self::ChaCha20Poly1305 => 8,
            Self::AesCbc128 | Self::AesCbc256 => 16,
            Self::Null => 0,
        }
    }

    /// Whether the algorithm is an AEAD (provides its own ICV).
    pub const fn is_aead(self) -> bool {
        matches!(
            self,
            Self::AesGcm128 | Self::AesGcm256 | Self::ChaCha20Poly1305
        )
    }

    /// Alignment in bytes that payload + padding + trailer must reach: the cipher block size
    /// for CBC, the 4-byte ESP minimum (RFC 4303 §2.4) otherwise.
    pub const fn pad_align(self) -> usize {
        match self {
            Self::AesCbc128 | Self::AesCbc256 => 16,
            _ => 4,
        }
    }

    /// Alignment espo pads to when it sends: 16 bytes for every algorithm but NULL.
    ///
    /// RFC 4303 §2.4 lets a sender pad beyond the minimum. Whole 16-byte blocks keep AES-GCM
    /// and Poly1305 on their block-parallel paths (a partial last block costs ring's AES-GCM
    /// about as much as two whole ones on small packets) and match the card's 128-bit
    /// datapath; the price is at most 12 bytes more on the wire than 4-byte alignment.
    pub const fn send_align(self) -> usize {
        match self {
            Self::Null => 4,
            _ => 16,
        }
    }
}

impl fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EncryptionAlgorithm {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.name() == s)
            .ok_or(CryptoError::UnknownEncryption)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in EncryptionAlgorithm::ALL {
            assert_eq!(alg.to_string().parse::<EncryptionAlgorithm>(), Ok(alg));
            assert!(EncryptionAlgorithm::VALID_NAMES.contains(alg.name()));
        }
    }

    #[test]
    fn unknown_name_lists_valid_names() {
        let err = "aes-gcm-192".parse::<EncryptionAlgorithm>().unwrap_err();
        let msg = err.to_string();
        for alg in EncryptionAlgorithm::ALL {
            assert!(msg.contains(alg.name()), "{msg}");
        }
        assert!("AES-GCM-128".parse::<EncryptionAlgorithm>().is_err());
        assert!("".parse::<EncryptionAlgorithm>().is_err());
    }

    #[test]
    fn parameters() {
        use EncryptionAlgorithm::*;
        let table = [
            (AesGcm128, 20, 8, true, 4),
            (AesGcm256, 36, 8, true, 4),
            (ChaCha20Poly1305, 36, 8, true, 4),
            (AesCbc128, 16, 16, false, 16),
            (AesCbc256, 32, 16, false, 16),
            (Null, 0, 0, false, 4),
        ];
        for (alg, key, iv, aead, align) in table {
            assert_eq!(alg.key_len(), key, "{alg}");
            assert_eq!(alg.iv_len(), iv, "{alg}");
            assert_eq!(alg.is_aead(), aead, "{alg}");
            assert_eq!(alg.pad_align(), align, "{alg}");
        }
    }
}
