//! The SA table entry written by SA_WRITE and the SA state exported by SA_READ and
//! SA_INVALIDATE (datasheet §8.4, §8.5). Integers are little-endian; addresses are in
//! network byte order (an IPv4 address fills the first 4 bytes, the rest is 0).

use crate::codes::{AlgId, DfMode};
use crate::layout::{Layout, LayoutField as F, field_at, layout_is_valid};
use std::fmt;

/// SA_ENTRY (128 bytes) field layout.
pub mod sa_entry {
    use super::*;
    pub const OUTBOUND: F = F::new(
        "OUTBOUND",
        0,
        1,
        "1: outbound (encapsulate), 0: inbound (decapsulate).",
    );
    pub const OUTER_IPV6: F = F::new(
        "OUTER_IPV6",
        1,
        1,
        "Outer header is IPv6 (addresses are 16 bytes).",
    );
    pub const ESN: F = F::new("ESN", 2, 1, "64-bit extended sequence numbers.");
    pub const UDP_ENCAP: F = F::new(
        "UDP_ENCAP",
        3,
        1,
        "ESP in UDP (RFC 3948) with the ports below.",
    );
    pub const DF_MODE: F = F::new(
        "DF_MODE",
        4,
        2,
        "Outbound, outer IPv4: DF bit, DfMode (0 copy, 1 set, 2 clear; 3 refused).",
    );
    pub const RSVD0: F = F::new("RSVD0", 6, 2, "Reserved, 0.");
    pub const RSVD1: F = F::new("RSVD1", 8, 24, "Reserved, 0.");
    pub const SPI: F = F::new("SPI", 32, 32, "SPI (numeric value).");
    pub const ALG: F = F::new("ALG", 64, 8, "AlgId.");
    pub const TTL: F = F::new("TTL", 72, 8, "Outer TTL / hop limit; 0 means 64.");
    pub const RX_QUEUE: F = F::new(
        "RX_QUEUE",
        80,
        16,
        "Inbound: queue pair that receives the decapsulated packets.",
    );
    pub const REPLAY_WINDOW: F = F::new(
        "REPLAY_WINDOW",
        96,
        32,
        "Inbound: anti-replay window, packets; 0 disables.",
    );
    pub const KEY: F = F::new(
        "KEY",
        128,
        256,
        "AES key: 16 bytes (AES-GCM-128, rest 0) or 32 bytes.",
    );
    pub const SALT: F = F::new(
        "SALT",
        384,
        32,
        "RFC 4106 salt (the 4 bytes after the key).",
    );
    pub const UDP_SRC_PORT: F = F::new(
        "UDP_SRC_PORT",
        416,
        16,
        "UDP source port (outbound, UDP_ENCAP).",
    );
    pub const UDP_DST_PORT: F = F::new(
        "UDP_DST_PORT",
        432,
        16,
        "UDP destination port (outbound, UDP_ENCAP).",
    );
    pub const SRC_ADDR: F = F::new(
        "SRC_ADDR",
        448,
        128,
        "Outer source address (tunnel local end for outbound).",
    );
    pub const DST_ADDR: F = F::new(
        "DST_ADDR",
        576,
        128,
        "Outer destination address (inbound: matched with the SPI).",
    );
    pub const SEQ: F = F::new(
        "SEQ",
        704,
        64,
        "Outbound: last sequence number used; the next packet carries SEQ + 1.",
    );
    pub const SOFT_BYTES: F = F::new("SOFT_BYTES", 768, 64, "Soft byte lifetime, 0: none.");
    pub const HARD_BYTES: F = F::new("HARD_BYTES", 832, 64, "Hard byte lifetime, 0: none.");
    pub const SOFT_PACKETS: F = F::new("SOFT_PACKETS", 896, 64, "Soft packet lifetime, 0: none.");
    pub const HARD_PACKETS: F = F::new("HARD_PACKETS", 960, 64, "Hard packet lifetime, 0: none.");
    pub const LAYOUT: Layout = Layout {
        name: "SA_ENTRY",
        size_bytes: 128,
        fields: &[
            OUTBOUND,
            OUTER_IPV6,
            ESN,
            UDP_ENCAP,
            DF_MODE,
            RSVD0,
            RSVD1,
            SPI,
            ALG,
            TTL,
            RX_QUEUE,
            REPLAY_WINDOW,
            KEY,
            SALT,
            UDP_SRC_PORT,
            UDP_DST_PORT,
            SRC_ADDR,
            DST_ADDR,
            SEQ,
            SOFT_BYTES,
            HARD_BYTES,
            SOFT_PACKETS,
            HARD_PACKETS,
        ],
        doc: "SA table entry.",
    };
    const _: () = assert!(
        layout_is_valid(&LAYOUT) && field_at(&KEY, 128, 256) && field_at(&HARD_PACKETS, 960, 64)
    );
}

