//! `espo guard`: the nftables guard `espo run` leaves in place when it does not stop
//! cleanly — its state, its rules, and removing it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use espo_config::{Config, GatewayConfig};
use espo_gateway::guard::{self, GuardState, table_spec};

/// Show or remove the guard that keeps cleartext of the protected traffic off the outside
/// interface.
///
/// `espo run` installs an nftables table named after its TUN device (inet espo-<tun>)
/// before anything else, on the outside interface [gateway] port:
///
///   inbound   a packet arriving there that an inbound protect or discard policy covers
///             is dropped before the kernel routes or delivers it (espo only takes
///             ESP, AH and UDP-encapsulated ESP; the kernel would pass anything else on);
///   outbound  a packet leaving there that an outbound protect or discard policy covers
///             is dropped (forward and output hooks), so that when espo is gone — killed,
///             crashed — and its TUN device and routes with it, the kernel cannot send the
///             inside's traffic out in clear.
///
/// Tunnel packets between the configured endpoints (ESP, AH, the SAs' UDP ports, IKE on
/// UDP 500/4500) and IPv6 neighbour discovery pass; policies apply in configuration order,
/// so an earlier bypass policy keeps its traffic flowing. The table stays until espo stops
/// on SIGINT/SIGTERM; after a crash it stays — blocking the protected traffic — until espo
/// starts again (which replaces it in one transaction) or `espo guard off` removes it.
/// Needs the nft command (package nftables).
///
/// Examples:
///   espo guard status --config /etc/espo/espo.toml
///   espo guard rules --config /etc/espo/espo.toml      # what espo run installs
///   espo guard off --config /etc/espo/espo.toml        # after a crash, to let traffic flow
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct GuardArgs {
    #[command(subcommand)]
    pub action: GuardAction,
}

#[derive(Debug, Subcommand)]
pub enum GuardAction {
    /// Whether the guard of this configuration is installed, and what it has dropped.
    ///
    /// Prints the table's name, whether it is installed, and per direction the packets of
    /// cleartext dropped, per policy ([[policy]] index). Exit status 0 when the guard is
    /// installed, 1 when it is not. Needs root.
    #[command(verbatim_doc_comment)]
    Status {
        /// The configuration espo run was started with (its [gateway] tun names the table).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Also print the installed rules (nft list table).
        #[arg(long)]
        rules: bool,
    },
    /// Print the nftables rules espo run would install for this configuration.
    ///
    /// The text is what espo run feeds to `nft -f`; nothing is installed or changed, and no
    /// root is needed.
    #[command(verbatim_doc_comment)]
    Rules {
        /// The configuration (TOML) to build the rules from.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Remove the guard a killed or crashed espo left behind.
    ///
    /// Deletes the table inet espo-<tun> of this configuration. Once it is gone, traffic to
    /// protected destinations goes wherever the kernel's routes send it — in clear, if
    /// espo is not running. Refuses while this configuration's espo run answers on its
    /// status socket (stop it with SIGTERM, which removes the guard itself), unless
    /// --force. Removing a guard that is not installed is not an error. Needs root.
    #[command(verbatim_doc_comment)]
    Off {
        /// The configuration espo run was started with.
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Remove the guard even from under a running espo.
        #[arg(long)]
        force: bool,
    },
}

fn load(path: &Path) -> anyhow::Result<(Config, GatewayConfig)> {
    let config = Config::load(path)?;
    let gw = config.gateway.clone().with_context(|| {
        format!(
            "{}: no [gateway] section, so no espo run and no guard",
            path.display()
        )
    })?;
    Ok((config, gw))
}

/// Whether the espo run of this configuration answers on its status socket.
fn running(gw: &GatewayConfig) -> bool {
    std::os::unix::net::UnixStream::connect(&gw.status_socket).is_ok()
}

pub fn run(args: GuardArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        GuardAction::Status { config, rules } => {
            let (_, gw) = load(&config)?;
            let table = guard::table_name(&gw.tun);
            let state = GuardState::read(&table)
                .with_context(|| format!("espo guard status --config {}", config.display()))?;
            print!("{}", state.render(&table));
            let installed = matches!(state, GuardState::Installed { .. });
            if installed {
                if running(&gw) {
                    println!("  espo run is running with it");
                } else {
                    println!(
                        "  espo run is not running: the protected traffic is blocked until espo \
                         starts again or `espo guard off --config {}` removes the guard",
                        config.display()
                    );
                }
            }
            if rules && let Some(text) = guard::nft::table_text(&table)? {
                print!("{text}");
            }
            Ok(if installed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        GuardAction::Rules { config } => {
            let (cfg, gw) = load(&config)?;
            if espo_gateway::card::own_port(&cfg, &gw) {
                println!(
                    "# {}: no guard — the card's port is its own (engine = \"{}\" without [gateway] port): nothing the kernel routes can leave through it",
                    config.display(),
                    cfg.device.engine.name()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let port = gw.port.clone().with_context(|| {
                format!(
                    "{}: [gateway] port: the guard is on the outside interface, and none is set",
                    config.display()
                )
            })?;
            print!(
                "{}",
                guard::ruleset(&guard::GuardDb::of_config(&cfg), &gw, &port)?.text
            );
            Ok(ExitCode::SUCCESS)
        }
        GuardAction::Off { config, force } => {
            let (_, gw) = load(&config)?;
            let spec = table_spec(&guard::table_name(&gw.tun));
            if running(&gw) && !force {
                anyhow::bail!(
                    "espo run is running with {} (its status socket {} answers): stop it with \
                     SIGTERM, which removes the guard, or pass --force to remove the guard from \
                     under it",
                    config.display(),
                    gw.status_socket.display()
                );
            }
            let removed = guard::nft::delete(&guard::table_name(&gw.tun))
                .with_context(|| format!("espo guard off --config {}", config.display()))?;
            if removed {
                println!("espo guard off: table {spec} removed");
            } else {
                println!("espo guard off: table {spec} was not installed");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
