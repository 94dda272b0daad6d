//! One IKE SA: who it is with, how far its setup got, its keys and its exchanges' windows.

use std::net::SocketAddr;
use std::time::Instant;

use crate::auth::Identity;
use crate::crypto::{IkeSaKeys, KeyExchange, Prf, SkKeys};
use crate::daemon::ChildId;
use crate::exchange::{Backoff, Requests, Responses};
use crate::proposal::Chosen;
use crate::ts::TsRange;
use crate::wire::{self, ExchangeType, PayloadType};

/// How far an IKE SA got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The initiator sent IKE_SA_INIT and waits for the answer.
    InitSent,
    /// The responder answered IKE_SA_INIT and waits for IKE_AUTH.
    InitAnswered,
    /// The initiator sent IKE_AUTH.
    AuthSent,
    Established,
    /// A DELETE for the IKE SA went out; it goes when answered (or given up).
    Deleting,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::InitSent | Phase::InitAnswered | Phase::AuthSent => "CONNECTING",
            Phase::Established => "ESTABLISHED",
            Phase::Deleting => "DELETING",
        }
    }
}

/// A CHILD_SA of an IKE SA, as installed.
#[derive(Debug, Clone)]
pub(crate) struct ChildSa {
    pub id: ChildId,
    /// The index of its child in the connection.
    pub child: usize,
    pub spi_in: u32,
    pub spi_out: u32,
    pub algorithms: String,
    pub local_ts: Vec<TsRange>,
    pub remote_ts: Vec<TsRange>,
    pub installed: Instant,
    pub encap: bool,
    /// When this end renews it (rekey_time less a random part of rand_time); `None`: never.
    pub rekey_at: Option<Instant>,
    /// A rekey replaced it (or is under way): it goes once the new one is in.
    pub rekeyed: bool,
    /// How many rekeys came before it.
    pub generation: u32,
    /// Why this end renews it: `time`, or the engine's soft limit (`bytes`, `packets`).
    pub rekey_cause: &'static str,
    /// How the rekey that made it came about (by this end and why, by the peer, a
    /// collision), for the status.
    pub renewed: Option<String>,
    /// The CHILD_SA it replaced, whether this end started the exchange that made it, and
    /// the lowest of that exchange's two nonces (a rekey collision, §2.8.1, keeps the one
    /// whose exchange did not have the lowest nonce of the four).
    pub replaces: Option<(ChildId, bool, Vec<u8>)>,
}

/// A CHILD_SA this end asked for and waits for.
#[derive(Debug)]
pub(crate) struct PendingChild {
    pub child: usize,
    pub spi_in: u32,
    pub proposals: Vec<crate::proposal::Proposal>,
    pub ts_i: Vec<TsRange>,
    pub ts_r: Vec<TsRange>,
    /// For CREATE_CHILD_SA: this end's nonce and (with PFS) key exchange.
    pub nonce: Vec<u8>,
    pub ke: Option<KeyExchange>,
    /// The CHILD_SA this one replaces (a rekey, §2.8).
    pub rekey_of: Option<ChildId>,
}

/// What the IKE SA's AUTH payloads sign besides the identity: each end's IKE_SA_INIT message
/// and nonce.
#[derive(Debug, Default)]
pub(crate) struct InitMessages {
    /// The IKE_SA_INIT message this end sent (the last one, with cookie or new group).
    pub ours: Vec<u8>,
    /// The one the peer sent.
    pub theirs: Vec<u8>,
}

