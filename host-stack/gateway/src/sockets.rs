//! The outside, software engine: kernel sockets bound to the outside interface.
//!
//! Sending: one raw socket per address family with protocol IPPROTO_RAW (the packet
//! carries its own IP header, IP_HDRINCL), so the outer header — which AH authenticates —
//! is exactly the one the engine built, whatever follows it (ESP, AH, or UDP for RFC 3948).
//!
//! Receiving: a raw IPv4 socket each for ESP and AH (the kernel hands them over with their
//! IP header), raw IPv6 sockets for ESP and AH bound to each local IPv6 endpoint, and one
//! UDP socket per local endpoint and RFC 3948 port. IPv6 raw and UDP sockets deliver only
//! the payload: the outer header (and UDP header) is rebuilt in front of it from the
//! addresses, so the engine always sees a whole IP packet. What the rebuilt header cannot
//! carry: IPv6 extension headers and the outer ECN bits.
//!
//! Every socket is bound to the outside interface (SO_BINDTODEVICE). In a server-to-server
//! tunnel the route to the peer's address points into the TUN device; the binding makes
//! the kernel route espo's own outer packets out of the outside interface instead of back
//! into the tunnel.
//!
//! The model and vfio engines do not use these sockets: the card's port is an interface
//! the card owns (AF_PACKET), and espo answers ARP and neighbour solicitations for its
//! endpoint there. That outside is a separate implementation of the same role.

use espo_ipsec::gso;
use espo_ipsec::spec::{SaProtocol, SaSpec};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, SockaddrStorage,
    recvmmsg, recvmsg, sendmmsg,
};
use socket2::{Domain, Protocol, Socket, Type};

use super::path::{MAX_PACKET, OutsideRx, OutsideTx, PacketBuf};
use espo_ipsec::wire::{ChecksumCaps, IpProtocol, Version, ipv4, ipv6, udp};

const IPPROTO_RAW: i32 = 255;
const IPPROTO_ESP: i32 = 50;
const IPPROTO_AH: i32 = 51;
/// Socket buffers, so that bursts at line rate are not dropped by the kernel.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;
/// Room in front of a received payload for a rebuilt IPv6 and UDP header.
pub const RX_HEADROOM: usize = ipv6::HEADER_LEN + udp::HEADER_LEN;

