//! The card behind the seams, without root: the card model (its clock moved by the test)
//! with its port on the in-memory queues, a software-engine peer on the other end.

use std::path::Path;
use std::sync::Arc;

use espo_driver::card::Card;
use espo_driver::model::{ModelDevice, ModelOptions, Pacing};

use super::*;
use crate::card::port::{CardEnd, PortQueues};
use espo_config::Config;
use espo_ipsec::engine::SoftwareEngine;
use espo_offload::Placement;

const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];

fn load(name: &str) -> Config {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/gw-gw/esp-model")
        .join(name);
    Config::load(&full).unwrap_or_else(|e| panic!("{e}"))
}

/// An IPv4 UDP packet of `len` bytes from `src` to `dst`.
fn udp(src: [u8; 4], dst: [u8; 4], len: usize, seed: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    let mut h = espo_ipsec::wire::ipv4::Packet::new_unchecked(&mut p[..]);
    h.set_version(4);
    h.set_header_len(20);
    h.set_total_len(len as u16);
    h.set_hop_limit(64);
    h.set_next_header(espo_ipsec::wire::IpProtocol::Udp);
    h.set_src_addr(src.into());
    h.set_dst_addr(dst.into());
    h.fill_checksum();
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
    p
}

fn buf(packet: &[u8]) -> PacketBuf {
    let mut b = PacketBuf::default();
    assert!(b.load(packet));
    b
}

struct Bench {
    shared: CardShared,
    queues: Arc<PortQueues>,
    config: Config,
    peer: SoftwareEngine,
}

/// gw-b on the card model (inline pacing: the model runs only when the test moves it),
/// gw-a as a software engine.
fn bench() -> Bench {
    bench_with(false)
}

/// [`bench`], the card leaving the packets it decapsulates in its buffers when `lend_rx`.
fn bench_with(lend_rx: bool) -> Bench {
    bench_of(load("gw-b.toml"), lend_rx)
}

/// [`bench_with`] with gw-b's configuration `config`.
fn bench_of(config: Config, lend_rx: bool) -> Bench {
    let peer = load("gw-a.toml").software_engine().unwrap();
    let queues = Arc::new(PortQueues::new().unwrap());
    let device = ModelDevice::new(ModelOptions {
        pacing: Pacing::Inline,
        ..ModelOptions::default()
    });
    let model = device.handle();
    model.attach_link(Box::new(CardEnd::new(Arc::clone(&queues))));
    let card = Card::open(Arc::new(device), super::super::card_config()).unwrap();
    let options = espo_offload::OffloadOptions {
        local_mac: B_MAC,
        lend_rx,
        ..espo_offload::OffloadOptions::default()
    };
    let engine = OffloadEngine::new(&config.sas, &config.policies, Some(card), options).unwrap();
    let shared = CardShared::new(
        engine,
        Arc::clone(&queues),
        super::super::backend::CardBackend::Model(model),
    )
    .unwrap();
    Bench {
        shared,
        queues,
        config,
        peer,
    }
}

impl Bench {
    /// Runs the card until it has nothing scheduled (bounded).
    fn settle_card(&self) {
        for _ in 0..100 {
            self.shared
                .backend()
                .model_handle()
                .expect("the model")
                .advance(10_000);
            self.shared.engine().poll();
        }
    }

    /// A packet from site 1, protected by gw-a and framed for gw-b's port.
    fn protected_by_peer(&mut self, inner: &[u8]) -> Vec<u8> {
        let mut batch = [buf(inner)];
        let mut verdicts = Vec::new();
        OutboundEngine::encapsulate(&mut self.peer.outbound, &mut batch, &mut verdicts);
        assert_eq!(verdicts, [Ok(Outgoing::Protected { spi: 0x1001 })]);
        let mut frame = B_MAC.to_vec();
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xa, 0x08, 0x00]);
        frame.extend_from_slice(batch[0].packet());
        frame
    }

    /// `packets` from site 1, protected by gw-a, on their way to the card's port.
    fn push_protected(&mut self, packets: &[Vec<u8>]) {
        for p in packets {
            let frame = self.protected_by_peer(p);
            self.queues.push_for_card(frame);
        }
    }

    /// One receive through the inbound seam, the card's packets held where they may be
    /// (`hold_tcp`: TCP segments too), into `bufs`: the verdicts, one per packet received.
    fn receive_holding(
        &self,
        hold_tcp: bool,
        bufs: &mut [PacketBuf],
    ) -> Vec<Result<Incoming, DropReason>> {
        let rx = CardRx {
            shared: &self.shared,
            hold: true,
            hold_tcp,
        };
        let n = rx.recv_batch(0, bufs, &mut rx.scratch()).unwrap();
        let mut verdicts = Vec::new();
        CardInbound {
            shared: &self.shared,
        }
        .decapsulate(&mut bufs[..n], &mut verdicts);
        verdicts
    }

    /// Everything the card's port received, through the inbound seam.
    fn receive(&self) -> Vec<(Result<Incoming, DropReason>, Vec<u8>)> {
        let rx = CardRx {
            shared: &self.shared,
            hold: false,
            hold_tcp: false,
        };
        let mut inbound = CardInbound {
            shared: &self.shared,
        };
        let mut out = Vec::new();
        let mut bufs: Vec<PacketBuf> = (0..4).map(|_| PacketBuf::default()).collect();
        let mut scratch = rx.scratch();
        let mut verdicts = Vec::new();
        for _ in 0..100 {
            self.shared
                .backend()
                .model_handle()
                .expect("the model")
                .advance(10_000);
            let n = rx.recv_batch(0, &mut bufs, &mut scratch).unwrap();
            inbound.decapsulate(&mut bufs[..n], &mut verdicts);
            assert_eq!(verdicts.len(), n);
            for (b, v) in bufs[..n].iter().zip(verdicts.iter()) {
                out.push((*v, b.packet().to_vec()));
            }
        }
        out
    }
}

