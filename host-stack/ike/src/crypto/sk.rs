//! The Encrypted payload (SK, RFC 7296 §3.14): AES-CBC with an HMAC over the whole message
//! before the ICV, or an AEAD (AES-GCM, RFC 5282; ChaCha20-Poly1305, RFC 7634) whose
//! associated data is the IKE header through the SK payload's header.
//!
//! Opening checks the ICV (or the AEAD tag) before anything of the plaintext is looked at,
//! in constant time, then the padding.

use core::fmt;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use zeroize::Zeroizing;

use super::{
    CryptoError, Encryption, First, Header, IkeSaKeys, IkeSuite, Integrity, ct_eq, fill_random,
};
use crate::wire::{self, header};
use ring::{aead, hmac};

const AES_BLOCK: usize = 16;
/// The explicit IV of the AEADs (RFC 5282 §3.1, RFC 7634 §2).
const AEAD_IV_LEN: usize = 8;
const AEAD_TAG_LEN: usize = 16;
const SK_HEADER_LEN: usize = 4;
/// Fragment Number and Total Fragments of an SKF payload (RFC 7383 §2.5).
const FRAGMENT_FIELDS_LEN: usize = 4;

enum Cipher {
    Cbc {
        key: Zeroizing<Vec<u8>>,
        integrity: Integrity,
        mac: hmac::Key,
    },
    Aead {
        key: Box<aead::LessSafeKey>,
        salt: [u8; 4],
        /// The next explicit IV: a counter from a random start (never repeats under this
        /// key: one `SkCipher` per direction and IKE SA).
        next_iv: u64,
    },
}

/// One direction's SK payload protection.
pub struct SkCipher {
    cipher: Cipher,
}

impl fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SkCipher { .. }")
    }
}

/// An IKE SA's two directions, as this end sees them.
#[derive(Debug)]
pub struct SkKeys {
    pub outgoing: SkCipher,
    pub incoming: SkCipher,
}

impl SkKeys {
    /// `original_initiator`: this end started the IKE SA (it sends with SK_ei/SK_ai).
    pub fn new(
        suite: &IkeSuite,
        keys: &IkeSaKeys,
        original_initiator: bool,
    ) -> Result<SkKeys, CryptoError> {
        let i = SkCipher::new(suite.encryption, suite.integrity, &keys.sk_ei, &keys.sk_ai)?;
        let r = SkCipher::new(suite.encryption, suite.integrity, &keys.sk_er, &keys.sk_ar)?;
        Ok(if original_initiator {
            SkKeys {
                outgoing: i,
                incoming: r,
            }
        } else {
            SkKeys {
                outgoing: r,
                incoming: i,
            }
        })
    }
}

impl SkCipher {
    /// `sk_e` ends with the salt for an AEAD; `sk_a` is empty for an AEAD.
    pub fn new(
        encryption: Encryption,
        integrity: Option<Integrity>,
        sk_e: &[u8],
        sk_a: &[u8],
    ) -> Result<SkCipher, CryptoError> {
        if sk_e.len() != encryption.key_len() {
            return Err(CryptoError::Malformed("SK_e of the wrong length"));
        }
        let cipher = match (encryption, integrity) {
            (Encryption::AesCbc(_), Some(integrity)) => Cipher::Cbc {
                key: Zeroizing::new(sk_e.to_vec()),
                integrity,
                mac: hmac::Key::new(integrity.algorithm(), sk_a),
            },
            (Encryption::AesCbc(_), None) => {
                return Err(CryptoError::MissingIntegrity("AES-CBC"));
            }
            (aead_alg, _) => {
                let (key, salt) = sk_e.split_at(sk_e.len() - super::AEAD_SALT_LEN);
                let alg = match aead_alg {
                    Encryption::AesGcm16(super::AesKeyLen::Aes128) => &aead::AES_128_GCM,
                    Encryption::AesGcm16(super::AesKeyLen::Aes256) => &aead::AES_256_GCM,
                    _ => &aead::CHACHA20_POLY1305,
                };
                let unbound = aead::UnboundKey::new(alg, key)
                    .map_err(|_| CryptoError::Malformed("AEAD key rejected"))?;
                let mut start = [0u8; 8];
                fill_random(&mut start)?;
                Cipher::Aead {
                    key: Box::new(aead::LessSafeKey::new(unbound)),
                    salt: salt.try_into().expect("4 bytes"),
                    next_iv: u64::from_be_bytes(start),
                }
            }
        };
        Ok(SkCipher { cipher })
    }

