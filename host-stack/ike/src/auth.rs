//! Authentication in IKE_AUTH (RFC 7296 §2.15): identities, the octets each end signs,
//! pre-shared keys, signatures (RFC 7427's digital-signature method with RSA PKCS#1 v1.5 and
//! PSS, ECDSA and Ed25519, and the classic RSA and ECDSA methods) and the validation of the
//! peer's certificate chain (`cert`).
//!
//! Signatures are made and checked by `ring`; certificates are read by `x509-parser`, whose
//! signature check also uses `ring`.

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ring::signature::{self, KeyPair};
use zeroize::Zeroizing;

use crate::crypto::{Prf, ct_eq};

mod cert;
mod der;
#[cfg(test)]
mod tests;

pub use cert::{Certificate, validate_chain};

/// Why an authentication step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("identity: {0}")]
    Identity(String),
    #[error("private key: {0}")]
    PrivateKey(String),
    #[error("public key: {0}")]
    PublicKey(String),
    #[error("signature: {0}")]
    Signature(String),
    #[error("certificate: {0}")]
    Certificate(String),
}

/// An IKE identity (ID payload, §3.5).
#[derive(Clone, Eq)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    Rfc822(String),
    /// A distinguished name, DER.
    Dn(Vec<u8>),
    KeyId(Vec<u8>),
}

impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        match (self, other) {
            (Identity::Ipv4(a), Identity::Ipv4(b)) => a == b,
            (Identity::Ipv6(a), Identity::Ipv6(b)) => a == b,
            (Identity::Fqdn(a), Identity::Fqdn(b)) | (Identity::Rfc822(a), Identity::Rfc822(b)) => {
                a.eq_ignore_ascii_case(b)
            }
            (Identity::Dn(a), Identity::Dn(b)) => der::same(a, b),
            (Identity::KeyId(a), Identity::KeyId(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({self})")
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) | Identity::Rfc822(s) => f.write_str(s),
            Identity::Dn(der) => f.write_str(&der::to_text(der)),
            Identity::KeyId(k) => {
                f.write_str("#")?;
                k.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

impl Identity {
    pub fn from_ip(ip: IpAddr) -> Identity {
        match ip {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        }
    }

    /// The ID Type (§3.5).
    pub fn id_type(&self) -> u8 {
        match self {
            Identity::Ipv4(_) => 1,
            Identity::Fqdn(_) => 2,
            Identity::Rfc822(_) => 3,
            Identity::Ipv6(_) => 5,
            Identity::Dn(_) => 9,
            Identity::KeyId(_) => 11,
        }
    }

    fn data(&self) -> Vec<u8> {
        match self {
            Identity::Ipv4(a) => a.octets().to_vec(),
            Identity::Ipv6(a) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::Rfc822(s) => s.as_bytes().to_vec(),
            Identity::Dn(d) | Identity::KeyId(d) => d.clone(),
        }
    }

    /// The ID payload's body IDx' (type, three reserved bytes, data), which AUTH covers.
    pub fn body(&self) -> Vec<u8> {
        let mut out = vec![self.id_type(), 0, 0, 0];
        out.extend_from_slice(&self.data());
        out
    }

    /// Reads an ID payload's body.
    pub fn from_body(body: &[u8]) -> Result<Identity, AuthError> {
        let bad = |why: &str| AuthError::Identity(why.to_string());
        if body.len() < 5 {
            return Err(bad("too short"));
        }
        let data = &body[4..];
        let text = || {
            std::str::from_utf8(data)
                .map(str::to_string)
                .map_err(|_| bad("not text"))
        };
        match body[0] {
            1 => <[u8; 4]>::try_from(data)
                .map(|a| Identity::Ipv4(a.into()))
                .map_err(|_| bad("an IPv4 identity of the wrong length")),
            5 => <[u8; 16]>::try_from(data)
                .map(|a| Identity::Ipv6(a.into()))
                .map_err(|_| bad("an IPv6 identity of the wrong length")),
            2 => text().map(Identity::Fqdn),
            3 => text().map(Identity::Rfc822),
            9 => {
                der::check(data).map_err(|e| bad(&e))?;
                Ok(Identity::Dn(data.to_vec()))
            }
            11 => Ok(Identity::KeyId(data.to_vec())),
            t => Err(AuthError::Identity(format!("ID type {t} is not supported"))),
        }
    }

    /// An identity as strongSwan's configuration writes it: an IP address; `@name` an FQDN
    /// taken literally; `user@host` an e-mail address (RFC 822); `C=CH, O=espo, CN=gw` a
    /// distinguished name; anything else an FQDN.
    pub fn parse_config(text: &str) -> Result<Identity, AuthError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AuthError::Identity("empty".into()));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Identity::from_ip(ip));
        }
        if let Some(fqdn) = text.strip_prefix('@') {
            if let Some(hex) = fqdn.strip_prefix('#') {
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .map_err(|_| AuthError::Identity(format!("`{text}`: bad key id")))?;
                return Ok(Identity::KeyId(bytes));
            }
            return Ok(Identity::Fqdn(fqdn.to_string()));
        }
        if text.contains('=') {
            return der::from_text(text)
                .map(Identity::Dn)
                .map_err(|e| AuthError::Identity(format!("`{text}`: {e}")));
        }
        if text.contains('@') {
            return Ok(Identity::Rfc822(text.to_string()));
        }
        Ok(Identity::Fqdn(text.to_string()))
    }
}

