//! The VFIO backend against the simulated kernel (`crate::sys::mock`).

use std::error::Error as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vfio_bindings::bindings::vfio::VFIO_DEVICE_FLAGS_PCI;

use super::*;
use crate::device::{Device, IrqWait};
use crate::error::{AccessError, DeviceError};
use crate::pci::{CONFIG_COMMAND, PciAddress};
use crate::sys::mock::{MockDevice, MockSys};

const ADDRESS: &str = "0000:00:04.0";

fn address() -> PciAddress {
    ADDRESS.parse().unwrap()
}

fn options() -> VfioOptions {
    VfioOptions {
        sysfs_root: PathBuf::from("/fake/sys"),
        ..VfioOptions::default()
    }
}

fn mock_with(device: MockDevice) -> Arc<MockSys> {
    let sys = Arc::new(MockSys::new());
    sys.add_device(
        &Path::new("/fake/sys/bus/pci/devices").join(ADDRESS),
        device,
    );
    sys
}

fn open(sys: &Arc<MockSys>) -> Result<VfioDevice, VfioError> {
    VfioContainer::with_sys(sys.clone(), options())?.open_device(address())
}

fn os_errno(err: &dyn std::error::Error) -> Option<i32> {
    let mut cur = err.source();
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cur = e.source();
    }
    None
}

#[test]
fn open_discovers_regions_and_maps_memory_bars() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    assert_eq!(dev.group(), 7);
    assert_eq!(dev.address().to_string(), ADDRESS);
    assert_eq!(dev.regions().len(), 9);
    let bar0 = dev.regions()[0];
    assert_eq!(
        (bar0.size, bar0.readable, bar0.writable, bar0.mappable),
        (1 << 20, true, true, true)
    );
    assert_eq!(dev.bar_len(0), Some(1 << 20));
    assert_eq!(dev.bar_len(1), None);
    assert_eq!(dev.bar_len(2), Some(0x4000));
    assert!(dev.can_reset());
    let calls = sys.calls();
    let expected_prefix = [
        "open_container Container",
        "iommu_group",
        "open_device",
        "device_info",
        "region_info 0",
    ];
    assert_eq!(&calls[..5], expected_prefix);
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("map_region")).count(),
        2,
        "{calls:?}"
    );
}

#[test]
fn bar_access_is_bounds_checked() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    dev.write32(0, 0x04, 0xdead_beef).unwrap();
    assert_eq!(dev.read32(0, 0x04).unwrap(), 0xdead_beef);
    dev.write64(2, 0x3ff8, 7).unwrap();
    assert_eq!(dev.read64(2, 0x3ff8).unwrap(), 7);
    assert!(matches!(
        dev.read32(0, 1 << 20),
        Err(DeviceError::Access(AccessError::OutOfBounds {
            offset: 0x10_0000,
            width_bytes: 4,
            len_bytes: 0x10_0000
        }))
    ));
    assert!(matches!(
        dev.read64(2, 0x4000),
        Err(DeviceError::Access(AccessError::OutOfBounds { .. }))
    ));
    assert!(matches!(
        dev.write32(0, 6, 0),
        Err(DeviceError::Access(AccessError::Misaligned { .. }))
    ));
    assert!(matches!(
        dev.read32(1, 0),
        Err(DeviceError::NoSuchBar { bar: 1 })
    ));
    assert!(matches!(
        dev.read32(9, 0),
        Err(DeviceError::NoSuchBar { bar: 9 })
    ));
}

#[test]
fn non_pci_device_is_refused() {
    let sys = mock_with(MockDevice {
        flags: 0,
        ..MockDevice::default()
    });
    assert!(matches!(open(&sys), Err(VfioError::NotPci { flags: 0 })));
}

