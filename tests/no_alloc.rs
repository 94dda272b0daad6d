//! The per-packet paths allocate nothing: encapsulation and decapsulation of thousands of
//! packets, after one warm-up packet, with every algorithm and bundle kind, under a counting
//! global allocator (allocation-counter, linked into this test binary only).

use std::path::Path;

use espo_config::Config;
use espo_harness::loopback;
use espo_ipsec::engine::{Decapsulated, EncapsulatedInPlace, HEADROOM, SoftwareEngine, TAILROOM};

fn engines(sas: &str, bundle: &str) -> (SoftwareEngine, SoftwareEngine) {
    let policy = |dir: &str| {
        format!(
            "[[policy]]\ndir = \"{dir}\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [{bundle}]\n"
        )
    };
    let tx = Config::parse(&format!("{sas}{}", policy("out")), Path::new("tx")).expect("tx config");
    let rx = Config::parse(&format!("{sas}{}", policy("in")), Path::new("rx")).expect("rx config");
    (
        tx.software_engine().expect("tx"),
        rx.software_engine().expect("rx"),
    )
}

fn hex(len: usize) -> String {
    (0..len)
        .map(|i| format!("{:02x}", i as u8 ^ 0x5c))
        .collect()
}

fn esp(spi: u32, enc: &str, key_len: usize, integ: Option<(&str, usize)>, extra: &str) -> String {
    let mut s = format!(
        "[[sa]]\nspi = {spi}\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nencryption = \"{enc}\"\n{extra}\n"
    );
    if key_len > 0 {
        s += &format!("key = \"{}\"\n", hex(key_len));
    }
    if let Some((alg, len)) = integ {
        s += &format!("integrity = \"{alg}\"\nintegrity_key = \"{}\"\n", hex(len));
    }
    s
}

fn ah(spi: u32, mode: &str) -> String {
    format!(
        "[[sa]]\nspi = {spi}\nprotocol = \"ah\"\nmode = \"{mode}\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nintegrity = \"hmac-sha384-192\"\nintegrity_key = \"{}\"\n",
        hex(48)
    )
}

/// Sends `count` packets through both engines; returns how many came back intact.
fn traffic(
    tx: &mut SoftwareEngine,
    rx: &mut SoftwareEngine,
    buf: &mut [u8],
    inner: &[u8],
    count: usize,
) -> usize {
    let mut ok = 0;
    for _ in 0..count {
        buf[HEADROOM..HEADROOM + inner.len()].copy_from_slice(inner);
        let range = match tx
            .outbound
            .encapsulate_in_place(buf, HEADROOM..HEADROOM + inner.len())
        {
            Ok(EncapsulatedInPlace::Protected { range, .. }) => range,
            other => panic!("encapsulation: {other:?}"),
        };
        if let Ok(Decapsulated::Inner { range: r, .. }) =
            rx.inbound.decapsulate(&mut buf[range.clone()])
        {
            ok += usize::from(buf[range.start + r.start..range.start + r.end] == *inner);
        }
    }
    ok
}

#[test]
fn encapsulation_and_decapsulation_do_not_allocate() {
    let cases = [
        (esp(0x1001, "aes-gcm-128", 20, None, ""), "0x1001"),
        (esp(0x1001, "aes-gcm-256", 36, None, "esn = true"), "0x1001"),
        (esp(0x1001, "chacha20-poly1305", 36, None, ""), "0x1001"),
        (
            esp(0x1001, "aes-cbc-128", 16, Some(("hmac-sha256-128", 32)), ""),
            "0x1001",
        ),
        (
            esp(0x1001, "null", 0, Some(("hmac-sha512-256", 64)), ""),
            "0x1001",
        ),
        (
            esp(
                0x1001,
                "aes-gcm-128",
                20,
                None,
                "udp_encap = { src_port = 4500, dst_port = 4500 }",
            ),
            "0x1001",
        ),
        (ah(0x2001, "tunnel"), "0x2001"),
        (
            format!(
                "{}{}",
                esp(0x1001, "aes-gcm-128", 20, None, ""),
                ah(0x2001, "transport")
            ),
            "0x1001, 0x2001",
        ),
    ];
    for (sas, bundle) in cases {
        let (mut tx, mut rx) = engines(&sas, bundle);
        for size in [64usize, 1420, 8000] {
            let inner = loopback::udp_packet(size, 0xa5);
            let mut buf = vec![0u8; HEADROOM + size + TAILROOM];
            // Warm-up: first use of per-thread state (the CBC IV generator) may allocate once.
            assert_eq!(traffic(&mut tx, &mut rx, &mut buf, &inner, 1), 1);
            let mut delivered = 0;
            let info = allocation_counter::measure(|| {
                delivered = traffic(&mut tx, &mut rx, &mut buf, &inner, 2000);
            });
            assert_eq!(delivered, 2000, "bundle [{bundle}], {size} bytes");
            assert_eq!(
                info.count_total, 0,
                "allocations with bundle [{bundle}], {size}-byte packets: {info:?}"
            );
        }
    }
}

