//! `espo card serve`: the card model as a vfio-user PCI device in its own process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::{Args, Subcommand};
use std::os::fd::AsFd;

use espo_driver::model::{Frame, Link, ModelParams};
use espo_driver::vfio_user::server::{CardServer, ServedPort, SessionEnd};
use espo_gateway::card::KernelOff;
use espo_gateway::card::port::PortSocket;

/// The ESPO-1 card model served to other processes.
#[derive(Debug, Args)]
pub struct CardArgs {
    #[command(subcommand)]
    pub command: CardCommand,
}

#[derive(Debug, Subcommand)]
pub enum CardCommand {
    Serve(ServeArgs),
}

/// Serve the card model as a vfio-user PCI device.
///
/// The card model runs in this process, in step with the wall clock, and is served on a
/// unix socket with the vfio-user protocol: configuration space with the card's IDs and
/// MSI-X, BAR0 (the card's registers), DMA into memory the client shares (only within the
/// windows it mapped: anything else is a DMA fault the card reports), MSI-X interrupts
/// through eventfds, and device reset. espo drives it with `--engine vfio-user --socket
/// PATH` (probe, validate, bench); QEMU 10.1 and later can give it to a guest with
/// `-device vfio-user-pci,socket=PATH`. Clients are served one after another; the card
/// keeps its state between them. The card's Ethernet port is a unix datagram socket at
/// <socket>.port (one frame per datagram; the peer that spoke last gets the card's
/// frames) unless --port-socket says otherwise, or on a Linux interface with --port
/// (an AF_PACKET socket: raw frames both ways, nothing answered on the card's behalf). SIGINT or SIGTERM ends the service (the
/// exit status is 3 when an injected removal ended it).
///
/// Examples:
///   espo card serve --socket /run/espo-card.sock
///   espo card serve --socket /tmp/card --port-socket /tmp/card-wire
///   espo card serve --socket /tmp/card --port veth1
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ServeArgs {
    /// Where to listen (a stale socket file there is replaced; a live server's is not).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// The card's Ethernet port as a unix datagram socket (default <socket>.port).
    #[arg(long, value_name = "PATH", conflicts_with = "port")]
    pub port_socket: Option<PathBuf>,
    /// Attach the card's Ethernet port to this interface instead (AF_PACKET, every frame
    /// as it is: the card's frames leave with the MACs the card gave them; the kernel's
    /// IPv6, ARP answers and routing are switched off there while it runs; root). Its
    /// client then has a card whose port is its own, as on the bus: `espo run` with
    /// `engine = "vfio-user"` and no `[gateway] port`.
    #[arg(long, value_name = "IFACE")]
    pub port: Option<String>,
    /// Run the model with every latency at zero (functional tests).
    #[arg(long)]
    pub zero_latency: bool,
}

pub fn run(args: CardArgs) -> anyhow::Result<std::process::ExitCode> {
    match args.command {
        CardCommand::Serve(args) => serve(args),
    }
}

/// The card's port on an interface: an AF_PACKET socket, raw frames both ways.
struct InterfaceLink {
    socket: PortSocket,
    buf: Vec<u8>,
    /// Whether the first oversize frame was reported.
    warned: bool,
}

impl Link for InterfaceLink {
    fn send(&mut self, frame: Frame) {
        // A frame the interface does not take is lost, as on a busy link.
        let _ = self.socket.send(&frame.data);
    }

    fn recv(&mut self) -> Option<Frame> {
        loop {
            match self.socket.recv(&mut self.buf) {
                Ok(Some(n)) => {
                    return Some(Frame {
                        data: self.buf.get(..n)?.to_vec(),
                        cycle: 0,
                    });
                }
                Ok(None) => {
                    if !self.warned && self.socket.oversize() > 0 {
                        self.warned = true;
                        eprintln!(
                            "espo card serve: dropped a frame longer than the port interface's \
                             MTU (a GSO super-frame from a sender on this host over a veth \
                             link, such as a peer with udp_gso); such frames are not taken"
                        );
                    }
                    continue;
                }
                Err(_) => return None,
            }
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    let port_path = args.port_socket.clone().unwrap_or_else(|| {
        let mut p = args.socket.clone().into_os_string();
        p.push(".port");
        p.into()
    });
    let mut quiet = None;
    let (port, port_name) = match &args.port {
        Some(iface) => {
            let socket = PortSocket::open(iface)?;
            // The interface is the card's cable: the kernel keeps quiet on it.
            quiet = Some(KernelOff::apply(iface)?);
            let wake = socket
                .as_fd()
                .try_clone_to_owned()
                .context("duplicating the port socket")?;
            let port = ServedPort {
                link: Box::new(InterfaceLink {
                    socket,
                    buf: vec![0; 16384],
                    warned: false,
                }),
                wake: Some(wake),
                pump: None,
            };
            (port, format!("interface {iface}"))
        }
        None => (
            ServedPort::datagram(&port_path)
                .with_context(|| format!("binding the card's port at {}", port_path.display()))?,
            port_path.display().to_string(),
        ),
    };
    let params = if args.zero_latency {
        ModelParams::zero_latency()
    } else {
        ModelParams::default()
    };
    let mut server = CardServer::bind(&args.socket, params, port)?;
    eprintln!(
        "espo card serve: the ESPO-1 card model at {} (port: {port_name})",
        args.socket.display(),
    );
    // SIGINT and SIGTERM end the service between two messages; SIGKILL is a card gone.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing the signal handlers")?;
    }
    let end = server.run(&stop)?;
    drop(quiet);
    eprintln!(
        "espo card serve: {end}; {} clients, {} messages, {} refused, {} malformed",
        server.stats.clients, server.stats.messages, server.stats.refused, server.stats.malformed
    );
    let _ = std::fs::remove_file(&args.socket);
    let _ = std::fs::remove_file(&port_path);
    Ok(match end {
        SessionEnd::Exit => std::process::ExitCode::from(3),
        _ => std::process::ExitCode::SUCCESS,
    })
}