#[test]
fn open_errors_map_to_their_operation() {
    type Check = fn(&VfioError) -> bool;
    let cases: [(&str, i32, Check); 6] = [
        ("open_container", libc::ENOENT, |e| {
            matches!(e, VfioError::OpenContainer { .. })
        }),
        ("iommu_group", libc::ENOENT, |e| {
            matches!(e, VfioError::IommuGroup { .. })
        }),
        ("open_device", libc::EBUSY, |e| {
            matches!(e, VfioError::OpenDevice { group: 7, .. })
        }),
        ("device_info", libc::EIO, |e| {
            matches!(e, VfioError::DeviceInfo { .. })
        }),
        ("region_info", libc::EIO, |e| {
            matches!(e, VfioError::RegionInfo { index: 0, .. })
        }),
        ("map_region", libc::ENOMEM, |e| {
            matches!(e, VfioError::MapBar { bar: 0, .. })
        }),
    ];
    for (op, errno, is_expected) in cases {
        let sys = mock_with(MockDevice::default());
        sys.fail(op, errno);
        let err = open(&sys)
            .err()
            .unwrap_or_else(|| panic!("{op} failure was ignored"));
        assert!(is_expected(&err), "{op}: {err:?}");
        assert_eq!(
            err.source()
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .and_then(|e| e.raw_os_error()),
            Some(errno),
            "{op}"
        );
        // Whatever was opened before the failure is closed again.
        assert_eq!(sys.open_handles(), (0, 0, 0), "{op}");
    }
}

#[test]
fn dma_regions_get_disjoint_iovas_and_unmap_on_drop() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    let a = dev.alloc_dma(100).unwrap();
    let b = dev.alloc_dma(3 * 4096).unwrap();
    let c = dev.alloc_dma(4096).unwrap();
    assert_eq!(a.len_bytes(), 4096);
    assert_eq!(b.len_bytes(), 3 * 4096);
    let mut spans = [(a.iova(), 4096u64), (b.iova(), 3 * 4096), (c.iova(), 4096)];
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{spans:?}");
    }
    assert!(
        spans
            .iter()
            .all(|&(iova, _)| iova >= 0x10_0000 && iova % 4096 == 0)
    );
    assert_eq!(sys.dma_mappings().len(), 3);
    assert_eq!(dev.container().dma_mappings(), 3);
    let b_iova = b.iova();
    drop(b);
    assert_eq!(sys.dma_mappings().len(), 2);
    assert!(!sys.dma_mappings().iter().any(|&(iova, _)| iova == b_iova));
    // The released range is reused.
    let d = dev.alloc_dma(2 * 4096).unwrap();
    assert_eq!(d.iova(), b_iova);
    a.write_u32(0, 42).unwrap();
    assert_eq!(a.read_u32(0).unwrap(), 42);
}

#[test]
fn iova_exhaustion_and_kernel_refusals() {
    let sys = mock_with(MockDevice::default());
    let opts = VfioOptions {
        iova_windows: std::iter::once(0x1000..0x4000).collect(),
        ..options()
    };
    let dev = VfioContainer::with_sys(sys.clone(), opts)
        .unwrap()
        .open_device(address())
        .unwrap();
    let _a = dev.alloc_dma(2 * 4096).unwrap();
    let err = dev.alloc_dma(2 * 4096).unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Vfio(VfioError::IovaExhausted { len_bytes: 8192 })
        ),
        "{err:?}"
    );

    // The kernel's mapping limit (ENOSPC) surfaces as MapDma, and the IOVA is not lost.
    sys.set_dma_entry_limit(1);
    let err = dev.alloc_dma(4096).unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Vfio(VfioError::MapDma { iova: 0x3000, .. })
        ),
        "{err:?}"
    );
    assert_eq!(os_errno(&err), Some(libc::ENOSPC));
    sys.set_dma_entry_limit(2);
    assert_eq!(dev.alloc_dma(4096).unwrap().iova(), 0x3000);

    sys.fail("map_anonymous", libc::ENOMEM);
    assert!(matches!(
        dev.alloc_dma(4096),
        Err(DeviceError::Vfio(VfioError::AllocDma {
            len_bytes: 4096,
            ..
        }))
    ));
}

