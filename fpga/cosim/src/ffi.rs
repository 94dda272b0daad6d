//! The C ABI of the verilated simulation (csrc/shim.cpp). The only module of this crate
//! with `unsafe`: each call passes a live handle and pointers to `#[repr(C)]` values that
//! outlive the call.
#![allow(unsafe_code)]

use std::ptr::NonNull;

#[repr(C)]
pub(crate) struct SimRaw {
    _private: [u8; 0],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AesIn {
    pub valid: u8,
    pub is256: u8,
    pub block: [u8; 16],
    pub key: [u8; 32],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AesOut {
    pub valid: u8,
    pub block: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GcmIn {
    pub valid: u8,
    pub kind: u8,
    pub is256: u8,
    pub has_aad: u8,
    pub vbytes: u8,
    pub decrypt: u8,
    pub last: u8,
    pub ctr: [u8; 16],
    pub key: [u8; 32],
    pub data: [u8; 16],
    pub lenblk: [u8; 16],
    pub user: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GcmOut {
    pub text_valid: u8,
    pub text_vbytes: u8,
    pub tag_valid: u8,
    pub text: [u8; 16],
    pub tag: [u8; 16],
    pub text_user: u32,
    pub tag_user: u32,
}

unsafe extern "C" {
    fn espo_rtl_new() -> *mut SimRaw;
    fn espo_rtl_free(s: *mut SimRaw);
    fn espo_rtl_reset(s: *mut SimRaw);
    fn espo_rtl_cycle(s: *const SimRaw) -> u64;
    fn espo_rtl_aes_step(s: *mut SimRaw, input: *const AesIn, out: *mut AesOut);
    fn espo_rtl_gcm_step(s: *mut SimRaw, input: *const GcmIn, out: *mut GcmOut);
}

/// An owned verilated simulation; freed on drop.
#[derive(Debug)]
pub(crate) struct Sim {
    raw: NonNull<SimRaw>,
}

impl Sim {
    pub fn new() -> Sim {
        // SAFETY: espo_rtl_new has no preconditions and returns a heap object (never null:
        // C++ `new` throws rather than returning null, which aborts across the C ABI).
        let raw = unsafe { espo_rtl_new() };
        let raw = NonNull::new(raw).unwrap_or_else(|| std::process::abort());
        let mut s = Sim { raw };
        s.reset();
        s
    }

    pub fn reset(&mut self) {
        // SAFETY: self.raw is the live handle from espo_rtl_new.
        unsafe { espo_rtl_reset(self.raw.as_ptr()) }
    }

    pub fn cycle(&self) -> u64 {
        // SAFETY: self.raw is the live handle from espo_rtl_new.
        unsafe { espo_rtl_cycle(self.raw.as_ptr()) }
    }

    pub fn aes_step(&mut self, input: &AesIn) -> AesOut {
        let mut out = AesOut::default();
        // SAFETY: live handle; `input` and `out` are valid for the duration of the call.
        unsafe { espo_rtl_aes_step(self.raw.as_ptr(), input, &mut out) };
        out
    }

    pub fn gcm_step(&mut self, input: &GcmIn) -> GcmOut {
        let mut out = GcmOut::default();
        // SAFETY: live handle; `input` and `out` are valid for the duration of the call.
        unsafe { espo_rtl_gcm_step(self.raw.as_ptr(), input, &mut out) };
        out
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        // SAFETY: the handle is live and dropped once; nothing uses it afterwards.
        unsafe { espo_rtl_free(self.raw.as_ptr()) }
    }
}

// SAFETY: the simulation is a plain heap object with no thread affinity; a `Sim` is used
// by one thread at a time (`&mut self` for every step).
unsafe impl Send for Sim {}
