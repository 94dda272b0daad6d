//! The card's SA table: entries as the datapath holds them (expanded AES key schedule,
//! replay window, counters) and the inbound lookup by SPI and destination (datasheet §8.4).

use crate::replay::ReplayWindow;
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use espo_fpga::regs::cap::{REPLAY_WINDOW_MAX_PACKETS, features};
use espo_fpga::{AlgId, DfMode, EventCode, SaEntry, SaState, Status};
use std::collections::HashMap;

/// The AES-GCM engine's key for one SA.
pub(crate) enum Cipher {
    Gcm128(Box<Aes128Gcm>),
    Gcm256(Box<Aes256Gcm>),
}

impl Cipher {
    /// Encrypts `buf` in place and returns the 16-byte ICV.
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Option<[u8; 16]> {
        let n = aes_gcm::Nonce::from(*nonce);
        let tag = match self {
            Cipher::Gcm128(c) => c.encrypt_inout_detached(&n, aad, buf.into()),
            Cipher::Gcm256(c) => c.encrypt_inout_detached(&n, aad, buf.into()),
        };
        tag.ok().map(Into::into)
    }

    /// Verifies the ICV and decrypts `buf` in place; `false` when the ICV is wrong.
    pub fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], icv: &[u8]) -> bool {
        if icv.len() != 16 {
            return false;
        }
        let n = aes_gcm::Nonce::from(*nonce);
        let Ok(t) = aes_gcm::Tag::try_from(icv) else {
            return false;
        };
        match self {
            Cipher::Gcm128(c) => c.decrypt_inout_detached(&n, aad, buf.into(), &t).is_ok(),
            Cipher::Gcm256(c) => c.decrypt_inout_detached(&n, aad, buf.into(), &t).is_ok(),
        }
    }
}

/// Events an SA raised while processing one packet (at most soft, hard, and exhaustion).
pub(crate) type SaEvents = [Option<(EventCode, u8)>; 3];

pub(crate) struct SaSlot {
    pub outbound: bool,
    pub outer_ipv6: bool,
    pub esn: bool,
    pub udp_encap: bool,
    pub df_mode: DfMode,
    pub spi: u32,
    pub ttl: u8,
    pub rx_queue: u16,
    pub salt: [u8; 4],
    pub udp_src_port: u16,
    pub udp_dst_port: u16,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub cipher: Cipher,
    /// Outbound: last sequence number used.
    pub seq: u64,
    /// Outbound: the sequence number it was written (or its state imported) with.
    pub written_seq: u64,
    pub replay: ReplayWindow,
    pub bytes: u64,
    pub packets: u64,
    pub replay_drops: u32,
    pub icv_failures: u32,
    pub soft_bytes: u64,
    pub hard_bytes: u64,
    pub soft_packets: u64,
    pub hard_packets: u64,
    pub soft_expired: bool,
    pub hard_expired: bool,
    pub seq_exhausted: bool,
}

impl SaSlot {
    /// Builds an entry from SA_WRITE data, refusing what the card or the enabled
    /// features cannot do (datasheet §8.4).
    pub fn from_entry(e: &SaEntry, enabled_features: u64) -> Result<SaSlot, Status> {
        let on = |f: espo_fpga::Field| f.is_set(enabled_features);
        let cipher = match e.alg {
            Some(AlgId::AesGcm128) => Cipher::Gcm128(Box::new(
                Aes128Gcm::new_from_slice(e.key.get(..16).unwrap_or(&[]))
                    .map_err(|_| Status::InvalidField)?,
            )),
            Some(AlgId::AesGcm256) => Cipher::Gcm256(Box::new(
                Aes256Gcm::new_from_slice(&e.key).map_err(|_| Status::InvalidField)?,
            )),
            _ => return Err(Status::AlgUnsupported),
        };
        let needs = [
            (e.outer_ipv6, features::OUTER_IPV6),
            (!e.outer_ipv6, features::OUTER_IPV4),
            (e.esn, features::ESN),
            (e.udp_encap, features::UDP_ENCAP),
            (!e.outbound && e.replay_window > 0, features::ANTI_REPLAY),
            (
                e.soft_bytes | e.hard_bytes | e.soft_packets | e.hard_packets != 0,
                features::LIFETIMES,
            ),
        ];
        if needs.iter().any(|&(needed, f)| needed && !on(f)) {
            return Err(Status::FeatureNotEnabled);
        }
        if e.replay_window > REPLAY_WINDOW_MAX_PACKETS
            || (!e.esn && e.seq > u64::from(u32::MAX))
            || e.spi == 0
            || matches!(e.df_mode, DfMode::Unknown(_))
        {
            return Err(Status::InvalidField);
        }
        Ok(SaSlot {
            outbound: e.outbound,
            outer_ipv6: e.outer_ipv6,
            esn: e.esn,
            udp_encap: e.udp_encap,
            df_mode: e.df_mode,
            spi: e.spi,
            ttl: if e.ttl == 0 { 64 } else { e.ttl },
            rx_queue: e.rx_queue,
            salt: e.salt,
            udp_src_port: e.udp_src_port,
            udp_dst_port: e.udp_dst_port,
            src: e.src_addr,
            dst: if e.outer_ipv6 {
                e.dst_addr
            } else {
                v4_only(e.dst_addr)
            },
            cipher,
            seq: e.seq,
            written_seq: e.seq,
            replay: ReplayWindow::new(if e.outbound { 0 } else { e.replay_window }),
            bytes: 0,
            packets: 0,
            replay_drops: 0,
            icv_failures: 0,
            soft_bytes: e.soft_bytes,
            hard_bytes: e.hard_bytes,
            soft_packets: e.soft_packets,
            hard_packets: e.hard_packets,
            soft_expired: false,
            hard_expired: false,
            seq_exhausted: e.esn && e.seq == u64::MAX || !e.esn && e.seq == u64::from(u32::MAX),
        })
    }