/// An IPv4 packet of `len` bytes from site 1 to site 2 whose protocol says TCP (a segment
/// the coalescer may hold).
fn tcp_packet(len: usize) -> Vec<u8> {
    let mut tcp = udp([10, 1, 0, 2], [10, 2, 0, 2], len, 2);
    tcp[9] = 6;
    espo_ipsec::wire::ipv4::Packet::new_unchecked(&mut tcp[..]).fill_checksum();
    tcp
}

/// The outbound half on `shared`, sized by `config`'s software engine.
fn outbound<'a>(shared: &'a CardShared, config: &Config) -> CardOutbound<'a> {
    let sizing = config.software_engine().unwrap().outbound;
    CardOutbound::new(
        shared,
        sizing,
        std::sync::Arc::new(crate::mailbox::Mailbox::new().unwrap()),
    )
}

#[test]
fn the_card_encapsulates_what_the_outbound_seam_hands_it() {
    let mut b = bench();
    let shared = &b.shared;
    let mut out = outbound(shared, &b.config);
    let inner = udp([10, 2, 0, 2], [10, 1, 0, 2], 300, 7);
    assert_eq!(out.overhead(&inner), Ok(Some(69 - 15 + 2)));
    let mut batch = [buf(&inner)];
    let mut verdicts = Vec::new();
    out.encapsulate(&mut batch, &mut verdicts);
    assert!(matches!(verdicts[..], [Ok(Outgoing::Transmitted { .. })]));
    b.settle_card();
    let frames = b.queues.take_for_wire();
    assert_eq!(frames.len(), 1, "one frame on the port");
    assert_eq!(&frames[0][6..12], &B_MAC, "from the port's MAC");
    // The peer's software engine decapsulates the card's packet to the original.
    let mut batch = [buf(&frames[0][14..])];
    let mut incoming = Vec::new();
    InboundEngine::decapsulate(&mut b.peer.inbound, &mut batch, &mut incoming);
    assert_eq!(incoming, [Ok(Incoming::Inner { spi: 0x2001 })]);
    assert_eq!(batch[0].packet(), &inner[..]);
    let mut snap = Vec::new();
    out.snapshot(&mut snap);
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].spi, 0x2001);
    assert!(matches!(snap[0].placement, Placement::Card { .. }));
    assert_eq!(snap[0].packets, 1);
    let mut late = Vec::new();
    out.settle(&mut late);
    assert!(late.is_empty(), "sent: nothing to take back");
    assert!(
        CardSends.send_batch(&[&[1u8][..]], &mut ()) == 1,
        "never sends itself"
    );
}

/// A super-packet's segments go from it straight into the card's buffers (copied in
/// when it lends none): more of them than one round of the card takes, the short last
/// one included, each reported handed
/// on with its length, and each of the card's ESP packets the peer decapsulates to
/// exactly the segment `next_into` writes — in order, numbered without a gap.
#[test]
fn the_card_takes_a_super_packets_segments_straight_from_it() {
    let mut b = bench();
    let shared = &b.shared;
    let mut out = outbound(shared, &b.config);
    assert!(out.takes_segments());
    let (sup, hdr) = espo_harness::loopback::tcp_super_packet(
        [10, 2, 0, 2],
        [10, 1, 0, 2],
        40 * 1000 + 321,
        1000,
    );
    let mut expected = Vec::new();
    let mut cut = espo_ipsec::gso::Segments::new(&sup, &hdr).unwrap();
    let mut seg = vec![0u8; 2000];
    while let Some(n) = cut.next_into(&mut seg) {
        expected.push(seg[..n].to_vec());
    }
    assert_eq!(expected.len(), 41);
    let mut segments = espo_ipsec::gso::Segments::new(&sup, &hdr).unwrap();
    let mut taken = Vec::new();
    let mut frames = Vec::new();
    // When the card lends no more buffers, segments are assembled and copied in: all
    // but 10 of its buffers held here, so both ways are taken and must give the same.
    let held: Vec<_> = {
        let mut engine = shared.engine();
        let mut held: Vec<_> = std::iter::from_fn(|| engine.tx_slot()).collect();
        for slot in held.drain(..10) {
            engine.release_slot(slot);
        }
        held
    };
    assert!(!held.is_empty());
    out.encapsulate_segments(&mut segments, &mut taken);
    for slot in held {
        shared.engine().release_slot(slot);
    }
    assert!(segments.next_parts(&mut [0u8; 128]).is_none(), "all taken");
    for _ in 0..20 {
        b.settle_card();
        frames.extend(b.queues.take_for_wire());
    }
    let lens: Vec<usize> = expected.iter().map(Vec::len).collect();
    assert_eq!(taken.iter().map(|t| t.0).collect::<Vec<_>>(), lens);
    assert!(taken.iter().all(|t| t.1.is_ok()), "{taken:?}");
    assert_eq!(frames.len(), expected.len(), "one ESP packet per segment");
    let mut seqs = Vec::new();
    for (frame, want) in frames.iter().zip(&expected) {
        seqs.push(u32::from_be_bytes(
            frame[14 + 24..14 + 28].try_into().unwrap(),
        ));
        let mut batch = [buf(&frame[14..])];
        let mut incoming = Vec::new();
        InboundEngine::decapsulate(&mut b.peer.inbound, &mut batch, &mut incoming);
        assert_eq!(incoming, [Ok(Incoming::Inner { spi: 0x2001 })]);
        assert_eq!(batch[0].packet(), &want[..]);
    }
    assert_eq!(seqs, (1..=41).collect::<Vec<u32>>());
    let mut late = Vec::new();
    out.settle(&mut late);
    assert!(late.is_empty(), "{late:?}");
}

