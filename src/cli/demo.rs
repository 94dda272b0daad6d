//! `espo demo`: two gateways in one process, the tunnel between them, traffic through it
//! (the logic is `espo_harness::demo`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use espo_config::Config;
use espo_harness::demo::{Budget, Demo, DemoOptions, PacketSize, Progress, default_configs};

/// Run two gateways (card model, software engine) and traffic between them, in one process.
///
/// No root, no setup, no network: two IPsec gateways run side by side. Gateway A is
/// espo's offload engine on the ESPO-1 card model: the card encapsulates and decapsulates
/// the AES-GCM SAs itself, and the SAs it cannot take (ChaCha20-Poly1305, AES-CBC+HMAC)
/// fall back to the software engine transparently. Gateway B is the software engine
/// alone. The card's Ethernet port is the link between them (an in-memory cable carrying
/// whole frames, checked to carry nothing but ESP).
///
/// Behind each gateway sit simulated hosts, one pair per tunnel (IPv4 and IPv6 inner, IPv4
/// and IPv6 outer, ESP and ESP in UDP), exchanging UDP requests and responses in both
/// directions. Each gateway looks up its outbound policy and encapsulates; inbound it
/// verifies the ICV and replay window, decapsulates and checks the inner packet against
/// its inbound policy (RFC 4301 §5.2). Every packet that reaches a host is compared byte
/// for byte with what was sent.
///
/// While it runs, a progress line shows packets, throughput and the card's simulated
/// Gbit/s. At the end: wall-clock throughput, the card's simulated throughput, counters
/// per gateway and per SA with where each SA runs, drops by reason, delivered and lost
/// packets, and one packet shown before and after encapsulation. The exit status is 0 only
/// when every packet arrived intact.
///
/// Before traffic flows, the two gateways negotiate their tunnels with IKEv2 (RFC 7296),
/// their messages crossing the same in-memory cable as frames:
/// gateway A initiates each [[connection]] of its configuration (IKE_SA_INIT with x25519,
/// ECP-384 or MODP-2048, IKE_AUTH with a pre-shared key, CREATE_CHILD_SA for further
/// tunnels), gateway B responds, and the CHILD_SAs they agree on — fresh keys, derived on
/// both sides, never shown — are the SAs the gateways run. The summary lists the IKE SAs and
/// CHILD_SAs with their algorithms and who initiated. --manual-keys skips the negotiation
/// and runs the configurations' [[sa]] entries instead.
///
/// The configurations compiled in are examples/demo/gw-a.toml and gw-b.toml. Their keys
/// and pre-shared keys are demo keys, published with espo; espo never prints keys.
///
/// Examples:
///   espo demo
///   espo demo --packets 20000 --size 1400
///   espo demo --seconds 10 --seed 7 --quiet
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct DemoArgs {
    /// Packets to send through the tunnels, requests and responses together.
    #[arg(long, default_value_t = 500_000, conflicts_with = "seconds")]
    pub packets: u64,
    /// Send for this many seconds instead of a number of packets.
    #[arg(long, value_name = "S")]
    pub seconds: Option<f64>,
    /// Inner packet size in bytes (IP header included, 64 to 9000), or `mixed`
    /// (64, 256, 576, 1024, 1400 and 1500 bytes).
    #[arg(long, default_value = "mixed")]
    pub size: String,
    /// Seed of the packet sizes and contents (the same seed gives the same traffic).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress line; only the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Gateway A's configuration instead of the compiled-in one (with --config-b).
    #[arg(long, value_name = "FILE", requires = "config_b")]
    pub config_a: Option<PathBuf>,
    /// Gateway B's configuration instead of the compiled-in one (with --config-a).
    #[arg(long, value_name = "FILE", requires = "config_a")]
    pub config_b: Option<PathBuf>,
    /// Run the configurations' [[sa]] and [[policy]] entries (manual keys) instead of
    /// negotiating the tunnels with IKEv2.
    #[arg(long)]
    pub manual_keys: bool,
}

