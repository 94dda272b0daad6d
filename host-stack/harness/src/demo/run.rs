//! The demo's traffic: exchanges started, packets moved round by round between the hosts,
//! the two gateways and the card, until every packet is accounted for.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use espo_config::Config;
use espo_offload::{Received, RxReport, SentAs, TxReport};

use super::DemoError;
use super::card_gw::CardGateway;
use super::hosts::{self, Kind, Message};
use super::ledger::{Ledger, Verdict};
use super::link::{LinkCounters, Tap};
use super::show::Shown;
use super::software_gw::SoftwareGateway;
use super::summary::Summary;
use super::topology::{self, Tunnel};

/// Inner packet sizes of the default mix, bytes (IP header included).
pub const MIXED_SIZES: [usize; 6] = [64, 256, 576, 1024, 1400, 1500];

/// Rounds in a row with nothing moving before the demo gives up on what is in flight.
const STUCK_ROUNDS: u32 = 100;

/// How much traffic to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// Packets through the tunnels, requests and responses together.
    Packets(u64),
    /// Start exchanges for this long.
    Time(Duration),
}

/// Inner packet sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketSize {
    /// Drawn from [`MIXED_SIZES`].
    Mixed,
    /// Every packet this many bytes.
    Fixed(usize),
}

/// How to run the demo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoOptions {
    pub budget: Budget,
    pub size: PacketSize,
    /// Seeds the sizes and the packets' content.
    pub seed: u64,
    /// Packets in flight at most.
    pub window: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            budget: Budget::Packets(500_000),
            size: PacketSize::Mixed,
            seed: 1,
            window: 512,
        }
    }
}

/// Where the demo is, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub elapsed: Duration,
    pub sent: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    /// Packets the demo will send in all, when it is counting packets.
    pub target: Option<u64>,
    /// The card's simulated throughput so far: what its port carried each way, Gbit/s.
    pub card_tx_gbps: f64,
    pub card_rx_gbps: f64,
}

/// A running demo. See the module documentation.
pub struct Demo {
    pub(super) config_a: Config,
    pub(super) config_b: Config,
    pub(super) tunnels: Vec<Tunnel>,
    pub(super) a: CardGateway,
    pub(super) b: SoftwareGateway,
    pub(super) link: std::sync::Arc<LinkCounters>,
    pub(super) ledger: Ledger,
    pub(super) options: DemoOptions,
    rng: StdRng,
    next_exchange: u64,
    pub(super) exchanges_done: u64,
    /// Packets from the hosts behind A, waiting to be handed to gateway A.
    a_queue: Vec<(u64, Vec<u8>)>,
    tx: Vec<TxReport>,
    rx: Vec<RxReport>,
    b_delivered: Vec<Vec<u8>>,
    started: Instant,
    pub(super) wall: Duration,
    idle_rounds: u32,
    pub(super) stuck: bool,
    pub(super) shown: Shown,
    /// Key management while traffic flows (a negotiated demo).
    pub(super) keying: Option<super::keying::Keying>,
    /// Gateway A's `espo ike list` when the traffic ended (a negotiated demo).
    pub(super) final_list: Vec<String>,
    /// IKE messages taken out of the frames gateway A's card port received.
    a_heard: std::sync::Arc<super::link::Heard>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("options", &self.options)
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

impl Demo {
    /// Both gateways up, the link between them, hosts from `config_a`'s policies.
    pub fn new(
        config_a: &Config,
        config_b: &Config,
        options: DemoOptions,
    ) -> Result<Demo, DemoError> {
        let (near, far) = espo_offload::MemWire::pair();
        Demo::on(config_a, config_b, options, near, far, None)
    }

    /// The gateways negotiate their tunnels with IKEv2 over the cable between them (their
    /// `[[connection]]` entries), then run on what they agreed.
    pub fn negotiated(
        config_a: &Config,
        config_b: &Config,
        options: DemoOptions,
    ) -> Result<(Demo, super::ike::Negotiated), DemoError> {
        let (near, far) = espo_offload::MemWire::pair();
        let mut n = super::ike::negotiate(config_a, config_b, &near, &far)?;
        let keying = n.keying.take();
        let mut demo = Demo::on(&n.a, &n.b, options, near, far, keying.as_ref())?;
        if let Some(k) = keying {
            demo.b.hear_ike(k.locals(1).to_vec());
            demo.keying = Some(k);
        }
        Ok((demo, n))
    }

