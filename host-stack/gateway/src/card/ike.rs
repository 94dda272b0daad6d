//! IKE on the card's port. The card's port owns the outside link (the kernel has no address
//! on it), so key management's datagrams cross the port thread: it takes the IKE messages
//! addressed to espo out of the frames it receives (espo-ike's [`datagram`] reads them;
//! NAT keepalives are consumed) and hands them to the daemon's inbox, and it sends the
//! daemon's as frames built there — the port fills in the MACs as for the card's own
//! frames. ESP in UDP on port 4500 still goes to the card.
//!
//! [`datagram`]: espo_ike::datagram

pub use espo_ike::datagram::{Intercepted, frame, intercept};

use crate::ike::IkeMessage;

impl From<espo_ike::datagram::Datagram> for IkeMessage {
    fn from(d: espo_ike::datagram::Datagram) -> IkeMessage {
        IkeMessage {
            bytes: d.bytes,
            src: d.src,
            dst: d.dst,
        }
    }
}
