//! One queue pair: TX descriptor ring, TX completion ring, RX buffer ring, RX completion
//! ring (datasheet §7). Instance q is at `Q_BASE + q * Q_STRIDE`.

use super::{header, reg32, reg64};
use crate::reg::{Access, Block, Field, Register};

pub const BASE: u32 = 0x1000;
pub const STRIDE: u32 = 0x100;
pub const COUNT: u32 = 4;
pub const BLOCK_TYPE: u32 = 0x0000_E509;
const HDR: [Register; 3] = header(BASE, STRIDE, BLOCK_TYPE, 0);

pub mod q_ctrl {
    use crate::reg::Field;
    pub const ENABLE: Field = Field::new(
        "ENABLE",
        0,
        1,
        "1: start the queue pair (latches its ring registers); 0: stop.",
    );
}
pub mod q_status {
    use crate::reg::Field;
    pub const ENABLED: Field = Field::new("ENABLED", 0, 1, "Queue pair running.");
    pub const ERROR: Field = Field::new(
        "ERROR",
        1,
        1,
        "Stopped by a fault on one of its rings; disable, then re-enable.",
    );
    pub const IDLE: Field = Field::new(
        "IDLE",
        2,
        1,
        "No descriptor of this queue pair is in flight.",
    );
}
const CTRL_FIELDS: &[Field] = &[q_ctrl::ENABLE];
const STATUS_FIELDS: &[Field] = &[q_status::ENABLED, q_status::ERROR, q_status::IDLE];

const fn r64(off: u32, name: &'static str, doc: &'static str) -> Register {
    reg64(BASE, STRIDE, off, name, Access::Rw, 0, doc)
}
const fn r32(
    off: u32,
    name: &'static str,
    access: Access,
    reset: u64,
    doc: &'static str,
) -> Register {
    reg32(BASE, STRIDE, off, name, access, reset, &[], doc)
}

pub const TXQ_BASE: Register = r64(0x10, "TXQ_BASE", "TX descriptor ring IOVA.");
pub const TXQ_LOG2: Register = r32(
    0x18,
    "TXQ_LOG2",
    Access::Rw,
    0,
    "TX descriptor ring entries, log2.",
);
pub const TXQ_TAIL: Register = r32(
    0x1C,
    "TXQ_TAIL",
    Access::Rw,
    0,
    "Doorbell: free-running producer index of TX descriptors.",
);
pub const TXCQ_BASE: Register = r64(0x20, "TXCQ_BASE", "TX completion ring IOVA.");
pub const TXCQ_LOG2: Register = r32(
    0x28,
    "TXCQ_LOG2",
    Access::Rw,
    0,
    "TX completion ring entries, log2.",
);
pub const TXCQ_HEAD: Register = r32(
    0x2C,
    "TXCQ_HEAD",
    Access::Rw,
    0,
    "Doorbell: free-running consumer index of TX completions.",
);
pub const RXQ_BASE: Register = r64(0x30, "RXQ_BASE", "RX buffer ring IOVA.");
pub const RXQ_LOG2: Register = r32(
    0x38,
    "RXQ_LOG2",
    Access::Rw,
    0,
    "RX buffer ring entries, log2.",
);
pub const RXQ_TAIL: Register = r32(
    0x3C,
    "RXQ_TAIL",
    Access::Rw,
    0,
    "Doorbell: free-running producer index of RX buffers.",
);
pub const RXCQ_BASE: Register = r64(0x40, "RXCQ_BASE", "RX completion ring IOVA.");
pub const RXCQ_LOG2: Register = r32(
    0x48,
    "RXCQ_LOG2",
    Access::Rw,
    0,
    "RX completion ring entries, log2.",
);
pub const RXCQ_HEAD: Register = r32(
    0x4C,
    "RXCQ_HEAD",
    Access::Rw,
    0,
    "Doorbell: free-running consumer index of RX completions.",
);
pub const Q_CTRL: Register = reg32(
    BASE,
    STRIDE,
    0x50,
    "Q_CTRL",
    Access::Rw,
    0,
    CTRL_FIELDS,
    "Queue pair control.",
);
pub const Q_STATUS: Register = reg32(
    BASE,
    STRIDE,
    0x54,
    "Q_STATUS",
    Access::Ro,
    0x4,
    STATUS_FIELDS,
    "Queue pair status.",
);
pub const TXQ_HEAD: Register = r32(
    0x58,
    "TXQ_HEAD",
    Access::Ro,
    0,
    "Card's consumer index of TX descriptors (diagnostics).",
);
pub const RXQ_HEAD: Register = r32(
    0x5C,
    "RXQ_HEAD",
    Access::Ro,
    0,
    "Card's consumer index of RX buffers (diagnostics).",
);
pub const BLOCK: Block = Block {
    name: "QUEUE",
    block_type: BLOCK_TYPE,
    version: super::VERSION_1_0,
    base: BASE,
    size: 0x60,
    instances: COUNT,
    stride: STRIDE,
    regs: &[
        HDR[0], HDR[1], HDR[2], TXQ_BASE, TXQ_LOG2, TXQ_TAIL, TXCQ_BASE, TXCQ_LOG2, TXCQ_HEAD,
        RXQ_BASE, RXQ_LOG2, RXQ_TAIL, RXCQ_BASE, RXCQ_LOG2, RXCQ_HEAD, Q_CTRL, Q_STATUS, TXQ_HEAD,
        RXQ_HEAD,
    ],
    doc: "One queue pair (instance q at Q_BASE + q * Q_STRIDE).",
};
