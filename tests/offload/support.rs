//! A gateway's offload engine on the card model, the far end of its port, and a peer that
//! reads what it sends and writes what it receives; plus the ledger that checks every
//! packet's fate.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use espo_config::Config;
use espo_driver::model::{FaultKind, FaultTrigger};
use espo_harness::testbed::{CardUnderTest, FaultInjector, ModelCard};
use espo_harness::validate::traffic::{identity, inner_packet};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::{Decapsulated, Encapsulated, SoftwareEngine};
use espo_offload::{
    CardMode, EngineEvent, ManualClock, MemWire, OffloadEngine, OffloadOptions, RxReport, SentAs,
    TxReport, Wire, card_config,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub const GCM_OUT: u32 = 0x1001;
pub const CHACHA_OUT: u32 = 0x1002;
pub const GCM_IN: u32 = 0x2001;
pub const CBC_IN: u32 = 0x2002;

/// Networks: ours 10.1/16; GCM_OUT protects to 10.2/16, CHACHA_OUT to 10.3/16; GCM_IN
/// from 10.4/16, CBC_IN from 10.5/16.
pub const NET_GCM_OUT: u8 = 2;
pub const NET_CHACHA_OUT: u8 = 3;
pub const NET_GCM_IN: u8 = 4;
pub const NET_CBC_IN: u8 = 5;

fn sa(spi: u32, src: &str, dst: &str, alg: &str, key: &str, extra: &str) -> String {
    format!(
        "[[sa]]\nspi = {spi:#x}\nprotocol = \"esp\"\nsrc = \"{src}\"\ndst = \"{dst}\"\nencryption = \"{alg}\"\nkey = \"{key}\"\n{extra}\n"
    )
}

/// Policies for IPv4 (10.N/16) and IPv6 (2001:db8:N::/48) inner packets.
fn policy(dir: &str, from: u8, to: u8, spi: u32) -> String {
    [
        (format!("10.{from}.0.0/16"), format!("10.{to}.0.0/16")),
        (format!("2001:db8:{from:x}::/48"), format!("2001:db8:{to:x}::/48")),
    ]
    .iter()
    .map(|(s, d)| {
        format!(
            "[[policy]]\ndir = \"{dir}\"\nsrc = \"{s}\"\ndst = \"{d}\"\naction = \"protect\"\nsa = [{spi:#x}]\n"
        )
    })
    .collect()
}

/// Both sides' configurations; `gcm_out_extra` is added to the outbound AES-GCM SA (ESN,
/// a starting sequence number, lifetimes — these on the local side only).
pub fn configs(gcm_out_extra: &str) -> (String, String) {
    let peer_extra: String = gcm_out_extra
        .lines()
        .filter(|l| !l.trim_start().starts_with("lifetime"))
        .map(|l| format!("{l}\n"))
        .collect();
    let k128 = "4142434445464748494a4b4c4d4e4f5051525354";
    let k256 = "6162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f8081828384";
    // Every SA has its own key: two AEAD SAs under one key would repeat nonces.
    let k256_in = "9192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4";
    let k_cbc = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0";
    let cbc_extra = format!(
        "integrity = \"hmac-sha256-128\"\nintegrity_key = \"{}\"\nreplay_window = 64",
        "c1".repeat(32)
    );
    let both = |local: bool| {
        let mut t = String::new();
        t += &sa(
            GCM_OUT,
            "192.0.2.1",
            "192.0.2.2",
            "aes-gcm-128",
            k128,
            &format!(
                "{}\nreplay_window = 0",
                if local { gcm_out_extra } else { &peer_extra }
            ),
        );
        t += &sa(
            CHACHA_OUT,
            "192.0.2.1",
            "192.0.2.2",
            "chacha20-poly1305",
            k256,
            "replay_window = 0",
        );
        t += &sa(
            GCM_IN,
            "192.0.2.2",
            "192.0.2.1",
            "aes-gcm-256",
            k256_in,
            "replay_window = 64",
        );
        t += &sa(
            CBC_IN,
            "192.0.2.2",
            "192.0.2.1",
            "aes-cbc-128",
            k_cbc,
            &cbc_extra,
        );
        let (o, i) = if local { ("out", "in") } else { ("in", "out") };
        t += &policy(o, 1, NET_GCM_OUT, GCM_OUT);
        t += &policy(o, 1, NET_CHACHA_OUT, CHACHA_OUT);
        t += &policy(i, NET_GCM_IN, 1, GCM_IN);
        t += &policy(i, NET_CBC_IN, 1, CBC_IN);
        t
    };
    (both(true), both(false))
}

pub fn parse(text: &str) -> Config {
    Config::parse(text, Path::new("offload-test.toml")).expect("configuration")
}

/// The engine under test and everything around it.
pub struct Rig {
    pub engine: OffloadEngine,
    pub port: Box<dyn Wire>,
    pub faults: Box<dyn FaultInjector>,
    pub fallback: MemWire,
    pub clock: ManualClock,
    /// Decrypts what the engine sends (windows off: it must read everything).
    pub peer_rx: SoftwareEngine,
    /// Encrypts what the engine receives.
    pub peer_tx: SoftwareEngine,
    pub rng: StdRng,
    pub ledger: Ledger,
    pub events: Vec<EngineEvent>,
}

/// The engine's options in these tests: a manual clock, a fallback wire.
pub fn rig_with(local: &str, peer: &str, tweak: impl FnOnce(&mut OffloadOptions)) -> Rig {
    rig_on(card_config(), local, peer, tweak)
}

/// As [`rig_with`], with the card brought up with `card_config`.
pub fn rig_on(
    card_config: espo_driver::card::CardConfig,
    local: &str,
    peer: &str,
    tweak: impl FnOnce(&mut OffloadOptions),
) -> Rig {
    let mut card = ModelCard::default().open(card_config).expect("card model");
    let (near, far) = MemWire::pair();
    let clock = ManualClock::default();
    let mut options = OffloadOptions {
        fallback: Some(Box::new(near)),
        clock: Arc::new(clock.clone()),
        ..OffloadOptions::default()
    };
    tweak(&mut options);
    let local = parse(local);
    let engine =
        OffloadEngine::new(&local.sas, &local.policies, Some(card.card), options).expect("engine");
    let peer_cfg = parse(peer);
    Rig {
        engine,
        port: card.port,
        faults: card.faults.take().expect("the model injects faults"),
        fallback: far,
        clock,
        peer_rx: peer_cfg.software_engine().expect("peer"),
        peer_tx: peer_cfg.software_engine().expect("peer"),
        rng: StdRng::seed_from_u64(5),
        ledger: Ledger::default(),
        events: Vec::new(),
    }
}

pub fn rig(gcm_out_extra: &str) -> Rig {
    let (local, peer) = configs(gcm_out_extra);
    rig_with(&local, &peer, |_| {})
}

impl Rig {
    /// Submits one inner packet to network `to`, its identity `tag`.
    pub fn send(&mut self, tag: u64, to: u8, payload: usize) {
        let p = inner_packet(
            &mut self.rng,
            1,
            to,
            tag.is_multiple_of(2),
            tag as u32,
            payload,
        );
        self.engine.submit(tag, &p);
        self.ledger.submitted.insert(tag, p);
    }

    pub fn inject_fault(&self, kind: FaultKind, at_packet: u64) {
        self.faults.inject(kind, FaultTrigger::AtPacket(at_packet));
    }

    /// Polls until every submitted packet is reported (or the device clock says stuck),
    /// then reads the wire.
    pub fn settle(&mut self) {
        let mut reports = Vec::new();
        for _ in 0..2_000_000 {
            self.engine.wait(Duration::from_micros(20));
            self.engine.take_tx_reports(&mut reports);
            self.engine.take_events(&mut self.events);
            if self.engine.tx_outstanding() == 0
                && self.ledger.reports.len() + reports.len() >= self.ledger.submitted.len()
            {
                break;
            }
        }
        for r in reports {
            self.ledger.report(r);
        }
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        while self.port.recv(&mut buf) {
            frames.push(std::mem::take(&mut buf));
        }
        frames.extend(self.fallback.drain());
        for f in frames {
            self.ledger.wire(&mut self.peer_rx, &f);
        }
    }

    /// An ESP frame from the peer carrying an inner packet from network `from`.
    pub fn peer_frame(&mut self, from: u8, id: u32) -> Vec<u8> {
        let inner = inner_packet(&mut self.rng, from, 1, false, id, 100);
        let mut out = vec![0u8; 512];
        let Ok(Encapsulated::Protected { len, .. }) =
            self.peer_tx.outbound.encapsulate(&inner, &mut out)
        else {
            panic!("the peer cannot send from 10.{from}/16");
        };
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
        f.extend_from_slice(&out[..len]);
        f
    }

    /// Hands frames to the engine (through the card's port, or the fallback wire once the
    /// card is gone) and returns one report each.
    pub fn receive(&mut self, frames: &[Vec<u8>]) -> Vec<RxReport> {
        for f in frames {
            if self.engine.mode() == CardMode::Gone {
                self.fallback.send_bytes(f);
            } else {
                self.port.send(f);
            }
        }
        self.collect(frames.len())
    }

    /// Polls until `n` receive reports came (or a long while passed on the device clock).
    pub fn collect(&mut self, n: usize) -> Vec<RxReport> {
        let mut got = Vec::new();
        for _ in 0..200_000 {
            self.engine.wait(Duration::from_micros(20));
            self.engine.take_rx_reports(&mut got);
            self.engine.take_events(&mut self.events);
            if got.len() >= n {
                break;
            }
        }
        got
    }
}

/// Every packet's fate: reports, and what appeared on the wire.
#[derive(Default)]
pub struct Ledger {
    pub submitted: HashMap<u64, Vec<u8>>,
    pub reports: HashMap<u64, Result<SentAs, DropReason>>,
    /// Identity -> times seen on the wire.
    pub seen: HashMap<u64, u32>,
    /// (SPI, sequence number) of every ESP packet on the wire.
    pub nonces: HashSet<(u32, u64)>,
    pub nonce_reuse: u32,
    pub twice_reported: u32,
    pub unreadable: u32,
}

impl Ledger {
    fn report(&mut self, r: TxReport) {
        if self.reports.insert(r.tag, r.outcome).is_some() {
            self.twice_reported += 1;
        }
    }

    fn wire(&mut self, peer: &mut SoftwareEngine, frame: &[u8]) {
        let mut ip = frame.get(14..).unwrap_or(&[]).to_vec();
        let id = match peer.inbound.decapsulate(&mut ip) {
            Ok(Decapsulated::Inner { range, spi, seq }) => {
                if !self.nonces.insert((spi, seq)) {
                    self.nonce_reuse += 1;
                }
                identity(&ip[range])
            }
            Ok(Decapsulated::Bypass) => identity(&ip),
            _ => None,
        };
        match id {
            Some(id) => *self.seen.entry(u64::from(id)).or_default() += 1,
            None => self.unreadable += 1,
        }
    }

    /// The invariants: every packet reported once; sent ones on the wire once; ones of
    /// unknown fate (`device-error`) at most once; other drops never; no (SPI, sequence
    /// number) twice; nothing unreadable.
    pub fn assert_sound(&self) {
        assert_eq!(self.twice_reported, 0, "a packet reported twice");
        assert_eq!(self.nonce_reuse, 0, "a sequence number used twice");
        assert_eq!(self.unreadable, 0, "a frame the peer cannot read");
        for tag in self.submitted.keys() {
            let seen = self.seen.get(tag).copied().unwrap_or(0);
            match self.reports.get(tag) {
                None => panic!("packet {tag} never reported (lost)"),
                Some(Ok(_)) => assert_eq!(seen, 1, "packet {tag}: sent, seen {seen} times"),
                Some(Err(DropReason::DeviceError)) => {
                    assert!(seen <= 1, "packet {tag}: fate unknown, seen {seen} times")
                }
                Some(Err(reason)) => {
                    assert_eq!(seen, 0, "packet {tag}: dropped ({reason}) but on the wire")
                }
            }
        }
    }

    /// Sequence numbers the engine used on `spi`, sorted.
    pub fn seqs(&self, spi: u32) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .nonces
            .iter()
            .filter(|(s, _)| *s == spi)
            .map(|(_, q)| *q)
            .collect();
        v.sort_unstable();
        v
    }

    pub fn count(&self, pred: impl Fn(&Result<SentAs, DropReason>) -> bool) -> usize {
        self.reports.values().filter(|r| pred(r)).count()
    }
}
