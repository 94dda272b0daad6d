//! Negotiation: the responder's choice from an offer, and the initiator's check of the
//! answer.

use super::Proposal;
use crate::wire::sa::{ProposalRepr, TransformRepr};
use crate::wire::{DhGroup, EncrId, Esn, IntegId, PrfId, ProtocolId, TransformType};

/// The algorithms of a negotiated SA: one per transform type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chosen {
    pub protocol: ProtocolId,
    pub encryption: (EncrId, Option<u16>),
    pub integrity: Option<IntegId>,
    pub prf: Option<PrfId>,
    pub dh: Option<DhGroup>,
    /// `Esn::No` for IKE, which has no ESN transform.
    pub esn: Esn,
}

/// What the responder selected: the number and SPI of the offered proposal it took, and
/// the algorithms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selected {
    pub number: u8,
    pub spi: Vec<u8>,
    pub chosen: Chosen,
}

impl Chosen {
    /// The answer's proposal: one transform per type, in strongSwan's order.
    pub fn to_wire(&self, number: u8, spi: &[u8]) -> ProposalRepr {
        let (encr, bits) = self.encryption;
        let mut transforms = vec![TransformRepr::new(TransformType::Encr, encr.into(), bits)];
        if let Some(integ) = self.integrity {
            transforms.push(TransformRepr::new(TransformType::Integ, integ.into(), None));
        }
        if let Some(prf) = self.prf {
            transforms.push(TransformRepr::new(TransformType::Prf, prf.into(), None));
        }
        if let Some(group) = self.dh {
            transforms.push(TransformRepr::new(TransformType::Dh, group.into(), None));
        }
        if self.protocol != ProtocolId::Ike {
            transforms.push(TransformRepr::new(
                TransformType::Esn,
                self.esn.into(),
                None,
            ));
        }
        ProposalRepr {
            number,
            protocol: self.protocol,
            spi: spi.to_vec(),
            transforms,
        }
    }
}

/// The first of `preferred` that `offered` holds. `Ok(None)` when neither has any,
/// `Err(())` when they have none in common or only one of them has any.
fn pick<T: Copy + PartialEq>(preferred: &[T], offered: &[T]) -> Result<Option<T>, ()> {
    match (preferred.is_empty(), offered.is_empty()) {
        (true, true) => Ok(None),
        (true, false) | (false, true) => Err(()),
        (false, false) => preferred
            .iter()
            .find(|p| offered.contains(p))
            .copied()
            .map(Some)
            .ok_or(()),
    }
}

/// An offer as lists per type; integrity "NONE" and key exchange "NONE" count as absent.
fn normalized(offer: &ProposalRepr) -> Option<Proposal> {
    let mut p = Proposal::from_wire(offer)?;
    p.integrity.retain(|&i| i != IntegId::None);
    p.dh.retain(|&g| g != DhGroup::None);
    Some(p)
}

fn choose(configured: &Proposal, offer: &Proposal) -> Option<Chosen> {
    if configured.protocol != offer.protocol {
        return None;
    }
    let encryption = pick(&configured.encryption, &offer.encryption).ok()??;
    let integrity = pick(&configured.integrity, &offer.integrity).ok()?;
    let prf = pick(&configured.prf, &offer.prf).ok()?;
    let dh = pick(&configured.dh, &offer.dh).ok()?;
    let esn = if configured.protocol == ProtocolId::Ike {
        if !offer.esn.is_empty() {
            return None;
        }
        Esn::No
    } else {
        // An ESP offer without ESN transform means no extended sequence numbers.
        let offered = if offer.esn.is_empty() {
            vec![Esn::No]
        } else {
            offer.esn.clone()
        };
        pick(&configured.esn, &offered).ok()??
    };
    Some(Chosen {
        protocol: configured.protocol,
        encryption,
        integrity,
        prf,
        dh,
        esn,
    })
}

/// The responder's choice: configured proposals in their order, each against the offered
/// proposals in theirs, and within a proposal, for each transform type, the first
/// configured algorithm the offer holds (strongSwan's `prefer_configured_proposals = yes`).
pub fn select(configured: &[Proposal], offer: &[ProposalRepr]) -> Option<Selected> {
    let offers: Vec<(&ProposalRepr, Proposal)> = offer
        .iter()
        .filter_map(|repr| normalized(repr).map(|p| (repr, p)))
        .collect();
    configured.iter().find_map(|conf| {
        offers.iter().find_map(|(repr, p)| {
            choose(conf, p).map(|chosen| Selected {
                number: repr.number,
                spi: repr.spi.clone(),
                chosen,
            })
        })
    })
}

/// The initiator's check of the responder's answer: it names one of the offered proposals
/// (`offer[number - 1]`), has exactly one transform of each type that proposal has, and
/// each is one that was offered.
pub fn accept_response(offer: &[Proposal], answer: &ProposalRepr) -> Option<Chosen> {
    let offered = offer.get(usize::from(answer.number).checked_sub(1)?)?;
    let got = normalized(answer)?;
    if got.protocol != offered.protocol {
        return None;
    }
    fn one<T: Copy + PartialEq>(got: &[T], offered: &[T]) -> Result<Option<T>, ()> {
        match (got, offered.is_empty()) {
            ([], true) => Ok(None),
            ([single], false) if offered.contains(single) => Ok(Some(*single)),
            _ => Err(()),
        }
    }
    let encryption = one(&got.encryption, &offered.encryption).ok()??;
    let integrity = one(&got.integrity, &offered.integrity).ok()?;
    let prf = one(&got.prf, &offered.prf).ok()?;
    let dh = one(&got.dh, &offered.dh).ok()?;
    let esn = if offered.protocol == ProtocolId::Ike {
        one(&got.esn, &[]).ok()?;
        Esn::No
    } else {
        one(&got.esn, &offered.esn).ok()??
    };
    Some(Chosen {
        protocol: offered.protocol,
        encryption,
        integrity,
        prf,
        dh,
        esn,
    })
}