    fn on(
        config_a: &Config,
        config_b: &Config,
        options: DemoOptions,
        near: espo_offload::MemWire,
        far: espo_offload::MemWire,
        keying: Option<&super::keying::Keying>,
    ) -> Result<Demo, DemoError> {
        let tunnels = topology::tunnels(config_a)?;
        let heard = std::sync::Arc::new(super::link::Heard::default());
        let a = match keying {
            Some(k) => CardGateway::open_with(
                config_a,
                Box::new(super::link::KeyedPort {
                    wire: near,
                    locals: k.locals(0).to_vec(),
                    heard: std::sync::Arc::clone(&heard),
                }),
            )?,
            None => CardGateway::open_on(config_a, near)?,
        };
        let (tap, link) = Tap::new(far);
        let b = SoftwareGateway::new(config_b, Box::new(tap)).map_err(DemoError::Software)?;
        Ok(Demo {
            config_a: config_a.clone(),
            config_b: config_b.clone(),
            tunnels,
            a,
            b,
            link,
            ledger: Ledger::default(),
            options,
            rng: StdRng::seed_from_u64(options.seed),
            next_exchange: 0,
            exchanges_done: 0,
            a_queue: Vec::new(),
            tx: Vec::new(),
            rx: Vec::new(),
            b_delivered: Vec::new(),
            started: Instant::now(),
            wall: Duration::ZERO,
            idle_rounds: 0,
            stuck: false,
            shown: Shown::default(),
            keying: None,
            final_list: Vec::new(),
            a_heard: heard,
        })
    }

    pub fn tunnels(&self) -> &[Tunnel] {
        &self.tunnels
    }

    /// Whether another exchange may start.
    fn may_start(&self) -> bool {
        match self.options.budget {
            Budget::Packets(n) => self.next_exchange.saturating_mul(2) < n,
            Budget::Time(t) => self.started.elapsed() < t,
        }
    }

    /// One round: new exchanges, gateway A and the card, gateway B. False once every
    /// packet is accounted for (or nothing has moved for a while).
    pub fn step(&mut self) -> bool {
        let before = (
            self.ledger.delivered,
            self.ledger.refused,
            self.ledger.corrupted,
        );
        while self.ledger.in_flight() < self.options.window && self.may_start() {
            self.start_exchange();
        }
        for (key, pkt) in self.a_queue.drain(..) {
            self.a.submit(key, &pkt);
        }
        self.a.run(&mut self.tx, &mut self.rx);
        self.a_reports();
        let mut delivered = std::mem::take(&mut self.b_delivered);
        self.b.receive(&mut |p| delivered.push(p.to_vec()));
        if let Some(frame) = self.b.take_captured() {
            self.shown.outer = Some(frame);
        }
        for p in delivered.drain(..) {
            self.deliver(&p, false);
        }
        self.b_delivered = delivered;
        if let Some(k) = self.keying.as_mut() {
            let now = k.clock(self.ledger.delivered);
            let heard =
                std::mem::take(&mut *self.a_heard.lock().unwrap_or_else(|p| p.into_inner()));
            for (m, src, dst) in heard {
                k.receive(0, &m, src, dst, now);
            }
            for (m, src, dst) in self.b.take_ike() {
                k.receive(1, &m, src, dst, now);
            }
            k.pump([&mut self.a, &mut self.b], now);
        }
        let after = (
            self.ledger.delivered,
            self.ledger.refused,
            self.ledger.corrupted,
        );
        self.idle_rounds = if after == before {
            self.idle_rounds + 1
        } else {
            0
        };
        self.wall = self.started.elapsed();
        let drained = self.ledger.in_flight() == 0 && self.a.outstanding() == 0;
        let done = !self.may_start() && drained;
        if self.idle_rounds >= STUCK_ROUNDS {
            self.stuck = true;
        }
        if done || self.stuck {
            if let Some(k) = self.keying.as_mut() {
                let now = k.clock(self.ledger.delivered);
                self.final_list = k.list(now).lines().map(str::to_string).collect();
            }
            return false;
        }
        true
    }

