//! A message's payloads as the exchanges read and write them: at most one of each kind
//! that may appear once, every notification and deletion in order. The only place that
//! knows the wire module's payload types.

use crate::ts::TsRange;
use crate::wire::{self, NotifyType, Payload, PayloadType};

/// A notification: its type, the SPI it names (empty for the IKE SA) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notify {
    pub kind: NotifyType,
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub data: Vec<u8>,
}

/// A Delete payload: its protocol (1 the IKE SA, 3 ESP) and the SPIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delete {
    pub protocol: u8,
    pub spis: Vec<Vec<u8>>,
}

/// The payloads of one message (inside the SK payload when it is encrypted).
#[derive(Debug, Clone, Default)]
pub(crate) struct Body {
    pub sa: Option<Vec<wire::sa::ProposalRepr>>,
    /// The Diffie-Hellman group and this end's public value.
    pub ke: Option<(u16, Vec<u8>)>,
    pub nonce: Option<Vec<u8>>,
    /// The ID payload's body (IDx'), as received.
    pub id_i: Option<Vec<u8>>,
    pub id_r: Option<Vec<u8>>,
    /// CERT payloads: X.509 certificates (DER), the end entity first.
    pub certs: Vec<Vec<u8>>,
    /// Whether a CERTREQ came (or goes).
    pub certreq: bool,
    pub auth: Option<(u8, Vec<u8>)>,
    pub notifies: Vec<Notify>,
    pub deletes: Vec<Delete>,
    pub ts_i: Option<Vec<TsRange>>,
    pub ts_r: Option<Vec<TsRange>>,
}

impl Body {
    /// An INFORMATIONAL body deleting the IKE SA it travels in (RFC 7296 §3.11: protocol
    /// IKE, no SPIs).
    pub fn delete_ike() -> Body {
        Body {
            deletes: vec![Delete {
                protocol: 1,
                spis: Vec::new(),
            }],
            ..Body::default()
        }
    }

    pub fn notify(&self, kind: NotifyType) -> Option<&Notify> {
        self.notifies.iter().find(|n| n.kind == kind)
    }

    pub fn has(&self, kind: NotifyType) -> bool {
        self.notify(kind).is_some()
    }

    /// The first error notification (types below 16384).
    pub fn error(&self) -> Option<&Notify> {
        self.notifies.iter().find(|n| u16::from(n.kind) < 16384)
    }

    pub fn add_notify(&mut self, kind: NotifyType, data: Vec<u8>) {
        self.notifies.push(Notify {
            kind,
            protocol: 0,
            spi: Vec::new(),
            data,
        });
    }