/// Why a socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("opening a {what} socket failed (espo run needs root or CAP_NET_RAW)")]
    Open {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("binding the {what} socket to interface `{device}` failed")]
    BindDevice {
        what: String,
        device: String,
        #[source]
        source: io::Error,
    },
    #[error("binding the {what} socket to {addr} failed")]
    Bind {
        what: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

fn open(
    domain: Domain,
    ty: Type,
    protocol: i32,
    what: &str,
    device: &str,
) -> Result<Socket, SocketError> {
    let s = Socket::new(domain, ty, Some(Protocol::from(protocol))).map_err(|source| {
        SocketError::Open {
            what: what.into(),
            source,
        }
    })?;
    s.bind_device(Some(device.as_bytes()))
        .map_err(|source| SocketError::BindDevice {
            what: what.into(),
            device: device.into(),
            source,
        })?;
    s.set_nonblocking(true)
        .map_err(|source| SocketError::Open {
            what: what.into(),
            source,
        })?;
    // Larger buffers are best effort: the kernel caps them at rmem_max / wmem_max.
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    Ok(s)
}

/// The sending side: raw IP_HDRINCL sockets for IPv4 and IPv6 — and, for ESP in UDP over
/// IPv4, the UDP sockets the datagrams arrive on, which send a run of them as one
/// system call with `UDP_SEGMENT` (UDP GSO): one packet through the kernel's stack and the
/// link instead of one per datagram.
#[derive(Debug)]
pub struct OuterTx {
    v4: Socket,
    v6: Socket,
    /// (local endpoint, port) and the UDP socket bound there.
    udp: Vec<(SocketAddrV4, Socket)>,
}

impl OuterTx {
    pub fn open(device: &str) -> Result<OuterTx, SocketError> {
        Ok(OuterTx {
            v4: open(
                Domain::IPV4,
                Type::RAW,
                IPPROTO_RAW,
                "raw IPv4 send",
                device,
            )?,
            v6: open(
                Domain::IPV6,
                Type::RAW,
                IPPROTO_RAW,
                "raw IPv6 send",
                device,
            )?,
            udp: Vec::new(),
        })
    }

    /// Sends ESP in UDP over IPv4 through `rx`'s UDP sockets (the same local address and
    /// port, so the peer sees no difference but the IPv4 identification and a UDP checksum).
    pub fn with_udp(mut self, rx: &OuterRx) -> OuterTx {
        for s in &rx.sockets {
            if let RxKind::Udp {
                local: IpAddr::V4(local),
                port,
            } = s.kind
                && let Ok(socket) = s.socket.try_clone()
            {
                self.udp.push((SocketAddrV4::new(local, port), socket));
            }
        }
        self
    }

    /// Sends the run at the start of `pkts` with one system call if it is one the UDP
    /// sockets can take (two or more datagrams from one of their addresses); returns how
    /// many packets it sent, 0 when the raw socket must send the first. The message and its
    /// control messages are written into `headers`' preallocated room: nothing is
    /// allocated per run.
    fn send_udp_run(&self, pkts: &[&[u8]], headers: &mut BatchHeaders) -> usize {
        if self.udp.is_empty() {
            return 0;
        }
        let Some(run) = gso::udp_run(pkts) else {
            return 0;
        };
        let Some((_, socket)) = self.udp.iter().find(|(a, _)| *a == run.src) else {
            return 0;
        };
        if run.count < 2 {
            return 0;
        }
        let mut iov = [io::IoSlice::new(&[]); gso::UDP_MAX_SEGMENTS];
        for (slot, p) in iov.iter_mut().zip(&pkts[..run.count]) {
            *slot = io::IoSlice::new(gso::udp_payload(p));
        }
        let seg = run.seg_len as u16;
        let tos = run.tos;
        let dst = SockaddrIn::from(run.dst);
        // The order and kinds of `run_cmsg_space`.
        let cmsgs = [
            ControlMessage::UdpGsoSegments(&seg),
            ControlMessage::Ipv4Tos(&tos),
        ];
        headers.calls += 1;
        let message = [&iov[..run.count]];
        match sendmmsg(
            socket.as_raw_fd(),
            &mut headers.run,
            &message,
            [Some(dst)],
            cmsgs,
            MsgFlags::empty(),
        )
        .map(|sent| sent.count())
        {
            Ok(1) => run.count,
            // The kernel refused the run (a path MTU it knows below the segment size): the
            // raw socket sends the datagrams one by one, as without offload.
            _ => 0,
        }
    }

    /// Sends whole IP packets through the raw sockets, one `sendmmsg` per address family
    /// (retrying past a packet the kernel refuses). Returns how many could not be sent.
    fn send_raw(&self, pkts: &[&[u8]], headers: &mut BatchHeaders) -> usize {
        let mut failed = 0;
        // The message vectors live on the stack: nothing is allocated per batch.
        let mut slices = [[io::IoSlice::new(&[])]; TX_BATCH];
        let mut addrs: [Option<SockaddrStorage>; TX_BATCH] = [None; TX_BATCH];
        for (v6, socket) in [(false, &self.v4), (true, &self.v6)] {
            for chunk in pkts.chunks(TX_BATCH) {
                let mut n = 0;
                for p in chunk {
                    match destination(p) {
                        Some((family_v6, dst)) if family_v6 == v6 => {
                            slices[n] = [io::IoSlice::new(p)];
                            addrs[n] = Some(dst);
                            n += 1;
                        }
                        Some(_) => {}
                        None if !v6 => failed += 1,
                        None => {}
                    }
                }
                failed += sendmmsg_all(
                    socket.as_raw_fd(),
                    &mut headers.mm,
                    &slices[..n],
                    &addrs[..n],
                    MsgFlags::empty(),
                    &mut headers.calls,
                );
            }
        }
        failed
    }
}

/// Sends every message (one buffer each, to its address) with `sendmmsg`, in order,
/// skipping past one the kernel refuses; returns how many were refused, and adds the
/// system calls it made to `calls`. `headers` must hold as many messages as `slices`.
pub(crate) fn sendmmsg_all<S: Copy + nix::sys::socket::SockaddrLike>(
    fd: std::os::fd::RawFd,
    headers: &mut MultiHeaders<S>,
    slices: &[[io::IoSlice<'_>; 1]],
    addrs: &[Option<S>],
    flags: MsgFlags,
    calls: &mut u64,
) -> usize {
    let mut failed = 0;
    let mut at = 0;
    while at < slices.len() {
        *calls += 1;
        let r = sendmmsg(fd, headers, &slices[at..], &addrs[at..], [], flags);
        match r.map(|sent| sent.count()) {
            Ok(0) | Err(_) => {
                failed += 1;
                at += 1;
            }
            Ok(sent) => at += sent,
        }
    }
    failed
}

impl OutsideTx for OuterTx {
    type Scratch = BatchHeaders;

    fn scratch(&self) -> BatchHeaders {
        BatchHeaders::new(TX_BATCH)
    }

    /// Sends whole IP packets in order: runs of ESP in UDP through the UDP sockets, the
    /// rest through the raw sockets. Returns how many could not be sent.
    fn send_batch(&self, pkts: &[&[u8]], headers: &mut BatchHeaders) -> usize {
        let mut failed = 0;
        let mut raw_from = 0;
        let mut at = 0;
        while at < pkts.len() {
            let sent = self.send_udp_run(&pkts[at..], headers);
            if sent == 0 {
                at += 1;
                continue;
            }
            failed += self.send_raw(&pkts[raw_from..at], headers);
            at += sent;
            raw_from = at;
        }
        failed + self.send_raw(&pkts[raw_from..], headers)
    }

    fn calls(&self, headers: &BatchHeaders) -> u64 {
        headers.calls
    }
}

/// Most packets one `sendmmsg` takes.
pub const TX_BATCH: usize = 64;

/// Preallocated message headers for [`OuterTx`]'s `send_batch`, and how many system calls
/// the sends made.
pub struct BatchHeaders {
    mm: MultiHeaders<SockaddrStorage>,
    /// One message with room for a UDP run's control messages.
    run: MultiHeaders<SockaddrIn>,
    calls: u64,
}

/// A UDP run's control messages, in the order it sends them: its segment size
/// (`UDP_SEGMENT`, a `u16`) and its TOS byte. The room must be exactly theirs: the kernel
/// reads every byte of it as control messages.
fn run_cmsg_space() -> Vec<u8> {
    nix::cmsg_space!(u16, u8)
}

impl BatchHeaders {
    pub fn new(batch: usize) -> BatchHeaders {
        BatchHeaders {
            mm: MultiHeaders::preallocate(batch, None),
            run: MultiHeaders::preallocate(1, Some(run_cmsg_space())),
            calls: 0,
        }
    }
}

impl core::fmt::Debug for BatchHeaders {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BatchHeaders")
    }
}

/// The address family and destination of a whole IP packet.
fn destination(pkt: &[u8]) -> Option<(bool, SockaddrStorage)> {
    let (v6, dst) = match Version::of(pkt) {
        Some(Version::Ipv4) if pkt.len() >= ipv4::HEADER_LEN => (
            false,
            IpAddr::V4(ipv4::Packet::new_unchecked(pkt).dst_addr()),
        ),
        Some(Version::Ipv6) if pkt.len() >= ipv6::HEADER_LEN => (
            true,
            IpAddr::V6(ipv6::Packet::new_unchecked(pkt).dst_addr()),
        ),
        _ => return None,
    };
    Some((v6, SockaddrStorage::from(SocketAddr::new(dst, 0))))
}

/// What a receiving socket delivers, and so what must be rebuilt in front of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxKind {
    /// Whole IPv4 packets.
    RawV4,
    /// IPv6 payloads of `protocol` sent to `local`.
    RawV6 {
        protocol: IpProtocol,
        local: Ipv6Addr,
    },
    /// UDP payloads sent to `local`:`port`.
    Udp { local: IpAddr, port: u16 },
}

#[derive(Debug)]
struct RxSocket {
    socket: Socket,
    kind: RxKind,
}

/// The receiving side: every socket tunnel packets can arrive on.
#[derive(Debug, Default)]
pub struct OuterRx {
    sockets: Vec<RxSocket>,
    /// Whether the UDP sockets coalesce datagrams (`UDP_GRO`).
    gro: bool,
}

/// What the inbound SAs need received.
#[derive(Debug, Clone, Default)]
pub struct RxPlan {
    pub esp_v4: bool,
    pub ah_v4: bool,
    /// (protocol, local endpoint) pairs over IPv6.
    pub raw_v6: Vec<(IpProtocol, Ipv6Addr)>,
    /// (local endpoint, port) pairs of RFC 3948 encapsulation.
    pub udp: Vec<(IpAddr, u16)>,
}

impl RxPlan {
    /// Whether these sockets receive the packets of inbound SA `sa`; if not, why.
    pub fn covers(&self, sa: &SaSpec) -> Result<(), String> {
        let restart = "espo opens its receiving sockets at start: add an SA that uses it to the configuration and restart";
        if let Some(u) = sa.udp_encap {
            return if self.udp.contains(&(sa.dst, u.dst_port)) {
                Ok(())
            } else {
                Err(format!(
                    "no socket receives ESP in UDP at {} port {} ({restart})",
                    sa.dst, u.dst_port
                ))
            };
        }
        let protocol = match sa.protocol {
            SaProtocol::Esp => IpProtocol::Esp,
            SaProtocol::Ah => IpProtocol::Ah,
        };
        let open = match sa.dst {
            IpAddr::V4(_) if protocol == IpProtocol::Esp => self.esp_v4,
            IpAddr::V4(_) => self.ah_v4,
            IpAddr::V6(local) => self.raw_v6.contains(&(protocol, local)),
        };
        if open {
            Ok(())
        } else {
            Err(format!(
                "no socket receives {} for {} ({restart})",
                sa.protocol.name().to_uppercase(),
                sa.dst
            ))
        }
    }
}

impl OuterRx {
    pub fn open(device: &str, plan: &RxPlan) -> Result<OuterRx, SocketError> {
        let mut sockets = Vec::new();
        if plan.esp_v4 {
            let socket = open(Domain::IPV4, Type::RAW, IPPROTO_ESP, "raw ESP", device)?;
            sockets.push(RxSocket {
                socket,
                kind: RxKind::RawV4,
            });
        }
        if plan.ah_v4 {
            let socket = open(Domain::IPV4, Type::RAW, IPPROTO_AH, "raw AH", device)?;
            sockets.push(RxSocket {
                socket,
                kind: RxKind::RawV4,
            });
        }
        for &(protocol, local) in &plan.raw_v6 {
            let what = format!("raw IPv6 {protocol:?}");
            let socket = open(
                Domain::IPV6,
                Type::RAW,
                i32::from(u8::from(protocol)),
                &what,
                device,
            )?;
            let addr = SocketAddr::new(local.into(), 0);
            socket
                .bind(&addr.into())
                .map_err(|source| SocketError::Bind {
                    what: what.clone(),
                    addr,
                    source,
                })?;
            sockets.push(RxSocket {
                socket,
                kind: RxKind::RawV6 { protocol, local },
            });
        }
        for &(local, port) in &plan.udp {
            let domain = if local.is_ipv4() {
                Domain::IPV4
            } else {
                Domain::IPV6
            };
            let what = format!("UDP {port}");
            let socket = open(domain, Type::DGRAM, 17, &what, device)?;
            let _ = socket.set_reuse_address(true);
            let addr = SocketAddr::new(local, port);
            socket
                .bind(&addr.into())
                .map_err(|source| SocketError::Bind {
                    what: what.clone(),
                    addr,
                    source,
                })?;
            sockets.push(RxSocket {
                socket,
                kind: RxKind::Udp { local, port },
            });
        }
        Ok(OuterRx {
            sockets,
            gro: false,
        })
    }

    /// Has the UDP sockets hand over runs of datagrams of one sender as one buffer
    /// (`UDP_GRO`), which [`OutsideRx::recv_batch`] cuts up again: one receive for a run the
    /// peer sent with UDP GSO. Where the kernel refuses it, that socket goes without.
    pub fn enable_udp_gro(&mut self) {
        for s in &self.sockets {
            if matches!(s.kind, RxKind::Udp { .. }) {
                let _ = nix::sys::socket::setsockopt(
                    &s.socket,
                    nix::sys::socket::sockopt::UdpGroSegment,
                    &true,
                );
            }
        }
        self.gro = true;
    }

    /// A second handle of the UDP socket at `local`:`port` (key management sends IKE
    /// messages through the socket ESP in UDP arrives on).
    pub fn udp_socket(&self, local: IpAddr, port: u16) -> Option<std::net::UdpSocket> {
        self.sockets
            .iter()
            .find(
                |s| matches!(s.kind, RxKind::Udp { local: l, port: p } if l == local && p == port),
            )
            .and_then(|s| s.socket.try_clone().ok())
            .map(std::net::UdpSocket::from)
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

impl OutsideRx for OuterRx {
    type Scratch = RxHeaders;

    fn scratch(&self) -> RxHeaders {
        let mut h = RxHeaders::new();
        if self.gro {
            h.gro = self
                .sockets
                .iter()
                .map(|s| matches!(s.kind, RxKind::Udp { .. }).then(GroRx::new))
                .collect();
        }
        h
    }

    /// The descriptors to poll, in socket order.
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.sockets.iter().map(|s| s.socket.as_fd()).collect()
    }

    fn calls(&self, headers: &RxHeaders) -> u64 {
        headers.calls
    }

    /// Receives up to `bufs.len()` packets (at most [`RX_BATCH`]) from socket `index` with
    /// one `recvmmsg` — with `UDP_GRO`, one `recvmsg` per run of datagrams — each as a
    /// whole IP packet (headers rebuilt where the socket strips them). Returns how many; 0
    /// when nothing is waiting.
    fn recv_batch(
        &self,
        index: usize,
        bufs: &mut [PacketBuf],
        headers: &mut RxHeaders,
    ) -> io::Result<usize> {
        let Some(s) = self.sockets.get(index) else {
            return Ok(0);
        };
        if let Some(Some(gro)) = headers.gro.get_mut(index) {
            return gro.recv(s, bufs, &mut headers.calls);
        }
        let mut received = [(0usize, None::<SockaddrStorage>); RX_BATCH];
        let want = bufs.len().min(RX_BATCH);
        let n = {
            // The message vectors live on the stack: nothing is allocated per call.
            let mut areas = bufs[..want].iter_mut();
            let mut slices: [[io::IoSliceMut<'_>; 1]; RX_BATCH] = std::array::from_fn(|_| {
                [io::IoSliceMut::new(match areas.next() {
                    Some(b) => &mut b.receive_area(RX_HEADROOM)[..MAX_PACKET - RX_HEADROOM],
                    None => &mut [],
                })]
            });
            let results = match recvmmsg(
                s.socket.as_raw_fd(),
                &mut headers.mm,
                slices[..want].iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(r) => r,
                Err(nix::errno::Errno::EAGAIN) => return Ok(0),
                Err(e) => return Err(e.into()),
            };
            headers.calls += 1;
            let mut n = 0;
            for (slot, r) in received.iter_mut().zip(results) {
                *slot = (r.bytes, r.address);
                n += 1;
            }
            n
        };
        for (buf, &(len, from)) in bufs.iter_mut().zip(&received[..n]) {
            // A packet whose header cannot be rebuilt stays empty: the engine counts it
            // as malformed.
            if finish(s.kind, buf, len, from.as_ref()).is_err() {
                buf.set_range(0..0);
            }
        }
        Ok(n)
    }
}

/// A UDP socket's receive state with `UDP_GRO`: the last run received and how much of it
/// has been handed out.
struct GroRx {
    buf: Box<[u8]>,
    cmsg: Vec<u8>,
    /// The run's bytes are `buf[at..end]`, datagrams of `seg` bytes (the last shorter).
    at: usize,
    end: usize,
    seg: usize,
    from: Option<SockaddrStorage>,
}

impl GroRx {
    fn new() -> GroRx {
        GroRx {
            buf: vec![0u8; MAX_PACKET].into_boxed_slice(),
            cmsg: nix::cmsg_space!(i32),
            at: 0,
            end: 0,
            seg: 1,
            from: None,
        }
    }

    /// Fills `bufs` with the datagrams of the current run and of runs received after it,
    /// until `bufs` is full or nothing waits. What does not fit stays for the next call;
    /// a full `bufs` tells the caller to come back.
    fn recv(&mut self, s: &RxSocket, bufs: &mut [PacketBuf], calls: &mut u64) -> io::Result<usize> {
        let mut n = 0;
        while n < bufs.len().min(RX_BATCH) {
            if self.at >= self.end {
                let received = {
                    let mut iov = [io::IoSliceMut::new(&mut self.buf)];
                    match recvmsg::<SockaddrStorage>(
                        s.socket.as_raw_fd(),
                        &mut iov,
                        Some(&mut self.cmsg),
                        MsgFlags::MSG_DONTWAIT,
                    ) {
                        Ok(r) => {
                            let seg = r.cmsgs().ok().and_then(|mut c| {
                                c.find_map(|m| match m {
                                    ControlMessageOwned::UdpGroSegments(seg) => {
                                        usize::try_from(seg).ok()
                                    }
                                    _ => None,
                                })
                            });
                            Ok((r.bytes, seg, r.address))
                        }
                        Err(e) => Err(e),
                    }
                };
                match received {
                    Ok((len, seg, from)) => {
                        *calls += 1;
                        self.at = 0;
                        self.end = len;
                        self.seg = seg.filter(|&s| s > 0).unwrap_or(len.max(1));
                        self.from = from;
                        if len == 0 {
                            // An empty datagram: one packet of its own.
                            if finish(s.kind, &mut bufs[n], 0, self.from.as_ref()).is_err() {
                                bufs[n].set_range(0..0);
                            }
                            n += 1;
                            continue;
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(_) if n > 0 => break,
                    Err(e) => return Err(e.into()),
                }
            }
            let take = (self.end - self.at).min(self.seg);
            let buf = &mut bufs[n];
            buf.receive_area(RX_HEADROOM)[..take]
                .copy_from_slice(&self.buf[self.at..self.at + take]);
            if finish(s.kind, buf, take, self.from.as_ref()).is_err() {
                buf.set_range(0..0);
            }
            self.at += take;
            n += 1;
        }
        Ok(n)
    }
}

impl core::fmt::Debug for GroRx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GroRx")
            .field("pending", &(self.end - self.at.min(self.end)))
            .finish()
    }
}

/// Largest batch [`OuterRx::recv_batch`] takes at once.
pub const RX_BATCH: usize = 64;

/// Preallocated message headers for [`OuterRx::recv_batch`], and the `UDP_GRO` state of
/// each socket that has it.
pub struct RxHeaders {
    mm: MultiHeaders<SockaddrStorage>,
    gro: Vec<Option<GroRx>>,
    /// System calls that brought packets in.
    calls: u64,
}

impl RxHeaders {
    pub fn new() -> RxHeaders {
        RxHeaders {
            mm: MultiHeaders::preallocate(RX_BATCH, None),
            gro: Vec::new(),
            calls: 0,
        }
    }
}

impl Default for RxHeaders {
    fn default() -> Self {
        RxHeaders::new()
    }
}

impl core::fmt::Debug for RxHeaders {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RxHeaders")
    }
}

/// Turns a payload of `n` bytes received at [`RX_HEADROOM`] into a whole IP packet.
fn finish(
    kind: RxKind,
    buf: &mut PacketBuf,
    n: usize,
    from: Option<&SockaddrStorage>,
) -> io::Result<()> {
    let payload = RX_HEADROOM..RX_HEADROOM + n;
    let from_ip = from.and_then(sockaddr_ip);
    let start = match (kind, from_ip) {
        (RxKind::RawV4, _) => payload.start,
        (RxKind::RawV6 { protocol, local }, Some(IpAddr::V6(src))) => {
            prepend_ipv6(buf.buffer_mut(), payload.start, n, src, local, protocol)?
        }
        (RxKind::Udp { local, port }, Some(src_ip)) => {
            let src_port = from.and_then(sockaddr_port).unwrap_or(0);
            let udp_at = payload.start - udp::HEADER_LEN;
            let b = buf.buffer_mut();
            let mut u = udp::Packet::new_unchecked(&mut b[udp_at..payload.end]);
            u.set_src_port(src_port);
            u.set_dst_port(port);
            u.set_len((n + udp::HEADER_LEN) as u16);
            u.set_checksum(0);
            match (src_ip, local) {
                (IpAddr::V4(s4), IpAddr::V4(d4)) => {
                    prepend_ipv4(b, udp_at, n + udp::HEADER_LEN, s4, d4, IpProtocol::Udp)?
                }
                (IpAddr::V6(s6), IpAddr::V6(d6)) => {
                    prepend_ipv6(b, udp_at, n + udp::HEADER_LEN, s6, d6, IpProtocol::Udp)?
                }
                _ => return Err(io::ErrorKind::InvalidData.into()),
            }
        }
        _ => return Err(io::ErrorKind::InvalidData.into()),
    };
    buf.set_range(start..payload.end);
    Ok(())
}

fn sockaddr_ip(a: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    let v6 = a.as_sockaddr_in6()?;
    let ip = v6.ip();
    // A v4-mapped source on a dual-stack socket is an IPv4 peer.
    Some(match ip.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(ip),
    })
}