#[test]
fn drops_do_not_allocate_either() {
    let (mut tx, mut rx) = engines(&esp(0x1001, "aes-gcm-128", 20, None, ""), "0x1001");
    let inner = loopback::udp_packet(200, 1);
    let mut buf = vec![0u8; HEADROOM + 200 + TAILROOM];
    buf[HEADROOM..HEADROOM + 200].copy_from_slice(&inner);
    let range = match tx
        .outbound
        .encapsulate_in_place(&mut buf, HEADROOM..HEADROOM + 200)
    {
        Ok(EncapsulatedInPlace::Protected { range, .. }) => range,
        other => panic!("{other:?}"),
    };
    let wire = buf[range].to_vec();
    let mut copy = wire.clone();
    assert!(rx.inbound.decapsulate(&mut copy).is_ok());
    let info = allocation_counter::measure(|| {
        for i in 0..1000usize {
            let mut bad = [0u8; 400];
            let n = wire.len();
            bad[..n].copy_from_slice(&wire);
            bad[n - 1 - i % 16] ^= 1; // bad ICV
            assert!(rx.inbound.decapsulate(&mut bad[..n]).is_err());
            bad[..n].copy_from_slice(&wire); // replay
            assert!(rx.inbound.decapsulate(&mut bad[..n]).is_err());
            assert!(rx.inbound.decapsulate(&mut bad[..i % n]).is_err()); // truncated
        }
    });
    assert_eq!(info.count_total, 0, "{info:?}");
}

/// Two outbound workers sharing one SA's numbers (`SendShare`), batch after batch as the
/// gateway runs them (begin, encapsulate, end, sent): the blocks of numbers, the shared
/// totals and the in-flight marks allocate nothing either.
#[test]
fn workers_sharing_an_sa_do_not_allocate() {
    use espo_ipsec::sa::SendShare;
    let sas = esp(0x1001, "aes-gcm-128", 20, None, "");
    let (mut a, mut rx) = engines(&sas, "0x1001");
    let (mut b, _) = engines(&sas, "0x1001");
    let share = SendShare::new(0, 2);
    for (slot, tx) in [&mut a, &mut b].into_iter().enumerate() {
        for sa in tx.outbound.sas_mut().iter_mut() {
            sa.set_share(share.clone(), slot);
        }
    }
    let inner = loopback::udp_packet(1420, 0x3c);
    let mut buf = vec![0u8; HEADROOM + inner.len() + TAILROOM];
    let mut batch = |tx: &mut SoftwareEngine, rx: &mut SoftwareEngine| {
        tx.outbound.begin_batch(32);
        let mut ok = 0;
        for _ in 0..32 {
            ok += traffic(tx, rx, &mut buf, &inner, 1);
        }
        tx.outbound.end_batch();
        tx.outbound.batch_sent();
        ok
    };
    // Warm-up: each worker's first batch.
    assert_eq!(batch(&mut a, &mut rx) + batch(&mut b, &mut rx), 64);
    let mut delivered = 0;
    let info = allocation_counter::measure(|| {
        for _ in 0..40 {
            delivered += batch(&mut a, &mut rx);
            delivered += batch(&mut b, &mut rx);
        }
    });
    assert_eq!(delivered, 80 * 32);
    assert_eq!(share.last(), 82 * 32, "one block of 32 per batch");
    assert_eq!(info.count_total, 0, "{info:?}");
}

