//! `espo probe` against fake sysfs/procfs/dev trees.

use std::os::unix::fs::symlink;

use super::*;

const CARD: &str = "0000:03:00.0";

/// A fake root with an IOMMU, VFIO loaded and the card bound to vfio-pci, alone in group 12.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn empty() -> Self {
        let tree = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        tree.file("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda quiet");
        tree.file(
            "proc/self/limits",
            "Max locked memory         65536                65536                bytes     \n",
        );
        tree.file(
            "proc/self/status",
            "Name:\tespo\nCapEff:\t0000000000000000\n",
        );
        tree.mkdir("sys/class/iommu");
        tree.mkdir("sys/bus/pci/devices");
        tree
    }

    fn good() -> Self {
        let tree = Self::empty();
        tree.file("proc/cmdline", "root=/dev/vda intel_iommu=on iommu=pt");
        tree.file(
            "proc/self/status",
            "Name:\tespo\nCapEff:\t000001ffffffffff\n",
        );
        tree.mkdir("sys/class/iommu/dmar0");
        for m in ["vfio", "vfio_iommu_type1", "vfio_pci"] {
            tree.mkdir(&format!("sys/module/{m}"));
        }
        tree.file("dev/vfio/vfio", "");
        tree.file(
            "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "512\n",
        );
        tree.device(CARD, "12", Some("vfio-pci"));
        tree.file("dev/vfio/12", "");
        tree
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mkdir(&self, rel: &str) {
        fs::create_dir_all(self.path(rel)).unwrap();
    }

    fn file(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn device(&self, bdf: &str, group: &str, driver: Option<&str>) {
        let dev = format!("sys/bus/pci/devices/{bdf}");
        self.file(&format!("{dev}/vendor"), "0x1234\n");
        self.file(&format!("{dev}/device"), "0x11e8\n");
        self.file(&format!("{dev}/reset_method"), "flr bus\n");
        let groups = format!("sys/kernel/iommu_groups/{group}/devices");
        self.mkdir(&groups);
        symlink(
            format!("../../../kernel/iommu_groups/{group}"),
            self.path(&format!("{dev}/iommu_group")),
        )
        .unwrap();
        symlink(
            format!("../../../../bus/pci/devices/{bdf}"),
            self.path(&format!("{groups}/{bdf}")),
        )
        .unwrap();
        if let Some(driver) = driver {
            self.mkdir(&format!("sys/bus/pci/drivers/{driver}"));
            symlink(
                format!("../../../bus/pci/drivers/{driver}"),
                self.path(&format!("{dev}/driver")),
            )
            .unwrap();
        }
    }

    fn probe(&self, pci: Option<&str>) -> (Vec<Check>, String) {
        let pci = pci.map(|p| p.parse().unwrap());
        let checks = probe(self.dir.path(), pci);
        let text = render(&checks, pci);
        (checks, text)
    }
}

fn status_of(checks: &[Check], what: &str) -> Status {
    checks
        .iter()
        .find(|c| c.what == what)
        .unwrap_or_else(|| panic!("no {what} check"))
        .status
}

fn blocking(checks: &[Check]) -> usize {
    checks
        .iter()
        .filter(|c| c.status == Status::Missing)
        .count()
}

#[test]
fn machine_without_iommu_or_vfio_says_so() {
    let (checks, text) = Tree::empty().probe(None);
    assert_eq!(status_of(&checks, "IOMMU"), Status::Missing);
    assert_eq!(status_of(&checks, "VFIO"), Status::Missing);
    assert_eq!(status_of(&checks, "memlock"), Status::Missing);
    assert!(text.contains("this kernel has no VFIO loaded"), "{text}");
    assert!(text.contains("intel_iommu=on"), "{text}");
    assert!(
        text.contains("VFIO is not usable on this machine"),
        "{text}"
    );
    assert!(
        text.contains("iommufd: not offered by this kernel"),
        "{text}"
    );
    assert!(text.contains("[warn] hugepages: free: 0 x 2 MiB"), "{text}");
}

#[test]
fn all_good_reports_the_group_and_passes() {
    let (checks, text) = Tree::good().probe(Some(CARD));
    assert_eq!(blocking(&checks), 0, "{text}");
    assert!(
        text.contains("[ ok ] IOMMU group: IOMMU group 12: 0000:03:00.0 is its only member"),
        "{text}"
    );
    assert!(
        text.contains("[ ok ] driver: 0000:03:00.0 is bound to vfio-pci"),
        "{text}"
    );
    assert!(
        text.contains("[ ok ] group device: /dev/vfio/12 opens"),
        "{text}"
    );
    assert!(
        text.contains("[info] device: 0000:03:00.0 [1234:11e8]"),
        "{text}"
    );
    assert!(
        text.contains("kernel command line: intel_iommu=on iommu=pt"),
        "{text}"
    );
    assert!(
        text.ends_with("VFIO is ready for 0000:03:00.0.\n"),
        "{text}"
    );
}

#[test]
fn unknown_device_is_reported() {
    let (checks, text) = Tree::good().probe(Some("0000:09:00.0"));
    assert_eq!(status_of(&checks, "device"), Status::Missing);
    assert_eq!(blocking(&checks), 1);
    assert!(text.contains("no PCI device 0000:09:00.0"), "{text}");
}

#[test]
fn device_bound_to_another_driver_gets_the_rebind_commands() {
    let tree = Tree::good();
    fs::remove_file(tree.path(&format!("sys/bus/pci/devices/{CARD}/driver"))).unwrap();
    tree.mkdir("sys/bus/pci/drivers/ixgbe");
    symlink(
        "../../../bus/pci/drivers/ixgbe",
        tree.path(&format!("sys/bus/pci/devices/{CARD}/driver")),
    )
    .unwrap();
    let (checks, text) = tree.probe(Some(CARD));
    let driver = checks.iter().find(|c| c.what == "driver").unwrap();
    assert_eq!(driver.status, Status::Missing);
    assert!(driver.detail.contains("bound to ixgbe"));
    assert_eq!(
        driver.fix.as_deref(),
        Some(
            "echo vfio-pci > /sys/bus/pci/devices/0000:03:00.0/driver_override\n\
             echo 0000:03:00.0 > /sys/bus/pci/devices/0000:03:00.0/driver/unbind\n\
             echo 0000:03:00.0 > /sys/bus/pci/drivers_probe"
        )
    );
    assert!(
        text.contains("VFIO is not usable yet: 1 problem(s)"),
        "{text}"
    );
}

#[test]
fn unbound_device_needs_no_unbind() {
    let tree = Tree::good();
    fs::remove_file(tree.path(&format!("sys/bus/pci/devices/{CARD}/driver"))).unwrap();
    let (checks, _) = tree.probe(Some(CARD));
    let driver = checks.iter().find(|c| c.what == "driver").unwrap();
    assert_eq!(driver.status, Status::Missing);
    assert!(!driver.fix.as_deref().unwrap().contains("unbind"));
}

#[test]
fn group_members_on_other_drivers_block_and_are_named() {
    let tree = Tree::good();
    tree.device("0000:03:00.1", "12", Some("ahci"));
    tree.device("0000:03:00.2", "12", Some("vfio-pci"));
    let (checks, text) = tree.probe(Some(CARD));
    let group = checks.iter().find(|c| c.what == "IOMMU group").unwrap();
    assert_eq!(group.status, Status::Missing, "{text}");
    assert!(group.detail.contains("0000:03:00.1 (ahci)"), "{text}");
    assert!(group.detail.contains("0000:03:00.2 (vfio-pci)"), "{text}");
    let fix = group.fix.as_deref().unwrap();
    assert!(
        fix.contains("echo vfio-pci > /sys/bus/pci/devices/0000:03:00.1/driver_override"),
        "{fix}"
    );
    assert!(!fix.contains("0000:03:00.2"), "{fix}");

    // Once the other member is on vfio-pci too, the group is usable.
    let tree = Tree::good();
    tree.device("0000:03:00.2", "12", Some("vfio-pci"));
    let (checks, text) = tree.probe(Some(CARD));
    assert_eq!(status_of(&checks, "IOMMU group"), Status::Ok, "{text}");
    assert!(
        text.contains("also holds 0000:03:00.2 (vfio-pci), all usable with VFIO"),
        "{text}"
    );
}

#[test]
fn memlock_limit_against_the_dma_budget() {
    let tree = Tree::good();
    tree.file("proc/self/status", "CapEff:\t0000000000000000\n");
    let (checks, text) = tree.probe(None);
    assert_eq!(status_of(&checks, "memlock"), Status::Missing);
    assert!(
        text.contains("RLIMIT_MEMLOCK is 64 KiB; espo pins 64 MiB"),
        "{text}"
    );
    tree.file(
        "proc/self/limits",
        "Max locked memory         unlimited            unlimited            bytes\n",
    );
    assert_eq!(status_of(&tree.probe(None).0, "memlock"), Status::Ok);
}

#[test]
fn missing_group_node_and_bound_device_listing() {
    let tree = Tree::good();
    fs::remove_file(tree.path("dev/vfio/12")).unwrap();
    let (checks, text) = tree.probe(Some(CARD));
    assert_eq!(
        status_of(&checks, "group device"),
        Status::Missing,
        "{text}"
    );
    tree.file("dev/vfio/12", "");
    symlink(
        format!("../../devices/{CARD}"),
        tree.path(&format!("sys/bus/pci/drivers/vfio-pci/{CARD}")),
    )
    .unwrap();
    let (_, text) = tree.probe(None);
    assert!(
        text.contains("[info] devices: bound to vfio-pci: 0000:03:00.0"),
        "{text}"
    );
    assert!(
        text.ends_with("The host is ready for VFIO; pass --pci BDF to check a card.\n"),
        "{text}"
    );
}
