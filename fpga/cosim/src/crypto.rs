//! Benches of the crypto units: the standalone AES pipeline and GCM unit of
//! espo_cosim_top, fed one slot per cycle exactly as the ESP core feeds them.

use crate::ffi::{AesIn, GcmIn, GcmOut};
use crate::{Rtl, RtlError};

/// Slot kinds of the espo_gcm issue interface (fpga/rtl/espo_gcm_pkg.sv).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GcmKind {
    H = 0,
    J0 = 1,
    Aad = 2,
    Text = 3,
}

/// Cycles to wait for a pipeline's results after the last input (latency plus slack).
const DRAIN_CYCLES: u64 = 64;

fn key_slot(key: &[u8]) -> Result<([u8; 32], u8), RtlError> {
    let mut k = [0u8; 32];
    match key.len() {
        16 => {
            k[..16].copy_from_slice(key);
            Ok((k, 0))
        }
        32 => {
            k.copy_from_slice(key);
            Ok((k, 1))
        }
        n => Err(RtlError::KeyLength(n)),
    }
}

fn block_of(chunk: &[u8]) -> [u8; 16] {
    let mut b = [0u8; 16];
    let n = chunk.len().min(16);
    b[..n].copy_from_slice(&chunk[..n]);
    b
}

/// The 16-byte counter block IV || counter (big-endian).
fn counter_block(iv: &[u8; 12], counter: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..12].copy_from_slice(iv);
    b[12..].copy_from_slice(&counter.to_be_bytes());
    b
}

/// Output of one GCM message through the RTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcmResult {
    /// Ciphertext (sealing) or plaintext (opening).
    pub text: Vec<u8>,
    /// The tag the RTL computed (over the ciphertext).
    pub tag: [u8; 16],
    /// Cycles from the first slot to the tag.
    pub cycles: u64,
}

impl Rtl {
    /// Encrypts `blocks` with AES (FIPS-197) on the AES pipeline, one block per cycle.
    pub fn aes_encrypt(
        &mut self,
        key: &[u8],
        blocks: &[[u8; 16]],
    ) -> Result<Vec<[u8; 16]>, RtlError> {
        let (key, is256) = key_slot(key)?;
        let mut out = Vec::with_capacity(blocks.len());
        let collect = |o: crate::ffi::AesOut, out: &mut Vec<[u8; 16]>| {
            if o.valid != 0 {
                out.push(o.block);
            }
        };
        for b in blocks {
            let o = self.sim.aes_step(&AesIn {
                valid: 1,
                is256,
                block: *b,
                key,
            });
            collect(o, &mut out);
        }
        let idle = AesIn::default();
        let mut waited = 0;
        while out.len() < blocks.len() {
            if waited == DRAIN_CYCLES {
                return Err(RtlError::Timeout(DRAIN_CYCLES));
            }
            let o = self.sim.aes_step(&idle);
            collect(o, &mut out);
            waited += 1;
        }
        Ok(out)
    }

    /// AES-GCM encryption with a 96-bit IV: (ciphertext, tag).
    pub fn gcm_seal(
        &mut self,
        key: &[u8],
        iv: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<GcmResult, RtlError> {
        self.gcm(key, iv, aad, plaintext, false)
    }

    /// AES-GCM decryption with a 96-bit IV: the plaintext and the tag computed over the
    /// ciphertext, which the caller compares with the received one.
    pub fn gcm_open(
        &mut self,
        key: &[u8],
        iv: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<GcmResult, RtlError> {
        self.gcm(key, iv, aad, ciphertext, true)
    }

    fn gcm(
        &mut self,
        key: &[u8],
        iv: &[u8; 12],
        aad: &[u8],
        text: &[u8],
        decrypt: bool,
    ) -> Result<GcmResult, RtlError> {
        let (key, is256) = key_slot(key)?;
        let base = GcmIn {
            valid: 1,
            is256,
            key,
            decrypt: u8::from(decrypt),
            ..GcmIn::default()
        };
        let mut slots = vec![
            GcmIn {
                kind: GcmKind::H as u8,
                ..base
            },
            GcmIn {
                kind: GcmKind::J0 as u8,
                ctr: counter_block(iv, 1),
                has_aad: u8::from(!aad.is_empty()),
                data: block_of(aad),
                ..base
            },
        ];
        for chunk in aad.chunks(16).skip(1) {
            slots.push(GcmIn {
                kind: GcmKind::Aad as u8,
                data: block_of(chunk),
                ..base
            });
        }
        for (j, chunk) in text.chunks(16).enumerate() {
            slots.push(GcmIn {
                kind: GcmKind::Text as u8,
                ctr: counter_block(iv, 2u32.wrapping_add(j as u32)),
                data: block_of(chunk),
                vbytes: chunk.len() as u8,
                ..base
            });
        }
        let mut lenblk = [0u8; 16];
        lenblk[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lenblk[8..].copy_from_slice(&(text.len() as u64 * 8).to_be_bytes());
        if let Some(last) = slots.last_mut() {
            last.last = 1;
            last.lenblk = lenblk;
        }

        let start = self.sim.cycle();
        let mut result = Vec::with_capacity(text.len());
        let mut tag = None;
        let take = |o: GcmOut, result: &mut Vec<u8>, tag: &mut Option<[u8; 16]>| {
            if o.text_valid != 0 {
                result.extend_from_slice(&o.text[..usize::from(o.text_vbytes.min(16))]);
            }
            if o.tag_valid != 0 {
                *tag = Some(o.tag);
            }
        };
        for s in &slots {
            let o = self.sim.gcm_step(s);
            take(o, &mut result, &mut tag);
        }
        let idle = GcmIn::default();
        let mut waited = 0;
        while tag.is_none() {
            if waited == DRAIN_CYCLES {
                return Err(RtlError::Timeout(DRAIN_CYCLES));
            }
            let o = self.sim.gcm_step(&idle);
            take(o, &mut result, &mut tag);
            waited += 1;
        }
        let cycles = self.sim.cycle() - start;
        Ok(GcmResult {
            text: result,
            tag: tag.unwrap_or_default(),
            cycles,
        })
    }
}
