//! IKEv2's cryptography (RFC 7296 §2.13–§2.18, RFC 5282, RFC 7634): the pseudo-random
//! functions and prf+, the IKE SA's seven keys and a CHILD_SA's keying material, the
//! Diffie-Hellman exchanges, and the Encrypted (SK) payload.
//!
//! Every primitive comes from a maintained crate: `ring` for HMAC, ECDH (X25519, P-256,
//! P-384), AES-GCM and ChaCha20-Poly1305; the RustCrypto `aes` and `cbc` crates for AES-CBC;
//! `crypto-bigint` for the MODP groups' constant-time modular exponentiation. Secrets are
//! held in zeroizing buffers; `Debug` never shows them.

use core::fmt;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use espo_ipsec::crypto::{EncryptionAlgorithm, IntegrityAlgorithm};

use crate::wire::{self, PayloadType};

mod dh;
mod sk;
#[cfg(test)]
mod tests;

pub use dh::{KeyExchange, SharedSecret};
pub use sk::{SkCipher, SkKeys};

/// Secret bytes, zeroized when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("prf+ cannot give {0} bytes (at most 255 blocks)")]
    TooMuchKeyingMaterial(usize),
    #[error("{0} is not implemented")]
    Unsupported(String),
    #[error("{0} needs an integrity algorithm")]
    MissingIntegrity(&'static str),
    #[error("{0} takes no integrity algorithm")]
    NeedlessIntegrity(&'static str),
    #[error("the peer's Diffie-Hellman public value is invalid ({0})")]
    BadPublicValue(&'static str),
    #[error("the system's random source failed")]
    Random,
    #[error("the encrypted payload's integrity check failed")]
    Integrity,
    #[error("the encrypted payload is malformed ({0})")]
    Malformed(&'static str),
    #[error("the message is too long")]
    TooLong,
}

/// A pseudo-random function (transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Prf {
    pub fn id(self) -> u16 {
        match self {
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    pub fn from_id(id: u16) -> Option<Prf> {
        [
            Prf::HmacSha1,
            Prf::HmacSha256,
            Prf::HmacSha384,
            Prf::HmacSha512,
        ]
        .into_iter()
        .find(|p| p.id() == id)
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha256 => hmac::HMAC_SHA256,
            Prf::HmacSha384 => hmac::HMAC_SHA384,
            Prf::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// The output length, which is also its preferred key length (§2.13).
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// prf(key, parts[0] | parts[1] | ...).
    pub fn compute(self, key: &[u8], parts: &[&[u8]]) -> Secret {
        let key = hmac::Key::new(self.algorithm(), key);
        let mut ctx = hmac::Context::with_key(&key);
        for p in parts {
            ctx.update(p);
        }
        Zeroizing::new(ctx.sign().as_ref().to_vec())
    }

    /// prf+ (§2.13): T1 | T2 | ..., Tn = prf(K, Tn-1 | S | n), cut to `len` bytes.
    pub fn plus(self, key: &[u8], seed: &[u8], len: usize) -> Result<Secret, CryptoError> {
        let blocks = len.div_ceil(self.output_len());
        if blocks > 255 {
            return Err(CryptoError::TooMuchKeyingMaterial(len));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(blocks * self.output_len()));
        let mut last: Secret = Zeroizing::new(Vec::new());
        for n in 1..=blocks as u8 {
            last = self.compute(key, &[&last, seed, &[n]]);
            out.extend_from_slice(&last);
        }
        out.truncate(len);
        Ok(out)
    }
}

impl fmt::Display for Prf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prf::HmacSha1 => "PRF_HMAC_SHA1",
            Prf::HmacSha256 => "PRF_HMAC_SHA2_256",
            Prf::HmacSha384 => "PRF_HMAC_SHA2_384",
            Prf::HmacSha512 => "PRF_HMAC_SHA2_512",
        })
    }
}

/// An integrity algorithm of the IKE SA (transform type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integrity {
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl Integrity {
    pub fn id(self) -> u16 {
        match self {
            Integrity::HmacSha1_96 => 2,
            Integrity::HmacSha256_128 => 12,
            Integrity::HmacSha384_192 => 13,
            Integrity::HmacSha512_256 => 14,
        }
    }

    pub fn from_id(id: u16) -> Option<Integrity> {
        [
            Integrity::HmacSha1_96,
            Integrity::HmacSha256_128,
            Integrity::HmacSha384_192,
            Integrity::HmacSha512_256,
        ]
        .into_iter()
        .find(|i| i.id() == id)
    }

    pub fn key_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 20,
            Integrity::HmacSha256_128 => 32,
            Integrity::HmacSha384_192 => 48,
            Integrity::HmacSha512_256 => 64,
        }
    }

    pub fn icv_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 12,
            Integrity::HmacSha256_128 => 16,
            Integrity::HmacSha384_192 => 24,
            Integrity::HmacSha512_256 => 32,
        }
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Integrity::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integrity::HmacSha256_128 => hmac::HMAC_SHA256,
            Integrity::HmacSha384_192 => hmac::HMAC_SHA384,
            Integrity::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Integrity::HmacSha1_96 => "HMAC_SHA1_96",
            Integrity::HmacSha256_128 => "HMAC_SHA2_256_128",
            Integrity::HmacSha384_192 => "HMAC_SHA2_384_192",
            Integrity::HmacSha512_256 => "HMAC_SHA2_512_256",
        })
    }
}

