//! Where the software engine hears ICMP errors about its tunnel packets: a raw ICMP socket
//! (IPv4) and a raw ICMPv6 socket on the outside interface, for the families the outbound
//! SAs use.
//!
//! The kernel keeps handling those errors itself — it lowers its own route's path MTU —
//! but espo's IP_HDRINCL sockets do not follow that route MTU the way ordinary sockets do:
//! a tunnel packet above it is refused (EMSGSIZE) or, without DF, cut into outer fragments,
//! and the inside never hears of it. Raw ICMP sockets get a copy of every message, so the
//! software engine learns the same way the card's port does.

use std::io::IoSliceMut;
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn6, recv, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

use super::{Heard, PathMtus, hear, hear_icmpv6};
use crate::sockets::SocketError;

/// The longest ICMP message read whole: an ICMPv4 error is at most 576 bytes with its IP
/// header, an ICMPv6 error at most 1280 (RFC 1812 §4.3.2.3, RFC 4443 §2.4); a longer one
/// is read cut short, which shortens only its quote.
pub const MAX_ICMP_LEN: usize = 2048;
/// Messages read per turn at most, so that the tunnel sockets beside them get theirs.
const MESSAGES_PER_TURN: usize = 64;

#[derive(Debug)]
enum Family {
    /// Delivers whole IPv4 packets.
    V4,
    /// Delivers the ICMPv6 message alone; the destination comes with it (IPV6_PKTINFO).
    V6,
}

/// The raw ICMP sockets. See the module documentation.
#[derive(Debug, Default)]
pub struct IcmpRx {
    sockets: Vec<(Family, Socket)>,
}

fn open(domain: Domain, protocol: i32, what: &str, device: &str) -> Result<Socket, SocketError> {
    let open_err = |source| SocketError::Open {
        what: what.into(),
        source,
    };
    let s = Socket::new(domain, Type::RAW, Some(Protocol::from(protocol))).map_err(open_err)?;
    s.bind_device(Some(device.as_bytes()))
        .map_err(|source| SocketError::BindDevice {
            what: what.into(),
            device: device.into(),
            source,
        })?;
    s.set_nonblocking(true).map_err(open_err)?;
    Ok(s)
}

impl IcmpRx {
    /// Opens the sockets of the families (IPv4, IPv6) asked for, bound to `device`.
    pub fn open(device: &str, (v4, v6): (bool, bool)) -> Result<IcmpRx, SocketError> {
        let mut sockets = Vec::new();
        if v4 {
            sockets.push((Family::V4, open(Domain::IPV4, 1, "raw ICMP", device)?));
        }
        if v6 {
            let s = open(Domain::IPV6, 58, "raw ICMPv6", device)?;
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(|e| SocketError::Open {
                what: "raw ICMPv6 (IPV6_RECVPKTINFO)".into(),
                source: e.into(),
            })?;
            sockets.push((Family::V6, s));
        }
        Ok(IcmpRx { sockets })
    }

    /// One descriptor per socket.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.sockets.iter().map(|(_, s)| s.as_fd()).collect()
    }

    /// Reads what waits on socket `which` (a bounded number of messages) into the table.
    pub fn drain(&self, which: usize, buf: &mut [u8], mtus: &PathMtus, now: Instant) {
        let Some((family, socket)) = self.sockets.get(which) else {
            return;
        };
        for _ in 0..MESSAGES_PER_TURN {
            let heard = match family {
                Family::V4 => match recv(socket.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                    Ok(n) => hear(buf.get(..n).unwrap_or(&[])),
                    Err(_) => return,
                },
                Family::V6 => match receive_v6(socket, buf) {
                    Some((src, dst, n)) => hear_icmpv6(src, dst, buf.get(..n).unwrap_or(&[])),
                    None => return,
                },
            };
            match heard {
                Heard::TooBig(error) => {
                    mtus.learn(&error, now);
                }
                Heard::Malformed => mtus.count_malformed(),
                Heard::Other => {}
            }
        }
    }
}

/// One ICMPv6 message: its source, its destination (when the kernel says), its length.
fn receive_v6(socket: &Socket, buf: &mut [u8]) -> Option<(Ipv6Addr, Option<Ipv6Addr>, usize)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(nix::libc::in6_pktinfo);
    let msg = recvmsg::<SockaddrIn6>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT,
    )
    .ok()?;
    let src = msg.address.map(|a| a.ip())?;
    let dst = msg.cmsgs().ok().and_then(|mut c| {
        c.find_map(|m| match m {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                Some(Ipv6Addr::from(info.ipi6_addr.s6_addr))
            }
            _ => None,
        })
    });
    Some((src, dst, msg.bytes))
}
