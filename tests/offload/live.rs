//! The live SA database under traffic: a hundred rekeys of the AES-GCM pair, both
//! directions, make-before-break, with packets on the card's rings at every change.

use std::collections::HashMap;

use espo_harness::validate::traffic::identity;
use espo_ipsec::crypto::{EncryptionAlgorithm, SecretKey};
use espo_ipsec::sa::{InboundSa, OutboundSa, SaParams};
use espo_ipsec::spec::{DfMode, Direction, Lifetime, SaMode, SaProtocol, SaSpec};
use espo_offload::{Placement, Received, SentAs};

use super::support::*;

/// The `generation`-th AES-GCM SA replacing `base` (its SPI, direction and algorithm).
fn successor(base: u32, generation: u32) -> SaSpec {
    let outbound = base == GCM_OUT;
    let spi = base + (generation << 16);
    let key_len = if outbound { 20 } else { 36 };
    let key: Vec<u8> = (0..key_len)
        .map(|i| (spi >> 16) as u8 ^ (i as u8).wrapping_mul(7))
        .collect();
    let (src, dst) = if outbound {
        ("192.0.2.1", "192.0.2.2")
    } else {
        ("192.0.2.2", "192.0.2.1")
    };
    SaSpec {
        spi,
        dir: None,
        protocol: SaProtocol::Esp,
        mode: SaMode::Tunnel,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        encryption: Some(if outbound {
            EncryptionAlgorithm::AesGcm128
        } else {
            EncryptionAlgorithm::AesGcm256
        }),
        key: Some(SecretKey::new(key)),
        integrity: None,
        integrity_key: None,
        esn: false,
        seq: 0,
        replay_window: if outbound { 0 } else { 64 },
        udp_encap: None,
        ttl: 64,
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    }
}

/// SPI of an IPv4 ESP frame.
fn frame_spi(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[34..38].try_into().unwrap())
}

/// Traffic both ways, with what each packet may be sent on and each frame was sent on.
#[derive(Default)]
struct Traffic {
    tag: u64,
    id: u32,
    /// Tag -> SPIs it may go out on.
    may_use: HashMap<u64, Vec<u32>>,
    /// Frame id -> the SPI the peer sent it on.
    rx_sent: HashMap<u32, u32>,
    /// Packets submitted since the engine last polled (not routed yet).
    waiting: Vec<u64>,
    /// Every packet that was waiting when its SA was replaced.
    caught_waiting: Vec<u64>,
}

impl Traffic {
    /// Twelve packets out (AES-GCM on `gcm_out`, some ChaCha20) and six frames in (some
    /// AES-CBC); the engine polled once, so that work is on the card's rings, some taken,
    /// when what follows happens; then four more packets that wait to be routed.
    fn batch(&mut self, rig: &mut Rig, gcm_out: u32) {
        for i in 0..12 {
            let (to, spi) = if i % 4 == 3 {
                (NET_CHACHA_OUT, CHACHA_OUT)
            } else {
                (NET_GCM_OUT, gcm_out)
            };
            rig.send(self.tag, to, (self.tag as usize * 37) % 1300);
            self.may_use.insert(self.tag, vec![spi]);
            self.tag += 1;
        }
        for i in 0..6 {
            let from = if i % 3 == 2 { NET_CBC_IN } else { NET_GCM_IN };
            let f = rig.peer_frame(from, self.id);
            self.rx_sent.insert(self.id, frame_spi(&f));
            rig.port.send(&f);
            self.id += 1;
        }
        rig.engine.poll();
        self.waiting.clear();
        for _ in 0..4 {
            rig.send(self.tag, NET_GCM_OUT, 100);
            self.may_use.insert(self.tag, vec![gcm_out]);
            self.waiting.push(self.tag);
            self.tag += 1;
        }
    }

    /// Outbound SA `old` was replaced by `new`: packets routed before may be on either,
    /// packets still waiting only on the new one.
    fn switched(&mut self, old: u32, new: u32) {
        for spis in self.may_use.values_mut() {
            if spis == &[old] {
                spis.push(new);
            }
        }
        for tag in self.waiting.drain(..) {
            self.may_use.insert(tag, vec![new]);
            self.caught_waiting.push(tag);
        }
    }
}