fn sockaddr_port(a: &SockaddrStorage) -> Option<u16> {
    a.as_sockaddr_in()
        .map(|s| s.port())
        .or_else(|| a.as_sockaddr_in6().map(|s| s.port()))
}

/// Writes an IPv4 header (no options, DF clear, TTL 64) in front of `len` payload bytes at
/// `at`; returns where the packet starts.
fn prepend_ipv4(
    buf: &mut [u8],
    at: usize,
    len: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
) -> io::Result<usize> {
    let start = at
        .checked_sub(ipv4::HEADER_LEN)
        .ok_or(io::ErrorKind::InvalidInput)?;
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: protocol,
        payload_len: len,
        hop_limit: 64,
        tos: 0,
        dont_frag: false,
        ident: 0,
    };
    let hdr = buf.get_mut(start..at).ok_or(io::ErrorKind::InvalidInput)?;
    repr.emit(
        &mut ipv4::Packet::new_unchecked(hdr),
        &ChecksumCaps::default(),
    )
    .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    Ok(start)
}

/// Writes an IPv6 header (traffic class 0, hop limit 64) in front of `len` payload bytes
/// at `at`; returns where the packet starts.
fn prepend_ipv6(
    buf: &mut [u8],
    at: usize,
    len: usize,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: IpProtocol,
) -> io::Result<usize> {
    let start = at
        .checked_sub(ipv6::HEADER_LEN)
        .ok_or(io::ErrorKind::InvalidInput)?;
    let repr = ipv6::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: protocol,
        payload_len: len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let hdr = buf.get_mut(start..at).ok_or(io::ErrorKind::InvalidInput)?;
    repr.emit(&mut ipv6::Packet::new_unchecked(hdr))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    Ok(start)
}
