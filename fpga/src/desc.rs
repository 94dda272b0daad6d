//! TX and RX descriptors and completions (datasheet §7.3–§7.5). Completions end with a
//! phase bit (bit 7 of their last byte, §7.2): the card writes phase 1 on the first pass
//! through a ring, 0 on the second, and so on.

use crate::codes::Status;
use crate::layout::{Layout, LayoutField as F, field_at, layout_is_valid};

/// TX descriptor field layout.
pub mod tx_desc {
    use super::*;
    pub const ADDR: F = F::new(
        "ADDR",
        0,
        64,
        "IOVA of the frame: Ethernet header, then the inner IP packet.",
    );
    pub const LEN: F = F::new("LEN", 64, 16, "Frame length, bytes.");
    pub const BYPASS: F = F::new("BYPASS", 80, 1, "Send the frame as posted (no ESP).");
    pub const RSVD0: F = F::new("RSVD0", 81, 7, "Reserved, 0.");
    pub const RSVD1: F = F::new("RSVD1", 88, 8, "Reserved, 0.");
    pub const SA_INDEX: F = F::new("SA_INDEX", 96, 32, "Outbound SA (ignored with BYPASS).");
    pub const LAYOUT: Layout = Layout {
        name: "TX_DESC",
        size_bytes: 16,
        fields: &[ADDR, LEN, BYPASS, RSVD0, RSVD1, SA_INDEX],
        doc: "TX descriptor.",
    };
    const _: () = assert!(layout_is_valid(&LAYOUT) && field_at(&SA_INDEX, 96, 32));
}

/// TX completion field layout.
pub mod tx_cpl {
    use super::*;
    pub const SEQ: F = F::new(
        "SEQ",
        0,
        64,
        "Sequence number assigned (64-bit; low 32 bits on the wire without ESN); 0 if none.",
    );
    pub const SA_INDEX: F = F::new("SA_INDEX", 64, 32, "SA index from the descriptor.");
    pub const DESC_INDEX: F = F::new(
        "DESC_INDEX",
        96,
        16,
        "Low 16 bits of the descriptor's free-running index.",
    );
    pub const STATUS: F = F::new("STATUS", 112, 8, "Status code.");
    pub const RSVD: F = F::new("RSVD", 120, 7, "Reserved, 0.");
    pub const PHASE: F = F::new("PHASE", 127, 1, "Phase bit.");
    pub const LAYOUT: Layout = Layout {
        name: "TX_CPL",
        size_bytes: 16,
        fields: &[SEQ, SA_INDEX, DESC_INDEX, STATUS, RSVD, PHASE],
        doc: "TX completion.",
    };
    const _: () = assert!(layout_is_valid(&LAYOUT) && field_at(&PHASE, 127, 1));
}

/// RX buffer descriptor field layout.
pub mod rx_desc {
    use super::*;
    pub const ADDR: F = F::new("ADDR", 0, 64, "IOVA of the receive buffer.");
    pub const LEN: F = F::new("LEN", 64, 32, "Buffer length, bytes.");
    pub const RSVD: F = F::new("RSVD", 96, 32, "Reserved, 0.");
    pub const LAYOUT: Layout = Layout {
        name: "RX_DESC",
        size_bytes: 16,
        fields: &[ADDR, LEN, RSVD],
        doc: "RX buffer descriptor.",
    };
    const _: () = assert!(layout_is_valid(&LAYOUT));
}

