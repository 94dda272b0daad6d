//! Whole demo runs: a clean run delivers everything, a broken tunnel is found out.

use super::*;
use espo_ipsec::counters::DropReason;
use espo_ipsec::spec::Direction;

fn options(packets: u64) -> DemoOptions {
    DemoOptions {
        budget: Budget::Packets(packets),
        ..DemoOptions::default()
    }
}

fn run(a: &Config, b: &Config, o: DemoOptions) -> Summary {
    let mut demo = Demo::new(a, b, o).expect("demo");
    demo.run(|_| {});
    demo.summary()
}

#[test]
fn a_clean_run_delivers_every_packet_through_card_and_software_sas() {
    let (a, b) = default_configs().unwrap();
    let s = run(&a, &b, options(800));
    assert!(s.success(), "{s}");
    assert_eq!(
        (s.sent, s.delivered, s.lost, s.exchanges),
        (800, 800, 0, 400)
    );
    assert!(s.drops.is_empty());
    // Half of gateway A's traffic is on card SAs, half on software ones.
    let g = &s.gateway_a;
    assert_eq!(
        (g.tx_card, g.tx_software, g.rx_card, g.rx_software),
        (200, 200, 200, 200)
    );
    for line in s.sas.iter().filter(|l| l.gateway == 'A') {
        let card = line.algorithm.starts_with("aes-gcm");
        assert_eq!(line.runs_on == "card", card, "{line:?}");
        assert_eq!(line.packets, 100, "{line:?}");
    }
    assert_eq!(s.sas.iter().filter(|l| l.dir == Direction::In).count(), 8);
    assert!(s.card.tx.packets == 400 && s.card.rx.packets == 400);
    let l = s.link;
    assert_eq!((l.a_to_b_frames, l.b_to_a_frames, l.not_esp), (400, 400, 0));
    let text = s.to_string();
    assert!(text.contains("SPI 0x0000a101, sequence number 1"), "{text}");
    assert!(text.contains("as the card of gateway A sent it"), "{text}");
    assert!(text.contains("drops by reason: none"), "{text}");
    assert!(
        text.ends_with("result: every packet delivered intact"),
        "{text}"
    );
}

#[test]
fn the_same_seed_gives_the_same_traffic() {
    let (a, b) = default_configs().unwrap();
    let one = run(&a, &b, options(200));
    let two = run(&a, &b, options(200));
    assert_eq!(one.sas, two.sas);
    assert_eq!(one.shown, two.shown);
    let other = run(
        &a,
        &b,
        DemoOptions {
            seed: 2,
            ..options(200)
        },
    );
    assert_ne!(one.sas, other.sas, "sizes follow the seed");
}

#[test]
fn a_fixed_size_is_kept_for_every_packet() {
    let (a, b) = default_configs().unwrap();
    let s = run(
        &a,
        &b,
        DemoOptions {
            size: PacketSize::Fixed(1450),
            ..options(80)
        },
    );
    assert!(s.success(), "{s}");
    assert_eq!(s.delivered_bytes, 80 * 1450);
}

#[test]
fn a_tunnel_with_mismatched_keys_is_reported_as_loss_with_its_reason() {
    let (a, _) = default_configs().unwrap();
    let broken = GATEWAY_B_TOML.replace(
        "e2aa68ccc112bd785f93ec4f6749dedbde1624bd",
        "00aa68ccc112bd785f93ec4f6749dedbde1624bd",
    );
    assert_ne!(broken, GATEWAY_B_TOML);
    let b = Config::parse(&broken, std::path::Path::new("b")).unwrap();
    let s = run(&a, &b, options(400));
    assert!(!s.success());
    assert!(s.lost > 0 && s.delivered < s.sent, "{s}");
    let bad_icv: u64 = s
        .drops
        .iter()
        .filter(|d| d.0 == 'B' && d.2 == DropReason::BadIcv)
        .map(|d| d.3)
        .sum();
    assert_eq!(bad_icv, s.lost, "every lost packet is a counted drop");
    assert!(s.to_string().contains("result: FAILED"));
}

#[test]
fn the_card_sends_and_receives_at_once() {
    // Each round hands the card as many frames to send as it receives: on a full-duplex
    // port the two directions overlap, so the card's busy time is about that of the
    // busier port direction, not of both in turn.
    let (a, b) = default_configs().unwrap();
    let s = run(&a, &b, options(2048));
    assert!(s.success(), "{s}");
    let p = &s.card;
    assert_eq!((p.tx.packets, p.rx.packets), (1024, 1024));
    let busy = |stage| {
        p.busy_cycles
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or(0.0, |b| b.1)
    };
    let port = busy(espo_driver::model::Stage::MacTx).max(busy(espo_driver::model::Stage::MacRx));
    let elapsed = p.elapsed_cycles() as f64;
    assert!(
        elapsed < 1.25 * port,
        "elapsed {elapsed} cycles, port busy {port} cycles in one direction"
    );
}

#[test]
fn the_gateways_negotiate_over_their_own_cable() {
    let (a, b) = super::default_configs().unwrap();
    let (near, far) = espo_offload::MemWire::pair();
    let n = super::ike::negotiate(&a, &b, &near, &far).expect("negotiated");
    assert_eq!((n.ike_sas, n.child_sas), (3, 4));
    // IKE_SA_INIT and IKE_AUTH for three IKE SAs, one CREATE_CHILD_SA: each a request
    // and a response.
    assert_eq!(n.messages, 14);
    assert_eq!(n.a.sas.len(), 8);
    assert_eq!(n.b.sas.len(), 8);
    // A's outbound SA of each tunnel is B's inbound one, with the same key.
    for sa in
        n.a.sas
            .iter()
            .filter(|s| s.dir == Some(espo_ipsec::spec::Direction::Out))
    {
        let theirs = n.b.sas.iter().find(|s| s.spi == sa.spi).expect("B has it");
        assert_eq!(theirs.dir, Some(espo_ipsec::spec::Direction::In));
        assert_eq!(
            theirs.key.as_ref().unwrap().as_bytes(),
            sa.key.as_ref().unwrap().as_bytes()
        );
    }
    assert!(
        near.drain().is_empty() && far.drain().is_empty(),
        "nothing left on the cable"
    );
}
