//! `espo bench --engine model`: the offload engine over the card model. Two figures per
//! direction: the host CPU the engine and driver spend per packet, and the card's
//! throughput as the model simulates it (its performance counters: inner bytes per
//! simulated second), which is what the hardware would do.
//!
//! The host figure is measured two ways. Zero-copy (the gateway's way in and out): the
//! engine lends a card buffer, the packet is written into it — standing in for the TUN
//! read that lands there, timed apart as `source` and not counted — and submitted; a
//! decapsulated packet stays in the card's buffer and is given back once written out (the
//! TUN write, not made here). Copying: the packet is handed over from host memory
//! (`submit`) and a received one copied out (`Received::Inner`) — the baseline.
//!
//! The model runs in the same thread, apart and untimed: a round of packets is handed to
//! the engine, the model runs until idle, the engine takes the results. The model is held
//! (`ModelHandle::hold`) so that the driver's polls between them do not move it: none of
//! its work is counted as the host's.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use espo_config::Config;
use espo_driver::card::{Card, CardConfig};
use espo_driver::model::{MemLink, ModelDevice, ModelHandle, ModelOptions, ModelParams, Pacing};
use espo_gateway::card::engine::{SEGMENT_HEAD, hand_on_read, submit_segment};
use espo_gateway::path::DirectRead;
use espo_ipsec::engine::Encapsulated;
use espo_offload::{FRAME_HEADER, OffloadEngine, OffloadOptions, Received, SentAs, card_config};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

/// Packets per round when the host's cost is measured: a batch of 32. The model runs once
/// per round; with small rounds it does not flush the host's data out of the caches between
/// two batches (a card DMAs without touching the CPU's caches).
pub const HOST_ROUND: usize = 32;
/// Packets per round when the card's throughput is measured: enough to keep its pipeline
/// full, so that simulated time is not mostly filling and draining it.
pub const CARD_ROUND: usize = 512;

/// What was measured for one direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direction {
    pub packets: u64,
    /// Host CPU in the engine and driver.
    pub host: Duration,
    /// Zero-copy encapsulation: writing the packets into the lent buffers (the TUN read's
    /// stand-in; not in `host`).
    pub source: Duration,
    /// Host CPU the simulation itself took (informative).
    pub model: Duration,
    /// `host` by stage (see [`Direction::STAGES`]): where the host's time goes.
    pub stages: [Duration; 4],
    /// The card's inner throughput in simulated time, Gbit/s, and its port's line rate.
    pub card_inner_gbps: f64,
    pub card_line_gbps: f64,
    pub card_mpps: f64,
    /// How many of the packets the card itself transformed (the rest: software).
    pub by_card: u64,
}