pub(crate) struct IkeSa {
    pub conn: usize,
    /// This end started the IKE SA.
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub phase: Phase,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub ke: Option<KeyExchange>,
    /// The group the initiator's KE uses (changed by INVALID_KE_PAYLOAD).
    pub group: u16,
    pub cookie: Option<Vec<u8>>,
    pub chosen: Option<Chosen>,
    pub prf: Option<Prf>,
    pub keys: Option<IkeSaKeys>,
    pub sk: Option<SkKeys>,
    pub init: InitMessages,
    pub requests: Requests,
    pub responses: Responses,
    /// NAT detection: this end / the peer is behind a NAT (or pretends).
    pub nat_here: bool,
    pub nat_there: bool,
    pub peer_id: Option<Identity>,
    pub local_id: Option<Identity>,
    pub peer_hashes: Vec<u16>,
    pub children: Vec<ChildSa>,
    pub pending: Option<PendingChild>,
    /// Children of the connection still to negotiate (CREATE_CHILD_SA, one at a time).
    pub to_start: Vec<usize>,
    /// Rekeyed CHILD_SAs to delete (INFORMATIONAL) once their grace period is over, and
    /// those whose DELETE is out.
    pub to_delete: Vec<(ChildId, Instant)>,
    pub deleting: Vec<ChildId>,
    pub created: Instant,
    pub established: Option<Instant>,
    /// When this end renews the IKE SA (its rekey_time less a random part of rand_time).
    pub rekey_at: Option<Instant>,
    /// This end's rekey of the IKE SA under way: its new SPI and key exchange, its nonce.
    pub rekeying: Option<(u64, KeyExchange, Vec<u8>)>,
    /// The peer renewed this IKE SA: this end's SPI of the new one and the lowest nonce of
    /// that exchange (when both ends renew at once, the new IKE SA whose exchange had the
    /// lowest of the four nonces is redundant, §2.8.1).
    pub renewed_by_peer: Option<(u64, Vec<u8>)>,
    /// When this end authenticates the peer again (a new IKE SA, make-before-break).
    pub reauth_at: Option<Instant>,
    /// A reauthentication of this IKE SA is under way: the new IKE SA's SPI (this end's).
    pub reauth_by: Option<u64>,
    /// This IKE SA re-authenticates the one of this end's SPI: it takes its CHILD_SAs
    /// over and deletes it once its own are up.
    pub reauth_of: Option<u64>,
    /// How many rekeys came before this IKE SA.
    pub generation: u32,
    /// How the rekey that made it came about, for the status.
    pub renewed: Option<String>,
    pub last_heard: Instant,
    /// When this end last sent anything on the IKE SA (a NAT keepalive is due 20 s later).
    pub last_sent: Instant,
    /// What this end's outstanding request was (to read its answer).
    pub asked: Option<Asked>,
    /// Both ends announced IKE fragmentation (RFC 7383).
    pub fragmentation: bool,
    /// The largest IP datagram a message (or fragment) may make.
    pub fragment_size: usize,
    /// Fragments of messages not whole yet.
    pub reassembly: Vec<super::fragment::Reassembly>,
}

/// This end's outstanding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    Init,
    Auth,
    CreateChild,
    /// An empty INFORMATIONAL: is the peer alive?
    Dpd,
    /// CREATE_CHILD_SA for a new IKE SA (§2.18).
    RekeyIke,
    /// DELETE of the IKE SA a rekey replaced.
    DeleteIke,
    DeleteChild,
}

impl core::fmt::Debug for IkeSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IkeSa")
            .field("spi_i", &format_args!("{:016x}", self.spi_i))
            .field("spi_r", &format_args!("{:016x}", self.spi_r))
            .field("phase", &self.phase)
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl IkeSa {
    pub fn new(
        conn: usize,
        initiator: bool,
        our_spi: u64,
        local: SocketAddr,
        remote: SocketAddr,
        backoff: Backoff,
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            conn,
            initiator,
            spi_i: if initiator { our_spi } else { 0 },
            spi_r: if initiator { 0 } else { our_spi },
            local,
            remote,
            phase: if initiator {
                Phase::InitSent
            } else {
                Phase::InitAnswered
            },
            ni: Vec::new(),
            nr: Vec::new(),
            ke: None,
            group: 0,
            cookie: None,
            chosen: None,
            prf: None,
            keys: None,
            sk: None,
            init: InitMessages::default(),
            requests: Requests::new(0, backoff),
            responses: Responses::new(0),
            nat_here: false,
            nat_there: false,
            peer_id: None,
            local_id: None,
            peer_hashes: Vec::new(),
            children: Vec::new(),
            pending: None,
            to_start: Vec::new(),
            to_delete: Vec::new(),
            deleting: Vec::new(),
            created: now,
            established: None,
            rekey_at: None,
            rekeying: None,
            renewed_by_peer: None,
            reauth_at: None,
            reauth_by: None,
            reauth_of: None,
            generation: 0,
            renewed: None,
            last_heard: now,
            last_sent: now,
            asked: None,
            fragmentation: false,
            fragment_size: crate::connection::DEFAULT_FRAGMENT_SIZE,
            reassembly: Vec::new(),
        }
    }

    /// The SPI this end chose.
    pub fn our_spi(&self) -> u64 {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    pub fn nat(&self) -> bool {
        self.nat_here || self.nat_there
    }

    /// The header of a message of this IKE SA.
    pub fn header(
        &self,
        exchange: ExchangeType,
        message_id: u32,
        response: bool,
    ) -> wire::header::Repr {
        wire::header::Repr {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType::Sk,
            minor_version: 0,
            exchange_type: exchange,
            flags: wire::header::Flags {
                initiator: self.initiator,
                version: false,
                response,
            },
            message_id,
            length: 0,
        }
    }
}