fn parse_size(s: &str) -> anyhow::Result<PacketSize> {
    if s == "mixed" {
        return Ok(PacketSize::Mixed);
    }
    let n: usize = s
        .parse()
        .with_context(|| format!("--size: `{s}` is neither a number of bytes nor `mixed`"))?;
    let (lo, hi) = (
        espo_harness::demo::hosts::MIN_PACKET,
        espo_harness::demo::hosts::MAX_PACKET,
    );
    if !(lo..=hi).contains(&n) {
        bail!("--size: {n} bytes is outside {lo}..={hi}");
    }
    Ok(PacketSize::Fixed(n))
}

fn progress_line(p: &Progress) -> String {
    let secs = p.elapsed.as_secs_f64().max(1e-9);
    let of = p.target.map(|t| format!("/{t}")).unwrap_or_default();
    format!(
        "demo: {}{of} packets delivered  {:.0} pkt/s  {:.3} Gbit/s inner  card (simulated) TX {:.1} / RX {:.1} Gbit/s  {:.1} s",
        p.delivered,
        p.delivered as f64 / secs,
        p.delivered_bytes as f64 * 8.0 / secs / 1e9,
        p.card_tx_gbps,
        p.card_rx_gbps,
        secs
    )
}

pub fn run(args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    let (config_a, config_b) = match (&args.config_a, &args.config_b) {
        (Some(a), Some(b)) => (Config::load(a)?, Config::load(b)?),
        _ => default_configs()?,
    };
    let budget = match args.seconds {
        Some(s) if !(s > 0.0 && s <= 86_400.0) => {
            bail!("--seconds must be above 0 and at most a day")
        }
        Some(s) => Budget::Time(Duration::from_secs_f64(s)),
        None if args.packets == 0 => bail!("--packets must be at least 1"),
        None => Budget::Packets(args.packets),
    };
    let options = DemoOptions {
        budget,
        size: parse_size(&args.size)?,
        seed: args.seed,
        ..DemoOptions::default()
    };
    let mut key_management = String::new();
    let mut demo = if args.manual_keys {
        key_management.push_str("key management: manual keys (--manual-keys)\n");
        Demo::new(&config_a, &config_b, options)?
    } else {
        let (demo, n) = Demo::negotiated(&config_a, &config_b, options)?;
        key_management.push_str(&format!(
            "key management: IKEv2 over the gateways' link — gateway A initiated {} IKE SAs and {} CHILD_SAs, \
             gateway B responded ({} messages, {:.1} ms); the keys were derived on both ends and are never shown\n",
            n.ike_sas,
            n.child_sas,
            n.messages,
            n.elapsed.as_secs_f64() * 1e3
        ));
        for line in &n.log {
            key_management.push_str(&format!("  {line}\n"));
        }
        demo
    };
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(2)
    };
    let mut last = Instant::now();
    demo.run(|d| {
        if args.quiet || last.elapsed() < every {
            return;
        }
        last = Instant::now();
        let line = progress_line(&d.progress());
        if terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    });
    if terminal && !args.quiet {
        eprint!("\r\x1b[K");
    }
    let summary = demo.summary();
    let mut o = std::io::stdout().lock();
    let _ = write!(o, "{key_management}");
    let _ = writeln!(o, "{summary}");
    Ok(if summary.success() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_a_number_in_range_or_mixed() {
        assert_eq!(parse_size("mixed").unwrap(), PacketSize::Mixed);
        assert_eq!(parse_size("1400").unwrap(), PacketSize::Fixed(1400));
        assert_eq!(parse_size("64").unwrap(), PacketSize::Fixed(64));
        for bad in ["63", "9001", "big", "-1", ""] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_progress_line_carries_packets_rates_and_the_card() {
        let p = Progress {
            elapsed: Duration::from_secs(2),
            sent: 1100,
            delivered: 1000,
            delivered_bytes: 250_000_000,
            target: Some(5000),
            card_tx_gbps: 49.25,
            card_rx_gbps: 48.0,
        };
        let line = progress_line(&p);
        assert_eq!(
            line,
            "demo: 1000/5000 packets delivered  500 pkt/s  1.000 Gbit/s inner  card (simulated) TX 49.2 / RX 48.0 Gbit/s  2.0 s"
        );
        let timed = progress_line(&Progress { target: None, ..p });
        assert!(timed.starts_with("demo: 1000 packets delivered"), "{timed}");
    }
}
