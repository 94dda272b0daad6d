//! What the vfio-user backend reports when an operation fails.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use super::channel::RecvError;
use super::proto::ProtoError;

/// A vfio-user operation that failed, client or server side.
#[derive(Debug, Error)]
pub enum VfioUserError {
    /// Connecting to the server's socket failed.
    #[error("connecting to the vfio-user server at {path} failed")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Listening on the server socket failed.
    #[error("listening on {path} failed")]
    Listen {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Sending a message failed (the peer is gone or stopped reading).
    #[error("sending {command} failed")]
    Send {
        /// The command sent.
        command: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No valid reply came: the peer closed, stayed silent past the deadline or sent a
    /// message espo refuses.
    #[error("no valid reply to {command}")]
    Receive {
        /// The command whose reply was awaited.
        command: &'static str,
        /// What went wrong.
        #[source]
        source: RecvError,
    },
    /// The server answered with a reply that does not fit the command (another id or
    /// command, a payload of the wrong shape).
    #[error("the server's reply to {command} is malformed")]
    BadReply {
        /// The command.
        command: &'static str,
        /// Why the payload was refused, when it was parsed.
        #[source]
        source: Option<ProtoError>,
    },
    /// The server reported that the command failed.
    #[error("the server refused {command} (errno {errno})")]
    Refused {
        /// The command.
        command: &'static str,
        /// The errno it gave (may be 0).
        errno: u32,
    },
    /// The connection was lost earlier: the device is gone.
    #[error("the vfio-user server is gone (connection lost)")]
    Disconnected,
    /// Version negotiation failed.
    #[error("the server speaks vfio-user {major}.{minor}; espo speaks 0.1")]
    Version {
        /// The server's major version.
        major: u16,
        /// The server's minor version.
        minor: u16,
    },
    /// The device the server describes is not one espo can drive.
    #[error("the served device is unusable: {0}")]
    BadDevice(String),
    /// An access outside a region or to an absent region.
    #[error(
        "region {region}: {len_bytes}-byte access at {offset:#x} is outside its {size:#x} bytes"
    )]
    RegionBounds {
        /// Region index.
        region: u32,
        /// Offset of the access.
        offset: u64,
        /// Width of the access.
        len_bytes: usize,
        /// Size of the region.
        size: u64,
    },
    /// Shared DMA memory could not be made.
    #[error("allocating {len_bytes} bytes of shared DMA memory failed")]
    AllocDma {
        /// Bytes asked for.
        len_bytes: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No IOVA range of that size is free.
    #[error("no free IOVA range of {len_bytes} bytes")]
    IovaExhausted {
        /// Bytes asked for.
        len_bytes: usize,
    },
    /// Interrupts were enabled twice.
    #[error("interrupts are already enabled")]
    IrqsAlreadyEnabled,
    /// An eventfd could not be made or read.
    #[error("eventfd operation failed")]
    EventFd(#[source] io::Error),
    /// The server's event loop failed.
    #[error("the vfio-user server failed")]
    Serve(#[source] io::Error),
}

impl VfioUserError {
    /// Whether the failure means the device is gone (connection lost, server silent or
    /// broken): the card driver treats it as surprise removal.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            VfioUserError::Send { .. }
                | VfioUserError::Receive { .. }
                | VfioUserError::BadReply { .. }
                | VfioUserError::Disconnected
        )
    }
}