    /// The encrypted message: `header` (its next payload and length are filled in here),
    /// an SK payload holding the inner chain `inner` whose first payload is `first`.
    pub fn seal(
        &mut self,
        header: &Header,
        first: First,
        inner: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal_part(header, first, None, inner)
    }

    /// Fragment `number` of `total` of a message (RFC 7383 §2.5): `header`, then an SKF
    /// payload holding `chunk`, a piece of the inner chain; `first` is the chain's first
    /// payload type in fragment 1 and `None` in the others. The fragment fields are
    /// authenticated with the header.
    pub fn seal_fragment(
        &mut self,
        header: &Header,
        first: First,
        number: u16,
        total: u16,
        chunk: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal_part(header, first, Some((number, total)), chunk)
    }

    /// How many bytes an encrypted message (SK, or SKF with `fragment`) adds to `inner`
    /// bytes of payloads: header, payload header, IV, padding, Pad Length and ICV.
    pub fn overhead(&self, inner: usize, fragment: bool) -> usize {
        let (iv_len, pad_len, icv_len) = self.sizes(inner);
        header::HEADER_LEN
            + SK_HEADER_LEN
            + if fragment { FRAGMENT_FIELDS_LEN } else { 0 }
            + iv_len
            + pad_len
            + 1
            + icv_len
    }

    fn sizes(&self, inner: usize) -> (usize, usize, usize) {
        match &self.cipher {
            Cipher::Cbc { integrity, .. } => {
                let pad = (AES_BLOCK - (inner + 1) % AES_BLOCK) % AES_BLOCK;
                (AES_BLOCK, pad, integrity.icv_len())
            }
            Cipher::Aead { .. } => (AEAD_IV_LEN, 0, AEAD_TAG_LEN),
        }
    }