/// The offload datapath: a TCP super-packet segmented (gso), every segment encapsulated
/// and decapsulated, and the decapsulated segments coalesced again (gro) and drained as
/// the inbound thread writes them — nothing allocated, and what comes out is the
/// super-packet's payload again, in one piece.
#[test]
fn segmentation_and_coalescing_do_not_allocate() {
    use espo_ipsec::gro::Coalescer;
    use espo_ipsec::gso::{F_NEEDS_CSUM, GSO_TCPV4, Segments, VNET_HDR_LEN, VnetHdr};
    let (mut tx, mut rx) = engines(&esp(0x1001, "aes-gcm-128", 20, None, ""), "0x1001");
    let (whole, _) = loopback::tcp_super_packet([10, 1, 0, 2], [10, 2, 0, 2], 20_000, 1388);
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: 52,
        gso_size: 1388,
        csum_start: 20,
        csum_offset: 16,
    };
    let mut buf = vec![0u8; HEADROOM + 65535 + TAILROOM];
    let mut coalescer = Coalescer::new(32);
    let mut round = |tx: &mut SoftwareEngine, rx: &mut SoftwareEngine, out: &mut [u8]| {
        let mut segments = Segments::new(&whole, &hdr).expect("a super-packet");
        let mut n = 0;
        while let Some(len) = segments.next_into(&mut buf[HEADROOM..HEADROOM + 65535]) {
            let range = match tx
                .outbound
                .encapsulate_in_place(&mut buf, HEADROOM..HEADROOM + len)
            {
                Ok(EncapsulatedInPlace::Protected { range, .. }) => range,
                other => panic!("encapsulation: {other:?}"),
            };
            let Ok(Decapsulated::Inner { range: r, spi, .. }) =
                rx.inbound.decapsulate(&mut buf[range.clone()])
            else {
                panic!("decapsulation");
            };
            coalescer.offer(spi, &buf[range.start + r.start..range.start + r.end]);
            n += 1;
        }
        let mut written = 0;
        coalescer.drain(|bytes, packets, _, _| {
            assert_eq!(packets as usize, n);
            out[..bytes.len()].copy_from_slice(bytes);
            written = bytes.len();
        });
        written
    };
    let mut out = vec![0u8; 70_000];
    assert_eq!(
        round(&mut tx, &mut rx, &mut out),
        VNET_HDR_LEN + whole.len()
    );
    let mut lens = 0;
    let info = allocation_counter::measure(|| {
        for _ in 0..100 {
            lens += round(&mut tx, &mut rx, &mut out);
        }
    });
    assert_eq!(lens, 100 * (VNET_HDR_LEN + whole.len()));
    assert_eq!(
        out[VNET_HDR_LEN + 52..VNET_HDR_LEN + whole.len()],
        whole[52..],
        "the payload, coalesced again"
    );
    assert_eq!(info.count_total, 0, "{info:?}");
}

/// A card model for the offload engine's zero-copy tests, its port on an in-memory link.
/// Once the engine is up the test holds it (`ModelHandle::hold`): it runs only when the
/// test runs it, between the engine's calls.
fn model_card() -> (
    espo_driver::card::Card,
    espo_driver::model::ModelHandle,
    espo_driver::model::MemLink,
) {
    use espo_driver::model::{MemLink, ModelDevice, ModelOptions, ModelParams, Pacing};
    let dev = ModelDevice::new(ModelOptions {
        params: ModelParams::zero_latency(),
        pacing: Pacing::Inline,
        ..ModelOptions::default()
    });
    let handle = dev.handle();
    let (near, far) = MemLink::pair();
    handle.attach_link(Box::new(near));
    let config = espo_driver::card::CardConfig {
        ring_log2: 8,
        hang_timeout: std::time::Duration::from_secs(3600),
        health_interval: None,
        ..espo_offload::card_config()
    };
    let card = espo_driver::card::Card::open(std::sync::Arc::new(dev), config).expect("card");
    (card, handle, far)
}

/// 50 rounds of 32 packets handed to `engine` by `submit` (given the round), with the
/// model held: each round's submissions and the poll after them, then — the model run —
/// the polls that take the 32 reports. Returns the packets the card encapsulated and the
/// allocations of the engine's and driver's calls after the first 5 rounds (which warm up
/// the engine's reusable buffers and maps).
fn tx_rounds(
    engine: &mut espo_offload::OffloadEngine,
    model: &espo_driver::model::ModelHandle,
    far: &espo_driver::model::MemLink,
    mut submit: impl FnMut(&mut espo_offload::OffloadEngine, u64),
) -> (usize, u64) {
    model.hold(true);
    let mut reports = Vec::with_capacity(64);
    let mut sent = 0usize;
    let mut allocations = 0;
    for round in 0..50 {
        reports.clear();
        let info = allocation_counter::measure(|| {
            submit(engine, round);
            engine.poll();
        });
        model.run_until_idle();
        let info2 = allocation_counter::measure(|| {
            for _ in 0..10_000 {
                if reports.len() >= 32 {
                    break;
                }
                engine.poll();
                engine.take_tx_reports(&mut reports);
            }
        });
        sent += reports
            .iter()
            .filter(|r| matches!(r.outcome, Ok(espo_offload::SentAs::Esp { .. })))
            .count();
        if round >= 5 {
            allocations += info.count_total + info2.count_total;
        }
        far.drain();
    }
    model.hold(false);
    (sent, allocations)
}

