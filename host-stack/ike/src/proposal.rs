//! Proposals in strongSwan's notation (`aes128gcm16-prfsha256-x25519`), their SA payload
//! form, and their negotiation (RFC 7296 §2.7, §3.3): the responder picks from an offer in
//! its own configured order, the initiator checks the answer against its offer.

mod keywords;
mod select;
#[cfg(test)]
mod tests;

use core::fmt;

pub use select::{Chosen, Selected, accept_response, select};

use crate::wire::sa::{ProposalRepr, TransformRepr};
use crate::wire::{DhGroup, EncrId, Esn, IntegId, PrfId, ProtocolId, TransformType};
use keywords::{Algorithm, Keyword};

/// Why a proposal string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("unknown algorithm keyword '{keyword}' in proposal '{proposal}'")]
    UnknownKeyword { keyword: String, proposal: String },
    #[error("algorithm '{keyword}' in proposal '{proposal}' is not implemented by espo")]
    UnsupportedKeyword { keyword: String, proposal: String },
    #[error("'{keyword}' does not belong in an {protocol} proposal ('{proposal}')")]
    NotForProtocol {
        keyword: String,
        protocol: &'static str,
        proposal: String,
    },
    #[error("proposal '{proposal}' has no encryption algorithm")]
    MissingEncryption { proposal: String },
    #[error("proposal '{proposal}' has neither an integrity algorithm nor an AEAD")]
    MissingIntegrity { proposal: String },
    #[error(
        "proposal '{proposal}' combines an AEAD with an integrity algorithm or a non-AEAD cipher"
    )]
    AeadMixed { proposal: String },
    #[error("IKE proposal '{proposal}' has no PRF (with an AEAD it must name one, e.g. prfsha256)")]
    MissingPrf { proposal: String },
    #[error("IKE proposal '{proposal}' has no key exchange method")]
    MissingDh { proposal: String },
    #[error("empty proposal list")]
    Empty,
}

/// One proposal: for each transform type, the algorithms in order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    pub protocol: ProtocolId,
    /// Encryption algorithms with their key length in bits (`None` where the algorithm has
    /// a single key length and no Key Length attribute).
    pub encryption: Vec<(EncrId, Option<u16>)>,
    pub integrity: Vec<IntegId>,
    /// PRFs (IKE only).
    pub prf: Vec<PrfId>,
    /// Key exchange methods: mandatory for IKE; for ESP, a group means PFS.
    pub dh: Vec<DhGroup>,
    /// Extended sequence numbers (ESP only; `[No]` when the string names none).
    pub esn: Vec<Esn>,
}

/// strongSwan 5.9's default proposals (`proposals = default`), restricted to the
/// algorithms espo implements (ESP without HMAC-SHA-1, which its engines do not run) and
/// kept in strongSwan's order: the non-AEAD proposal first,
/// then the AEAD one.
const DEFAULT_IKE: [&str; 2] = [
    "aes128-aes256-sha256-sha384-sha512-sha1-prfsha256-prfsha384-prfsha512-prfsha1-x25519-ecp256-ecp384-modp3072-modp2048",
    "aes128gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-prfsha1-x25519-ecp256-ecp384-modp3072-modp2048",
];
const DEFAULT_ESP: [&str; 2] = [
    "aes128-aes256-sha256-sha384-sha512-noesn",
    "aes128gcm16-aes256gcm16-noesn",
];

fn protocol_name(protocol: ProtocolId) -> &'static str {
    match protocol {
        ProtocolId::Ike => "IKE",
        ProtocolId::Esp => "ESP",
        ProtocolId::Ah => "AH",
        ProtocolId::Unknown(_) => "unknown",
    }
}

impl Proposal {
    /// Parses an IKE proposal. Without a PRF, the PRFs matching the integrity algorithms
    /// are taken (as strongSwan does); an AEAD proposal must name its PRF.
    pub fn parse_ike(text: &str) -> Result<Proposal, ProposalError> {
        Proposal::parse(text, ProtocolId::Ike)
    }

