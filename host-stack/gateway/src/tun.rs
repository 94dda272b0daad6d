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

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use tun_rs::{DeviceBuilder, SyncDevice};

/// A TUN device (IFF_TUN | IFF_NO_PI): one read is one IP packet — with offloads
/// (`IFF_VNET_HDR`, and `TUNSETOFFLOAD` with TSO4/TSO6 and, where the kernel has them,
/// USO4/USO6) a virtio-net header and a packet of up to 64 KiB that espo segments itself
/// ([`espo_ipsec::gso`]), and every write starts with such a header too ([`espo_ipsec::gro`]).
pub struct Tun {
    dev: SyncDevice,
    name: String,
    vnet_hdr: bool,
}

/// An all-zero virtio-net header: a single packet, its checksum complete.
const NO_OFFLOAD: [u8; espo_ipsec::gso::VNET_HDR_LEN] = [0; espo_ipsec::gso::VNET_HDR_LEN];

impl core::fmt::Debug for Tun {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tun").field("name", &self.name).finish()
    }
}

impl Tun {
    /// Creates the device `name` (it disappears when espo closes it), non-blocking, down
    /// and without addresses; with `offload`, with offloads where the kernel offers them.
    pub fn create(name: &str, offload: bool) -> io::Result<Tun> {
        let build = |offload: bool| {
            DeviceBuilder::new()
                .name(name)
                .packet_information(false)
                .offload(offload)
                .enable(false)
                .build_sync()
        };
        let dev = match build(offload) {
            Ok(dev) => dev,
            // A kernel without IFF_VNET_HDR on TUN: without offloads.
            Err(_) if offload => build(false)?,
            Err(e) => return Err(e),
        };
        dev.set_nonblocking(true)?;
        let name = dev.name()?;
        Ok(Tun {
            vnet_hdr: dev.tcp_gso(),
            dev,
            name,
        })
    }

    /// Whether reads and writes carry a virtio-net header (offloads on).
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet (with offloads, header first); `WouldBlock` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.recv(buf)
    }

    /// Writes `bytes` as they are (with offloads, they start with a virtio-net header).
    pub fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        self.dev.send(bytes)
    }

    /// Writes one whole packet to the inside stack (with offloads, behind a header that
    /// says so).
    pub fn send_packet(&self, pkt: &[u8]) -> io::Result<usize> {
        if self.vnet_hdr {
            self.dev
                .send_vectored(&[IoSlice::new(&NO_OFFLOAD), IoSlice::new(pkt)])
        } else {
            self.dev.send(pkt)
        }
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
