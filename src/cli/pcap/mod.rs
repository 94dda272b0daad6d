//! `espo pcap encap|decap`: offline transform of a capture, the golden output hardware
//! engineers compare against.

mod card;
mod software;

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use espo_config::{Config, EngineKind};
use espo_harness::pcap::{FileHeader, LinkType, Reader, Writer};
use espo_ipsec::counters::{DropCounters, DropReason};
use espo_ipsec::wire::ethernet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Operation {
    /// Protect: inner IP packets in, ESP/AH tunnel packets out (outbound policies).
    Encap,
    /// Unprotect: ESP/AH tunnel packets in, inner IP packets out (inbound policies).
    Decap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The software engine: every algorithm, on the host CPU.
    Software,
    /// The cycle-level model of the card, with software fallback.
    Model,
}

/// Transform a capture offline (encap or decap).
///
/// Reads IN (classic pcap; Ethernet or raw-IP link type), applies the configuration's
/// outbound (encap) or inbound (decap) policies and SAs to every packet, and writes the
/// result to OUT with the input's link type and timestamps. Packets that are dropped are
/// counted by reason in the summary; the exit status is 0 when the whole capture was
/// processed, whatever was dropped, and non-zero for a bad configuration or an unreadable
/// capture.
///
/// Stateless: every run starts each SA from the configuration's `seq` (and, inbound, an
/// empty replay window) and records nothing — unlike `espo run`, which keeps sequence
/// numbers and replay marks in its state directory. Two runs with one configuration
/// therefore encrypt under the same nonces: use pcap for golden output and test vectors,
/// not for traffic that matters.
///
/// Examples:
///   espo pcap encap --config examples/pcap/gw-a.toml examples/pcap/plain.pcap protected.pcap
///   espo pcap decap --config examples/pcap/gw-b.toml protected.pcap plain-again.pcap
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PcapArgs {
    /// encap (protect) or decap (unprotect).
    pub direction: Operation,
    /// Configuration file with the [[sa]] and [[policy]] entries (TOML, see README).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Engine to run the packets through; defaults to [device].engine, else software.
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Input capture.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Output capture (overwritten).
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Records transformed per batch (the card engine works on batches).
const BATCH: usize = 64;

/// What became of the packets of a capture.
#[derive(Debug, Default)]
struct Tally {
    read: u64,
    written: u64,
    transformed: u64,
    bypassed: u64,
    keepalives: u64,
    drops: DropCounters,
}

/// What an engine did with one IP packet.
#[derive(Debug)]
pub(super) enum Outcome {
    /// The tunnel packet (encap) or the inner packet (decap).
    Transformed(Vec<u8>),
    /// Unchanged, as policy says.
    Bypass,
    /// A NAT keepalive, consumed.
    Keepalive,
    Dropped(DropReason),
}

/// One SA as the summary lists it.
pub(super) struct SaLine {
    pub spi: u32,
    pub protocol: &'static str,
    /// `software`, `card`, `software (why)`.
    pub place: String,
    pub packets: u64,
    pub bytes: u64,
}

/// An engine that transforms IP packets in batches, keeping their order.
pub(super) trait Transform {
    /// One outcome per packet of `packets`, in order, appended to `out`.
    fn batch(
        &mut self,
        direction: Operation,
        packets: &[&[u8]],
        out: &mut Vec<Outcome>,
    ) -> anyhow::Result<()>;
    /// The engine, for the summary.
    fn describe(&self) -> &'static str;
    /// The SAs of a direction, with where they ran.
    fn sa_lines(&self, direction: Operation) -> Vec<SaLine>;
}

/// A record waiting for its batch.
struct Pending {
    ts_sec: u32,
    ts_frac: u32,
    data: Vec<u8>,
    l2_len: usize,
    ethertype_at: Option<usize>,
}

pub fn run(args: PcapArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::load(&args.config)?;
    let engine_kind = match args.engine {
        Some(EngineArg::Software) => EngineKind::Software,
        Some(EngineArg::Model) => EngineKind::Model,
        None => config.device.engine,
    };
    let mut engine: Box<dyn Transform> = match engine_kind {
        EngineKind::Software => {
            Box::new(software::SoftwareTransform::new(&config).with_context(|| {
                format!("{}: setting up the software engine", args.config.display())
            })?)
        }
        EngineKind::Model => Box::new(card::CardTransform::new(&config).with_context(|| {
            format!(
                "{}: setting up the card model with software fallback",
                args.config.display()
            )
        })?),
        EngineKind::Vfio | EngineKind::VfioUser => bail!(
            "engine `{}` is not available for `espo pcap`: an offline transform runs on the software engine or the card model (--engine software|model)",
            engine_kind.name()
        ),
    };

    let input = File::open(&args.input)
        .with_context(|| format!("cannot open input capture {}", args.input.display()))?;
    let mut reader = Reader::new(BufReader::with_capacity(1 << 16, input))
        .with_context(|| format!("{}: not a readable capture", args.input.display()))?;
    let in_header = reader.header();
    // A raw IPv4/IPv6 link type cannot hold the other family, which tunnels produce.
    let out_link = match in_header.link_type {
        LinkType::Ipv4 | LinkType::Ipv6 => LinkType::RawIp,
        other => other,
    };
    let out_header = FileHeader {
        link_type: out_link,
        ..in_header
    };
    let output = File::create(&args.output)
        .with_context(|| format!("cannot create output capture {}", args.output.display()))?;
    let mut writer = Writer::new(BufWriter::with_capacity(1 << 16, output), out_header)
        .with_context(|| format!("{}: writing the capture header", args.output.display()))?;

    let mut tally = Tally::default();
    let progress = Progress::new(!args.quiet && std::io::stderr().is_terminal());
    let started = Instant::now();
    let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
    let mut outcomes = Vec::with_capacity(BATCH);
    let mut frame = Vec::new();
    loop {
        let index = reader.records_read();
        let record = reader
            .next_record()
            .with_context(|| format!("{}: reading record {index}", args.input.display()))?;
        let Some((rec, data)) = record else {
            if batch.is_empty() {
                break;
            }
            flush_batch(
                &args,
                &mut *engine,
                &mut batch,
                &mut outcomes,
                &mut frame,
                &mut writer,
                &mut tally,
            )?;
            break;
        };
        tally.read += 1;
        if (rec.orig_len as usize) > data.len() {
            tally.drops.count(DropReason::Snapped);
            continue;
        }
        let (l2_len, ethertype_at) = match link_header(in_header.link_type, data) {
            Ok(v) => v,
            Err(reason) => {
                tally.drops.count(reason);
                continue;
            }
        };
        batch.push(Pending {
            ts_sec: rec.ts_sec,
            ts_frac: rec.ts_frac,
            data: data.to_vec(),
            l2_len,
            ethertype_at,
        });
        if batch.len() == BATCH {
            flush_batch(
                &args,
                &mut *engine,
                &mut batch,
                &mut outcomes,
                &mut frame,
                &mut writer,
                &mut tally,
            )?;
        }
        progress.tick(&tally);
    }
    writer
        .finish()
        .with_context(|| format!("{}: finishing the capture", args.output.display()))?;
    progress.clear();
    if !args.quiet {
        print_summary(
            &args,
            in_header.link_type,
            out_link,
            &tally,
            &*engine,
            started.elapsed(),
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Transforms the waiting records and writes the results, in input order.
fn flush_batch<W: std::io::Write>(
    args: &PcapArgs,
    engine: &mut dyn Transform,
    batch: &mut Vec<Pending>,
    outcomes: &mut Vec<Outcome>,
    frame: &mut Vec<u8>,
    writer: &mut Writer<W>,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let packets: Vec<&[u8]> = batch.iter().map(|p| &p.data[p.l2_len..]).collect();
    outcomes.clear();
    engine.batch(args.direction, &packets, outcomes)?;
    if outcomes.len() != batch.len() {
        bail!(
            "the engine accounted for {} of {} packets",
            outcomes.len(),
            batch.len()
        );
    }
    for (p, outcome) in batch.iter().zip(outcomes.drain(..)) {
        let written: &[u8] = match outcome {
            Outcome::Transformed(ip) => {
                tally.transformed += 1;
                frame.clear();
                frame.extend_from_slice(&p.data[..p.l2_len]);
                frame.extend_from_slice(&ip);
                if let Some(at) = p.ethertype_at {
                    set_ethertype(frame, at, p.l2_len);
                }
                frame
            }
            Outcome::Bypass => {
                tally.bypassed += 1;
                &p.data
            }
            Outcome::Keepalive => {
                tally.keepalives += 1;
                continue;
            }
            Outcome::Dropped(reason) => {
                tally.drops.count(reason);
                continue;
            }
        };
        writer
            .write_record(p.ts_sec, p.ts_frac, written)
            .with_context(|| format!("{}: writing a record", args.output.display()))?;
        tally.written += 1;
    }
    batch.clear();
    Ok(())
}

/// The length of the link header and, for Ethernet, where its last EtherType sits.
fn link_header(link: LinkType, data: &[u8]) -> Result<(usize, Option<usize>), DropReason> {
    match link {
        LinkType::Ethernet => {
            let frame = ethernet::Frame::new_checked(data).map_err(|_| DropReason::Malformed)?;
            let (ethertype, offset) = frame.inner_ethertype().map_err(|_| DropReason::Malformed)?;
            match ethertype {
                ethernet::EtherType::Ipv4 | ethernet::EtherType::Ipv6 => {
                    Ok((offset, Some(offset - 2)))
                }
                _ => Err(DropReason::NotIp),
            }
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => Ok((0, None)),
    }
}

/// Sets the Ethernet type to the IP version of the packet after the link header.
fn set_ethertype(frame: &mut [u8], at: usize, l2_len: usize) {
    let ethertype = ethernet::EtherType::of_ip(frame.get(l2_len..).unwrap_or(&[]));
    frame[at..at + 2].copy_from_slice(&ethertype.to_bytes());
}

fn print_summary(
    args: &PcapArgs,
    in_link: LinkType,
    out_link: LinkType,
    t: &Tally,
    engine: &dyn Transform,
    elapsed: Duration,
) {
    let verb = match args.direction {
        Operation::Encap => "encapsulated",
        Operation::Decap => "decapsulated",
    };
    let mut o = std::io::stdout().lock();
    let _ = writeln!(
        o,
        "espo pcap {}: {} -> {} ({} link, {}, {:.2} s)",
        if args.direction == Operation::Encap {
            "encap"
        } else {
            "decap"
        },
        args.input.display(),
        args.output.display(),
        in_link,
        engine.describe(),
        elapsed.as_secs_f64()
    );
    if out_link != in_link {
        let _ = writeln!(
            o,
            "  output link type: {out_link} (the input's cannot carry both IP versions)"
        );
    }
    let _ = writeln!(o, "  packets read     {:>10}", t.read);
    let _ = writeln!(
        o,
        "  packets written  {:>10}  ({} {verb}, {} bypassed)",
        t.written, t.transformed, t.bypassed
    );
    if t.keepalives > 0 {
        let _ = writeln!(o, "  NAT keepalives   {:>10}  (consumed)", t.keepalives);
    }
    let _ = writeln!(o, "  packets dropped  {:>10}", t.drops.total());
    for (reason, n) in t.drops.nonzero() {
        let _ = writeln!(o, "    {:<18} {:>8}", reason.name(), n);
    }
    for sa in engine.sa_lines(args.direction) {
        let _ = writeln!(
            o,
            "  sa {:#010x} {:<3} {:<9} {:>8} packets {:>12} bytes",
            sa.spi, sa.protocol, sa.place, sa.packets, sa.bytes
        );
    }
}

/// A progress line on a terminal, at most a few times a second.
struct Progress {
    enabled: bool,
    last: std::cell::Cell<Instant>,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            last: std::cell::Cell::new(Instant::now()),
        }
    }

    fn tick(&self, t: &Tally) {
        if !self.enabled
            || !t.read.is_multiple_of(1024)
            || self.last.get().elapsed() < Duration::from_millis(250)
        {
            return;
        }
        self.last.set(Instant::now());
        eprint!(
            "\r  {} packets read, {} written, {} dropped",
            t.read,
            t.written,
            t.drops.total()
        );
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[K");
        }
    }
}
