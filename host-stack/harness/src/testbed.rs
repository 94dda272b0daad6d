//! The card under test: a card with its port reachable, for `espo validate`, `espo pcap
//! --engine model` and `espo bench --engine model`.
//!
//! [`CardUnderTest::open`] brings a card up and returns it with the far end of its
//! Ethernet port ([`TestCard::port`]: what the card sends arrives there, frames sent there
//! reach the card), and — where the card under test has them — fault injection and
//! performance counters. Three kinds of card plug in here:
//!
//! - [`ModelCard`]: the cycle-level model (`espo-model`) behind espo-driver's model
//!   backend, its port an in-memory cable. Deterministic; injects every fault of datasheet
//!   §10.4; reports the model's performance.
//! - [`VfioCard`]: a real ESPO-1 through VFIO (`--engine vfio --pci BDF`). Its port is a
//!   physical link, which the caller cables to a host interface and hands in as a [`Wire`];
//!   no fault injection, no simulated performance.
//! - [`VfioUserCard`]: a card served by another process over vfio-user
//!   (`--engine vfio-user --socket PATH`; `espo card serve` serves the card model). Its
//!   port is the server's datagram socket; faults go to the model through the device's
//!   fault region, and the surprise removal ends the server process itself.
//! - The RTL co-simulation (issue 8) implements [`CardUnderTest`] the same way: a
//!   [`Device`](espo_driver::Device) whose datapath is the Verilated core (or the model with
//!   its datapath replaced by it), the port as a [`Wire`], faults and cycle counts where the
//!   simulation offers them. Nothing else in `validate` changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use espo_driver::PciAddress;
use espo_driver::card::{Card, CardConfig, CardError};
use espo_driver::model::{
    FaultKind, FaultTrigger, Link, MemLink, ModelDevice, ModelHandle, ModelOptions, ModelParams,
    PerfReport,
};
use espo_driver::vfio::{VfioDevice, VfioError, VfioOptions};
use espo_driver::vfio_user::port::PortPeer;
use espo_driver::vfio_user::proto::FaultRecord;
use espo_driver::vfio_user::server::fault_code;
use espo_driver::vfio_user::{VfioUserDevice, VfioUserError, VfioUserOptions};

use espo_offload::{Wire, card_config};

/// Why a card under test could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("bringing up the card failed")]
    Card(#[from] CardError),
    #[error("`{0}` is not a PCI address (expected DDDD:BB:DD.F)")]
    PciAddress(String),
    #[error(
        "cannot open the card at {address} through VFIO (is it there, bound to vfio-pci? `espo probe --pci {address}` says what is missing)"
    )]
    Vfio {
        address: String,
        #[source]
        source: VfioError,
    },
    #[error(
        "the card at {0} has no port attached: cable its port to a host interface and pass that interface"
    )]
    NoPort(String),
    #[error(
        "cannot reach the card served at {socket} (is `espo card serve --socket {socket}` running?)"
    )]
    VfioUser {
        socket: String,
        #[source]
        source: VfioUserError,
    },
    #[error("cannot reach the served card's port at {port}")]
    ServedPort {
        port: String,
        #[source]
        source: std::io::Error,
    },
}

/// Injects faults into a card under test (datasheet §10.4).
pub trait FaultInjector {
    /// Schedules `kind`.
    fn inject(&self, kind: FaultKind, trigger: FaultTrigger);
}

/// Performance counters of a simulated card.
pub trait PerfSource {
    /// Counters since the last reset.
    fn perf(&self) -> PerfReport;
    /// Starts a new measurement period.
    fn reset_perf(&self);
}

/// A card brought up for a test, with its port.
pub struct TestCard {
    pub card: Card,
    /// The far end of the card's port.
    pub port: Box<dyn Wire>,
    pub faults: Option<Box<dyn FaultInjector>>,
    pub perf: Option<Box<dyn PerfSource>>,
}

