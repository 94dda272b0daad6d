//! Command-line interface: one module per subcommand.

pub mod probe;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod card;
pub mod control;
pub mod demo;
pub mod guard;
pub mod ike;
pub mod pcap;
pub mod run;
pub mod status;
pub mod validate;

/// espo — IPsec ESP tunnel gateway for crypto-offload NICs.
#[derive(Debug, Parser)]
#[command(name = "espo", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Demo(demo::DemoArgs),
    Run(run::RunArgs),
    Status(status::StatusArgs),
    Sa(control::SaArgs),
    Policy(control::PolicyArgs),
    Ike(ike::IkeArgs),
    Wireshark(ike::WiresharkArgs),
    Guard(guard::GuardArgs),
    Pcap(pcap::PcapArgs),
    Bench(bench::BenchArgs),
    Card(card::CardArgs),
    /// Check whether this machine can drive a card through VFIO, and say how to fix what is
    /// missing.
    ///
    /// A userspace driver needs the IOMMU enabled (firmware and kernel command line), the
    /// VFIO modules loaded, the card bound to vfio-pci, every other device in its IOMMU
    /// group bound to vfio-pci or to nothing, access to /dev/vfio/GROUP, a memlock limit
    /// large enough for the DMA memory it pins, and ideally free hugepages. Each check prints
    /// one line (ok, warn, FAIL, info) with the command that fixes it; the exit status is
    /// non-zero when something blocks VFIO use. Nothing is changed.
    Probe(probe::ProbeArgs),
    Validate(validate::ValidateArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Run(args) => run::run(args),
        Command::Status(args) => status::run(args),
        Command::Sa(args) => control::run_sa(args),
        Command::Policy(args) => control::run_policy(args),
        Command::Ike(args) => ike::run(args),
        Command::Wireshark(args) => ike::wireshark(args),
        Command::Guard(args) => guard::run(args),
        Command::Pcap(args) => pcap::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Card(args) => card::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Validate(args) => validate::run(args),
    }
}
