//! The real syscall layer (see the parent module for what is done through `vfio-ioctls`).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use iommufd_ioctls::IommuFd;
use memmap2::{MmapOptions, MmapRaw};
use vfio_bindings::bindings::vfio::{
    VFIO_BASE, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
    VFIO_TYPE, vfio_device_info,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioIommufd, VfioOps};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::ioctl::{ioctl, ioctl_with_mut_ref, ioctl_with_ptr};
use vmm_sys_util::ioctl_io_nr;

use super::{ContainerId, DeviceId, DeviceInfo, EventId, IrqInfo, RegionInfo, Sys};
use crate::vfio::IommuInterface;

ioctl_io_nr!(VFIO_DEVICE_GET_INFO, VFIO_TYPE as u32, VFIO_BASE + 7);
ioctl_io_nr!(VFIO_DEVICE_SET_IRQS, VFIO_TYPE as u32, VFIO_BASE + 10);
ioctl_io_nr!(VFIO_DEVICE_RESET, VFIO_TYPE as u32, VFIO_BASE + 11);

/// Bits of a hugepage's size (2 MiB).
const HUGEPAGE_SHIFT: u8 = 21;

struct OpenDevice {
    /// A duplicate of the device fd for mmap and pread/pwrite. Declared first so it is
    /// closed before `device`, whose drop detaches the group (which fails while any device
    /// fd is still open).
    file: File,
    device: VfioDevice,
}

