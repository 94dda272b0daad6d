//! `espo ike` and `espo wireshark`: key management of a running `espo run`, through its
//! control socket.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use super::control::{Target, send};

/// IKEv2 key management of a running gateway: its connections, IKE SAs and CHILD_SAs.
///
/// Connections are the configuration's [[connection]] entries. A connection whose children
/// have start_action = "start" comes up when espo starts; `up` starts any other (this end
/// must know the peer's address: remote_addrs), `down` deletes its IKE SA and CHILD_SAs on
/// both ends. Logs go to standard error with levels per subsystem ([gateway] ike_log, e.g.
/// "info, ike=debug": ike, chd, cfg, net, enc).
///
/// Examples:
///   espo ike list --config /etc/espo/espo.toml
///   espo ike up site-b --config /etc/espo/espo.toml
///   espo ike down site-b --config /etc/espo/espo.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct IkeArgs {
    #[command(subcommand)]
    pub action: IkeAction,
}

#[derive(Debug, Subcommand)]
pub enum IkeAction {
    /// Every connection with its IKE SAs (peer, identities, state, algorithms, age) and
    /// CHILD_SAs (SPIs, algorithms, selectors, time to rekey); never keys.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Start a connection: IKE_SA_INIT, IKE_AUTH and its first CHILD_SA.
    Up {
        #[command(flatten)]
        target: Target,
        /// The connection's name.
        name: String,
    },
    /// Delete a connection's IKE SAs and their CHILD_SAs (the peer is told).
    Down {
        #[command(flatten)]
        target: Target,
        /// The connection's name.
        name: String,
    },
}

pub fn run(args: IkeArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        IkeAction::List { target } => send(&target, "ike list\n"),
        IkeAction::Up { target, name } => send(&target, &format!("ike up {}\n", one_word(&name)?)),
        IkeAction::Down { target, name } => {
            send(&target, &format!("ike down {}\n", one_word(&name)?))
        }
    }
}

fn one_word(name: &str) -> anyhow::Result<&str> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("`{name}` is not a connection name (one word)");
    }
    Ok(name)
}

/// Write Wireshark's decryption tables for the running gateway's SAs (root only).
///
/// Writes DIR/esp_sa (ESP SAs: Preferences > Protocols > ESP > ESP SAs) and, when key
/// management runs, DIR/ikev2_decryption_table (IKE SAs: Protocols > ISAKMP > IKEv2
/// Decryption Table). Both hold keys: the files are created mode 0600 and nothing is
/// printed. Decode a capture of the outside with tshark:
///
///   espo wireshark --out /root/ws --config /etc/espo/espo.toml
///   tshark -r outside.pcap -o esp.enable_encryption_decode:TRUE \
///     $(while read -r l; do printf -- "-o uat:esp_sa:%s " "$l"; done < /root/ws/esp_sa)
///
/// (or copy the files into Wireshark's profile directory, ~/.config/wireshark/).
/// The tables describe the SAs of this moment: write them again after a rekey.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct WiresharkArgs {
    #[command(flatten)]
    pub target: Target,
    /// The directory to write the tables into (created mode 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn wireshark(args: WiresharkArgs) -> anyhow::Result<ExitCode> {
    let path = args.target.socket()?;
    let reply = espo_gateway::control::request(&path, "wireshark\n")
        .with_context(|| format!("talking to the gateway on {}", path.display()))?;
    let text = Zeroizing::new(reply.text);
    if !reply.ok {
        eprintln!("espo: error: {}", text.trim_end());
        return Ok(ExitCode::FAILURE);
    }
    let (esp, ike) = match text.split_once(espo_gateway::WIRESHARK_IKE_MARK) {
        Some((e, i)) => (e, Some(i)),
        None => (text.as_str(), None),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, content: &str| -> anyhow::Result<()> {
        let file = args.out.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("creating {}", file.display()))?;
        f.write_all(content.as_bytes())
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!(
            "espo: wrote {} ({} entries)",
            file.display(),
            content.lines().count()
        );
        Ok(())
    };
    write("esp_sa", esp)?;
    if let Some(ike) = ike {
        write("ikev2_decryption_table", ike)?;
    }
    Ok(ExitCode::SUCCESS)
}