    /// Last usable sequence number.
    pub fn seq_limit(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    /// Counts one packet of `bytes` inner bytes; returns the lifetime events it raised.
    pub fn account(&mut self, bytes: u64) -> SaEvents {
        self.packets += 1;
        self.bytes += bytes;
        let mut ev: SaEvents = [None; 3];
        let crossed = |limit: u64, value: u64| limit != 0 && value >= limit;
        let soft = u8::from(crossed(self.soft_bytes, self.bytes))
            | u8::from(crossed(self.soft_packets, self.packets)) << 1;
        if soft != 0 && !self.soft_expired {
            self.soft_expired = true;
            ev[0] = Some((EventCode::LifetimeSoft, soft));
        }
        let hard = u8::from(crossed(self.hard_bytes, self.bytes))
            | u8::from(crossed(self.hard_packets, self.packets)) << 1;
        if hard != 0 && !self.hard_expired {
            self.hard_expired = true;
            ev[1] = Some((EventCode::LifetimeHard, hard));
        }
        ev
    }

    /// The SA_STATE image of this entry.
    pub fn state(&self) -> SaState {
        let mut s = SaState {
            seq: if self.outbound {
                self.seq
            } else {
                self.replay.top()
            },
            bytes: self.bytes,
            packets: self.packets,
            replay_drops: self.replay_drops,
            icv_failures: self.icv_failures,
            valid: true,
            soft_expired: self.soft_expired,
            hard_expired: self.hard_expired,
            seq_exhausted: self.seq_exhausted,
            window: self.replay.size(),
            ..SaState::default()
        };
        self.replay.export(&mut s.bitmap);
        s
    }

    /// Imports SA_STATE (SA_WRITE with STATE): counters, flags, sequence and window.
    pub fn import(&mut self, s: &SaState) {
        self.bytes = s.bytes;
        self.packets = s.packets;
        self.replay_drops = s.replay_drops;
        self.icv_failures = s.icv_failures;
        self.soft_expired = s.soft_expired;
        self.hard_expired = s.hard_expired;
        if self.outbound {
            self.seq = s.seq;
            self.written_seq = s.seq;
            self.seq_exhausted = s.seq_exhausted || s.seq >= self.seq_limit();
        } else {
            self.replay.import(s.seq, &s.bitmap);
        }
    }
}

fn v4_only(mut a: [u8; 16]) -> [u8; 16] {
    a[4..].iter_mut().for_each(|b| *b = 0);
    a
}

/// The SA table and its inbound index.
pub(crate) struct SaTable {
    slots: Vec<Option<Box<SaSlot>>>,
    inbound: HashMap<(u32, [u8; 16]), u32>,
}

impl SaTable {
    pub fn new(entries: usize) -> Self {
        SaTable {
            slots: (0..entries).map(|_| None).collect(),
            inbound: HashMap::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn get(&self, index: u32) -> Option<&SaSlot> {
        self.slots.get(index as usize)?.as_deref()
    }

    pub fn get_mut(&mut self, index: u32) -> Option<&mut SaSlot> {
        self.slots.get_mut(index as usize)?.as_deref_mut()
    }

    /// The inbound SA for an SPI and outer destination.
    pub fn lookup(&self, spi: u32, dst: &[u8; 16]) -> Option<u32> {
        self.inbound.get(&(spi, *dst)).copied()
    }

    /// Installs `slot` at `index` (replacing what was there). Fails when another index
    /// already holds an inbound SA with the same SPI and destination.
    pub fn install(&mut self, index: u32, slot: SaSlot) -> Result<(), Status> {
        let key = (slot.spi, slot.dst);
        if !slot.outbound && self.inbound.get(&key).is_some_and(|&i| i != index) {
            return Err(Status::InvalidField);
        }
        if index as usize >= self.slots.len() {
            return Err(Status::InvalidSaIndex);
        }
        self.remove(index);
        if !slot.outbound {
            self.inbound.insert(key, index);
        }
        if let Some(s) = self.slots.get_mut(index as usize) {
            *s = Some(Box::new(slot));
        }
        Ok(())
    }

    /// Invalidates `index`; returns the entry that was there.
    pub fn remove(&mut self, index: u32) -> Option<Box<SaSlot>> {
        let old = self.slots.get_mut(index as usize)?.take()?;
        if !old.outbound {
            self.inbound.remove(&(old.spi, old.dst));
        }
        Some(old)
    }

    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.inbound.clear();
    }
}
