//! `espo bench`: throughput of an engine on one core, beside an in-run baseline.

mod model;
pub mod tunnel;
mod vfio_user;

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use espo_harness::loopback;
use espo_ipsec::crypto::{Aead, AeadAlgorithm};
use espo_ipsec::engine::{Decapsulated, EncapsulatedInPlace, HEADROOM, TAILROOM};
use model::EncapWay;

/// Measure encapsulation and decapsulation throughput on one core, against a baseline.
///
/// Packets of --size bytes (inner IPv4/UDP packets) go through the chosen engine's
/// outbound path (policy lookup, ESP tunnel encapsulation, seal) and inbound path (SA
/// lookup, replay check, open, trailer, policy check), alternating in rounds with a
/// baseline: the raw AES-128-GCM seal of the fastest implementation on this machine (ring)
/// over the same number of bytes. Every figure is also given as a ratio to that baseline,
/// so results from different machines compare. Packets sit in a pool of buffers of about
/// 1 MiB with headroom and tailroom, as the gateway receives them, and both directions
/// work in place.
///
/// With --engine model the same figures come first, then the offload engine over the card
/// model: the host CPU the engine and driver spend per packet (the model's own simulation
/// time excluded), and the card's throughput in simulated time from the model's
/// performance counters — what the card itself would do. The host figure is zero-copy:
/// each packet is written straight into a card buffer the engine lends (the TUN read's
/// stand-in, timed apart and not counted) and a received one is left in the card's buffer;
/// beside it, the same with the packet copied in and out, as the baseline, and the ways
/// `espo run` hands its packets over: a packet read by itself, read from a socket (the TUN
/// device's stand-in, one packet per read, the read timed apart) straight into its lent
/// buffer and handed on from there — beside it the same reads into host memory, each
/// packet then copied in; a packet already in host memory, copied into the lent buffers,
/// that copy counted; and the segments of a TUN super-packet, each one's
/// headers and payload written from the super-packet into its lent buffer, the segmenting
/// counted — with the same segments assembled in host memory first beside it. The zero-copy host figure is also given by stage, to say where its time goes: encapsulation as lending the
/// buffers, the outbound decision and queueing, routing and posting to the ring, and the
/// completions with their reports; decapsulation as receiving (the driver's completions,
/// the host's checks, the reports) and giving the buffers back.
///
/// With --engine vfio-user --socket PATH the model figures come first (the in-process
/// model, for comparison), then the offload engine over the card served at PATH by
/// `espo card serve`: the host CPU per packet, now including the vfio-user messages
/// (doorbells and register reads cross a socket; DMA and completions stay in shared
/// memory). The served card runs in real time in its own process: its throughput is not
/// measured, and waiting for it is not counted.
///
/// --size takes a list: each size is measured in turn (--seconds each), with its own table
/// or JSON line — `--engine model --size 64,512,1420,4096,9000 --json` gives the offload
/// engine's host cost per packet across the card's sizes.
///
/// Examples:
///   espo bench --size 1420
///   espo bench --size 64 --seconds 5 --json
///   espo bench --engine model --size 1420
///   espo bench --engine model --size 64,1420,9000 --json
///   espo bench --size 64 --policies 1000     (the policy lookup of a hub with 1000 sites)
///   espo bench --engine vfio-user --socket /tmp/espo-card --size 1420
///
/// `espo bench tunnel` measures the whole gateway instead: iperf3 through a tunnel between
/// two `espo run`s in network namespaces, against plain kernel forwarding (see its --help).
#[derive(Debug, Args)]
#[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Engine to measure.
    #[arg(long, default_value = "software", value_parser = ["software", "model", "vfio-user"])]
    pub engine: String,
    /// The served card's socket (--engine vfio-user; `espo card serve`).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// Inner packet size in bytes (28..=65000), or a comma-separated list of sizes.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1420",
        value_name = "BYTES"
    )]
    pub size: Vec<usize>,
    /// Wall-clock seconds to measure for (split between baseline, encap and decap).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Encryption algorithm of the benchmark SA.
    #[arg(long, default_value = "aes-gcm-128")]
    pub algorithm: String,
    /// Integrity algorithm, for aes-cbc-* and null.
    #[arg(long)]
    pub integrity: Option<String>,
    /// Policies in each direction's database: the bench's own last, behind N-1 other
    /// sites' (one /24 each) — what a gateway with a policy per site looks up per packet.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub policies: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    Tunnel(tunnel::TunnelArgs),
}

