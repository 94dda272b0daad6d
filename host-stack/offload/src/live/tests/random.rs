//! Random rekeys, removals, policy changes and moves between batches, with work in flight
//! on the card's rings: the invariants every packet and frame keeps.

use std::time::Duration;

use espo_driver::model::MemLink;
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::{Decapsulated, SoftwareEngine};
use espo_ipsec::sa::{InboundSa, OutboundSa, SaParams};
use espo_ipsec::spd::PolicyId;
use espo_ipsec::spec::Direction;

use super::{A, B, gcm, peer_frames, protect, wire_spi};
use crate::tests::{config, packet, peer_config, rig};
use crate::{OffloadEngine, OffloadOptions, Received, SentAs};

/// One step of a random run of the engine against a software peer.
#[derive(Debug, Clone)]
enum Step {
    /// Packets both ways; the engine polled `polls` times after (work left in flight).
    Batch { out: u8, inb: u8, polls: u8 },
    /// Rekey outbound: the peer accepts the next SA beside the current one, then the
    /// engine replaces its SA.
    RekeyOut,
    /// Rekey inbound: the engine accepts the next SA beside the current one, then the peer
    /// switches to it.
    RekeyIn,
    /// The engine removes its oldest inbound SA still in its grace period.
    RetireIn,
    /// An unrelated outbound SA and its policy come, or go (policy first).
    Extra { add: bool },
    /// The current SAs move between the card and software.
    Move { out: bool, to_card: bool },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        5 => (0u8..12, 0u8..8, 0u8..3).prop_map(|(out, inb, polls)| Step::Batch { out, inb, polls }),
        2 => Just(Step::RekeyOut),
        2 => Just(Step::RekeyIn),
        2 => Just(Step::RetireIn),
        1 => any::<bool>().prop_map(|add| Step::Extra { add }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(out, to_card)| Step::Move { out, to_card }),
    ]
}

/// The identity a test packet carries (its IPv4 identification).
fn ident(inner: &[u8]) -> u16 {
    u16::from_be_bytes([inner[4], inner[5]])
}

/// What a random run saw, checked as it goes.
#[derive(Default)]
struct Run {
    /// Tags of packets to the extra SA's network.
    to_extra: std::collections::HashSet<u64>,
    /// Tag -> SPIs removed from the engine's outbound side before it was submitted.
    gone_before: std::collections::HashMap<u64, Vec<u32>>,
    removed_out: Vec<u32>,
    removed_in: Vec<u32>,
    tx: std::collections::HashMap<u64, Result<SentAs, DropReason>>,
    /// Frame id -> the SPI the peer sent it on.
    rx_sent: std::collections::HashMap<u16, u32>,
    rx_reported: usize,
    rx_delivered: std::collections::HashSet<u16>,
    nonces: std::collections::HashSet<(u32, u64)>,
    on_wire: std::collections::HashMap<u16, (u32, u64)>,
}

