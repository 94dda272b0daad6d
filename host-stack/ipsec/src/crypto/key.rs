//! Owned key material.

use core::fmt;
use core::str::FromStr;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::CryptoError;

/// Key bytes, zeroized on drop. `Debug` prints only the length.
///
/// Parsed from hex in the configuration (`key = "..."`), then handed as a slice to
/// [`EspTransform::new`](super::EspTransform::new) or [`Integrity::new`](super::Integrity::new).
/// Equality is constant time.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    bytes: Vec<u8>,
}

impl SecretKey {
    /// Takes ownership of `bytes` (no copy is made).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// Copies `bytes` into a new key.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self {
            bytes: bytes.to_vec(),
        }
    }

    /// Parses hex digits (either case), with an optional `0x`/`0X` prefix. An empty string
    /// is an empty key (NULL encryption takes one).
    pub fn from_hex(hex: &str) -> Result<Self, CryptoError> {
        let (prefix_len, digits) = match hex.strip_prefix("0x").or(hex.strip_prefix("0X")) {
            Some(rest) => (2, rest),
            None => (0, hex),
        };
        let digit_count = digits.chars().count();
        if digit_count % 2 != 0 {
            // Report a bad character before the parity, it is the more useful message.
            if let Some((position, found)) = first_non_hex(digits) {
                return Err(CryptoError::KeyHexDigit {
                    position: prefix_len + position,
                    found,
                });
            }
            return Err(CryptoError::KeyHexOddLength {
                digits: digit_count,
            });
        }
        // Exact capacity up front: the vector never reallocates, so no stray copy of
        // partially decoded key bytes is left behind in freed memory.
        let mut key = Self {
            bytes: Vec::with_capacity(digits.len() / 2),
        };
        let mut high: Option<u8> = None;
        for (index, ch) in digits.chars().enumerate() {
            let Some(value) = ch.to_digit(16) else {
                return Err(CryptoError::KeyHexDigit {
                    position: prefix_len + index + 1,
                    found: ch,
                });
            };
            // to_digit(16) is below 16, the cast cannot truncate.
            let nibble = value as u8;
            match high.take() {
                None => high = Some(nibble),
                Some(h) => key.bytes.push((h << 4) | nibble),
            }
        }
        Ok(key)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the key is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// 1-based position and value of the first character that is not a hex digit.
fn first_non_hex(digits: &str) -> Option<(usize, char)> {
    digits
        .chars()
        .enumerate()
        .find(|(_, ch)| !ch.is_ascii_hexdigit())
        .map(|(index, ch)| (index + 1, ch))
}

impl FromStr for SecretKey {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.as_slice().ct_eq(other.bytes.as_slice()).into()
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, {} bytes)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex() {
        let key = SecretKey::from_hex("00ff7Fa0").unwrap();
        assert_eq!(key.as_bytes(), &[0x00, 0xff, 0x7f, 0xa0]);
        assert_eq!(key.len(), 4);
        assert_eq!(SecretKey::from_hex("0x0102").unwrap().as_bytes(), &[1, 2]);
        assert_eq!(SecretKey::from_hex("0X0102").unwrap().as_bytes(), &[1, 2]);
        assert!(SecretKey::from_hex("").unwrap().is_empty());
        assert_eq!(
            "abcd".parse::<SecretKey>().unwrap().as_bytes(),
            &[0xab, 0xcd]
        );
    }

    #[test]
    fn odd_length_is_refused() {
        assert_eq!(
            SecretKey::from_hex("abc"),
            Err(CryptoError::KeyHexOddLength { digits: 3 })
        );
        assert_eq!(
            SecretKey::from_hex("0xabc"),
            Err(CryptoError::KeyHexOddLength { digits: 3 })
        );
    }

    #[test]
    fn bad_digit_names_position() {
        assert_eq!(
            SecretKey::from_hex("00g0"),
            Err(CryptoError::KeyHexDigit {
                position: 3,
                found: 'g'
            })
        );
        assert_eq!(
            SecretKey::from_hex("0x00 0"),
            Err(CryptoError::KeyHexDigit {
                position: 5,
                found: ' '
            })
        );
        // A bad digit in an odd-length string is reported as the bad digit.
        assert_eq!(
            SecretKey::from_hex("0é0"),
            Err(CryptoError::KeyHexDigit {
                position: 2,
                found: 'é'
            })
        );
        let msg = SecretKey::from_hex("zz").unwrap_err().to_string();
        assert!(msg.contains("position 1"), "{msg}");
    }

    #[test]
    fn debug_redacts() {
        let key = SecretKey::from_hex("deadbeefcafe").unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "SecretKey(<redacted>, 6 bytes)");
        assert!(!shown.contains("dead"));
        assert!(!shown.contains("222")); // 0xde = 222
    }

    #[test]
    fn equality() {
        assert_eq!(SecretKey::from_slice(&[1, 2]), SecretKey::new(vec![1, 2]));
        assert_ne!(
            SecretKey::from_slice(&[1, 2]),
            SecretKey::from_slice(&[1, 3])
        );
        assert_ne!(SecretKey::from_slice(&[1, 2]), SecretKey::from_slice(&[1]));
    }
}
