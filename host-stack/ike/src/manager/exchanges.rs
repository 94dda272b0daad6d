//! The exchanges, from both sides: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use espo_ipsec::crypto::{EncryptionAlgorithm, IntegrityAlgorithm, SecretKey};
use espo_ipsec::spec::Lifetime;

use crate::auth::{self, Certificate, Identity, PublicKey};
use crate::child::{DirectionKeys, NegotiatedChild};
use crate::connection::{LocalAuth, NAT_T_PORT, RemoteAuth};
use crate::crypto::{self, ChildSaKeys, ChildSuite, IkeSaKeys, IkeSuite, KeyExchange, SkKeys};
use crate::daemon::{ChildId, Event, Level, Renewal, Subsystem};
use crate::exchange::Requests;
use crate::proposal::{self, Chosen, Proposal};
use crate::ts::{self, TsRange};
use crate::wire::{self, EncrId, ExchangeType, IntegId, NotifyType, ProtocolId};

use super::body::{Body, Delete, Notify};
use super::ikesa::{Asked, ChildSa, IkeSa, PendingChild, Phase};
use super::{Connection, Daemon, MAX_HALF_OPEN, MAX_HALF_OPEN_PER_PEER, NONCE_LEN};

/// NAT detection data (RFC 7296 §2.23): SHA-1 over the SPIs, the address and the port.
fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => ctx.update(&a.octets()),
        IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    ctx.finish().as_ref().to_vec()
}

/// The IKE SA's algorithms, as strongSwan writes them (`AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519`).
pub(super) fn describe(chosen: &Chosen) -> String {
    ike_suite(chosen).map_or_else(|e| e, |s| s.to_string())
}

/// The IKE SA's algorithms from what was chosen.
fn ike_suite(chosen: &Chosen) -> Result<IkeSuite, String> {
    let (encr, bits) = chosen.encryption;
    let encryption = crypto::Encryption::from_id(u16::from(encr), bits)
        .ok_or_else(|| format!("encryption {encr:?} is not implemented"))?;
    let integrity = match chosen.integrity {
        Some(i) => Some(
            crypto::Integrity::from_id(u16::from(i))
                .ok_or_else(|| format!("integrity {i:?} is not implemented"))?,
        ),
        None => None,
    };
    let prf = chosen
        .prf
        .and_then(|p| crypto::Prf::from_id(u16::from(p)))
        .ok_or("no pseudo-random function chosen")?;
    let dh = chosen
        .dh
        .and_then(|g| crypto::DhGroup::from_id(u16::from(g)))
        .ok_or("no Diffie-Hellman group chosen")?;
    IkeSuite::new(encryption, integrity, prf, dh).map_err(|e| e.to_string())
}

/// The ESP algorithms of a chosen CHILD_SA proposal, as espo-ipsec names them.
fn esp_algorithms(
    chosen: &Chosen,
) -> Result<(EncryptionAlgorithm, Option<IntegrityAlgorithm>), String> {
    let encryption = match chosen.encryption {
        (EncrId::AesGcm16, Some(128)) => EncryptionAlgorithm::AesGcm128,
        (EncrId::AesGcm16, Some(256)) => EncryptionAlgorithm::AesGcm256,
        (EncrId::ChaCha20Poly1305, _) => EncryptionAlgorithm::ChaCha20Poly1305,
        (EncrId::AesCbc, Some(128)) => EncryptionAlgorithm::AesCbc128,
        (EncrId::AesCbc, Some(256)) => EncryptionAlgorithm::AesCbc256,
        (e, bits) => {
            return Err(format!(
                "ESP encryption {e:?} ({bits:?} bits) is not implemented"
            ));
        }
    };
    let integrity = match chosen.integrity {
        None => None,
        Some(IntegId::HmacSha256_128) => Some(IntegrityAlgorithm::HmacSha256_128),
        Some(IntegId::HmacSha384_192) => Some(IntegrityAlgorithm::HmacSha384_192),
        Some(IntegId::HmacSha512_256) => Some(IntegrityAlgorithm::HmacSha512_256),
        Some(i) => return Err(format!("ESP integrity {i:?} is not implemented")),
    };
    Ok((encryption, integrity))
}

impl Daemon {
    fn conn(&self, sa: &IkeSa) -> &Connection {
        &self.conns[sa.conn]
    }

    /// This end's identity on `sa`: configured, or its address.
    fn local_identity(&self, sa: &IkeSa) -> Identity {
        self.conn(sa)
            .local_id
            .clone()
            .unwrap_or_else(|| Identity::from_ip(sa.local.ip()))
    }

    // ---- IKE_SA_INIT, initiator ----

    pub(super) fn send_init_request(&mut self, sa: &mut IkeSa, now: Instant) -> Result<(), String> {
        let group = crypto::DhGroup::from_id(sa.group)
            .ok_or_else(|| format!("Diffie-Hellman group {} is not implemented", sa.group))?;
        let ke = KeyExchange::generate(group).map_err(|e| e.to_string())?;
        let conn = self.conn(sa);
        let mut body = Body {
            sa: Some(
                conn.ike
                    .iter()
                    .enumerate()
                    .map(|(i, p)| p.to_wire(i as u8 + 1, &[]))
                    .collect(),
            ),
            ke: Some((sa.group, ke.public_value().to_vec())),
            nonce: Some(sa.ni.clone()),
            ..Body::default()
        };
        if let Some(cookie) = &sa.cookie {
            body.add_notify(NotifyType::Cookie, cookie.clone());
        }
        // With encapsulation forced, a source hash that matches nothing makes both ends
        // see a NAT (as strongSwan's encap = yes).
        let source = if conn.spec.encap {
            self.random_bytes(20)
        } else {
            nat_hash(sa.spi_i, 0, sa.local)
        };
        body.add_notify(NotifyType::NatDetectionSourceIp, source);
        body.add_notify(
            NotifyType::NatDetectionDestinationIp,
            nat_hash(sa.spi_i, 0, sa.remote),
        );
        body.add_notify(NotifyType::SignatureHashAlgorithms, hash_list());
        if conn.spec.fragmentation {
            body.add_notify(NotifyType::Ikev2FragmentationSupported, Vec::new());
        }
        let msg = wire::Message {
            spi_i: sa.spi_i,
            spi_r: 0,
            exchange_type: ExchangeType::IkeSaInit,
            flags: wire::header::Flags {
                initiator: true,
                version: false,
                response: false,
            },
            message_id: 0,
            payloads: body.to_payloads().map_err(|e| e.to_string())?,
        };
        let bytes = msg.to_bytes().map_err(|e| e.to_string())?;
        sa.ke = Some(ke);
        sa.init.ours = bytes.clone();
        sa.requests = Requests::new(0, self.backoff);
        let id = sa.requests.claim().map_err(|e| e.to_string())?;
        sa.requests.sent(id, vec![bytes.clone()], now);
        sa.asked = Some(Asked::Init);
        self.send(sa, bytes);
        Ok(())
    }

