//! Errors of the card driver.

use std::time::Duration;

use espo_fpga::Status;
use thiserror::Error;

use crate::error::{AccessError, DeviceError};

/// Why a packet handed to [`Card::tx_batch`](super::Card::tx_batch) was refused before
/// anything was submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TxRequestError {
    /// The frame is shorter than an Ethernet header or longer than a TX buffer or the
    /// card's largest frame.
    #[error("frame of {len_bytes} bytes is outside 14..={max_bytes}")]
    FrameLength {
        /// Length of the frame.
        len_bytes: usize,
        /// Largest frame this card and buffer size take.
        max_bytes: usize,
    },
    /// The SA index is not below the card's SA table size.
    #[error("SA index {sa_index} is not below the SA table size {table_size}")]
    SaIndex {
        /// The index asked for.
        sa_index: u32,
        /// Entries in the SA table.
        table_size: u32,
    },
    /// The buffer is not one this queue lent and the caller still holds (posted already,
    /// returned, or of another queue).
    #[error("buffer {buf} of queue {queue} is not lent to the caller")]
    NotLent {
        /// The queue the handle names.
        queue: u16,
        /// The buffer it names.
        buf: u32,
    },
}

/// What the card driver reports when an operation fails.
#[derive(Debug, Error)]
pub enum CardError {
    /// A device operation (register access, DMA memory, interrupts) failed.
    #[error("device operation failed")]
    Device(#[from] DeviceError),
    /// An access to the driver's own DMA memory was refused (a driver bug, never the card's
    /// doing: every offset is computed from ring and pool sizes the driver chose).
    #[error("DMA memory access refused")]
    Dma(#[from] AccessError),
    /// A buffer handle that names no buffer lent to the caller (already returned, or of
    /// another queue).
    #[error("buffer {buf} of queue {queue} is not lent to the caller")]
    NotLent {
        /// The queue the handle names.
        queue: u16,
        /// The buffer it names.
        buf: u32,
    },
    /// The configuration asks for something the driver or the card cannot do.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// BAR0 does not hold an ESPO-1 card (wrong or missing identification).
    #[error("not an ESPO-1 card: DEVICE_ID reads {device_id:#010x}")]
    NotEspo {
        /// The value read.
        device_id: u32,
    },
    /// The register block chain is broken (a loop, an offset outside BAR0, a missing block).
    #[error("register block chain: {0}")]
    BlockChain(&'static str),
    /// A register block of a type this driver does not know.
    #[error("unknown register block type {block_type:#010x} at offset {offset:#x}")]
    UnknownBlock {
        /// BAR0 offset of the block.
        offset: u64,
        /// Its TYPE register.
        block_type: u32,
    },
    /// A register block whose major version this driver does not know.
    #[error("register block {name} has version {version:#x}; this driver knows major 1")]
    UnknownVersion {
        /// Block name.
        name: &'static str,
        /// Its VERSION register.
        version: u32,
    },
    /// The card lacks something the driver needs (a ring size, queue pairs, capabilities).
    #[error("the card cannot do what is asked: {0}")]
    Unsupported(&'static str),
    /// The card did not leave reset in time (datasheet §5.2).
    #[error("the card did not leave reset within {timeout:?}")]
    ResetTimeout {
        /// How long the driver waited.
        timeout: Duration,
    },
    /// `CONTROL.ENABLE` was refused (§5.7).
    #[error("the card refused ENABLE (FAULT_CODE {fault_code:#x})")]
    EnableRefused {
        /// FAULT_CODE after the refusal.
        fault_code: u32,
    },
    /// `Q_CTRL.ENABLE` of a queue pair was refused (§5.9).
    #[error("queue pair {queue} refused ENABLE (FAULT_CODE {fault_code:#x})")]
    QueueEnableRefused {
        /// Queue pair.
        queue: u16,
        /// FAULT_CODE after the refusal.
        fault_code: u32,
    },
    /// The card was removed (all-ones reads); no register is touched any more.
    #[error("the card is gone (surprise removal): BAR reads return all ones")]
    Removed,
    /// A fault was detected; [`Card::quiesce`](super::Card::quiesce) and
    /// [`Card::reinit`](super::Card::reinit) must run before the datapath is used again.
    #[error("the card has faulted and needs recovery")]
    NeedsRecovery,
    /// A queue-pair index not below the number of queue pairs in use.
    #[error("queue pair {queue} is not in use ({queues} are)")]
    NoSuchQueue {
        /// Queue asked for.
        queue: u16,
        /// Queue pairs in use.
        queues: u16,
    },
    /// A packet of a TX batch was refused; nothing of the batch was submitted.
    #[error("TX request {position} of the batch refused")]
    TxRequest {
        /// Position of the refused packet in the batch.
        position: usize,
        /// Why.
        #[source]
        reason: TxRequestError,
    },
    /// An SA table index not below `SA_TABLE_SIZE`.
    #[error("SA index {index} is not below the SA table size {table_size}")]
    SaIndex {
        /// Index asked for.
        index: u32,
        /// Entries in the SA table.
        table_size: u32,
    },
    /// The card refused an admin command on an SA (§8.3).
    #[error("the card refused {op} of SA {index}: {status:?}")]
    SaRefused {
        /// The command.
        op: &'static str,
        /// The SA index.
        index: u32,
        /// The completion status.
        status: Status,
    },
    /// An admin command did not complete in time.
    #[error("admin command {op} did not complete within {timeout:?}")]
    AdminTimeout {
        /// The command.
        op: &'static str,
        /// How long the driver waited.
        timeout: Duration,
    },
    /// An admin completion failed validation (counted under its reason).
    #[error("admin command {op}: the card's completion failed validation")]
    AdminCompletion {
        /// The command.
        op: &'static str,
    },
    /// A queue pair did not become idle after being disabled (§5.10).
    #[error("queue pair {queue} did not become idle within {timeout:?}")]
    QueueStopTimeout {
        /// Queue pair.
        queue: u16,
        /// How long the driver waited.
        timeout: Duration,
    },
    /// [`Card::reinit`](super::Card::reinit) runs only after
    /// [`Card::quiesce`](super::Card::quiesce).
    #[error("the card is not quiesced: call quiesce first")]
    NotQuiesced,
    /// Interrupt waits need [`IrqMode::Interrupt`](super::IrqMode::Interrupt).
    #[error("the card runs in poll mode: there is no interrupt to wait for")]
    PollMode,
}
