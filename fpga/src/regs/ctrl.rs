//! Global control and status (datasheet §3, §5, §10).

use super::{header, reg32, reg64};
use crate::reg::{Access, Block, Field, Register};

pub const BASE: u32 = 0x0200;
pub const BLOCK_TYPE: u32 = 0x0000_E503;
const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::irq::BASE);

pub mod control {
    use crate::reg::Field;
    pub const ENABLE: Field = Field::new(
        "ENABLE",
        0,
        1,
        "1: start the admin and event queues (latches their registers).",
    );
    pub const RESET: Field = Field::new(
        "RESET",
        1,
        1,
        "Write 1: full reset (self-clearing, reads 0).",
    );
}
pub mod status {
    use crate::reg::Field;
    pub const READY: Field = Field::new("READY", 0, 1, "Out of reset; registers may be written.");
    pub const ENABLED: Field = Field::new(
        "ENABLED",
        1,
        1,
        "CONTROL.ENABLE accepted; admin queue running.",
    );
    pub const FAULT: Field = Field::new(
        "FAULT",
        2,
        1,
        "Datapath halted by a fatal fault; reset needed.",
    );
}
pub mod err {
    use crate::reg::Field;
    pub const DMA_FAULT: Field = Field::new(
        "DMA_FAULT",
        0,
        1,
        "A DMA was refused (IOMMU) or failed (PCIe).",
    );
    pub const ENGINE_HANG: Field =
        Field::new("ENGINE_HANG", 1, 1, "A crypto engine stopped; fatal.");
    pub const ICV_ENGINE: Field = Field::new(
        "ICV_ENGINE",
        2,
        1,
        "The ICV unit reported an internal error.",
    );
    pub const CONFIG: Field = Field::new(
        "CONFIG",
        3,
        1,
        "ENABLE or Q_CTRL.ENABLE refused: bad ring setup or features.",
    );
    pub const EVENT_OVERFLOW: Field = Field::new(
        "EVENT_OVERFLOW",
        4,
        1,
        "An event was lost: event queue full.",
    );
}
pub mod fault {
    use crate::reg::Field;
    pub const CODE: Field = Field::new(
        "CODE",
        0,
        8,
        "FaultCode of the first fault since ERR_CAUSE was last clear.",
    );
    pub const UNIT: Field = Field::new("UNIT", 8, 8, "DmaUnit that faulted (DMA faults).");
    pub const QUEUE: Field = Field::new("QUEUE", 16, 16, "Queue index, 0xFFFF for admin/event.");
}

const CONTROL_FIELDS: &[Field] = &[control::ENABLE, control::RESET];
const STATUS_FIELDS: &[Field] = &[status::READY, status::ENABLED, status::FAULT];
const ERR_FIELDS: &[Field] = &[
    err::DMA_FAULT,
    err::ENGINE_HANG,
    err::ICV_ENGINE,
    err::CONFIG,
    err::EVENT_OVERFLOW,
];
const FAULT_FIELDS: &[Field] = &[fault::CODE, fault::UNIT, fault::QUEUE];

pub const CONTROL: Register = reg32(
    BASE,
    0,
    0x10,
    "CONTROL",
    Access::Rw,
    0,
    CONTROL_FIELDS,
    "Global control.",
);
pub const STATUS: Register = reg32(
    BASE,
    0,
    0x14,
    "STATUS",
    Access::Ro,
    1,
    STATUS_FIELDS,
    "Global status.",
);
pub const DRIVER_FEATURES: Register = reg32(
    BASE,
    0,
    0x18,
    "DRIVER_FEATURES",
    Access::Rw,
    0,
    super::cap::features::ALL,
    "Features the driver enables; must be a subset of CAP_FEATURES when ENABLE is set.",
);
pub const ERR_CAUSE: Register = reg32(
    BASE,
    0,
    0x1C,
    "ERR_CAUSE",
    Access::W1c,
    0,
    ERR_FIELDS,
    "Error causes.",
);
pub const FAULT_CODE: Register = reg32(
    BASE,
    0,
    0x20,
    "FAULT_CODE",
    Access::Ro,
    0,
    FAULT_FIELDS,
    "First fault.",
);
pub const RESET_COUNT: Register = reg32(
    BASE,
    0,
    0x24,
    "RESET_COUNT",
    Access::Ro,
    0,
    &[],
    "Resets since power-on, including unrequested ones; not cleared by reset.",
);
pub const FAULT_ADDR: Register = reg64(
    BASE,
    0,
    0x28,
    "FAULT_ADDR",
    Access::Ro,
    0,
    "IOVA of the first faulting DMA.",
);
pub const NATT_PORT: Register = reg32(
    BASE,
    0,
    0x30,
    "NATT_PORT",
    Access::Rw,
    4500,
    &[],
    "UDP destination port recognised as ESP in UDP on receive (RFC 3948).",
);
pub const BLOCK: Block = Block {
    name: "CTRL",
    block_type: BLOCK_TYPE,
    version: super::VERSION_1_0,
    base: BASE,
    size: 0x34,
    instances: 1,
    stride: 0,
    regs: &[
        HDR[0],
        HDR[1],
        HDR[2],
        CONTROL,
        STATUS,
        DRIVER_FEATURES,
        ERR_CAUSE,
        FAULT_CODE,
        RESET_COUNT,
        FAULT_ADDR,
        NATT_PORT,
    ],
    doc: "Global control, status, error causes and fault record.",
};