    pub(super) fn init_response(
        &mut self,
        sa: &mut IkeSa,
        msg: &wire::Message,
        bytes: &[u8],
        remote: SocketAddr,
        now: Instant,
    ) -> Result<(), String> {
        let body = Body::from_payloads(&msg.payloads)
            .map_err(|e| format!("malformed IKE_SA_INIT response: {e}"))?;
        if let Some(cookie) = body.notify(NotifyType::Cookie) {
            if sa.cookie.is_some() {
                return Err("the responder asked for a cookie twice".into());
            }
            sa.cookie = Some(cookie.data.clone());
            self.log(
                Level::Info,
                Subsystem::Ike,
                format!("{remote} asks for a cookie, retrying"),
            );
            return self.send_init_request(sa, now);
        }
        if let Some(n) = body.notify(NotifyType::InvalidKePayload) {
            let group = n
                .data
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or("INVALID_KE_PAYLOAD without a group")?;
            let offered = self
                .conn(sa)
                .ike
                .iter()
                .any(|p| p.dh.iter().any(|g| u16::from(*g) == group));
            if !offered || group == sa.group {
                return Err(format!(
                    "the responder wants Diffie-Hellman group {group}, which was not offered"
                ));
            }
            self.log(
                Level::Info,
                Subsystem::Ike,
                format!("{remote} wants Diffie-Hellman group {group}, retrying with it"),
            );
            sa.group = group;
            return self.send_init_request(sa, now);
        }
        if let Some(e) = body.error() {
            return Err(format!("{remote} refused IKE_SA_INIT: {:?}", e.kind));
        }
        if msg.spi_r == 0 {
            return Err("IKE_SA_INIT response without the responder's SPI".into());
        }
        let answer = match body.sa.as_deref() {
            Some([one]) => one,
            _ => return Err("IKE_SA_INIT response without exactly one proposal".into()),
        };
        let chosen = proposal::accept_response(&self.conn(sa).ike, answer)
            .ok_or("the responder chose a proposal that was not offered")?;
        let (group, public) = body.ke.clone().ok_or("IKE_SA_INIT response without KE")?;
        if Some(group) != chosen.dh.map(u16::from) || group != sa.group {
            return Err(format!(
                "the responder's KE is of group {group}, not the one chosen"
            ));
        }
        let nr = body
            .nonce
            .clone()
            .ok_or("IKE_SA_INIT response without a nonce")?;
        let suite = ike_suite(&chosen)?;
        let ke = sa.ke.take().ok_or("no key exchange")?;
        let shared = ke
            .agree(&public)
            .map_err(|e| format!("key exchange: {e}"))?;
        sa.spi_r = msg.spi_r;
        sa.nr = nr;
        let skeyseed = crypto::skeyseed(suite.prf, &sa.ni, &sa.nr, shared.as_ref());
        let keys = IkeSaKeys::derive(&suite, &skeyseed, &sa.ni, &sa.nr, sa.spi_i, sa.spi_r)
            .map_err(|e| e.to_string())?;
        sa.sk = Some(SkKeys::new(&suite, &keys, true).map_err(|e| e.to_string())?);
        sa.keys = Some(keys);
        sa.prf = Some(suite.prf);
        // NAT detection.
        if let Some(n) = body.notify(NotifyType::NatDetectionDestinationIp) {
            sa.nat_here = n.data != nat_hash(sa.spi_i, sa.spi_r, sa.local);
        }
        let sources: Vec<&Notify> = body
            .notifies
            .iter()
            .filter(|n| n.kind == NotifyType::NatDetectionSourceIp)
            .collect();
        if !sources.is_empty() {
            let want = nat_hash(sa.spi_i, sa.spi_r, sa.remote);
            sa.nat_there = !sources.iter().any(|n| n.data == want);
        }
        if self.conn(sa).spec.encap {
            sa.nat_here = true;
        }
        let spec = &self.conn(sa).spec;
        sa.fragmentation = spec.fragmentation && body.has(NotifyType::Ikev2FragmentationSupported);
        sa.fragment_size = spec.fragment_size;
        sa.peer_hashes = body
            .notify(NotifyType::SignatureHashAlgorithms)
            .map(|n| {
                n.data
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            })
            .unwrap_or_default();
        sa.init.theirs = bytes.to_vec();
        sa.chosen = Some(chosen);
        if sa.nat() && sa.local.port() != NAT_T_PORT {
            sa.local.set_port(NAT_T_PORT);
            if sa.remote.port() == crate::connection::IKE_PORT {
                sa.remote.set_port(NAT_T_PORT);
            }
            self.log(
                Level::Info,
                Subsystem::Ike,
                format!(
                    "NAT detected (here {}, there {}): moving to port {NAT_T_PORT}",
                    sa.nat_here, sa.nat_there
                ),
            );
        }
        sa.phase = Phase::AuthSent;
        self.send_auth_request(sa, now)
    }

