//! Drives QEMU's `edu` device through espo's VFIO backend — the same code the card uses — to
//! prove it against the real Linux VFIO API (run inside a guest by `tests/vfio-qemu/run.sh`).
//!
//! Usage: `edu BDF [auto|container|iommufd]` with the device bound to vfio-pci. Prints one `PASS`/`FAIL` line per step
//! and a closing `N passed, M failed` line; exits non-zero unless every step passed.
//!
//! The edu register map (QEMU `docs/specs/edu.rst`): 0x00 identification `0xRRrr00ed`,
//! 0x04 liveness (reads back the inverse of what was written), 0x08 factorial, 0x20 status
//! (bit 0 computing, bit 7 raise an interrupt when done), 0x24 interrupt status, 0x64
//! interrupt acknowledge, 0x80/0x88/0x90/0x98 DMA source/destination/count/command (bit 0
//! start, bit 1 device-to-RAM, bit 2 interrupt 0x100 when done), device buffer at 0x40000
//! (4 KiB). Its DMA addresses are 28 bits wide, so IOVAs are kept below 256 MiB.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use espo_driver::vfio::{IommuInterface, IrqKind, VfioContainer, VfioDevice, VfioOptions};
use espo_driver::{Device, DmaMemory, IrqWait, PciAddress};

const ID: u64 = 0x00;
const LIVENESS: u64 = 0x04;
const FACTORIAL: u64 = 0x08;
const STATUS: u64 = 0x20;
const IRQ_STATUS: u64 = 0x24;
const IRQ_ACK: u64 = 0x64;
const DMA_SRC: u64 = 0x80;
const DMA_DST: u64 = 0x88;
const DMA_COUNT: u64 = 0x90;
const DMA_CMD: u64 = 0x98;
const STATUS_COMPUTING: u32 = 0x01;
const STATUS_IRQ_FACTORIAL: u32 = 0x80;
const IRQ_FACTORIAL: u32 = 0x001;
const IRQ_DMA: u32 = 0x100;
const CMD_START: u64 = 0x1;
const CMD_TO_RAM: u64 = 0x2;
const CMD_IRQ: u64 = 0x4;
const DEVICE_BUFFER: u64 = 0x40000;
const BUFFER_BYTES: usize = 4096;
const HUGEPAGE_BYTES: usize = 2 << 20;
/// Bytes per DMA transfer: QEMU 7.2's range check refuses a transfer that ends exactly at the
/// end of the device buffer (an off-by-one fixed in later versions), so stay short of it.
const TRANSFER_BYTES: usize = 4000;
/// Everything runs under software emulation: be generous.
const TIMEOUT: Duration = Duration::from_secs(20);

type Step = Result<String, String>;

struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn step(&mut self, name: &str, outcome: Step) -> bool {
        match outcome {
            Ok(detail) => {
                self.passed += 1;
                println!("PASS {name}: {detail}");
                true
            }
            Err(detail) => {
                self.failed += 1;
                println!("FAIL {name}: {detail}");
                false
            }
        }
    }
}

fn e(err: impl std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        text.push_str(&format!(": {cause}"));
        cur = cause.source();
    }
    text
}

fn r32(dev: &VfioDevice, offset: u64) -> Result<u32, String> {
    dev.read32(0, offset).map_err(e)
}

fn w32(dev: &VfioDevice, offset: u64, value: u32) -> Result<(), String> {
    dev.write32(0, offset, value).map_err(e)
}

fn w64(dev: &VfioDevice, offset: u64, value: u64) -> Result<(), String> {
    dev.write64(0, offset, value).map_err(e)
}

/// Waits for the MSI, then acknowledges `cause` in the interrupt status register.
fn wait_irq(dev: &VfioDevice, cause: u32) -> Result<u64, String> {
    match dev.wait_irq(0, TIMEOUT).map_err(e)? {
        IrqWait::Fired { count } => {
            let status = r32(dev, IRQ_STATUS)?;
            if status & cause == 0 {
                return Err(format!("interrupt status {status:#x} lacks {cause:#x}"));
            }
            w32(dev, IRQ_ACK, cause)?;
            Ok(count)
        }
        IrqWait::TimedOut => Err(format!("no MSI within {TIMEOUT:?}")),
    }
}

