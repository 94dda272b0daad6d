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

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CoreOut {
    pub status: u8,
    pub flags: u8,
    pub aux: u8,
    pub dropped: u8,
    pub seq: u64,
    pub sa_index: u32,
    pub spi: u32,
    pub in_first: u64,
    pub in_last: u64,
    pub out_first: u64,
    pub out_last: u64,
    pub len: u64,
}

unsafe extern "C" {
    fn espo_rtl_new() -> *mut SimRaw;
    fn espo_rtl_free(s: *mut SimRaw);
    fn espo_rtl_reset(s: *mut SimRaw);
    fn espo_rtl_cycle(s: *const SimRaw) -> u64;
    fn espo_rtl_aes_step(s: *mut SimRaw, input: *const AesIn, out: *mut AesOut);
    fn espo_rtl_gcm_step(s: *mut SimRaw, input: *const GcmIn, out: *mut GcmOut);
    fn espo_rtl_set_natt_port(s: *mut SimRaw, port: u16);
    fn espo_rtl_reg_write(s: *mut SimRaw, addr: u32, data: u32);
    fn espo_rtl_reg_read(s: *mut SimRaw, addr: u32) -> u32;
    fn espo_rtl_reg_wait(s: *mut SimRaw, phase_addr: u32, max_cycles: u64) -> i32;
    fn espo_rtl_push(
        s: *mut SimRaw,
        data: *const u8,
        len: usize,
        outbound: u8,
        bypass: u8,
        sa_index: u32,
    );
    fn espo_rtl_run(s: *mut SimRaw, max_cycles: u64) -> i32;
    fn espo_rtl_pop(s: *mut SimRaw, buf: *mut u8, cap: usize, out: *mut CoreOut) -> i32;
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

impl Sim {
    pub fn set_natt_port(&mut self, port: u16) {
        // SAFETY: live handle.
        unsafe { espo_rtl_set_natt_port(self.raw.as_ptr(), port) }
    }

    pub fn reg_write(&mut self, addr: u32, data: u32) {
        // SAFETY: live handle.
        unsafe { espo_rtl_reg_write(self.raw.as_ptr(), addr, data) }
    }

    pub fn reg_read(&mut self, addr: u32) -> u32 {
        // SAFETY: live handle.
        unsafe { espo_rtl_reg_read(self.raw.as_ptr(), addr) }
    }

    /// Clocks until bit 31 of the word at `phase_addr` is set; false after `max_cycles`.
    pub fn reg_wait(&mut self, phase_addr: u32, max_cycles: u64) -> bool {
        // SAFETY: live handle.
        unsafe { espo_rtl_reg_wait(self.raw.as_ptr(), phase_addr, max_cycles) == 0 }
    }

    pub fn push(&mut self, data: &[u8], outbound: bool, bypass: bool, sa_index: u32) {
        // SAFETY: live handle; `data` is valid for `data.len()` bytes and copied by the callee.
        unsafe {
            espo_rtl_push(
                self.raw.as_ptr(),
                data.as_ptr(),
                data.len(),
                u8::from(outbound),
                u8::from(bypass),
                sa_index,
            )
        }
    }

    /// Runs until every pushed packet has its output; false after `max_cycles`.
    pub fn run(&mut self, max_cycles: u64) -> bool {
        // SAFETY: live handle.
        unsafe { espo_rtl_run(self.raw.as_ptr(), max_cycles) == 0 }
    }

    /// The oldest output, its bytes in `buf` (cut at `buf.len()`; `CoreOut::len` is whole).
    pub fn pop(&mut self, buf: &mut [u8]) -> Option<CoreOut> {
        let mut out = CoreOut::default();
        // SAFETY: live handle; `buf` is writable for `buf.len()` bytes; `out` is valid.
        let r = unsafe { espo_rtl_pop(self.raw.as_ptr(), buf.as_mut_ptr(), buf.len(), &mut out) };
        (r == 0).then_some(out)
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
