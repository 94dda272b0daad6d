//! `espo status`: what a running gateway is doing.

use std::path::PathBuf;

use clap::Args;

/// Show a running gateway's SAs, counters and drops.
///
/// Connects to the Unix socket of `espo run` (mode 0600, so root only) and prints: the TUN
/// device and outside interface with their MTUs; per direction the packets received,
/// forwarded, bypassed and dropped, with the drop reasons; ICMP errors sent and packets
/// fragmented; and one line per SA — direction, SPI, protocol, mode, algorithms, outer
/// addresses, sequence number, packets, bytes and where it runs (software or card); and
/// the guard's counters — cleartext dropped on the outside interface, per policy (see
/// `espo guard --help`). Keys are never shown.
///
/// The socket is [gateway] status_socket of the configuration given with --config, or
/// --socket, or /run/espo/espo.sock.
///
/// Examples:
///   espo status
///   espo status --config examples/gw-gw/esp/gw-a.toml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct StatusArgs {
    /// Read the socket path from this configuration's [gateway] status_socket.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "socket")]
    pub config: Option<PathBuf>,
    /// The status socket of the running gateway.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

pub fn run(args: StatusArgs) -> anyhow::Result<std::process::ExitCode> {
    super::control::send(
        &super::control::Target {
            config: args.config,
            socket: args.socket,
        },
        "status\n",
    )
}
