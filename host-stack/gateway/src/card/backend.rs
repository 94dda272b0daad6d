//! Where the card is: the model in this process, or a card served by another process over
//! vfio-user. Everything else in the card gateway is the same code for both: the driver sits
//! on the device interface, and the card's Ethernet port reaches the port thread through
//! the same queues ([`PortQueues`]).
//!
//! - [`CardBackend::Model`]: the card model with real-time pacing, its port attached to the
//!   queues directly.
//! - [`CardBackend::Served`]: `espo card serve` (or any vfio-user server of an ESPO-1); its
//!   port is the server's datagram socket, and a bridge thread carries frames between that
//!   socket and the queues. When the server dies the card is gone (the driver sees it) and
//!   the bridge stops taking frames; the engine then sends and receives over its fallback
//!   wire, which is the queues themselves. A served card whose server attached its port to
//!   an interface (`espo card serve --port IFACE`) has its own port: no bridge.
//! - [`CardBackend::Bus`]: a card on the PCI bus through VFIO (`engine = "vfio"`), its
//!   port its own.
//!
//! With its own port the card sends and receives every frame itself; the port thread
//! meets the link layer's frames through the engine ([`super::port::PortWire::Card`]).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use espo_driver::model::{Link, ModelDevice, ModelHandle, ModelOptions, Pacing};
use espo_driver::vfio_user::port::PortPeer;
use espo_driver::vfio_user::{VfioUserDevice, VfioUserError, VfioUserOptions};
use espo_driver::{Device, IrqMode};
use espo_fpga::Counter;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::port::{CardEnd, PortQueues};

/// How long after the last frame to or from a served card the inbound thread keeps
/// polling: its completions arrive in shared memory, with no event this process could wait
/// on but the card's interrupts.
const SERVED_BUSY: Duration = Duration::from_millis(5);
/// Longest wait of the bridge, ms, for a frame either way (both wake it at once): how long
/// it takes to notice that it should stop.
const BRIDGE_POLL_MS: u8 = 100;

/// Why the card could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(
        "[device] socket: cannot reach the card served at {socket} (is `espo card serve --socket {socket}` running?)"
    )]
    Connect {
        socket: String,
        #[source]
        source: VfioUserError,
    },
    #[error("[device] socket: cannot reach the served card's port at {port}")]
    Port {
        port: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the port bridge thread failed")]
    Thread(#[source] std::io::Error),
    #[error("[device] pci: `{0}` is not a PCI address (e.g. \"0000:03:00.0\")")]
    PciAddress(String),
    #[error(
        "[device] pci: cannot open the card at {address} through VFIO (`espo probe` says what is missing)"
    )]
    Vfio {
        address: String,
        #[source]
        source: espo_driver::vfio::VfioError,
    },
}

/// The card's whereabouts (see the module documentation).
pub enum CardBackend {
    /// The card model in this process.
    Model(ModelHandle),
    /// A card served by another process, with the bridge to its port (none when the
    /// port is the card's own).
    Served(Option<Bridge>),
    /// A card on the PCI bus through VFIO; its port is its own.
    Bus(String),
}

impl CardBackend {
    /// The model in this process, its port on `queues`.
    pub fn model(queues: &Arc<PortQueues>) -> (Arc<dyn Device>, CardBackend) {
        let device = ModelDevice::new(ModelOptions {
            pacing: Pacing::RealTime,
            ..ModelOptions::default()
        });
        let model = device.handle();
        model.attach_link(Box::new(CardEnd::new(Arc::clone(queues))));
        (Arc::new(device), CardBackend::Model(model))
    }

    /// The card served at `socket`, its port (`<socket>.port`) bridged to `queues`.
    pub fn served(
        socket: &Path,
        queues: &Arc<PortQueues>,
    ) -> Result<(Arc<dyn Device>, CardBackend), BackendError> {
        let device =
            VfioUserDevice::connect(socket, VfioUserOptions::default()).map_err(|source| {
                BackendError::Connect {
                    socket: socket.display().to_string(),
                    source,
                }
            })?;
        let mut port = socket.as_os_str().to_owned();
        port.push(".port");
        let port = PathBuf::from(port);
        let mut own = port.clone().into_os_string();
        own.push(format!(".espo-{}", std::process::id()));
        let peer = PortPeer::connect(&port, own.as_ref()).map_err(|source| BackendError::Port {
            port: port.display().to_string(),
            source,
        })?;
        let bridge = Bridge::spawn(peer, Arc::clone(queues)).map_err(BackendError::Thread)?;
        Ok((Arc::new(device), CardBackend::Served(Some(bridge))))
    }

    /// The card served at `socket` whose server attached its port to an interface: the
    /// port is the card's own.
    pub fn served_own_port(socket: &Path) -> Result<(Arc<dyn Device>, CardBackend), BackendError> {
        let device =
            VfioUserDevice::connect(socket, VfioUserOptions::default()).map_err(|source| {
                BackendError::Connect {
                    socket: socket.display().to_string(),
                    source,
                }
            })?;
        Ok((Arc::new(device), CardBackend::Served(None)))
    }

