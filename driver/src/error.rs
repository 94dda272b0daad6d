//! Errors of the device interface.
//!
//! [`AccessError`] is the small `Copy` error of one register or DMA-memory access (cheap to
//! return on the data path); [`DeviceError`] is what the [`Device`](crate::Device) interface
//! returns, with the backend's own error as its source.

use thiserror::Error;

use crate::vfio::VfioError;

/// A register or DMA-memory access that was refused before it touched memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AccessError {
    /// The access would reach past the end of the BAR or DMA region.
    #[error(
        "access of {width_bytes} bytes at offset {offset:#x} is outside the {len_bytes:#x}-byte window"
    )]
    OutOfBounds {
        /// Offset of the access from the start of the window.
        offset: u64,
        /// Width of the access in bytes.
        width_bytes: u64,
        /// Length of the window.
        len_bytes: u64,
    },
    /// A 32- or 64-bit access at an offset that is not a multiple of its width.
    #[error("{width_bytes}-byte access at offset {offset:#x} is not naturally aligned")]
    Misaligned {
        /// Offset of the access from the start of the window.
        offset: u64,
        /// Width of the access in bytes.
        width_bytes: u64,
    },
}

/// What the device interface reports when an operation fails.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// A BAR or DMA access was outside its window or misaligned.
    #[error("device memory access refused")]
    Access(#[from] AccessError),
    /// The BAR does not exist or is not memory-mapped.
    #[error("BAR {bar} is not mapped")]
    NoSuchBar {
        /// BAR index (0–5).
        bar: u8,
    },
    /// The interrupt vector was never enabled.
    #[error("interrupt vector {vector} is not enabled ({enabled} vectors are)")]
    NoSuchVector {
        /// Vector asked for.
        vector: u32,
        /// Number of enabled vectors.
        enabled: u32,
    },
    /// The vector is masked: waiting on it could never return an interrupt.
    #[error("interrupt vector {vector} is masked")]
    VectorMasked {
        /// Vector asked for.
        vector: u32,
    },
    /// The device offers no reset method (no FLR, PM or bus reset).
    #[error("the device offers no reset method")]
    ResetUnsupported,
    /// A VFIO operation failed.
    #[error("VFIO operation failed")]
    Vfio(#[from] VfioError),
    /// A vfio-user operation failed.
    #[error("vfio-user operation failed")]
    VfioUser(#[from] crate::vfio_user::VfioUserError),
    /// A card-model operation failed.
    #[cfg(feature = "model")]
    #[error("card model operation failed")]
    Model(#[from] crate::model::ModelError),
}

impl DeviceError {
    /// Whether the error means the device is gone — a vfio-user server that closed the
    /// connection, stopped answering or broke the protocol — so that the card driver
    /// handles it as surprise removal and touches the device no more.
    pub fn device_gone(&self) -> bool {
        matches!(self, DeviceError::VfioUser(e) if e.is_gone())
    }
}