/// The offload engine's zero-copy datapath over the card model: packets written into lent
/// card buffers and submitted, their completions and reports taken; frames the card
/// decapsulated handed over in its buffers and given back — the engine's and the driver's
/// calls allocate nothing (the model, which runs between them, is not measured).
#[test]
fn the_zero_copy_card_path_does_not_allocate() {
    use espo_offload::{FRAME_HEADER, OffloadEngine, OffloadOptions, Received};
    let sas = esp(0x1001, "aes-gcm-128", 20, None, "");
    let policy = |dir: &str| {
        format!(
            "[[policy]]\ndir = \"{dir}\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n"
        )
    };
    let tx_cfg = Config::parse(&format!("{sas}{}", policy("out")), Path::new("tx")).unwrap();
    let rx_cfg = Config::parse(&format!("{sas}{}", policy("in")), Path::new("rx")).unwrap();
    let inner = loopback::udp_packet(1420, 0x3c);

    // Outbound.
    let (card, model, far) = model_card();
    let mut engine = OffloadEngine::new(
        &tx_cfg.sas,
        &tx_cfg.policies,
        Some(card),
        OffloadOptions::default(),
    )
    .unwrap();
    let (sent, allocations) = tx_rounds(&mut engine, &model, &far, |engine, round| {
        for _ in 0..32 {
            let slot = engine.tx_slot().expect("a buffer to lend");
            engine
                .tx_slot_write(&slot, FRAME_HEADER, &inner)
                .expect("written");
            engine.submit_slot(round, slot, inner.len());
        }
    });
    assert_eq!(sent, 50 * 32, "every packet encapsulated by the card");
    assert_eq!(allocations, 0, "allocations on the zero-copy TX path");

    // Outbound from host memory (`espo run`'s way: the segmenter's or the TUN read's
    // packets copied into the lent buffers), two flows taking turns so that both the
    // kept flow's straight path and the general decision run.
    let other = {
        let mut p = inner.clone();
        p[19] ^= 1;
        p[10..12].copy_from_slice(&[0, 0]);
        let sum = !espo_ipsec::wire::checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    };
    let (sent, allocations) = tx_rounds(&mut engine, &model, &far, |engine, round| {
        for i in 0..32u64 {
            let packet = if i % 4 == 3 { &other } else { &inner };
            let slot = engine.tx_slot().expect("a buffer to lend");
            engine.submit_into_slot(round * 32 + i, slot, packet);
        }
    });
    assert_eq!(sent, 50 * 32, "every packet from host memory encapsulated");
    assert_eq!(
        allocations, 0,
        "allocations on the TX path from host memory"
    );

    // Inbound: a software sender makes the frames (not measured).
    let (card, model, far) = model_card();
    let mut engine = OffloadEngine::new(
        &rx_cfg.sas,
        &rx_cfg.policies,
        Some(card),
        OffloadOptions {
            lend_rx: true,
            ..OffloadOptions::default()
        },
    )
    .unwrap();
    model.hold(true);
    let mut sender = tx_cfg.software_engine().unwrap();
    let mut buf = vec![0u8; inner.len() + 256];
    let mut rx_reports = Vec::with_capacity(64);
    let mut delivered = 0usize;
    let mut allocations = 0;
    let mut out = Vec::with_capacity(2048);
    let mut slot = vec![0u8; 2048];
    for round in 0..50 {
        for _ in 0..32 {
            let Ok(espo_ipsec::engine::Encapsulated::Protected { len, .. }) =
                sender.outbound.encapsulate(&inner, &mut buf)
            else {
                panic!("the sender could not encapsulate");
            };
            let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
            frame.extend_from_slice(&buf[..len]);
            far.send_bytes(&frame);
        }
        model.run_until_idle();
        rx_reports.clear();
        let info = allocation_counter::measure(|| {
            let mut spins = 0;
            while rx_reports.len() < 32 && spins < 10_000 {
                engine.poll();
                engine.take_rx_reports(&mut rx_reports);
                spins += 1;
            }
            for r in &rx_reports {
                if let Ok(Received::Lent(p)) = &r.outcome {
                    if round < 5 {
                        // Warm-up rounds (not counted) also check what was lent.
                        engine.lent_bytes(p, &mut out).expect("copied out");
                        assert_eq!(out, inner);
                        assert_eq!(p.head(), &inner[..espo_ipsec::wire::flow::HEAD_LEN]);
                    }
                    // The gateway's way: copied once into a buffer it already has.
                    engine
                        .lent_into(p, &mut slot[..p.len])
                        .expect("copied into the slot");
                    if round < 5 {
                        assert_eq!(&slot[..p.len], &inner[..]);
                    }
                    engine.release_lent(p);
                }
            }
        });
        for r in &rx_reports {
            assert!(
                matches!(r.outcome, Ok(Received::Lent(_))),
                "{:?}",
                r.outcome
            );
            delivered += 1;
        }
        if round >= 5 {
            allocations += info.count_total;
        }
    }
    model.hold(false);
    assert_eq!(
        delivered,
        50 * 32,
        "every frame delivered in the card's buffer"
    );
    assert_eq!(allocations, 0, "allocations on the zero-copy RX path");
}