    fn seal_part(
        &mut self,
        header: &Header,
        first: First,
        fragment: Option<(u16, u16)>,
        inner: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let (iv_len, pad_len, icv_len) = self.sizes(inner.len());
        let fields = if fragment.is_some() {
            FRAGMENT_FIELDS_LEN
        } else {
            0
        };
        let sk_len = SK_HEADER_LEN + fields + iv_len + inner.len() + pad_len + 1 + icv_len;
        let total = header::HEADER_LEN + sk_len;
        let sk_len = u16::try_from(sk_len).map_err(|_| CryptoError::TooLong)?;
        let mut out = vec![0u8; header::HEADER_LEN];
        let repr = header::Repr {
            next_payload: if fragment.is_some() {
                wire::PayloadType::Skf
            } else {
                wire::PayloadType::Sk
            },
            length: u32::try_from(total).map_err(|_| CryptoError::TooLong)?,
            ..*header
        };
        repr.emit(&mut header::Packet::new_unchecked(&mut out[..]))
            .map_err(|_| CryptoError::Malformed("header"))?;
        out.extend_from_slice(&[u8::from(first), 0]);
        out.extend_from_slice(&sk_len.to_be_bytes());
        if let Some((number, total)) = fragment {
            out.extend_from_slice(&number.to_be_bytes());
            out.extend_from_slice(&total.to_be_bytes());
        }
        let aad_end = out.len();
        let mut plain = Zeroizing::new(Vec::with_capacity(inner.len() + pad_len + 1 + AES_BLOCK));
        plain.extend_from_slice(inner);
        plain.resize(inner.len() + pad_len, 0);
        plain.push(pad_len as u8);
        match &mut self.cipher {
            Cipher::Cbc {
                key,
                integrity,
                mac,
            } => {
                let mut iv = [0u8; AES_BLOCK];
                fill_random(&mut iv)?;
                out.extend_from_slice(&iv);
                let at = out.len();
                out.extend_from_slice(&plain);
                cbc_encrypt(key, &iv, &mut out[at..])?;
                let tag = hmac::sign(mac, &out);
                out.extend_from_slice(&tag.as_ref()[..integrity.icv_len()]);
            }
            Cipher::Aead { key, salt, next_iv } => {
                let iv = next_iv.to_be_bytes();
                *next_iv = next_iv.wrapping_add(1);
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(salt);
                nonce[4..].copy_from_slice(&iv);
                out.extend_from_slice(&iv);
                let at = out.len();
                out.extend_from_slice(&plain);
                let (aad, body) = out.split_at_mut(at);
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(&aad[..aad_end]),
                        body,
                    )
                    .map_err(|_| CryptoError::TooLong)?;
                out.extend_from_slice(tag.as_ref());
            }
        }
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }

    /// The inner chain of an encrypted message (its first payload type and bytes), after
    /// its ICV checked out.
    pub fn open(&self, message: &[u8]) -> Result<(First, Zeroizing<Vec<u8>>), CryptoError> {
        match self.open_any(message)? {
            (first, plain, None) => Ok((first, plain)),
            (_, _, Some(_)) => Err(CryptoError::Malformed("a fragment (SKF)")),
        }
    }

    /// A message's SK or SKF payload opened, after its ICV checked out: the first payload
    /// type (`None` in a fragment other than the first), the plaintext (a piece of the
    /// inner chain, for a fragment), and the fragment's number and total.
    #[allow(clippy::type_complexity)]
    pub fn open_any(
        &self,
        message: &[u8],
    ) -> Result<(First, Zeroizing<Vec<u8>>, Option<(u16, u16)>), CryptoError> {
        let located =
            wire::sk::locate(message).map_err(|_| CryptoError::Malformed("no SK payload"))?;
        let body = &message[located.encrypted.clone()];
        let mut plain = match &self.cipher {
            Cipher::Cbc {
                key,
                integrity,
                mac,
            } => {
                let icv_len = integrity.icv_len();
                if body.len() < AES_BLOCK + AES_BLOCK + icv_len {
                    return Err(CryptoError::Malformed("too short"));
                }
                let icv_at = message.len() - icv_len;
                let tag = hmac::sign(mac, &message[..icv_at]);
                if !ct_eq(&tag.as_ref()[..icv_len], &message[icv_at..]) {
                    return Err(CryptoError::Integrity);
                }
                let (iv, rest) = body.split_at(AES_BLOCK);
                let ct = &rest[..rest.len() - icv_len];
                if ct.len() % AES_BLOCK != 0 {
                    return Err(CryptoError::Malformed("not whole blocks"));
                }
                let mut plain = Zeroizing::new(ct.to_vec());
                cbc_decrypt(key, iv.try_into().expect("16 bytes"), &mut plain)?;
                plain
            }
            Cipher::Aead { key, salt, .. } => {
                if body.len() < AEAD_IV_LEN + AEAD_TAG_LEN + 1 {
                    return Err(CryptoError::Malformed("too short"));
                }
                let (iv, rest) = body.split_at(AEAD_IV_LEN);
                let mut nonce = [0u8; 12];
                nonce[..4].copy_from_slice(salt);
                nonce[4..].copy_from_slice(iv);
                let mut buf = Zeroizing::new(rest.to_vec());
                let len = key
                    .open_in_place(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(&message[located.aad.clone()]),
                        &mut buf,
                    )
                    .map_err(|_| CryptoError::Integrity)?
                    .len();
                buf.truncate(len);
                buf
            }
        };
        // Pad Length, then the padding (its content is not checked, §3.14).
        let pad = *plain.last().ok_or(CryptoError::Malformed("empty"))? as usize;
        if pad + 1 > plain.len() {
            return Err(CryptoError::Malformed("padding longer than the payload"));
        }
        let keep = plain.len() - pad - 1;
        plain.truncate(keep);
        Ok((located.first, plain, located.fragment))
    }
}

fn cbc_encrypt(key: &[u8], iv: &[u8; AES_BLOCK], buf: &mut [u8]) -> Result<(), CryptoError> {
    let len = buf.len();
    let ok = match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::Malformed("key"))?
            .encrypt_padded_mut::<NoPadding>(buf, len)
            .is_ok(),
        _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::Malformed("key"))?
            .encrypt_padded_mut::<NoPadding>(buf, len)
            .is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(CryptoError::Malformed("not whole blocks"))
    }
}

fn cbc_decrypt(key: &[u8], iv: &[u8; AES_BLOCK], buf: &mut [u8]) -> Result<(), CryptoError> {
    let ok = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::Malformed("key"))?
            .decrypt_padded_mut::<NoPadding>(buf)
            .is_ok(),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| CryptoError::Malformed("key"))?
            .decrypt_padded_mut::<NoPadding>(buf)
            .is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(CryptoError::Malformed("not whole blocks"))
    }
}