impl Direction {
    /// The stages of `host`. Encapsulation: lending the card buffers, the outbound decision
    /// and queueing (`submit_slot`; in the copying path also the copy), routing and posting
    /// to the ring (the poll after submitting), completions and reports. Decapsulation: the
    /// driver's completions with the host's checks and reports (the poll), giving the
    /// buffers back (zero-copy; nothing in the copying path, where the engine copied out).
    pub const STAGES: [[&'static str; 4]; 2] = [
        ["lend", "decide", "post", "complete"],
        ["receive", "release", "", ""],
    ];

    pub fn host_ns_per_packet(&self) -> f64 {
        self.host.as_nanos() as f64 / self.packets.max(1) as f64
    }

    /// The card's figures from another run (one in rounds that keep its pipeline full).
    pub fn take_card_figures(&mut self, other: &Direction) {
        self.card_inner_gbps = other.card_inner_gbps;
        self.card_line_gbps = other.card_line_gbps;
        self.card_mpps = other.card_mpps;
    }

    pub fn source_ns_per_packet(&self) -> f64 {
        self.source.as_nanos() as f64 / self.packets.max(1) as f64
    }

    /// Each stage of direction `dir` (0: encapsulation, 1: decapsulation) with its host
    /// time per packet.
    pub fn stages_ns_per_packet(&self, dir: usize) -> impl Iterator<Item = (&'static str, f64)> {
        let per_packet = self.packets.max(1) as f64;
        Self::STAGES[dir.min(1)]
            .into_iter()
            .zip(self.stages)
            .filter(|(name, _)| !name.is_empty())
            .map(move |(name, t)| (name, t.as_nanos() as f64 / per_packet))
    }

    /// Adds `t` to stage `i` and to the host's time.
    fn charge(&mut self, i: usize, t: Duration) {
        self.stages[i] += t;
        self.host += t;
    }
}

fn card(size: usize) -> anyhow::Result<(Card, ModelHandle, MemLink)> {
    let dev = ModelDevice::new(ModelOptions {
        params: ModelParams::default(),
        pacing: Pacing::Inline,
        relax_horizon_cycles: 1,
        idle_step_cycles: 1,
    });
    let handle = dev.handle();
    let (near, far) = MemLink::pair();
    handle.attach_link(Box::new(near));
    let config = CardConfig {
        ring_log2: 10,
        buffer_bytes: (size as u32 + 256).clamp(2048, espo_offload::JUMBO_BUFFER_BYTES),
        // Host time runs on while the model is stepped apart: no fault detection here.
        hang_timeout: Duration::from_secs(3600),
        health_interval: None,
        ..card_config()
    };
    let card = Card::open(Arc::new(dev), config).context("bringing up the card model")?;
    Ok((card, handle, far))
}

/// How the bench hands packets to the engine for encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncapWay {
    /// Written into a lent card buffer first (the TUN read's stand-in, timed apart as
    /// `source`), then submitted there (`submit_slot`): nothing copied by the engine.
    Lent,
    /// From host memory into a lent card buffer (`submit_into_slot`): `espo run`'s way
    /// for a packet read from the TUN device into host memory (when the card lent no
    /// buffer, or the read before was a super-packet); the copy is the host's.
    FromHost,
    /// `espo run`'s way for a packet read from the TUN device by itself: read with its
    /// virtio-net header from a socket straight into a lent card buffer (the read timed
    /// apart as `source`, as the TUN read is), then handed on from there (`hand_on_read`,
    /// the gateway's own code: the header read, the fit and link-scope checks,
    /// `submit_slot`).
    Read,
    /// The same reads into host memory, each packet then copied into a lent card buffer
    /// (`submit_into_slot`): `espo run`'s way before its reads went straight into the card.
    ReadViaHost,
    /// `espo run`'s way with TUN offloads: UDP super-packets of up to 64 KiB cut into
    /// packets of the bench's size, each segment's headers made on the stack and written,
    /// with its payload from the super-packet, straight into a lent card buffer
    /// (`submit_parts_into_slot`) — the writes counted, as they are the segmenter's.
    Segments,
    /// The same segments written into host memory first (as the batch holds them), then
    /// copied into a lent card buffer (`submit_into_slot`).
    SegmentsViaHost,
    /// From host memory into a frame, then into DMA memory (`submit`): the baseline.
    Copying,
}

/// A UDP super-packet (GSO, as a TUN read with offloads brings it) of the flow of
/// `inner`, an IPv4 UDP packet, whose segments are packets of its length: as many as make
/// at most 64 KiB, 32 at most. Its header says no segmentation when `inner` has no payload.
fn super_packet(inner: &[u8]) -> (Vec<u8>, espo_ipsec::gso::VnetHdr) {
    let seg = inner.len().saturating_sub(28);
    let count = (65535 - 28usize)
        .checked_div(seg)
        .map_or(0, |n| n.clamp(1, 32));
    let mut sup = inner.get(..28).unwrap_or_default().to_vec();
    for i in 0..count * seg {
        sup.push((i * 7 + i / 251) as u8);
    }
    let hdr = espo_ipsec::gso::VnetHdr {
        gso_type: if seg == 0 {
            espo_ipsec::gso::GSO_NONE
        } else {
            espo_ipsec::gso::GSO_UDP_L4
        },
        gso_size: seg as u16,
        ..Default::default()
    };
    if let Some(l) = espo_ipsec::gso::Layout::of(&sup) {
        let len = sup.len();
        l.set_ip_len(&mut sup, len);
        l.fill_l4_checksum(&mut sup);
    }
    (sup, hdr)
}

