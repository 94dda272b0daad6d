//! Identification, capabilities, global control/status and interrupt blocks.

/// Identification block at BAR0 offset 0 (datasheet §3, §5.1).
pub mod ident {
    use super::super::{header, reg32};
    use crate::reg::{Access, Block, Register};

    pub const BASE: u32 = 0x0000;
    pub const BLOCK_TYPE: u32 = 0x0000_E501;
    /// "ESPO" in ASCII.
    pub const DEVICE_ID_VALUE: u32 = 0x4553_504F;
    const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::cap::BASE);
    pub const DEVICE_ID: Register = reg32(
        BASE,
        0,
        0x10,
        "DEVICE_ID",
        Access::Ro,
        DEVICE_ID_VALUE as u64,
        &[],
        "0x4553504F (\"ESPO\").",
    );
    pub const REVISION: Register = reg32(
        BASE,
        0,
        0x14,
        "REVISION",
        Access::Ro,
        1,
        &[],
        "Hardware revision.",
    );
    pub const CLOCK_KHZ: Register = reg32(
        BASE,
        0,
        0x18,
        "CLOCK_KHZ",
        Access::Ro,
        250_000,
        &[],
        "Core clock in kHz; cycle counts in this datasheet are of this clock.",
    );
    pub const SCRATCH: Register = reg32(
        BASE,
        0,
        0x1C,
        "SCRATCH",
        Access::Rw,
        0,
        &[],
        "Free for software; used to check BAR access.",
    );
    pub const BLOCK: Block = Block {
        name: "IDENT",
        block_type: BLOCK_TYPE,
        version: super::super::VERSION_1_0,
        base: BASE,
        size: 0x20,
        instances: 1,
        stride: 0,
        regs: &[
            HDR[0], HDR[1], HDR[2], DEVICE_ID, REVISION, CLOCK_KHZ, SCRATCH,
        ],
        doc: "Identification: the start of the block chain.",
    };
}

/// Capabilities (datasheet §3, §6). Every register here is read-only.
pub mod cap {
    use super::super::{header, reg32};
    use crate::reg::{Access, Block, Field, Register};