/// RX completion field layout.
pub mod rx_cpl {
    use super::*;
    pub const SEQ: F = F::new(
        "SEQ",
        0,
        64,
        "ESP sequence number (64-bit, ESN inferred); 0 if not ESP.",
    );
    pub const SA_INDEX: F = F::new("SA_INDEX", 64, 32, "Inbound SA, 0xFFFFFFFF if none.");
    pub const SPI: F = F::new("SPI", 96, 32, "SPI of an ESP frame, 0 otherwise.");
    pub const LEN: F = F::new("LEN", 128, 16, "Bytes written to the buffer.");
    pub const DESC_INDEX: F = F::new(
        "DESC_INDEX",
        144,
        16,
        "Low 16 bits of the RX buffer's free-running index.",
    );
    pub const STATUS: F = F::new("STATUS", 160, 8, "Status (verdict) code.");
    pub const DECAPSULATED: F = F::new(
        "DECAPSULATED",
        168,
        1,
        "Buffer holds the decapsulated inner packet.",
    );
    pub const INNER_IPV6: F = F::new("INNER_IPV6", 169, 1, "Inner packet is IPv6.");
    pub const UDP_ENCAP: F = F::new("UDP_ENCAP", 170, 1, "Arrived as ESP in UDP.");
    pub const TRUNCATED: F = F::new(
        "TRUNCATED",
        171,
        1,
        "Buffer too small: the data is cut at LEN.",
    );
    pub const RSVD0: F = F::new("RSVD0", 172, 4, "Reserved, 0.");
    pub const WIRE_LEN: F = F::new(
        "WIRE_LEN",
        176,
        16,
        "Length of the frame as received, bytes.",
    );
    pub const RSVD1: F = F::new("RSVD1", 192, 56, "Reserved, 0.");
    pub const RSVD2: F = F::new("RSVD2", 248, 7, "Reserved, 0.");
    pub const PHASE: F = F::new("PHASE", 255, 1, "Phase bit.");
    pub const LAYOUT: Layout = Layout {
        name: "RX_CPL",
        size_bytes: 32,
        fields: &[
            SEQ,
            SA_INDEX,
            SPI,
            LEN,
            DESC_INDEX,
            STATUS,
            DECAPSULATED,
            INNER_IPV6,
            UDP_ENCAP,
            TRUNCATED,
            RSVD0,
            WIRE_LEN,
            RSVD1,
            RSVD2,
            PHASE,
        ],
        doc: "RX completion.",
    };
    const _: () = assert!(layout_is_valid(&LAYOUT) && field_at(&PHASE, 255, 1));
}

/// SA index reported when a received frame matched no SA.
pub const NO_SA_INDEX: u32 = 0xFFFF_FFFF;

/// Phase bit of any completion, event or admin completion entry (bit 7 of the last byte).
pub fn phase_of(entry: &[u8]) -> bool {
    entry.last().is_some_and(|b| b & 0x80 != 0)
}

