//! `espo probe`: what a VFIO deployment needs, and what is missing, in plain words.
//!
//! Every check reads sysfs, procfs and /dev under one root directory, so tests run it against
//! a fake tree. Nothing is changed: each problem comes with the command that fixes it.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use espo_driver::{DEFAULT_DMA_BUDGET_BYTES, PciAddress};

/// Arguments of `espo probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// What to check: VFIO on this host (and --pci), or a card served over vfio-user
    /// (--socket; `espo card serve`).
    #[arg(long, default_value = "vfio", value_parser = ["vfio", "vfio-user"])]
    pub engine: String,
    /// The served card's socket (--engine vfio-user).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The card's PCI address (domain:bus:device.function, as `lspci -D` prints it); without
    /// it only the host is checked.
    #[arg(long, value_name = "BDF")]
    pub pci: Option<PciAddress>,
    /// Inspect this directory as if it were `/` (for testing against a copied or fake tree).
    #[arg(long, value_name = "DIR", default_value = "/", hide = true)]
    pub root: PathBuf,
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Present and usable.
    Ok,
    /// Works, but not as well as it could.
    Warn,
    /// Blocks VFIO use.
    Missing,
    /// For information.
    Info,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub what: &'static str,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn new(status: Status, what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            what,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Runs `espo probe`.