/// SA_STATE (576 bytes) field layout.
pub mod sa_state {
    use super::*;
    pub const SEQ: F = F::new(
        "SEQ",
        0,
        64,
        "Outbound: last sequence number used (64 bits incl. ESN high half). Inbound: highest authenticated sequence number.",
    );
    pub const BYTES: F = F::new("BYTES", 64, 64, "Inner-packet bytes processed.");
    pub const PACKETS: F = F::new("PACKETS", 128, 64, "Packets processed.");
    pub const REPLAY_DROPS: F = F::new(
        "REPLAY_DROPS",
        192,
        32,
        "Inbound: packets refused by the replay window.",
    );
    pub const ICV_FAILURES: F = F::new("ICV_FAILURES", 224, 32, "Inbound: ICV failures.");
    pub const VALID: F = F::new("VALID", 256, 1, "The entry is valid.");
    pub const SOFT_EXPIRED: F = F::new("SOFT_EXPIRED", 257, 1, "Soft lifetime crossed.");
    pub const HARD_EXPIRED: F = F::new(
        "HARD_EXPIRED",
        258,
        1,
        "Hard lifetime reached; the SA processes nothing.",
    );
    pub const SEQ_EXHAUSTED: F = F::new(
        "SEQ_EXHAUSTED",
        259,
        1,
        "Outbound: last sequence number sent.",
    );
    pub const RSVD0: F = F::new("RSVD0", 260, 4, "Reserved, 0.");
    pub const RSVD1: F = F::new("RSVD1", 264, 24, "Reserved, 0.");
    pub const WINDOW: F = F::new("WINDOW", 288, 32, "Inbound: replay window size, packets.");
    pub const RSVD2: F = F::new("RSVD2", 320, 192, "Reserved, 0.");
    pub const BITMAP: F = F::new(
        "BITMAP",
        512,
        4096,
        "Inbound: bit i (byte i/8, bit i%8) set when SEQ - i was received, for i < WINDOW.",
    );
    pub const LAYOUT: Layout = Layout {
        name: "SA_STATE",
        size_bytes: 576,
        fields: &[
            SEQ,
            BYTES,
            PACKETS,
            REPLAY_DROPS,
            ICV_FAILURES,
            VALID,
            SOFT_EXPIRED,
            HARD_EXPIRED,
            SEQ_EXHAUSTED,
            RSVD0,
            RSVD1,
            WINDOW,
            RSVD2,
            BITMAP,
        ],
        doc: "SA state for read-back, export and import.",
    };
    const _: () = assert!(layout_is_valid(&LAYOUT) && field_at(&BITMAP, 512, 4096));
}

/// An SA table entry. Key bytes are cleared on drop and never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SaEntry {
    pub outbound: bool,
    pub outer_ipv6: bool,
    pub esn: bool,
    pub udp_encap: bool,
    pub df_mode: DfMode,
    pub spi: u32,
    pub alg: Option<AlgId>,
    pub ttl: u8,
    pub rx_queue: u16,
    pub replay_window: u32,
    pub key: [u8; 32],
    pub salt: [u8; 4],
    pub udp_src_port: u16,
    pub udp_dst_port: u16,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub seq: u64,
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_packets: u64,
    pub hard_packets: u64,
}

