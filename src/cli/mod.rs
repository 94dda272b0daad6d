//! Command-line interface: one module per subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod pcap;

/// espo — IPsec ESP tunnel gateway for crypto-offload NICs.
#[derive(Debug, Parser)]
#[command(name = "espo", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Pcap(pcap::PcapArgs),
    Bench(bench::BenchArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Pcap(args) => pcap::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
