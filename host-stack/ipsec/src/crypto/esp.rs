//! The ESP cryptographic transform of one SA, in place on a whole ESP packet.

use core::fmt;
use core::ops::Range;

use rand::RngCore;
use zeroize::Zeroizing;

use super::CryptoError;
use super::aead::{Aead, AeadAlgorithm};
use super::algorithm::{AEAD_SALT_LEN, EncryptionAlgorithm};
use super::cbc::{BLOCK_LEN, CbcCipher};
use super::integrity::{Integrity, IntegrityAlgorithm};

/// Length of the ESP header (SPI and low 32 bits of the sequence number).
pub const ESP_HEADER_LEN: usize = 8;
/// Pad Length and Next Header.
const TRAILER_LEN: usize = 2;
/// Longest IV of any algorithm.
const MAX_IV_LEN: usize = BLOCK_LEN;

enum Cipher {
    Aead {
        aead: Aead,
        salt: Zeroizing<[u8; AEAD_SALT_LEN]>,
    },
    Cbc {
        cbc: CbcCipher,
        integrity: Integrity,
    },
    Null {
        integrity: Integrity,
    },
}

/// The parts of an ESP packet, once its length has been checked.
struct Parts<'a> {
    header: [u8; ESP_HEADER_LEN],
    iv: &'a mut [u8],
    payload: &'a mut [u8],
    icv: &'a mut [u8],
}

/// The ESP transform of one SA: keys, algorithms, seal and open.
///
/// Packet layout (RFC 4303 §2), offsets from the start of the ESP header:
///
/// ```text
/// 0        4        8               8+iv_len                      len-icv_len     len
/// | SPI    | seq_lo | IV            | payload | padding | pl | nh  | ICV            |
///                                   \____ encrypted (CBC, AEAD) ___/
/// \_____________ integrity (HMAC over these bytes || seq_hi with ESN) _/
/// ```
///
/// AEAD (RFC 4106, RFC 7634): nonce = salt || IV, IV = the 64-bit sequence number,
/// AAD = SPI || seq_lo, or SPI || seq_hi || seq_lo with ESN. CBC and NULL: the ICV is the
/// truncated HMAC over header, IV and ciphertext, with seq_hi appended to the HMAC input
/// (not to the packet) when ESN is on (RFC 4303 §2.2.1, §3.3.2.1).
pub struct EspTransform {
    algorithm: EncryptionAlgorithm,
    cipher: Cipher,
}

impl EspTransform {
    /// Builds the transform. `key` is the encryption key as configured (AEAD: cipher key
    /// followed by the 4-byte salt). AES-CBC and NULL need `integ`; the AEADs refuse it.
    pub fn new(
        algorithm: EncryptionAlgorithm,
        key: &[u8],
        integ: Option<(IntegrityAlgorithm, &[u8])>,
    ) -> Result<Self, CryptoError> {
        if key.len() != algorithm.key_len() {
            return Err(CryptoError::KeyLength {
                algorithm: algorithm.name(),
                expected: algorithm.key_len(),
                given: key.len(),
            });
        }
        let cipher = match (algorithm.is_aead(), integ) {
            (true, Some((integrity, _))) => {
                return Err(CryptoError::AeadWithIntegrity {
                    algorithm: algorithm.name(),
                    integrity: integrity.name(),
                });
            }
            (false, None) => {
                return Err(CryptoError::EncryptionWithoutIntegrity {
                    algorithm: algorithm.name(),
                });
            }
            (true, None) => {
                let aead_algorithm = match algorithm {
                    EncryptionAlgorithm::AesGcm128 => AeadAlgorithm::Aes128Gcm,
                    EncryptionAlgorithm::AesGcm256 => AeadAlgorithm::Aes256Gcm,
                    _ => AeadAlgorithm::ChaCha20Poly1305,
                };
                let split = key.len() - AEAD_SALT_LEN;
                let (cipher_key, salt) = key.split_at(split);
                let mut salt_bytes = Zeroizing::new([0u8; AEAD_SALT_LEN]);
                salt_bytes.copy_from_slice(salt);
                Cipher::Aead {
                    aead: Aead::new(aead_algorithm, cipher_key)?,
                    salt: salt_bytes,
                }
            }
            (false, Some((integ_alg, integ_key))) => {
                let integrity = Integrity::new(integ_alg, integ_key)?;
                if algorithm == EncryptionAlgorithm::Null {
                    Cipher::Null { integrity }
                } else {
                    Cipher::Cbc {
                        cbc: CbcCipher::new(key, algorithm.name())?,
                        integrity,
                    }
                }
            }
        };
        Ok(Self { algorithm, cipher })
    }