/// Lends card TX buffers until `slots` holds `per_round` (or the engine lends no more),
/// the time charged to the "lend" stage; an error when none is lent at all.
fn lend(
    engine: &mut OffloadEngine,
    slots: &mut Vec<espo_offload::TxSlot>,
    per_round: usize,
    d: &mut Direction,
) -> anyhow::Result<()> {
    let t = Instant::now();
    while slots.len() < per_round {
        match engine.tx_slot() {
            Some(s) => slots.push(s),
            None => break,
        }
    }
    d.charge(0, t.elapsed());
    if slots.is_empty() {
        bail!("the offload engine lent no TX buffer");
    }
    Ok(())
}

/// Encapsulation through the card for about `budget`, handed over `way`.
pub fn encap(
    tx_config: &Config,
    inner: &[u8],
    budget: Duration,
    way: EncapWay,
    per_round: usize,
) -> anyhow::Result<Direction> {
    let (card, model, far) = card(inner.len())?;
    let mut engine = OffloadEngine::new(
        &tx_config.sas,
        &tx_config.policies,
        Some(card),
        OffloadOptions::default(),
    )?;
    // From here the model moves only when the bench runs it, apart from the host's time.
    model.hold(true);
    let mut d = Direction::default();
    let mut reports = Vec::with_capacity(per_round);
    model.reset_perf();
    let started = Instant::now();
    let mut tag = 0u64;
    let mut slots = Vec::with_capacity(per_round);
    // For `Segments`: a super-packet of the bench packet's flow whose segments are
    // bench packets, cut again from the start whenever it is used up.
    let (sup, hdr) = super_packet(inner);
    let mut segments = espo_ipsec::gso::Segments::new(&sup, &hdr).ok();
    let mut head = [0u8; SEGMENT_HEAD];
    let mut scratch = Vec::new();
    let mut host_seg = vec![0u8; 65536];
    // For `Read`: a socket that keeps each packet apart, as the TUN device does, the
    // packet with its virtio-net header (a forwarded packet: no checksum left to do),
    // and where each read lands.
    let reader = match way {
        EncapWay::Read | EncapWay::ReadViaHost => Some(
            socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_NONBLOCK,
            )
            .context("a socket pair for the bench's reads")?,
        ),
        _ => None,
    };
    let mut read_bytes = vec![0u8; espo_ipsec::gso::VNET_HDR_LEN];
    read_bytes.extend_from_slice(inner);
    let mut reads = vec![([0u8; espo_ipsec::gso::VNET_HDR_LEN], 0usize); per_round];
    let mut area = vec![0u8; 65536];
    let mut host_reads = match way {
        EncapWay::ReadViaHost => vec![vec![0u8; inner.len().max(2048)]; per_round],
        _ => Vec::new(),
    };
    while started.elapsed() < budget || d.packets == 0 {
        let round = if way == EncapWay::Segments {
            // `espo run`'s code for a super-packet's segments: each lends its buffer, makes
            // the headers (summing the payload), writes both into it and submits.
            let cut = segments.as_mut().context("no segments of this size")?;
            let t = Instant::now();
            let mut n = 0;
            while n < per_round {
                let sent = match submit_segment(&mut engine, tag, cut, &mut head, &mut scratch) {
                    Some(_) => true,
                    None => {
                        *cut = espo_ipsec::gso::Segments::new(&sup, &hdr)
                            .map_err(|r| anyhow::anyhow!("{r}"))?;
                        false
                    }
                };
                if sent {
                    tag += 1;
                    n += 1;
                }
            }
            let posting = Instant::now();
            engine.poll();
            d.charge(1, posting - t);
            d.charge(2, posting.elapsed());
            n
        } else if way == EncapWay::Read || way == EncapWay::ReadViaHost {
            lend(&mut engine, &mut slots, per_round, &mut d)?;
            let (tun, inside) = reader.as_ref().context("no socket to read from")?;
            let n = slots.len();
            let mut k = 0;
            while k < n {
                // As many packets as the socket takes (untimed: the inside stack's part).
                let mut w = k;
                while w < n && nix::unistd::write(inside, &read_bytes).is_ok() {
                    w += 1;
                }
                if w == k {
                    bail!("the bench's socket took no packet");
                }
                let t = Instant::now();
                for (i, (s, (vnet, read))) in slots[k..w].iter().zip(&mut reads[k..w]).enumerate() {
                    *read = match way {
                        EncapWay::Read => {
                            // A longer read's rest would land past the buffer's room in
                            // `area`, where `hand_on_read` looks for it.
                            let room = engine.tx_slot_room().min(area.len());
                            engine.tx_slot_read_parts(s, tun.as_fd(), vnet, &mut area[room..])?
                        }
                        _ => nix::sys::uio::readv(
                            tun,
                            &mut [
                                std::io::IoSliceMut::new(vnet),
                                std::io::IoSliceMut::new(&mut host_reads[k + i]),
                            ],
                        )?,
                    };
                }
                d.source += t.elapsed();
                k = w;
            }
            let t = Instant::now();
            for (i, (s, (vnet, read))) in slots.drain(..).zip(&mut reads).enumerate() {
                if way == EncapWay::ReadViaHost {
                    let len = read.saturating_sub(vnet.len());
                    engine.submit_into_slot(tag, s, &host_reads[i][..len]);
                    tag += 1;
                    continue;
                }
                match hand_on_read(
                    &mut engine,
                    tag,
                    s,
                    *read,
                    vnet,
                    &mut area,
                    0,
                    usize::MAX,
                    |_, _| false,
                ) {
                    DirectRead::Sent { .. } => tag += 1,
                    other => bail!("the benchmark packet was not sent from its buffer: {other:?}"),
                }
            }
            let posting = Instant::now();
            engine.poll();
            d.charge(1, posting - t);
            d.charge(2, posting.elapsed());
            n
        } else if way != EncapWay::Copying {
            lend(&mut engine, &mut slots, per_round, &mut d)?;
            if way == EncapWay::Lent {
                let t = Instant::now();
                for s in &slots {
                    engine.tx_slot_write(s, FRAME_HEADER, inner)?;
                }
                d.source += t.elapsed();
            }
            let t = Instant::now();
            let n = slots.len();
            for s in slots.drain(..) {
                match way {
                    EncapWay::Lent => engine.submit_slot(tag, s, inner.len()),
                    EncapWay::SegmentsViaHost => {
                        let cut = segments.as_mut().context("no segments of this size")?;
                        let n = match cut.next_into(&mut host_seg) {
                            Some(n) => n,
                            None => {
                                *cut = espo_ipsec::gso::Segments::new(&sup, &hdr)
                                    .map_err(|r| anyhow::anyhow!("{r}"))?;
                                cut.next_into(&mut host_seg)
                                    .context("an empty super-packet")?
                            }
                        };
                        engine.submit_into_slot(tag, s, &host_seg[..n]);
                    }
                    _ => engine.submit_into_slot(tag, s, inner),
                }
                tag += 1;
            }
            let posting = Instant::now();
            engine.poll();
            d.charge(1, posting - t);
            d.charge(2, posting.elapsed());
            n
        } else {
            let t = Instant::now();
            for _ in 0..per_round {
                engine.submit(tag, inner);
                tag += 1;
            }
            let posting = Instant::now();
            engine.poll();
            d.charge(1, posting - t);
            d.charge(2, posting.elapsed());
            per_round
        };
        let t = Instant::now();
        model.run_until_idle();
        d.model += t.elapsed();
        let mut t = Instant::now();
        reports.clear();
        while reports.len() < round {
            engine.poll();
            engine.take_tx_reports(&mut reports);
            if engine.tx_outstanding() > 0 && reports.len() < round {
                // The ring took less than a round: let the card work through it.
                d.charge(3, t.elapsed());
                let m = Instant::now();
                model.run_until_idle();
                d.model += m.elapsed();
                t = Instant::now();
            }
        }
        d.charge(3, t.elapsed());
        for r in &reports {
            match r.outcome {
                Ok(SentAs::Esp {
                    path: espo_offload::Path::Card,
                    ..
                }) => d.by_card += 1,
                Ok(_) => {}
                Err(reason) => bail!("the benchmark packet was dropped: {reason}"),
            }
        }
        d.packets += reports.len() as u64;
        far.discard();
    }
    // Released, so that the card's shutdown (its reset waits for the card) can run.
    model.hold(false);
    let perf = model.perf();
    d.card_inner_gbps = perf.tx_inner_gbps();
    d.card_line_gbps = perf.tx_line_gbps();
    d.card_mpps =
        perf.tx.packets as f64 * perf.clock_hz as f64 / perf.elapsed_cycles() as f64 / 1e6;
    Ok(d)
}