impl SaEntry {
    pub const SIZE: usize = 128;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        use sa_entry::*;
        let mut b = [0u8; Self::SIZE];
        OUTBOUND.put_flag(&mut b, self.outbound);
        OUTER_IPV6.put_flag(&mut b, self.outer_ipv6);
        ESN.put_flag(&mut b, self.esn);
        UDP_ENCAP.put_flag(&mut b, self.udp_encap);
        DF_MODE.put(&mut b, self.df_mode.value().into());
        SPI.put(&mut b, self.spi.into());
        ALG.put(&mut b, self.alg.map_or(0, |a| a.value()).into());
        TTL.put(&mut b, self.ttl.into());
        RX_QUEUE.put(&mut b, self.rx_queue.into());
        REPLAY_WINDOW.put(&mut b, self.replay_window.into());
        KEY.put_bytes(&mut b, &self.key);
        SALT.put_bytes(&mut b, &self.salt);
        UDP_SRC_PORT.put(&mut b, self.udp_src_port.into());
        UDP_DST_PORT.put(&mut b, self.udp_dst_port.into());
        SRC_ADDR.put_bytes(&mut b, &self.src_addr);
        DST_ADDR.put_bytes(&mut b, &self.dst_addr);
        SEQ.put(&mut b, self.seq);
        SOFT_BYTES.put(&mut b, self.soft_bytes);
        HARD_BYTES.put(&mut b, self.hard_bytes);
        SOFT_PACKETS.put(&mut b, self.soft_packets);
        HARD_PACKETS.put(&mut b, self.hard_packets);
        b
    }

    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        use sa_entry::*;
        let mut e = SaEntry {
            outbound: OUTBOUND.is_set(b),
            outer_ipv6: OUTER_IPV6.is_set(b),
            esn: ESN.is_set(b),
            udp_encap: UDP_ENCAP.is_set(b),
            df_mode: DfMode::from_value(DF_MODE.get(b) as u8),
            spi: SPI.get(b) as u32,
            alg: match ALG.get(b) as u8 {
                0 => None,
                v => Some(AlgId::from_value(v)),
            },
            ttl: TTL.get(b) as u8,
            rx_queue: RX_QUEUE.get(b) as u16,
            replay_window: REPLAY_WINDOW.get(b) as u32,
            udp_src_port: UDP_SRC_PORT.get(b) as u16,
            udp_dst_port: UDP_DST_PORT.get(b) as u16,
            seq: SEQ.get(b),
            soft_bytes: SOFT_BYTES.get(b),
            hard_bytes: HARD_BYTES.get(b),
            soft_packets: SOFT_PACKETS.get(b),
            hard_packets: HARD_PACKETS.get(b),
            ..SaEntry::default()
        };
        e.key.copy_from_slice(KEY.bytes(b));
        e.salt.copy_from_slice(SALT.bytes(b));
        e.src_addr.copy_from_slice(SRC_ADDR.bytes(b));
        e.dst_addr.copy_from_slice(DST_ADDR.bytes(b));
        e
    }

    /// Bytes of the key the algorithm uses (0 for algorithms without an AES key).
    pub fn key_len(&self) -> usize {
        match self.alg {
            Some(AlgId::AesGcm128) | Some(AlgId::AesCbc128) => 16,
            Some(AlgId::AesGcm256) | Some(AlgId::AesCbc256) | Some(AlgId::Chacha20Poly1305) => 32,
            _ => 0,
        }
    }
}

impl Drop for SaEntry {
    fn drop(&mut self) {
        wipe(&mut self.key);
        wipe(&mut self.salt);
    }
}

/// Overwrites key material; the fence and `black_box` keep the stores from being elided.
pub fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        *b = 0;
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    std::hint::black_box(bytes);
}

impl fmt::Debug for SaEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaEntry")
            .field("outbound", &self.outbound)
            .field("outer_ipv6", &self.outer_ipv6)
            .field("esn", &self.esn)
            .field("udp_encap", &self.udp_encap)
            .field("df_mode", &self.df_mode)
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("alg", &self.alg)
            .field("ttl", &self.ttl)
            .field("rx_queue", &self.rx_queue)
            .field("replay_window", &self.replay_window)
            .field("key", &"<redacted>")
            .field("udp_ports", &(self.udp_src_port, self.udp_dst_port))
            .field("src_addr", &self.src_addr)
            .field("dst_addr", &self.dst_addr)
            .field("seq", &self.seq)
            .field("lifetime_bytes", &(self.soft_bytes, self.hard_bytes))
            .field("lifetime_packets", &(self.soft_packets, self.hard_packets))
            .finish()
    }
}

/// SA state as read back, exported or imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaState {
    pub seq: u64,
    pub bytes: u64,
    pub packets: u64,
    pub replay_drops: u32,
    pub icv_failures: u32,
    pub valid: bool,
    pub soft_expired: bool,
    pub hard_expired: bool,
    pub seq_exhausted: bool,
    pub window: u32,
    /// Bit i set: `seq - i` was received.
    pub bitmap: [u8; 512],
}

