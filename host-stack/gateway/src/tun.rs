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

use crate::path::PacketBuf;

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
    /// and without addresses; with `offload`, with offloads where the kernel offers them;
    /// with `queues` queues (`IFF_MULTI_QUEUE` when more than one): each is a descriptor
    /// of its own that reads the packets of the flows the kernel steers to it, and a write
    /// on any queue reaches the inside stack.
    pub fn create_queues(name: &str, offload: bool, queues: usize) -> io::Result<Vec<Tun>> {
        let multi = queues > 1;
        let build = |offload: bool| {
            DeviceBuilder::new()
                .name(name)
                .packet_information(false)
                .offload(offload)
                .multi_queue(multi)
                .enable(false)
                .build_sync()
        };
        let dev = match build(offload) {
            Ok(dev) => dev,
            // A kernel without IFF_VNET_HDR on TUN: without offloads.
            Err(_) if offload => build(false)?,
            Err(e) => return Err(e),
        };
        let name = dev.name()?;
        let mut devs = Vec::with_capacity(queues.max(1));
        for _ in 1..queues {
            devs.push(dev.try_clone()?);
        }
        devs.insert(0, dev);
        devs.into_iter()
            .map(|dev| {
                dev.set_nonblocking(true)?;
                Ok(Tun {
                    vnet_hdr: dev.tcp_gso(),
                    dev,
                    name: name.clone(),
                })
            })
            .collect()
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

    /// What goes in front of a packet written without offloads: the virtio-net header
    /// that asks for none, or nothing when the device has no such header.
    pub fn header(&self) -> &'static [u8] {
        match self.vnet_hdr {
            true => &NO_OFFLOAD,
            false => &[],
        }
    }

    /// [`send_packet`](Self::send_packet) for a packet in a [`PacketBuf`]: with offloads,
    /// its header goes into the buffer's room in front of the packet where there is some,
    /// so that one plain write carries both.
    pub fn send_buf(&self, p: &mut PacketBuf) -> io::Result<usize> {
        if self.vnet_hdr
            && let Some(bytes) = p.with_prefix(&NO_OFFLOAD)
        {
            return self.dev.send(bytes);
        }
        self.send_packet(p.packet())
    }
}

/// The queue the inbound thread writes `packet` (an IP packet) through: the same for both
/// directions of a flow (addresses and, for TCP and UDP, ports), spread over the queues.
///
/// With several queues the kernel steers a flow's outgoing packets to the queue its
/// incoming packets were last written through, so writing each flow through a queue of its
/// own choosing spreads the flows over the outbound workers (one to a queue); writing every
/// packet through one queue would steer every flow with return traffic to one worker.
pub fn queue_for<'t>(queues: &'t [Tun], packet: &[u8]) -> &'t Tun {
    &queues[queue_index(queues.len(), packet)]
}

/// Which of `n` queues `packet`'s flow goes through (see [`queue_for`]).
fn queue_index(n: usize, packet: &[u8]) -> usize {
    if n <= 1 {
        return 0;
    }
    let word = |b: &[u8]| b.iter().fold(0u32, |h, &x| h.rotate_left(8) ^ u32::from(x));
    let (addrs, proto, l4) = match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let first_fragment = packet[6] & 0x1f == 0 && packet[7] == 0;
            let l4 = packet.get(ihl..ihl + 4).filter(|_| first_fragment);
            (word(&packet[12..16]) ^ word(&packet[16..20]), packet[9], l4)
        }
        Some(6) if packet.len() >= 40 => {
            let src = packet[8..24].chunks(4).fold(0, |h, c| h ^ word(c));
            let dst = packet[24..40].chunks(4).fold(0, |h, c| h ^ word(c));
            (src ^ dst, packet[6], packet.get(40..44))
        }
        _ => return 0,
    };
    let ports = match (proto, l4) {
        (6 | 17, Some(p)) => {
            u32::from(u16::from_be_bytes([p[0], p[1]]) ^ u16::from_be_bytes([p[2], p[3]]))
        }
        _ => 0,
    };
    let h = (addrs ^ ports ^ u32::from(proto)).wrapping_mul(0x9e37_79b9);
    ((u64::from(h) * n as u64) >> 32) as usize
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

#[cfg(test)]
mod tests {
    use super::queue_index;

    fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    fn v6(src: u8, dst: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 60];
        p[0] = 0x60;
        p[6] = 6;
        p[8] = 0xfd;
        p[23] = src;
        p[24] = 0xfd;
        p[39] = dst;
        p[40..42].copy_from_slice(&sport.to_be_bytes());
        p[42..44].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn both_directions_of_a_flow_take_one_queue_and_flows_spread() {
        for n in [2, 3, 4, 8] {
            let mut used = vec![0usize; n];
            for port in 0..400u16 {
                let a = v4([10, 1, 0, 1], [10, 2, 0, 1], 6, 40000 + port, 5201);
                let b = v4([10, 2, 0, 1], [10, 1, 0, 1], 6, 5201, 40000 + port);
                let q = queue_index(n, &a);
                assert!(q < n);
                assert_eq!(q, queue_index(n, &b), "both directions, n={n} port={port}");
                used[q] += 1;
                let a6 = v6(1, 2, 40000 + port, 443);
                let b6 = v6(2, 1, 443, 40000 + port);
                assert_eq!(queue_index(n, &a6), queue_index(n, &b6));
            }
            // 400 flows over n queues: none left empty or holding more than twice its share.
            for (q, count) in used.iter().enumerate() {
                assert!(
                    *count > 0 && *count < 2 * 400 / n,
                    "queue {q} of {n}: {count} flows"
                );
            }
        }
    }

    #[test]
    fn odd_packets_go_to_the_first_queue_or_by_addresses() {
        assert_eq!(queue_index(4, &[]), 0);
        assert_eq!(queue_index(4, &[0x45, 0, 0]), 0, "short");
        assert_eq!(queue_index(4, &[0x10; 40]), 0, "not IP");
        assert_eq!(queue_index(1, &v4([1, 2, 3, 4], [5, 6, 7, 8], 6, 1, 2)), 0);
        // Later fragments carry no ports: a fragmented flow's pieces still stay together
        // only by address, so the first fragment (ports) may differ; they never panic.
        let mut frag = v4([10, 1, 0, 1], [10, 2, 0, 1], 17, 1, 2);
        frag[7] = 10;
        let q = queue_index(4, &frag);
        frag[20..24].copy_from_slice(&[9, 9, 9, 9]);
        assert_eq!(
            q,
            queue_index(4, &frag),
            "ports of a later fragment are not read"
        );
        let mut short = v4([10, 1, 0, 1], [10, 2, 0, 1], 6, 1, 2);
        short[0] = 0x4f; // a header longer than the packet
        assert!(queue_index(4, &short) < 4);
    }
}
