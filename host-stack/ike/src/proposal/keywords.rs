//! strongSwan's algorithm keywords: those espo implements, and the names of those it
//! does not, so a configuration naming one is told it is unsupported rather than unknown.

use crate::wire::{DhGroup, EncrId, Esn, IntegId, PrfId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Algorithm {
    Encr(EncrId, Option<u16>),
    Integ(IntegId),
    Prf(PrfId),
    Dh(DhGroup),
    Esn(Esn),
}

pub(super) enum Keyword {
    Supported(Algorithm),
    Unsupported,
    Unknown,
}

/// Keywords espo implements, with their meaning.
const SUPPORTED: &[(&str, Algorithm)] = &[
    ("aes", Algorithm::Encr(EncrId::AesCbc, Some(128))),
    ("aes128", Algorithm::Encr(EncrId::AesCbc, Some(128))),
    ("aes256", Algorithm::Encr(EncrId::AesCbc, Some(256))),
    ("aes128gcm16", Algorithm::Encr(EncrId::AesGcm16, Some(128))),
    ("aes128gcm128", Algorithm::Encr(EncrId::AesGcm16, Some(128))),
    ("aes128gcm", Algorithm::Encr(EncrId::AesGcm16, Some(128))),
    ("aes256gcm16", Algorithm::Encr(EncrId::AesGcm16, Some(256))),
    ("aes256gcm128", Algorithm::Encr(EncrId::AesGcm16, Some(256))),
    ("aes256gcm", Algorithm::Encr(EncrId::AesGcm16, Some(256))),
    (
        "chacha20poly1305",
        Algorithm::Encr(EncrId::ChaCha20Poly1305, None),
    ),
    ("sha", Algorithm::Integ(IntegId::HmacSha1_96)),
    ("sha1", Algorithm::Integ(IntegId::HmacSha1_96)),
    ("sha256", Algorithm::Integ(IntegId::HmacSha256_128)),
    ("sha2_256", Algorithm::Integ(IntegId::HmacSha256_128)),
    ("sha384", Algorithm::Integ(IntegId::HmacSha384_192)),
    ("sha2_384", Algorithm::Integ(IntegId::HmacSha384_192)),
    ("sha512", Algorithm::Integ(IntegId::HmacSha512_256)),
    ("sha2_512", Algorithm::Integ(IntegId::HmacSha512_256)),
    ("prfsha1", Algorithm::Prf(PrfId::HmacSha1)),
    ("prfsha256", Algorithm::Prf(PrfId::HmacSha256)),
    ("prfsha384", Algorithm::Prf(PrfId::HmacSha384)),
    ("prfsha512", Algorithm::Prf(PrfId::HmacSha512)),
    ("modp2048", Algorithm::Dh(DhGroup::Modp2048)),
    ("modp3072", Algorithm::Dh(DhGroup::Modp3072)),
    ("ecp256", Algorithm::Dh(DhGroup::Ecp256)),
    ("ecp384", Algorithm::Dh(DhGroup::Ecp384)),
    ("x25519", Algorithm::Dh(DhGroup::Curve25519)),
    ("curve25519", Algorithm::Dh(DhGroup::Curve25519)),
    ("esn", Algorithm::Esn(Esn::Yes)),
    ("noesn", Algorithm::Esn(Esn::No)),
];

/// strongSwan keywords (5.9) espo does not implement.
const UNSUPPORTED: &[&str] = &[
    "null",
    "des",
    "3des",
    "aes192",
    "aes128ctr",
    "aes192ctr",
    "aes256ctr",
    "aes192gcm8",
    "aes192gcm64",
    "aes192gcm12",
    "aes192gcm96",
    "aes192gcm16",
    "aes192gcm128",
    "aes192gcm",
    "aes128gcm8",
    "aes128gcm64",
    "aes128gcm12",
    "aes128gcm96",
    "aes256gcm8",
    "aes256gcm64",
    "aes256gcm12",
    "aes256gcm96",
    "aes128gmac",
    "aes192gmac",
    "aes256gmac",
    "chacha20poly1305compat",
    "blowfish",
    "blowfish128",
    "blowfish192",
    "blowfish256",
    "camellia",
    "camellia128",
    "camellia192",
    "camellia256",
    "cast128",
    "serpent",
    "serpent128",
    "serpent192",
    "serpent256",
    "twofish",
    "twofish128",
    "twofish192",
    "twofish256",
    "sha1_160",
    "sha256_96",
    "sha2_256_96",
    "md5",
    "md5_128",
    "aesxcbc",
    "camelliaxcbc",
    "aescmac",
    "prfmd5",
    "prfaesxcbc",
    "prfcamelliaxcbc",
    "prfaescmac",
    "none",
    "modpnone",
    "modpnull",
    "modp768",
    "modp1024",
    "modp1536",
    "modp4096",
    "modp6144",
    "modp8192",
    "ecp192",
    "ecp224",
    "ecp521",
    "modp1024s160",
    "modp2048s224",
    "modp2048s256",
    "ecp224bp",
    "ecp256bp",
    "ecp384bp",
    "ecp512bp",
    "curve448",
    "x448",
    "ntru112",
    "ntru128",
    "ntru192",
    "ntru256",
    "newhope128",
];

/// Families of strongSwan keywords with a key size and ICV length in the name:
/// AES-CCM, Camellia CTR and CCM.
const UNSUPPORTED_PREFIXES: &[&str] = &[
    "aes128ccm",
    "aes192ccm",
    "aes256ccm",
    "camellia128c",
    "camellia192c",
    "camellia256c",
];

pub(super) fn lookup(word: &str) -> Keyword {
    let lower = word.to_ascii_lowercase();
    if let Some((_, algorithm)) = SUPPORTED.iter().find(|(name, _)| *name == lower) {
        return Keyword::Supported(*algorithm);
    }
    if UNSUPPORTED.contains(&lower.as_str())
        || UNSUPPORTED_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        return Keyword::Unsupported;
    }
    Keyword::Unknown
}

