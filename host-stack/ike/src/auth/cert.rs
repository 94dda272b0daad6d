//! X.509 certificates: reading them (`x509-parser`), matching a peer's identity against
//! one (its subject for a distinguished name, its subjectAltName for an FQDN, e-mail
//! address or IP address, as strongSwan does), and validating a chain to a trusted CA.
//!
//! The validation is espo's own, on `x509-parser`'s parsing and `ring`'s signature checks:
//! `webpki` validates for TLS (server names, extended key usage) and does not fit IKE's
//! identities. It checks: validity dates of every certificate in the chain; every issuer
//! a CA (basicConstraints) allowed to sign certificates (keyUsage, when present) within
//! its path length; the end entity allowed to sign (digitalSignature, when keyUsage is
//! present); no critical extension espo does not understand; every signature, none with
//! SHA-1. There is no revocation checking (CRL, OCSP) and no name constraints (a critical
//! one is refused).

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{AuthError, Identity, PublicKey};

/// Longest chain followed, the end entity and its trust anchor included.
const MAX_DEPTH: usize = 8;

/// Signature algorithms refused in certificates (SHA-1).
const SHA1_SIGNATURES: &[&str] = &[
    "1.2.840.113549.1.1.5",
    "1.3.14.3.2.29",
    "1.2.840.10045.4.1",
    "1.2.840.10040.4.3",
];

/// The first PEM block of `text`: its label and content.
pub(super) fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|e| format!("not PEM ({e})"))?;
    Ok((pem.label, pem.contents))
}

/// A certificate (DER), parsed on demand.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
}

impl core::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Certificate({})", self.subject())
    }
}

fn err(why: impl Into<String>) -> AuthError {
    AuthError::Certificate(why.into())
}

impl Certificate {
    pub fn from_der(der: &[u8]) -> Result<Certificate, AuthError> {
        let (rest, _) = X509Certificate::from_der(der)
            .map_err(|e| err(format!("not an X.509 certificate ({e})")))?;
        if !rest.is_empty() {
            return Err(err("bytes after the certificate"));
        }
        Ok(Certificate { der: der.to_vec() })
    }

    pub fn from_pem(text: &str) -> Result<Certificate, AuthError> {
        let (label, der) = pem_block(text).map_err(err)?;
        if label != "CERTIFICATE" {
            return Err(err(format!("a PEM block `{label}`, not a CERTIFICATE")));
        }
        Certificate::from_der(&der)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    fn parsed(&self) -> X509Certificate<'_> {
        X509Certificate::from_der(&self.der)
            .expect("checked when made")
            .1
    }

    /// The subject, as text.
    pub fn subject(&self) -> String {
        self.parsed().subject().to_string()
    }

    /// The subject's DER.
    pub fn subject_der(&self) -> Vec<u8> {
        self.parsed().subject().as_raw().to_vec()
    }

    /// The certificate's public key.
    pub fn public_key(&self) -> Result<PublicKey, AuthError> {
        let cert = self.parsed();
        let spki = cert.public_key();
        let key = spki.subject_public_key.data.to_vec();
        let alg = spki.algorithm.algorithm.to_id_string();
        match alg.as_str() {
            "1.2.840.113549.1.1.1" => Ok(PublicKey::Rsa(key)),
            "1.3.101.112" => Ok(PublicKey::Ed25519(key)),
            "1.2.840.10045.2.1" => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => Ok(PublicKey::EcdsaP256(key)),
                    "1.3.132.0.34" => Ok(PublicKey::EcdsaP384(key)),
                    other => Err(err(format!(
                        "an EC key on curve {other}, not P-256 or P-384"
                    ))),
                }
            }
            other => Err(err(format!("a public key of algorithm {other}"))),
        }
    }

    /// Whether the certificate vouches for `id`: a distinguished name is its subject; an
    /// FQDN, e-mail address or IP address is one of its subjectAltNames.
    pub fn matches_identity(&self, id: &Identity) -> bool {
        let cert = self.parsed();
        if let Identity::Dn(der) = id {
            return super::der::same(cert.subject().as_raw(), der);
        }
        let Ok(Some(san)) = cert.subject_alternative_name() else {
            return false;
        };
        san.value.general_names.iter().any(|name| match (name, id) {
            (GeneralName::DNSName(n), Identity::Fqdn(f)) => n.eq_ignore_ascii_case(f),
            (GeneralName::RFC822Name(n), Identity::Rfc822(e)) => n.eq_ignore_ascii_case(e),
            (GeneralName::IPAddress(bytes), Identity::Ipv4(a)) => *bytes == a.octets(),
            (GeneralName::IPAddress(bytes), Identity::Ipv6(a)) => *bytes == a.octets(),
            _ => false,
        })
    }
}