    fn send_auth_request(&mut self, sa: &mut IkeSa, now: Instant) -> Result<(), String> {
        let local_id = self.local_identity(sa);
        let id_body = local_id.body();
        let keys = sa.keys.as_ref().ok_or("no keys")?;
        let prf = sa.prf.ok_or("no prf")?;
        let octets = auth::signed_octets(prf, keys.sk_pi.as_ref(), &sa.init.ours, &sa.nr, &id_body);
        let conn = self.conn(sa);
        let mut body = Body {
            id_i: Some(id_body),
            certs: conn.certs.clone(),
            certreq: matches!(conn.spec.remote_auth, RemoteAuth::Pubkey { .. }),
            auth: Some(self.own_auth(sa, &octets)?),
            ..Body::default()
        };
        if let Some(r) = &conn.remote_id {
            body.id_r = Some(r.body());
        }
        if sa.reauth_of.is_none() {
            // (A reauthentication keeps the old IKE SA until the new one is up.)
            body.add_notify(NotifyType::InitialContact, Vec::new());
        }
        // The first child to start goes with IKE_AUTH; the others follow with
        // CREATE_CHILD_SA.
        if !sa.to_start.is_empty() {
            let child = sa.to_start.remove(0);
            let pending = self.child_offer(sa, child, false)?;
            body.sa = Some(
                pending
                    .proposals
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        p.without_dh()
                            .to_wire(i as u8 + 1, &pending.spi_in.to_be_bytes())
                    })
                    .collect(),
            );
            body.ts_i = Some(pending.ts_i.clone());
            body.ts_r = Some(pending.ts_r.clone());
            sa.pending = Some(pending);
        }
        sa.local_id = Some(local_id);
        self.send_request(sa, ExchangeType::IkeAuth, &body, Asked::Auth, now)
    }

    /// What this end offers for child `child`: an inbound SPI, its proposals, its selectors.
    fn child_offer(&mut self, sa: &IkeSa, child: usize, pfs: bool) -> Result<PendingChild, String> {
        let spi_in = self.new_child_spi();
        let conn = self.conn(sa);
        let spec = &conn.spec.children[child];
        let ts_i = spec
            .local_ts
            .iter()
            .map(|t| t.resolve(sa.local.ip()))
            .collect();
        let ts_r = spec
            .remote_ts
            .iter()
            .map(|t| t.resolve(sa.remote.ip()))
            .collect();
        let proposals = conn.esp[child].clone();
        let ke = match (pfs, proposals.first().and_then(|p| p.dh.first())) {
            (true, Some(g)) => Some(
                KeyExchange::generate(
                    crypto::DhGroup::from_id(u16::from(*g))
                        .ok_or("Diffie-Hellman group not implemented")?,
                )
                .map_err(|e| e.to_string())?,
            ),
            _ => None,
        };
        Ok(PendingChild {
            rekey_of: None,
            child,
            spi_in,
            proposals,
            ts_i,
            ts_r,
            nonce: self.random_bytes(NONCE_LEN),
            ke,
        })
    }

    /// This end's AUTH payload over `octets`.
    fn own_auth(&self, sa: &IkeSa, octets: &[u8]) -> Result<(u8, Vec<u8>), String> {
        let conn = self.conn(sa);
        let prf = sa.prf.ok_or("no prf")?;
        match &conn.spec.local_auth {
            LocalAuth::Psk => {
                let psk = conn.spec.psk.as_ref().ok_or("no pre-shared key")?;
                Ok((2, auth::psk_auth(prf, &psk.0, octets)))
            }
            LocalAuth::Pubkey { .. } => {
                let key = conn.key.as_ref().ok_or("no private key")?;
                auth::sign_auth(key, &sa.peer_hashes, octets).map_err(|e| e.to_string())
            }
        }
    }

    /// Checks the peer's identity and AUTH payload over `octets` for connection `conn`.
    fn verify_peer(
        &self,
        conn: &Connection,
        sa: &IkeSa,
        peer: &Identity,
        body: &Body,
        octets: &[u8],
        now: Instant,
    ) -> Result<(), String> {
        if let Some(want) = &conn.remote_id
            && want != peer
        {
            return Err(format!("identity '{peer}' is not the configured '{want}'"));
        }
        let (method, data) = body.auth.as_ref().ok_or("no AUTH payload")?;
        let prf = sa.prf.ok_or("no prf")?;
        match &conn.spec.remote_auth {
            RemoteAuth::Psk => {
                if *method != 2 {
                    return Err(format!(
                        "AUTH method {method}, but a pre-shared key is configured"
                    ));
                }
                let psk = conn.spec.psk.as_ref().ok_or("no pre-shared key")?;
                if !auth::verify_psk_auth(prf, &psk.0, octets, data) {
                    return Err("the pre-shared key does not match (AUTH payload wrong)".into());
                }
                Ok(())
            }
            RemoteAuth::Pubkey { .. } => {
                let ee_der = body.certs.first().ok_or("no certificate sent")?;
                let ee = Certificate::from_der(ee_der).map_err(|e| format!("certificate: {e}"))?;
                let intermediates: Vec<Certificate> = body.certs[1..]
                    .iter()
                    .filter_map(|d| Certificate::from_der(d).ok())
                    .collect();
                auth::validate_chain(&ee, &intermediates, &conn.trusted, self.now_unix(now))
                    .map_err(|e| format!("certificate of '{peer}': {e}"))?;
                if !ee.matches_identity(peer) {
                    return Err(format!("identity '{peer}' is not in its certificate"));
                }
                let key: PublicKey = ee.public_key().map_err(|e| e.to_string())?;
                auth::verify_auth(&key, *method, data, octets)
                    .map(|_| ())
                    .map_err(|e| format!("AUTH signature: {e}"))
            }
        }
    }

    pub(super) fn auth_response(
        &mut self,
        sa: &mut IkeSa,
        body: &Body,
        now: Instant,
    ) -> Result<(), String> {
        if body.auth.is_none()
            && let Some(e) = body.error()
        {
            return Err(format!("{} refused IKE_AUTH: {:?}", sa.remote, e.kind));
        }
        let id_body = body.id_r.clone().ok_or("IKE_AUTH response without IDr")?;
        let peer = Identity::from_body(&id_body).map_err(|e| format!("IDr: {e}"))?;
        let keys = sa.keys.as_ref().ok_or("no keys")?;
        let prf = sa.prf.ok_or("no prf")?;
        let octets =
            auth::signed_octets(prf, keys.sk_pr.as_ref(), &sa.init.theirs, &sa.ni, &id_body);
        let conn = &self.conns[sa.conn];
        if let Err(e) = self.verify_peer(conn, sa, &peer, body, &octets, now) {
            self.log(
                Level::Error,
                Subsystem::Ike,
                format!("{}: authentication failed: {e}", sa.remote),
            );
            return Err(format!("authentication of {} failed", sa.remote));
        }
        sa.peer_id = Some(peer.clone());
        sa.phase = Phase::Established;
        sa.established = Some(now);
        sa.rekey_at = self.ike_rekey_at(sa.conn, now);
        sa.reauth_at = self.reauth_at(sa.conn, now);
        self.counters.ike_established += 1;
        let name = self.conns[sa.conn].spec.name.clone();
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!(
                "IKE_SA {name}[{:016x}] established between {}[{}]...{}[{peer}] ({})",
                sa.spi_i,
                sa.local,
                sa.local_id
                    .as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
                sa.remote,
                sa.chosen.as_ref().map(describe).unwrap_or_default(),
            ),
        );
        if let Some(pending) = sa.pending.take() {
            self.finish_child(sa, pending, body, None, now);
        }
        Ok(())
    }

    /// The initiator's end of a CHILD_SA exchange: the answer checked and the SAs installed,
    /// or the failure logged (the IKE SA stays).
    fn finish_child(
        &mut self,
        sa: &mut IkeSa,
        pending: PendingChild,
        body: &Body,
        peer_nonce: Option<&[u8]>,
        now: Instant,
    ) {
        let result = (|| -> Result<(), String> {
            if let Some(e) = body.error() {
                return Err(format!("refused: {:?}", e.kind));
            }
            let answer = match body.sa.as_deref() {
                Some([one]) => one,
                _ => return Err("no single proposal in the answer".into()),
            };
            let offered: Vec<Proposal> = if peer_nonce.is_some() {
                pending.proposals.clone()
            } else {
                pending.proposals.iter().map(|p| p.without_dh()).collect()
            };
            let chosen = proposal::accept_response(&offered, answer)
                .ok_or("the peer chose a proposal that was not offered")?;
            let spi_out = u32::from_be_bytes(
                answer
                    .spi
                    .as_slice()
                    .try_into()
                    .map_err(|_| "SPI is not 4 bytes")?,
            );
            let ts_i = body.ts_i.clone().ok_or("no TSi")?;
            let ts_r = body.ts_r.clone().ok_or("no TSr")?;
            if !ts::within(&pending.ts_i, &ts_i) || !ts::within(&pending.ts_r, &ts_r) {
                return Err("the peer widened the traffic selectors".into());
            }
            let g_ir = match (&pending.ke, chosen.dh, &body.ke) {
                (Some(_), Some(_), Some((_, public))) => Some(public.clone()),
                (_, None, _) => None,
                _ => return Err("PFS chosen without a KE".into()),
            };
            let shared = match (pending.ke, g_ir) {
                (Some(ke), Some(public)) => Some(
                    ke.agree(&public)
                        .map_err(|e| format!("key exchange: {e}"))?,
                ),
                _ => None,
            };
            let (ni, nr) = match peer_nonce {
                Some(nr) => (pending.nonce.as_slice(), nr),
                None => (sa.ni.as_slice(), sa.nr.as_slice()),
            };
            let ni = ni.to_vec();
            let nr = nr.to_vec();
            self.install_child(
                sa,
                pending.child,
                &chosen,
                pending.spi_in,
                spi_out,
                shared.as_ref().map(|s| s.as_ref()),
                &ni,
                &nr,
                true,
                ts_i,
                ts_r,
                pending.rekey_of,
                now,
            )?;
            if let Some(old) = pending.rekey_of {
                // Make-before-break: the new SAs are in (their policies in front); the old
                // ones go with an INFORMATIONAL DELETE, which also tells the peer to send
                // on the new ones — before the old ones reach their hard limit.
                let delay = self
                    .hard_left(sa, old, now)
                    .map_or(super::REKEY_GRACE, |left| {
                        left.saturating_sub(super::HOLD_MARGIN)
                            .min(super::REKEY_GRACE)
                    });
                sa.to_delete.push((old, now + delay));
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.spis_in.remove(&pending.spi_in);
            let name = self.conns[sa.conn].spec.children[pending.child]
                .name
                .clone();
            self.log(
                Level::Error,
                Subsystem::Child,
                format!("CHILD_SA {name} not established: {e}"),
            );
        }
    }

    /// Derives a CHILD_SA's keys and asks the gateway to install it. `exchange_initiator`:
    /// this end started the exchange that created it (its keys come first, §2.17).
    #[allow(clippy::too_many_arguments)]
    fn install_child(
        &mut self,
        sa: &mut IkeSa,
        child: usize,
        chosen: &Chosen,
        spi_in: u32,
        spi_out: u32,
        g_ir: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        exchange_initiator: bool,
        ts_i: Vec<TsRange>,
        ts_r: Vec<TsRange>,
        rekey_of: Option<ChildId>,
        now: Instant,
    ) -> Result<(), String> {
        let (encryption, integrity) = esp_algorithms(chosen)?;
        let suite = ChildSuite::esp(encryption, integrity);
        let keys = sa.keys.as_ref().ok_or("no keys")?;
        let prf = sa.prf.ok_or("no prf")?;
        let keymat = ChildSaKeys::derive(prf, keys.sk_d.as_ref(), g_ir, ni, nr, &suite)
            .map_err(|e| e.to_string())?;
        let split = |k: &crypto::ChildDirectionKeys| DirectionKeys {
            key: SecretKey::from_slice(k.encryption.as_ref()),
            integrity_key: k
                .integrity
                .as_ref()
                .map(|i| SecretKey::from_slice(i.as_ref())),
        };
        let (keys_out, keys_in) = if exchange_initiator {
            (
                split(&keymat.initiator_to_responder),
                split(&keymat.responder_to_initiator),
            )
        } else {
            (
                split(&keymat.responder_to_initiator),
                split(&keymat.initiator_to_responder),
            )
        };
        // This end's selectors are TSi when it is the IKE SA's initiator of the exchange.
        let (local_ts, remote_ts) = if exchange_initiator {
            (ts_i, ts_r)
        } else {
            (ts_r, ts_i)
        };
        let conn = &self.conns[sa.conn];
        let spec = &conn.spec.children[child];
        let encap = sa.nat() || conn.spec.encap;
        let l = spec.lifetimes;
        let secs = |d: std::time::Duration| (!d.is_zero()).then_some(whole_seconds_up(d));
        let nonzero = |v: u64| (v != 0).then_some(v);
        let negotiated = NegotiatedChild {
            spi_in,
            spi_out,
            encryption,
            integrity,
            esn: chosen.esn == wire::Esn::Yes,
            keys_in,
            keys_out,
            local: sa.local.ip(),
            remote: sa.remote.ip(),
            encap: encap.then_some((sa.local.port(), sa.remote.port())),
            local_ts: local_ts.clone(),
            remote_ts: remote_ts.clone(),
            replay_window: spec.replay_window,
            lifetime: Lifetime {
                soft_bytes: nonzero(self.soft_count(l.rekey_bytes, l.life_bytes)),
                hard_bytes: nonzero(l.life_bytes),
                soft_packets: nonzero(self.soft_count(l.rekey_packets, l.life_packets)),
                hard_packets: nonzero(l.life_packets),
                soft_seconds: None,
                hard_seconds: secs(l.life_time),
            },
        };
        let sas = negotiated.sa_specs().map_err(|e| e.to_string())?;
        let policies = negotiated.policy_specs().map_err(|e| e.to_string())?;
        let name = format!("{}/{}", conn.spec.name, spec.name);
        let id = self.new_child_id();
        let algorithms = format!(
            "{}{}",
            encryption,
            integrity.map(|i| format!("/{i}")).unwrap_or_default()
        );
        self.log(
            Level::Info,
            Subsystem::Child,
            format!(
                "CHILD_SA {name} established with SPIs {spi_in:08x}_i {spi_out:08x}_o, {algorithms}{}",
                if encap { ", ESP in UDP" } else { "" }
            ),
        );
        let lowest = if ni <= nr { ni.to_vec() } else { nr.to_vec() };
        // A CHILD_SA of the same child on another IKE SA with this peer (a
        // reauthentication, or a peer back without INITIAL_CONTACT): this one takes its
        // places as a rekey would, and it goes with its IKE SA.
        let mut taken_over = None;
        if rekey_of.is_none() {
            let this = sa.our_spi();
            taken_over = self.sas.iter_mut().find_map(|(spi, o)| {
                if *spi == this || o.conn != sa.conn || o.remote.ip() != sa.remote.ip() {
                    return None;
                }
                let c = o
                    .children
                    .iter_mut()
                    .find(|c| c.child == child && !c.rekeyed)?;
                c.rekeyed = true;
                Some((c.id, c.generation))
            });
        }
        // A rekey collision (§2.8.1): another new CHILD_SA already renews the same one. The
        // one whose exchange had the lowest of the four nonces is redundant: this one takes
        // the other's places if it stays, and waits beside it for its deletion if not.
        let sibling = rekey_of.and_then(|old| {
            sa.children
                .iter()
                .find(|c| matches!(&c.replaces, Some((o, _, _)) if *o == old))
                .map(|c| {
                    (
                        c.id,
                        c.replaces.as_ref().map(|r| r.2.clone()).unwrap_or_default(),
                    )
                })
        });
        // The responder of a rekey sends on the new SAs once the initiator surely accepts
        // on them: when the old CHILD_SA goes, at the latest a little before it would
        // expire.
        let hold_outbound = |old: ChildId| {
            if exchange_initiator {
                return None;
            }
            let left = self
                .hard_left(sa, old, now)
                .map_or(super::HOLD_OUTBOUND, |left| {
                    left.saturating_sub(super::HOLD_MARGIN)
                });
            let hold = left.min(super::HOLD_OUTBOUND);
            (!hold.is_zero()).then_some(hold)
        };
        let renews = match (rekey_of, sibling) {
            (_, Some((other, other_low))) if other_low < lowest => Some(Renewal::Replaces {
                old: other,
                hold_outbound: hold_outbound(rekey_of.unwrap_or(other)),
            }),
            (_, Some((other, _))) => Some(Renewal::Beside(other)),
            (Some(old), None) => Some(Renewal::Replaces {
                old,
                hold_outbound: hold_outbound(old),
            }),
            (None, None) => taken_over.map(|(old, _)| Renewal::Replaces {
                old,
                hold_outbound: (!exchange_initiator).then_some(super::HOLD_OUTBOUND),
            }),
        };
        self.events.push_back(Event::InstallChild {
            id,
            name,
            sas: Box::new(sas),
            policies,
            renews,
        });
        self.counters.children_established += 1;
        let rekey_at = self.rekey_at(&l, now);
        let predecessor = rekey_of.and_then(|old| sa.children.iter().find(|c| c.id == old));
        let generation = predecessor
            .map(|c| c.generation + 1)
            .or(taken_over.map(|(_, g)| g + 1))
            .unwrap_or(0);
        let renewed = predecessor.map(|old| {
            let how = if exchange_initiator {
                format!("by this end ({})", old.rekey_cause)
            } else {
                "by the peer".to_string()
            };
            match renews {
                Some(Renewal::Beside(_)) => format!("{how}, redundant after a collision"),
                _ => how,
            }
        });
        let renewed = renewed.or(taken_over.map(|_| "by reauthentication".to_string()));
        let replaces = rekey_of.map(|old| (old, exchange_initiator, lowest));
        sa.children.push(ChildSa {
            id,
            child,
            spi_in,
            spi_out,
            algorithms,
            local_ts,
            remote_ts,
            installed: now,
            encap,
            rekey_at,
            rekeyed: false,
            generation,
            rekey_cause: "time",
            renewed,
            replaces,
        });
        self.resolve_collision(sa, now);
        Ok(())
    }

    /// A rekey collision (§2.8.1): both ends renewed the same CHILD_SA at once, so two
    /// CHILD_SAs replace it. The one made by the exchange with the lowest of the four nonces
    /// is redundant and its maker deletes it: this end deletes its own when that is it (and
    /// leaves the other to the peer).
    fn resolve_collision(&mut self, sa: &mut IkeSa, now: Instant) {
        let mut ours_redundant = Vec::new();
        for ours in sa
            .children
            .iter()
            .filter(|c| matches!(c.replaces, Some((_, true, _))))
        {
            let Some((old, _, our_low)) = &ours.replaces else {
                continue;
            };
            let theirs = sa
                .children
                .iter()
                .find(|c| matches!(&c.replaces, Some((o, false, _)) if o == old));
            if let Some(Some((_, _, their_low))) = theirs.map(|t| &t.replaces)
                && our_low < their_low
                && !sa.to_delete.iter().any(|(id, _)| *id == ours.id)
            {
                ours_redundant.push(ours.id);
            }
        }
        for id in ours_redundant {
            self.log(
                Level::Info,
                Subsystem::Child,
                "rekey collision: this end's new CHILD_SA had the lowest nonce and goes".into(),
            );
            if let Some(c) = sa.children.iter_mut().find(|c| c.id == id) {
                c.rekeyed = true;
            }
            sa.to_delete.push((id, now + super::REKEY_GRACE));
        }
    }

    // ---- IKE_SA_INIT, responder ----

    /// Connections that may answer a peer at `remote` reaching this end at `local`.
    fn candidates(&self, local: SocketAddr, remote: SocketAddr) -> Vec<usize> {
        (0..self.conns.len())
            .filter(|&i| {
                let c = &self.conns[i].spec;
                (c.local_addrs.is_empty() || c.local_addrs.contains(&local.ip()))
                    && (c.remote_addrs.is_empty() || c.remote_addrs.contains(&remote.ip()))
            })
            .collect()
    }

    /// An unencrypted IKE_SA_INIT answer carrying only a notification (no state is kept).
    fn refuse_init(
        &mut self,
        msg: &wire::Message,
        local: SocketAddr,
        remote: SocketAddr,
        kind: NotifyType,
        data: Vec<u8>,
    ) {
        let mut body = Body::default();
        body.add_notify(kind, data);
        let answer = wire::Message {
            spi_i: msg.spi_i,
            spi_r: 0,
            exchange_type: ExchangeType::IkeSaInit,
            flags: wire::header::Flags {
                initiator: false,
                version: false,
                response: true,
            },
            message_id: 0,
            payloads: match body.to_payloads() {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let Ok(message) = answer.to_bytes() else {
            return;
        };
        self.events.push_back(Event::Send {
            local,
            remote,
            message,
        });
    }

    pub(super) fn respond_init(
        &mut self,
        msg: &wire::Message,
        bytes: &[u8],
        remote: SocketAddr,
        local: SocketAddr,
        now: Instant,
    ) {
        if msg.message_id != 0 {
            self.counters.dropped += 1;
            return;
        }
        let body = match Body::from_payloads(&msg.payloads) {
            Ok(b) => b,
            Err(e) => {
                self.counters.malformed += 1;
                self.log(
                    Level::Debug,
                    Subsystem::Encoding,
                    format!("{remote}: malformed IKE_SA_INIT ({e})"),
                );
                return;
            }
        };
        if self.half_open.len() >= self.cookie_threshold
            && !self.cookie_checks_out(&body, msg.spi_i, remote, now)
        {
            // No state for it: the initiator must prove it receives at its address.
            let cookie = self.cookie(&body, msg.spi_i, remote, self.cookie_secret.0);
            self.counters.cookies_sent += 1;
            self.refuse_init(msg, local, remote, NotifyType::Cookie, cookie);
            return;
        }
        if self.half_open.len() >= MAX_HALF_OPEN
            || self
                .half_open
                .keys()
                .filter(|(a, _)| a.ip() == remote.ip())
                .count()
                >= MAX_HALF_OPEN_PER_PEER
        {
            self.counters.dropped += 1;
            self.log(
                Level::Warning,
                Subsystem::Ike,
                format!("{remote}: too many half-open IKE SAs, IKE_SA_INIT dropped"),
            );
            return;
        }
        let (Some(offer), Some((group, public)), Some(ni)) = (&body.sa, &body.ke, &body.nonce)
        else {
            self.counters.malformed += 1;
            self.log(
                Level::Debug,
                Subsystem::Ike,
                format!("{remote}: IKE_SA_INIT without SA, KE or nonce"),
            );
            self.refuse_init(msg, local, remote, NotifyType::InvalidSyntax, Vec::new());
            return;
        };
        let candidates = self.candidates(local, remote);
        let picked = candidates
            .iter()
            .find_map(|&i| proposal::select(&self.conns[i].ike, offer).map(|s| (i, s)));
        let Some((conn, selected)) = picked else {
            self.log(
                Level::Warning,
                Subsystem::Config,
                format!(
                    "{remote}: no configured IKE proposal matches the offer ({} connection(s) for this address); NO_PROPOSAL_CHOSEN",
                    candidates.len()
                ),
            );
            self.counters.ike_failed += 1;
            self.refuse_init(msg, local, remote, NotifyType::NoProposalChosen, Vec::new());
            return;
        };
        let chosen = selected.chosen;
        let want = chosen.dh.map(u16::from).unwrap_or(0);
        if *group != want {
            self.log(
                Level::Info,
                Subsystem::Ike,
                format!(
                    "{remote}: KE of group {group}, asking for group {want} (INVALID_KE_PAYLOAD)"
                ),
            );
            self.refuse_init(
                msg,
                local,
                remote,
                NotifyType::InvalidKePayload,
                want.to_be_bytes().to_vec(),
            );
            return;
        }
        let result = (|| -> Result<IkeSa, String> {
            let suite = ike_suite(&chosen)?;
            let ke = KeyExchange::generate(suite.dh).map_err(|e| e.to_string())?;
            let our_public = ke.public_value().to_vec();
            let shared = ke.agree(public).map_err(|e| format!("key exchange: {e}"))?;
            let spi = self.new_ike_spi();
            let mut sa = IkeSa::new(conn, false, spi, local, remote, self.backoff, now);
            sa.spi_i = msg.spi_i;
            sa.ni = ni.clone();
            sa.nr = self.random_bytes(NONCE_LEN);
            let skeyseed = crypto::skeyseed(suite.prf, &sa.ni, &sa.nr, shared.as_ref());
            let keys = IkeSaKeys::derive(&suite, &skeyseed, &sa.ni, &sa.nr, sa.spi_i, sa.spi_r)
                .map_err(|e| e.to_string())?;
            sa.sk = Some(SkKeys::new(&suite, &keys, false).map_err(|e| e.to_string())?);
            sa.keys = Some(keys);
            sa.prf = Some(suite.prf);
            sa.group = want;
            if let Some(n) = body.notify(NotifyType::NatDetectionDestinationIp) {
                sa.nat_here = n.data != nat_hash(sa.spi_i, 0, local);
            }
            let sources: Vec<&Notify> = body
                .notifies
                .iter()
                .filter(|n| n.kind == NotifyType::NatDetectionSourceIp)
                .collect();
            if !sources.is_empty() {
                let want = nat_hash(sa.spi_i, 0, remote);
                sa.nat_there = !sources.iter().any(|n| n.data == want);
            }
            sa.peer_hashes = body
                .notify(NotifyType::SignatureHashAlgorithms)
                .map(|n| {
                    n.data
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect()
                })
                .unwrap_or_default();
            let mut answer = Body {
                sa: Some(vec![chosen.to_wire(selected.number, &[])]),
                ke: Some((want, our_public)),
                nonce: Some(sa.nr.clone()),
                ..Body::default()
            };
            let source = if self.conns[conn].spec.encap {
                self.random_bytes(20)
            } else {
                nat_hash(sa.spi_i, sa.spi_r, local)
            };
            answer.add_notify(NotifyType::NatDetectionSourceIp, source);
            answer.add_notify(
                NotifyType::NatDetectionDestinationIp,
                nat_hash(sa.spi_i, sa.spi_r, remote),
            );
            if body.has(NotifyType::SignatureHashAlgorithms) {
                answer.add_notify(NotifyType::SignatureHashAlgorithms, hash_list());
            }
            let spec = &self.conns[conn].spec;
            if spec.fragmentation && body.has(NotifyType::Ikev2FragmentationSupported) {
                answer.add_notify(NotifyType::Ikev2FragmentationSupported, Vec::new());
                sa.fragmentation = true;
            }
            sa.fragment_size = spec.fragment_size;
            answer.certreq = matches!(self.conns[conn].spec.remote_auth, RemoteAuth::Pubkey { .. });
            let out = wire::Message {
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
                exchange_type: ExchangeType::IkeSaInit,
                flags: wire::header::Flags {
                    initiator: false,
                    version: false,
                    response: true,
                },
                message_id: 0,
                payloads: answer.to_payloads().map_err(|e| e.to_string())?,
            }
            .to_bytes()
            .map_err(|e| e.to_string())?;
            sa.init.ours = out.clone();
            sa.init.theirs = bytes.to_vec();
            sa.responses.answered(0, vec![out]);
            sa.chosen = Some(chosen);
            Ok(sa)
        })();
        match result {
            Ok(sa) => {
                let out = sa.init.ours.clone();
                self.send(&sa, out);
                self.half_open.insert((remote, sa.spi_i), sa.spi_r);
                self.sas.insert(sa.spi_r, sa);
            }
            Err(e) => {
                self.counters.ike_failed += 1;
                self.log(
                    Level::Warning,
                    Subsystem::Ike,
                    format!("{remote}: IKE_SA_INIT refused: {e}"),
                );
                self.refuse_init(msg, local, remote, NotifyType::NoProposalChosen, Vec::new());
            }
        }
    }

    /// The cookie for an IKE_SA_INIT (§2.6): the secret's version, then
    /// SHA-256(Ni | IPi | SPIi | secret).
    fn cookie(&self, body: &Body, spi_i: u64, remote: SocketAddr, version: u8) -> Vec<u8> {
        let (current, secret, previous, _) = &self.cookie_secret;
        let secret = if version == *current {
            secret
        } else {
            previous
        };
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(body.nonce.as_deref().unwrap_or(&[]));
        match remote.ip() {
            IpAddr::V4(a) => ctx.update(&a.octets()),
            IpAddr::V6(a) => ctx.update(&a.octets()),
        }
        ctx.update(&spi_i.to_be_bytes());
        ctx.update(secret);
        let mut out = vec![version];
        out.extend_from_slice(ctx.finish().as_ref());
        out
    }

    /// Whether the request carries a cookie this end made (with the current secret or the
    /// one before it); draws a new secret when the current one is old.
    fn cookie_checks_out(
        &mut self,
        body: &Body,
        spi_i: u64,
        remote: SocketAddr,
        now: Instant,
    ) -> bool {
        let (version, stale) = {
            let (version, secret, _, drawn) = &self.cookie_secret;
            (
                *version,
                secret.is_empty() || now.duration_since(*drawn) >= super::COOKIE_ROTATION,
            )
        };
        if stale {
            let fresh = self.random_bytes(32);
            let old = std::mem::take(&mut self.cookie_secret.1);
            self.cookie_secret = (version.wrapping_add(1), fresh, old, now);
        }
        let Some(got) = body.notify(NotifyType::Cookie).map(|n| n.data.clone()) else {
            return false;
        };
        let (current, _, previous, _) = &self.cookie_secret;
        let Some(&v) = got.first() else {
            return false;
        };
        if v != *current && (v != current.wrapping_sub(1) || previous.is_empty()) {
            return false;
        }
        crypto::ct_eq(&self.cookie(body, spi_i, remote, v), &got)
    }

    // ---- IKE_AUTH, responder ----

    pub(super) fn auth_request(
        &mut self,
        sa: &mut IkeSa,
        id: u32,
        body: &Body,
        now: Instant,
    ) -> Result<(), String> {
        self.half_open.remove(&(sa.remote, sa.spi_i));
        let remote = sa.remote;
        let fail = |this: &mut Daemon, sa: &mut IkeSa, why: String| -> Result<(), String> {
            this.log(
                Level::Error,
                Subsystem::Ike,
                format!("{remote}: authentication failed: {why}"),
            );
            let mut answer = Body::default();
            answer.add_notify(NotifyType::AuthenticationFailed, Vec::new());
            let _ = this.send_response(sa, ExchangeType::IkeAuth, id, &answer);
            Err(format!("authentication of {remote} failed"))
        };
        let Some(id_body) = body.id_i.clone() else {
            return fail(self, sa, "IKE_AUTH without IDi".into());
        };
        let peer = match Identity::from_body(&id_body) {
            Ok(p) => p,
            Err(e) => return fail(self, sa, format!("IDi: {e}")),
        };
        let keys = sa.keys.as_ref().ok_or("no keys")?;
        let prf = sa.prf.ok_or("no prf")?;
        let octets =
            auth::signed_octets(prf, keys.sk_pi.as_ref(), &sa.init.theirs, &sa.nr, &id_body);
        // The connection: the one IKE_SA_INIT picked, or another for the same addresses
        // whose remote identity the peer claims.
        let mut candidates = self.candidates(sa.local, remote);
        candidates.sort_by_key(|&i| i != sa.conn);
        let mut last_error = format!("no connection for '{peer}'");
        let mut found = None;
        for i in candidates {
            if self.conns[i].ike.iter().all(|p| {
                proposal::accept_response(
                    std::slice::from_ref(p),
                    &sa.chosen.as_ref().expect("chosen").to_wire(1, &[]),
                )
                .is_none()
            }) {
                continue;
            }
            match self.verify_peer(&self.conns[i], sa, &peer, body, &octets, now) {
                Ok(()) => {
                    found = Some(i);
                    break;
                }
                Err(e) => last_error = e,
            }
        }
        let Some(conn) = found else {
            return fail(self, sa, last_error);
        };
        sa.conn = conn;
        sa.peer_id = Some(peer.clone());
        let local_id = self.local_identity(sa);
        let id_r = local_id.body();
        let keys = sa.keys.as_ref().ok_or("no keys")?;
        let octets = auth::signed_octets(prf, keys.sk_pr.as_ref(), &sa.init.ours, &sa.ni, &id_r);
        let own = self.own_auth(sa, &octets)?;
        let mut answer = Body {
            id_r: Some(id_r),
            certs: self.conns[conn].certs.clone(),
            auth: Some(own),
            ..Body::default()
        };
        sa.local_id = Some(local_id.clone());
        sa.phase = Phase::Established;
        sa.established = Some(now);
        sa.reauth_at = self.reauth_at(conn, now);
        sa.rekey_at = self.ike_rekey_at(conn, now);
        self.counters.ike_established += 1;
        let name = self.conns[conn].spec.name.clone();
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!(
                "IKE_SA {name}[{:016x}] established between {}[{local_id}]...{}[{peer}] ({})",
                sa.spi_r,
                sa.local,
                remote,
                sa.chosen.as_ref().map(describe).unwrap_or_default(),
            ),
        );
        if body.sa.is_some() {
            let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
            self.answer_child(sa, body, None, &ni, &nr, false, &mut answer, now);
        }
        self.send_response(sa, ExchangeType::IkeAuth, id, &answer)?;
        if body.has(NotifyType::InitialContact) {
            self.drop_older(sa);
        }
        Ok(())
    }

    /// INITIAL_CONTACT: the peer forgot every other IKE SA it had with this end.
    fn drop_older(&mut self, sa: &IkeSa) {
        let old: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, o)| {
                o.conn == sa.conn && o.peer_id == sa.peer_id && o.remote.ip() == sa.remote.ip()
            })
            .map(|(s, _)| *s)
            .collect();
        for spi in old {
            if let Some(o) = self.sas.remove(&spi) {
                self.destroy(o, "replaced (INITIAL_CONTACT)");
            }
        }
    }

    /// The responder's side of a CHILD_SA (in IKE_AUTH or CREATE_CHILD_SA): a proposal and
    /// selectors chosen, the SAs installed, the answer's payloads added to `answer` — or the
    /// notification saying why not.
    #[allow(clippy::too_many_arguments)]
    fn answer_child(
        &mut self,
        sa: &mut IkeSa,
        body: &Body,
        rekey_of: Option<(usize, ChildId)>,
        ni: &[u8],
        nr: &[u8],
        pfs_allowed: bool,
        answer: &mut Body,
        now: Instant,
    ) {
        let remote = sa.remote;
        let (Some(offer), Some(ts_i), Some(ts_r)) = (&body.sa, &body.ts_i, &body.ts_r) else {
            answer.add_notify(NotifyType::InvalidSyntax, Vec::new());
            return;
        };
        let conn = &self.conns[sa.conn];
        let mut outcome = Err(NotifyType::NoProposalChosen);
        let rekey_child = rekey_of.map(|(_, id)| id);
        let children: Vec<usize> = match rekey_of {
            Some((c, _)) => vec![c],
            None => (0..conn.spec.children.len()).collect(),
        };
        for c in children {
            let spec = &conn.spec.children[c];
            let proposals: Vec<Proposal> = if pfs_allowed {
                conn.esp[c].clone()
            } else {
                conn.esp[c].iter().map(|p| p.without_dh()).collect()
            };
            let Some(selected) = proposal::select(&proposals, offer) else {
                continue;
            };
            // This end's selectors: local is TSr, remote TSi.
            let local: Vec<TsRange> = spec
                .local_ts
                .iter()
                .map(|t| t.resolve(sa.local.ip()))
                .collect();
            let remote_cfg: Vec<TsRange> = spec
                .remote_ts
                .iter()
                .map(|t| t.resolve(remote.ip()))
                .collect();
            let n_i = ts::narrow(&remote_cfg, ts_i);
            let n_r = ts::narrow(&local, ts_r);
            if n_i.is_empty() || n_r.is_empty() {
                if outcome == Err(NotifyType::NoProposalChosen) {
                    outcome = Err(NotifyType::TsUnacceptable);
                }
                continue;
            }
            outcome = Ok((c, selected, n_i, n_r));
            break;
        }
        let (c, selected, n_i, n_r) = match outcome {
            Ok(o) => o,
            Err(kind) => {
                self.log(
                    Level::Warning,
                    Subsystem::Child,
                    format!(
                        "{remote}: CHILD_SA refused: {kind:?} (offer {:?})",
                        body.ts_i
                    ),
                );
                answer.add_notify(kind, Vec::new());
                return;
            }
        };
        let chosen = selected.chosen;
        let mut shared = None;
        if let Some(g) = chosen.dh {
            match &body.ke {
                Some((group, public)) if *group == u16::from(g) => {
                    let result = crypto::DhGroup::from_id(*group)
                        .ok_or_else(|| "group not implemented".to_string())
                        .and_then(|grp| KeyExchange::generate(grp).map_err(|e| e.to_string()))
                        .and_then(|ke| {
                            let ours = ke.public_value().to_vec();
                            ke.agree(public)
                                .map(|s| (ours, s))
                                .map_err(|e| e.to_string())
                        });
                    match result {
                        Ok((ours, s)) => {
                            answer.ke = Some((*group, ours));
                            shared = Some(s);
                        }
                        Err(e) => {
                            self.log(
                                Level::Warning,
                                Subsystem::Child,
                                format!("{remote}: CHILD_SA key exchange: {e}"),
                            );
                            answer.add_notify(NotifyType::NoProposalChosen, Vec::new());
                            return;
                        }
                    }
                }
                _ => {
                    answer.add_notify(
                        NotifyType::InvalidKePayload,
                        u16::from(g).to_be_bytes().to_vec(),
                    );
                    return;
                }
            }
        }
        let Ok(spi_out) = <[u8; 4]>::try_from(selected.spi.as_slice()).map(u32::from_be_bytes)
        else {
            answer.add_notify(NotifyType::InvalidSyntax, Vec::new());
            return;
        };
        let spi_in = self.new_child_spi();
        match self.install_child(
            sa,
            c,
            &chosen,
            spi_in,
            spi_out,
            shared.as_ref().map(|s| s.as_ref()),
            ni,
            nr,
            false,
            n_i.clone(),
            n_r.clone(),
            rekey_child,
            now,
        ) {
            Ok(()) => {
                answer.sa = Some(vec![chosen.to_wire(selected.number, &spi_in.to_be_bytes())]);
                answer.ts_i = Some(n_i);
                answer.ts_r = Some(n_r);
            }
            Err(e) => {
                self.spis_in.remove(&spi_in);
                answer.ke = None;
                self.log(
                    Level::Warning,
                    Subsystem::Child,
                    format!("{remote}: CHILD_SA refused: {e}"),
                );
                answer.add_notify(NotifyType::NoProposalChosen, Vec::new());
            }
        }
    }

    // ---- CREATE_CHILD_SA ----

    pub(super) fn create_child_request(
        &mut self,
        sa: &mut IkeSa,
        id: u32,
        body: &Body,
        now: Instant,
    ) -> Result<(), String> {
        let mut answer = Body::default();
        let Some(ni) = body.nonce.clone() else {
            answer.add_notify(NotifyType::InvalidSyntax, Vec::new());
            return self.send_response(sa, ExchangeType::CreateChildSa, id, &answer);
        };
        if body
            .sa
            .as_ref()
            .is_some_and(|p| p.iter().any(|p| p.protocol == ProtocolId::Ike))
        {
            return self.rekey_ike_request(sa, id, body, &ni, now);
        }
        let rekey_of = match body.notify(NotifyType::RekeySa) {
            Some(n) => {
                let spi = <[u8; 4]>::try_from(n.spi.as_slice())
                    .map(u32::from_be_bytes)
                    .ok();
                match spi.and_then(|s| sa.children.iter_mut().find(|c| c.spi_out == s)) {
                    Some(c) => {
                        // The peer renews it: this end does not as well.
                        c.rekeyed = true;
                        Some((c.child, c.id))
                    }
                    None => {
                        answer.add_notify(NotifyType::ChildSaNotFound, Vec::new());
                        return self.send_response(sa, ExchangeType::CreateChildSa, id, &answer);
                    }
                }
            }
            None => None,
        };
        let nr = self.random_bytes(NONCE_LEN);
        answer.nonce = Some(nr.clone());
        self.answer_child(sa, body, rekey_of, &ni, &nr, true, &mut answer, now);
        if answer.sa.is_none() {
            answer.nonce = None;
        }
        self.send_response(sa, ExchangeType::CreateChildSa, id, &answer)
    }

    pub(super) fn create_child_response(
        &mut self,
        sa: &mut IkeSa,
        body: &Body,
        now: Instant,
    ) -> Result<(), String> {
        if let Some(pending) = sa.pending.take() {
            match body.nonce.clone() {
                Some(nr) => self.finish_child(sa, pending, body, Some(&nr), now),
                None => {
                    self.spis_in.remove(&pending.spi_in);
                    let why = body
                        .error()
                        .map(|e| format!("{:?}", e.kind))
                        .unwrap_or_else(|| "no nonce".into());
                    self.log(
                        Level::Error,
                        Subsystem::Child,
                        format!("CHILD_SA not established: {why}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// When the IKE SA of connection `conn` established at `now` is authenticated again:
    /// its reauth_time (when this end knows where the peer is).
    pub(super) fn reauth_at(&self, conn: usize, now: Instant) -> Option<Instant> {
        let spec = &self.conns[conn].spec;
        (!spec.reauth_time.is_zero() && spec.can_initiate()).then(|| now + spec.reauth_time)
    }

    /// When the IKE SA of connection `conn` established at `now` is renewed.
    pub(super) fn ike_rekey_at(&self, conn: usize, now: Instant) -> Option<Instant> {
        self.rekey_at(&self.conns[conn].spec.lifetimes, now)
    }

    /// How long CHILD_SA `id` of `sa` has until its hard time limit (`None`: it has none,
    /// or it is gone).
    fn hard_left(&self, sa: &IkeSa, id: ChildId, now: Instant) -> Option<std::time::Duration> {
        let old = sa.children.iter().find(|c| c.id == id)?;
        let life = self.conns[sa.conn].spec.children[old.child]
            .lifetimes
            .life_time;
        if life.is_zero() {
            return None;
        }
        // The SA's hard limit is in whole seconds, rounded up (as installed).
        let life = std::time::Duration::from_secs(whole_seconds_up(life));
        Some((old.installed + life).saturating_duration_since(now))
    }

    /// The soft limit of a byte or packet count: `rekey` less a random part of the room
    /// up to `life` (at most half of it), so that two ends counting the same traffic do not
    /// renew at the same packet; 0 without a rekey count.
    fn soft_count(&self, rekey: u64, life: u64) -> u64 {
        if rekey == 0 {
            return 0;
        }
        let room = life.saturating_sub(rekey).min(rekey / 2) / 2;
        if room == 0 {
            return rekey;
        }
        let r = u64::from_be_bytes(self.random_bytes(8).try_into().expect("8 bytes"));
        rekey - r % (room + 1)
    }

    /// When an SA of lifetimes `l` made at `now` is renewed: its rekey_time less a random
    /// part of its rand_time (at most half the rekey time, so that a rand_time longer than
    /// it cannot make renewals back to back); `None` without a rekey_time.
    fn rekey_at(&self, l: &crate::connection::Lifetimes, now: Instant) -> Option<Instant> {
        if l.rekey_time.is_zero() {
            return None;
        }
        let span = l.rand_time.min(l.rekey_time / 2).as_millis() as u64;
        let jitter = if span == 0 {
            std::time::Duration::ZERO
        } else {
            let r = u64::from_be_bytes(self.random_bytes(8).try_into().expect("8 bytes"));
            std::time::Duration::from_millis(r % (span + 1))
        };
        Some(now + l.rekey_time.saturating_sub(jitter))
    }

    /// The IKE SA that replaces `old` (§2.18): its keys from SKEYSEED = prf(SK_d (old),
    /// g^ir (new) | Ni | Nr) under the old PRF, its CHILD_SAs moved over. `initiator`: this
    /// end started the rekey (it is the new IKE SA's initiator).
    #[allow(clippy::too_many_arguments)]
    fn successor(
        &mut self,
        old: &mut IkeSa,
        chosen: Chosen,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
        initiator: bool,
        now: Instant,
    ) -> Result<(), String> {
        let suite = ike_suite(&chosen)?;
        let old_prf = old.prf.ok_or("no prf")?;
        let old_keys = old.keys.as_ref().ok_or("no keys")?;
        let skeyseed = crypto::rekey_skeyseed(old_prf, &old_keys.sk_d, shared, ni, nr);
        let keys = IkeSaKeys::derive(&suite, &skeyseed, ni, nr, spi_i, spi_r)
            .map_err(|e| e.to_string())?;
        let ours = if initiator { spi_i } else { spi_r };
        let mut new = IkeSa::new(
            old.conn,
            initiator,
            ours,
            old.local,
            old.remote,
            self.backoff,
            now,
        );
        new.spi_i = spi_i;
        new.spi_r = spi_r;
        new.phase = Phase::Established;
        new.sk = Some(SkKeys::new(&suite, &keys, initiator).map_err(|e| e.to_string())?);
        new.keys = Some(keys);
        new.prf = Some(suite.prf);
        new.chosen = Some(chosen);
        new.group = chosen.dh.map_or(old.group, u16::from);
        new.ni = ni.to_vec();
        new.nr = nr.to_vec();
        new.nat_here = old.nat_here;
        new.nat_there = old.nat_there;
        new.peer_id = old.peer_id.clone();
        new.local_id = old.local_id.clone();
        new.peer_hashes = old.peer_hashes.clone();
        new.children = std::mem::take(&mut old.children);
        new.to_start = std::mem::take(&mut old.to_start);
        // Rekeyed CHILD_SAs still to delete go on the new IKE SA (a DELETE out on the old
        // one is sent again there: its answer will not come).
        new.to_delete = std::mem::take(&mut old.to_delete);
        new.to_delete.extend(
            std::mem::take(&mut old.deleting)
                .into_iter()
                .map(|id| (id, now)),
        );
        new.established = Some(now);
        new.rekey_at = self.ike_rekey_at(old.conn, now);
        new.reauth_at = old.reauth_at;
        new.generation = old.generation + 1;
        new.renewed = Some(if initiator {
            "by this end (time)".to_string()
        } else {
            "by the peer".to_string()
        });
        let name = self.conns[old.conn].spec.name.clone();
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!(
                "IKE_SA {name}[{:016x}] rekeyed: now {:016x}_i {:016x}_r ({}), {} CHILD_SAs moved over",
                old.our_spi(),
                spi_i,
                spi_r,
                describe(&chosen),
                new.children.len()
            ),
        );
        self.sas.insert(ours, new);
        Ok(())
    }

    /// Renews the IKE SA: CREATE_CHILD_SA with IKE proposals carrying a new SPI, a nonce and
    /// a key exchange in the current group.
    pub(super) fn rekey_ike(&mut self, sa: &mut IkeSa, now: Instant) -> Result<(), String> {
        let group = crypto::DhGroup::from_id(sa.group)
            .ok_or_else(|| format!("Diffie-Hellman group {} is not implemented", sa.group))?;
        let ke = KeyExchange::generate(group).map_err(|e| e.to_string())?;
        let spi = self.new_ike_spi();
        let nonce = self.random_bytes(NONCE_LEN);
        let conn = &self.conns[sa.conn];
        let proposals = proposal::promote_dh(&conn.ike, wire::DhGroup::from(sa.group));
        let body = Body {
            sa: Some(
                proposals
                    .iter()
                    .enumerate()
                    .map(|(i, p)| p.to_wire(i as u8 + 1, &spi.to_be_bytes()))
                    .collect(),
            ),
            nonce: Some(nonce.clone()),
            ke: Some((sa.group, ke.public_value().to_vec())),
            ..Body::default()
        };
        let name = conn.spec.name.clone();
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!("rekeying IKE_SA {name}[{:016x}]", sa.our_spi()),
        );
        sa.rekeying = Some((spi, ke, nonce));
        self.send_request(sa, ExchangeType::CreateChildSa, &body, Asked::RekeyIke, now)
    }

    /// The answer to this end's IKE SA rekey: the new IKE SA, then the old one's DELETE.
    pub(super) fn rekey_ike_response(
        &mut self,
        sa: &mut IkeSa,
        body: &Body,
        now: Instant,
    ) -> Result<(), String> {
        let Some((spi, ke, ni)) = sa.rekeying.take() else {
            return Ok(());
        };
        let result = (|| -> Result<Vec<u8>, String> {
            if let Some(e) = body.error() {
                return Err(format!("refused: {:?}", e.kind));
            }
            let answer = match body.sa.as_deref() {
                Some([one]) => one,
                _ => return Err("no single proposal in the answer".into()),
            };
            let chosen = proposal::accept_response(&self.conns[sa.conn].ike, answer)
                .ok_or("the peer chose a proposal that was not offered")?;
            let peer_spi = u64::from_be_bytes(
                answer
                    .spi
                    .as_slice()
                    .try_into()
                    .map_err(|_| "the new IKE SPI is not 8 bytes")?,
            );
            let nr = body.nonce.clone().ok_or("no nonce")?;
            let (group, public) = body.ke.clone().ok_or("no KE")?;
            if Some(group) != chosen.dh.map(u16::from) || group != ke.group().id() {
                return Err(format!("KE of group {group}"));
            }
            let shared = ke
                .agree(&public)
                .map_err(|e| format!("key exchange: {e}"))?;
            self.successor(
                sa,
                chosen,
                shared.as_ref(),
                &ni,
                &nr,
                spi,
                peer_spi,
                true,
                now,
            )?;
            Ok(nr)
        })();
        match result {
            Ok(nr) => {
                if let Some((theirs, their_low)) = sa.renewed_by_peer.take() {
                    let our_low = if ni <= nr { ni.clone() } else { nr.clone() };
                    if self.resolve_ike_collision(spi, &our_low, theirs, &their_low, now) {
                        // This end's new IKE SA goes; the peer deletes the old one.
                        return Ok(());
                    }
                }
                // The old IKE SA goes: DELETE on it, then it is dropped with the answer.
                self.request_delete_ike(sa, now)
            }
            Err(e) => {
                let name = self.conns[sa.conn].spec.name.clone();
                self.log(
                    Level::Error,
                    Subsystem::Ike,
                    format!("rekeying IKE_SA {name}: {e}"),
                );
                sa.rekey_at = Some(now + std::time::Duration::from_secs(10));
                Ok(())
            }
        }
    }

    /// Both ends renewed the IKE SA at once (§2.8.1): two new IKE SAs, `ours` (this end's
    /// exchange, lowest nonce `our_low`) and `theirs`. The one whose exchange had the lowest
    /// of the four nonces is redundant: the CHILD_SAs go to the other, and the redundant
    /// one's initiator deletes it. Returns whether this end's is the redundant one (the peer
    /// then deletes the old IKE SA).
    fn resolve_ike_collision(
        &mut self,
        ours: u64,
        our_low: &[u8],
        theirs: u64,
        their_low: &[u8],
        now: Instant,
    ) -> bool {
        let ours_redundant = our_low < their_low;
        let (from, to) = if ours_redundant {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        let (Some(mut loser), Some(mut winner)) = (self.sas.remove(&from), self.sas.remove(&to))
        else {
            // One of them went already (a DELETE crossed): nothing to move.
            return false;
        };
        winner.children.append(&mut loser.children);
        winner.to_start.append(&mut loser.to_start);
        self.log(
            Level::Info,
            Subsystem::Ike,
            format!(
                "IKE_SA rekey collision: {:016x} stays, {:016x} is redundant ({})",
                winner.our_spi(),
                loser.our_spi(),
                if ours_redundant {
                    "this end's: it deletes it"
                } else {
                    "the peer's: the peer deletes it"
                }
            ),
        );
        if ours_redundant {
            let _ = self.request_delete_ike(&mut loser, now);
        }
        self.sas.insert(from, loser);
        self.sas.insert(to, winner);
        ours_redundant
    }

    /// The peer renews the IKE SA: a proposal and key exchange chosen, the new IKE SA made
    /// (its CHILD_SAs moved over), the answer sent on the old one, which goes with the
    /// peer's DELETE.
    fn rekey_ike_request(
        &mut self,
        sa: &mut IkeSa,
        id: u32,
        body: &Body,
        ni: &[u8],
        now: Instant,
    ) -> Result<(), String> {
        let mut answer = Body::default();
        if sa.phase != Phase::Established || sa.renewed_by_peer.is_some() {
            // This end renewed it already (it is being deleted), or the peer did.
            answer.add_notify(NotifyType::TemporaryFailure, Vec::new());
            return self.send_response(sa, ExchangeType::CreateChildSa, id, &answer);
        }
        let offer = body.sa.clone().unwrap_or_default();
        let Some(selected) = proposal::select(&self.conns[sa.conn].ike, &offer) else {
            answer.add_notify(NotifyType::NoProposalChosen, Vec::new());
            return self.send_response(sa, ExchangeType::CreateChildSa, id, &answer);
        };
        let chosen = selected.chosen;
        let want = chosen.dh.map_or(0, u16::from);
        let Some((group, public)) = body.ke.clone().filter(|(g, _)| *g == want) else {
            answer.add_notify(NotifyType::InvalidKePayload, want.to_be_bytes().to_vec());
            return self.send_response(sa, ExchangeType::CreateChildSa, id, &answer);
        };
        let Ok(peer_spi) = <[u8; 8]>::try_from(selected.spi.as_slice()).map(u64::from_be_bytes)
        else {
            answer.add_notify(NotifyType::InvalidSyntax, Vec::new());
            return self.send_response(sa, ExchangeType::CreateChildSa, id, &answer);
        };
        let result = (|| -> Result<(Vec<u8>, Vec<u8>, u64, crypto::SharedSecret), String> {
            let grp = crypto::DhGroup::from_id(group).ok_or("group not implemented")?;
            let ke = KeyExchange::generate(grp).map_err(|e| e.to_string())?;
            let ours = ke.public_value().to_vec();
            let shared = ke
                .agree(&public)
                .map_err(|e| format!("key exchange: {e}"))?;
            Ok((
                ours,
                self.random_bytes(NONCE_LEN),
                self.new_ike_spi(),
                shared,
            ))
        })();
        let (our_public, nr, spi, shared) = match result {
            Ok(r) => r,
            Err(e) => {
                self.log(
                    Level::Warning,
                    Subsystem::Ike,
                    format!("{}: IKE SA rekey refused: {e}", sa.remote),
                );
                answer.add_notify(NotifyType::NoProposalChosen, Vec::new());
                return self.send_response(sa, ExchangeType::CreateChildSa, id, &answer);
            }
        };
        answer.sa = Some(vec![chosen.to_wire(selected.number, &spi.to_be_bytes())]);
        answer.nonce = Some(nr.clone());
        answer.ke = Some((group, our_public));
        // The answer goes out under the old IKE SA's keys, before the new one takes over.
        self.send_response(sa, ExchangeType::CreateChildSa, id, &answer)?;
        let lowest = if ni <= nr.as_slice() {
            ni.to_vec()
        } else {
            nr.clone()
        };
        sa.renewed_by_peer = Some((spi, lowest));
        self.successor(
            sa,
            chosen,
            shared.as_ref(),
            ni,
            &nr,
            peer_spi,
            spi,
            false,
            now,
        )
    }

    /// Renews CHILD_SA `old` (§2.8): CREATE_CHILD_SA with REKEY_SA naming it, its selectors,
    /// a new inbound SPI, a new nonce (and a new key exchange when its proposal asks for
    /// PFS).
    pub(super) fn rekey_child(
        &mut self,
        sa: &mut IkeSa,
        old: &ChildSa,
        now: Instant,
    ) -> Result<(), String> {
        let mut pending = self.child_offer(sa, old.child, true)?;
        pending.ts_i = old.local_ts.clone();
        pending.ts_r = old.remote_ts.clone();
        pending.rekey_of = Some(old.id);
        let mut body = child_request(&pending);
        body.notifies.push(Notify {
            kind: NotifyType::RekeySa,
            protocol: 3,
            spi: old.spi_in.to_be_bytes().to_vec(),
            data: Vec::new(),
        });
        let name = self.conns[sa.conn].spec.children[old.child].name.clone();
        self.log(
            Level::Info,
            Subsystem::Child,
            format!(
                "rekeying CHILD_SA {name} {:08x}_i {:08x}_o ({})",
                old.spi_in, old.spi_out, old.rekey_cause
            ),
        );
        sa.pending = Some(pending);
        self.send_request(
            sa,
            ExchangeType::CreateChildSa,
            &body,
            Asked::CreateChild,
            now,
        )
    }

    /// Starts an additional CHILD_SA of an established IKE SA.
    pub(super) fn create_child(
        &mut self,
        sa: &mut IkeSa,
        child: usize,
        now: Instant,
    ) -> Result<(), String> {
        let pending = self.child_offer(sa, child, true)?;
        let body = child_request(&pending);
        sa.pending = Some(pending);
        self.send_request(
            sa,
            ExchangeType::CreateChildSa,
            &body,
            Asked::CreateChild,
            now,
        )
    }

    // ---- INFORMATIONAL ----

    pub(super) fn informational_request(
        &mut self,
        sa: &mut IkeSa,
        id: u32,
        body: &Body,
        _now: Instant,
    ) -> Result<(), String> {
        let mut answer = Body::default();
        if body.deletes.iter().any(|d| d.protocol == 1) {
            self.send_response(sa, ExchangeType::Informational, id, &answer)?;
            sa.phase = Phase::Deleting;
            return Err(format!("deleted by {}", sa.remote));
        }
        let mut ours = Vec::new();
        for d in body.deletes.iter().filter(|d| d.protocol == 3) {
            for spi in &d.spis {
                let Ok(spi) = <[u8; 4]>::try_from(spi.as_slice()).map(u32::from_be_bytes) else {
                    continue;
                };
                if let Some(pos) = sa.children.iter().position(|c| c.spi_out == spi) {
                    let child = sa.children.remove(pos);
                    self.spis_in.remove(&child.spi_in);
                    self.log(
                        Level::Info,
                        Subsystem::Child,
                        format!(
                            "CHILD_SA {:08x}_i {:08x}_o deleted by the peer",
                            child.spi_in, child.spi_out
                        ),
                    );
                    self.events.push_back(Event::RemoveChild { id: child.id });
                    ours.push(child.spi_in.to_be_bytes().to_vec());
                }
            }
        }
        if !ours.is_empty() {
            answer.deletes.push(Delete {
                protocol: 3,
                spis: ours,
            });
        }
        self.send_response(sa, ExchangeType::Informational, id, &answer)
    }
}

/// A duration in whole seconds, rounded up: an SA's hard lifetime of 3.3 s must not end it
/// at 3 s, the moment its rekey_time starts its renewal.
fn whole_seconds_up(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A CREATE_CHILD_SA request for `pending`: its proposals with its inbound SPI, its nonce,
/// its selectors, and its key exchange when its first proposal asks for PFS.
fn child_request(pending: &PendingChild) -> Body {
    let mut body = Body {
        sa: Some(
            pending
                .proposals
                .iter()
                .enumerate()
                .map(|(i, p)| p.to_wire(i as u8 + 1, &pending.spi_in.to_be_bytes()))
                .collect(),
        ),
        nonce: Some(pending.nonce.clone()),
        ts_i: Some(pending.ts_i.clone()),
        ts_r: Some(pending.ts_r.clone()),
        ..Body::default()
    };
    if let (Some(ke), Some(p)) = (&pending.ke, pending.proposals.first())
        && let Some(g) = p.dh.first()
    {
        body.ke = Some((u16::from(*g), ke.public_value().to_vec()));
    }
    body
}

/// The hash algorithms this end announces (RFC 7427): SHA2-256, SHA2-384, SHA2-512 and
/// "identity" (Ed25519).
fn hash_list() -> Vec<u8> {
    auth::HashAlgorithm::SUPPORTED
        .iter()
        .flat_map(|h| h.to_be_bytes())
        .collect()
}