/// The octets an end's AUTH covers (§2.15): its IKE_SA_INIT message, the peer's nonce, and
/// prf(SK_p, IDx') of its own identity.
pub fn signed_octets(
    prf: Prf,
    sk_p: &[u8],
    message: &[u8],
    peer_nonce: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let mac = prf.compute(sk_p, &[id_body]);
    [message, peer_nonce, &mac].concat()
}

const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), octets) (§2.15).
pub fn psk_auth(prf: Prf, psk: &[u8], octets: &[u8]) -> Vec<u8> {
    let key = prf.compute(psk, &[KEY_PAD]);
    prf.compute(&key, &[octets]).to_vec()
}

/// Checks a PSK AUTH value in constant time.
pub fn verify_psk_auth(prf: Prf, psk: &[u8], octets: &[u8], received: &[u8]) -> bool {
    let want = Zeroizing::new(psk_auth(prf, psk, octets));
    ct_eq(&want, received)
}

/// RFC 7427's hash algorithms (SIGNATURE_HASH_ALGORITHMS).
pub struct HashAlgorithm;

impl HashAlgorithm {
    pub const SHA2_256: u16 = 2;
    pub const SHA2_384: u16 = 3;
    pub const SHA2_512: u16 = 4;
    pub const IDENTITY: u16 = 5;
    /// What espo announces and verifies.
    pub const SUPPORTED: &'static [u16] = &[
        HashAlgorithm::SHA2_256,
        HashAlgorithm::SHA2_384,
        HashAlgorithm::SHA2_512,
        HashAlgorithm::IDENTITY,
    ];
}

/// Authentication methods (§3.8, RFC 4754, RFC 7427).
pub mod method {
    pub const RSA: u8 = 1;
    pub const PSK: u8 = 2;
    pub const ECDSA_P256: u8 = 9;
    pub const ECDSA_P384: u8 = 10;
    pub const DIGITAL_SIGNATURE: u8 = 14;
}

/// RFC 7427 AlgorithmIdentifiers (DER), as RFC 7427 Appendix A lists them.
mod algid {
    pub const ECDSA_SHA256: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ];
    pub const ECDSA_SHA384: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
    ];
    pub const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    pub const RSA_SHA256: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
    ];
    pub const RSA_SHA384: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
    ];
    pub const RSA_SHA512: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
    ];
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256, a 32-byte salt, trailer 1 (the
    /// parameters in full, as RFC 7427 §A.4.2 lays them out).
    pub const RSA_PSS_SHA256: &[u8] = &[
        0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34,
        0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
        0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
    ];
    /// id-RSASSA-PSS (1.2.840.113549.1.1.10).
    pub const PSS_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    /// SHA-256, SHA-384, SHA-512 (2.16.840.1.101.3.4.2.1..3).
    pub const SHA256_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    pub const SHA384_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    pub const SHA512_OID: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
}

/// A public key from a certificate.
#[derive(Clone)]
pub enum PublicKey {
    /// RSAPublicKey (DER), with its modulus size in bits.
    Rsa(Vec<u8>),
    EcdsaP256(Vec<u8>),
    EcdsaP384(Vec<u8>),
    Ed25519(Vec<u8>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublicKey::Rsa(_) => "PublicKey(RSA)",
            PublicKey::EcdsaP256(_) => "PublicKey(ECDSA P-256)",
            PublicKey::EcdsaP384(_) => "PublicKey(ECDSA P-384)",
            PublicKey::Ed25519(_) => "PublicKey(Ed25519)",
        })
    }
}