/// The checks that apply to every certificate of a chain.
fn check_common(cert: &X509Certificate<'_>, now_unix: u64, what: &str) -> Result<(), AuthError> {
    let now = i64::try_from(now_unix).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(err(format!("{what} '{}' is not valid yet", cert.subject())));
    }
    if now > validity.not_after.timestamp() {
        return Err(err(format!("{what} '{}' has expired", cert.subject())));
    }
    for ext in cert.extensions() {
        if ext.critical
            && matches!(
                ext.parsed_extension(),
                ParsedExtension::UnsupportedExtension { .. }
                    | ParsedExtension::NameConstraints(_)
                    | ParsedExtension::ParseError { .. }
            )
        {
            return Err(err(format!(
                "{what} '{}' has a critical extension espo does not check ({})",
                cert.subject(),
                ext.oid.to_id_string()
            )));
        }
    }
    Ok(())
}

/// Validates `ee` up to one of `trusted`, through `intermediates` (in any order), at time
/// `now_unix` (seconds since the Unix epoch).
pub fn validate_chain(
    ee: &Certificate,
    intermediates: &[Certificate],
    trusted: &[Certificate],
    now_unix: u64,
) -> Result<(), AuthError> {
    let leaf = ee.parsed();
    check_common(&leaf, now_unix, "the certificate")?;
    if let Ok(Some(ku)) = leaf.key_usage()
        && !ku.value.digital_signature()
    {
        return Err(err(format!(
            "the certificate '{}' may not sign (no digitalSignature in its keyUsage)",
            leaf.subject()
        )));
    }
    let mut current = ee.clone();
    // Certificates below the issuer being checked, not counting the end entity (for the
    // path length constraint).
    let mut below = 0u32;
    for _ in 0..MAX_DEPTH {
        let cert = current.parsed();
        let sig_alg = cert.signature_algorithm.algorithm.to_id_string();
        if SHA1_SIGNATURES.contains(&sig_alg.as_str()) {
            return Err(err(format!(
                "'{}' is signed with SHA-1, which espo refuses",
                cert.subject()
            )));
        }
        let issuer_raw = cert.issuer().as_raw();
        let candidates = trusted
            .iter()
            .map(|c| (c, true))
            .chain(intermediates.iter().map(|c| (c, false)));
        let mut found = None;
        let mut last_problem = None;
        for (candidate, is_trusted) in candidates {
            let issuer = candidate.parsed();
            if issuer.subject().as_raw() != issuer_raw {
                continue;
            }
            match cert.verify_signature(Some(issuer.public_key())) {
                Ok(()) => {
                    found = Some((candidate.clone(), is_trusted));
                    break;
                }
                Err(e) => {
                    last_problem = Some(format!(
                        "the signature of '{}' does not verify under '{}' ({e})",
                        cert.subject(),
                        issuer.subject()
                    ))
                }
            }
        }
        let Some((issuer_cert, is_trusted)) = found else {
            return Err(err(last_problem.unwrap_or_else(|| {
                format!(
                    "no trusted CA issued '{}' (its issuer '{}' is not among the cacerts)",
                    cert.subject(),
                    cert.issuer()
                )
            })));
        };
        let issuer = issuer_cert.parsed();
        check_common(&issuer, now_unix, "the CA certificate")?;
        match issuer.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {
                if let Some(max) = bc.value.path_len_constraint
                    && below > max
                {
                    return Err(err(format!(
                        "the chain is longer than '{}' allows (path length {max})",
                        issuer.subject()
                    )));
                }
            }
            _ => {
                return Err(err(format!(
                    "'{}' issued '{}' but is not a CA",
                    issuer.subject(),
                    cert.subject()
                )));
            }
        }
        if let Ok(Some(ku)) = issuer.key_usage()
            && !ku.value.key_cert_sign()
        {
            return Err(err(format!(
                "'{}' may not sign certificates (no keyCertSign)",
                issuer.subject()
            )));
        }
        if is_trusted {
            return Ok(());
        }
        if issuer_cert.der == current.der {
            break;
        }
        below += 1;
        current = issuer_cert;
    }
    Err(err("no path to a trusted CA within 8 certificates"))
}