/// Decapsulation through the card for about `budget`: a software sender makes the frames
/// (untimed), the card receives them, the engine takes what it delivers — zero-copy (left
/// in the card's buffers, given back) or copied out.
pub fn decap(
    tx_config: &Config,
    rx_config: &Config,
    inner: &[u8],
    budget: Duration,
    zero_copy: bool,
    per_round: usize,
) -> anyhow::Result<Direction> {
    let (card, model, far) = card(inner.len())?;
    let mut engine = OffloadEngine::new(
        &rx_config.sas,
        &rx_config.policies,
        Some(card),
        OffloadOptions {
            lend_rx: zero_copy,
            ..OffloadOptions::default()
        },
    )?;
    let mut sender = tx_config.software_engine().context("the sender")?;
    // From here the model moves only when the bench runs it, apart from the host's time.
    model.hold(true);
    let mut d = Direction::default();
    let mut reports = Vec::with_capacity(per_round);
    let mut buf = vec![0u8; inner.len() + 256];
    model.reset_perf();
    let started = Instant::now();
    while started.elapsed() < budget || d.packets == 0 {
        for _ in 0..per_round {
            let Ok(Encapsulated::Protected { len, .. }) =
                sender.outbound.encapsulate(inner, &mut buf)
            else {
                bail!("the sender could not encapsulate the benchmark packet");
            };
            let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
            frame.extend_from_slice(&buf[..len]);
            far.send_bytes(&frame);
        }
        let t = Instant::now();
        model.run_until_idle();
        d.model += t.elapsed();
        let mut t = Instant::now();
        reports.clear();
        let mut spins = 0u32;
        while reports.len() < per_round {
            engine.poll();
            engine.take_rx_reports(&mut reports);
            spins += 1;
            if spins.is_multiple_of(64) {
                // The card paused its port while its RX ring was full: let it go on.
                d.charge(0, t.elapsed());
                let m = Instant::now();
                model.run_until_idle();
                d.model += m.elapsed();
                t = Instant::now();
            }
            if spins > 1_000_000 {
                bail!("the card model stopped delivering frames");
            }
        }
        d.charge(0, t.elapsed());
        // The sink: a lent packet's buffer goes back once written out (not made here).
        let t = Instant::now();
        for r in &reports {
            if let Ok(Received::Lent(p)) = &r.outcome {
                engine.release_lent(p);
            }
        }
        d.charge(1, t.elapsed());
        for r in &reports {
            match &r.outcome {
                Ok(
                    Received::Inner {
                        path: espo_offload::Path::Card,
                        ..
                    }
                    | Received::Lent(_),
                ) => d.by_card += 1,
                Ok(_) => {}
                Err(reason) => bail!("the benchmark frame was dropped: {reason}"),
            }
        }
        d.packets += reports.len() as u64;
    }
    // Released, so that the card's shutdown (its reset waits for the card) can run.
    model.hold(false);
    let perf = model.perf();
    d.card_inner_gbps = perf.rx_inner_gbps();
    d.card_line_gbps = perf.rx_line_gbps();
    d.card_mpps =
        perf.rx.packets as f64 * perf.clock_hz as f64 / perf.elapsed_cycles() as f64 / 1e6;
    Ok(d)
}