/// `espo run`'s card gateway on the card model (held: it runs only when told), its port
/// on in-memory queues, configured by `cfg`, its engine by `options`.
fn card_gateway_of(
    cfg: &Config,
    options: espo_offload::OffloadOptions,
) -> (
    espo_gateway::card::engine::CardShared,
    std::sync::Arc<espo_gateway::card::port::PortQueues>,
    espo_driver::model::ModelHandle,
) {
    use espo_driver::model::{ModelDevice, ModelOptions, ModelParams, Pacing};
    use espo_gateway::card::backend::CardBackend;
    use espo_gateway::card::engine::CardShared;
    use espo_gateway::card::port::{CardEnd, PortQueues};
    use std::sync::Arc;

    let dev = ModelDevice::new(ModelOptions {
        params: ModelParams::zero_latency(),
        pacing: Pacing::Inline,
        ..ModelOptions::default()
    });
    let model = dev.handle();
    let queues = Arc::new(PortQueues::new().unwrap());
    model.attach_link(Box::new(CardEnd::new(Arc::clone(&queues))));
    let card_config = espo_driver::card::CardConfig {
        ring_log2: 8,
        hang_timeout: std::time::Duration::from_secs(3600),
        health_interval: None,
        ..espo_offload::card_config()
    };
    let card = espo_driver::card::Card::open(Arc::new(dev), card_config).expect("card");
    let engine =
        espo_offload::OffloadEngine::new(&cfg.sas, &cfg.policies, Some(card), options).unwrap();
    let shared = CardShared::new(
        engine,
        Arc::clone(&queues),
        CardBackend::Model(model.clone()),
    )
    .unwrap();
    (shared, queues, model)
}

/// [`card_gateway_of`] with one outbound SA and policy; and the outbound half's sizing
/// engine.
fn card_gateway() -> (
    espo_gateway::card::engine::CardShared,
    std::sync::Arc<espo_gateway::card::port::PortQueues>,
    espo_driver::model::ModelHandle,
    espo_ipsec::engine::Outbound,
) {
    let sas = esp(0x1001, "aes-gcm-128", 20, None, "");
    let cfg = Config::parse(
        &format!(
            "{sas}[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n"
        ),
        Path::new("tx"),
    )
    .unwrap();
    let (shared, queues, model) = card_gateway_of(&cfg, espo_offload::OffloadOptions::default());
    (
        shared,
        queues,
        model,
        cfg.software_engine().unwrap().outbound,
    )
}