#[test]
fn failed_unmap_is_reported_and_keeps_the_iova_reserved() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    let region = dev.alloc_dma(4096).unwrap();
    let iova = region.iova();
    sys.fail("dma_unmap", libc::EINVAL);
    let err = region.unmap().unwrap_err();
    assert!(
        matches!(
            err,
            DeviceError::Vfio(VfioError::UnmapDma {
                len_bytes: 4096,
                ..
            })
        ),
        "{err:?}"
    );
    // Still mapped in the IOMMU, so the range must not be handed out again.
    assert_ne!(dev.alloc_dma(4096).unwrap().iova(), iova);
}

#[test]
fn teardown_order_is_dma_then_device_then_container() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    dev.enable_irqs(2).unwrap();
    let region = dev.alloc_dma(4096).unwrap();
    drop(dev);
    let calls = sys.calls();
    assert!(
        calls.iter().any(|c| c.starts_with("write_region")),
        "bus master not cleared: {calls:?}"
    );
    assert!(calls.iter().any(|c| c.starts_with("disable_irqs")));
    // The region still holds the container: the device fd stays open while mapped.
    assert!(!calls.iter().any(|c| c == "close_device"), "{calls:?}");
    assert_eq!(sys.open_handles(), (1, 1, 0));
    drop(region);
    let calls = sys.calls();
    let at = |name: &str| calls.iter().position(|c| c.starts_with(name)).unwrap();
    assert!(at("dma_unmap") < at("close_device"));
    assert!(at("close_device") < at("close_container"));
    assert_eq!(sys.open_handles(), (0, 0, 0));
    assert!(sys.dma_mappings().is_empty());
}

#[test]
fn bus_master_toggles_only_its_bit() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    dev.write_config(CONFIG_COMMAND, &0x0402u16.to_le_bytes())
        .unwrap();
    dev.set_bus_master(true).unwrap();
    assert_eq!(sys.config_u16(dev.id, 4), 0x0406);
    dev.set_bus_master(false).unwrap();
    assert_eq!(sys.config_u16(dev.id, 4), 0x0402);
    sys.fail("read_region", libc::EIO);
    assert!(matches!(
        dev.set_bus_master(true),
        Err(DeviceError::Vfio(VfioError::ReadConfig { offset: 4, .. }))
    ));
}

#[test]
fn config_write_failure_is_reported() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    sys.fail("write_region", libc::EIO);
    assert!(matches!(
        dev.set_bus_master(true),
        Err(DeviceError::Vfio(VfioError::WriteConfig { offset: 4, .. }))
    ));
}

#[test]
fn reset_needs_the_kernel_flag() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    dev.reset().unwrap();
    sys.fail("reset", libc::EIO);
    assert!(matches!(
        dev.reset(),
        Err(DeviceError::Vfio(VfioError::Reset { .. }))
    ));

    let sys = mock_with(MockDevice {
        flags: VFIO_DEVICE_FLAGS_PCI,
        ..MockDevice::default()
    });
    let dev = open(&sys).unwrap();
    assert!(!dev.can_reset());
    assert!(matches!(dev.reset(), Err(DeviceError::ResetUnsupported)));
    assert!(!sys.calls().iter().any(|c| c == "reset"));
}

