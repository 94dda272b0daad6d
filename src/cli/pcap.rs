//! `espo pcap encap|decap`: offline transform of a capture, the golden output hardware
//! engineers compare against.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use espo_stack::config::{Config, EngineKind};
use espo_stack::counters::{DropCounters, DropReason};
use espo_stack::engine::{Decapsulated, Encapsulated, SoftwareEngine};
use espo_stack::pcap::{FileHeader, LinkType, Reader, Writer};
use espo_stack::wire::ethernet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
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
/// Examples:
///   espo pcap encap --config examples/pcap/gw-a.toml examples/pcap/plain.pcap protected.pcap
///   espo pcap decap --config examples/pcap/gw-b.toml protected.pcap plain-again.pcap
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PcapArgs {
    /// encap (protect) or decap (unprotect).
    pub direction: Direction,
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

/// Largest packet espo builds: an IP datagram plus tunnel overhead plus a link header.
const BUF_LEN: usize = 65535 + 1024;

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

pub fn run(args: PcapArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::load(&args.config)?;
    let engine_kind = match args.engine {
        Some(EngineArg::Software) => EngineKind::Software,
        Some(EngineArg::Model) => EngineKind::Model,
        None => config.device.engine,
    };
    if engine_kind != EngineKind::Software {
        bail!(
            "engine `{}` is not available for `espo pcap` in this build; use --engine software",
            engine_kind.name()
        );
    }
    let mut engine = SoftwareEngine::from_config(&config)
        .with_context(|| format!("{}: setting up the software engine", args.config.display()))?;

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
    let mut work = vec![0u8; BUF_LEN];
    let mut out = vec![0u8; BUF_LEN];
    let progress = Progress::new(!args.quiet && std::io::stderr().is_terminal());
    let started = Instant::now();
    loop {
        let index = reader.records_read();
        let record = reader
            .next_record()
            .with_context(|| format!("{}: reading record {index}", args.input.display()))?;
        let Some((rec, data)) = record else { break };
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
        let result = match args.direction {
            Direction::Encap => {
                out[..l2_len].copy_from_slice(&data[..l2_len]);
                match engine
                    .outbound
                    .encapsulate(&data[l2_len..], &mut out[l2_len..])
                {
                    Ok(Encapsulated::Protected { len, .. }) => {
                        tally.transformed += 1;
                        Ok(Some(l2_len + len))
                    }
                    Ok(Encapsulated::Bypass) => {
                        out[..data.len()].copy_from_slice(data);
                        tally.bypassed += 1;
                        Ok(Some(data.len()))
                    }
                    Err(reason) => Err(reason),
                }
            }
            Direction::Decap => {
                let ip_len = data.len() - l2_len;
                work[..ip_len].copy_from_slice(&data[l2_len..]);
                match engine.inbound.decapsulate(&mut work[..ip_len]) {
                    Ok(Decapsulated::Inner { range, .. }) => {
                        out[..l2_len].copy_from_slice(&data[..l2_len]);
                        out[l2_len..l2_len + range.len()].copy_from_slice(&work[range.clone()]);
                        tally.transformed += 1;
                        Ok(Some(l2_len + range.len()))
                    }
                    Ok(Decapsulated::Bypass) => {
                        out[..data.len()].copy_from_slice(data);
                        tally.bypassed += 1;
                        Ok(Some(data.len()))
                    }
                    Ok(Decapsulated::Keepalive) => {
                        tally.keepalives += 1;
                        Ok(None)
                    }
                    Err(reason) => Err(reason),
                }
            }
        };
        match result {
            Ok(Some(len)) => {
                if let Some(at) = ethertype_at {
                    set_ethertype(&mut out[..len], at, l2_len);
                }
                writer
                    .write_record(rec.ts_sec, rec.ts_frac, &out[..len])
                    .with_context(|| format!("{}: writing a record", args.output.display()))?;
                tally.written += 1;
            }
            Ok(None) => {}
            Err(reason) => tally.drops.count(reason),
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
            &engine,
            started.elapsed(),
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
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
    let ethertype: u16 = match frame.get(l2_len).map(|b| b >> 4) {
        Some(6) => 0x86dd,
        _ => 0x0800,
    };
    frame[at..at + 2].copy_from_slice(&ethertype.to_be_bytes());
}

fn print_summary(
    args: &PcapArgs,
    in_link: LinkType,
    out_link: LinkType,
    t: &Tally,
    engine: &SoftwareEngine,
    elapsed: Duration,
) {
    let verb = match args.direction {
        Direction::Encap => "encapsulated",
        Direction::Decap => "decapsulated",
    };
    let mut o = std::io::stdout().lock();
    let _ = writeln!(
        o,
        "espo pcap {}: {} -> {} ({} link, software engine, {:.2} s)",
        if args.direction == Direction::Encap {
            "encap"
        } else {
            "decap"
        },
        args.input.display(),
        args.output.display(),
        in_link,
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
    let sas: Vec<(u32, &str, u64, u64)> = match args.direction {
        Direction::Encap => engine
            .outbound
            .sas()
            .iter()
            .map(|s| {
                (
                    s.params.spi,
                    s.params.protocol.name(),
                    s.counters.packets,
                    s.counters.bytes,
                )
            })
            .collect(),
        Direction::Decap => engine
            .inbound
            .sas()
            .iter()
            .map(|s| {
                (
                    s.params.spi,
                    s.params.protocol.name(),
                    s.counters.packets,
                    s.counters.bytes,
                )
            })
            .collect(),
    };
    for (spi, proto, packets, bytes) in sas {
        let _ = writeln!(
            o,
            "  sa {spi:#010x} {proto:<3} software  {packets:>8} packets {bytes:>12} bytes"
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