/// `espo run`'s card gateway with TUN offloads: a super-packet's segments written from it
/// straight into lent card buffers (`CardOutbound::encapsulate_segments`, the headers made
/// on the stack, the payload copied from the super-packet once), submitted and their
/// reports taken — nothing allocated per segment, and every segment sent by the card.
#[test]
fn segments_into_the_card_do_not_allocate() {
    use espo_gateway::card::engine::CardOutbound;
    use espo_gateway::path::OutboundEngine;
    use std::sync::Arc;

    let (shared, queues, model, sizing) = card_gateway();
    let mailbox = Arc::new(espo_gateway::mailbox::Mailbox::new().unwrap());
    let mut out = CardOutbound::new(&shared, sizing, mailbox);
    // 32 segments of 1400 bytes and a short last one.
    let (sup, hdr) =
        loopback::tcp_super_packet([10, 1, 0, 2], [10, 2, 0, 2], 32 * 1400 + 100, 1400);
    model.hold(true);
    let mut taken = Vec::with_capacity(64);
    let (mut sent, mut frames, mut allocations) = (0, 0, 0);
    for round in 0..30 {
        taken.clear();
        let mut segments = espo_ipsec::gso::Segments::new(&sup, &hdr).unwrap();
        let info = allocation_counter::measure(|| {
            out.encapsulate_segments(&mut segments, &mut taken);
        });
        model.run_until_idle();
        // The reports of this round come with the engine's next poll (not measured: the
        // next round's first poll takes them the same way).
        shared.engine().poll();
        let mut late = Vec::new();
        out.settle(&mut late);
        assert!(late.is_empty(), "{late:?}");
        sent += taken.iter().filter(|t| t.1.is_ok()).count();
        frames += queues.take_for_wire().len();
        if round >= 5 {
            allocations += info.count_total;
        }
    }
    model.hold(false);
    assert_eq!(sent, 30 * 33, "every segment handed on");
    assert_eq!(frames, 30 * 33, "every segment sent by the card");
    assert_eq!(allocations, 0, "allocations taking segments into the card");
}

/// `espo run`'s card gateway reading single packets from the TUN device straight into
/// lent card buffers (`CardOutbound::read_into_buffer`: one `readv`, the partial checksum
/// completed in the card's memory, submitted from there) and sending them
/// (`post_reads`): nothing allocated per packet, and every packet sent by the card. A
/// `SOCK_SEQPACKET` pair stands in for the TUN device (one packet per read).
#[test]
fn tun_reads_into_the_card_do_not_allocate() {
    use espo_gateway::card::engine::CardOutbound;
    use espo_gateway::path::{DirectRead, MAX_PACKET, OutboundEngine};
    use espo_ipsec::gso::{F_NEEDS_CSUM, VNET_HDR_LEN, VnetHdr};
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::os::fd::AsFd;
    use std::sync::Arc;

    let (shared, queues, model, sizing) = card_gateway();
    let mailbox = Arc::new(espo_gateway::mailbox::Mailbox::new().unwrap());
    let mut out = CardOutbound::new(&shared, sizing, mailbox);
    let (tun, inside) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_NONBLOCK,
    )
    .unwrap();
    // A UDP packet of 1000 bytes with its checksum left to the device, as the inside
    // stack hands it over on a virtio-net header.
    let mut read = vec![0u8; VNET_HDR_LEN];
    VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: 0,
        hdr_len: 28,
        gso_size: 0,
        csum_start: 20,
        csum_offset: 6,
    }
    .emit(&mut read);
    read.extend_from_slice(&loopback::udp_packet(1000, 7));
    let (mut vnet, mut area) = ([0u8; VNET_HDR_LEN], vec![0u8; MAX_PACKET]);
    model.hold(true);
    let (mut sent, mut frames, mut allocations) = (0, 0, 0);
    for round in 0..30 {
        for _ in 0..32 {
            nix::unistd::write(&inside, &read).unwrap();
        }
        let mut handed = 0;
        let info = allocation_counter::measure(|| {
            for _ in 0..32 {
                if let Some(Ok(DirectRead::Sent { .. })) =
                    out.read_into_buffer(tun.as_fd(), &mut vnet, &mut area, 1500, None)
                {
                    handed += 1;
                }
            }
            out.post_reads();
        });
        model.run_until_idle();
        shared.engine().poll();
        let mut late = Vec::new();
        out.settle(&mut late);
        assert!(late.is_empty(), "{late:?}");
        sent += handed;
        frames += queues.take_for_wire().len();
        if round >= 5 {
            allocations += info.count_total;
        }
    }
    model.hold(false);
    assert_eq!(
        sent,
        30 * 32,
        "every packet handed on from the card's buffer"
    );
    assert_eq!(frames, 30 * 32, "every packet sent by the card");
    assert_eq!(allocations, 0, "allocations reading packets into the card");
}