/// Time spent and packets processed by one measured path.
#[derive(Default, Clone, Copy)]
struct Meter {
    packets: u64,
    elapsed: Duration,
}

impl Meter {
    fn pps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }

    fn gbps(&self, size: usize) -> f64 {
        self.pps() * size as f64 * 8.0 / 1e9
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if let Some(BenchCommand::Tunnel(tunnel)) = args.command {
        return tunnel::run(tunnel);
    }
    if args.size.is_empty() {
        bail!("--size needs at least one size");
    }
    let with_card = args.engine != "software";
    for &size in &args.size {
        if !(28..=65000).contains(&size) {
            bail!("--size {size} is out of range: inner packets are 28 to 65000 bytes");
        }
        if with_card && size > 9000 {
            bail!(
                "--size {size} is too large for the card: its largest frame is 9216 bytes (--size at most 9000)"
            );
        }
    }
    if !(1..=loopback::MAX_SITES + 1).contains(&args.policies) {
        bail!(
            "--policies {} is out of range: 1 (the bench's own) to {}",
            args.policies,
            loopback::MAX_SITES + 1
        );
    }
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        bail!("--seconds {} is out of range (0 to 3600)", args.seconds);
    }
    for (i, &size) in args.size.iter().enumerate() {
        if i > 0 && !args.json {
            println!();
        }
        run_one(&args, size)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The host's time by stage for direction `dir` (0: encapsulation, 1: decapsulation), each
/// stage written by `field` from its name and ns per packet, joined by `sep`.
fn stages(
    x: &model::Direction,
    dir: usize,
    sep: &str,
    field: impl Fn(&str, f64) -> String,
) -> String {
    let fields: Vec<String> = x
        .stages_ns_per_packet(dir)
        .map(|(name, ns)| field(name, ns))
        .collect();
    fields.join(sep)
}

/// One size's measurement and its report.
fn run_one(args: &BenchArgs, size: usize) -> anyhow::Result<()> {
    let (tx_config, rx_config) = loopback::tunnel_pair_behind_sites(
        &args.algorithm,
        args.integrity.as_deref(),
        args.policies - 1,
    )?;
    let mut tx = tx_config
        .software_engine()
        .context("building the sending engine")?;
    let mut rx = rx_config
        .software_engine()
        .context("building the receiving engine")?;
    let inner = loopback::udp_packet(size, 0x5a);

    // A pool of packet buffers of about 1 MiB, the working set of a gateway's rings. Each
    // slot holds a packet as the gateway receives it: headroom, the inner packet, tailroom.
    let slot = HEADROOM + size + TAILROOM;
    let pool_len = ((1 << 20) / slot).clamp(64, 4096);
    let mut pool = vec![0u8; pool_len * slot];
    let mut ranges = vec![0..0; pool_len];

    let baseline_key = [0x42u8; 16];
    let baseline = Aead::new(AeadAlgorithm::Aes128Gcm, &baseline_key).context("baseline key")?;
    let mut base = Meter::default();
    let mut encap = Meter::default();
    let mut decap = Meter::default();
    let served = match (args.engine.as_str(), &args.socket) {
        ("vfio-user", Some(socket)) => Some(socket.clone()),
        ("vfio-user", None) => bail!(
            "--engine vfio-user needs the served card's socket: --socket PATH (see `espo card serve`)"
        ),
        _ => None,
    };
    let with_model = args.engine == "model" || served.is_some();
    let budget = Duration::from_secs_f64(if with_model {
        args.seconds / 2.0
    } else {
        args.seconds
    });
    let started = Instant::now();
    let mut nonce_counter = 0u64;
    let mut rounds = 0u64;
    while started.elapsed() < budget || rounds < 3 {
        rounds += 1;
        // Baseline: seal `size` bytes in place in each slot, 8 bytes of AAD as ESP has.
        let t = Instant::now();
        for chunk in pool.chunks_exact_mut(slot) {
            nonce_counter += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&nonce_counter.to_be_bytes());
            let (data, rest) = chunk.split_at_mut(size);
            let tag = baseline
                .seal(&nonce, &nonce[4..], data)
                .context("baseline seal")?;
            rest[..16].copy_from_slice(&tag);
        }
        base.elapsed += t.elapsed();
        base.packets += pool_len as u64;

        // Packets arrive (not timed: the kernel or the card writes them into the buffers).
        for chunk in pool.chunks_exact_mut(slot) {
            chunk[HEADROOM..HEADROOM + size].copy_from_slice(&inner);
        }
        // Encapsulation of every slot, in place.
        let t = Instant::now();
        for (chunk, range) in pool.chunks_exact_mut(slot).zip(ranges.iter_mut()) {
            match tx
                .outbound
                .encapsulate_in_place(chunk, black_box(HEADROOM..HEADROOM + size))
            {
                Ok(EncapsulatedInPlace::Protected { range: r, .. }) => *range = r,
                other => bail!("encapsulation failed in the benchmark: {other:?}"),
            }
        }
        encap.elapsed += t.elapsed();
        encap.packets += pool_len as u64;

        // Decapsulation of what was just encapsulated, in place.
        let t = Instant::now();
        for (chunk, range) in pool.chunks_exact_mut(slot).zip(ranges.iter()) {
            match rx.inbound.decapsulate(&mut chunk[range.clone()]) {
                Ok(Decapsulated::Inner { range, .. }) => {
                    black_box(range);
                }
                other => bail!("decapsulation failed in the benchmark: {other:?}"),
            }
        }
        decap.elapsed += t.elapsed();
        decap.packets += pool_len as u64;
    }

    let quarter = Duration::from_secs_f64(args.seconds / 4.0);
    let (host_round, card_round) = (model::HOST_ROUND, model::CARD_ROUND);
    let card = if with_model {
        let third = quarter / 3;
        // The host's cost, zero-copy, in batches of 32.
        let mut e = model::encap(&tx_config, &inner, third, EncapWay::Lent, host_round)?;
        let mut d = model::decap(&tx_config, &rx_config, &inner, third, true, host_round)?;
        // The card's throughput, in rounds that keep its pipeline full (host not counted).
        let ce = model::encap(&tx_config, &inner, third, EncapWay::Lent, card_round)?;
        let cd = model::decap(&tx_config, &rx_config, &inner, third, true, card_round)?;
        e.take_card_figures(&ce);
        d.take_card_figures(&cd);
        Some((e, d))
    } else {
        None
    };
    // The copying path beside it: the baseline zero-copy is measured against.
    let copying = if with_model {
        let third = quarter / 3;
        Some((
            model::encap(&tx_config, &inner, third, EncapWay::Copying, host_round)?,
            model::decap(&tx_config, &rx_config, &inner, third, false, host_round)?,
        ))
    } else {
        None
    };
    // `espo run`'s way: packets in host memory (out of the segmenter) written into the
    // lent buffers by the engine, the copy counted.
    let from_host = if with_model {
        Some(model::encap(
            &tx_config,
            &inner,
            quarter / 3,
            EncapWay::FromHost,
            host_round,
        )?)
    } else {
        None
    };
    // `espo run`'s way for a packet read by itself: read straight into a lent buffer (the
    // read timed apart, as the zero-copy figure's source write), handed on from there.
    let from_read = if with_model {
        Some(model::encap(
            &tx_config,
            &inner,
            quarter / 3,
            EncapWay::Read,
            host_round,
        )?)
    } else {
        None
    };
    // Beside it, the same reads into host memory, each packet then copied in: the way
    // before the reads went straight into the card.
    let read_via_host = if with_model {
        Some(model::encap(
            &tx_config,
            &inner,
            quarter / 3,
            EncapWay::ReadViaHost,
            host_round,
        )?)
    } else {
        None
    };
    // `espo run`'s way with TUN offloads: segments written from a super-packet into the
    // lent buffers, the writes counted (packets too short to carry a payload have none).
    let from_segments = if with_model && inner.len() > 28 {
        Some(model::encap(
            &tx_config,
            &inner,
            quarter / 3,
            EncapWay::Segments,
            host_round,
        )?)
    } else {
        None
    };
    // Beside it, the same segments assembled in host memory and then copied in.
    let segments_via_host = if with_model && inner.len() > 28 {
        Some(model::encap(
            &tx_config,
            &inner,
            quarter / 3,
            EncapWay::SegmentsViaHost,
            host_round,
        )?)
    } else {
        None
    };
    let remote = match &served {
        Some(socket) => Some((
            vfio_user::encap(socket, &tx_config, &inner, quarter)?,
            vfio_user::decap(socket, &tx_config, &rx_config, &inner, quarter)?,
        )),
        None => None,
    };
    let encap_ratio = encap.gbps(size) / base.gbps(size);
    let decap_ratio = decap.gbps(size) / base.gbps(size);
    if args.json {
        println!(
            "{{\"engine\":\"{}\",\"algorithm\":\"{}\",\"size\":{size},\"policies\":{},\"seconds\":{:.3},\"encap_gbps\":{:.3},\"decap_gbps\":{:.3},\"encap_mpps\":{:.4},\"decap_mpps\":{:.4},\"baseline_gbps\":{:.3},\"baseline_mpps\":{:.4},\"encap_ratio\":{:.4},\"decap_ratio\":{:.4},\"encap_ns_per_packet\":{:.1},\"decap_ns_per_packet\":{:.1}}}",
            args.engine,
            args.algorithm,
            args.policies,
            started.elapsed().as_secs_f64(),
            encap.gbps(size),
            decap.gbps(size),
            encap.pps() / 1e6,
            decap.pps() / 1e6,
            base.gbps(size),
            base.pps() / 1e6,
            encap_ratio,
            decap_ratio,
            1e9 / encap.pps(),
            1e9 / decap.pps(),
        );
        if let (Some((e, d)), Some((ce, cd))) = (&card, &copying) {
            println!(
                "{{\"engine\":\"model\",\"algorithm\":\"{}\",\"size\":{size},\"encap_host_stages_ns\":{{{}}},\"decap_host_stages_ns\":{{{}}},\"encap_host_ns_per_packet\":{:.1},\"decap_host_ns_per_packet\":{:.1},\"encap_source_ns_per_packet\":{:.1},\"encap_from_read_ns_per_packet\":{:.1},\"encap_read_source_ns_per_packet\":{:.1},\"encap_read_via_host_ns_per_packet\":{:.1},\"encap_from_host_ns_per_packet\":{:.1},\"encap_from_segments_ns_per_packet\":{:.1},\"encap_segments_via_host_ns_per_packet\":{:.1},\"encap_copy_host_ns_per_packet\":{:.1},\"decap_copy_host_ns_per_packet\":{:.1},\"encap_card_gbps\":{:.3},\"decap_card_gbps\":{:.3},\"encap_card_line_gbps\":{:.3},\"decap_card_line_gbps\":{:.3},\"encap_card_mpps\":{:.3},\"decap_card_mpps\":{:.3},\"encap_by_card\":{},\"decap_by_card\":{},\"packets\":{},\"model_ns_per_packet\":{:.1}}}",
                args.algorithm,
                stages(e, 0, ",", |n, ns| format!("\"{n}\":{ns:.1}")),
                stages(d, 1, ",", |n, ns| format!("\"{n}\":{ns:.1}")),
                e.host_ns_per_packet(),
                d.host_ns_per_packet(),
                e.source_ns_per_packet(),
                from_read
                    .as_ref()
                    .map_or(0.0, model::Direction::host_ns_per_packet),
                from_read
                    .as_ref()
                    .map_or(0.0, model::Direction::source_ns_per_packet),
                read_via_host
                    .as_ref()
                    .map_or(0.0, model::Direction::host_ns_per_packet),
                from_host
                    .as_ref()
                    .map_or(0.0, model::Direction::host_ns_per_packet),
                from_segments
                    .as_ref()
                    .map_or(0.0, model::Direction::host_ns_per_packet),
                segments_via_host
                    .as_ref()
                    .map_or(0.0, model::Direction::host_ns_per_packet),
                ce.host_ns_per_packet(),
                cd.host_ns_per_packet(),
                e.card_inner_gbps,
                d.card_inner_gbps,
                e.card_line_gbps,
                d.card_line_gbps,
                e.card_mpps,
                d.card_mpps,
                e.by_card,
                d.by_card,
                e.packets + d.packets,
                (e.model + d.model).as_nanos() as f64 / (e.packets + d.packets).max(1) as f64,
            );
        }
        if let Some((e, d)) = &remote {
            println!(
                "{{\"engine\":\"vfio-user\",\"algorithm\":\"{}\",\"size\":{size},\"encap_host_ns_per_packet\":{:.1},\"decap_host_ns_per_packet\":{:.1},\"encap_by_card\":{},\"decap_by_card\":{},\"packets\":{}}}",
                args.algorithm,
                e.host_ns_per_packet(),
                d.host_ns_per_packet(),
                e.by_card,
                d.by_card,
                e.packets + d.packets,
            );
        }
    } else {
        println!(
            "espo bench: {} engine, {}, {size}-byte inner packets, {:.1} s, one core{}",
            args.engine,
            args.algorithm,
            started.elapsed().as_secs_f64(),
            if args.policies > 1 {
                format!(", {} policies per direction", args.policies)
            } else {
                String::new()
            }
        );
        println!(
            "  {:<36} {:>8.2} Gbit/s {:>8.3} Mpps",
            "baseline: AES-128-GCM seal (ring)",
            base.gbps(size),
            base.pps() / 1e6
        );
        println!(
            "  {:<36} {:>8.2} Gbit/s {:>8.3} Mpps {:>6.1} ns/pkt  {:.2} of baseline",
            "encapsulation",
            encap.gbps(size),
            encap.pps() / 1e6,
            1e9 / encap.pps(),
            encap_ratio
        );
        println!(
            "  {:<36} {:>8.2} Gbit/s {:>8.3} Mpps {:>6.1} ns/pkt  {:.2} of baseline",
            "decapsulation (with replay check)",
            decap.gbps(size),
            decap.pps() / 1e6,
            1e9 / decap.pps(),
            decap_ratio
        );
        if let (Some((e, d)), Some((ce, cd))) = (&card, &copying) {
            println!(
                "  card model through the offload engine (host CPU: engine and driver, zero-copy; card: simulated, from the model's counters)"
            );
            for (i, (what, x, c)) in [("encapsulation", e, ce), ("decapsulation", d, cd)]
                .into_iter()
                .enumerate()
            {
                println!(
                    "  {:<36} host {:>6.1} ns/pkt ({:>6.2} Mpps/core)  card {:>7.2} Gbit/s inner, {:>7.2} Gbit/s line, {:>6.2} Mpps",
                    what,
                    x.host_ns_per_packet(),
                    1e3 / x.host_ns_per_packet().max(1e-9),
                    x.card_inner_gbps,
                    x.card_line_gbps,
                    x.card_mpps
                );
                println!(
                    "  {:<36} where: {} ns/pkt",
                    "",
                    stages(x, i, ", ", |n, ns| format!("{n} {ns:.1}"))
                );
                println!(
                    "  {:<36} host {:>6.1} ns/pkt copying the packet in or out ({:.2}x the zero-copy cost)",
                    "",
                    c.host_ns_per_packet(),
                    c.host_ns_per_packet() / x.host_ns_per_packet().max(1e-9)
                );
            }
            println!(
                "  (zero-copy encapsulation: writing each packet into its card buffer, the TUN read's stand-in, took {:.1} ns/pkt, not counted above)",
                e.source_ns_per_packet()
            );
            if let (Some(f), Some(v)) = (&from_read, &read_via_host) {
                println!(
                    "  (encapsulation of a packet read by itself, espo run's way: read from a socket straight into its card buffer, the read not counted ({:.1} ns/pkt), then handed on from there: host {:.1} ns/pkt; read into host memory, then copied in: {:.1} ns/pkt)",
                    f.source_ns_per_packet(),
                    f.host_ns_per_packet(),
                    v.host_ns_per_packet()
                );
            }
            if let Some(f) = &from_host {
                println!(
                    "  (encapsulation from host memory into the card's buffers, the copy counted (espo run's way for a packet read into host memory): host {:.1} ns/pkt)",
                    f.host_ns_per_packet()
                );
            }
            if let (Some(f), Some(v)) = (&from_segments, &segments_via_host) {
                println!(
                    "  (encapsulation of a super-packet's segments, espo run's way with TUN offloads: each one's headers and payload written from it into its card buffer, the segmenting counted: host {:.1} ns/pkt; assembled in host memory first, then copied in: {:.1} ns/pkt)",
                    f.host_ns_per_packet(),
                    v.host_ns_per_packet()
                );
            }
            println!(
                "  ({} of {} packets transformed by the card; the simulation itself took {:.0} ns/pkt of host time)",
                e.by_card + d.by_card,
                e.packets + d.packets,
                (e.model + d.model).as_nanos() as f64 / (e.packets + d.packets).max(1) as f64
            );
        }
        if let Some((e, d)) = &remote {
            println!(
                "  card served over vfio-user through the offload engine (host CPU: engine, driver and the protocol's messages; the card runs apart)"
            );
            for (what, x, local) in [
                ("encapsulation", e, copying.as_ref().map(|c| c.0)),
                ("decapsulation", d, copying.as_ref().map(|c| c.1)),
            ] {
                let versus = local
                    .map(|l| {
                        format!(
                            "  ({:+.1} ns/pkt against the in-process model)",
                            x.host_ns_per_packet() - l.host_ns_per_packet()
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "  {:<36} host {:>6.1} ns/pkt ({:>6.2} Mpps/core){versus}",
                    what,
                    x.host_ns_per_packet(),
                    1e3 / x.host_ns_per_packet().max(1e-9),
                );
            }
            println!(
                "  ({} of {} packets transformed by the served card)",
                e.by_card + d.by_card,
                e.packets + d.packets
            );
        }
    }
    Ok(())
}