    pub const BASE: u32 = 0x0100;
    pub const BLOCK_TYPE: u32 = 0x0000_E502;
    const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::ctrl::BASE);

    /// Bit n of CAP_ALGS is set when algorithm code n (`AlgId`) is done in hardware.
    pub mod algs {
        use crate::reg::Field;
        pub const AES_GCM_128: Field =
            Field::new("AES_GCM_128", 1, 1, "AES-GCM-128, 16-byte ICV (RFC 4106).");
        pub const AES_GCM_256: Field =
            Field::new("AES_GCM_256", 2, 1, "AES-GCM-256, 16-byte ICV (RFC 4106).");
        pub const AES_CBC_128: Field = Field::new(
            "AES_CBC_128",
            3,
            1,
            "AES-CBC-128 with HMAC: never set in ESPO-1.",
        );
        pub const AES_CBC_256: Field = Field::new(
            "AES_CBC_256",
            4,
            1,
            "AES-CBC-256 with HMAC: never set in ESPO-1.",
        );
        pub const CHACHA20_POLY1305: Field = Field::new(
            "CHACHA20_POLY1305",
            5,
            1,
            "ChaCha20-Poly1305 (RFC 7634): never set in ESPO-1.",
        );
        pub const NULL: Field = Field::new("NULL", 6, 1, "NULL encryption: never set in ESPO-1.");
        pub const ALL: &[Field] = &[
            AES_GCM_128,
            AES_GCM_256,
            AES_CBC_128,
            AES_CBC_256,
            CHACHA20_POLY1305,
            NULL,
        ];
    }

    /// Feature bits, shared by CAP_FEATURES (what the card can do) and
    /// CTRL.DRIVER_FEATURES (what the driver enables).
    pub mod features {
        use crate::reg::Field;
        pub const OUTER_IPV4: Field = Field::new("OUTER_IPV4", 0, 1, "IPv4 outer header.");
        pub const OUTER_IPV6: Field = Field::new("OUTER_IPV6", 1, 1, "IPv6 outer header.");
        pub const INNER_IPV4: Field = Field::new("INNER_IPV4", 2, 1, "IPv4 inner packets.");
        pub const INNER_IPV6: Field = Field::new("INNER_IPV6", 3, 1, "IPv6 inner packets.");
        pub const UDP_ENCAP: Field = Field::new("UDP_ENCAP", 4, 1, "ESP in UDP (RFC 3948).");
        pub const ESN: Field =
            Field::new("ESN", 5, 1, "64-bit extended sequence numbers (RFC 4303).");
        pub const ANTI_REPLAY: Field =
            Field::new("ANTI_REPLAY", 6, 1, "Hardware anti-replay window.");
        pub const LIFETIMES: Field = Field::new(
            "LIFETIMES",
            7,
            1,
            "Byte/packet lifetimes with soft/hard events.",
        );
        pub const SA_STATE_EXPORT: Field = Field::new(
            "SA_STATE_EXPORT",
            8,
            1,
            "SA state read-back and import (live SA migration).",
        );
        pub const INT_COALESCE: Field = Field::new("INT_COALESCE", 9, 1, "Interrupt coalescing.");
        pub const AH: Field = Field::new("AH", 16, 1, "AH (RFC 4302): never set in ESPO-1.");
        pub const BUNDLE: Field =
            Field::new("BUNDLE", 17, 1, "SA bundles (ESP+AH): never set in ESPO-1.");
        pub const TRANSPORT: Field =
            Field::new("TRANSPORT", 18, 1, "Transport mode: never set in ESPO-1.");
        pub const ALL: &[Field] = &[
            OUTER_IPV4,
            OUTER_IPV6,
            INNER_IPV4,
            INNER_IPV6,
            UDP_ENCAP,
            ESN,
            ANTI_REPLAY,
            LIFETIMES,
            SA_STATE_EXPORT,
            INT_COALESCE,
            AH,
            BUNDLE,
            TRANSPORT,
        ];
        /// The features ESPO-1 implements.
        pub const ESPO1: u64 = 0x3FF;
    }

    pub mod ring_sizes {
        use crate::reg::Field;
        pub const MIN_LOG2: Field = Field::new("MIN_LOG2", 0, 8, "Smallest ring, log2 entries.");
        pub const MAX_LOG2: Field = Field::new("MAX_LOG2", 8, 8, "Largest ring, log2 entries.");
    }
    pub mod engines {
        use crate::reg::Field;
        pub const COUNT: Field = Field::new("COUNT", 0, 8, "AES-GCM engines.");
        pub const BYTES_PER_CYCLE: Field =
            Field::new("BYTES_PER_CYCLE", 8, 8, "Bytes per cycle of one engine.");
    }

    pub const RING_MIN_LOG2: u32 = 4;
    pub const RING_MAX_LOG2: u32 = 15;
    pub const SA_TABLE_ENTRIES: u32 = 4096;
    pub const REPLAY_WINDOW_MAX_PACKETS: u32 = 4096;
    /// Largest frame on the port and in a TX buffer: Ethernet header and payload, no FCS.
    pub const MAX_FRAME_BYTES: u32 = 9216;
    pub const ENGINE_COUNT: u32 = 4;
    pub const ENGINE_BYTES_PER_CYCLE: u32 = 16;

    pub const CAP_ALGS: Register = reg32(
        BASE,
        0,
        0x10,
        "CAP_ALGS",
        Access::Ro,
        0x6,
        algs::ALL,
        "Algorithms done in hardware (bit n = AlgId n).",
    );
    pub const CAP_FEATURES: Register = reg32(
        BASE,
        0,
        0x14,
        "CAP_FEATURES",
        Access::Ro,
        features::ESPO1,
        features::ALL,
        "Features done in hardware.",
    );
    pub const SA_TABLE_SIZE: Register = reg32(
        BASE,
        0,
        0x18,
        "SA_TABLE_SIZE",
        Access::Ro,
        SA_TABLE_ENTRIES as u64,
        &[],
        "SA table entries (indices 0..n).",
    );
    pub const QUEUE_COUNT: Register = reg32(
        BASE,
        0,
        0x1C,
        "QUEUE_COUNT",
        Access::Ro,
        4,
        &[],
        "Queue pairs (TX+RX), each with its own vector.",
    );
    const RING_FIELDS: &[Field] = &[ring_sizes::MIN_LOG2, ring_sizes::MAX_LOG2];
    pub const RING_SIZES: Register = reg32(
        BASE,
        0,
        0x20,
        "RING_SIZES",
        Access::Ro,
        (RING_MIN_LOG2 | RING_MAX_LOG2 << 8) as u64,
        RING_FIELDS,
        "Allowed ring sizes for every ring (admin, event, TX, RX, completion).",
    );
    pub const REPLAY_WINDOW_MAX: Register = reg32(
        BASE,
        0,
        0x24,
        "REPLAY_WINDOW_MAX",
        Access::Ro,
        REPLAY_WINDOW_MAX_PACKETS as u64,
        &[],
        "Largest anti-replay window, packets.",
    );
    pub const MAX_FRAME: Register = reg32(
        BASE,
        0,
        0x28,
        "MAX_FRAME",
        Access::Ro,
        MAX_FRAME_BYTES as u64,
        &[],
        "Largest frame, bytes, without FCS.",
    );
    const ENGINE_FIELDS: &[Field] = &[engines::COUNT, engines::BYTES_PER_CYCLE];
    pub const ENGINES: Register = reg32(
        BASE,
        0,
        0x2C,
        "ENGINES",
        Access::Ro,
        (ENGINE_COUNT | ENGINE_BYTES_PER_CYCLE << 8) as u64,
        ENGINE_FIELDS,
        "Crypto engines (informative).",
    );
    pub const BLOCK: Block = Block {
        name: "CAP",
        block_type: BLOCK_TYPE,
        version: super::super::VERSION_1_0,
        base: BASE,
        size: 0x30,
        instances: 1,
        stride: 0,
        regs: &[
            HDR[0],
            HDR[1],
            HDR[2],
            CAP_ALGS,
            CAP_FEATURES,
            SA_TABLE_SIZE,
            QUEUE_COUNT,
            RING_SIZES,
            REPLAY_WINDOW_MAX,
            MAX_FRAME,
            ENGINES,
        ],
        doc: "Capabilities: what the card does in hardware.",
    };
}