/// Something that can bring up a card to test. See the module documentation.
pub trait CardUnderTest {
    /// What it is, for output ("card model", "ESPO-1 at 0000:03:00.0").
    fn describe(&self) -> String;
    /// Brings the card up with `config`.
    fn open(&mut self, config: CardConfig) -> Result<TestCard, TestbedError>;
}

/// The card model, its port an in-memory cable.
#[derive(Debug, Clone, Default)]
pub struct ModelCard {
    pub params: ModelParams,
}

impl CardUnderTest for ModelCard {
    fn describe(&self) -> String {
        "card model".into()
    }

    fn open(&mut self, config: CardConfig) -> Result<TestCard, TestbedError> {
        let dev = ModelDevice::new(ModelOptions::with_params(self.params.clone()));
        let handle = dev.handle();
        let (near, far) = MemLink::pair();
        handle.attach_link(Box::new(near));
        let card = Card::open(Arc::new(dev), config)?;
        Ok(TestCard {
            card,
            port: Box::new(ModelPort(far)),
            faults: Some(Box::new(handle.clone())),
            perf: Some(Box::new(handle)),
        })
    }
}

impl ModelCard {
    /// A card model with the engine's card configuration ([`card_config`]).
    pub fn open_default(&mut self) -> Result<TestCard, TestbedError> {
        self.open(card_config())
    }
}

impl FaultInjector for ModelHandle {
    fn inject(&self, kind: FaultKind, trigger: FaultTrigger) {
        ModelHandle::inject(self, kind, trigger);
    }
}

impl PerfSource for ModelHandle {
    fn perf(&self) -> PerfReport {
        ModelHandle::perf(self)
    }

    fn reset_perf(&self) {
        ModelHandle::reset_perf(self);
    }
}

/// The test's end of the model's port.
pub struct ModelPort(pub MemLink);

impl Wire for ModelPort {
    fn send(&mut self, frame: &[u8]) -> bool {
        self.0.send_bytes(frame);
        true
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        match Link::recv(&mut self.0) {
            Some(f) => {
                *buf = f.data;
                true
            }
            None => false,
        }
    }
}

/// A real card through VFIO; its port cabled to a host interface the caller attaches.
pub struct VfioCard {
    pub address: String,
    pub port: Option<Box<dyn Wire>>,
}

impl CardUnderTest for VfioCard {
    fn describe(&self) -> String {
        format!("ESPO-1 at {}", self.address)
    }

    fn open(&mut self, config: CardConfig) -> Result<TestCard, TestbedError> {
        let address: PciAddress = self
            .address
            .parse()
            .map_err(|_| TestbedError::PciAddress(self.address.clone()))?;
        let dev = VfioDevice::open(address, VfioOptions::default()).map_err(|source| {
            TestbedError::Vfio {
                address: self.address.clone(),
                source,
            }
        })?;
        let port = self
            .port
            .take()
            .ok_or_else(|| TestbedError::NoPort(self.address.clone()))?;
        let card = Card::open(Arc::new(dev), config)?;
        Ok(TestCard {
            card,
            port,
            faults: None,
            perf: None,
        })
    }
}

/// A card served by another process over vfio-user (`espo card serve`), its port the
/// server's datagram socket.
#[derive(Debug, Clone)]
pub struct VfioUserCard {
    /// The server's vfio-user socket.
    pub socket: PathBuf,
    /// The server's port socket (`espo card serve` puts it at `<socket>.port`).
    pub port: PathBuf,
    /// Whether an injected surprise removal also ends the server process (the removal a
    /// served card really has: its process gone).
    pub removal_ends_server: bool,
}

impl VfioUserCard {
    /// The card served at `socket`, its port at `<socket>.port`; removal ends the server.
    pub fn at(socket: PathBuf) -> Self {
        let mut port = socket.clone().into_os_string();
        port.push(".port");
        Self {
            socket,
            port: port.into(),
            removal_ends_server: true,
        }
    }
}