/// Runs one DMA transfer and waits for its completion interrupt.
fn dma(dev: &VfioDevice, src: u64, dst: u64, to_ram: bool) -> Result<(), String> {
    w64(dev, DMA_SRC, src)?;
    w64(dev, DMA_DST, dst)?;
    w64(dev, DMA_COUNT, TRANSFER_BYTES as u64)?;
    let cmd = CMD_START | CMD_IRQ | if to_ram { CMD_TO_RAM } else { 0 };
    w64(dev, DMA_CMD, cmd)?;
    wait_irq(dev, IRQ_DMA)?;
    let start = Instant::now();
    while dev.read64(0, DMA_CMD).map_err(e)? & CMD_START != 0 {
        if start.elapsed() > TIMEOUT {
            return Err("DMA command never completed".into());
        }
    }
    Ok(())
}

fn pattern(i: usize) -> u8 {
    (i as u8).wrapping_mul(7).wrapping_add(3)
}

fn check_pattern(mem: &DmaMemory) -> Result<(), String> {
    let mut back = vec![0u8; TRANSFER_BYTES];
    mem.read_bytes(0, &mut back).map_err(e)?;
    match back.iter().enumerate().find(|&(i, &b)| b != pattern(i)) {
        None => Ok(()),
        Some((i, b)) => Err(format!(
            "byte {i} is {b:#04x}, expected {:#04x}",
            pattern(i)
        )),
    }
}

/// Kernel log lines about IOMMU (DMAR) faults logged so far; `None` without `/dev/kmsg`.
fn dmar_faults() -> Option<Vec<String>> {
    let mut kmsg = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    let mut lines = Vec::new();
    let mut record = vec![0u8; 8192];
    while let Ok(n) = kmsg.read(&mut record) {
        let text = String::from_utf8_lossy(&record[..n]);
        let message = text
            .split_once(';')
            .map_or(&*text, |(_, m)| m)
            .trim_end()
            .to_string();
        if message.contains("DMAR") && message.to_ascii_lowercase().contains("fault") {
            lines.push(message);
        }
    }
    Some(lines)
}