/// An IPv4 datagram from `127.0.0.1:from` to `127.0.0.1:to` as the outbound path hands it
/// to the outside: DF, TTL 64, `payload` bytes of `fill`.
fn loopback_datagram(from: u16, to: u16, payload: usize, fill: u8) -> Vec<u8> {
    let total = 28 + payload;
    let mut p = vec![fill; total];
    p[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
    ]);
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[20..22].copy_from_slice(&from.to_be_bytes());
    p[22..24].copy_from_slice(&to.to_be_bytes());
    p[24..26].copy_from_slice(&((payload + 8) as u16).to_be_bytes());
    p[26..28].copy_from_slice(&[0, 0]);
    p
}

/// ESP in UDP with `udp_gso`: a run of datagrams leaves through the UDP socket with one
/// system call, its control messages (segment size, TOS) written into room the sender
/// keeps, and arrives through a `UDP_GRO` socket with one receive, cut into the batch —
/// neither way allocates. On the loopback device; needs root (the sender's raw sockets),
/// skipped otherwise.
#[test]
fn udp_runs_leave_and_arrive_without_allocating() {
    use espo_gateway::path::{OutsideRx, OutsideTx, PacketBuf};
    use espo_gateway::sockets::{OuterRx, OuterTx, RxPlan};
    use std::net::{IpAddr, UdpSocket};
    let Ok(tx) = OuterTx::open("lo") else {
        eprintln!("skipped: raw sockets need root");
        return;
    };
    // Two free ports (both held while the second is chosen).
    let (pa, pb) = {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        )
    };
    let local = IpAddr::from([127, 0, 0, 1]);
    let plan = |port| RxPlan {
        udp: vec![(local, port)],
        ..RxPlan::default()
    };
    let sender = OuterRx::open("lo", &plan(pa)).unwrap();
    let tx = tx.with_udp(&sender);
    let mut rx = OuterRx::open("lo", &plan(pb)).unwrap();
    rx.enable_udp_gro();
    const RUN: usize = 20;
    let packets: Vec<Vec<u8>> = (0..RUN)
        .map(|i| loopback_datagram(pa, pb, 1000, i as u8))
        .collect();
    let run: Vec<&[u8]> = packets.iter().map(|p| p.as_slice()).collect();
    let (mut tx_scratch, mut rx_scratch) = (tx.scratch(), rx.scratch());
    let mut bufs: Vec<PacketBuf> = (0..32).map(|_| PacketBuf::default()).collect();
    // One run over and back; returns the packets received (the loopback device delivers
    // during the send).
    let mut round = |bufs: &mut [PacketBuf]| -> usize {
        assert_eq!(tx.send_batch(&run, &mut tx_scratch), 0);
        let mut got = 0;
        while got < RUN {
            match rx.recv_batch(0, &mut bufs[got..], &mut rx_scratch) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        got
    };
    assert_eq!(round(&mut bufs), RUN, "warm-up");
    let rounds = 200;
    let mut received = 0;
    let mut same = true;
    let info = allocation_counter::measure(|| {
        for _ in 0..rounds {
            let got = round(&mut bufs);
            received += got;
            // Each arrives whole (its IP and UDP headers rebuilt), payload as sent.
            for (b, p) in bufs[..got].iter().zip(&packets) {
                same &= b.packet().get(28..) == Some(&p[28..]);
            }
        }
    });
    assert_eq!(received, rounds * RUN);
    assert!(same, "a datagram arrived changed");
    assert_eq!(
        info.count_total, 0,
        "allocations sending and receiving runs: {info:?}"
    );
    // One send and one receive per run: the run crossed as one packet (sent datagram by
    // datagram through the raw socket, each would arrive by itself).
    assert_eq!(tx.calls(&tx_scratch), rounds as u64 + 1);
    assert_eq!(rx.calls(&rx_scratch), rounds as u64 + 1);
}

/// A datapath thread's wait on its sources (busy polling, then sleeping) allocates nothing:
/// its poll set is built on the stack, with the engine's wake-up descriptor after the
/// sources. Each wait reports which sources are readable.
#[test]
fn waiting_for_packets_does_not_allocate() {
    use espo_gateway::threads::{Look, Shutdown, wait_readable_within};
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;
    let shutdown = Shutdown::new().unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..3).map(|_| UnixStream::pair().unwrap()).collect();
    // The second source and the extra descriptor have something to read.
    (&pairs[1].0).write_all(&[1]).unwrap();
    (&pairs[2].0).write_all(&[1]).unwrap();
    let sources = [pairs[0].1.as_fd(), pairs[1].1.as_fd()];
    let extra = Some(pairs[2].1.as_fd());
    let mut ready = Vec::new();
    let mut look = Look::new(Duration::from_micros(20));
    let mut wait = |ready: &mut Vec<bool>| {
        wait_readable_within(
            &sources,
            extra,
            &shutdown,
            ready,
            &mut look,
            Duration::from_millis(1),
        )
    };
    wait(&mut ready);
    assert_eq!(ready, [false, true, true]);
    let info = allocation_counter::measure(|| {
        for _ in 0..1000 {
            wait(&mut ready);
        }
    });
    assert_eq!(ready, [false, true, true]);
    assert_eq!(info.count_total, 0, "allocations waiting: {info:?}");
}