/// The PRF strongSwan takes for an IKE proposal that names only an integrity algorithm.
pub(super) fn prf_for(integ: IntegId) -> Option<PrfId> {
    match integ {
        IntegId::HmacSha1_96 => Some(PrfId::HmacSha1),
        IntegId::HmacSha256_128 => Some(PrfId::HmacSha256),
        IntegId::HmacSha384_192 => Some(PrfId::HmacSha384),
        IntegId::HmacSha512_256 => Some(PrfId::HmacSha512),
        _ => None,
    }
}

/// The first keyword for an algorithm, or a `name(number)` form for one without keyword.
fn name_of(algorithm: Algorithm, fallback: impl FnOnce() -> String) -> String {
    SUPPORTED
        .iter()
        .filter(|(name, _)| !matches!(*name, "aes" | "sha"))
        .find(|(_, a)| *a == algorithm)
        .map_or_else(fallback, |(name, _)| (*name).to_string())
}

pub(super) fn encr_name(id: EncrId, bits: Option<u16>) -> String {
    name_of(Algorithm::Encr(id, bits), || {
        format!("encr{}_{}", u16::from(id), bits.unwrap_or(0))
    })
}

pub(super) fn integ_name(id: IntegId) -> String {
    name_of(Algorithm::Integ(id), || format!("integ{}", u16::from(id)))
}

pub(super) fn prf_name(id: PrfId) -> String {
    name_of(Algorithm::Prf(id), || format!("prf{}", u16::from(id)))
}

pub(super) fn dh_name(group: DhGroup) -> String {
    name_of(Algorithm::Dh(group), || format!("dh{}", u16::from(group)))
}

pub(super) fn esn_name(esn: Esn) -> String {
    name_of(Algorithm::Esn(esn), || format!("esn{}", u16::from(esn)))
}