pub fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    if args.engine == "vfio-user" {
        let Some(socket) = args.socket else {
            anyhow::bail!(
                "--engine vfio-user needs the served card's socket: --socket PATH (see `espo card serve`)"
            );
        };
        let checks = served::probe(&socket);
        let blocked = checks
            .iter()
            .filter(|c| c.status == Status::Missing)
            .count();
        let mut out = render_lines(&checks);
        if blocked == 0 {
            let _ = writeln!(out, "The card served at {} is ready.", socket.display());
        } else {
            let _ = writeln!(
                out,
                "The card served at {} is not usable: {blocked} problem(s) above.",
                socket.display()
            );
        }
        print!("{out}");
        return Ok(if blocked > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        });
    }
    let checks = probe(&args.root, args.pci);
    print!("{}", render(&checks, args.pci));
    let blocked = checks.iter().any(|c| c.status == Status::Missing);
    Ok(if blocked {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One line per check, its fix indented below it.
fn render_lines(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let tag = match check.status {
            Status::Ok => "[ ok ]",
            Status::Warn => "[warn]",
            Status::Missing => "[FAIL]",
            Status::Info => "[info]",
        };
        let _ = writeln!(out, "{tag} {}: {}", check.what, check.detail);
        if let Some(fix) = &check.fix {
            for (i, line) in fix.lines().enumerate() {
                let _ = writeln!(
                    out,
                    "       {} {line}",
                    if i == 0 { "fix:" } else { "    " }
                );
            }
        }
    }
    out
}

/// Formats the report: one line per check, its fix indented below it, and a verdict.
pub fn render(checks: &[Check], pci: Option<PciAddress>) -> String {
    let mut out = render_lines(checks);
    let blocking = checks
        .iter()
        .filter(|c| c.status == Status::Missing)
        .count();
    let no_vfio = checks
        .iter()
        .any(|c| c.what == "VFIO" && c.status == Status::Missing);
    let verdict = match (blocking, pci) {
        (0, Some(pci)) => format!("VFIO is ready for {pci}."),
        (0, None) => "The host is ready for VFIO; pass --pci BDF to check a card.".to_string(),
        _ if no_vfio => format!(
            "VFIO is not usable on this machine: {blocking} problem(s) above, starting with the missing VFIO support."
        ),
        _ => format!("VFIO is not usable yet: {blocking} problem(s) above block it."),
    };
    let _ = writeln!(out, "{verdict}");
    out
}

/// Every check, in the order a person would fix them.
pub fn probe(root: &Path, pci: Option<PciAddress>) -> Vec<Check> {
    let sys = root.join("sys");
    let mut checks = vec![
        iommu(root),
        vfio(root),
        iommufd(root),
        memlock(root),
        hugepages(&sys),
    ];
    match pci {
        Some(address) => checks.extend(device(root, address)),
        None => checks.push(bound_devices(&sys)),
    }
    checks
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()?
        .file_name()?
        .to_str()
        .map(str::to_string)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn iommu(root: &Path) -> Check {
    let units = entries(&root.join("sys/class/iommu"));
    let cmdline = read_trimmed(&root.join("proc/cmdline")).unwrap_or_default();
    let flags: Vec<&str> = cmdline
        .split_whitespace()
        .filter(|w| w.contains("iommu"))
        .collect();
    let flags = if flags.is_empty() {
        "none".to_string()
    } else {
        flags.join(" ")
    };
    if units.is_empty() {
        Check::new(Status::Missing, "IOMMU", format!("not enabled (no IOMMU in /sys/class/iommu; IOMMU flags on the kernel command line: {flags})"))
            .fix("enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup, and boot with\nintel_iommu=on iommu=pt (Intel) or amd_iommu=on iommu=pt (AMD) on the kernel command line")
    } else {
        Check::new(
            Status::Ok,
            "IOMMU",
            format!(
                "enabled ({}; kernel command line: {flags})",
                units.join(", ")
            ),
        )
    }
}

fn open_rw(path: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
}

fn vfio(root: &Path) -> Check {
    let modules: Vec<&str> = ["vfio", "vfio_iommu_type1", "vfio_pci"]
        .into_iter()
        .filter(|m| !root.join("sys/module").join(m).exists())
        .collect();
    let container = root.join("dev/vfio/vfio");
    if !container.exists() {
        let detail = if modules.len() == 3 {
            "this kernel has no VFIO loaded (no /dev/vfio/vfio, no vfio modules)".to_string()
        } else {
            format!(
                "no /dev/vfio/vfio (modules not loaded: {})",
                modules.join(", ")
            )
        };
        return Check::new(Status::Missing, "VFIO", detail).fix(
            "modprobe vfio-pci   (kernels built without CONFIG_VFIO_PCI cannot run espo on a card)",
        );
    }
    if !modules.is_empty() {
        return Check::new(
            Status::Missing,
            "VFIO",
            format!(
                "/dev/vfio/vfio exists but {} not loaded",
                modules.join(", ")
            ),
        )
        .fix("modprobe vfio-pci vfio_iommu_type1");
    }
    match open_rw(&container) {
        Ok(()) => Check::new(
            Status::Ok,
            "VFIO",
            "/dev/vfio/vfio opens; vfio, vfio_iommu_type1 and vfio_pci are loaded",
        ),
        Err(err) => Check::new(
            Status::Missing,
            "VFIO",
            format!("/dev/vfio/vfio cannot be opened: {err}"),
        )
        .fix("run espo as root, or give its user read-write access to /dev/vfio/vfio"),
    }
}

fn iommufd(root: &Path) -> Check {
    if root.join("dev/iommu").exists() {
        Check::new(
            Status::Info,
            "iommufd",
            "/dev/iommu is present (espo uses the VFIO container path, which this kernel also offers)",
        )
    } else {
        Check::new(
            Status::Info,
            "iommufd",
            "not offered by this kernel (Linux 6.6+ with CONFIG_IOMMUFD and CONFIG_VFIO_DEVICE_CDEV); the VFIO container path is used",
        )
    }
}

/// Bit of CAP_IPC_LOCK in the capability sets: with it, pinned DMA memory is not charged
/// against RLIMIT_MEMLOCK.
const CAP_IPC_LOCK: u32 = 14;

fn memlock(root: &Path) -> Check {
    let need = DEFAULT_DMA_BUDGET_BYTES;
    let status = read_trimmed(&root.join("proc/self/status")).unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    if cap_eff & (1 << CAP_IPC_LOCK) != 0 {
        return Check::new(
            Status::Ok,
            "memlock",
            "CAP_IPC_LOCK held (running as root): DMA memory is not limited by RLIMIT_MEMLOCK",
        );
    }
    let limits = read_trimmed(&root.join("proc/self/limits")).unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .and_then(|l| l.split_whitespace().nth(3));
    let fix = "raise the limit for espo's service: ulimit -l unlimited, LimitMEMLOCK=infinity in its\nsystemd unit, or a memlock line in /etc/security/limits.conf; or run it as root";
    match soft {
        Some("unlimited") => Check::new(Status::Ok, "memlock", "RLIMIT_MEMLOCK is unlimited"),
        Some(bytes) => match bytes.parse::<u64>() {
            Ok(limit) if limit >= need => Check::new(
                Status::Ok,
                "memlock",
                format!(
                    "RLIMIT_MEMLOCK {} MiB covers the {} MiB espo pins",
                    limit >> 20,
                    need >> 20
                ),
            ),
            Ok(limit) => Check::new(
                Status::Missing,
                "memlock",
                format!(
                    "RLIMIT_MEMLOCK is {} KiB; espo pins {} MiB of DMA memory",
                    limit >> 10,
                    need >> 20
                ),
            )
            .fix(fix),
            Err(_) => Check::new(
                Status::Warn,
                "memlock",
                format!("cannot read RLIMIT_MEMLOCK ({bytes})"),
            ),
        },
        None => Check::new(Status::Warn, "memlock", "cannot read /proc/self/limits").fix(fix),
    }
}

fn hugepages(sys: &Path) -> Check {
    let free = |size: &str| {
        read_trimmed(&sys.join(format!(
            "kernel/mm/hugepages/hugepages-{size}/free_hugepages"
        )))
        .and_then(|v| v.parse::<u64>().ok())
    };
    let (two_m, one_g) = (free("2048kB"), free("1048576kB"));
    let detail = format!(
        "free: {} x 2 MiB, {} x 1 GiB",
        two_m.unwrap_or(0),
        one_g.unwrap_or(0)
    );
    if two_m.unwrap_or(0) * (2 << 20) >= DEFAULT_DMA_BUDGET_BYTES {
        Check::new(Status::Ok, "hugepages", detail)
    } else {
        let pages = DEFAULT_DMA_BUDGET_BYTES / (2 << 20);
        Check::new(
            Status::Warn,
            "hugepages",
            format!("{detail}; DMA memory falls back to 4 KiB pages (slower: more IOTLB misses)"),
        )
        .fix(format!(
            "echo {pages} > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
        ))
    }
}

fn bound_devices(sys: &Path) -> Check {
    let bound: Vec<String> = entries(&sys.join("bus/pci/drivers/vfio-pci"))
        .into_iter()
        .filter(|n| n.parse::<PciAddress>().is_ok())
        .collect();
    if bound.is_empty() {
        Check::new(
            Status::Info,
            "devices",
            "none bound to vfio-pci; pass --pci BDF to check a card",
        )
    } else {
        Check::new(
            Status::Info,
            "devices",
            format!("bound to vfio-pci: {}", bound.join(", ")),
        )
    }
}

/// Drivers that leave an IOMMU group usable by VFIO.
fn vfio_compatible(driver: Option<&str>) -> bool {
    matches!(driver, None | Some("vfio-pci" | "pci-stub" | "pcieport"))
}

fn bind_commands(address: &str, bound: bool) -> String {
    let dev = format!("/sys/bus/pci/devices/{address}");
    let mut fix = format!("echo vfio-pci > {dev}/driver_override\n");
    if bound {
        let _ = writeln!(fix, "echo {address} > {dev}/driver/unbind");
    }
    let _ = write!(fix, "echo {address} > /sys/bus/pci/drivers_probe");
    fix
}

fn device(root: &Path, address: PciAddress) -> Vec<Check> {
    let name = address.to_string();
    let dev = root.join("sys/bus/pci/devices").join(&name);
    if !dev.exists() {
        return vec![
            Check::new(Status::Missing, "device", format!("no PCI device {name}"))
                .fix("lspci -D lists the PCI addresses of this machine"),
        ];
    }
    let id = |f: &str| {
        read_trimmed(&dev.join(f))
            .map(|v| v.trim_start_matches("0x").to_string())
            .unwrap_or_else(|| "?".into())
    };
    let mut checks = vec![Check::new(
        Status::Info,
        "device",
        format!("{name} [{}:{}]", id("vendor"), id("device")),
    )];

    let driver = link_name(&dev.join("driver"));
    checks.push(match driver.as_deref() {
        Some("vfio-pci") => {
            Check::new(Status::Ok, "driver", format!("{name} is bound to vfio-pci"))
        }
        Some(other) => Check::new(
            Status::Missing,
            "driver",
            format!("{name} is bound to {other}, not vfio-pci"),
        )
        .fix(bind_commands(&name, true)),
        None => Check::new(
            Status::Missing,
            "driver",
            format!("{name} is bound to no driver"),
        )
        .fix(bind_commands(&name, false)),
    });

    // Linux 5.15+ lists the resets it can perform on the function; espo's fault recovery
    // needs one (FLR on a card, a bus reset behind a bridge).
    if let Some(methods) = read_trimmed(&dev.join("reset_method")) {
        checks.push(if methods.is_empty() {
            Check::new(Status::Warn, "reset", format!("the kernel has no reset method for {name}: espo cannot recover the card after a fault"))
        } else {
            Check::new(Status::Ok, "reset", format!("the kernel can reset {name} ({methods})"))
        });
    }

    let Some(group) = link_name(&dev.join("iommu_group")) else {
        checks.push(Check::new(
            Status::Missing,
            "IOMMU group",
            format!("{name} has none: the IOMMU is off"),
        ));
        return checks;
    };
    let members = entries(
        &root
            .join("sys/kernel/iommu_groups")
            .join(&group)
            .join("devices"),
    );
    let others: Vec<(String, Option<String>)> = members
        .into_iter()
        .filter(|m| *m != name)
        .map(|m| {
            let drv = link_name(&root.join("sys/bus/pci/devices").join(&m).join("driver"));
            (m, drv)
        })
        .collect();
    let describe = |(m, d): &(String, Option<String>)| {
        format!("{m} ({})", d.as_deref().unwrap_or("no driver"))
    };
    let blocking: Vec<&(String, Option<String>)> = others
        .iter()
        .filter(|(_, d)| !vfio_compatible(d.as_deref()))
        .collect();
    checks.push(if others.is_empty() {
        Check::new(Status::Ok, "IOMMU group", format!("IOMMU group {group}: {name} is its only member"))
    } else if blocking.is_empty() {
        let list: Vec<String> = others.iter().map(describe).collect();
        Check::new(Status::Ok, "IOMMU group", format!("IOMMU group {group}: also holds {}, all usable with VFIO", list.join(", ")))
    } else {
        let list: Vec<String> = others.iter().map(describe).collect();
        let fix: Vec<String> = blocking.iter().map(|(m, _)| bind_commands(m, true)).collect();
        Check::new(Status::Missing, "IOMMU group", format!("IOMMU group {group}: also holds {}; every member must be bound to vfio-pci or to no driver", list.join(", ")))
            .fix(format!("{}\n(or move the card to a slot whose IOMMU group it has to itself)", fix.join("\n")))
    });

    let node = root.join("dev/vfio").join(&group);
    checks.push(match open_rw(&node) {
        Ok(()) => Check::new(Status::Ok, "group device", format!("/dev/vfio/{group} opens")),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Check::new(Status::Missing, "group device", format!("/dev/vfio/{group} does not exist (appears once the group's devices are bound to vfio-pci)"))
        }
        Err(err) if err.raw_os_error() == Some(16) => {
            Check::new(Status::Missing, "group device", format!("/dev/vfio/{group} is busy: another process (a VM, another espo) holds the group"))
        }
        Err(err) => Check::new(Status::Missing, "group device", format!("/dev/vfio/{group} cannot be opened: {err}"))
            .fix(format!("run espo as root, or give its user access: chown espo /dev/vfio/{group} (a udev rule makes it stick)")),
    });

    if root.join("dev/iommu").exists() {
        let cdev = entries(&dev.join("vfio-dev")).into_iter().next();
        checks.push(match cdev {
            Some(c) if root.join("dev/vfio/devices").join(&c).exists() => Check::new(
                Status::Info,
                "device cdev",
                format!("/dev/vfio/devices/{c} (iommufd path)"),
            ),
            _ => Check::new(
                Status::Info,
                "device cdev",
                "no /dev/vfio/devices node for this device",
            ),
        });
    }
    checks
}

mod served;
#[cfg(test)]
mod tests;