/// This end's private key.
pub enum PrivateKey {
    Rsa(signature::RsaKeyPair),
    EcdsaP256(signature::EcdsaKeyPair),
    EcdsaP384(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrivateKey::Rsa(_) => "PrivateKey(RSA)",
            PrivateKey::EcdsaP256(_) => "PrivateKey(ECDSA P-256)",
            PrivateKey::EcdsaP384(_) => "PrivateKey(ECDSA P-384)",
            PrivateKey::Ed25519(_) => "PrivateKey(Ed25519)",
        })
    }
}

impl PrivateKey {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
    /// (`EC PRIVATE KEY`). RSA keys under 2048 bits, encrypted keys and curves other than
    /// P-256 and P-384 are refused, each with a message saying so.
    pub fn from_pem(text: &str) -> Result<PrivateKey, AuthError> {
        let bad = |why: String| AuthError::PrivateKey(why);
        let (label, der) = cert::pem_block(text).map_err(bad)?;
        let der = Zeroizing::new(der);
        let rng = ring::rand::SystemRandom::new();
        match label.as_str() {
            "ENCRYPTED PRIVATE KEY" => Err(bad(
                "the key is encrypted; espo reads unencrypted keys (protect the file instead, mode 0600)".into(),
            )),
            "RSA PRIVATE KEY" => {
                let key = signature::RsaKeyPair::from_der(&der)
                    .map_err(|e| bad(format!("not an RSA key ring accepts ({e}); at least 2048 bits")))?;
                Ok(PrivateKey::Rsa(key))
            }
            "EC PRIVATE KEY" => {
                let (curve, private, public) = der::sec1(&der).map_err(bad)?;
                let alg = match curve {
                    256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    _ => return Err(bad("only ECDSA P-256 and P-384 keys are supported".into())),
                };
                let key = signature::EcdsaKeyPair::from_private_key_and_public_key(
                    alg, &private, &public, &rng,
                )
                .map_err(|e| bad(format!("the EC key is invalid ({e})")))?;
                Ok(if curve == 256 {
                    PrivateKey::EcdsaP256(key)
                } else {
                    PrivateKey::EcdsaP384(key)
                })
            }
            "PRIVATE KEY" => {
                if let Ok(k) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
                    return Ok(PrivateKey::Ed25519(k));
                }
                if let Ok(k) = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &der,
                    &rng,
                ) {
                    return Ok(PrivateKey::EcdsaP256(k));
                }
                if let Ok(k) = signature::EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                    &der,
                    &rng,
                ) {
                    return Ok(PrivateKey::EcdsaP384(k));
                }
                signature::RsaKeyPair::from_pkcs8(&der)
                    .map(PrivateKey::Rsa)
                    .map_err(|e| bad(format!(
                        "not an RSA (at least 2048 bits), ECDSA P-256/P-384 or Ed25519 key ({e})"
                    )))
            }
            other => Err(bad(format!("a PEM block `{other}`, not a private key"))),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.public_key().as_ref().to_vec()),
            PrivateKey::EcdsaP256(k) => PublicKey::EcdsaP256(k.public_key().as_ref().to_vec()),
            PrivateKey::EcdsaP384(k) => PublicKey::EcdsaP384(k.public_key().as_ref().to_vec()),
            PrivateKey::Ed25519(k) => PublicKey::Ed25519(k.public_key().as_ref().to_vec()),
        }
    }
}