/// `espo run`'s card gateway receiving: the card leaves what it decapsulates in its
/// buffers (`lend_rx`), the inbound seam holds a batch's UDP packets there
/// (`CardRx { hold: true }`) and writes each from there with one `writev`
/// (`CardInbound::write_held_to`, a pipe standing in for the TUN device) — nothing
/// allocated per packet, and every packet written whole.
#[test]
fn card_packets_written_from_its_buffers_do_not_allocate() {
    use espo_gateway::card::engine::{CardInbound, CardRx};
    use espo_gateway::path::{InboundEngine, OutboundEngine, OutsideRx, PacketBuf};
    use espo_offload::OffloadOptions;
    use std::os::fd::AsFd;

    const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
    let example = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/gw-gw/esp-model")
            .join(name);
        Config::load(&path).unwrap_or_else(|e| panic!("{e}"))
    };
    let (cfg, mut peer) = (
        example("gw-b.toml"),
        example("gw-a.toml").software_engine().unwrap(),
    );
    let options = OffloadOptions {
        local_mac: B_MAC,
        lend_rx: true,
        ..OffloadOptions::default()
    };
    let (shared, queues, model) = card_gateway_of(&cfg, options);
    // Site 1's UDP packets, protected by the peer and framed for the card's port.
    let rounds = 30;
    let mut frames = Vec::new();
    for i in 0..rounds * 32 {
        let mut inner = loopback::udp_packet(1000, i as u8);
        inner[12..16].copy_from_slice(&[10, 1, 0, 2]);
        inner[16..20].copy_from_slice(&[10, 2, 0, 2]);
        inner[10..12].fill(0);
        let sum = espo_ipsec::wire::checksum::data(&inner[..20]);
        inner[10..12].copy_from_slice(&(!sum).to_be_bytes());
        let mut batch = [PacketBuf::default()];
        assert!(batch[0].load(&inner));
        let mut verdicts = Vec::new();
        OutboundEngine::encapsulate(&mut peer.outbound, &mut batch, &mut verdicts);
        assert!(verdicts[0].is_ok(), "{verdicts:?}");
        let mut frame = B_MAC.to_vec();
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xa, 0x08, 0x00]);
        frame.extend_from_slice(batch[0].packet());
        frames.push(frame);
    }
    let rx = CardRx {
        shared: &shared,
        hold: true,
        hold_tcp: false,
    };
    let mut inbound = CardInbound { shared: &shared };
    let mut bufs: Vec<PacketBuf> = (0..32).map(|_| PacketBuf::default()).collect();
    let mut scratch = rx.scratch();
    let mut verdicts = Vec::with_capacity(32);
    let mut out = Vec::with_capacity(32);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
    let prefix = [0u8; 10];
    let mut drained = vec![0u8; 65536];
    let (mut written, mut allocations) = (0, 0);
    model.hold(true);
    for (round, chunk) in frames.chunks(32).enumerate() {
        for f in chunk {
            queues.push_for_card(f.clone());
        }
        model.run_until_idle();
        out.clear();
        let info = allocation_counter::measure(|| {
            let n = rx.recv_batch(0, &mut bufs, &mut scratch).unwrap();
            inbound.decapsulate(&mut bufs[..n], &mut verdicts);
            inbound.write_held_to(|_| (w.as_fd(), &prefix[..]), &mut out);
        });
        written += out.iter().filter(|&&(len, ok)| ok && len == 1000).count();
        while nix::unistd::read(&r, &mut drained).is_ok_and(|k| k > 0) {}
        if round >= 5 {
            allocations += info.count_total;
        }
    }
    model.hold(false);
    assert_eq!(
        written,
        rounds * 32,
        "every packet written whole from the card's buffer"
    );
    assert_eq!(
        allocations, 0,
        "allocations writing packets from the card's buffers"
    );
}
