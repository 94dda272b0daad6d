//! Key management beside the datapath: the IKE messages the datapath hands over.
//!
//! ESP in UDP and IKE share UDP port 4500 (RFC 3948): the datapath thread that owns the
//! port's socket receives both, and passes each IKE message (the datagram after its
//! non-ESP marker) to the key-management daemon through an [`IkeInbox`]. The inbox is
//! bounded: a datapath thread never waits on it, and a message that does not fit is
//! dropped and counted (`ike-backlog`) — IKE retransmits (RFC 7296 §2.1).

pub mod inbox;
pub mod lifetimes;
pub mod runtime;
pub mod setup;

pub use inbox::{IkeInbox, IkeMessage, IkeReceiver};
pub use lifetimes::LifetimeFeed;
pub use runtime::{IkeRuntime, IkeSocket, LogFilter, Transport};
pub use setup::KeyManagement;