/// The real syscall layer.
#[derive(Default)]
pub(crate) struct OsSys {
    next: Mutex<u32>,
    /// Legacy containers and iommufd IOASes alike.
    containers: Mutex<HashMap<u32, Arc<dyn VfioOps>>>,
    devices: Mutex<HashMap<u32, Arc<OpenDevice>>>,
    events: Mutex<HashMap<u32, Arc<EventFd>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves the tables consistent (each operation
    // is a single insert/remove/get), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A handle that is not (or no longer) open: the OS's answer for a closed fd.
fn not_open() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

/// Turns a `vfio-ioctls` or `iommufd-ioctls` error into the OS error underneath it where
/// there is one.
fn from_crate(err: impl std::error::Error) -> io::Error {
    let mut cause: Option<&dyn std::error::Error> = err.source();
    while let Some(source) = cause {
        if let Some(code) = source
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return io::Error::from_raw_os_error(code);
        }
        if let Some(errno) = source.downcast_ref::<vmm_sys_util::errno::Error>() {
            return io::Error::from_raw_os_error(errno.errno());
        }
        cause = source.source();
    }
    io::Error::other(err.to_string())
}

fn check(ret: i32) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl OsSys {
    fn id(&self) -> u32 {
        let mut next = lock(&self.next);
        *next = next.wrapping_add(1);
        *next
    }

    fn container(&self, id: ContainerId) -> io::Result<Arc<dyn VfioOps>> {
        lock(&self.containers)
            .get(&id.0)
            .cloned()
            .ok_or_else(not_open)
    }

    fn device(&self, id: DeviceId) -> io::Result<Arc<OpenDevice>> {
        lock(&self.devices).get(&id.0).cloned().ok_or_else(not_open)
    }

    fn event(&self, id: EventId) -> io::Result<Arc<EventFd>> {
        lock(&self.events).get(&id.0).cloned().ok_or_else(not_open)
    }

    fn set_irqs(&self, device: DeviceId, flags: u32, index: u32, fds: &[i32]) -> io::Result<()> {
        let dev = self.device(device)?;
        // struct vfio_irq_set { argsz, flags, index, start, count, data[] } as u32 words.
        let mut words: Vec<u32> = Vec::with_capacity(5 + fds.len());
        let argsz = (5 + fds.len()) * 4;
        words.extend([argsz as u32, flags, index, 0, fds.len() as u32]);
        words.extend(fds.iter().map(|&fd| fd as u32));
        // SAFETY: `words` is a complete vfio_irq_set of `argsz` bytes followed by `count` fds,
        // alive for the call; the kernel only reads it.
        let ret = unsafe { ioctl_with_ptr(&dev.file, VFIO_DEVICE_SET_IRQS(), words.as_ptr()) };
        check(ret)
    }
}

impl Sys for OsSys {
    fn iommu_group(&self, device_sysfs: &Path) -> io::Result<u32> {
        let link = std::fs::read_link(device_sysfs.join("iommu_group"))?;
        link.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "iommu_group link"))
    }

    fn read_text(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn path_exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn open_container(&self, interface: IommuInterface) -> io::Result<ContainerId> {
        let ops: Arc<dyn VfioOps> = match interface {
            IommuInterface::Iommufd => {
                let iommufd = IommuFd::new().map_err(from_crate)?;
                Arc::new(VfioIommufd::new(Arc::new(iommufd), None, None).map_err(from_crate)?)
            }
            // `Auto` is resolved by the caller; treat a stray one as the legacy container.
            IommuInterface::Container | IommuInterface::Auto => {
                Arc::new(VfioContainer::new(None).map_err(from_crate)?)
            }
        };
        let id = self.id();
        lock(&self.containers).insert(id, ops);
        Ok(ContainerId(id))
    }

    fn close_container(&self, container: ContainerId) {
        lock(&self.containers).remove(&container.0);
    }

    fn open_device(&self, container: ContainerId, device_sysfs: &Path) -> io::Result<DeviceId> {
        let ops = self.container(container)?;
        // `attach_ioas` matters for iommufd only: attach the device to the container's IOAS.
        let device = VfioDevice::new(device_sysfs, ops, true).map_err(from_crate)?;
        // SAFETY: the fd belongs to `device`, which is alive for this borrow.
        let borrowed = unsafe { BorrowedFd::borrow_raw(device.as_raw_fd()) };
        let file = File::from(borrowed.try_clone_to_owned()?);
        let id = self.id();
        lock(&self.devices).insert(id, Arc::new(OpenDevice { file, device }));
        Ok(DeviceId(id))
    }

    fn close_device(&self, device: DeviceId) {
        let removed = lock(&self.devices).remove(&device.0);
        // `vfio-ioctls` unwraps while detaching the group in its drop (it re-reads the
        // device's sysfs `iommu_group` link, which is gone after a surprise removal). The
        // device fd is closed before that point; contain the panic so that teardown goes on
        // and the group is detached when the container closes.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(removed)));
    }

    fn device_info(&self, device: DeviceId) -> io::Result<DeviceInfo> {
        let dev = self.device(device)?;
        let mut info = vfio_device_info {
            argsz: std::mem::size_of::<vfio_device_info>() as u32,
            ..Default::default()
        };
        // SAFETY: `info` is a correctly sized vfio_device_info the kernel fills in.
        let ret = unsafe { ioctl_with_mut_ref(&dev.file, VFIO_DEVICE_GET_INFO(), &mut info) };
        check(ret)?;
        Ok(DeviceInfo {
            flags: info.flags,
            num_regions: info.num_regions,
            num_irqs: info.num_irqs,
        })
    }

    fn region_info(&self, device: DeviceId, index: u32) -> io::Result<RegionInfo> {
        let dev = self.device(device)?;
        Ok(RegionInfo {
            flags: dev.device.get_region_flags(index),
            size: dev.device.get_region_size(index),
            offset: dev.device.get_region_offset(index),
        })
    }

    fn irq_info(&self, device: DeviceId, index: u32) -> io::Result<IrqInfo> {
        let dev = self.device(device)?;
        match dev.device.get_irq_info(index) {
            Some(irq) => Ok(IrqInfo {
                flags: irq.flags,
                count: irq.count,
            }),
            None => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }

    fn map_region(&self, device: DeviceId, offset: u64, len: usize) -> io::Result<MmapRaw> {
        let dev = self.device(device)?;
        MmapOptions::new()
            .offset(offset)
            .len(len)
            .map_raw(&dev.file)
    }

    fn read_region(&self, device: DeviceId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.device(device)?.file.read_exact_at(buf, offset)
    }

    fn write_region(&self, device: DeviceId, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.device(device)?.file.write_all_at(buf, offset)
    }

    fn reset(&self, device: DeviceId) -> io::Result<()> {
        let dev = self.device(device)?;
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        check(unsafe { ioctl(&dev.file, VFIO_DEVICE_RESET()) })
    }

    fn set_irq_eventfds(&self, device: DeviceId, index: u32, events: &[EventId]) -> io::Result<()> {
        let events: Vec<Arc<EventFd>> = events
            .iter()
            .map(|&e| self.event(e))
            .collect::<Result<_, _>>()?;
        let fds: Vec<i32> = events.iter().map(|e| e.as_raw_fd()).collect();
        let flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
        self.set_irqs(device, flags, index, &fds)
    }

    fn disable_irqs(&self, device: DeviceId, index: u32) -> io::Result<()> {
        self.set_irqs(
            device,
            VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
            index,
            &[],
        )
    }

    unsafe fn dma_map(
        &self,
        container: ContainerId,
        iova: u64,
        len: usize,
        host: *mut u8,
    ) -> io::Result<()> {
        let c = self.container(container)?;
        // SAFETY: the caller upholds this function's contract, which is the crate's.
        unsafe { c.vfio_dma_map(iova, len, host) }.map_err(from_crate)
    }

    fn dma_unmap(&self, container: ContainerId, iova: u64, len: usize) -> io::Result<()> {
        self.container(container)?
            .vfio_dma_unmap(iova, len)
            .map_err(from_crate)
    }

    fn map_anonymous(&self, len: usize, hugepage: bool) -> io::Result<MmapRaw> {
        let mut options = MmapOptions::new();
        options.len(len);
        if !hugepage && len >= 1 << HUGEPAGE_SHIFT {
            // Transparent hugepages where the kernel gives them (its `madvise` mode, or
            // `always`): a device's buffers then take a few TLB (and IOMMU) entries, not
            // one per 4 KiB. Asked for before any page is faulted in; a kernel without
            // `MADV_POPULATE_WRITE` (before 5.14) gets the mapping made again, populated.
            let map = MmapRaw::from(options.map_anon()?);
            let _ = map.advise(memmap2::Advice::HugePage);
            if map.advise(memmap2::Advice::PopulateWrite).is_ok() {
                return Ok(map);
            }
        }
        options.populate();
        if hugepage {
            options.huge(Some(HUGEPAGE_SHIFT));
        }
        options.map_anon().map(MmapRaw::from)
    }

    fn eventfd(&self) -> io::Result<EventId> {
        let fd = EventFd::new(EFD_NONBLOCK)?;
        let id = self.id();
        lock(&self.events).insert(id, Arc::new(fd));
        Ok(EventId(id))
    }

    fn close_eventfd(&self, event: EventId) {
        lock(&self.events).remove(&event.0);
    }

    fn eventfd_dup(&self, event: EventId) -> io::Result<OwnedFd> {
        let fd = self.event(event)?;
        // SAFETY: the eventfd is open for as long as `fd` (an `Arc` of it) lives, which is
        // longer than this borrow; the duplicate made from it is a new descriptor we own.
        unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) }.try_clone_to_owned()
    }

    fn wait_eventfd(&self, event: EventId, timeout: Duration) -> io::Result<u64> {
        let fd = self.event(event)?;
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: `pfd` is one valid pollfd for the duration of the call.
            let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if ret < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if ret == 0 {
                return Ok(0);
            }
            return match fd.read() {
                Ok(count) => Ok(count),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(err) => Err(err),
            };
        }
    }
}