#[test]
fn the_inbound_seam_delivers_what_the_card_decapsulated_and_counts_a_replay() {
    let mut b = bench();
    let inner = udp([10, 1, 0, 2], [10, 2, 0, 2], 500, 3);
    let frame = b.protected_by_peer(&inner);
    b.queues.push_for_card(frame.clone());
    b.shared.wake.signal();
    let got = b.receive();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, Ok(Incoming::Inner { spi: 0x1001 }));
    assert_eq!(got[0].1, inner);
    // The same frame again: the card's window refuses it, and the seam says why.
    b.queues.push_for_card(frame);
    let got = b.receive();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, Err(DropReason::Replayed));
    let mut snap = Vec::new();
    CardInbound { shared: &b.shared }.snapshot(&mut snap);
    assert_eq!((snap[0].spi, snap[0].packets), (0x1001, 1));
    assert!(matches!(snap[0].placement, Placement::Card { .. }));
    assert_eq!(snap[0].seq, 1, "the highest accepted");
}

#[test]
fn a_batch_filled_from_both_descriptors_keeps_every_packets_verdict() {
    // The inbound thread takes a batch from each readable descriptor (the wake-up, the
    // card's interrupt) and decapsulates them together.
    let mut b = bench();
    let packets: Vec<Vec<u8>> = (0..6)
        .map(|i| udp([10, 1, 0, 2], [10, 2, 0, 2], 200 + i * 10, i as u8))
        .collect();
    let frames: Vec<Vec<u8>> = packets.iter().map(|p| b.protected_by_peer(p)).collect();
    for f in &frames[..3] {
        b.queues.push_for_card(f.clone());
    }
    b.settle_card();
    let rx = CardRx {
        shared: &b.shared,
        hold: false,
        hold_tcp: false,
    };
    let mut inbound = CardInbound { shared: &b.shared };
    let mut bufs: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::default()).collect();
    let mut scratch = rx.scratch();
    let first = rx.recv_batch(0, &mut bufs, &mut scratch).unwrap();
    assert_eq!(first, 3);
    for f in &frames[3..] {
        b.queues.push_for_card(f.clone());
    }
    b.settle_card();
    let second = rx.recv_batch(1, &mut bufs[first..], &mut scratch).unwrap();
    assert_eq!(second, 3);
    let mut verdicts = Vec::new();
    inbound.decapsulate(&mut bufs[..6], &mut verdicts);
    assert_eq!(verdicts, vec![Ok(Incoming::Inner { spi: 0x1001 }); 6]);
    for (b, p) in bufs.iter().zip(&packets) {
        assert_eq!(b.packet(), &p[..]);
    }
}

