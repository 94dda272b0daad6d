//! `espo sa` and `espo policy`: change the SAs and policies of a running `espo run`, and
//! list them, through its control socket.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use espo_config::{Config, DEFAULT_STATUS_SOCKET};
use zeroize::Zeroizing;

/// Which running gateway: its control socket, from a configuration or given directly.
#[derive(Debug, Args)]
pub struct Target {
    /// The running gateway's configuration: its [gateway] status_socket is the socket.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "socket")]
    pub config: Option<PathBuf>,
    /// The running gateway's control socket (default /run/espo/espo.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl Target {
    pub fn socket(&self) -> anyhow::Result<PathBuf> {
        Ok(match (&self.socket, &self.config) {
            (Some(p), _) => p.clone(),
            (None, Some(c)) => Config::load(c)?
                .gateway
                .map(|g| g.status_socket)
                .unwrap_or_else(|| DEFAULT_STATUS_SOCKET.into()),
            (None, None) => DEFAULT_STATUS_SOCKET.into(),
        })
    }
}

/// Sends a request and prints the answer: stdout when it is `ok`, stderr (exit 1) when not.
pub fn send(target: &Target, request: &str) -> anyhow::Result<ExitCode> {
    let path = target.socket()?;
    let reply = espo_gateway::control::request(&path, request).map_err(|e| explain(&path, e))?;
    if reply.ok {
        print!("{}", reply.text);
        Ok(ExitCode::SUCCESS)
    } else {
        eprint!("espo: error: {}", reply.text);
        if !reply.text.ends_with('\n') {
            eprintln!();
        }
        Ok(ExitCode::FAILURE)
    }
}

/// What a failure to reach the gateway means, in words.
fn explain(path: &Path, e: std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "permission denied on {}: the control socket is root's only (mode 0600); run as root",
            path.display()
        ),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "no gateway answers on {} (is espo run running with this configuration?): {e}",
            path.display()
        ),
        _ => anyhow::Error::new(e).context(format!("talking to the gateway on {}", path.display())),
    }
}

/// Reads the SAs or policies to send: a TOML file, or `-` for standard input. The text is
/// wiped from memory once sent.
fn read_entries(file: &Path) -> anyhow::Result<(Zeroizing<String>, String)> {
    let mut text = Zeroizing::new(String::new());
    let source = if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        "stdin".to_string()
    } else {
        let bytes = Zeroizing::new(
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
        );
        match std::str::from_utf8(&bytes) {
            Ok(t) => text.push_str(t),
            Err(_) => bail!("{}: not UTF-8 text", file.display()),
        }
        file.display().to_string()
    };
    // The source names the entries in error messages: one word, no spaces or newlines.
    let source: String = source
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == '=' {
                '_'
            } else {
                c
            }
        })
        .collect();
    Ok((text, source))
}

/// Change or list the SAs of a running gateway.
///
/// SAs are given in the configuration file's own syntax — [[sa]] entries, each with
/// `dir = "in"` or `"out"` — and validated by the same rules, with the same messages
/// (naming the file, the entry and the field). Keys are read from the file and never
/// shown back. Changes take effect between two batches of packets: no packet sees half of
/// one. An outbound SA's sequence numbers are reserved on disk ([gateway] state_dir)
/// before it sends.
///
/// A rekey without loss, for a tunnel between gateways A and B whose SAs are 0x1001 (A to
/// B) and 0x2001 (B to A), new ones 0x1002 and 0x2002 (each file holds one [[sa]]):
///
///   on B:  espo sa replace 0x1001 new-in.toml     # 0x1002 accepts beside 0x1001
///   on A:  espo sa replace 0x2001 new-in.toml     # 0x2002 accepts beside 0x2001
///   on A:  espo sa replace 0x1001 new-out.toml    # A sends on 0x1002 from the next packet
///   on B:  espo sa replace 0x2001 new-out.toml    # B sends on 0x2002
///
/// An inbound SA that was replaced keeps accepting for its grace period (--grace, default
/// 30 s), then goes; the new one takes its place in the policies.
///
/// Examples:
///   espo sa list --config /etc/espo/espo.toml
///   espo sa add --config /etc/espo/espo.toml new-sas.toml
///   espo sa replace 0x2001 --grace 10 --config /etc/espo/espo.toml new-in.toml
///   espo sa del 0x1002 --config /etc/espo/espo.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct SaArgs {
    #[command(subcommand)]
    pub action: SaAction,
}

