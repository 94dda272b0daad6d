//! What a demo run found, and how it reads.

use espo_ipsec::spec::Direction;
use std::fmt;
use std::time::Duration;

use espo_driver::model::PerfReport;

use espo_config::Config;
use espo_ipsec::counters::DropReason;
use espo_ipsec::sa::Transform;
use espo_offload::{OffloadCounters, Path, Placement};

use super::link::LinkStats;
use super::run::{Demo, MIXED_SIZES, PacketSize};
use super::show;
use super::software_gw::GatewayCounters;
use super::topology::Tunnel;

/// One SA of one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaLine {
    pub gateway: char,
    pub spi: u32,
    pub dir: Direction,
    pub algorithm: String,
    /// `card`, or `software` with the reason.
    pub runs_on: String,
    pub packets: u64,
    pub bytes: u64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub wall: Duration,
    pub sent: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub corrupted: u64,
    pub unexpected: u64,
    pub refused: u64,
    /// Sent, and neither delivered nor refused.
    pub lost: u64,
    pub exchanges: u64,
    /// The run ended with packets in flight and nothing moving.
    pub stuck: bool,
    pub size: PacketSize,
    pub seed: u64,
    pub tunnels: Vec<Tunnel>,
    pub card: PerfReport,
    pub link: LinkStats,
    pub gateway_a: OffloadCounters,
    pub gateway_b: GatewayCounters,
    pub sas: Vec<SaLine>,
    /// Drops by gateway, direction and reason (non-zero ones).
    pub drops: Vec<(char, &'static str, DropReason, u64)>,
    /// The packet shown before and after encapsulation, rendered.
    pub shown: Vec<String>,
    /// What key management renewed while traffic flowed (a negotiated demo), and what went
    /// wrong.
    pub renewals: Option<super::keying::Renewals>,
    pub keying_errors: Vec<String>,
    /// Gateway A's `espo ike list` when the traffic ended: each SA's rekeys.
    pub final_list: Vec<String>,
}

/// The algorithm of SA `spi`: from the configuration the gateway started with, or from
/// the renewal that installed it.
fn algorithm(config: &Config, keying: Option<&super::keying::Keying>, spi: u32) -> String {
    let Some(sa) = config.sa(spi) else {
        return keying
            .and_then(|k| k.algorithm(spi))
            .unwrap_or("?")
            .to_string();
    };
    match (sa.encryption, sa.integrity) {
        (Some(e), Some(i)) => format!("{e}+{i}"),
        (Some(e), None) => e.to_string(),
        (None, Some(i)) => format!("ah {i}"),
        (None, None) => "?".into(),
    }
}

impl Summary {
    pub(super) fn of(demo: &Demo) -> Summary {
        let l = &demo.ledger;
        let engine_a = demo.a.engine();
        let mut sas: Vec<SaLine> = engine_a
            .placements()
            .iter()
            .map(|p| SaLine {
                gateway: 'A',
                spi: p.spi,
                dir: p.dir,
                algorithm: algorithm(&demo.config_a, demo.keying.as_ref(), p.spi),
                runs_on: match (p.placement, p.why_software) {
                    (Placement::Card { .. }, _) => "card".into(),
                    (Placement::Software, Some(why)) => format!("software ({why})"),
                    (Placement::Software, None) => "software".into(),
                },
                packets: p.counters.packets,
                bytes: p.counters.bytes,
            })
            .collect();
        let sw = demo.b.engine();
        let b_out = sw
            .outbound
            .sas()
            .iter()
            .map(|s| (Direction::Out, s.params.spi, s.counters));
        let b_in = sw
            .inbound
            .sas()
            .iter()
            .map(|s| (Direction::In, s.params.spi, s.counters));
        for (dir, spi, c) in b_out.chain(b_in) {
            sas.push(SaLine {
                gateway: 'B',
                spi,
                dir,
                algorithm: algorithm(&demo.config_b, demo.keying.as_ref(), spi),
                runs_on: "software".into(),
                packets: c.packets,
                bytes: c.bytes,
            });
        }
        let a = engine_a.counters().clone();
        let b = demo.b.counters.clone();
        let mut drops = Vec::new();
        for (gw, dir, counters) in [
            ('A', "out", &a.tx_dropped),
            ('A', "in", &a.rx_dropped),
            ('B', "out", &b.tx_dropped),
            ('B', "in", &b.rx_dropped),
        ] {
            drops.extend(counters.nonzero().map(|(r, n)| (gw, dir, r, n)));
        }
        Summary {
            wall: demo.wall,
            sent: l.sent,
            delivered: l.delivered,
            delivered_bytes: l.delivered_bytes,
            corrupted: l.corrupted,
            unexpected: l.unexpected,
            refused: l.refused,
            lost: l.in_flight() as u64,
            exchanges: demo.exchanges_done,
            stuck: demo.stuck,
            size: demo.options.size,
            seed: demo.options.seed,
            tunnels: demo.tunnels.clone(),
            card: demo.a.perf(),
            link: demo.link.stats(),
            gateway_a: a,
            gateway_b: b,
            sas,
            drops,
            shown: render_shown(demo),
            renewals: demo.keying.as_ref().map(|k| k.renewals),
            keying_errors: demo
                .keying
                .as_ref()
                .map(|k| k.errors.clone())
                .unwrap_or_default(),
            final_list: demo.final_list.clone(),
        }
    }