/// With the card's packets left in its buffers, packets of flows the coalescer never
/// holds (not TCP) stay there and are written from there, in order, before the rest of
/// the batch (a TCP segment here, copied in for the coalescer: another flow, which they
/// may pass). Every held buffer goes back to the card.
#[test]
fn a_batchs_first_packets_are_written_from_the_cards_buffers() {
    let mut b = bench_with(true);
    let packets = [
        udp([10, 1, 0, 2], [10, 2, 0, 2], 300, 0),
        udp([10, 1, 0, 3], [10, 2, 0, 2], 1400, 1),
        tcp_packet(400),
        udp([10, 1, 0, 2], [10, 2, 0, 2], 200, 3),
    ];
    b.push_protected(&packets);
    // Later rounds' frames, made now (the peer numbers them in order).
    let ring = 1 << super::super::card_config().ring_log2;
    let rounds = ring / 2 + 10;
    let later: Vec<Vec<u8>> = (0..rounds * 3)
        .map(|i| b.protected_by_peer(&udp([10, 1, 0, 2], [10, 2, 0, 2], 100, i as u8)))
        .collect();
    b.settle_card();
    let mut inbound = CardInbound { shared: &b.shared };
    let mut bufs: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::default()).collect();
    let verdicts = b.receive_holding(false, &mut bufs);
    assert_eq!(verdicts.len(), 4);
    assert_eq!(
        verdicts,
        [
            Ok(Incoming::Held { spi: 0x1001 }),
            Ok(Incoming::Held { spi: 0x1001 }),
            Ok(Incoming::Inner { spi: 0x1001 }),
            Ok(Incoming::Held { spi: 0x1001 }),
        ]
    );
    assert_eq!(
        bufs[2].packet(),
        &packets[2][..],
        "TCP: copied in, for the coalescer"
    );
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
    let prefix = [0xaa_u8; 10];
    let mut out = Vec::new();
    inbound.write_held_to(|_| (w.as_fd(), &prefix[..]), &mut out);
    // The UDP packet after the TCP segment is of another flow: held as well.
    assert_eq!(out, [(300, true), (1400, true), (200, true)]);
    let mut want = Vec::new();
    for p in [&packets[0], &packets[1], &packets[3]] {
        want.extend_from_slice(&prefix);
        want.extend_from_slice(p);
    }
    let mut got = vec![0u8; want.len() + 100];
    let k = nix::unistd::read(&r, &mut got).unwrap();
    assert_eq!(
        &got[..k],
        &want[..],
        "each packet whole, after its prefix, in order"
    );
    // Nothing held any more.
    out.clear();
    inbound.write_held_to(|_| (w.as_fd(), &prefix[..]), &mut out);
    assert!(out.is_empty());
    // The buffers are the card's again: many more packets than its ring has buffers are
    // held and written in turn.
    let mut written = 0;
    let mut buf = vec![0u8; 4096];
    for (round, frames) in later.chunks(3).enumerate() {
        for frame in frames {
            b.queues.push_for_card(frame.clone());
        }
        b.settle_card();
        let verdicts = b.receive_holding(false, &mut bufs);
        let n = verdicts.len();
        assert!(
            verdicts
                .iter()
                .all(|v| matches!(v, Ok(Incoming::Held { .. }))),
            "round {round}: {verdicts:?}"
        );
        out.clear();
        inbound.write_held_to(|_| (w.as_fd(), &prefix[..]), &mut out);
        assert_eq!(out.len(), n);
        written += n;
        while nix::unistd::read(&r, &mut buf).is_ok_and(|k| k > 0) {}
    }
    assert_eq!(written, 3 * rounds, "more than the ring's buffers");
}

/// A packet of a flow that already has a packet in the batch is not held: written from
/// the card's buffer first, it would pass that one. Here the inbound SA moves from the
/// software half to the card between two packets of one flow: the first comes decapsulated
/// by software (into the batch), the second is left in the card's buffer and copied in
/// after it; a packet of another flow after them is held.
#[test]
fn a_flows_packet_never_passes_one_of_its_flow_in_the_batch() {
    let mut b = bench_with(true);
    let first = udp([10, 1, 0, 2], [10, 2, 0, 2], 300, 0);
    let second = udp([10, 1, 0, 2], [10, 2, 0, 2], 200, 1);
    let other = udp([10, 1, 0, 3], [10, 2, 0, 2], 250, 2);
    assert!(b.shared.engine().move_to_software(0x1001, Direction::In));
    b.push_protected(std::slice::from_ref(&first));
    b.settle_card();
    assert!(b.shared.engine().move_to_card(0x1001, Direction::In));
    b.settle_card();
    b.push_protected(&[second.clone(), other.clone()]);
    b.settle_card();
    let mut inbound = CardInbound { shared: &b.shared };
    let mut bufs: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::default()).collect();
    let verdicts = b.receive_holding(false, &mut bufs);
    assert_eq!(
        verdicts,
        [
            Ok(Incoming::Inner { spi: 0x1001 }),
            Ok(Incoming::Inner { spi: 0x1001 }),
            Ok(Incoming::Held { spi: 0x1001 }),
        ]
    );
    assert_eq!(bufs[0].packet(), &first[..], "decapsulated by software");
    assert_eq!(
        bufs[1].packet(),
        &second[..],
        "its flow's next: copied in after it"
    );
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
    let mut out = Vec::new();
    inbound.write_held_to(|_| (w.as_fd(), &[][..]), &mut out);
    assert_eq!(out, [(250, true)]);
    let mut got = vec![0u8; 1000];
    let k = nix::unistd::read(&r, &mut got).unwrap();
    assert_eq!(&got[..k], &other[..]);
}

/// The batch's flows a held packet must not pass: TCP flows count only where TCP
/// segments are held too, so that a batch of many TCP flows leaves its UDP packets held.
#[test]
fn only_flows_a_held_packet_could_belong_to_are_kept() {
    let tcp = |host: u8| {
        let mut p = udp([10, 1, 0, host], [10, 2, 0, 2], 100, 0);
        let mut h = espo_ipsec::wire::ipv4::Packet::new_unchecked(&mut p[..]);
        h.set_next_header(espo_ipsec::wire::IpProtocol::Tcp);
        h.fill_checksum();
        p
    };
    let datagram = udp([10, 1, 0, 99], [10, 2, 0, 2], 100, 0);
    for hold_tcp in [false, true] {
        let mut batched = BatchedFlows::new(hold_tcp);
        assert!(
            !batched.has_flow_of(&datagram, datagram.len()),
            "nothing yet"
        );
        for host in 1..=BATCHED_FLOWS as u8 + 1 {
            batched.note(&tcp(host));
        }
        // Past the flows kept, nothing more is held; without held TCP none was kept.
        assert_eq!(
            batched.has_flow_of(&datagram, datagram.len()),
            hold_tcp,
            "hold_tcp {hold_tcp}"
        );
        let mut batched = BatchedFlows::new(hold_tcp);
        batched.note(&datagram);
        assert!(
            batched.has_flow_of(&datagram, datagram.len()),
            "its own flow"
        );
        let other = udp([10, 1, 0, 98], [10, 2, 0, 2], 100, 0);
        assert!(!batched.has_flow_of(&other, other.len()), "another flow");
        assert!(
            batched.has_flow_of(&[0x45], 100),
            "a head that tells no flow"
        );
    }
}