#[derive(Debug, Subcommand)]
pub enum SaAction {
    /// List the gateway's SAs: direction, SPI, algorithm, outer addresses, state (never
    /// keys).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Add the SAs of a TOML file ([[sa]] entries, each with its dir).
    ///
    /// All or nothing: if one SA is refused, none is added. An SA is refused when an SA
    /// with its SPI and destination exists, when it shares an AEAD key and salt with an SA
    /// the gateway holds (that would repeat nonces), or, on the software engine, when no
    /// socket opened at start receives its packets.
    #[command(verbatim_doc_comment)]
    Add {
        #[command(flatten)]
        target: Target,
        /// The TOML file with the [[sa]] entries, or - for standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Replace an SA by a new one (a rekey), make-before-break.
    ///
    /// The new SA (one [[sa]] entry; its dir, if given, must be the old one's) takes the
    /// old one's place. Outbound: every policy naming the old SA sends on the new one from
    /// the next packet, and the old one goes. Inbound: the new SA accepts at once, beside
    /// the old one, which keeps accepting for the grace period and then goes.
    #[command(verbatim_doc_comment)]
    Replace {
        #[command(flatten)]
        target: Target,
        /// The SA to replace (its SPI: 0x1001 or 4097).
        #[arg(value_name = "SPI")]
        spi: String,
        /// The TOML file with the new [[sa]] entry, or - for standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Inbound: how long the old SA keeps accepting, in seconds (default 30, at most
        /// 3600).
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
    },
    /// Remove an SA no policy names.
    Del {
        #[command(flatten)]
        target: Target,
        /// The SA's SPI.
        #[arg(value_name = "SPI")]
        spi: String,
        /// Its direction, when the SPI is used both ways.
        #[arg(long, value_parser = ["in", "out"])]
        dir: Option<String>,
        /// Its destination, when the SPI has several.
        #[arg(long, value_name = "ADDRESS")]
        dst: Option<String>,
    },
}

/// One word of a command line sent to the gateway: no whitespace can split it.
fn word(text: &str, what: &str) -> anyhow::Result<String> {
    if text.is_empty() || text.chars().any(|c| c.is_whitespace()) {
        bail!("{what} `{text}` must be one word");
    }
    Ok(text.to_owned())
}

pub fn run_sa(args: SaArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        SaAction::List { target } => send(&target, "sa list\n"),
        SaAction::Add { target, file } => {
            let (text, source) = read_entries(&file)?;
            let request = Zeroizing::new(format!("sa add source={source}\n{}", *text));
            send(&target, &request)
        }
        SaAction::Replace {
            target,
            spi,
            file,
            grace,
        } => {
            let (text, source) = read_entries(&file)?;
            let grace = grace.map(|g| format!(" grace={g}")).unwrap_or_default();
            let request = Zeroizing::new(format!(
                "sa replace {}{grace} source={source}\n{}",
                word(&spi, "SPI")?,
                *text
            ));
            send(&target, &request)
        }
        SaAction::Del {
            target,
            spi,
            dir,
            dst,
        } => {
            let mut line = format!("sa del {}", word(&spi, "SPI")?);
            if let Some(d) = dir {
                line.push_str(&format!(" dir={d}"));
            }
            if let Some(d) = dst {
                line.push_str(&format!(" dst={}", word(&d, "destination")?));
            }
            line.push('\n');
            send(&target, &line)
        }
    }
}

/// Change or list the policies of a running gateway.
///
/// Policies are given in the configuration file's own syntax ([[policy]] entries) and
/// validated by the same rules against the SAs the gateway holds. Each policy has an id:
/// a configured one the index of its [[policy]] entry, an added one the next free number
/// (`espo policy list` shows them). Changes take effect between two batches of packets.
/// An outbound policy's destination is routed into the TUN device while a policy needs it,
/// and the guard's rules follow every change.
///
/// Examples:
///   espo policy list --config /etc/espo/espo.toml
///   espo policy add --position 0 --config /etc/espo/espo.toml dns-bypass.toml
///   espo policy set 0 0x1002 --config /etc/espo/espo.toml     # a new SA bundle
///   espo policy del 3 --config /etc/espo/espo.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub action: PolicyAction,
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// List the policies in search order per direction, with their ids.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Add the policies of a TOML file ([[policy]] entries).
    Add {
        #[command(flatten)]
        target: Target,
        /// The TOML file with the [[policy]] entries, or - for standard input.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where in its direction's search order the first one goes (0: first; default:
        /// last); the others follow it.
        #[arg(long, value_name = "N")]
        position: Option<usize>,
    },
    /// Remove a policy.
    Del {
        #[command(flatten)]
        target: Target,
        /// The policy's id (`espo policy list`).
        #[arg(value_name = "ID")]
        id: u32,
    },
    /// Change the SA bundle of a protect policy.
    Set {
        #[command(flatten)]
        target: Target,
        /// The policy's id.
        #[arg(value_name = "ID")]
        id: u32,
        /// The bundle, innermost first: one SPI, or the ESP SA's and the AH SA's
        /// (0x1001,0x1002).
        #[arg(value_name = "SPI[,SPI]")]
        sas: String,
    },
}

pub fn run_policy(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        PolicyAction::List { target } => send(&target, "policy list\n"),
        PolicyAction::Add {
            target,
            file,
            position,
        } => {
            let (text, source) = read_entries(&file)?;
            let position = position
                .map(|p| format!(" position={p}"))
                .unwrap_or_default();
            let request =
                Zeroizing::new(format!("policy add{position} source={source}\n{}", *text));
            send(&target, &request)
        }
        PolicyAction::Del { target, id } => send(&target, &format!("policy del {id}\n")),
        PolicyAction::Set { target, id, sas } => send(
            &target,
            &format!("policy set {id} {}\n", word(&sas, "bundle")?),
        ),
    }
}