    /// Reads a payload chain; a payload this end has no use for is skipped, one that appears
    /// twice where it may appear once is malformed.
    pub fn from_payloads(payloads: &[Payload]) -> Result<Body, wire::Error> {
        fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), wire::Error> {
            if slot.is_some() {
                return Err(wire::Error::Malformed);
            }
            *slot = Some(value);
            Ok(())
        }
        let mut body = Body::default();
        for payload in payloads {
            match payload {
                Payload::Sa(sa) => once(&mut body.sa, sa.proposals.clone())?,
                Payload::Ke(ke) => once(&mut body.ke, (u16::from(ke.group), ke.data.clone()))?,
                Payload::Nonce(n) => once(&mut body.nonce, n.data.clone())?,
                Payload::IdI(id) => once(&mut body.id_i, id.body())?,
                Payload::IdR(id) => once(&mut body.id_r, id.body())?,
                Payload::Cert(cert) if cert.encoding == wire::CertEncoding::X509Sig => {
                    body.certs.push(cert.data.clone());
                }
                Payload::CertReq(_) => body.certreq = true,
                Payload::Auth(auth) => {
                    once(&mut body.auth, (u8::from(auth.method), auth.data.clone()))?
                }
                Payload::Notify(n) => body.notifies.push(Notify {
                    kind: n.kind,
                    protocol: u8::from(n.protocol),
                    spi: n.spi.clone(),
                    data: n.data.clone(),
                }),
                Payload::Delete(d) => body.deletes.push(Delete {
                    protocol: u8::from(d.protocol),
                    spis: d.spis.clone(),
                }),
                Payload::TsI(ts) => once(&mut body.ts_i, valid(&ts.selectors)?)?,
                Payload::TsR(ts) => once(&mut body.ts_r, valid(&ts.selectors)?)?,
                _ => {}
            }
        }
        Ok(body)
    }

    /// The payload chain, in the order RFC 7296's exchanges list them. Fails only on an
    /// identity body that is not one (this end's own, so never in practice).
    pub fn to_payloads(&self) -> Result<Vec<Payload>, wire::Error> {
        let mut out = Vec::new();
        // Notifications that must come first (COOKIE, then the rest of the status ones
        // after the main payloads, as strongSwan orders them).
        for n in self
            .notifies
            .iter()
            .filter(|n| n.kind == NotifyType::Cookie)
        {
            out.push(notify_payload(n));
        }
        if let Some(id) = &self.id_i {
            out.push(Payload::IdI(wire::id::Repr::parse(id)?));
        }
        for cert in &self.certs {
            out.push(Payload::Cert(wire::cert::Repr {
                encoding: wire::CertEncoding::X509Sig,
                data: cert.clone(),
            }));
        }
        if let Some(id) = &self.id_r {
            out.push(Payload::IdR(wire::id::Repr::parse(id)?));
        }
        if let Some((method, data)) = &self.auth {
            out.push(Payload::Auth(wire::auth::Repr {
                method: wire::AuthMethod::from(*method),
                data: data.clone(),
            }));
        }
        if let Some(sa) = &self.sa {
            out.push(Payload::Sa(wire::sa::Repr {
                proposals: sa.clone(),
            }));
        }
        if let Some(nonce) = &self.nonce {
            out.push(Payload::Nonce(wire::nonce::Repr {
                data: nonce.clone(),
            }));
        }
        if let Some((group, data)) = &self.ke {
            out.push(Payload::Ke(wire::ke::Repr {
                group: wire::DhGroup::from(*group),
                data: data.clone(),
            }));
        }
        if let Some(ts) = &self.ts_i {
            out.push(Payload::TsI(wire::ts::Repr {
                selectors: ts.clone(),
            }));
        }
        if let Some(ts) = &self.ts_r {
            out.push(Payload::TsR(wire::ts::Repr {
                selectors: ts.clone(),
            }));
        }
        for d in &self.deletes {
            out.push(Payload::Delete(wire::delete::Repr {
                protocol: wire::ProtocolId::from(d.protocol),
                spi_size: if d.protocol == 1 { 0 } else { 4 },
                spis: d.spis.clone(),
            }));
        }
        for n in self
            .notifies
            .iter()
            .filter(|n| n.kind != NotifyType::Cookie)
        {
            out.push(notify_payload(n));
        }
        if self.certreq {
            out.push(Payload::CertReq(wire::cert::Repr {
                encoding: wire::CertEncoding::X509Sig,
                data: Vec::new(),
            }));
        }
        Ok(out)
    }
}

fn notify_payload(n: &Notify) -> Payload {
    Payload::Notify(wire::notify::Repr {
        protocol: wire::ProtocolId::from(n.protocol),
        spi: n.spi.clone(),
        kind: n.kind,
        data: n.data.clone(),
    })
}

/// Selectors as received, each checked (start not above end, one family).
fn valid(ranges: &[TsRange]) -> Result<Vec<TsRange>, wire::Error> {
    if ranges.iter().all(TsRange::is_valid) {
        Ok(ranges.to_vec())
    } else {
        Err(wire::Error::InvalidValue)
    }
}

/// The first payload type of a chain and its bytes.
pub(crate) fn encode(body: &Body) -> Result<(PayloadType, Vec<u8>), wire::Error> {
    wire::chain_to_bytes(&body.to_payloads()?)
}