#[test]
fn msix_vectors_fire_mask_and_keep_pending() {
    let sys = mock_with(MockDevice::default());
    let dev = open(&sys).unwrap();
    assert!(matches!(
        dev.wait_irq(0, Duration::ZERO),
        Err(DeviceError::NoSuchVector { enabled: 0, .. })
    ));
    assert_eq!(
        dev.enable_irqs(8).unwrap(),
        4,
        "clamped to the device's 4 MSI-X vectors"
    );
    assert_eq!(dev.irq_kind(), Some(IrqKind::MsiX));
    assert!(sys.calls().contains(&"set_irq_eventfds 2 x4".to_string()));

    sys.raise_irq(dev.id, 2, 2);
    sys.raise_irq(dev.id, 2, 2);
    assert_eq!(
        dev.wait_irq(2, Duration::from_secs(1)).unwrap(),
        IrqWait::Fired { count: 2 }
    );
    assert_eq!(dev.wait_irq(2, Duration::ZERO).unwrap(), IrqWait::TimedOut);
    assert_eq!(dev.wait_irq(1, Duration::ZERO).unwrap(), IrqWait::TimedOut);

    dev.mask_irq(3).unwrap();
    sys.raise_irq(dev.id, 2, 3);
    assert!(matches!(
        dev.wait_irq(3, Duration::ZERO),
        Err(DeviceError::VectorMasked { vector: 3 })
    ));
    dev.unmask_irq(3).unwrap();
    assert_eq!(
        dev.wait_irq(3, Duration::ZERO).unwrap(),
        IrqWait::Fired { count: 1 }
    );

    assert!(matches!(
        dev.wait_irq(4, Duration::ZERO),
        Err(DeviceError::NoSuchVector {
            vector: 4,
            enabled: 4
        })
    ));
    assert!(matches!(
        dev.mask_irq(4),
        Err(DeviceError::NoSuchVector { .. })
    ));
    assert!(matches!(
        dev.enable_irqs(1),
        Err(DeviceError::Vfio(VfioError::IrqsAlreadyEnabled))
    ));

    sys.fail("wait_eventfd", libc::EBADF);
    assert!(matches!(
        dev.wait_irq(0, Duration::ZERO),
        Err(DeviceError::Vfio(VfioError::WaitIrq { vector: 0, .. }))
    ));
    drop(dev);
    assert_eq!(sys.open_handles(), (0, 0, 0), "eventfds closed");
}

#[test]
fn msi_is_used_without_msix_and_neither_is_an_error() {
    let sys = mock_with(MockDevice {
        irqs: [1, 1, 0, 1, 1],
        ..MockDevice::default()
    });
    let dev = open(&sys).unwrap();
    assert_eq!(dev.enable_irqs(4).unwrap(), 1);
    assert_eq!(dev.irq_kind(), Some(IrqKind::Msi));
    sys.raise_irq(dev.id, 1, 0);
    assert_eq!(
        dev.wait_irq(0, Duration::ZERO).unwrap(),
        IrqWait::Fired { count: 1 }
    );

    let sys = mock_with(MockDevice {
        irqs: [1, 0, 0, 0, 0],
        ..MockDevice::default()
    });
    let dev = open(&sys).unwrap();
    assert!(matches!(
        dev.enable_irqs(1),
        Err(DeviceError::Vfio(VfioError::NoMessageInterrupts))
    ));
}

#[test]
fn irq_setup_errors_map_to_their_operation() {
    type Check = fn(&DeviceError) -> bool;
    let cases: [(&str, Check); 3] = [
        ("irq_info", |e| {
            matches!(e, DeviceError::Vfio(VfioError::IrqInfo { index: 2, .. }))
        }),
        ("eventfd", |e| {
            matches!(e, DeviceError::Vfio(VfioError::CreateEventFd { .. }))
        }),
        ("set_irq_eventfds", |e| {
            matches!(
                e,
                DeviceError::Vfio(VfioError::EnableIrqs {
                    index: 2,
                    count: 2,
                    ..
                })
            )
        }),
    ];
    for (op, is_expected) in cases {
        let sys = mock_with(MockDevice::default());
        let dev = open(&sys).unwrap();
        sys.fail(op, libc::EMFILE);
        let err = dev.enable_irqs(2).unwrap_err();
        assert!(is_expected(&err), "{op}: {err:?}");
        assert_eq!(os_errno(&err), Some(libc::EMFILE), "{op}");
        assert_eq!(sys.open_handles().2, 0, "{op}: eventfds leaked");
        assert!(dev.irq_kind().is_none());
    }
}

