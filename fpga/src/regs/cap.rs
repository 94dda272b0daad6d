//! Capabilities (datasheet §3, §6). Every register here is read-only.

use super::{header, reg32};
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
    pub const ESN: Field = Field::new("ESN", 5, 1, "64-bit extended sequence numbers (RFC 4303).");
    pub const ANTI_REPLAY: Field = Field::new("ANTI_REPLAY", 6, 1, "Hardware anti-replay window.");
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
    version: super::VERSION_1_0,
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