impl CardUnderTest for VfioUserCard {
    fn describe(&self) -> String {
        format!("card served over vfio-user at {}", self.socket.display())
    }

    fn open(&mut self, config: CardConfig) -> Result<TestCard, TestbedError> {
        let dev = VfioUserDevice::connect(&self.socket, VfioUserOptions::default()).map_err(
            |source| TestbedError::VfioUser {
                socket: self.socket.display().to_string(),
                source,
            },
        )?;
        let mut own = self.port.clone().into_os_string();
        own.push(format!(".peer-{}", std::process::id()));
        let peer = PortPeer::connect(&self.port, own.as_ref()).map_err(|source| {
            TestbedError::ServedPort {
                port: self.port.display().to_string(),
                source,
            }
        })?;
        let dev = Arc::new(dev);
        let card = Card::open(dev.clone(), config)?;
        Ok(TestCard {
            card,
            port: Box::new(ServedPortWire::new(peer)),
            faults: Some(Box::new(ServedFaults {
                dev,
                removal_ends_server: self.removal_ends_server,
            })),
            perf: None,
        })
    }
}

/// Faults into a served card model, through its fault region.
struct ServedFaults {
    dev: Arc<VfioUserDevice>,
    removal_ends_server: bool,
}

impl FaultInjector for ServedFaults {
    fn inject(&self, kind: FaultKind, trigger: FaultTrigger) {
        let (trigger, value) = match trigger {
            FaultTrigger::AtCycle(c) => (0, c),
            FaultTrigger::AtPacket(n) => (1, n),
        };
        let mut code = fault_code(kind);
        if kind == FaultKind::SurpriseRemoval && self.removal_ends_server {
            code |= FaultRecord::EXIT;
        }
        // A server that refuses or is gone shows in the run itself (the fault never
        // strikes, or the card is already lost).
        let _ = self.dev.inject_fault(FaultRecord {
            kind: code,
            trigger,
            value,
        });
    }
}

/// The test's end of a served card's port. Sends wait (up to a second) while the
/// server's socket queue is full, as a cable would pause its sender; a server that let a
/// send wait that long is stalled, and later sends do not wait for it until it takes one
/// again; with the server gone they fail at once.
pub struct ServedPortWire(pub PortPeer, pub bool);

impl ServedPortWire {
    /// The wire over `peer`.
    pub fn new(peer: PortPeer) -> Self {
        Self(peer, false)
    }
}

impl Wire for ServedPortWire {
    fn send(&mut self, frame: &[u8]) -> bool {
        let wait = if self.1 {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        };
        let deadline = Instant::now() + wait;
        loop {
            match self.0.send(frame) {
                Ok(()) => {
                    self.1 = false;
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
            if Instant::now() >= deadline {
                self.1 = true;
                return false;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.0.recv() {
            Some(f) => {
                *buf = f;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_card_comes_up_with_its_port() {
        let mut t = ModelCard::default().open_default().expect("model card");
        assert!(t.card.capabilities().sa_table_size >= 4096);
        assert!(t.faults.is_some() && t.perf.is_some());
        let mut buf = Vec::new();
        assert!(!t.port.recv(&mut buf), "nothing sent yet");
    }

    #[test]
    fn a_vfio_card_that_is_not_there_fails_clearly() {
        let mut v = VfioCard {
            address: "0000:ff:1f.7".into(),
            port: None,
        };
        let err = v.open(card_config()).err().expect("no such card");
        let text = err.to_string();
        assert!(
            text.contains("0000:ff:1f.7") && text.contains("espo probe"),
            "{text}"
        );
        let mut bad = VfioCard {
            address: "nonsense".into(),
            port: None,
        };
        assert!(matches!(
            bad.open(card_config()),
            Err(TestbedError::PciAddress(_))
        ));
    }
}