#[test]
fn interface_choice_follows_what_the_kernel_offers() {
    let chosen = |paths: &[&str], asked: IommuInterface| {
        let sys = mock_with(MockDevice::default());
        for p in paths {
            sys.add_path(p);
        }
        let opts = VfioOptions {
            interface: asked,
            ..options()
        };
        let container = VfioContainer::with_sys(sys.clone(), opts).unwrap();
        assert_eq!(
            sys.calls()[0],
            format!("open_container {:?}", container.interface())
        );
        container.interface()
    };
    use IommuInterface::*;
    assert_eq!(chosen(&["/dev/vfio/vfio", "/dev/iommu"], Auto), Container);
    assert_eq!(chosen(&["/dev/vfio/vfio"], Auto), Container);
    assert_eq!(chosen(&["/dev/iommu"], Auto), Iommufd);
    assert_eq!(
        chosen(&[], Auto),
        Container,
        "nothing there: the container error is the clearer one"
    );
    assert_eq!(chosen(&["/dev/vfio/vfio", "/dev/iommu"], Iommufd), Iommufd);
    assert_eq!(chosen(&["/dev/iommu"], Container), Container);
}

#[test]
fn iommufd_devices_get_the_same_discovery_and_dma_bookkeeping() {
    let sys = mock_with(MockDevice::default());
    let opts = VfioOptions {
        interface: IommuInterface::Iommufd,
        ..options()
    };
    let dev = VfioContainer::with_sys(sys.clone(), opts)
        .unwrap()
        .open_device(address())
        .unwrap();
    assert_eq!(dev.container().interface(), IommuInterface::Iommufd);
    assert_eq!(dev.bar_len(0), Some(1 << 20));
    let region = dev.alloc_dma(4096).unwrap();
    assert_eq!(sys.dma_mappings(), vec![(region.iova(), 4096)]);
    drop(region);
    drop(dev);
    assert_eq!(sys.open_handles(), (0, 0, 0));

    sys.fail("open_container", libc::ENOENT);
    let opts = VfioOptions {
        interface: IommuInterface::Iommufd,
        ..options()
    };
    let err = VfioContainer::with_sys(sys.clone(), opts).err().unwrap();
    assert!(
        matches!(
            err,
            VfioError::OpenContainer {
                interface: IommuInterface::Iommufd,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn dropped_device_closes_at_once_without_mappings() {
    let sys = mock_with(MockDevice::default());
    let container = VfioContainer::with_sys(sys.clone(), options()).unwrap();
    let dev = container.open_device(address()).unwrap();
    drop(dev);
    // The container is still held, but the device (and so its group) is released.
    assert_eq!(sys.open_handles(), (1, 0, 0));
    let again = container.open_device(address()).unwrap();
    let region = again.alloc_dma(4096).unwrap();
    drop(again);
    assert_eq!(
        sys.open_handles(),
        (1, 1, 0),
        "last device stays while a mapping exists"
    );
    drop(region);
    assert_eq!(
        sys.open_handles(),
        (1, 0, 0),
        "closed with the last mapping"
    );
    assert!(sys.dma_mappings().is_empty());
    drop(container);
    assert_eq!(sys.open_handles(), (0, 0, 0));
}

#[test]
fn device_that_fails_to_come_up_is_closed_in_a_shared_container() {
    let sys = mock_with(MockDevice::default());
    let container = VfioContainer::with_sys(sys.clone(), options()).unwrap();
    sys.fail("map_region", libc::ENOMEM);
    assert!(matches!(
        container.open_device(address()),
        Err(VfioError::MapBar { bar: 0, .. })
    ));
    assert_eq!(
        sys.open_handles(),
        (1, 0, 0),
        "device fd closed, container kept"
    );
    let calls = sys.calls();
    assert_eq!(
        calls.last().map(String::as_str),
        Some("close_device"),
        "{calls:?}"
    );
}

#[test]
fn reserved_regions_of_the_group_are_never_mapped() {
    let sys = mock_with(MockDevice::default());
    sys.add_file(
        "/fake/sys/kernel/iommu_groups/7/reserved_regions",
        "0x0000000000100000 0x0000000000101fff direct\n0x00000000fee00000 0x00000000feefffff msi\n",
    );
    let dev = open(&sys).unwrap();
    let region = dev.alloc_dma(4096).unwrap();
    assert_eq!(
        region.iova(),
        0x10_2000,
        "the direct-mapped range at 1 MiB is skipped"
    );
}