    /// Parses an ESP proposal. A key exchange method in it asks for PFS; without `esn` or
    /// `noesn` it means `noesn`.
    pub fn parse_esp(text: &str) -> Result<Proposal, ProposalError> {
        Proposal::parse(text, ProtocolId::Esp)
    }

    fn parse(text: &str, protocol: ProtocolId) -> Result<Proposal, ProposalError> {
        let mut p = Proposal {
            protocol,
            encryption: Vec::new(),
            integrity: Vec::new(),
            prf: Vec::new(),
            dh: Vec::new(),
            esn: Vec::new(),
        };
        let proposal = || text.to_string();
        for word in text.split('-').map(str::trim) {
            let algorithm = match keywords::lookup(word) {
                Keyword::Supported(a) => a,
                Keyword::Unsupported => {
                    return Err(ProposalError::UnsupportedKeyword {
                        keyword: word.into(),
                        proposal: proposal(),
                    });
                }
                Keyword::Unknown => {
                    return Err(ProposalError::UnknownKeyword {
                        keyword: word.into(),
                        proposal: proposal(),
                    });
                }
            };
            let wrong = |p: ProtocolId| ProposalError::NotForProtocol {
                keyword: word.into(),
                protocol: protocol_name(p),
                proposal: proposal(),
            };
            match algorithm {
                Algorithm::Encr(id, bits) => push_unique(&mut p.encryption, (id, bits)),
                Algorithm::Integ(id) => push_unique(&mut p.integrity, id),
                Algorithm::Prf(id) if protocol == ProtocolId::Ike => push_unique(&mut p.prf, id),
                Algorithm::Prf(_) => return Err(wrong(protocol)),
                Algorithm::Dh(group) => push_unique(&mut p.dh, group),
                Algorithm::Esn(esn) if protocol == ProtocolId::Esp => push_unique(&mut p.esn, esn),
                Algorithm::Esn(_) => return Err(wrong(protocol)),
            }
        }
        if p.encryption.is_empty() {
            return Err(ProposalError::MissingEncryption {
                proposal: proposal(),
            });
        }
        let aead = p.encryption.iter().filter(|(id, _)| id.is_aead()).count();
        if aead > 0 && (aead < p.encryption.len() || !p.integrity.is_empty()) {
            return Err(ProposalError::AeadMixed {
                proposal: proposal(),
            });
        }
        if aead == 0 && p.integrity.is_empty() {
            return Err(ProposalError::MissingIntegrity {
                proposal: proposal(),
            });
        }
        if protocol == ProtocolId::Ike {
            if p.prf.is_empty() {
                if aead > 0 {
                    return Err(ProposalError::MissingPrf {
                        proposal: proposal(),
                    });
                }
                for integ in p.integrity.clone() {
                    if let Some(prf) = keywords::prf_for(integ) {
                        push_unique(&mut p.prf, prf);
                    }
                }
            }
            if p.dh.is_empty() {
                return Err(ProposalError::MissingDh {
                    proposal: proposal(),
                });
            }
        } else if p.esn.is_empty() {
            p.esn.push(Esn::No);
        }
        Ok(p)
    }

    /// Parses configured proposals: each entry one proposal or several separated by
    /// commas, `default` standing for strongSwan's default proposals.
    pub fn parse_list(
        texts: &[String],
        protocol: ProtocolId,
    ) -> Result<Vec<Proposal>, ProposalError> {
        let mut out = Vec::new();
        for text in texts.iter().flat_map(|t| t.split(',')).map(str::trim) {
            if text == "default" {
                let defaults = if protocol == ProtocolId::Ike {
                    DEFAULT_IKE
                } else {
                    DEFAULT_ESP
                };
                for d in defaults {
                    out.push(Proposal::parse(d, protocol)?);
                }
            } else {
                out.push(Proposal::parse(text, protocol)?);
            }
        }
        if out.is_empty() {
            return Err(ProposalError::Empty);
        }
        Ok(out)
    }