    /// The encryption algorithm.
    pub fn algorithm(&self) -> EncryptionAlgorithm {
        self.algorithm
    }

    /// The separate integrity algorithm (None for the AEADs).
    pub fn integrity_algorithm(&self) -> Option<IntegrityAlgorithm> {
        match &self.cipher {
            Cipher::Aead { .. } => None,
            Cipher::Cbc { integrity, .. } | Cipher::Null { integrity } => {
                Some(integrity.algorithm())
            }
        }
    }

    /// IV length in bytes.
    pub fn iv_len(&self) -> usize {
        self.algorithm.iv_len()
    }

    /// ICV length in bytes.
    pub fn icv_len(&self) -> usize {
        match &self.cipher {
            Cipher::Aead { .. } => Aead::TAG_LEN,
            Cipher::Cbc { integrity, .. } | Cipher::Null { integrity } => integrity.icv_len(),
        }
    }

    /// Alignment that payload + padding + trailer must reach, in bytes.
    pub fn pad_align(&self) -> usize {
        self.algorithm.pad_align()
    }

    /// Alignment espo pads to when sending (see [`EncryptionAlgorithm::send_align`]).
    pub fn send_align(&self) -> usize {
        self.algorithm.send_align()
    }

    /// Offset of the payload from the start of the ESP header (header + IV).
    pub fn payload_offset(&self) -> usize {
        ESP_HEADER_LEN + self.iv_len()
    }

    /// Shortest packet this transform accepts: header, IV, at least one aligned unit of
    /// payload (which holds the 2-byte trailer) and the ICV.
    pub fn min_len(&self) -> usize {
        self.payload_offset() + self.pad_align().max(TRAILER_LEN) + self.icv_len()
    }

