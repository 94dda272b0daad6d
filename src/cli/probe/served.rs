//! `espo probe --engine vfio-user --socket PATH`: what a card served over vfio-user needs,
//! checked by talking to the server: the socket, the protocol version, the device's IDs
//! and regions, the card's identification register, MSI-X, and one DMA window mapped and
//! unmapped through shared memory.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use espo_driver::Device;
use espo_driver::vfio_user::proto::irq_index;
use espo_driver::vfio_user::{ESPO1_DEVICE_ID, ESPO1_VENDOR_ID, VfioUserDevice, VfioUserOptions};

use super::{Check, Status};

/// Every check of a served card, in order; later checks are skipped once one blocks.
pub fn probe(socket: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let serve = format!("espo card serve --socket {}", socket.display());
    match std::fs::metadata(socket) {
        Ok(m) if m.file_type().is_socket() => checks.push(Check::new(
            Status::Ok,
            "socket",
            format!("{} is a unix socket", socket.display()),
        )),
        Ok(_) => {
            checks.push(
                Check::new(
                    Status::Missing,
                    "socket",
                    format!("{} exists but is not a socket", socket.display()),
                )
                .fix(format!("start the server there: {serve}")),
            );
            return checks;
        }
        Err(e) => {
            checks.push(
                Check::new(
                    Status::Missing,
                    "socket",
                    format!("{}: {e}", socket.display()),
                )
                .fix(format!("start the server: {serve}")),
            );
            return checks;
        }
    }
    let dev = match VfioUserDevice::connect(socket, VfioUserOptions::default()) {
        Ok(dev) => dev,
        Err(e) => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            checks.push(
                Check::new(Status::Missing, "vfio-user", text)
                    .fix(format!("is the server running and an ESPO-1? {serve}")),
            );
            return checks;
        }
    };
    checks.push(Check::new(
        Status::Ok,
        "vfio-user",
        "protocol 0.1 negotiated; a PCI device with reset",
    ));
    let mut ids = [0u8; 4];
    match dev.read_config(0, &mut ids) {
        Ok(()) => {
            let vendor = u16::from_le_bytes([ids[0], ids[1]]);
            let device = u16::from_le_bytes([ids[2], ids[3]]);
            let ours = vendor == ESPO1_VENDOR_ID && device == ESPO1_DEVICE_ID;
            checks.push(Check::new(
                if ours { Status::Ok } else { Status::Warn },
                "PCI IDs",
                format!(
                    "[{vendor:04x}:{device:04x}]{}",
                    if ours { " (ESPO-1)" } else { " (not ESPO-1's)" }
                ),
            ));
        }
        Err(e) => checks.push(Check::new(
            Status::Missing,
            "PCI IDs",
            format!("reading configuration space failed: {e}"),
        )),
    }
    match dev.identify() {
        Ok((true, v)) => checks.push(Check::new(
            Status::Ok,
            "BAR0",
            format!(
                "{} bytes; DEVICE_ID reads {v:#010x} (ESPO-1)",
                dev.bar_len(0).unwrap_or(0)
            ),
        )),
        Ok((false, v)) => checks.push(Check::new(
            Status::Missing,
            "BAR0",
            format!("DEVICE_ID reads {v:#010x}, not ESPO-1's"),
        )),
        Err(e) => checks.push(Check::new(
            Status::Missing,
            "BAR0",
            format!("reading DEVICE_ID failed: {e}"),
        )),
    }
    match dev.irq_info(irq_index::MSIX) {
        Ok(info) if info.count > 0 => checks.push(Check::new(
            Status::Ok,
            "MSI-X",
            format!("{} vectors, signalled through eventfds", info.count),
        )),
        Ok(_) => checks.push(Check::new(
            Status::Missing,
            "MSI-X",
            "the device offers no MSI-X vectors",
        )),
        Err(e) => checks.push(Check::new(
            Status::Missing,
            "MSI-X",
            format!("asking for MSI-X failed: {e}"),
        )),
    }
    match dev.alloc_dma(4096) {
        Ok(region) => {
            let iova = region.iova();
            drop(region);
            checks.push(Check::new(
                Status::Ok,
                "DMA",
                format!("a sealed shared-memory window mapped at IOVA {iova:#x} and unmapped"),
            ));
        }
        Err(e) => checks.push(Check::new(
            Status::Missing,
            "DMA",
            format!("mapping a DMA window failed: {e}"),
        )),
    }
    checks
}
