//! `espo run`: the gateway daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use espo_config::Config;
use espo_gateway::guard::{self, GuardState};

/// Run the IPsec tunnel gateway.
///
/// Creates the TUN device named by [gateway] tun, assigns its addresses (tun_address),
/// routes every outbound policy's destination into it, and protects what the inside sends
/// there with the [[sa]] and [[policy]] entries; tunnel packets go out of, and come in on,
/// the outside interface [gateway] port (raw ESP/AH sockets and UDP 4500 for RFC 3948,
/// bound to that interface). The TUN MTU is the outside MTU less the largest tunnel
/// overhead; an inner packet that still does not fit gets ICMP "fragmentation needed" /
/// "packet too big" (DF set, or IPv6) or is fragmented before encapsulation (IPv4 without
/// DF).
///
/// Runs in the foreground until SIGINT (Ctrl-C) or SIGTERM, then removes its routes and
/// addresses, deletes the TUN device and prints the final counters. While it runs,
/// `espo status` shows SAs, counters and drops. Needs root (CAP_NET_ADMIN, CAP_NET_RAW).
///
/// Before it creates the TUN device it installs its guard, the nftables table
/// inet espo-<tun> (needs the nft command, package nftables): cleartext arriving on the
/// outside interface that an inbound protect or discard policy covers is dropped, and
/// nothing an outbound protect or discard policy covers leaves by it unprotected — tunnel
/// packets between the endpoints and IKE pass. A clean stop removes the table; if espo is
/// killed or crashes it stays and blocks the protected traffic until espo starts again or
/// `espo guard off` removes it (see `espo guard --help`). espo status shows the packets
/// it dropped.
///
/// [[connection]] entries are negotiated with IKEv2 (strongSwan's swanctl.conf, as TOML):
/// pre-shared keys or certificates, start_action start, none (`espo ike up`) or trap; each
/// CHILD_SA goes into the running gateway like an SA added with `espo sa add`, and is
/// rekeyed before its lifetime ends. `espo ike list` shows them; logs go to standard error
/// with the levels of [gateway] ike_log ("info, ike=debug").
///
/// With [device] engine = "model" the card model runs in-process: the SAs it can take run
/// on the card, the rest in software, and its Ethernet port is attached to the interface
/// [gateway] port (AF_PACKET; the interface needs no address). espo answers ARP and
/// neighbour solicitations for its tunnel endpoints there and resolves its next hop
/// ([gateway] next_hop, or each peer on the link) itself.
///
/// Examples:
///   espo run --config examples/gw-gw/esp/gw-a.toml
///   espo run --config examples/gw-gw/esp-model/gw-b.toml     # on the card model
///   espo run -c /etc/espo/espo.toml &  espo status -c /etc/espo/espo.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Configuration file with [gateway], [[sa]] and [[policy]] (TOML, see README).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Print nothing but errors and the final counters.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::load(&args.config)?;
    let table = config
        .gateway
        .as_ref()
        .map(|gw| guard::table_spec(&guard::table_name(&gw.tun)))
        .unwrap_or_default();
    let report = espo_gateway::run(&config, |info| {
        if !args.quiet {
            eprintln!(
                "espo: running: tun {} (mtu {}), outside {} (mtu {}), engine {}, guard table {table}; \
                 Ctrl-C stops",
                info.tun, info.tun_mtu, info.outside, info.outside_mtu, info.engine
            );
        }
        for w in &info.warnings {
            eprintln!("espo: warning: {w}");
        }
    })
    .with_context(|| format!("espo run --config {}", args.config.display()))?;
    println!("{}", report.status.trim_end());
    match report.failure {
        Some(why) => {
            eprintln!("espo: error: the gateway stopped: {why}");
            if let Some(gw) = &config.gateway
                && let Ok(GuardState::Installed { .. }) =
                    GuardState::read(&guard::table_name(&gw.tun))
            {
                eprintln!(
                    "espo: the guard (table {table}) stays, so the protected traffic cannot leave \
                     in clear; `espo guard off --config {}` removes it",
                    args.config.display()
                );
            }
            Ok(std::process::ExitCode::FAILURE)
        }
        None => Ok(std::process::ExitCode::SUCCESS),
    }
}