#[test]
fn a_hundred_rekeys_both_ways_under_traffic_lose_and_misdeliver_nothing() {
    let mut rig = rig("");
    let (mut cur_out, mut cur_in) = (GCM_OUT, GCM_IN);
    let (mut grace_out, mut grace_in) = (None::<u32>, None::<u32>);
    let mut t = Traffic::default();
    let mut delivered: HashMap<u32, u32> = HashMap::new();
    let mut rx_reports = Vec::new();
    for generation in 1..=100u32 {
        // The previous generation's grace period is over.
        if let Some(old) = grace_in.take() {
            rig.engine.remove_sa(old, Direction::In, None).unwrap();
        }
        if let Some(old) = grace_out.take() {
            rig.peer_rx.inbound.remove_sa(old, None).unwrap();
        }
        t.batch(&mut rig, cur_out);
        let next = successor(cur_out, generation);
        let params = SaParams::from_spec(&next).unwrap();
        rig.peer_rx
            .inbound
            .replace_sa(cur_out, None, InboundSa::new(params, 0, 0).unwrap())
            .unwrap();
        rig.engine
            .replace_sa(cur_out, Direction::Out, &next)
            .unwrap();
        t.switched(cur_out, next.spi);
        grace_out = Some(cur_out);
        cur_out = next.spi;

        let next = successor(cur_in, generation);
        rig.engine.replace_sa(cur_in, Direction::In, &next).unwrap();
        let params = SaParams::from_spec(&next).unwrap();
        rig.peer_tx
            .outbound
            .replace_sa(cur_in, OutboundSa::new(params, 0))
            .unwrap();
        grace_in = Some(cur_in);
        cur_in = next.spi;

        t.batch(&mut rig, cur_out);
        rig.settle();
        let want = t.id as usize - rx_reports.len();
        rx_reports.extend(rig.collect(want));
    }
    rig.settle();

    // Outbound: every packet sent, on an SA it could go on, read by the peer on that SA
    // with that number, once.
    rig.ledger.assert_sound();
    assert_eq!(rig.ledger.count(|r| r.is_err()), 0, "nothing dropped");
    let (mut on_old, mut on_new) = (0, 0);
    for (tag, outcome) in &rig.ledger.reports {
        let Ok(SentAs::Esp { spi, seq, .. }) = outcome else {
            panic!("packet {tag}: {outcome:?}");
        };
        let may = &t.may_use[tag];
        assert!(may.contains(spi), "packet {tag} on {spi:#x}");
        if may.len() == 2 && *spi == may[0] {
            on_old += 1;
        }
        if t.caught_waiting.contains(tag) {
            on_new += 1;
        }
        assert!(
            rig.ledger.nonces.contains(&(*spi, *seq)),
            "packet {tag}: the peer read ({spi:#x}, {seq})"
        );
    }
    assert!(
        on_old > 0 && on_new == 4 * 100,
        "{on_old} routed before a switch went on the old SA, {on_new} waiting on the new"
    );
    // Inbound: every frame delivered once, by the SA it was sent on.
    assert_eq!(rx_reports.len(), t.id as usize);
    for r in &rx_reports {
        let Ok(Received::Inner { packet, spi, .. }) = &r.outcome else {
            panic!("{r:?}");
        };
        let got = identity(packet).expect("identity");
        assert_eq!(t.rx_sent[&got], *spi, "frame {got}");
        assert!(delivered.insert(got, *spi).is_none(), "frame {got} twice");
    }
    // The SAs not rekeyed counted exactly their own packets; the current pair runs on the
    // card, with the old inbound SA still in its grace period beside it.
    let p = rig.engine.placements();
    let count = |spi: u32| p.iter().find(|s| s.spi == spi).unwrap().counters.packets;
    let sent_chacha = rig.ledger.count(|r| {
        matches!(
            r,
            Ok(SentAs::Esp {
                spi: CHACHA_OUT,
                ..
            })
        )
    });
    assert_eq!(count(CHACHA_OUT), sent_chacha as u64);
    let got_cbc = delivered.values().filter(|&&s| s == CBC_IN).count();
    assert_eq!(count(CBC_IN), got_cbc as u64);
    assert_eq!(got_cbc, 100 * 2 * 2);
    let mut spis: Vec<(u32, Direction, bool)> = p
        .iter()
        .map(|s| (s.spi, s.dir, matches!(s.placement, Placement::Card { .. })))
        .collect();
    spis.sort_by_key(|s| s.0);
    let mut want = vec![
        (CHACHA_OUT, Direction::Out, false),
        (cur_out, Direction::Out, true),
        (CBC_IN, Direction::In, false),
        (grace_in.expect("in its grace period"), Direction::In, true),
        (cur_in, Direction::In, true),
    ];
    want.sort_by_key(|s| s.0);
    assert_eq!(spis, want);
}