/// Where no coalescer runs (a TUN device without offloads), TCP segments are held and
/// written from the card's buffers too: the whole batch, in order.
#[test]
fn without_a_coalescer_every_packet_is_written_from_the_cards_buffers() {
    let mut b = bench_with(true);
    let packets = [
        udp([10, 1, 0, 2], [10, 2, 0, 2], 300, 0),
        tcp_packet(400),
        udp([10, 1, 0, 2], [10, 2, 0, 2], 200, 3),
    ];
    b.push_protected(&packets);
    b.settle_card();
    let mut inbound = CardInbound { shared: &b.shared };
    let mut bufs: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::default()).collect();
    let verdicts = b.receive_holding(true, &mut bufs);
    assert_eq!(verdicts, vec![Ok(Incoming::Held { spi: 0x1001 }); 3]);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
    let mut out = Vec::new();
    inbound.write_held_to(|_| (w.as_fd(), &[][..]), &mut out);
    assert_eq!(out, [(300, true), (400, true), (200, true)]);
    let mut got = vec![0u8; 2000];
    let k = nix::unistd::read(&r, &mut got).unwrap();
    assert_eq!(&got[..k], &packets.concat()[..], "each whole, in order");
}

#[test]
fn housekeeping_keeps_the_latest_events_for_status() {
    let b = bench();
    assert!(b.shared.events().is_empty());
    assert!(b.shared.engine().move_to_software(0x2001, Direction::Out));
    b.shared.housekeeping();
    assert!(matches!(
        b.shared.events()[..],
        [EngineEvent::Moved {
            spi: 0x2001,
            dir: Direction::Out,
            to: espo_offload::Placement::Software,
            ..
        }]
    ));
    let text = super::super::status::render(
        &b.shared,
        "eth1",
        B_MAC,
        &std::sync::Mutex::new(super::super::port::PortView::default()),
    );
    assert!(
        text.contains("event: out 0x00002001 moved to software (Requested)"),
        "{text}"
    );
    assert!(text.contains("1 of 2 SAs on the card"), "{text}");
    for _ in 0..EVENTS_KEPT + 3 {
        let mut e = b.shared.engine();
        e.move_to_card(0x2001, Direction::Out);
        e.move_to_software(0x2001, Direction::Out);
        drop(e);
        b.shared.housekeeping();
    }
    assert_eq!(b.shared.events().len(), EVENTS_KEPT, "bounded");
}

#[test]
fn outbound_workers_share_the_engine_each_with_its_own_reports() {
    let mut b = bench();
    b.shared = b.shared.with_outbound_workers(2);
    let worker = |i: usize| {
        CardOutbound::new(
            &b.shared,
            b.config.software_engine().unwrap().outbound,
            Arc::new(crate::mailbox::Mailbox::new().unwrap()),
        )
        .worker(i)
    };
    let (mut w0, mut w1) = (worker(0), worker(1));
    let good: Vec<Vec<u8>> = (0..2)
        .map(|i| udp([10, 2, 0, 2], [10, 1, 0, 2], 300 + i, i as u8))
        .collect();
    let bad = [0x45u8; 10];
    // Each worker's verdicts are those of its own batch.
    let mut verdicts = Vec::new();
    w0.encapsulate(&mut [buf(&good[0]), buf(&bad)], &mut verdicts);
    assert!(
        matches!(
            verdicts[..],
            [Ok(Outgoing::Transmitted { .. }), Err(DropReason::Malformed)]
        ),
        "{verdicts:?}"
    );
    w1.encapsulate(&mut [buf(&bad), buf(&good[1])], &mut verdicts);
    assert!(
        matches!(
            verdicts[..],
            [Err(DropReason::Malformed), Ok(Outgoing::Transmitted { .. })]
        ),
        "{verdicts:?}"
    );
    // A report one worker takes from the engine for another reaches that other one.
    for (owner, tag) in [(0, 500u64), (1, (1 << WORKER_SHIFT) | 500)] {
        b.shared.engine().submit(tag, &bad);
        let (mut late0, mut late1) = (Vec::new(), Vec::new());
        // The worker that does not own the report takes it first.
        if owner == 0 {
            w1.settle(&mut late1);
            w0.settle(&mut late0);
        } else {
            w0.settle(&mut late0);
            w1.settle(&mut late1);
        }
        let (mine, theirs) = if owner == 0 {
            (late0, late1)
        } else {
            (late1, late0)
        };
        assert_eq!(mine, [DropReason::Malformed], "worker {owner}");
        assert!(theirs.is_empty(), "worker {owner}'s report went elsewhere");
    }
    // The card sent both workers' packets, each with a number of its own.
    b.settle_card();
    let frames = b.queues.take_for_wire();
    assert_eq!(frames.len(), 2);
    let mut seqs = Vec::new();
    for f in &frames {
        seqs.push(u32::from_be_bytes(f[14 + 24..14 + 28].try_into().unwrap()));
        let mut batch = [buf(&f[14..])];
        let mut incoming = Vec::new();
        InboundEngine::decapsulate(&mut b.peer.inbound, &mut batch, &mut incoming);
        assert_eq!(incoming, [Ok(Incoming::Inner { spi: 0x2001 })]);
        assert!(good.iter().any(|g| g[..] == *batch[0].packet()));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2]);
    // The engine's SA rows are shown once (by the first worker), with every packet.
    let (mut s0, mut s1) = (Vec::new(), Vec::new());
    w0.snapshot(&mut s0);
    w1.snapshot(&mut s1);
    assert_eq!((s0.len(), s0[0].packets), (1, 2));
    assert!(s1.is_empty());
}

