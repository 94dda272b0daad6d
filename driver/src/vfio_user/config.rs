//! The PCI configuration space a served ESPO-1 presents (PCI Local Bus 3.0 §6; MSI-X
//! §6.8.2): its IDs, BAR0 (the register file) and BAR2 (the MSI-X table and pending bits),
//! and one capability, MSI-X with a vector per card interrupt.
//!
//! Writable: the command register (memory space, bus master, INTx disable), the BAR
//! addresses (with the usual all-ones sizing protocol) and MSI-X message control (enable,
//! function mask). Everything else is read-only; reads past the header read zero.

use espo_fpga::regs::BAR0_SIZE;
use espo_fpga::regs::irq::VECTORS;

use crate::pci::{COMMAND_BUS_MASTER, COMMAND_MEMORY, CONFIG_COMMAND};

/// PCI vendor ID the served card presents. ESPO-1 has no assigned IDs yet: 0x1234 is the
/// unassigned vendor ID QEMU's own teaching devices use.
pub const ESPO1_VENDOR_ID: u16 = 0x1234;
/// PCI device ID the served card presents (see [`ESPO1_VENDOR_ID`]).
pub const ESPO1_DEVICE_ID: u16 = 0xe501;
/// Size of configuration space served.
pub const CONFIG_BYTES: usize = 256;
/// Size of BAR2: the MSI-X table at 0, the pending-bit array at [`PBA_OFFSET`].
pub const BAR2_BYTES: u32 = 4096;
/// Offset of the MSI-X pending-bit array in BAR2.
pub const PBA_OFFSET: u32 = 0x800;

const COMMAND_INTX_DISABLE: u16 = 1 << 10;
const MSIX_CAP: usize = 0x40;
const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;
const BAR0_AT: usize = 0x10;
const BAR2_AT: usize = 0x18;

/// Configuration space of one served card.
#[derive(Debug, Clone)]
pub struct ConfigSpace {
    bytes: [u8; CONFIG_BYTES],
}

impl Default for ConfigSpace {
    fn default() -> Self {
        let mut bytes = [0u8; CONFIG_BYTES];
        let mut put = |at: usize, v: &[u8]| bytes[at..at + v.len()].copy_from_slice(v);
        put(0x00, &ESPO1_VENDOR_ID.to_le_bytes());
        put(0x02, &ESPO1_DEVICE_ID.to_le_bytes());
        put(0x06, &(1u16 << 4).to_le_bytes()); // status: capabilities list
        put(0x08, &[1, 0x00, 0x80, 0x10]); // revision 1; class 0x10 (encryption), sub 0x80
        put(BAR0_AT, &0u32.to_le_bytes()); // 32-bit memory BARs, not prefetchable
        put(BAR2_AT, &0u32.to_le_bytes());
        put(0x2c, &ESPO1_VENDOR_ID.to_le_bytes()); // subsystem vendor
        put(0x2e, &ESPO1_DEVICE_ID.to_le_bytes()); // subsystem
        put(0x34, &[MSIX_CAP as u8]);
        // MSI-X: ID 0x11, last capability, table size N-1; table and PBA in BAR2.
        put(MSIX_CAP, &[0x11, 0x00]);
        put(MSIX_CAP + 2, &((VECTORS - 1) as u16).to_le_bytes());
        put(MSIX_CAP + 4, &2u32.to_le_bytes());
        put(MSIX_CAP + 8, &(PBA_OFFSET | 2).to_le_bytes());
        Self { bytes }
    }
}

impl ConfigSpace {
    /// Reads `buf.len()` bytes at `offset` (the caller checked the range).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        if let Some(src) = self.bytes.get(offset..offset + buf.len()) {
            buf.copy_from_slice(src);
        }
    }

    /// Writes `data` at `offset`, byte by byte through each register's write mask.
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let at = offset + i;
            let mask = Self::write_mask(at);
            if let Some(old) = self.bytes.get_mut(at) {
                *old = (*old & !mask) | (b & mask);
            }
        }
    }

    /// Bits of the byte at `at` that software may change. BAR address bits below the BAR's
    /// size stay zero, which is how sizing (write all ones, read back) reports the size.
    fn write_mask(at: usize) -> u8 {
        let command = COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;
        let bar_mask = |size: u32, i: usize| (!(size - 1)).to_le_bytes()[i];
        match at {
            0x04 => command.to_le_bytes()[0],
            0x05 => command.to_le_bytes()[1],
            a if (BAR0_AT..BAR0_AT + 4).contains(&a) => bar_mask(BAR0_SIZE, a - BAR0_AT),
            a if (BAR2_AT..BAR2_AT + 4).contains(&a) => bar_mask(BAR2_BYTES, a - BAR2_AT),
            0x3c => 0xff, // interrupt line
            a if a == MSIX_CAP + 3 => ((MSIX_ENABLE | MSIX_FUNCTION_MASK) >> 8) as u8,
            _ => 0,
        }
    }

    fn command(&self) -> u16 {
        let at = CONFIG_COMMAND as usize;
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    /// Whether the driver enabled bus mastering.
    pub fn bus_master(&self) -> bool {
        self.command() & COMMAND_BUS_MASTER != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_bar_sizing_msix_and_read_only_fields() {
        let mut c = ConfigSpace::default();
        let mut w = [0u8; 4];
        c.read(0, &mut w);
        assert_eq!(w, [0x34, 0x12, 0x01, 0xe5]);
        c.write(0, &[0xff; 4]);
        c.read(0, &mut w);
        assert_eq!(w, [0x34, 0x12, 0x01, 0xe5], "IDs are read-only");
        c.write(BAR0_AT, &[0xff; 4]);
        c.read(BAR0_AT, &mut w);
        assert_eq!(!u32::from_le_bytes(w) + 1, BAR0_SIZE, "BAR0 sizing");
        c.write(BAR2_AT, &[0xff; 4]);
        c.read(BAR2_AT, &mut w);
        assert_eq!(!u32::from_le_bytes(w) + 1, BAR2_BYTES, "BAR2 sizing");
        let mut cap = [0u8; 4];
        c.read(0x34, &mut cap[..1]);
        c.read(usize::from(cap[0]), &mut cap);
        assert_eq!(cap[0], 0x11, "MSI-X capability");
        assert_eq!(
            u16::from_le_bytes([cap[2], cap[3]]) & 0x7ff,
            (VECTORS - 1) as u16
        );
        assert!(!c.bus_master());
        c.write(4, &COMMAND_BUS_MASTER.to_le_bytes());
        assert!(c.bus_master());
        c.write(4, &[0, 0]);
        assert!(!c.bus_master());
    }
}