    /// Splits `esp` into header, IV, payload and ICV after checking its length.
    fn split<'a>(&self, esp: &'a mut [u8]) -> Result<Parts<'a>, CryptoError> {
        let too_short = CryptoError::Truncated {
            len_bytes: esp.len(),
            min_bytes: self.min_len(),
        };
        if esp.len() < self.min_len() {
            return Err(too_short);
        }
        let (header, rest) = esp.split_at_mut_checked(ESP_HEADER_LEN).ok_or(too_short)?;
        let (iv, rest) = rest.split_at_mut_checked(self.iv_len()).ok_or(too_short)?;
        let payload_len = rest.len().checked_sub(self.icv_len()).ok_or(too_short)?;
        let (payload, icv) = rest.split_at_mut_checked(payload_len).ok_or(too_short)?;
        let header = <[u8; ESP_HEADER_LEN]>::try_from(&*header).map_err(|_| too_short)?;
        Ok(Parts {
            header,
            iv,
            payload,
            icv,
        })
    }

    /// Seals `esp` in place (layout in the [type documentation](EspTransform)): writes
    /// the IV, encrypts the payload and writes the ICV. The caller has written the ESP
    /// header with the low 32 bits of `seq` and the padded payload with its trailer.
    ///
    /// `seq` must be sendable: not 0, below 2^32 without ESN. A layout or sequence-number
    /// error leaves `esp` unchanged.
    pub fn seal(&self, esp: &mut [u8], seq: u64, esn: bool) -> Result<(), CryptoError> {
        if let Cipher::Aead { aead, salt } = &self.cipher {
            return self.seal_aead(aead, salt, esp, seq, esn);
        }
        let mut iv = [0u8; MAX_IV_LEN];
        match &self.cipher {
            // RFC 4106 §3.1, RFC 7634 §2: the IV is the 64-bit sequence number, unique per
            // key by construction since a sequence number is never reused.
            Cipher::Aead { .. } => copy_exact(&mut iv[..8], &seq.to_be_bytes())?,
            // RFC 3602 §2.1: the IV must be unpredictable.
            Cipher::Cbc { .. } => rand::thread_rng().fill_bytes(&mut iv),
            Cipher::Null { .. } => {}
        }
        self.seal_with_iv(esp, seq, esn, iv.get(..self.iv_len()).unwrap_or_default())
    }

    /// The AEAD half of [`seal`](Self::seal), the per-packet fast path: the same checks
    /// and bytes as [`seal_with_iv`](Self::seal_with_iv) with IV = `seq`, built with fewer
    /// intermediate copies.
    #[inline]
    fn seal_aead(
        &self,
        aead: &Aead,
        salt: &[u8; AEAD_SALT_LEN],
        esp: &mut [u8],
        seq: u64,
        esn: bool,
    ) -> Result<(), CryptoError> {
        const IV_LEN: usize = 8;
        let len = esp.len();
        if len < self.min_len() {
            return Err(CryptoError::Truncated {
                len_bytes: len,
                min_bytes: self.min_len(),
            });
        }
        let payload_len = len - ESP_HEADER_LEN - IV_LEN - Aead::TAG_LEN;
        if !payload_len.is_multiple_of(self.pad_align()) {
            return Err(CryptoError::Misaligned {
                len_bytes: payload_len,
                align_bytes: self.pad_align(),
            });
        }
        let lo = (seq as u32).to_be_bytes();
        if seq == 0 || (!esn && seq > u64::from(u32::MAX)) || esp[4..8] != lo {
            return Err(CryptoError::Sequence { seq });
        }
        let seq_bytes = seq.to_be_bytes();
        let mut nonce = [0u8; Aead::NONCE_LEN];
        nonce[..AEAD_SALT_LEN].copy_from_slice(salt);
        nonce[AEAD_SALT_LEN..].copy_from_slice(&seq_bytes);
        let mut aad = [0u8; 12];
        aad[..4].copy_from_slice(&esp[..4]);
        let aad_len = if esn {
            aad[4..8].copy_from_slice(&seq_bytes[..4]);
            aad[8..12].copy_from_slice(&lo);
            12
        } else {
            aad[4..8].copy_from_slice(&lo);
            8
        };
        let (head, rest) = esp.split_at_mut(ESP_HEADER_LEN + IV_LEN);
        head[ESP_HEADER_LEN..].copy_from_slice(&seq_bytes);
        let (payload, icv) = rest.split_at_mut(payload_len);
        aead.seal_into(&nonce, &aad[..aad_len], payload, icv)
    }

    /// [`seal`](Self::seal) with the IV given by the caller. Production code goes through
    /// `seal`, which derives (AEAD) or draws (CBC) the IV; test vectors whose IV is neither
    /// come through here.
    pub(crate) fn seal_with_iv(
        &self,
        esp: &mut [u8],
        seq: u64,
        esn: bool,
        iv: &[u8],
    ) -> Result<(), CryptoError> {
        let parts = self.split(esp)?;
        if !parts.payload.len().is_multiple_of(self.pad_align()) {
            return Err(CryptoError::Misaligned {
                len_bytes: parts.payload.len(),
                align_bytes: self.pad_align(),
            });
        }
        let seq_lo_matches = parts.header[4..] == (seq as u32).to_be_bytes();
        if seq == 0 || (!esn && seq > u64::from(u32::MAX)) || !seq_lo_matches {
            return Err(CryptoError::Sequence { seq });
        }
        copy_exact(parts.iv, iv)?;
        let seq_hi = esn.then_some((seq >> 32) as u32);
        match &self.cipher {
            Cipher::Aead { aead, salt } => {
                let nonce = nonce(salt, parts.iv)?;
                let aad = Aad::new(&parts.header, seq_hi);
                let tag = aead.seal(&nonce, aad.as_bytes(), parts.payload)?;
                copy_exact(parts.icv, &tag)?;
            }
            Cipher::Cbc { cbc, integrity } => {
                cbc.encrypt(&cbc_iv(parts.iv)?, parts.payload)?;
                let hi = SeqHi::new(seq_hi);
                let covered = [&parts.header[..], parts.iv, parts.payload, hi.as_bytes()];
                integrity.compute(&covered, parts.icv);
            }
            Cipher::Null { integrity } => {
                let hi = SeqHi::new(seq_hi);
                let covered = [&parts.header[..], parts.iv, parts.payload, hi.as_bytes()];
                integrity.compute(&covered, parts.icv);
            }
        }
        Ok(())
    }

    /// Verifies and decrypts `esp` in place. `seq_hi` is the inferred high half of the
    /// sequence number when the SA uses ESN (from [`crate::replay::ReplayWindow::check`]).
    ///
    /// The ICV is verified in constant time before any other byte of the packet is used:
    /// CBC and NULL check the HMAC before decrypting; the AEADs verify the tag before
    /// releasing plaintext. Returns the range of the plaintext within `esp` (payload,
    /// padding and trailer — the caller parses the trailer). On
    /// [`CryptoError::Authentication`] the contents of `esp` must not be used.
    ///
    /// AES-CBC needs a whole number of blocks; for the AEADs and NULL the 4-byte alignment
    /// that senders must produce is not enforced on receipt (the ICV is what matters).
    pub fn open(&self, esp: &mut [u8], seq_hi: Option<u32>) -> Result<Range<usize>, CryptoError> {
        let offset = self.payload_offset();
        let parts = self.split(esp)?;
        let plaintext = offset..offset + parts.payload.len();
        match &self.cipher {
            Cipher::Aead { aead, salt } => {
                let nonce = nonce(salt, parts.iv)?;
                let aad = Aad::new(&parts.header, seq_hi);
                let tag = <[u8; Aead::TAG_LEN]>::try_from(&*parts.icv)
                    .map_err(|_| CryptoError::Authentication)?;
                aead.open(&nonce, aad.as_bytes(), parts.payload, &tag)?;
            }
            Cipher::Cbc { cbc, integrity } => {
                if !parts.payload.len().is_multiple_of(BLOCK_LEN) {
                    return Err(CryptoError::Misaligned {
                        len_bytes: parts.payload.len(),
                        align_bytes: BLOCK_LEN,
                    });
                }
                let hi = SeqHi::new(seq_hi);
                let covered = [&parts.header[..], parts.iv, parts.payload, hi.as_bytes()];
                if !integrity.verify(&covered, parts.icv) {
                    return Err(CryptoError::Authentication);
                }
                cbc.decrypt(&cbc_iv(parts.iv)?, parts.payload)?;
            }
            Cipher::Null { integrity } => {
                let hi = SeqHi::new(seq_hi);
                let covered = [&parts.header[..], parts.iv, parts.payload, hi.as_bytes()];
                if !integrity.verify(&covered, parts.icv) {
                    return Err(CryptoError::Authentication);
                }
            }
        }
        Ok(plaintext)
    }
}

