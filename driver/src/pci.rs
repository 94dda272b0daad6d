//! PCI addresses and the few configuration-space fields the driver touches.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Offset of the command register in configuration space (PCI Local Bus 3.0, §6.2.2).
pub const CONFIG_COMMAND: u64 = 0x04;
/// Command register: memory space enable.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: bus master enable — without it the device cannot DMA.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;

/// A PCI function address, `domain:bus:device.function` (e.g. `0000:03:00.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    /// PCI segment (domain).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number, 0–31.
    pub device: u8,
    /// Function number, 0–7.
    pub function: u8,
}

/// A PCI address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{text}` is not a PCI address: expected domain:bus:device.function, e.g. 0000:03:00.0")]
pub struct ParsePciAddressError {
    text: String,
}

impl FromStr for PciAddress {
    type Err = ParsePciAddressError;

    /// Parses `DDDD:BB:dd.f`, or `BB:dd.f` with domain 0 (as `lspci` prints it).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || ParsePciAddressError {
            text: text.to_string(),
        };
        let mut parts: Vec<&str> = text.split(':').collect();
        let domain = match parts.len() {
            3 => u16::from_str_radix(parts.remove(0), 16).map_err(|_| err())?,
            2 => 0,
            _ => return Err(err()),
        };
        let (bus, rest) = (parts[0], parts[1]);
        let (device, function) = rest.split_once('.').ok_or_else(err)?;
        let hex = |s: &str, max: u8| -> Result<u8, ParsePciAddressError> {
            if s.is_empty() || s.len() > 2 {
                return Err(err());
            }
            u8::from_str_radix(s, 16)
                .ok()
                .filter(|&v| v <= max)
                .ok_or_else(err)
        };
        Ok(Self {
            domain,
            bus: hex(bus, 0xff)?,
            device: hex(device, 31)?,
            function: hex(function, 7)?,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_short_forms() {
        let a: PciAddress = "0000:03:1f.7".parse().unwrap();
        assert_eq!(
            a,
            PciAddress {
                domain: 0,
                bus: 3,
                device: 0x1f,
                function: 7
            }
        );
        assert_eq!(a.to_string(), "0000:03:1f.7");
        let b: PciAddress = "00:04.0".parse().unwrap();
        assert_eq!(b.to_string(), "0000:00:04.0");
        assert_eq!("abcd:ff:00.1".parse::<PciAddress>().unwrap().domain, 0xabcd);
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "",
            "0000:03:00",
            "0000:03:20.0",
            "0000:03:00.8",
            "0:0:0:0.0",
            "03:00.x",
            "003:00.0",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad}");
        }
    }
}