/// AES key sizes espo implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesKeyLen {
    Aes128,
    Aes256,
}

impl AesKeyLen {
    pub fn bytes(self) -> usize {
        match self {
            AesKeyLen::Aes128 => 16,
            AesKeyLen::Aes256 => 32,
        }
    }

    fn from_bits(bits: Option<u16>) -> Option<AesKeyLen> {
        match bits {
            Some(128) => Some(AesKeyLen::Aes128),
            Some(256) => Some(AesKeyLen::Aes256),
            _ => None,
        }
    }
}

/// The IKE SA's encryption algorithm (transform type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encryption {
    AesCbc(AesKeyLen),
    /// AES-GCM with a 16-byte ICV (RFC 5282).
    AesGcm16(AesKeyLen),
    /// RFC 7634.
    ChaCha20Poly1305,
}

/// The salt of an AEAD key (RFC 5282, RFC 7634), at the end of SK_e.
pub const AEAD_SALT_LEN: usize = 4;

impl Encryption {
    pub fn id(self) -> u16 {
        match self {
            Encryption::AesCbc(_) => 12,
            Encryption::AesGcm16(_) => 20,
            Encryption::ChaCha20Poly1305 => 28,
        }
    }

    /// The algorithm of transform `id` with its Key Length attribute `key_bits`.
    pub fn from_id(id: u16, key_bits: Option<u16>) -> Option<Encryption> {
        match id {
            12 => AesKeyLen::from_bits(key_bits).map(Encryption::AesCbc),
            20 => AesKeyLen::from_bits(key_bits).map(Encryption::AesGcm16),
            28 if key_bits.is_none() || key_bits == Some(256) => Some(Encryption::ChaCha20Poly1305),
            _ => None,
        }
    }

    pub fn is_aead(self) -> bool {
        !matches!(self, Encryption::AesCbc(_))
    }

    /// SK_e's length: the cipher key, and an AEAD's salt.
    pub fn key_len(self) -> usize {
        match self {
            Encryption::AesCbc(k) => k.bytes(),
            Encryption::AesGcm16(k) => k.bytes() + AEAD_SALT_LEN,
            Encryption::ChaCha20Poly1305 => 32 + AEAD_SALT_LEN,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encryption::AesCbc(AesKeyLen::Aes128) => "AES_CBC-128",
            Encryption::AesCbc(AesKeyLen::Aes256) => "AES_CBC-256",
            Encryption::AesGcm16(AesKeyLen::Aes128) => "AES_GCM_16-128",
            Encryption::AesGcm16(AesKeyLen::Aes256) => "AES_GCM_16-256",
            Encryption::ChaCha20Poly1305 => "CHACHA20_POLY1305",
        }
    }
}

impl fmt::Display for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Diffie-Hellman group (transform type 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    Modp2048,
    Modp3072,
    Ecp256,
    Ecp384,
    Curve25519,
}

impl DhGroup {
    pub fn id(self) -> u16 {
        match self {
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Curve25519 => 31,
        }
    }

    pub fn from_id(id: u16) -> Option<DhGroup> {
        [
            DhGroup::Modp2048,
            DhGroup::Modp3072,
            DhGroup::Ecp256,
            DhGroup::Ecp384,
            DhGroup::Curve25519,
        ]
        .into_iter()
        .find(|g| g.id() == id)
    }

    /// The KE payload's data length.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DhGroup::Modp2048 => "MODP_2048",
            DhGroup::Modp3072 => "MODP_3072",
            DhGroup::Ecp256 => "ECP_256",
            DhGroup::Ecp384 => "ECP_384",
            DhGroup::Curve25519 => "CURVE_25519",
        })
    }
}

/// The IKE SA's algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub encryption: Encryption,
    pub integrity: Option<Integrity>,
    pub prf: Prf,
    pub dh: DhGroup,
}

