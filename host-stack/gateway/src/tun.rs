//! The inside: the TUN device espo creates.
//!
//! The TUNSETIFF ioctl needs `unsafe`, which espo allows only in the driver's VFIO, MMIO
//! and DMA modules. The `tun-rs` crate wraps it (and the rest of the TUN API) behind a safe
//! interface; it is maintained, Linux-first, has no async runtime in its default-off
//! feature set, and its interruptible reads are not needed here because espo polls the
//! device's descriptor itself. `nix` offers only `unsafe` ioctl macros, and the older
//! `tun` crate pulls in an async runtime for features espo does not use.
//!
//! espo configures the device (up, MTU, addresses, routes) over rtnetlink
//! ([`super::netlink`]), not through tun-rs's ioctl helpers, so that everything it sets
//! it can also remove by the same means.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use tun_rs::{DeviceBuilder, SyncDevice};

/// A TUN device (IFF_TUN | IFF_NO_PI): one read is one IP packet.
pub struct Tun {
    dev: SyncDevice,
    name: String,
}

impl core::fmt::Debug for Tun {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tun").field("name", &self.name).finish()
    }
}

impl Tun {
    /// Creates the device `name` (it disappears when espo closes it), non-blocking, down
    /// and without addresses.
    pub fn create(name: &str) -> io::Result<Tun> {
        let dev = DeviceBuilder::new()
            .name(name)
            .packet_information(false)
            .enable(false)
            .build_sync()?;
        dev.set_nonblocking(true)?;
        let name = dev.name()?;
        Ok(Tun { dev, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet; `WouldBlock` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.recv(buf)
    }

    /// Writes one packet to the inside stack.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        self.dev.send(pkt)
    }
}

/// Lets the kernel accept packets from the TUN device whose source is one of this host's
/// own addresses (`net.ipv4.conf.TUN.accept_local`): espo's ICMP errors come from the TUN
/// device's address, and without it the kernel would drop them as martians.
pub fn accept_local(name: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/net/ipv4/conf/{name}/accept_local"), "1")
}

/// Keeps the kernel's own IPv6 housekeeping off the TUN device, before it comes up: no
/// link-local address (`addr_gen_mode` none), so no router solicitations or MLD reports
/// for it that no policy covers and espo would have to count as dropped.
pub fn quiet_ipv6(name: &str) -> io::Result<()> {
    let conf = format!("/proc/sys/net/ipv6/conf/{name}");
    if !Path::new(&conf).exists() {
        return Ok(()); // IPv6 disabled on this host
    }
    std::fs::write(format!("{conf}/addr_gen_mode"), "1")?;
    std::fs::write(format!("{conf}/router_solicitations"), "0")
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
}