    /// Every packet sent was delivered intact and nothing was dropped.
    pub fn success(&self) -> bool {
        self.sent > 0
            && self.delivered == self.sent
            && self.lost == 0
            && self.corrupted == 0
            && self.unexpected == 0
            && self.refused == 0
            && self.drops.is_empty()
            && self.link.not_esp == 0
            && self.keying_errors.is_empty()
    }

    pub fn packets_per_second(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Inner traffic delivered, Gbit/s of wall-clock time.
    pub fn gbps(&self) -> f64 {
        self.delivered_bytes as f64 * 8.0 / self.wall.as_secs_f64().max(1e-9) / 1e9
    }
}

fn render_shown(demo: &Demo) -> Vec<String> {
    let s = &demo.shown;
    let Some(t) = demo.tunnels.get(s.tunnel) else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "one packet, before and after encapsulation ({} -> {}, the first request):",
        t.a.name, t.b.name
    )];
    out.push(format!(
        "  before: the inner packet as {} handed it to gateway A",
        t.a.name
    ));
    out.extend(
        show::render_inner(&s.inner)
            .into_iter()
            .map(|l| format!("    {l}")),
    );
    let Some(outer) = &s.outer else {
        out.push("  after: (the tunnel packet was not seen on the link)".into());
        return out;
    };
    let by = match s.path {
        Some(Path::Card) => "the card of gateway A",
        _ => "gateway A's software engine",
    };
    out.push(format!(
        "  after: as {by} sent it on SA {:#010x} with sequence number {}, seen on the link",
        s.spi, s.seq
    ));
    let sw = demo.a.engine().software();
    let (iv, icv) = sw
        .outbound
        .sas()
        .iter()
        .find(|sa| sa.params.spi == s.spi)
        .and_then(|sa| match &sa.params.transform {
            Transform::Esp(t) => Some((t.iv_len(), t.icv_len())),
            Transform::Ah(_) => None,
        })
        .unwrap_or((8, 16));
    out.extend(
        show::render_outer(outer, iv, icv, s.inner.len())
            .into_iter()
            .map(|l| format!("    {l}")),
    );
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sizes = match self.size {
            PacketSize::Mixed => format!(
                "{}-{} bytes mixed",
                MIXED_SIZES.iter().min().unwrap_or(&0),
                MIXED_SIZES.iter().max().unwrap_or(&0)
            ),
            PacketSize::Fixed(n) => format!("{n} bytes"),
        };
        writeln!(
            f,
            "espo demo: {} tunnels between gateway A (offload engine on the ESPO-1 card model) and gateway B (software engine)",
            self.tunnels.len()
        )?;
        writeln!(
            f,
            "  traffic     {} packets: {} UDP request/response exchanges completed, inner packets {sizes}, seed {}",
            self.sent, self.exchanges, self.seed
        )?;
        writeln!(
            f,
            "  delivered   {} of {} packets intact (byte for byte); lost {}, corrupted {}, unexpected {}, refused {}{}",
            self.delivered,
            self.sent,
            self.lost,
            self.corrupted,
            self.unexpected,
            self.refused,
            if self.stuck {
                " (traffic stopped moving)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "  wall clock  {:.2} s: {:.0} packets/s, {:.3} Gbit/s of inner traffic (one thread runs both gateways, the hosts and the card model)",
            self.wall.as_secs_f64(),
            self.packets_per_second(),
            self.gbps()
        )?;
        if let Some(r) = &self.renewals {
            writeln!(
                f,
                "  rekeys      {} CHILD_SA renewals under traffic (each at 20000 packets, counted by the card for tunnels 1-2, by software for 3-4), {} IKE SA rekeys, {} IKE messages; lost {}",
                r.child[0], r.ike, r.messages, self.lost
            )?;
        }
        for e in &self.keying_errors {
            writeln!(f, "  key management error: {e}")?;
        }
        if !self.final_list.is_empty() {
            writeln!(
                f,
                "              gateway A's IKE SAs and CHILD_SAs at the end (espo ike list):"
            )?;
            for l in self.final_list.iter().filter(|l| l.contains("_SA ")) {
                writeln!(f, "                {}", l.trim_start())?;
            }
        }
        let c = &self.card;
        let sim_s = c.elapsed_cycles() as f64 / c.clock_hz.max(1) as f64;
        writeln!(
            f,
            "  card        simulated ESPO-1: its port carried TX {:.1} / RX {:.1} Gbit/s ({} + {} frames in {:.0} µs of card time),",
            c.tx_line_gbps(),
            c.rx_line_gbps(),
            c.tx.packets,
            c.rx.packets,
            sim_s * 1e6
        )?;
        let busiest = c
            .bottleneck()
            .map(|(stage, u)| format!("; busiest stage {stage:?} {:.0}% busy", u * 100.0))
            .unwrap_or_default();
        writeln!(
            f,
            "              of which inner traffic it encapsulated {:.1} Gbit/s and decapsulated {:.1} Gbit/s itself{busiest}",
            c.tx_inner_gbps(),
            c.rx_inner_gbps()
        )?;
        let l = &self.link;
        writeln!(
            f,
            "  link        A -> B {} frames ({:.1} MB), B -> A {} frames ({:.1} MB): {}",
            l.a_to_b_frames,
            l.a_to_b_bytes as f64 / 1e6,
            l.b_to_a_frames,
            l.b_to_a_bytes as f64 / 1e6,
            if l.not_esp == 0 {
                "every frame ESP or ESP in UDP, nothing in clear".to_string()
            } else {
                format!("{} frames NOT ESP", l.not_esp)
            }
        )?;
        writeln!(f)?;
        writeln!(f, "tunnels")?;
        for (i, t) in self.tunnels.iter().enumerate() {
            writeln!(
                f,
                "  {}  {} {:<14} <-> {} {:<14} {} UDP {} <-> {}",
                i + 1,
                t.a.name,
                t.a.addr.to_string(),
                t.b.name,
                t.b.addr.to_string(),
                show::family(t.a.addr),
                t.a.port,
                t.b.port
            )?;
        }
        writeln!(f)?;
        let a = &self.gateway_a;
        writeln!(f, "gateway A (card model with software fallback)")?;
        writeln!(
            f,
            "  sent      {} encapsulated by the card, {} in software, {} bypassed; {} dropped",
            a.tx_card,
            a.tx_software,
            a.tx_bypass,
            a.tx_dropped.total()
        )?;
        writeln!(
            f,
            "  received  {} decapsulated by the card, {} in software, {} bypassed; {} dropped",
            a.rx_card,
            a.rx_software,
            a.rx_bypass,
            a.rx_dropped.total()
        )?;
        let b = &self.gateway_b;
        writeln!(f, "gateway B (software engine)")?;
        writeln!(
            f,
            "  sent      {} encapsulated, {} bypassed; {} dropped",
            b.tx_protected,
            b.tx_bypass,
            b.tx_dropped.total()
        )?;
        writeln!(
            f,
            "  received  {} decapsulated, {} bypassed; {} dropped",
            b.rx_delivered,
            b.rx_bypass,
            b.rx_dropped.total()
        )?;
        writeln!(f)?;
        writeln!(f, "security associations")?;
        writeln!(
            f,
            "  gw  spi         dir  {:<28} {:<45} {:>9} {:>13}",
            "algorithm", "runs on", "packets", "bytes"
        )?;
        for s in &self.sas {
            writeln!(
                f,
                "  {}   {:#010x}  {:<3}  {:<28} {:<45} {:>9} {:>13}",
                s.gateway,
                s.spi,
                s.dir.name(),
                s.algorithm,
                s.runs_on,
                s.packets,
                s.bytes
            )?;
        }
        writeln!(f)?;
        if self.drops.is_empty() {
            writeln!(f, "drops by reason: none")?;
        } else {
            writeln!(f, "drops by reason:")?;
            for (gw, dir, reason, n) in &self.drops {
                writeln!(f, "  gateway {gw} {dir:<3} {:<18} {n}", reason.name())?;
            }
        }
        writeln!(f)?;
        for line in &self.shown {
            writeln!(f, "{line}")?;
        }
        writeln!(f)?;
        if self.success() {
            write!(f, "result: every packet delivered intact")
        } else {
            write!(
                f,
                "result: FAILED: {} of {} packets delivered intact",
                self.delivered, self.sent
            )
        }
    }
}