/// Copies `src` to `dst` when their lengths match; an internal layout error otherwise.
fn copy_exact(dst: &mut [u8], src: &[u8]) -> Result<(), CryptoError> {
    if dst.len() != src.len() {
        return Err(CryptoError::Seal);
    }
    dst.copy_from_slice(src);
    Ok(())
}

fn nonce(salt: &[u8; AEAD_SALT_LEN], iv: &[u8]) -> Result<[u8; Aead::NONCE_LEN], CryptoError> {
    let mut nonce = [0u8; Aead::NONCE_LEN];
    let (salt_part, iv_part) = nonce.split_at_mut(AEAD_SALT_LEN);
    salt_part.copy_from_slice(salt);
    copy_exact(iv_part, iv)?;
    Ok(nonce)
}

fn cbc_iv(iv: &[u8]) -> Result<[u8; BLOCK_LEN], CryptoError> {
    iv.try_into().map_err(|_| CryptoError::Seal)
}

/// AAD of RFC 4106 §5 / RFC 7634 §2.1: SPI || seq_lo, or SPI || seq_hi || seq_lo with ESN.
struct Aad {
    bytes: [u8; 12],
    len: usize,
}

impl Aad {
    fn new(header: &[u8; ESP_HEADER_LEN], seq_hi: Option<u32>) -> Self {
        let [s0, s1, s2, s3, l0, l1, l2, l3] = *header;
        match seq_hi {
            Some(hi) => {
                let [h0, h1, h2, h3] = hi.to_be_bytes();
                Self {
                    bytes: [s0, s1, s2, s3, h0, h1, h2, h3, l0, l1, l2, l3],
                    len: 12,
                }
            }
            None => Self {
                bytes: [s0, s1, s2, s3, l0, l1, l2, l3, 0, 0, 0, 0],
                len: 8,
            },
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// The ESN high bits appended to the HMAC input (RFC 4303 §2.2.1), or nothing.
struct SeqHi {
    bytes: [u8; 4],
    present: bool,
}

impl SeqHi {
    fn new(seq_hi: Option<u32>) -> Self {
        Self {
            bytes: seq_hi.unwrap_or(0).to_be_bytes(),
            present: seq_hi.is_some(),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        if self.present { &self.bytes } else { &[] }
    }
}

impl fmt::Debug for EspTransform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspTransform")
            .field("algorithm", &self.algorithm)
            .field("integrity", &self.integrity_algorithm())
            .field("keys", &"<redacted>")
            .finish()
    }
}