impl Run {
    /// Takes the engine's reports and what it put on the wire, checking each.
    fn take(&mut self, engine: &mut OffloadEngine, peer: &mut SoftwareEngine, tap: &MemLink) {
        let mut tx = Vec::new();
        engine.take_tx_reports(&mut tx);
        for r in tx {
            if let Ok(SentAs::Esp { spi, .. }) = r.outcome {
                assert!(
                    !self.gone_before[&r.tag].contains(&spi),
                    "packet {} sent on sa {spi:#x}, removed before it was submitted",
                    r.tag
                );
            }
            if let Err(reason) = r.outcome {
                // Only a packet to the extra SA's network, whose policy went while it waited.
                assert_eq!(reason, DropReason::NoPolicy, "packet {}", r.tag);
                assert!(self.to_extra.contains(&r.tag), "packet {}: {reason}", r.tag);
            }
            assert!(self.tx.insert(r.tag, r.outcome).is_none(), "reported twice");
        }
        let mut rx = Vec::new();
        engine.take_rx_reports(&mut rx);
        for r in rx {
            self.rx_reported += 1;
            match r.outcome {
                Ok(Received::Inner { packet, spi, .. }) => {
                    let id = ident(&packet);
                    assert_eq!(self.rx_sent.get(&id), Some(&spi), "frame {id}: its own SA");
                    assert!(
                        !self.removed_in.contains(&spi),
                        "a verdict from removed {spi:#x}"
                    );
                    assert!(self.rx_delivered.insert(id), "frame {id} delivered twice");
                }
                Err(DropReason::UnknownSpi | DropReason::SaMoving) => {}
                other => panic!("frame {:?}: {other:?}", r.spi_seq),
            }
        }
        for f in tap.drain() {
            let mut ip = f.data[14..].to_vec();
            let Ok(Decapsulated::Inner { range, spi, seq }) = peer.inbound.decapsulate(&mut ip)
            else {
                panic!("the peer cannot read a frame the engine sent");
            };
            assert!(self.nonces.insert((spi, seq)), "({spi:#x}, {seq}) twice");
            assert!(self.on_wire.insert(ident(&ip[range]), (spi, seq)).is_none());
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Random rekeys, removals, policy changes and moves between batches with work in
    /// flight: every packet reported exactly once; a sent packet is on the wire once, on
    /// the SA its report names, with a number never used before, and never on an SA
    /// removed before it was submitted; no frame is delivered by a removed SA, or twice,
    /// or by any SA but the one it was sent on.
    #[test]
    fn random_changes_between_batches_with_work_in_flight(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let (mut engine, _, tap) = rig(&config(""), OffloadOptions::default());
        let mut peer = peer_config().software_engine().unwrap();
        let mut run = Run::default();
        let (mut out_spi, mut in_spi) = (0x1001u32, 0x2001u32);
        let mut grace: Vec<u32> = Vec::new();
        let mut extra: Option<u32> = None;
        let mut extras = 0u32;
        let (mut tag, mut id) = (0u64, 0u16);
        for s in steps {
            match s {
                Step::Batch { out, inb, polls } => {
                    for _ in 0..out {
                        let dst = if extra.is_some() && tag % 3 == 0 {
                            run.to_extra.insert(tag);
                            [10, 5, 0, 1]
                        } else {
                            [10, 2, 0, 1]
                        };
                        run.gone_before.insert(tag, run.removed_out.clone());
                        engine.submit(tag, &packet([10, 1, 0, 1], dst, 120, tag as u16));
                        tag += 1;
                    }
                    let frames = peer_frames(&mut peer, [10, 2, 0, 9], id..id + u16::from(inb));
                    for f in frames {
                        run.rx_sent.insert(id, wire_spi(&f));
                        tap.send_bytes(&f);
                        id += 1;
                    }
                    for _ in 0..polls {
                        engine.poll();
                    }
                }
                Step::RekeyOut => {
                    let next = gcm(out_spi + 0x10, A, B);
                    let params = SaParams::from_spec(&next).unwrap();
                    peer.inbound
                        .replace_sa(out_spi, None, InboundSa::new(params, 0, 0).unwrap())
                        .unwrap();
                    engine.replace_sa(out_spi, Direction::Out, &next).unwrap();
                    run.removed_out.push(out_spi);
                    out_spi = next.spi;
                }
                Step::RekeyIn => {
                    let next = gcm(in_spi + 0x10, B, A);
                    engine.replace_sa(in_spi, Direction::In, &next).unwrap();
                    let params = SaParams::from_spec(&next).unwrap();
                    peer.outbound.replace_sa(in_spi, OutboundSa::new(params, 0)).unwrap();
                    grace.push(in_spi);
                    in_spi = next.spi;
                }
                Step::RetireIn => {
                    if !grace.is_empty() {
                        let old = grace.remove(0);
                        run.take(&mut engine, &mut peer, &tap);
                        engine.remove_sa(old, Direction::In, None).unwrap();
                        run.removed_in.push(old);
                    }
                }
                Step::Extra { add } => {
                    if add && extra.is_none() {
                        // A fresh SPI each time: "removed before" stays true of the old ones.
                        let spi = 0x7000 + extras;
                        extras += 1;
                        let sa = gcm(spi, A, B);
                        engine.add_sa(&sa, Direction::Out).unwrap();
                        let p = protect(Direction::Out, "10.1.0.0/16", "10.5.0.0/16", spi);
                        engine.add_policy(&p, PolicyId(50), Some(0)).unwrap();
                        let params = SaParams::from_spec(&sa).unwrap();
                        peer.inbound.add_sa(InboundSa::new(params, 0, 0).unwrap()).unwrap();
                        let _ = peer.inbound.remove_policy(PolicyId(50));
                        let p = protect(Direction::In, "10.1.0.0/16", "10.5.0.0/16", spi);
                        peer.inbound.add_policy(&p, PolicyId(50), None).unwrap();
                        extra = Some(spi);
                    } else if let (false, Some(spi)) = (add, extra) {
                        engine.remove_policy(PolicyId(50)).unwrap();
                        engine.remove_sa(spi, Direction::Out, None).unwrap();
                        run.removed_out.push(spi);
                        extra = None;
                    }
                }
                Step::Move { out, to_card } => {
                    let (spi, dir) = if out { (out_spi, Direction::Out) } else { (in_spi, Direction::In) };
                    if to_card {
                        engine.move_to_card(spi, dir);
                    } else {
                        engine.move_to_software(spi, dir);
                    }
                }
            }
            run.take(&mut engine, &mut peer, &tap);
        }
        // Everything still on its way finishes.
        for _ in 0..100_000 {
            engine.wait(Duration::from_micros(20));
            run.take(&mut engine, &mut peer, &tap);
            if engine.tx_outstanding() == 0 && run.rx_reported == usize::from(id) {
                break;
            }
        }
        proptest::prop_assert_eq!(run.tx.len() as u64, tag, "every packet reported");
        proptest::prop_assert_eq!(run.rx_reported, usize::from(id), "every frame reported");
        for (t, outcome) in &run.tx {
            if let Ok(SentAs::Esp { spi, seq, .. }) = outcome {
                proptest::prop_assert_eq!(run.on_wire.get(&(*t as u16)), Some(&(*spi, *seq)));
            }
        }
        proptest::prop_assert_eq!(run.on_wire.len(), run.tx.values().filter(|o| o.is_ok()).count());
    }
}
