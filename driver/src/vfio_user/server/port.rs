//! The served card's Ethernet port: what the model's port is attached to, and how the
//! server learns that a frame waits.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};

use espo_model::{Frame, Link};

use super::lock;
use crate::vfio_user::port::DatagramPort;

/// Takes frames off the port as they arrive, before the card asks for them.
pub type PortPump = Box<dyn FnMut() + Send>;

/// The card's port as the server sees it: a link for the model and, where it has them, a
/// descriptor that is readable when a frame waits and what to call then.
pub struct ServedPort {
    /// What the model's port is attached to.
    pub link: Box<dyn Link>,
    /// Readable when a frame waits for the card.
    pub wake: Option<OwnedFd>,
    /// Called when `wake` is readable.
    pub pump: Option<PortPump>,
}

impl ServedPort {
    /// A port on a unix datagram socket at `path` (see [`DatagramPort`]).
    pub fn datagram(path: &Path) -> io::Result<Self> {
        let port = DatagramPort::bind(path)?;
        let wake = Some(port.wake_fd()?);
        let shared = Arc::new(Mutex::new(port));
        let pumped = Arc::clone(&shared);
        Ok(Self {
            link: Box::new(DatagramLink(shared)),
            wake,
            pump: Some(Box::new(move || lock(&pumped).pull())),
        })
    }

    /// An unconnected port.
    pub fn unplugged() -> Self {
        Self {
            link: Box::new(espo_model::NullLink),
            wake: None,
            pump: None,
        }
    }
}

struct DatagramLink(Arc<Mutex<DatagramPort>>);

impl Link for DatagramLink {
    fn send(&mut self, frame: Frame) {
        lock(&self.0).send_frame(&frame.data);
    }

    fn recv(&mut self) -> Option<Frame> {
        lock(&self.0)
            .recv_frame()
            .map(|data| Frame { data, cycle: 0 })
    }
}