    /// The proposal without key exchange methods: a CHILD_SA created with the IKE SA
    /// (IKE_AUTH) has no KE payload, so its proposals carry no DH transform.
    pub fn without_dh(&self) -> Proposal {
        Proposal {
            dh: Vec::new(),
            ..self.clone()
        }
    }

    /// The proposal as an SA payload proposal, transforms in strongSwan's order (encryption,
    /// integrity, PRF, key exchange, ESN).
    pub fn to_wire(&self, number: u8, spi: &[u8]) -> ProposalRepr {
        let mut transforms = Vec::new();
        for &(id, bits) in &self.encryption {
            transforms.push(TransformRepr::new(TransformType::Encr, id.into(), bits));
        }
        for &id in &self.integrity {
            transforms.push(TransformRepr::new(TransformType::Integ, id.into(), None));
        }
        for &id in &self.prf {
            transforms.push(TransformRepr::new(TransformType::Prf, id.into(), None));
        }
        for &group in &self.dh {
            transforms.push(TransformRepr::new(TransformType::Dh, group.into(), None));
        }
        for &esn in &self.esn {
            transforms.push(TransformRepr::new(TransformType::Esn, esn.into(), None));
        }
        ProposalRepr {
            number,
            protocol: self.protocol,
            spi: spi.to_vec(),
            transforms,
        }
    }

    /// A received proposal in this form, with every transform kept (also those espo does
    /// not implement, as `Unknown` values). `None` for a transform type outside 1..=5 or
    /// a transform with attributes other than Key Length.
    pub fn from_wire(repr: &ProposalRepr) -> Option<Proposal> {
        let mut p = Proposal {
            protocol: repr.protocol,
            encryption: Vec::new(),
            integrity: Vec::new(),
            prf: Vec::new(),
            dh: Vec::new(),
            esn: Vec::new(),
        };
        for t in &repr.transforms {
            if !t.other_attributes.is_empty()
                || (t.key_bits.is_some() && t.kind != TransformType::Encr)
            {
                return None;
            }
            match t.kind {
                TransformType::Encr => p.encryption.push((EncrId::from(t.id), t.key_bits)),
                TransformType::Integ => p.integrity.push(IntegId::from(t.id)),
                TransformType::Prf => p.prf.push(PrfId::from(t.id)),
                TransformType::Dh => p.dh.push(DhGroup::from(t.id)),
                TransformType::Esn => p.esn.push(Esn::from(t.id)),
                TransformType::Unknown(_) => return None,
            }
        }
        Some(p)
    }
}

/// The initiator's IKE_SA_INIT offer: in each proposal that has `ke_group` (the group of
/// its KE payload), that group moved to the front; proposals without it moved to the back,
/// in their order (as strongSwan orders its offer).
pub fn promote_dh(proposals: &[Proposal], ke_group: DhGroup) -> Vec<Proposal> {
    let (mut with, without): (Vec<Proposal>, Vec<Proposal>) = proposals
        .iter()
        .cloned()
        .partition(|p| p.dh.contains(&ke_group));
    for p in &mut with {
        p.dh.retain(|&g| g != ke_group);
        p.dh.insert(0, ke_group);
    }
    with.extend(without);
    with
}

/// [`Proposal::parse_list`].
pub fn parse_list(texts: &[String], protocol: ProtocolId) -> Result<Vec<Proposal>, ProposalError> {
    Proposal::parse_list(texts, protocol)
}

fn push_unique<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
}

impl fmt::Display for Proposal {
    /// strongSwan's notation; `parse_ike`/`parse_esp` read it back to the same proposal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = Vec::new();
        words.extend(
            self.encryption
                .iter()
                .map(|&(id, bits)| keywords::encr_name(id, bits)),
        );
        words.extend(self.integrity.iter().map(|&id| keywords::integ_name(id)));
        words.extend(self.prf.iter().map(|&id| keywords::prf_name(id)));
        words.extend(self.dh.iter().map(|&g| keywords::dh_name(g)));
        if self.esn != [Esn::No] {
            words.extend(self.esn.iter().map(|&e| keywords::esn_name(e)));
        }
        f.write_str(&words.join("-"))
    }
}