    /// The card at PCI address `pci` through VFIO.
    pub fn bus(pci: &str) -> Result<(Arc<dyn Device>, CardBackend), BackendError> {
        let address: espo_driver::pci::PciAddress = pci
            .parse()
            .map_err(|_| BackendError::PciAddress(pci.to_owned()))?;
        let device =
            espo_driver::vfio::VfioDevice::open(address, espo_driver::vfio::VfioOptions::default())
                .map_err(|source| BackendError::Vfio {
                    address: pci.to_owned(),
                    source,
                })?;
        Ok((Arc::new(device), CardBackend::Bus(pci.to_owned())))
    }

    /// Whether the card's port is its own (no interface of this host carries it).
    pub fn own_port(&self) -> bool {
        matches!(self, CardBackend::Served(None) | CardBackend::Bus(_))
    }

    /// What `espo status` calls the card.
    pub fn describe(&self) -> &'static str {
        match self {
            CardBackend::Model(_) => "ESPO-1 model",
            CardBackend::Served(_) => "ESPO-1 served over vfio-user",
            CardBackend::Bus(_) => "ESPO-1 through VFIO",
        }
    }

    /// Whether the card may still produce completions the inbound thread must poll for.
    pub fn busy(&self) -> bool {
        match self {
            CardBackend::Model(m) => m.with(|m| m.next_event_cycle().is_some()),
            CardBackend::Served(Some(b)) => b.active_within(SERVED_BUSY),
            // It interrupts; the engine's own work in hand keeps the poller going.
            CardBackend::Served(None) | CardBackend::Bus(_) => false,
        }
    }

    /// How the card tells of completions: the in-process model is polled (its time runs in
    /// a thread of this process); a served card interrupts, through an eventfd the inbound
    /// thread waits on, and is polled while the engine has work in hand.
    pub fn irq_mode(&self) -> IrqMode {
        match self {
            CardBackend::Model(_) => IrqMode::Poll,
            CardBackend::Served(_) | CardBackend::Bus(_) => IrqMode::Interrupt {
                coalesce_packets: 16,
                // 10 µs at the card's 250 MHz.
                coalesce_cycles: 2_500,
            },
        }
    }

    /// A STATS counter of the model (a served card keeps its own).
    pub fn counter(&self, c: Counter) -> Option<u64> {
        match self {
            CardBackend::Model(m) => Some(m.counter(c)),
            CardBackend::Served(_) | CardBackend::Bus(_) => None,
        }
    }

    /// The model, for tests that move its time on.
    pub fn model_handle(&self) -> Option<&ModelHandle> {
        match self {
            CardBackend::Model(m) => Some(m),
            CardBackend::Served(_) | CardBackend::Bus(_) => None,
        }
    }
}

/// Carries frames between a served card's port socket and the port queues.
pub struct Bridge {
    stop: Arc<AtomicBool>,
    queues: Arc<PortQueues>,
    last_activity_ns: Arc<AtomicU64>,
    origin: Instant,
    thread: Option<JoinHandle<()>>,
}

impl Bridge {
    fn spawn(mut peer: PortPeer, queues: Arc<PortQueues>) -> std::io::Result<Bridge> {
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(AtomicU64::new(0));
        let origin = Instant::now();
        let waker = Arc::clone(&queues);
        let thread = {
            let stop = Arc::clone(&stop);
            let last = Arc::clone(&last);
            std::thread::Builder::new()
                .name("espo-card-port".into())
                .spawn(move || {
                    let mut end = CardEnd::new(Arc::clone(&queues));
                    // Once the server is gone, frames for the card stay in the queue: the
                    // engine takes them from there through its fallback wire.
                    let mut gone = false;
                    let mark = || {
                        let ns = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        last.store(ns, Ordering::Release);
                    };
                    while !stop.load(Ordering::Acquire) {
                        // Lowered before the queue is looked at: a frame queued after
                        // this wakes the bridge again.
                        queues.card_feed.clear();
                        let mut moved = false;
                        while let Some(frame) = peer.recv() {
                            end.send(espo_driver::model::Frame {
                                data: frame,
                                cycle: 0,
                            });
                            moved = true;
                        }
                        while !gone && let Some(frame) = end.recv() {
                            match peer.send(&frame.data) {
                                Ok(()) => moved = true,
                                Err(e) => {
                                    // Full: it goes again after the next wait. Gone: the
                                    // engine's fallback takes it.
                                    gone = e.kind() != std::io::ErrorKind::WouldBlock;
                                    queues.return_for_card(frame.data);
                                    break;
                                }
                            }
                        }
                        if gone {
                            // Nothing will come from the card again; what is queued for it
                            // stays for the engine's fallback wire.
                            return;
                        }
                        if moved {
                            mark();
                            continue;
                        }
                        // Frames from the card, or queued for it, wake the bridge.
                        let mut fds = [
                            PollFd::new(peer.as_fd(), PollFlags::POLLIN),
                            PollFd::new(queues.card_feed.fd(), PollFlags::POLLIN),
                        ];
                        let _ = poll(&mut fds, PollTimeout::from(BRIDGE_POLL_MS));
                    }
                })?
        };
        Ok(Bridge {
            stop,
            queues: waker,
            last_activity_ns: last,
            origin,
            thread: Some(thread),
        })
    }

    fn active_within(&self, window: Duration) -> bool {
        let last = Duration::from_nanos(self.last_activity_ns.load(Ordering::Acquire));
        self.origin.elapsed().saturating_sub(last) < window
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.queues.card_feed.signal();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