/// Phase the card writes on pass `index >> log2` of a ring: 1 on the first pass.
pub const fn phase_for(index: u32, log2: u32) -> bool {
    (index >> log2) & 1 == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxDescriptor {
    pub addr: u64,
    pub len: u16,
    pub bypass: bool,
    pub sa_index: u32,
}

impl TxDescriptor {
    pub const SIZE: usize = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        tx_desc::ADDR.put(&mut b, self.addr);
        tx_desc::LEN.put(&mut b, self.len.into());
        tx_desc::BYPASS.put_flag(&mut b, self.bypass);
        tx_desc::SA_INDEX.put(&mut b, self.sa_index.into());
        b
    }
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        TxDescriptor {
            addr: tx_desc::ADDR.get(b),
            len: tx_desc::LEN.get(b) as u16,
            bypass: tx_desc::BYPASS.is_set(b),
            sa_index: tx_desc::SA_INDEX.get(b) as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxCompletion {
    pub seq: u64,
    pub sa_index: u32,
    pub desc_index: u16,
    pub status: Status,
    pub phase: bool,
}

impl TxCompletion {
    pub const SIZE: usize = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        tx_cpl::SEQ.put(&mut b, self.seq);
        tx_cpl::SA_INDEX.put(&mut b, self.sa_index.into());
        tx_cpl::DESC_INDEX.put(&mut b, self.desc_index.into());
        tx_cpl::STATUS.put(&mut b, self.status.value().into());
        tx_cpl::PHASE.put_flag(&mut b, self.phase);
        b
    }
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        TxCompletion {
            seq: tx_cpl::SEQ.get(b),
            sa_index: tx_cpl::SA_INDEX.get(b) as u32,
            desc_index: tx_cpl::DESC_INDEX.get(b) as u16,
            status: Status::from_value(tx_cpl::STATUS.get(b) as u8),
            phase: tx_cpl::PHASE.is_set(b),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxDescriptor {
    pub addr: u64,
    pub len: u32,
}

impl RxDescriptor {
    pub const SIZE: usize = 16;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        rx_desc::ADDR.put(&mut b, self.addr);
        rx_desc::LEN.put(&mut b, self.len.into());
        b
    }
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        RxDescriptor {
            addr: rx_desc::ADDR.get(b),
            len: rx_desc::LEN.get(b) as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxCompletion {
    pub seq: u64,
    pub sa_index: u32,
    pub spi: u32,
    pub len: u16,
    pub desc_index: u16,
    pub status: Status,
    pub decapsulated: bool,
    pub inner_ipv6: bool,
    pub udp_encap: bool,
    pub truncated: bool,
    pub wire_len: u16,
    pub phase: bool,
}

impl RxCompletion {
    pub const SIZE: usize = 32;
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        rx_cpl::SEQ.put(&mut b, self.seq);
        rx_cpl::SA_INDEX.put(&mut b, self.sa_index.into());
        rx_cpl::SPI.put(&mut b, self.spi.into());
        rx_cpl::LEN.put(&mut b, self.len.into());
        rx_cpl::DESC_INDEX.put(&mut b, self.desc_index.into());
        rx_cpl::STATUS.put(&mut b, self.status.value().into());
        rx_cpl::DECAPSULATED.put_flag(&mut b, self.decapsulated);
        rx_cpl::INNER_IPV6.put_flag(&mut b, self.inner_ipv6);
        rx_cpl::UDP_ENCAP.put_flag(&mut b, self.udp_encap);
        rx_cpl::TRUNCATED.put_flag(&mut b, self.truncated);
        rx_cpl::WIRE_LEN.put(&mut b, self.wire_len.into());
        rx_cpl::PHASE.put_flag(&mut b, self.phase);
        b
    }
    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        RxCompletion {
            seq: rx_cpl::SEQ.get(b),
            sa_index: rx_cpl::SA_INDEX.get(b) as u32,
            spi: rx_cpl::SPI.get(b) as u32,
            len: rx_cpl::LEN.get(b) as u16,
            desc_index: rx_cpl::DESC_INDEX.get(b) as u16,
            status: Status::from_value(rx_cpl::STATUS.get(b) as u8),
            decapsulated: rx_cpl::DECAPSULATED.is_set(b),
            inner_ipv6: rx_cpl::INNER_IPV6.is_set(b),
            udp_encap: rx_cpl::UDP_ENCAP.is_set(b),
            truncated: rx_cpl::TRUNCATED.is_set(b),
            wire_len: rx_cpl::WIRE_LEN.get(b) as u16,
            phase: rx_cpl::PHASE.is_set(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_descriptor_round_trip_and_bytes() {
        let d = TxDescriptor {
            addr: 0x1122_3344_5566_7788,
            len: 1434,
            bypass: true,
            sa_index: 7,
        };
        let b = d.encode();
        assert_eq!(&b[..8], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&b[8..10], &1434u16.to_le_bytes());
        assert_eq!(b[10], 1);
        assert_eq!(&b[12..16], &7u32.to_le_bytes());
        assert_eq!(TxDescriptor::decode(&b), d);
    }

    #[test]
    fn rx_completion_round_trip_with_phase_in_last_byte() {
        let c = RxCompletion {
            seq: 1 << 33 | 5,
            sa_index: 3,
            spi: 0x1001,
            len: 1500,
            desc_index: 9,
            status: Status::Replay,
            decapsulated: false,
            inner_ipv6: true,
            udp_encap: true,
            truncated: false,
            wire_len: 1560,
            phase: true,
        };
        let b = c.encode();
        assert!(phase_of(&b));
        assert_eq!(b[31], 0x80);
        assert_eq!(RxCompletion::decode(&b), c);
        let t = TxCompletion {
            seq: 42,
            sa_index: 1,
            desc_index: 2,
            status: Status::Ok,
            phase: false,
        };
        assert!(!phase_of(&t.encode()));
        assert_eq!(TxCompletion::decode(&t.encode()), t);
    }

    #[test]
    fn phase_alternates_per_pass() {
        assert!(phase_for(0, 4));
        assert!(phase_for(15, 4));
        assert!(!phase_for(16, 4));
        assert!(phase_for(32, 4));
    }
}