/// Signs `octets` for an AUTH payload: RFC 7427's method 14 when the peer announced hash
/// algorithms (SIGNATURE_HASH_ALGORITHMS), else the classic ECDSA methods (9, 10). Returns
/// the method and the AUTH data.
pub fn sign_auth(
    key: &PrivateKey,
    peer_hashes: &[u16],
    octets: &[u8],
) -> Result<(u8, Vec<u8>), AuthError> {
    let rng = ring::rand::SystemRandom::new();
    let fail = |e: ring::error::Unspecified| AuthError::Signature(format!("signing failed ({e})"));
    let rfc7427 = |algid: &[u8], sig: &[u8]| {
        let mut data = vec![algid.len() as u8];
        data.extend_from_slice(algid);
        data.extend_from_slice(sig);
        (method::DIGITAL_SIGNATURE, data)
    };
    let has = |h: u16| peer_hashes.contains(&h);
    if peer_hashes.is_empty() {
        return match key {
            PrivateKey::EcdsaP256(k) => Ok((method::ECDSA_P256, ecdsa_fixed(k, octets, &rng)?)),
            PrivateKey::EcdsaP384(k) => Ok((method::ECDSA_P384, ecdsa_fixed(k, octets, &rng)?)),
            PrivateKey::Rsa(_) => Err(AuthError::Signature(
                "the peer did not announce RFC 7427 hash algorithms, and RSA's classic method needs SHA-1 signatures, which espo does not make".into(),
            )),
            PrivateKey::Ed25519(_) => Err(AuthError::Signature(
                "Ed25519 needs RFC 7427 (SIGNATURE_HASH_ALGORITHMS), which the peer did not announce".into(),
            )),
        };
    }
    match key {
        PrivateKey::Ed25519(k) => {
            if !has(HashAlgorithm::IDENTITY) {
                return Err(AuthError::Signature(
                    "the peer does not take Ed25519 signatures (no hash algorithm \"identity\")"
                        .into(),
                ));
            }
            Ok(rfc7427(algid::ED25519, k.sign(octets).as_ref()))
        }
        PrivateKey::EcdsaP256(k) | PrivateKey::EcdsaP384(k) => {
            let algid = if has(HashAlgorithm::SHA2_256) && matches!(key, PrivateKey::EcdsaP256(_)) {
                algid::ECDSA_SHA256
            } else if has(HashAlgorithm::SHA2_384) && matches!(key, PrivateKey::EcdsaP384(_)) {
                algid::ECDSA_SHA384
            } else {
                return Err(AuthError::Signature(
                    "no hash algorithm in common with the peer for this ECDSA key".into(),
                ));
            };
            let sig = k.sign(&rng, octets).map_err(fail)?;
            Ok(rfc7427(algid, sig.as_ref()))
        }
        PrivateKey::Rsa(k) => {
            // RSA-PSS where SHA-256 is shared (RFC 7427 recommends PSS), PKCS#1 v1.5 with
            // the longer hashes otherwise.
            let (padding, algid): (&'static dyn signature::RsaEncoding, &[u8]) =
                if has(HashAlgorithm::SHA2_256) {
                    (&signature::RSA_PSS_SHA256, algid::RSA_PSS_SHA256)
                } else if has(HashAlgorithm::SHA2_384) {
                    (&signature::RSA_PKCS1_SHA384, algid::RSA_SHA384)
                } else if has(HashAlgorithm::SHA2_512) {
                    (&signature::RSA_PKCS1_SHA512, algid::RSA_SHA512)
                } else {
                    return Err(AuthError::Signature(
                        "no SHA-2 hash algorithm in common with the peer".into(),
                    ));
                };
            let mut sig = vec![0u8; k.public().modulus_len()];
            k.sign(padding, &rng, octets, &mut sig).map_err(fail)?;
            Ok(rfc7427(algid, &sig))
        }
    }
}

/// A fixed-size (r | s) ECDSA signature (RFC 4754) with the key pair's own private key.
fn ecdsa_fixed(
    key: &signature::EcdsaKeyPair,
    octets: &[u8],
    rng: &ring::rand::SystemRandom,
) -> Result<Vec<u8>, AuthError> {
    // The key pair signs in ASN.1 form; RFC 4754 wants r | s, each the curve's size.
    let der = key
        .sign(rng, octets)
        .map_err(|e| AuthError::Signature(format!("signing failed ({e})")))?;
    let size = (key.public_key().as_ref().len() - 1) / 2;
    der::ecdsa_der_to_fixed(der.as_ref(), size).map_err(AuthError::Signature)
}

/// Verifies an AUTH payload made with a signature. Returns the scheme's name.
pub fn verify_auth(
    key: &PublicKey,
    method: u8,
    data: &[u8],
    octets: &[u8],
) -> Result<&'static str, AuthError> {
    let bad = |why: &str| AuthError::Signature(why.to_string());
    let (alg, name, sig): (
        &'static dyn signature::VerificationAlgorithm,
        &'static str,
        &[u8],
    ) = match method {
        method::ECDSA_P256 => (
            &signature::ECDSA_P256_SHA256_FIXED,
            "ECDSA P-256 SHA-256 (RFC 4754)",
            data,
        ),
        method::ECDSA_P384 => (
            &signature::ECDSA_P384_SHA384_FIXED,
            "ECDSA P-384 SHA-384 (RFC 4754)",
            data,
        ),
        method::RSA => (
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "RSA PKCS#1 v1.5 SHA-1",
            data,
        ),
        method::DIGITAL_SIGNATURE => {
            let len = *data.first().ok_or_else(|| bad("empty AUTH data"))? as usize;
            let algid = data
                .get(1..1 + len)
                .ok_or_else(|| bad("AlgorithmIdentifier truncated"))?;
            let sig = &data[1 + len..];
            let (alg, name) = rfc7427_algorithm(algid, key)?;
            (alg, name, sig)
        }
        m => {
            return Err(AuthError::Signature(format!(
                "AUTH method {m} is not supported"
            )));
        }
    };
    let (key_bytes, kind_ok) = match (key, method) {
        (PublicKey::EcdsaP256(k), method::ECDSA_P256) => (k, true),
        (PublicKey::EcdsaP384(k), method::ECDSA_P384) => (k, true),
        (PublicKey::Rsa(k), method::RSA) => (k, true),
        (PublicKey::Rsa(k), method::DIGITAL_SIGNATURE)
        | (PublicKey::EcdsaP256(k), method::DIGITAL_SIGNATURE)
        | (PublicKey::EcdsaP384(k), method::DIGITAL_SIGNATURE)
        | (PublicKey::Ed25519(k), method::DIGITAL_SIGNATURE) => (k, true),
        (PublicKey::Rsa(k), _)
        | (PublicKey::EcdsaP256(k), _)
        | (PublicKey::EcdsaP384(k), _)
        | (PublicKey::Ed25519(k), _) => (k, false),
    };
    if !kind_ok {
        return Err(bad("the AUTH method does not fit the certificate's key"));
    }
    signature::UnparsedPublicKey::new(alg, key_bytes)
        .verify(octets, sig)
        .map_err(|_| bad("does not verify under the certificate's key"))?;
    Ok(name)
}