/// Free TX buffers the card lends now (each taken and given back).
fn free_slots(shared: &CardShared) -> usize {
    let mut engine = shared.engine();
    let held: Vec<_> = std::iter::from_fn(|| engine.tx_slot()).collect();
    let n = held.len();
    for slot in held {
        engine.release_slot(slot);
    }
    n
}

/// A TUN read straight into a card TX buffer: a single packet that fits leaves from
/// there — its partial checksum completed in the card's memory, as
/// `gso::complete_checksum` completes it in host memory — and anything else (a packet
/// too big for the path, a link-scope one, a super-packet longer than the buffer) is
/// left in host memory as a plain read leaves it, the buffer given back. An empty device
/// is `WouldBlock`, with no buffer kept.
#[test]
fn a_tun_read_lands_in_the_cards_buffer_and_leaves_from_there() {
    use espo_ipsec::gso::{F_NEEDS_CSUM, VNET_HDR_LEN, VnetHdr};
    use espo_ipsec::wire::checksum;
    let mut b = bench();
    let shared = &b.shared;
    let mut out = outbound(shared, &b.config);
    assert!(out.reads_into_buffers());
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
    let free = free_slots(shared);
    let mut vnet = [0u8; VNET_HDR_LEN];
    let mut area = vec![0u8; MAX_PACKET];
    let mut read = |out: &mut CardOutbound<'_>, vnet: &mut [u8], bytes: &[u8], mtu: usize| {
        nix::unistd::write(&w, bytes).unwrap();
        out.read_into_buffer(r.as_fd(), vnet, &mut area, mtu, None)
            .expect("a buffer")
            .map(|d| (d, area.clone()))
    };

    // A UDP packet as the inside stack hands it over: the pseudo-header's sum in the field.
    let mut partial = udp([10, 2, 0, 2], [10, 1, 0, 2], 700, 9);
    let pseudo = checksum::pseudo_header_v4(
        &[10, 2, 0, 2].into(),
        &[10, 1, 0, 2].into(),
        espo_ipsec::wire::IpProtocol::Udp,
        680,
    );
    partial[26..28].copy_from_slice(&pseudo.to_be_bytes());
    let hdr = VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: 0,
        hdr_len: 28,
        gso_size: 0,
        csum_start: 20,
        csum_offset: 6,
    };
    let mut whole = vec![0u8; VNET_HDR_LEN];
    assert!(hdr.emit(&mut whole));
    whole.extend_from_slice(&partial);
    let mut complete = partial.clone();
    espo_ipsec::gso::complete_checksum(&mut complete, &hdr).unwrap();
    assert_ne!(complete[26..28], partial[26..28]);
    let (d, _) = read(&mut out, &mut vnet, &whole, 1500).unwrap();
    assert_eq!(d, DirectRead::Sent { len: 700 });
    assert_eq!(
        vnet[0] & F_NEEDS_CSUM,
        0,
        "complete: not to be summed again"
    );
    // Without a virtio-net header, the same way.
    let plain = udp([10, 2, 0, 2], [10, 1, 0, 2], 64, 1);
    let (d, _) = read(&mut out, &mut [], &plain, 1500).unwrap();
    assert_eq!(d, DirectRead::Sent { len: 64 });
    out.post_reads();
    b.settle_card();
    let frames = b.queues.take_for_wire();
    assert_eq!(frames.len(), 2, "both packets on the port");
    for (frame, want) in frames.iter().zip([&complete, &plain]) {
        let mut batch = [buf(&frame[14..])];
        let mut incoming = Vec::new();
        InboundEngine::decapsulate(&mut b.peer.inbound, &mut batch, &mut incoming);
        assert_eq!(incoming, [Ok(Incoming::Inner { spi: 0x2001 })]);
        assert_eq!(batch[0].packet(), &want[..]);
    }
    let mut late = Vec::new();
    out.settle(&mut late);
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(free_slots(shared), free, "the sent buffers came back");

    // Too big for the path once encapsulated: in host memory, checksum not yet done.
    let mtu = 700 + out.max_overhead() - 1;
    let (d, area) = read(&mut out, &mut vnet, &whole, mtu).unwrap();
    assert_eq!(d, DirectRead::InHost { read: whole.len() });
    assert_eq!(&area[..700], &partial[..]);
    assert_eq!(vnet[0], F_NEEDS_CSUM);
    // Link-scope: in host memory.
    let mcast = udp([10, 2, 0, 2], [224, 0, 0, 5], 100, 2);
    let (d, area) = read(&mut out, &mut [], &mcast, 1500).unwrap();
    assert_eq!(d, DirectRead::InHost { read: 100 });
    assert_eq!(&area[..100], &mcast[..]);
    // A super-packet longer than a card buffer: whole in host memory, header first.
    let (sup, shdr) =
        espo_harness::loopback::tcp_super_packet([10, 2, 0, 2], [10, 1, 0, 2], 30_000, 1000);
    let mut whole = vec![0u8; VNET_HDR_LEN];
    assert!(shdr.emit(&mut whole));
    whole.extend_from_slice(&sup);
    let (d, area) = read(&mut out, &mut vnet, &whole, 1500).unwrap();
    assert_eq!(d, DirectRead::InHost { read: whole.len() });
    assert_eq!(&area[..sup.len()], &sup[..]);
    assert_eq!(VnetHdr::parse(&vnet), Some(shdr));
    // Nothing left to read.
    let empty = out.read_into_buffer(r.as_fd(), &mut vnet, &mut area.clone(), 1500, None);
    assert_eq!(
        empty.expect("a buffer").unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    out.post_reads();
    b.settle_card();
    assert!(b.queues.take_for_wire().is_empty(), "nothing else sent");
    assert_eq!(free_slots(shared), free, "no buffer kept");
}

