//! AES-CBC without padding (RFC 3602): ESP supplies its own padding.
//!
//! The AES key schedule is RustCrypto `aes`, zeroized on drop by that crate; each call runs
//! `cbc` over a borrowed cipher, so nothing is copied or allocated per packet.

use core::fmt;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use aes::{Aes128, Aes256};

use super::CryptoError;

/// AES block size and CBC IV length, in bytes.
pub(crate) const BLOCK_LEN: usize = 16;

/// An expanded AES-CBC key.
pub(crate) enum CbcCipher {
    Aes128(Box<Aes128>),
    Aes256(Box<Aes256>),
}

impl CbcCipher {
    /// Expands a 16-byte (AES-128) or 32-byte (AES-256) key.
    pub(crate) fn new(key: &[u8], algorithm: &'static str) -> Result<Self, CryptoError> {
        let rejected = |_| CryptoError::KeyRejected { algorithm };
        match key.len() {
            16 => Ok(Self::Aes128(Box::new(
                Aes128::new_from_slice(key).map_err(rejected)?,
            ))),
            32 => Ok(Self::Aes256(Box::new(
                Aes256::new_from_slice(key).map_err(rejected)?,
            ))),
            given => Err(CryptoError::KeyLength {
                algorithm,
                expected: 16,
                given,
            }),
        }
    }

    /// Encrypts `buf` in place; its length must be a multiple of [`BLOCK_LEN`].
    pub(crate) fn encrypt(&self, iv: &[u8; BLOCK_LEN], buf: &mut [u8]) -> Result<(), CryptoError> {
        check_aligned(buf)?;
        let len = buf.len();
        let done = match self {
            Self::Aes128(aes) => cbc::Encryptor::<&Aes128>::inner_iv_init(aes, iv.into())
                .encrypt_padded_mut::<NoPadding>(buf, len)
                .is_ok(),
            Self::Aes256(aes) => cbc::Encryptor::<&Aes256>::inner_iv_init(aes, iv.into())
                .encrypt_padded_mut::<NoPadding>(buf, len)
                .is_ok(),
        };
        if done { Ok(()) } else { Err(misaligned(len)) }
    }

    /// Decrypts `buf` in place; its length must be a multiple of [`BLOCK_LEN`].
    pub(crate) fn decrypt(&self, iv: &[u8; BLOCK_LEN], buf: &mut [u8]) -> Result<(), CryptoError> {
        check_aligned(buf)?;
        let len = buf.len();
        let done = match self {
            Self::Aes128(aes) => cbc::Decryptor::<&Aes128>::inner_iv_init(aes, iv.into())
                .decrypt_padded_mut::<NoPadding>(buf)
                .is_ok(),
            Self::Aes256(aes) => cbc::Decryptor::<&Aes256>::inner_iv_init(aes, iv.into())
                .decrypt_padded_mut::<NoPadding>(buf)
                .is_ok(),
        };
        if done { Ok(()) } else { Err(misaligned(len)) }
    }
}

fn misaligned(len_bytes: usize) -> CryptoError {
    CryptoError::Misaligned {
        len_bytes,
        align_bytes: BLOCK_LEN,
    }
}

fn check_aligned(buf: &[u8]) -> Result<(), CryptoError> {
    if buf.len().is_multiple_of(BLOCK_LEN) {
        Ok(())
    } else {
        Err(misaligned(buf.len()))
    }
}

impl fmt::Debug for CbcCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Aes128(_) => "Aes128",
            Self::Aes256(_) => "Aes256",
        };
        write!(f, "CbcCipher::{name}(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::crypto::SecretKey::from_hex(s)
            .unwrap()
            .as_bytes()
            .to_vec()
    }

    /// RFC 3602 §4 cases #1–#4 (plain AES-128-CBC).
    #[test]
    fn rfc3602_plain_cases() {
        let cases = [
            (
                "06a9214036b8a15b512e03d534120006",
                "3dafba429d9eb430b422da802c9fac41",
                "53696e676c6520626c6f636b206d7367",
                "e353779c1079aeb82708942dbe77181a",
            ),
            (
                "c286696d887c9aa0611bbb3e2025a45a",
                "562e17996d093d28ddb3ba695a2e6f58",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
            ),
            (
                "6c3ea0477630ce21a2ce334aa746c2cd",
                "c782dc4c098c66cbd9cd27d825682c81",
                "5468697320697320612034382d62797465206d657373616765202865786163746c7920332041455320626c6f636b7329",
                "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5021c19216bad525c8579695d83ba2684",
            ),
            (
                "56e47a38c5598974bc46903dba290349",
                "8ce82eefbea0da3c44699ed7db51b7d9",
                "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
                "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
            ),
        ];
        for (key, iv, plain, cipher) in cases {
            let aes = CbcCipher::new(&hex(key), "aes-cbc-128").unwrap();
            let iv: [u8; 16] = hex(iv).try_into().unwrap();
            let mut buf = hex(plain);
            aes.encrypt(&iv, &mut buf).unwrap();
            assert_eq!(buf, hex(cipher));
            aes.decrypt(&iv, &mut buf).unwrap();
            assert_eq!(buf, hex(plain));
        }
    }

    /// Fails to compile if the `zeroize` features of `aes`/`cbc` are ever dropped.
    #[test]
    fn key_schedules_zeroize_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroized_on_drop::<Aes128>();
        zeroized_on_drop::<Aes256>();
        zeroized_on_drop::<cbc::Encryptor<Aes128>>();
        zeroized_on_drop::<crate::crypto::SecretKey>();
    }

    #[test]
    fn misaligned_and_bad_keys_are_errors() {
        let aes = CbcCipher::new(&[0; 32], "aes-cbc-256").unwrap();
        let mut buf = [0u8; 17];
        assert_eq!(
            aes.encrypt(&[0; 16], &mut buf),
            Err(CryptoError::Misaligned {
                len_bytes: 17,
                align_bytes: 16
            })
        );
        assert!(aes.decrypt(&[0; 16], &mut buf[..15]).is_err());
        assert!(aes.encrypt(&[0; 16], &mut []).is_ok());
        assert!(CbcCipher::new(&[0; 24], "aes-cbc-128").is_err());
    }
}