fn run(address: PciAddress, interface: IommuInterface) -> Report {
    let mut report = Report {
        passed: 0,
        failed: 0,
    };
    let options = VfioOptions {
        iova_windows: std::iter::once(0x10_0000..0x1000_0000).collect(),
        ..VfioOptions::default()
    };

    let kernel = match (
        Path::new("/dev/vfio/vfio").exists(),
        Path::new("/dev/iommu").exists(),
    ) {
        (true, true) => "kernel offers the VFIO container and iommufd",
        (true, false) => "kernel offers the VFIO container; no iommufd (/dev/iommu)",
        (false, true) => "kernel offers iommufd only",
        (false, false) => "kernel offers neither /dev/vfio/vfio nor /dev/iommu",
    };
    println!("INFO {kernel}");
    let container = match VfioContainer::open(VfioOptions {
        interface,
        ..options.clone()
    }) {
        Ok(container) => container,
        Err(err) => {
            report.step("open", Err(e(err)));
            return report;
        }
    };
    let used = container.interface();
    let dev = match container.open_device(address) {
        Ok(dev) => dev,
        Err(err) => {
            report.step("open", Err(e(err)));
            return report;
        }
    };
    let how = match used {
        IommuInterface::Iommufd => "iommufd IOAS and device cdev open".to_string(),
        _ => format!("container and /dev/vfio/{} open", dev.group()),
    };
    report.step(
        "open",
        Ok(format!(
            "{address} in IOMMU group {} via {used:?}: {how}",
            dev.group()
        )),
    );

    let regions: Vec<String> = dev
        .regions()
        .iter()
        .filter(|r| r.size > 0)
        .map(|r| {
            format!(
                "#{} {:#x}{}",
                r.index,
                r.size,
                if r.mappable { " mmap" } else { "" }
            )
        })
        .collect();
    let bar0 = dev.bar_len(0);
    report.step(
        "regions",
        if bar0 == Some(1 << 20) {
            Ok(format!("BAR0 mapped (1 MiB); {}", regions.join(", ")))
        } else {
            Err(format!("BAR0 {bar0:?}; {regions:?}"))
        },
    );

    report.step(
        "identification",
        r32(&dev, ID).and_then(|id| {
            if id & 0xffff == 0x00ed {
                Ok(format!(
                    "{id:#010x} (edu {}.{})",
                    id >> 24,
                    (id >> 16) & 0xff
                ))
            } else {
                Err(format!("{id:#010x}"))
            }
        }),
    );

    report.step(
        "liveness",
        [0x1234_5678u32, 0xa5a5_0f0f]
            .iter()
            .try_fold(String::new(), |_, &v| {
                w32(&dev, LIVENESS, v)?;
                let back = r32(&dev, LIVENESS)?;
                if back == !v {
                    Ok(format!("wrote {v:#x}, read {back:#x}"))
                } else {
                    Err(format!("wrote {v:#x}, read {back:#x}"))
                }
            }),
    );

    report.step(
        "bus-master",
        dev.set_bus_master(true)
            .map(|()| "enabled in the command register (DMA and MSI writes need it)".to_string())
            .map_err(e),
    );

    let irq = dev.enable_irqs(1).map_err(e).map(|n| match dev.irq_kind() {
        Some(IrqKind::Msi) => format!("{n} MSI vector through an eventfd"),
        kind => format!("{n} vectors of {kind:?}"),
    });
    let irq_ok = report.step("irq-setup", irq);

    if irq_ok {
        let factorial = (|| {
            w32(&dev, STATUS, STATUS_IRQ_FACTORIAL)?;
            w32(&dev, FACTORIAL, 10)?;
            let count = wait_irq(&dev, IRQ_FACTORIAL)?;
            let start = Instant::now();
            while r32(&dev, STATUS)? & STATUS_COMPUTING != 0 {
                if start.elapsed() > TIMEOUT {
                    return Err("still computing".to_string());
                }
            }
            let value = r32(&dev, FACTORIAL)?;
            w32(&dev, STATUS, 0)?;
            if value == 3_628_800 {
                Ok(format!("10! = {value}, MSI received ({count})"))
            } else {
                Err(format!("10! read as {value}"))
            }
        })();
        report.step("factorial-msi", factorial);
    }

    let dma_steps = (|| {
        let src = dev.alloc_dma(BUFFER_BYTES).map_err(e)?;
        let dst = dev.alloc_dma(BUFFER_BYTES).map_err(e)?;
        for i in 0..BUFFER_BYTES {
            src.write_bytes(i, &[pattern(i)]).map_err(e)?;
        }
        dst.fill(0, BUFFER_BYTES, 0).map_err(e)?;
        dma(&dev, src.iova(), DEVICE_BUFFER, false)?;
        dma(&dev, DEVICE_BUFFER, dst.iova(), true)?;
        check_pattern(&dst)?;
        Ok::<_, String>(format!(
            "{TRANSFER_BYTES} bytes host(IOVA {:#x}) -> device -> host(IOVA {:#x}), bytes equal",
            src.iova(),
            dst.iova()
        ))
    })();
    report.step("dma-roundtrip", dma_steps);

    let huge = (|| {
        let region = dev.alloc_dma(HUGEPAGE_BYTES).map_err(e)?;
        if region.page_bytes() != HUGEPAGE_BYTES {
            return Err(format!(
                "backed by {} KiB pages: no free 2 MiB hugepage",
                region.page_bytes() >> 10
            ));
        }
        // Aim at the last 4 KiB of the hugepage: the IOMMU must translate the whole 2 MiB.
        let tail = HUGEPAGE_BYTES - BUFFER_BYTES;
        region.fill(0, HUGEPAGE_BYTES, 0).map_err(e)?;
        dma(&dev, DEVICE_BUFFER, region.iova() + tail as u64, true)?;
        let mut back = vec![0u8; TRANSFER_BYTES];
        region.read_bytes(tail, &mut back).map_err(e)?;
        match back.iter().enumerate().find(|&(i, &b)| b != pattern(i)) {
            None => Ok(format!(
                "2 MiB hugepage at IOVA {:#x}; device wrote its last 4 KiB correctly",
                region.iova()
            )),
            Some((i, b)) => Err(format!("byte {i} is {b:#04x}")),
        }
    })();
    report.step("dma-hugepage", huge);

    let fault = (|| {
        let victim = dev.alloc_dma(BUFFER_BYTES).map_err(e)?;
        let iova = victim.iova();
        // First prove the path works: the device writes the pattern to this IOVA.
        victim.fill(0, BUFFER_BYTES, 0).map_err(e)?;
        dma(&dev, DEVICE_BUFFER, iova, true)?;
        check_pattern(&victim).map_err(|m| format!("mapped write failed: {m}"))?;
        let faults_before = dmar_faults().map(|f| f.len());
        // Unmap it, poison the memory that was behind the IOVA, and aim the device at it.
        let memory = victim.unmap().map_err(e)?;
        memory.fill(0, BUFFER_BYTES, 0xab).map_err(e)?;
        dma(&dev, DEVICE_BUFFER, iova, true)?;
        let mut back = vec![0u8; TRANSFER_BYTES];
        memory.read_bytes(0, &mut back).map_err(e)?;
        if let Some(i) = back.iter().position(|&b| b != 0xab) {
            return Err(format!(
                "byte {i} changed after unmap: the IOMMU let the write through"
            ));
        }
        // The IOMMU reports the blocked write as a DMAR fault; give its interrupt a moment.
        let start = Instant::now();
        loop {
            // The fault record names the IOVA: `... fault addr 0x100000 [fault reason ...]`.
            let needle = format!("fault addr {iova:#x} ");
            let new = match (faults_before, dmar_faults()) {
                (Some(before), Some(now)) => now
                    .get(before..)
                    .and_then(|n| n.iter().find(|l| l.contains(&needle)).cloned()),
                _ => {
                    return Ok(format!(
                        "write to unmapped IOVA {iova:#x} blocked, memory untouched (no kernel log to confirm the fault)"
                    ));
                }
            };
            if let Some(line) = new {
                return Ok(format!(
                    "write to unmapped IOVA {iova:#x} blocked, memory untouched; kernel: {line}"
                ));
            }
            if start.elapsed() > Duration::from_secs(5) {
                return Err(format!(
                    "memory untouched but no DMAR fault logged for IOVA {iova:#x}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    report.step("dma-unmapped-refused", fault);

    let reset = (|| {
        if !dev.can_reset() {
            return Err("the kernel offers no reset for this device".to_string());
        }
        dev.reset().map_err(e)?;
        let id = r32(&dev, ID)?;
        w32(&dev, LIVENESS, 0x0f0f_0f0f)?;
        let live = r32(&dev, LIVENESS)?;
        if id & 0xffff == 0x00ed && live == 0xf0f0_f0f0 {
            Ok(format!(
                "VFIO_DEVICE_RESET done; device answers ({id:#010x})"
            ))
        } else {
            Err(format!("after reset: id {id:#x}, liveness {live:#x}"))
        }
    })();
    report.step("reset", reset);

    let group = dev.group();
    drop(dev);
    // Dropping the device (no DMA mapping left) closes it and detaches its group even though
    // the first container is still open: a second container can take the group at once.
    let reopen = VfioDevice::open(address, VfioOptions { interface: used, ..options }).map(|again| {
        let regions = again.regions().len();
        drop(again);
        drop(container);
        format!("device closed and group {group} released; reopened in a new container ({regions} regions); all closed")
    });
    report.step("teardown", reopen.map_err(e));
    report
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let address = args.first().and_then(|a| a.parse::<PciAddress>().ok());
    let interface = match args.get(1).map(String::as_str) {
        None | Some("auto") => Some(IommuInterface::Auto),
        Some("container") => Some(IommuInterface::Container),
        Some("iommufd") => Some(IommuInterface::Iommufd),
        Some(_) => None,
    };
    let (Some(address), Some(interface)) = (address, interface) else {
        eprintln!("usage: edu DOMAIN:BUS:DEVICE.FUNCTION [auto|container|iommufd]");
        return ExitCode::from(2);
    };
    let report = run(address, interface);
    println!("edu: {} passed, {} failed", report.passed, report.failed);
    if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