/// While a path MTU learnt from an ICMP error holds for one SA, a TUN read straight into
/// the card is still handed on from there unless it is too big for its own SA's path:
/// that one is left in host memory, for the PMTU check (which answers it with an ICMP
/// error); the other SAs' packets, and the SA's smaller ones, are not held back.
#[test]
fn a_learnt_path_keeps_back_only_what_is_too_big_for_its_own_sa() {
    use crate::outer_pmtu::{PathMtus, TooBig, Verdict, engine::Learning};
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gw-gw/esp-model/gw-b.toml"),
    )
    .unwrap();
    // A second outbound SA, for site 3.
    let text = format!(
        "{text}\n[[sa]]\nspi = 0x2002\nprotocol = \"esp\"\nsrc = \"192.0.2.2\"\n\
         dst = \"192.0.2.3\"\nencryption = \"aes-gcm-128\"\n\
         key = \"101112131415161718191a1b1c1d1e1f20212223\"\n\n\
         [[policy]]\ndir = \"out\"\nsrc = \"10.2.0.0/16\"\ndst = \"10.3.0.0/16\"\n\
         action = \"protect\"\nsa = [0x2002]\n"
    );
    let config = Config::parse(&text, Path::new("gw-b.toml")).unwrap_or_else(|e| panic!("{e}"));
    let mtus = PathMtus::new(&config.sas, &config.policies, 1500);
    let b = bench_of(config, false);
    let shared = &b.shared;
    let mut card = outbound(shared, &b.config);
    let free = free_slots(shared);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
    let mut area = vec![0u8; MAX_PACKET];
    let mut read = |card: &mut CardOutbound<'_>, bytes: &[u8]| {
        nix::unistd::write(&w, bytes).unwrap();
        let mut out = Learning::new(card, &mtus);
        let fate = out
            .read_into_buffer(r.as_fd(), &mut [], &mut area, 1500, None)
            .expect("a buffer")
            .unwrap();
        (fate, area[..bytes.len()].to_vec())
    };
    let to_site_1 = udp([10, 2, 0, 2], [10, 1, 0, 2], 1400, 1);
    let small_to_site_1 = udp([10, 2, 0, 2], [10, 1, 0, 2], 700, 2);
    let to_site_3 = udp([10, 2, 0, 2], [10, 3, 0, 2], 1400, 3);
    // Nothing learnt: every path the interface's.
    assert_eq!(
        read(&mut card, &to_site_1).0,
        DirectRead::Sent { len: 1400 }
    );

    // A router on the way to 192.0.2.1 says 1300 about ESP 0x2001's first packet.
    mtus.note_used(0x2001, 1);
    let mut quote = vec![0u8; 28];
    let mut h = espo_ipsec::wire::ipv4::Packet::new_unchecked(&mut quote[..]);
    h.set_version(4);
    h.set_header_len(20);
    h.set_total_len(1468);
    h.set_hop_limit(64);
    h.set_next_header(espo_ipsec::wire::IpProtocol::Esp);
    h.set_src_addr([192, 0, 2, 2].into());
    h.set_dst_addr([192, 0, 2, 1].into());
    h.fill_checksum();
    quote[20..24].copy_from_slice(&0x2001u32.to_be_bytes());
    quote[24..28].copy_from_slice(&1u32.to_be_bytes());
    let error = TooBig {
        to: Some([192, 0, 2, 2].into()),
        mtu: 1300,
        quote: &quote,
    };
    assert_eq!(
        mtus.learn(&error, std::time::Instant::now()),
        Verdict::Learnt {
            spi: 0x2001,
            mtu: 1300
        }
    );
    let (fate, bytes) = read(&mut card, &to_site_1);
    assert_eq!(
        fate,
        DirectRead::InHost { read: 1400 },
        "too big for its path"
    );
    assert_eq!(bytes, to_site_1, "left whole in host memory");
    assert_eq!(
        read(&mut card, &small_to_site_1).0,
        DirectRead::Sent { len: 700 }
    );
    // The largest packet the learnt path carries once encapsulated leaves from the card's
    // buffer; one byte more stays in host memory (the PMTU check's own test).
    let fits = |n: usize| {
        let p = udp([10, 2, 0, 2], [10, 1, 0, 2], n, 4);
        n + card.overhead(&p).unwrap().unwrap() <= 1300
    };
    let largest = (1000..1300).rev().find(|&n| fits(n)).unwrap();
    assert!(!fits(largest + 1));
    let edge = udp([10, 2, 0, 2], [10, 1, 0, 2], largest, 4);
    assert_eq!(read(&mut card, &edge).0, DirectRead::Sent { len: largest });
    let over = udp([10, 2, 0, 2], [10, 1, 0, 2], largest + 1, 5);
    assert_eq!(
        read(&mut card, &over).0,
        DirectRead::InHost { read: largest + 1 }
    );
    assert_eq!(
        read(&mut card, &to_site_3).0,
        DirectRead::Sent { len: 1400 },
        "another SA's path is the interface's"
    );
    card.post_reads();
    b.settle_card();
    let frames = b.queues.take_for_wire();
    let spis: Vec<u32> = frames
        .iter()
        .map(|f| u32::from_be_bytes(f[14 + 20..14 + 24].try_into().unwrap()))
        .collect();
    assert_eq!(
        spis,
        [0x2001, 0x2001, 0x2001, 0x2002],
        "the four handed on, on the port"
    );
    assert!(frames[1].len() < frames[0].len(), "the smaller one second");
    let mut late = Vec::new();
    card.settle(&mut late);
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(free_slots(shared), free, "every buffer came back");
}

