//! `espo validate`: the card under test against the software engine, on seeded random
//! traffic (the logic is `espo_harness::validate`).

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::bail;
use clap::{Args, ValueEnum};
use espo_harness::testbed::{CardUnderTest, ModelCard, VfioCard, VfioUserCard};
use espo_harness::validate::{Progress, ValidateOptions, validate};

#[cfg(feature = "rtl")]
#[path = "validate_rtl.rs"]
mod rtl;

/// The RTL card and the log of its cycles.
#[cfg(feature = "rtl")]
fn rtl_card(log: &mut Option<espo_rtl::CycleLog>) -> anyhow::Result<Box<dyn CardUnderTest>> {
    let card = rtl::RtlCard::default();
    *log = Some(card.log.clone());
    Ok(Box::new(card))
}

#[cfg(not(feature = "rtl"))]
fn rtl_card(_: &mut Option<()>) -> anyhow::Result<Box<dyn CardUnderTest>> {
    bail!(
        "--engine rtl: this espo was built without the RTL co-simulation; rebuild with the \
         `rtl` feature (`cargo run --release --features rtl -- validate --engine rtl`), which \
         needs Verilator (`apt-get install verilator`)"
    )
}

#[cfg(feature = "rtl")]
fn cycle_table(log: Option<&espo_rtl::CycleLog>) -> Option<String> {
    log.map(|l| espo_rtl::verdict_lines(&l.tally()) + &espo_rtl::cycle_table(&l.records()))
}

#[cfg(not(feature = "rtl"))]
fn cycle_table(_: Option<&()>) -> Option<String> {
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CutArg {
    /// The cycle-level card model.
    Model,
    /// A real ESPO-1 through VFIO (--pci), its port cabled to a host interface.
    Vfio,
    /// A card served by another process over vfio-user (--socket; `espo card serve`),
    /// its port the server's datagram socket (<socket>.port).
    VfioUser,
    /// The card model with the RTL core (Verilator) as its datapath; needs espo built
    /// with the `rtl` feature. Prints the RTL's cycles per packet beside the model's.
    Rtl,
}

/// Differential test of a card against the software engine.
///
/// Seeded random traffic — IPv4 and IPv6 inner and outer headers, payloads of 0 to 9000
/// bytes, AES-GCM SAs on the card and SAs the card cannot take (AH, AES-CBC+HMAC,
/// ChaCha20-Poly1305, an ESP+AH bundle, windows larger than the card's) in software, ESN
/// SAs crossing 2^32, an SA running out of sequence numbers, a lifetime expiring on the
/// card, reordered, replayed, corrupted, stale and ECN-marked frames — goes through the
/// offload engine with the card under test and through the software engine, and every
/// packet and verdict is compared. SAs move between card and software mid-stream. With
/// --faults, every fault the card under test can inject strikes mid-stream (the removal
/// last; for --engine vfio-user the removal ends the server process). The last line is
///   validate: N packets, M mismatches, L lost, D duplicated, R nonces reused
/// and the exit status is 0 only when M, L, D and R are all 0.
///
/// Examples:
///   espo validate --engine model --packets 20000 --seed 7
///   espo validate --engine model --faults
///   espo validate --engine vfio --pci 0000:03:00.0
///   espo card serve --socket /tmp/espo-card &  espo validate --engine vfio-user --socket /tmp/espo-card
///   espo validate --engine rtl --packets 2000    (built with --features rtl; Verilator)
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ValidateArgs {
    /// The card under test.
    #[arg(long, value_enum, default_value = "model")]
    pub engine: CutArg,
    /// The card's PCI address (--engine vfio).
    #[arg(long, value_name = "BDF")]
    pub pci: Option<String>,
    /// The served card's vfio-user socket (--engine vfio-user).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// Packets in total, outbound and inbound.
    #[arg(long, default_value_t = 2000)]
    pub packets: u64,
    /// Seed of the traffic (the same seed gives the same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Inject every fault kind the card under test supports, mid-stream.
    #[arg(long)]
    pub faults: bool,
    /// SA table entries the engine uses (fewer than the card-capable SAs, so that some
    /// wait in software and move onto the card when room frees).
    #[arg(long, default_value_t = 11)]
    pub card_sas: u32,
    /// Keep SAs where they are placed (no moves mid-stream).
    #[arg(long)]
    pub no_migrations: bool,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.packets == 0 {
        bail!("--packets must be at least 1");
    }
    let mut cycles = None;
    let mut cut: Box<dyn CardUnderTest> = match args.engine {
        CutArg::Model => Box::new(ModelCard::default()),
        CutArg::Vfio => {
            let Some(address) = args.pci.clone() else {
                bail!("--engine vfio needs the card's PCI address: --pci DDDD:BB:DD.F");
            };
            Box::new(VfioCard {
                address,
                port: None,
            })
        }
        CutArg::VfioUser => {
            let Some(socket) = args.socket.clone() else {
                bail!(
                    "--engine vfio-user needs the served card's socket: --socket PATH (see `espo card serve`)"
                );
            };
            Box::new(VfioUserCard::at(socket))
        }
        CutArg::Rtl => rtl_card(&mut cycles)?,
    };
    let options = ValidateOptions {
        packets: args.packets,
        seed: args.seed,
        faults: args.faults,
        card_sas: args.card_sas,
        migrations: !args.no_migrations,
    };
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_decile = 0;
    let mut show = |p: &Progress| {
        if terminal {
            let width = 30;
            let filled = (p.packets * width / p.total.max(1)) as usize;
            eprint!(
                "\r  [{}{}] {}/{} packets, {} mismatches, {} faults injected ",
                "#".repeat(filled),
                ".".repeat(width as usize - filled.min(width as usize)),
                p.packets,
                p.total,
                p.mismatches,
                p.faults
            );
        } else {
            let decile = p.packets * 10 / p.total.max(1);
            if decile > last_decile {
                last_decile = decile;
                eprintln!(
                    "validate: {}/{} packets, {} mismatches so far",
                    p.packets, p.total, p.mismatches
                );
            }
        }
    };
    let report = validate(&options, cut.as_mut(), &mut show)?;
    if terminal {
        eprint!("\r\x1b[K");
    }
    let mut o = std::io::stdout().lock();
    let _ = write!(o, "{}", report.details());
    if let Some(table) = cycle_table(cycles.as_ref()) {
        let _ = write!(o, "{table}");
    }
    let _ = writeln!(o, "  time     {:.2} s", started.elapsed().as_secs_f64());
    let _ = writeln!(o, "{}", report.summary_line());
    Ok(if report.passed() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}
