//! Differential test of the card model against the software engine (issue 5, datasheet
//! §7.7/§7.8): the same SAs, keys and sequence numbers on both; random inner packets are
//! encapsulated by the model (driven through BAR0 and DMA, as hardware is) and by
//! `espo_ipsec::engine::SoftwareEngine`, and the two tunnel packets must be the same bytes.
//! Each side's output is then decapsulated by the other side — reordered, replayed, held
//! back past the window, corrupted, re-addressed to an unknown SPI, ECN-marked on the
//! way — and the verdicts and inner packets must agree.
//!
//! `ESPO_DIFF_PACKETS` (default 1500 per seed) and `ESPO_DIFF_SEED` (default: three fixed
//! seeds) make longer or other runs.

#[path = "../hw-model/tests/common/mod.rs"]
mod card;
#[path = "model_vs_software/traffic.rs"]
mod traffic;
#[path = "model_vs_software/verdict.rs"]
mod verdict;

use std::collections::BTreeMap;
use std::path::Path;

use card::Host;
use espo_config::Config;
use espo_fpga::{SaEntry, Status};
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::{Encapsulated, SoftwareEngine};
use espo_ipsec::wire::Version;
use espo_ipsec::wire::ethernet::EtherType;
use espo_model::{MemLink, ModelParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use traffic::TestSa;
use verdict::Verdict;

/// Card SA table index of the inbound twin of outbound SA `i`.
const INBOUND_BASE: u32 = 32;

/// Both engines with the same SAs, and what the run saw.
struct Rig {
    sas: Vec<TestSa>,
    card: Host,
    port: MemLink,
    sender: SoftwareEngine,
    receiver: SoftwareEngine,
    /// Verdict kinds seen (both engines agreeing), for the coverage check.
    seen: BTreeMap<&'static str, usize>,
    mismatches: Vec<String>,
}

fn engine(text: &str) -> SoftwareEngine {
    let config = Config::parse(text, Path::new("model-vs-software.toml")).expect("config");
    config.software_engine().expect("engine")
}

impl Rig {
    fn new(rng: &mut StdRng) -> Rig {
        let sas = traffic::test_sas(rng);
        let mut card = Host::new(ModelParams::default());
        let (near, port) = MemLink::pair();
        card.model.attach_link(Box::new(near));
        card.bring_up(1, 6);
        for (i, sa) in sas.iter().enumerate() {
            let out: SaEntry = traffic::sa_entry(i, sa, true);
            assert_eq!(card.sa_write(i as u32, &out, None), Status::Ok);
            let inb = traffic::sa_entry(i, sa, false);
            let state = traffic::inbound_state(sa);
            let index = INBOUND_BASE + i as u32;
            assert_eq!(card.sa_write(index, &inb, Some(&state)), Status::Ok);
        }
        Rig {
            sender: engine(&traffic::config_text(&sas, "out")),
            receiver: engine(&traffic::config_text(&sas, "in")),
            sas,
            card,
            port,
            seen: BTreeMap::new(),
            mismatches: Vec::new(),
        }
    }

    fn mismatch(&mut self, what: String) {
        if self.mismatches.len() < 20 {
            eprintln!("MISMATCH {what}");
        }
        self.mismatches.push(what);
    }

    /// Encapsulates `inner` (plus `link_pad` bytes after it) on SA `i` through both engines;
    /// returns (card packet, software packet) when both protected it.
    fn encapsulate(
        &mut self,
        i: usize,
        inner: &[u8],
        link_pad: &[u8],
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        frame.extend_from_slice(&EtherType::of_ip(inner).to_bytes());
        frame.extend_from_slice(inner);
        frame.extend_from_slice(link_pad);
        self.card.post_tx(0, &[(&frame, Some(i as u32))]);
        self.card.model.run_until_idle();
        let cpl = self.card.tx_completions(0);
        let on_wire = self.port.drain();
        let mut input = inner.to_vec();
        input.extend_from_slice(link_pad);
        let mut out = vec![0u8; input.len() + 256];
        let sw = self.sender.outbound.encapsulate(&input, &mut out);
        let spi = self.sas[i].spi;
        match (cpl.as_slice(), sw) {
            (
                [c],
                Ok(Encapsulated::Protected {
                    len,
                    seq,
                    spi: sw_spi,
                }),
            ) if c.status == Status::Ok => {
                let card_pkt = on_wire
                    .first()
                    .map(|f| f.data[14..].to_vec())
                    .unwrap_or_default();
                out.truncate(len);
                if (c.seq, spi) != (seq, sw_spi) || card_pkt != out {
                    let at = card_pkt.iter().zip(&out).position(|(a, b)| a != b);
                    self.mismatch(format!(
                        "encap sa {i} seq card {} sw {seq}: lengths {} / {}, first difference at {at:?}",
                        c.seq,
                        card_pkt.len(),
                        out.len()
                    ));
                }
                *self.seen.entry("encapsulated").or_default() += 1;
                Some((card_pkt, out))
            }
            ([c], Err(DropReason::SeqExhausted))
                if c.status == Status::SeqExhausted && on_wire.is_empty() =>
            {
                *self.seen.entry("seq-exhausted").or_default() += 1;
                None
            }
            (c, sw) => {
                self.mismatch(format!("encap sa {i}: card {c:?}, software {sw:?}"));
                None
            }
        }
    }

    /// Delivers the card's packet to the software receiver and the software engine's to
    /// the card; the verdicts must agree.
    fn deliver(&mut self, card_pkt: &[u8], sw_pkt: &[u8], what: &str) {
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        frame.extend_from_slice(&EtherType::of_ip(sw_pkt).to_bytes());
        frame.extend_from_slice(sw_pkt);
        self.port.send_bytes(&frame);
        self.card.model.run_until_idle();
        let got = self.card.rx_completions(0);
        let card = match got.as_slice() {
            [(c, data)] => Verdict::from_card(c, data),
            other => Verdict::Other(format!("card gave {} completions", other.len())),
        };
        let mut buf = card_pkt.to_vec();
        let r = self.receiver.inbound.decapsulate(&mut buf);
        let sw = Verdict::from_software(r, &buf);
        if card == sw {
            *self.seen.entry(card.kind()).or_default() += 1;
        } else {
            let short = |v: &Verdict| match v {
                Verdict::Inner { spi, seq, packet } => {
                    format!("inner spi {spi:#x} seq {seq} len {}", packet.len())
                }
                v => format!("{v:?}"),
            };
            self.mismatch(format!(
                "decap ({what}): card {}, software {}",
                short(&card),
                short(&sw)
            ));
        }
    }

    /// The ESP header's offset in a tunnel packet of SA `i`.
    fn esp_at(&self, i: usize) -> usize {
        let sa = &self.sas[i];
        (if sa.outer_v6 { 40 } else { 20 }) + if sa.udp.is_some() { 8 } else { 0 }
    }

    /// At the end: each engine's SA state agrees with the other's.
    fn compare_sa_state(&mut self) {
        for i in 0..self.sas.len() {
            let (st, out) = self.card.sa_read(i as u32);
            assert_eq!(st, Status::Ok);
            let sw_out = &self.sender.outbound.sas()[i];
            if (out.seq, out.packets, out.bytes)
                != (sw_out.seq(), sw_out.counters.packets, sw_out.counters.bytes)
            {
                self.mismatch(format!(
                    "outbound sa {i}: card {out:?} software {:?}",
                    sw_out.counters
                ));
            }
            let (st, inb) = self.card.sa_read(INBOUND_BASE + i as u32);
            assert_eq!(st, Status::Ok);
            let sw_in = &self.receiver.inbound.sas()[i];
            let card = (inb.seq, inb.packets, inb.bytes);
            let sw = (
                sw_in.replay.highest(),
                sw_in.counters.packets,
                sw_in.counters.bytes,
            );
            if card != sw {
                self.mismatch(format!(
                    "inbound sa {i}: card (top, packets, bytes) {card:?}, software {sw:?}"
                ));
            }
        }
    }
}

/// Sets the outer ECN field of a tunnel packet (a router marking it), fixing the IPv4
/// header checksum.
fn mark_outer_ecn(pkt: &mut [u8], ecn: u8) {
    if Version::of(pkt) == Some(Version::Ipv6) {
        pkt[1] = (pkt[1] & !0x30) | (ecn << 4);
    } else {
        pkt[1] = (pkt[1] & !3) | ecn;
        pkt[10..12].copy_from_slice(&[0, 0]);
        let sum = traffic::ones_complement(&pkt[..20]);
        pkt[10..12].copy_from_slice(&(!sum).to_be_bytes());
    }
}

/// A packet on its way to the receivers.
struct InFlight {
    sa: usize,
    card: Vec<u8>,
    sw: Vec<u8>,
}

fn run(seed: u64, packets: usize) -> Rig {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rig = Rig::new(&mut rng);
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut held: Vec<(usize, InFlight)> = Vec::new();
    let mut history: Vec<InFlight> = Vec::new();
    for n in 0..packets {
        let i = rng.gen_range(0..rig.sas.len());
        let v6 = rng.r#gen();
        let payload = traffic::payload_len(&mut rng);
        let inner = traffic::inner_packet(&mut rng, i, v6, payload);
        let pad: Vec<u8> = if rng.gen_bool(0.2) {
            (0..rng.gen_range(1..4)).map(|_| rng.r#gen()).collect()
        } else {
            Vec::new()
        };
        let Some((card, sw)) = rig.encapsulate(i, &inner, &pad) else {
            continue;
        };
        let esp = rig.esp_at(i);

        // Tampered copies arrive before the genuine packet.
        match rng.gen_range(0..100) {
            0..=7 => {
                let at = rng.gen_range(esp + 4..card.len());
                let flip = rng.gen_range(1..=255u8);
                let (mut c, mut s) = (card.clone(), sw.clone());
                c[at] ^= flip;
                s[at] ^= flip;
                rig.deliver(&c, &s, "corrupted");
            }
            8..=10 => {
                let spi = 0xDEAD_0000 | rng.gen_range(0..0xFFFFu32);
                let (mut c, mut s) = (card.clone(), sw.clone());
                c[esp..esp + 4].copy_from_slice(&spi.to_be_bytes());
                s[esp..esp + 4].copy_from_slice(&spi.to_be_bytes());
                rig.deliver(&c, &s, "unknown spi");
            }
            11..=14 => {
                // A rewritten sequence number: any 32-bit value, or one near the real one,
                // to drive ESN inference into every case (including numbers that cannot
                // exist) before the ICV check refuses what is left.
                let lo = u32::from_be_bytes(card[esp + 4..esp + 8].try_into().unwrap());
                let forged = if rng.r#gen() {
                    rng.r#gen()
                } else {
                    lo.wrapping_add(rng.gen_range(0..64)).wrapping_sub(32)
                };
                let (mut c, mut s) = (card.clone(), sw.clone());
                c[esp + 4..esp + 8].copy_from_slice(&forged.to_be_bytes());
                s[esp + 4..esp + 8].copy_from_slice(&forged.to_be_bytes());
                rig.deliver(&c, &s, "forged sequence number");
            }
            _ => {}
        }
        let mut pkt = InFlight { sa: i, card, sw };
        if rng.gen_bool(0.1) {
            // Link padding after the outer packet: ignored by both receivers.
            let junk: Vec<u8> = (0..rng.gen_range(1..9)).map(|_| rng.r#gen()).collect();
            pkt.card.extend_from_slice(&junk);
            pkt.sw.extend_from_slice(&junk);
        }
        if rng.gen_bool(0.1) {
            let ecn = if rng.r#gen() { 3 } else { 1 };
            mark_outer_ecn(&mut pkt.card, ecn);
            mark_outer_ecn(&mut pkt.sw, ecn);
        }
        if rng.gen_bool(0.03) {
            held.push((n + rng.gen_range(20..400), pkt));
        } else {
            in_flight.push(pkt);
        }

        // Mild reordering: one of the first few packets in flight goes next.
        while in_flight.len() > rng.gen_range(0..4) {
            let k = rng.gen_range(0..in_flight.len().min(3));
            let p = in_flight.remove(k);
            rig.deliver(&p.card, &p.sw, "in order or reordered");
            history.push(p);
        }
        while let Some(k) = held.iter().position(|(due, _)| *due <= n) {
            let (_, p) = held.remove(k);
            rig.deliver(&p.card, &p.sw, "held back");
            history.push(p);
        }
        if rng.gen_bool(0.06) && !history.is_empty() {
            let back = rng.gen_range(1..=history.len().min(200));
            let p = &history[history.len() - back];
            let (c, s, sa) = (p.card.clone(), p.sw.clone(), p.sa);
            rig.deliver(&c, &s, &format!("replay of sa {sa}, {back} back"));
        }
        if history.len() > 400 {
            history.drain(..100);
        }
    }
    for p in in_flight.drain(..).chain(held.drain(..).map(|(_, p)| p)) {
        rig.deliver(&p.card, &p.sw, "flush");
    }
    rig.compare_sa_state();
    rig
}

fn seeds() -> Vec<u64> {
    match std::env::var("ESPO_DIFF_SEED") {
        Ok(s) => vec![s.parse().expect("ESPO_DIFF_SEED is a number")],
        Err(_) => vec![1, 2, 3],
    }
}

#[test]
fn card_model_and_software_engine_agree_byte_for_byte() {
    let packets = std::env::var("ESPO_DIFF_PACKETS")
        .map(|s| s.parse().expect("ESPO_DIFF_PACKETS is a number"))
        .unwrap_or(1500);
    let mut total: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for seed in seeds() {
        let rig = run(seed, packets);
        for (k, v) in &rig.seen {
            *total.entry(k).or_default() += v;
        }
        mismatches.extend(
            rig.mismatches
                .into_iter()
                .map(|m| format!("seed {seed}: {m}")),
        );
    }
    eprintln!(
        "model vs software: {total:?}, {} mismatches",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
    for kind in [
        "encapsulated",
        "seq-exhausted",
        "inner",
        "bad-icv",
        "replayed",
        "stale",
        "unknown-spi",
        "ecn-drop",
    ] {
        assert!(
            total.get(kind).copied().unwrap_or(0) > 0,
            "no `{kind}` case was exercised: {total:?}"
        );
    }
}