use proptest::prop_assume;
use proptest::{prop_assert, prop_assert_eq};

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever a read brings — any virtio-net header, any bytes, any length up to past a
    /// card buffer — nothing panics, nothing is lost, and every buffer comes back: a packet
    /// left in host memory is there byte for byte (its checksum field aside when the
    /// header asked for one), a packet handed on leaves as the card's frame or a counted
    /// refusal.
    #[test]
    fn any_tun_read_into_the_card_is_handed_on_or_left_whole(
        vnet in proptest::collection::vec(proptest::prelude::any::<u8>(), 10),
        with_vnet in proptest::prelude::any::<bool>(),
        valid in proptest::prelude::any::<bool>(),
        len in 0usize..12_000,
        seed in proptest::prelude::any::<u8>(),
        mtu in 60usize..2000,
    ) {
        use espo_ipsec::gso::VNET_HDR_LEN;
        let b = bench();
        let shared = &b.shared;
        let mut out = outbound(shared, &b.config);
        let free = free_slots(shared);
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK).unwrap();
        // A UDP packet of the tunnel's flow, or any bytes.
        let mut packet = if valid && len >= 28 {
            udp([10, 2, 0, 2], [10, 1, 0, 2], len.min(9000), seed)
        } else {
            (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
        };
        packet.truncate(len);
        let mut bytes = if with_vnet { vnet.clone() } else { Vec::new() };
        bytes.extend_from_slice(&packet);
        // A pipe gives at most its capacity at once: keep within it.
        prop_assume!(bytes.len() <= 60_000);
        if !bytes.is_empty() {
            nix::unistd::write(&w, &bytes).unwrap();
        }
        let mut head = [0u8; VNET_HDR_LEN];
        let head = if with_vnet { &mut head[..] } else { &mut head[..0] };
        let mut area = vec![0u8; MAX_PACKET];
        let got = out.read_into_buffer(r.as_fd(), head, &mut area, mtu, None).expect("a buffer");
        match got {
            Err(e) => prop_assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
            Ok(DirectRead::InHost { read }) => {
                prop_assert_eq!(read, bytes.len());
                let at = head.len();
                let csum = espo_ipsec::gso::VnetHdr::parse(head)
                    .filter(|h| h.flags & espo_ipsec::gso::F_NEEDS_CSUM != 0);
                match csum {
                    // Left for the usual path to complete, untouched.
                    Some(_) if head[0] & espo_ipsec::gso::F_NEEDS_CSUM != 0 => {
                        prop_assert_eq!(&area[..packet.len()], &packet[..]);
                    }
                    Some(h) => {
                        // Completed in the card's buffer, then left (link-scope): only the
                        // checksum's two bytes differ.
                        let at = usize::from(h.csum_start) + usize::from(h.csum_offset);
                        for (i, (a, p)) in area[..packet.len()].iter().zip(&packet).enumerate() {
                            prop_assert!(a == p || i == at || i == at + 1);
                        }
                    }
                    None => prop_assert_eq!(&area[..read - at], &packet[..]),
                }
            }
            Ok(DirectRead::Sent { len }) => {
                prop_assert_eq!(len, packet.len());
                prop_assert!(len + out.max_overhead() <= mtu);
            }
            Ok(DirectRead::Dropped { .. }) => prop_assert!(false, "the buffer could be read"),
        }
        out.post_reads();
        b.settle_card();
        let mut late = Vec::new();
        out.settle(&mut late);
        b.settle_card();
        prop_assert_eq!(free_slots(shared), free, "every buffer back");
    }
}