impl Default for SaState {
    fn default() -> Self {
        SaState {
            seq: 0,
            bytes: 0,
            packets: 0,
            replay_drops: 0,
            icv_failures: 0,
            valid: false,
            soft_expired: false,
            hard_expired: false,
            seq_exhausted: false,
            window: 0,
            bitmap: [0; 512],
        }
    }
}

impl SaState {
    pub const SIZE: usize = 576;

    pub fn encode(&self) -> [u8; Self::SIZE] {
        use sa_state::*;
        let mut b = [0u8; Self::SIZE];
        SEQ.put(&mut b, self.seq);
        BYTES.put(&mut b, self.bytes);
        PACKETS.put(&mut b, self.packets);
        REPLAY_DROPS.put(&mut b, self.replay_drops.into());
        ICV_FAILURES.put(&mut b, self.icv_failures.into());
        VALID.put_flag(&mut b, self.valid);
        SOFT_EXPIRED.put_flag(&mut b, self.soft_expired);
        HARD_EXPIRED.put_flag(&mut b, self.hard_expired);
        SEQ_EXHAUSTED.put_flag(&mut b, self.seq_exhausted);
        WINDOW.put(&mut b, self.window.into());
        BITMAP.put_bytes(&mut b, &self.bitmap);
        b
    }

    pub fn decode(b: &[u8; Self::SIZE]) -> Self {
        use sa_state::*;
        let mut s = SaState {
            seq: SEQ.get(b),
            bytes: BYTES.get(b),
            packets: PACKETS.get(b),
            replay_drops: REPLAY_DROPS.get(b) as u32,
            icv_failures: ICV_FAILURES.get(b) as u32,
            valid: VALID.is_set(b),
            soft_expired: SOFT_EXPIRED.is_set(b),
            hard_expired: HARD_EXPIRED.is_set(b),
            seq_exhausted: SEQ_EXHAUSTED.is_set(b),
            window: WINDOW.get(b) as u32,
            bitmap: [0; 512],
        };
        s.bitmap.copy_from_slice(BITMAP.bytes(b));
        s
    }

    /// Whether `seq - offset` is marked received.
    pub fn received(&self, offset: u32) -> bool {
        self.bitmap
            .get((offset / 8) as usize)
            .is_some_and(|b| b & (1 << (offset % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sa_entry_round_trip_and_debug_redacts_key() {
        let mut e = SaEntry {
            outbound: true,
            esn: true,
            udp_encap: true,
            df_mode: DfMode::Clear,
            spi: 0x1001,
            alg: Some(AlgId::AesGcm256),
            ttl: 32,
            replay_window: 1024,
            udp_src_port: 4500,
            udp_dst_port: 4501,
            seq: 0xFFFF_FFFF,
            hard_packets: 10,
            ..SaEntry::default()
        };
        e.key = [0x5A; 32];
        e.salt = [1, 2, 3, 4];
        e.src_addr[..4].copy_from_slice(&[192, 0, 2, 1]);
        let b = e.encode();
        assert_eq!(b[0], 0b10_1101, "flags and DF_MODE in the first byte");
        assert_eq!(&b[4..8], &0x1001u32.to_le_bytes());
        assert_eq!(&b[16..48], &[0x5A; 32]);
        assert_eq!(&b[48..52], &[1, 2, 3, 4]);
        assert_eq!(&b[56..60], &[192, 0, 2, 1]);
        assert_eq!(SaEntry::decode(&b), e);
        let dbg = format!("{e:?}");
        assert!(dbg.contains("redacted") && !dbg.contains("90, 90"));
    }

    #[test]
    fn sa_state_round_trip() {
        let mut s = SaState {
            seq: (1 << 32) + 7,
            window: 128,
            valid: true,
            hard_expired: true,
            ..SaState::default()
        };
        s.bitmap[0] = 0b101;
        s.bitmap[511] = 0x80;
        let b = s.encode();
        assert_eq!(b.len(), 576);
        assert_eq!(b[64], 0b101);
        let d = SaState::decode(&b);
        assert_eq!(d, s);
        assert!(
            d.received(0)
                && !d.received(1)
                && d.received(2)
                && d.received(4095)
                && !d.received(4096)
        );
    }
}
