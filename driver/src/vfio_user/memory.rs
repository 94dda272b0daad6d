//! DMA memory shared between the two processes: a sealed memfd that the client maps and
//! passes to the server with `VFIO_USER_DMA_MAP`, and the server's mapping of it.
//!
//! The client seals the file's size (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`) before it
//! passes it on; the server refuses a file without `F_SEAL_SHRINK` or shorter than the
//! window, so that no later truncation can make one of its accesses fault (SIGBUS).

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;

use memmap2::MmapOptions;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};

use crate::dma::{DmaMemory, PAGE_BYTES};

/// Zeroed shared memory of `len_bytes` rounded up to whole pages, mapped here, and the
/// sealed file behind it (to pass to the server).
pub(crate) fn shared_dma_memory(len_bytes: usize) -> io::Result<(DmaMemory, File)> {
    let len = len_bytes
        .max(1)
        .checked_next_multiple_of(PAGE_BYTES)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
    let fd: OwnedFd = memfd_create(
        c"espo-dma",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let file = File::from(fd);
    file.set_len(len as u64)?;
    fcntl(
        &file,
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
        ),
    )?;
    let map = MmapOptions::new().len(len).populate().map_raw(&file)?;
    Ok((DmaMemory::from_mapping(map, PAGE_BYTES), file))
}

/// Why the server refuses a client's DMA window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowRefusal {
    /// The file's size is not sealed against shrinking.
    NotSealed,
    /// The window reaches past the end of the file (or is empty, or not page aligned).
    OutOfFile,
    /// mmap failed.
    Map,
}

/// The server's mapping of `len` bytes at `offset` of a client's sealed memory file.
#[cfg_attr(not(feature = "model"), allow(dead_code))]
pub(crate) fn map_client_window(
    fd: OwnedFd,
    offset: u64,
    len: u64,
) -> Result<DmaMemory, WindowRefusal> {
    let file = File::from(fd);
    let seals = fcntl(&file, FcntlArg::F_GET_SEALS).map_err(|_| WindowRefusal::NotSealed)?;
    if SealFlag::from_bits_truncate(seals) & SealFlag::F_SEAL_SHRINK != SealFlag::F_SEAL_SHRINK {
        return Err(WindowRefusal::NotSealed);
    }
    let file_len = file.metadata().map_err(|_| WindowRefusal::Map)?.len();
    let page = PAGE_BYTES as u64;
    let fits = offset.checked_add(len).is_some_and(|end| end <= file_len);
    if len == 0 || !fits || !offset.is_multiple_of(page) || !len.is_multiple_of(page) {
        return Err(WindowRefusal::OutOfFile);
    }
    let len = usize::try_from(len).map_err(|_| WindowRefusal::OutOfFile)?;
    let map = MmapOptions::new()
        .offset(offset)
        .len(len)
        .map_raw(&file)
        .map_err(|_| WindowRefusal::Map)?;
    Ok(DmaMemory::from_mapping(map, PAGE_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_mappings_see_the_same_bytes_and_unsealed_or_short_files_are_refused() {
        let (mem, file) = shared_dma_memory(5000).unwrap();
        assert_eq!(mem.len_bytes(), 8192);
        let fd = OwnedFd::from(file.try_clone().unwrap());
        let server = map_client_window(fd, 4096, 4096).unwrap();
        mem.write_u64(4096 + 8, 0xabcd).unwrap();
        assert_eq!(server.read_u64(8).unwrap(), 0xabcd);
        server.write_u32(0, 7).unwrap();
        assert_eq!(mem.read_u32(4096).unwrap(), 7);
        assert!(file.set_len(4096).is_err(), "sealed against shrinking");
        let fd = OwnedFd::from(file.try_clone().unwrap());
        assert_eq!(
            map_client_window(fd, 4096, 8192).err(),
            Some(WindowRefusal::OutOfFile)
        );

        let plain: OwnedFd = memfd_create(c"plain", MFdFlags::MFD_CLOEXEC).unwrap();
        let plain = File::from(plain);
        plain.set_len(4096).unwrap();
        assert_eq!(
            map_client_window(OwnedFd::from(plain), 0, 4096).err(),
            Some(WindowRefusal::NotSealed)
        );
    }
}