/// Global control and status (datasheet §3, §5, §10).
pub mod ctrl {
    use super::super::{header, reg32, reg64};
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
        pub const READY: Field =
            Field::new("READY", 0, 1, "Out of reset; registers may be written.");
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
        pub const QUEUE: Field =
            Field::new("QUEUE", 16, 16, "Queue index, 0xFFFF for admin/event.");
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
        version: super::super::VERSION_1_0,
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
}

/// MSI-X style interrupt vectors (datasheet §9). Vector 0: admin completions, events and
/// errors. Vector 1 + q: queue pair q.
pub mod irq {
    use super::super::{header, reg32};
    use crate::reg::{Access, Block, Register};

    pub const BASE: u32 = 0x0300;
    pub const BLOCK_TYPE: u32 = 0x0000_E504;
    pub const VECTORS: u32 = 5;
    const HDR: [Register; 3] = header(BASE, 0, BLOCK_TYPE, super::super::admin::BASE);
    pub const VECTOR_COUNT: Register = reg32(
        BASE,
        0,
        0x10,
        "VECTOR_COUNT",
        Access::Ro,
        VECTORS as u64,
        &[],
        "Interrupt vectors.",
    );
    pub const INT_MASK: Register = reg32(
        BASE,
        0,
        0x14,
        "INT_MASK",
        Access::Rw,
        (1 << VECTORS) - 1,
        &[],
        "Bit v masks vector v. A masked vector sets its INT_PENDING bit instead of firing; unmasking fires it.",
    );
    pub const INT_PENDING: Register = reg32(
        BASE,
        0,
        0x18,
        "INT_PENDING",
        Access::W1c,
        0,
        &[],
        "Bit v: vector v is pending (masked when due).",
    );
    pub const COAL_PACKETS: Register = reg32(
        BASE,
        0,
        0x1C,
        "COAL_PACKETS",
        Access::Rw,
        1,
        &[],
        "Queue vectors fire after this many unsignalled completions (0 and 1: every completion).",
    );
    pub const COAL_CYCLES: Register = reg32(
        BASE,
        0,
        0x20,
        "COAL_CYCLES",
        Access::Rw,
        0,
        &[],
        "Queue vectors fire at most this many cycles after their first unsignalled completion (0: no timer).",
    );
    pub const BLOCK: Block = Block {
        name: "IRQ",
        block_type: BLOCK_TYPE,
        version: super::super::VERSION_1_0,
        base: BASE,
        size: 0x24,
        instances: 1,
        stride: 0,
        regs: &[
            HDR[0],
            HDR[1],
            HDR[2],
            VECTOR_COUNT,
            INT_MASK,
            INT_PENDING,
            COAL_PACKETS,
            COAL_CYCLES,
        ],
        doc: "Interrupt vectors: mask, pending, coalescing.",
    };
}