    /// Runs the demo to its end.
    pub fn run(&mut self, mut on_round: impl FnMut(&Demo)) {
        while self.step() {
            on_round(self);
        }
    }

    fn start_exchange(&mut self) {
        let n = self.next_exchange;
        self.next_exchange += 1;
        let count = self.tunnels.len() as u64;
        let tunnel = &self.tunnels[(n % count) as usize];
        let from_a = (n / count).is_multiple_of(2);
        let (src, dst) = if from_a {
            (&tunnel.a, &tunnel.b)
        } else {
            (&tunnel.b, &tunnel.a)
        };
        let size = match self.options.size {
            PacketSize::Fixed(s) => s,
            PacketSize::Mixed => MIXED_SIZES[self.rng.gen_range(0..MIXED_SIZES.len())],
        };
        let message = Message {
            kind: Kind::Request,
            exchange: n,
        };
        let rng = &mut self.rng;
        let Some(pkt) = hosts::build(src, dst, message, size, &mut |b| rng.fill_bytes(b)) else {
            return;
        };
        if n == 0 {
            self.shown.start(0, &pkt, message.key());
        }
        self.ledger.sent(message, pkt.clone());
        if from_a {
            self.a_queue.push((message.key(), pkt));
        } else if self.b.send(&pkt).is_err() {
            self.ledger.refused(message.key());
        }
    }

    /// Gateway A's reports: refusals leave the ledger, inner packets go to A's hosts.
    fn a_reports(&mut self) {
        let mut tx = std::mem::take(&mut self.tx);
        for r in tx.drain(..) {
            match r.outcome {
                Err(_) => self.ledger.refused(r.tag),
                Ok(SentAs::Esp { spi, seq, path }) if Some(r.tag) == self.shown.key => {
                    self.shown.sent(spi, seq, path);
                    self.b.capture(spi, seq);
                }
                Ok(_) => {}
            }
        }
        self.tx = tx;
        let mut rx = std::mem::take(&mut self.rx);
        for r in rx.drain(..) {
            match r.outcome {
                Ok(Received::Inner { packet, .. }) | Ok(Received::Bypass { packet }) => {
                    self.deliver(&packet, true)
                }
                // Counted by the engine, under its reason (IKE is taken out before the
                // card; the demo's card port is not its own, so no link frames come; its
                // engine copies what it receives, so nothing is lent).
                Ok(
                    Received::Keepalive
                    | Received::Ike { .. }
                    | Received::Link { .. }
                    | Received::Lent(_),
                )
                | Err(_) => {}
            }
        }
        self.rx = rx;
    }

    /// A packet reached a host behind A (`at_a`) or B: checked, and a request answered.
    fn deliver(&mut self, packet: &[u8], at_a: bool) {
        match self.ledger.received(packet) {
            Verdict::Intact(m) if m.kind == Kind::Request => {
                let Some(resp) = hosts::respond(packet) else {
                    return;
                };
                let message = Message {
                    kind: Kind::Response,
                    exchange: m.exchange,
                };
                self.ledger.sent(message, resp.clone());
                if at_a {
                    self.a_queue.push((message.key(), resp));
                } else if self.b.send(&resp).is_err() {
                    self.ledger.refused(message.key());
                }
            }
            Verdict::Intact(_) => self.exchanges_done += 1,
            Verdict::Corrupted | Verdict::Unexpected => {}
        }
    }

    /// Where the demo is.
    pub fn progress(&self) -> Progress {
        let perf = self.a.perf();
        Progress {
            elapsed: self.wall,
            sent: self.ledger.sent,
            delivered: self.ledger.delivered,
            delivered_bytes: self.ledger.delivered_bytes,
            target: match self.options.budget {
                Budget::Packets(n) => Some(n.div_ceil(2) * 2),
                Budget::Time(_) => None,
            },
            card_tx_gbps: perf.tx_line_gbps(),
            card_rx_gbps: perf.rx_line_gbps(),
        }
    }

    /// What the demo found.
    pub fn summary(&self) -> Summary {
        Summary::of(self)
    }
}