fn rfc7427_algorithm(
    algid: &[u8],
    key: &PublicKey,
) -> Result<(&'static dyn signature::VerificationAlgorithm, &'static str), AuthError> {
    let mismatch = || {
        AuthError::Signature("the signature's algorithm does not fit the certificate's key".into())
    };
    let r: (&'static dyn signature::VerificationAlgorithm, &'static str) = match algid {
        a if a == algid::ECDSA_SHA256 => match key {
            PublicKey::EcdsaP256(_) => (&signature::ECDSA_P256_SHA256_ASN1, "ECDSA P-256 SHA-256"),
            PublicKey::EcdsaP384(_) => (&signature::ECDSA_P384_SHA256_ASN1, "ECDSA P-384 SHA-256"),
            _ => return Err(mismatch()),
        },
        a if a == algid::ECDSA_SHA384 => match key {
            PublicKey::EcdsaP256(_) => (&signature::ECDSA_P256_SHA384_ASN1, "ECDSA P-256 SHA-384"),
            PublicKey::EcdsaP384(_) => (&signature::ECDSA_P384_SHA384_ASN1, "ECDSA P-384 SHA-384"),
            _ => return Err(mismatch()),
        },
        a if a == algid::ED25519 => match key {
            PublicKey::Ed25519(_) => (&signature::ED25519, "Ed25519"),
            _ => return Err(mismatch()),
        },
        a if a == algid::RSA_SHA256 => (
            &signature::RSA_PKCS1_2048_8192_SHA256,
            "RSA PKCS#1 v1.5 SHA-256",
        ),
        a if a == algid::RSA_SHA384 => (
            &signature::RSA_PKCS1_2048_8192_SHA384,
            "RSA PKCS#1 v1.5 SHA-384",
        ),
        a if a == algid::RSA_SHA512 => (
            &signature::RSA_PKCS1_2048_8192_SHA512,
            "RSA PKCS#1 v1.5 SHA-512",
        ),
        a if contains(a, algid::PSS_OID) => {
            if !matches!(key, PublicKey::Rsa(_)) {
                return Err(mismatch());
            }
            // The hash named in the parameters (the same one for MGF1, as strongSwan and
            // OpenSSL write them).
            if contains(a, algid::SHA512_OID) {
                (&signature::RSA_PSS_2048_8192_SHA512, "RSA-PSS SHA-512")
            } else if contains(a, algid::SHA384_OID) {
                (&signature::RSA_PSS_2048_8192_SHA384, "RSA-PSS SHA-384")
            } else if contains(a, algid::SHA256_OID) {
                (&signature::RSA_PSS_2048_8192_SHA256, "RSA-PSS SHA-256")
            } else {
                return Err(AuthError::Signature(
                    "RSA-PSS with a hash espo does not take".into(),
                ));
            }
        }
        _ => {
            return Err(AuthError::Signature(
                "an RFC 7427 AlgorithmIdentifier espo does not take".into(),
            ));
        }
    };
    // An RSA scheme needs an RSA key (the ECDSA and Ed25519 arms checked theirs).
    if r.1.starts_with("RSA") != matches!(key, PublicKey::Rsa(_)) {
        return Err(mismatch());
    }
    Ok(r)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