/// The real layer on this machine, whatever it offers: eventfds and anonymous memory work
/// everywhere; VFIO calls fail cleanly where there is no VFIO.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::{PAGE_BYTES, allocate_dma_memory};

    #[test]
    fn eventfd_without_signal_reads_as_timeout() {
        let sys = OsSys::default();
        let event = sys.eventfd().unwrap();
        assert_eq!(sys.wait_eventfd(event, Duration::ZERO).unwrap(), 0);
        sys.close_eventfd(event);
        let err = sys.wait_eventfd(event, Duration::ZERO).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn a_duplicate_of_an_eventfd_sees_its_signal_and_reading_it_takes_the_count() {
        use std::io::{Read, Write};
        let sys = OsSys::default();
        let event = sys.eventfd().unwrap();
        let dup = std::fs::File::from(sys.eventfd_dup(event).unwrap());
        (&dup).write_all(&3u64.to_ne_bytes()).unwrap();
        let mut count = [0u8; 8];
        (&dup).read_exact(&mut count).unwrap();
        assert_eq!(u64::from_ne_bytes(count), 3);
        assert_eq!(sys.wait_eventfd(event, Duration::ZERO).unwrap(), 0, "taken");
        (&dup).write_all(&1u64.to_ne_bytes()).unwrap();
        assert_eq!(sys.wait_eventfd(event, Duration::ZERO).unwrap(), 1);
        sys.close_eventfd(event);
        assert!(sys.eventfd_dup(event).is_err());
    }

    #[test]
    fn dma_memory_from_the_kernel_is_zeroed_and_page_aligned() {
        let sys = OsSys::default();
        let memory = allocate_dma_memory(&sys, 3 * PAGE_BYTES + 1, true).unwrap();
        assert_eq!(memory.len_bytes(), 4 * PAGE_BYTES);
        assert_eq!(memory.host_ptr() as usize % memory.page_bytes(), 0);
        let mut bytes = vec![0xffu8; memory.len_bytes()];
        memory.read_bytes(0, &mut bytes).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn large_dma_memory_without_hugepages_is_zeroed_and_in_transparent_hugepages_if_the_kernel_gives_them()
     {
        let sys = OsSys::default();
        let len = 4 << HUGEPAGE_SHIFT;
        let memory = allocate_dma_memory(&sys, len, false).unwrap();
        assert_eq!((memory.len_bytes(), memory.page_bytes()), (len, PAGE_BYTES));
        let mut bytes = vec![0xffu8; len];
        memory.read_bytes(0, &mut bytes).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
        memory.write_bytes(len - 3, &[1, 2, 3]).unwrap();
        memory.read_bytes(len - 3, &mut bytes[..3]).unwrap();
        assert_eq!(&bytes[..3], &[1, 2, 3]);
        // Where the kernel hands out transparent hugepages for advised memory, the mapping
        // has some (its 2 MiB-aligned part; not asserted where THP is off).
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if thp.contains("[never]") || thp.is_empty() {
            return;
        }
        let start = memory.host_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_mapping = false;
        let mut huge_kib = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            {
                in_mapping = (a..b).contains(&start);
                continue;
            }
            if in_mapping && let Some(v) = line.strip_prefix("AnonHugePages:") {
                huge_kib = v.trim().trim_end_matches("kB").trim().parse::<usize>().ok();
            }
        }
        let huge_kib = huge_kib.expect("the mapping's AnonHugePages in /proc/self/smaps");
        assert!(huge_kib >= 2048, "{huge_kib} kB in transparent hugepages");
    }

    #[test]
    fn missing_vfio_fails_with_the_os_error() {
        let sys = OsSys::default();
        if Path::new("/dev/vfio/vfio").exists() {
            return; // a VFIO host: the QEMU guest test covers the success path
        }
        let err = sys.open_container(IommuInterface::Container).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
        let err = sys.dma_unmap(ContainerId(99), 0x1000, 0x1000).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    }
}
