//! Stored register values, laid out from the espo-fpga register map so that offsets,
//! access types and reset values come from the single definition.

use espo_fpga::regs::{BAR0_SIZE, BLOCKS};
use espo_fpga::{Access, Register};

#[derive(Debug, Clone, Copy)]
pub(crate) struct RegInfo {
    pub reg: &'static Register,
    /// BAR0 offset of the register (of its low word).
    pub addr: u32,
    /// Instance of an instanced block (queue index).
    pub instance: u32,
    /// This word is the high half of a 64-bit register.
    pub high: bool,
}

impl RegInfo {
    pub fn access(&self) -> Access {
        self.reg.access
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RegFile {
    values: Vec<u32>,
    info: Vec<Option<RegInfo>>,
}

impl RegFile {
    pub fn new() -> Self {
        let words = (BAR0_SIZE / 4) as usize;
        let mut values = vec![0u32; words];
        let mut info = vec![None; words];
        for block in BLOCKS {
            for instance in 0..block.instances {
                for reg in block.regs {
                    let addr = reg.addr_in(instance);
                    let w = (addr / 4) as usize;
                    if let (Some(v), Some(i)) = (values.get_mut(w), info.get_mut(w)) {
                        *v = reg.reset as u32;
                        *i = Some(RegInfo {
                            reg,
                            addr,
                            instance,
                            high: false,
                        });
                    }
                    if reg.width_bits == 64
                        && let (Some(v), Some(i)) = (values.get_mut(w + 1), info.get_mut(w + 1))
                    {
                        *v = (reg.reset >> 32) as u32;
                        *i = Some(RegInfo {
                            reg,
                            addr,
                            instance,
                            high: true,
                        });
                    }
                }
            }
        }
        RegFile { values, info }
    }

    /// The register at a BAR0 offset (word-aligned).
    pub fn info(&self, offset: u32) -> Option<RegInfo> {
        if !offset.is_multiple_of(4) {
            return None;
        }
        self.info.get((offset / 4) as usize).copied().flatten()
    }

    pub fn get(&self, offset: u32) -> u32 {
        self.values.get((offset / 4) as usize).copied().unwrap_or(0)
    }

    pub fn set(&mut self, offset: u32, value: u32) {
        if let Some(v) = self.values.get_mut((offset / 4) as usize) {
            *v = value;
        }
    }

    /// A 64-bit register's stored value.
    pub fn get64(&self, reg: &Register, instance: u32) -> u64 {
        let a = reg.addr_in(instance);
        u64::from(self.get(a)) | u64::from(self.get(a + 4)) << 32
    }

    /// A 32-bit register's stored value.
    pub fn get32(&self, reg: &Register, instance: u32) -> u32 {
        self.get(reg.addr_in(instance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_fpga::regs::{ctrl, ident, queue};

    #[test]
    fn reset_values_and_instances_come_from_the_map() {
        let r = RegFile::new();
        assert_eq!(r.get(ident::DEVICE_ID.addr()), ident::DEVICE_ID_VALUE);
        assert_eq!(r.get(ctrl::NATT_PORT.addr()), 4500);
        let i = r
            .info(queue::TXQ_TAIL.addr_in(3))
            .expect("queue 3 register");
        assert_eq!((i.instance, i.reg.name, i.high), (3, "TXQ_TAIL", false));
        assert!(
            r.info(queue::TXQ_BASE.addr_in(1) + 4)
                .expect("high half")
                .high
        );
        assert!(r.info(0x0FFC).is_none());
        assert!(r.info(2).is_none());
    }
}