impl IkeSuite {
    /// Checks the pairing: an AEAD takes no integrity algorithm, AES-CBC needs one.
    pub fn new(
        encryption: Encryption,
        integrity: Option<Integrity>,
        prf: Prf,
        dh: DhGroup,
    ) -> Result<IkeSuite, CryptoError> {
        match (encryption.is_aead(), integrity) {
            (true, Some(_)) => return Err(CryptoError::NeedlessIntegrity(encryption.name())),
            (false, None) => return Err(CryptoError::MissingIntegrity(encryption.name())),
            _ => {}
        }
        Ok(IkeSuite {
            encryption,
            integrity,
            prf,
            dh,
        })
    }
}

impl fmt::Display for IkeSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.encryption)?;
        if let Some(i) = self.integrity {
            write!(f, "/{i}")?;
        }
        write!(f, "/{}/{}", self.prf, self.dh)
    }
}

/// SKEYSEED = prf(Ni | Nr, g^ir) (§2.14).
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Secret {
    let key = Zeroizing::new([ni, nr].concat());
    prf.compute(&key, &[g_ir])
}

/// SKEYSEED of a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr) (§2.18), under the
/// old IKE SA's PRF.
pub fn rekey_skeyseed(old_prf: Prf, sk_d_old: &[u8], g_ir: &[u8], ni: &[u8], nr: &[u8]) -> Secret {
    old_prf.compute(sk_d_old, &[g_ir, ni, nr])
}

/// The seven keys of an IKE SA.
pub struct IkeSaKeys {
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

impl fmt::Debug for IkeSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IkeSaKeys { .. }")
    }
}

impl IkeSaKeys {
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr |
    /// SPIi | SPIr) (§2.14). An AEAD has no SK_a (empty) and its SK_e ends with the salt.
    pub fn derive(
        suite: &IkeSuite,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeSaKeys, CryptoError> {
        let prf_len = suite.prf.output_len();
        let a_len = suite.integrity.map_or(0, Integrity::key_len);
        let e_len = suite.encryption.key_len();
        let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
        let all = suite
            .prf
            .plus(skeyseed, &seed, 3 * prf_len + 2 * a_len + 2 * e_len)?;
        let mut at = 0;
        let mut take = |n: usize| {
            let k = Zeroizing::new(all[at..at + n].to_vec());
            at += n;
            k
        };
        Ok(IkeSaKeys {
            sk_d: take(prf_len),
            sk_ai: take(a_len),
            sk_ar: take(a_len),
            sk_ei: take(e_len),
            sk_er: take(e_len),
            sk_pi: take(prf_len),
            sk_pr: take(prf_len),
        })
    }
}

/// A CHILD_SA's ESP algorithms, as espo-ipsec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildSuite {
    pub encryption: EncryptionAlgorithm,
    pub integrity: Option<IntegrityAlgorithm>,
}

impl ChildSuite {
    pub fn esp(
        encryption: EncryptionAlgorithm,
        integrity: Option<IntegrityAlgorithm>,
    ) -> ChildSuite {
        ChildSuite {
            encryption,
            integrity,
        }
    }
}

/// One direction's ESP keys in espo's format: the encryption key (an AEAD's with its
/// salt), and the integrity key if any.
pub struct ChildDirectionKeys {
    pub encryption: Secret,
    pub integrity: Option<Secret>,
}

impl fmt::Debug for ChildDirectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChildDirectionKeys { .. }")
    }
}

/// A CHILD_SA's keys, both directions.
#[derive(Debug)]
pub struct ChildSaKeys {
    pub initiator_to_responder: ChildDirectionKeys,
    pub responder_to_initiator: ChildDirectionKeys,
}

impl ChildSaKeys {
    /// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (§2.17): the initiator-to-responder
    /// encryption then integrity key, then the other direction's. `ni` and `nr` are the
    /// nonces of the exchange that created the CHILD_SA, its initiator's first.
    pub fn derive(
        prf: Prf,
        sk_d: &[u8],
        g_ir: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        suite: &ChildSuite,
    ) -> Result<ChildSaKeys, CryptoError> {
        let e_len = suite.encryption.key_len();
        let a_len = suite.integrity.map_or(0, IntegrityAlgorithm::key_len);
        let seed = Zeroizing::new([g_ir.unwrap_or(&[]), ni, nr].concat());
        let all = prf.plus(sk_d, &seed, 2 * (e_len + a_len))?;
        let direction = |at: usize| ChildDirectionKeys {
            encryption: Zeroizing::new(all[at..at + e_len].to_vec()),
            integrity: suite
                .integrity
                .map(|_| Zeroizing::new(all[at + e_len..at + e_len + a_len].to_vec())),
        };
        Ok(ChildSaKeys {
            initiator_to_responder: direction(0),
            responder_to_initiator: direction(e_len + a_len),
        })
    }
}

/// Fills `buf` from the system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| CryptoError::Random)
}

/// Constant-time comparison.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

pub(crate) type Header = wire::header::Repr;
pub(crate) type First = PayloadType;
