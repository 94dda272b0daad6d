//! The card's Ethernet port on a Linux interface: an AF_PACKET socket bound to the
//! interface the card owns, and the thread that carries frames between it and the card.
//!
//! ```text
//!   card model ──Link::send──► to_wire ──► port thread ──► next hop's MAC ──► AF_PACKET
//!   card model ◄─Link::recv─── to_card ◄── port thread ◄── ARP / ND answered ◄─┘
//! ```
//!
//! The interface has no address of its own; the port uses its MAC. The port thread answers
//! ARP requests and neighbour solicitations for espo's tunnel endpoints, resolves the next
//! hop of every frame the card sends ([`super::neighbours`]), and hands every other IP
//! frame addressed to the port's MAC to the card — except ICMP errors about packets too
//! big, which go to the path MTU table ([`crate::outer_pmtu`]); the table also notes the
//! sequence number of every tunnel packet leaving. Frames from the wire are untrusted: a
//! malformed ARP or ND frame is counted and ignored, nothing panics.
//!
//! A card whose port is its own (a card on the bus, `engine = "vfio"`, or a served card
//! whose server attached its port to an interface) needs no socket: the port thread is the
//! same, its wire is the card ([`PortWire::Card`]). The frames of the link layer — ARP,
//! neighbour discovery, ICMP errors, IKE — come from the card through the offload engine
//! ([`espo_offload::Received::Link`]) and espo's own go out through the card's TX ring as
//! they are ([`espo_offload::OffloadEngine::submit_frame`]); the next hops it resolves are
//! published to the engine ([`espo_offload::NextHopMacs`]), which addresses every tunnel
//! packet itself before the card sends it.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use espo_driver::model::{Frame, Link};
use nix::sys::socket::{LinkAddr, MsgFlags, MultiHeaders, recvmmsg};
use socket2::{Domain, Protocol, Socket, Type};

use super::neighbours::{Lookup, NeighbourView, Neighbours};
use super::resolve::{self, Kind, Mac, Malformed, Neighbourly};
use crate::outer_pmtu::{self, Heard, PathMtus};
use crate::threads::{IDLE_POLL, Look, Shutdown, wait_readable_within};
use espo_offload::Wire;

const ETH_P_ALL: u16 = 0x0003;
/// The Ethernet header before the IP packet of a frame.
const ETH_HEADER_LEN: usize = 14;
/// sll_pkttype of a frame this host sent (seen by every packet socket but the sender's).
const PACKET_OUTGOING: u8 = 4;
/// Frames waiting for the card at most (the card's port pauses the link when its FIFO is
/// full; beyond this the port drops and counts).
const MAX_TO_CARD: usize = 4096;
/// Frames taken from the socket before the port looks at the other direction.
const RX_BURST: usize = 256;
/// Largest frame: the card's largest (9216) with room to spare.
const MAX_FRAME: usize = 16384;
/// Frames one `recvmmsg` or `sendmmsg` on the port's socket carries at most.
const PORT_BATCH: usize = 32;

/// Why the port could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("[gateway] port: no interface `{0}` in this network namespace")]
    NoInterface(String),
    #[error("[gateway] port: listing the interfaces failed")]
    ListInterfaces(#[source] nix::Error),
    #[error("[gateway] port: opening an AF_PACKET socket on `{name}` failed")]
    Socket {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// A wake-up for a thread that polls: readable while something is waiting for it. One
/// write per idle period, however many producers signal.
#[derive(Debug)]
pub struct Wake {
    tx: UnixStream,
    rx: UnixStream,
    pending: AtomicBool,
}

impl Wake {
    pub fn new() -> io::Result<Wake> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Wake {
            tx,
            rx,
            pending: AtomicBool::new(false),
        })
    }

    pub fn signal(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let _ = (&self.tx).write(&[1]);
        }
    }

    /// Called before the consumer looks at its queues: later signals wake it again.
    ///
    /// The byte is drained before the flag is lowered: the other way round, a signal
    /// between the two would write a byte the drain swallows and leave the flag up, and
    /// every later signal would be lost.
    pub fn clear(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
        self.pending.store(false, Ordering::Release);
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}

/// Frames of the link layer from a card whose port is its own, waiting for the port
/// thread, at most (beyond this they are dropped and counted).
const MAX_FOR_HOST: usize = 1024;

/// Frame buffers kept for reuse between the port thread and the card model, at most.
const MAX_SPARE: usize = 1024;

/// The frames between the card and the port thread.
#[derive(Debug)]
pub struct PortQueues {
    to_card: Mutex<VecDeque<Vec<u8>>>,
    to_wire: Mutex<VecDeque<Vec<u8>>>,
    /// Buffers of frames that were sent or received, for the next frames: a frame that
    /// crosses between the port thread and the card model costs no allocation (and no
    /// free on another thread than the one that allocated it).
    spare: Mutex<Vec<Vec<u8>>>,
    /// A card whose port is its own: the link layer's frames it received.
    for_host: Mutex<VecDeque<Vec<u8>>>,
    /// Signalled when a frame was queued in `for_host`.
    pub host_wake: Wake,
    /// Signalled when the card sent a frame.
    pub wire_wake: Wake,
    /// Signalled when a frame was queued for the card (for a card in another process,
    /// whose port bridge forwards them; the in-process model polls the queue itself).
    pub card_feed: Wake,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PortQueues {
    pub fn new() -> io::Result<PortQueues> {
        Ok(PortQueues {
            to_card: Mutex::default(),
            to_wire: Mutex::default(),
            spare: Mutex::default(),
            wire_wake: Wake::new()?,
            card_feed: Wake::new()?,
            for_host: Mutex::default(),
            host_wake: Wake::new()?,
        })
    }

    /// Queues a frame of the link layer a card with its own port received, for the port
    /// thread; false (not kept) when too many wait.
    pub fn push_for_host(&self, frame: Vec<u8>) -> bool {
        let mut q = lock(&self.for_host);
        if q.len() >= MAX_FOR_HOST {
            return false;
        }
        q.push_back(frame);
        drop(q);
        self.host_wake.signal();
        true
    }

    fn take_for_host(&self) -> Option<Vec<u8>> {
        lock(&self.for_host).pop_front()
    }

    fn to_wire(&self, frame: Vec<u8>) {
        lock(&self.to_wire).push_back(frame);
        self.wire_wake.signal();
    }

    /// Sends a frame of espo's own (key management's) through the port: its MACs are
    /// filled in there, as for the card's frames.
    pub fn send_frame(&self, frame: Vec<u8>) {
        self.to_wire(frame);
    }

    /// Takes every frame the card sent.
    pub fn take_for_wire(&self) -> Vec<Vec<u8>> {
        lock(&self.to_wire).drain(..).collect()
    }

    /// Queues a frame for the card.
    pub fn push_for_card(&self, frame: Vec<u8>) {
        lock(&self.to_card).push_back(frame);
        self.card_feed.signal();
    }

    /// Puts back a frame taken for the card that it could not take yet: it goes first.
    pub fn return_for_card(&self, frame: Vec<u8>) {
        lock(&self.to_card).push_front(frame);
    }

    /// Frames waiting to enter the card.
    pub fn frames_for_card(&self) -> usize {
        lock(&self.to_card).len()
    }

    fn take_for_card(&self) -> Option<Vec<u8>> {
        lock(&self.to_card).pop_front()
    }

    /// Moves up to `n` kept buffers into `into`.
    fn take_spares(&self, into: &mut Vec<Vec<u8>>, n: usize) {
        let mut spare = lock(&self.spare);
        let from = spare.len().saturating_sub(n);
        into.extend(spare.drain(from..));
    }

    /// Keeps frames' buffers for [`take_spares`](Self::take_spares), up to [`MAX_SPARE`]
    /// (the rest are freed).
    fn give_back(&self, frames: impl IntoIterator<Item = Vec<u8>>) {
        let mut spare = lock(&self.spare);
        for frame in frames {
            if spare.len() >= MAX_SPARE {
                break;
            }
            spare.push(frame);
        }
    }
}

/// Frame buffers one thread keeps at hand: refilled from the shared ones
/// ([`PortQueues::take_spares`]) and overflowing into them, [`STASH`] at a time, so that the
/// shared lock is taken once per batch rather than per frame.
#[derive(Debug, Default)]
struct Stash(Vec<Vec<u8>>);

/// Buffers a [`Stash`] moves to or from the shared ones at once.
const STASH: usize = 64;

impl Stash {
    /// An empty buffer: one kept, or a new one.
    fn take(&mut self, queues: &PortQueues) -> Vec<u8> {
        let mut buf = self.take_as_left(queues);
        buf.clear();
        buf
    }

    /// A kept buffer as it was left (its bytes of no meaning: the card sizes and fills
    /// it, without clearing what it overwrites), or a new one.
    fn take_as_left(&mut self, queues: &PortQueues) -> Vec<u8> {
        if self.0.is_empty() {
            queues.take_spares(&mut self.0, STASH);
        }
        self.0.pop().unwrap_or_default()
    }

    /// Keeps a buffer, the oldest [`STASH`] going to the shared ones when twice that many
    /// are kept.
    fn keep(&mut self, queues: &PortQueues, buf: Vec<u8>) {
        self.0.push(buf);
        if self.0.len() >= 2 * STASH {
            queues.give_back(self.0.drain(..STASH));
        }
    }
}

/// The card's end of the port ([`Link`] for the model, [`Wire`] as the engine's fallback
/// once the card is gone: the same frames on the same interface).
#[derive(Debug)]
pub struct CardEnd {
    queues: std::sync::Arc<PortQueues>,
    /// Buffers of frames the card received, for frames it sends.
    stash: Stash,
}

impl CardEnd {
    pub fn new(queues: std::sync::Arc<PortQueues>) -> CardEnd {
        CardEnd {
            queues,
            stash: Stash::default(),
        }
    }
}

impl Link for CardEnd {
    fn send(&mut self, frame: Frame) {
        self.queues.to_wire(frame.data);
    }

    fn recv(&mut self) -> Option<Frame> {
        self.queues
            .take_for_card()
            .map(|data| Frame { data, cycle: 0 })
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.stash.take_as_left(&self.queues)
    }

    fn recycle(&mut self, data: Vec<u8>) {
        self.stash.keep(&self.queues, data);
    }
}

impl Wire for CardEnd {
    fn send(&mut self, frame: &[u8]) -> bool {
        self.queues.to_wire(frame.to_vec());
        true
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        match self.queues.take_for_card() {
            Some(f) => {
                *buf = f;
                true
            }
            None => false,
        }
    }
}

/// An AF_PACKET socket bound to one interface.
///
/// A frame longer than the interface's MTU (and its Ethernet header) cannot have crossed
/// a wire: it is a super-frame, a sender on this host handing a veth link a GSO packet
/// (UDP GSO, TSO) whole, which the kernel gives a packet socket as one frame without the
/// segment size it needs to be cut. Such frames are not handed on — to the card they
/// would be one malformed packet, an ICV failure at best — but counted
/// ([`oversize`](Self::oversize)). The MTU is read at open and again when such a frame
/// arrives, at most once a second, so that a raised MTU is followed.
#[derive(Debug)]
pub struct PortSocket {
    sock: Socket,
    index: usize,
    mac: Mac,
    /// The longest frame the interface carries: its MTU and the Ethernet header.
    max_frame: AtomicUsize,
    /// When the MTU was read last.
    mtu_read: Mutex<Instant>,
    oversize: AtomicU64,
}

/// The longest frame interface `index` carries (its MTU, asked over rtnetlink, plus the
/// Ethernet header and a VLAN tag); `MAX_FRAME` when it cannot be read.
fn max_frame_of(index: usize) -> usize {
    crate::netlink::Netlink::open()
        .and_then(|mut n| n.mtu(index as u32))
        .map_or(MAX_FRAME, |mtu| mtu as usize + ETH_HEADER_LEN + 4)
}

impl PortSocket {
    /// Binds to `name`; its MAC becomes the port's.
    pub fn open(name: &str) -> Result<PortSocket, PortError> {
        let socket_err = |source| PortError::Socket {
            name: name.to_owned(),
            source,
        };
        // The interface's link-layer address as the C library lists it: family AF_PACKET,
        // its index, protocol 0 (bind then keeps the socket's protocol, every EtherType).
        let link: LinkAddr = nix::ifaddrs::getifaddrs()
            .map_err(PortError::ListInterfaces)?
            .filter(|a| a.interface_name == name)
            .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
            .ok_or_else(|| PortError::NoInterface(name.to_owned()))?;
        let mac = link.addr().unwrap_or_default();
        let sock = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )
        .map_err(socket_err)?;
        nix::sys::socket::bind(sock.as_raw_fd(), &link).map_err(|e| socket_err(e.into()))?;
        sock.set_nonblocking(true).map_err(socket_err)?;
        let _ = sock.set_recv_buffer_size(4 << 20);
        let _ = sock.set_send_buffer_size(4 << 20);
        let port = PortSocket {
            sock,
            index: link.ifindex(),
            mac,
            max_frame: AtomicUsize::new(max_frame_of(link.ifindex())),
            mtu_read: Mutex::new(Instant::now()),
            oversize: AtomicU64::new(0),
        };
        // Frames of other interfaces that arrived before the bind.
        let mut buf = vec![0u8; MAX_FRAME];
        while let Ok(Some(_)) | Ok(None) = port.recv(&mut buf) {}
        Ok(port)
    }

    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// One frame that arrived on the interface: `Ok(None)` for one to skip (another
    /// interface's, one this host sent, or a super-frame: see the type's documentation),
    /// `WouldBlock` when none waits.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let (n, addr) = nix::sys::socket::recvfrom::<LinkAddr>(self.sock.as_raw_fd(), buf)
            .map_err(io::Error::from)?;
        match addr {
            Some(a) if a.ifindex() == self.index && a.pkttype() != PACKET_OUTGOING => {
                Ok(self.carried(n, buf.len()).then_some(n.min(buf.len())))
            }
            _ => Ok(None),
        }
    }

    /// Whether a frame of `len` bytes (`room`: the buffer it was read into) can have
    /// crossed the link; a super-frame, or one cut short by the buffer, is counted.
    fn carried(&self, len: usize, room: usize) -> bool {
        if len <= self.max_frame.load(Ordering::Relaxed) && len < room {
            return true;
        }
        {
            let mut read = self.mtu_read.lock().unwrap_or_else(|p| p.into_inner());
            if read.elapsed() >= std::time::Duration::from_secs(1) {
                *read = Instant::now();
                self.max_frame
                    .store(max_frame_of(self.index), Ordering::Relaxed);
            }
        }
        if len <= self.max_frame.load(Ordering::Relaxed) && len < room {
            return true;
        }
        self.oversize.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Frames received longer than the interface's MTU allows (super-frames), not handed on.
    pub fn oversize(&self) -> u64 {
        self.oversize.load(Ordering::Relaxed)
    }

    /// Sends a frame as it is; false if the interface did not take it.
    pub fn send(&self, frame: &[u8]) -> bool {
        nix::sys::socket::send(self.sock.as_raw_fd(), frame, MsgFlags::MSG_DONTWAIT).is_ok()
    }

    /// Up to [`PORT_BATCH`] frames that arrived on the interface, with one `recvmmsg`, into
    /// `io`'s buffers; returns how many were taken (`io.lens`: each one's length, `None`
    /// for one to skip as [`recv`](Self::recv) skips), 0 when none waits.
    fn recv_batch(&self, io: &mut PortIo) -> io::Result<usize> {
        let Some(bufs) = io.bufs.first_chunk_mut::<PORT_BATCH>() else {
            return Ok(0);
        };
        let mut slices = bufs.each_mut().map(|b| [io::IoSliceMut::new(&mut b[..])]);
        let results = match recvmmsg(
            self.sock.as_raw_fd(),
            &mut io.rx,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(r) => r,
            Err(nix::errno::Errno::EAGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut n = 0;
        for (len, r) in io.lens.iter_mut().zip(results) {
            *len = match r.address {
                Some(a)
                    if a.ifindex() == self.index
                        && a.pkttype() != PACKET_OUTGOING
                        && self.carried(r.bytes, MAX_FRAME) =>
                {
                    Some(r.bytes)
                }
                _ => None,
            };
            n += 1;
        }
        Ok(n)
    }

    /// Sends `frames` as they are, [`PORT_BATCH`] to a `sendmmsg`, in order; a frame the
    /// interface refuses is skipped. Returns how many were not sent.
    fn send_batch(&self, frames: &[Vec<u8>], headers: &mut MultiHeaders<LinkAddr>) -> usize {
        let no_address = [None::<LinkAddr>; PORT_BATCH];
        let mut slices = [[io::IoSlice::new(&[])]; PORT_BATCH];
        let mut failed = 0;
        for chunk in frames.chunks(PORT_BATCH) {
            for (slice, frame) in slices.iter_mut().zip(chunk) {
                *slice = [io::IoSlice::new(frame)];
            }
            failed += crate::sockets::sendmmsg_all(
                self.sock.as_raw_fd(),
                headers,
                &slices[..chunk.len()],
                &no_address[..chunk.len()],
                MsgFlags::MSG_DONTWAIT,
                &mut 0,
            );
        }
        failed
    }
}

/// The port thread's batch buffers: frames received with one `recvmmsg`, and the
/// message headers of its `recvmmsg` and `sendmmsg` calls.
struct PortIo {
    bufs: Box<[[u8; MAX_FRAME]]>,
    lens: [Option<usize>; PORT_BATCH],
    rx: MultiHeaders<LinkAddr>,
    tx: MultiHeaders<LinkAddr>,
    /// The card's frames, addressed, waiting for one `sendmmsg`.
    for_wire: Vec<Vec<u8>>,
    /// Data frames for the card, queued to it together.
    for_card: Vec<Vec<u8>>,
    /// Buffers of frames sent, for frames received.
    stash: Stash,
}

impl PortIo {
    fn new() -> PortIo {
        PortIo {
            bufs: vec![[0u8; MAX_FRAME]; PORT_BATCH].into_boxed_slice(),
            lens: [None; PORT_BATCH],
            rx: MultiHeaders::preallocate(PORT_BATCH, None),
            tx: MultiHeaders::preallocate(PORT_BATCH, None),
            for_wire: Vec::with_capacity(PORT_BATCH),
            for_card: Vec::with_capacity(RX_BURST),
            stash: Stash::default(),
        }
    }
}

impl AsFd for PortSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// The tag of the link layer's frames sent through a card with its own port (the datapath
/// numbers its packets from zero up: this one is never among them).
pub const LINK_FRAME_TAG: u64 = u64::MAX;

/// Where the port thread's frames go and come from.
pub enum PortWire<'a> {
    /// An interface the card's port is attached to, through an AF_PACKET socket.
    Socket(&'a PortSocket),
    /// The card's own port: frames through the card (see the module documentation).
    Card {
        /// The MAC espo answers ARP and neighbour solicitations with.
        mac: Mac,
        shared: &'a super::engine::CardShared,
        /// Where the port publishes the next hops it resolved.
        macs: &'a espo_offload::NextHopMacs,
    },
}

impl PortWire<'_> {
    pub fn mac(&self) -> Mac {
        match self {
            PortWire::Socket(s) => s.mac(),
            PortWire::Card { mac, .. } => *mac,
        }
    }

    /// Up to [`PORT_BATCH`] frames into `io` (see [`PortSocket::recv_batch`]); 0 when none
    /// waits.
    fn recv_batch(&self, queues: &PortQueues, io: &mut PortIo) -> io::Result<usize> {
        match self {
            PortWire::Socket(s) => s.recv_batch(io),
            PortWire::Card { .. } => {
                let mut n = 0;
                for (buf, len) in io.bufs.iter_mut().zip(io.lens.iter_mut()) {
                    let Some(f) = queues.take_for_host() else {
                        break;
                    };
                    let k = f.len().min(buf.len());
                    buf[..k].copy_from_slice(&f[..k]);
                    *len = Some(k);
                    n += 1;
                }
                Ok(n)
            }
        }
    }

    fn send(&self, frame: &[u8]) -> bool {
        match self {
            PortWire::Socket(s) => s.send(frame),
            PortWire::Card { shared, .. } => {
                shared.engine().submit_frame(LINK_FRAME_TAG, frame);
                // The card's poller posts it.
                shared.wake.signal();
                true
            }
        }
    }

    fn fd<'q>(&'q self, queues: &'q PortQueues) -> BorrowedFd<'q> {
        match self {
            PortWire::Socket(s) => s.as_fd(),
            PortWire::Card { .. } => queues.host_wake.fd(),
        }
    }

    fn is_card(&self) -> bool {
        matches!(self, PortWire::Card { .. })
    }
}

/// The port's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received on the interface, and of those handed to the card.
    pub frames_in: u64,
    pub to_card: u64,
    /// Frames sent on the interface (the card's, and ARP/ND).
    pub frames_out: u64,
    pub arp_answered: u64,
    pub arp_requests_sent: u64,
    pub nd_answered: u64,
    pub nd_solicits_sent: u64,
    pub malformed_arp: u64,
    pub malformed_nd: u64,
    /// Frames not for the card: another MAC, multicast data, other EtherTypes, other
    /// ARP/ICMPv6, requests for addresses that are not espo's.
    pub ignored: u64,
    /// The card's frames dropped: next hop unresolved, not IP, or the card's queue full.
    pub unresolved: u64,
    pub not_ip: u64,
    pub card_full: u64,
    pub send_errors: u64,
    /// IKE messages handed to key management, and those its full inbox refused.
    pub ike_in: u64,
    pub ike_backlog: u64,
    /// Frames longer than the interface's MTU allows, not handed on (see [`PortSocket`]).
    pub oversize: u64,
}

/// What `espo status` shows of the port.
#[derive(Debug, Clone, Default)]
pub struct PortView {
    pub counters: PortCounters,
    pub neighbours: Vec<NeighbourView>,
}

/// The addresses the port answers for and learns.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// espo's tunnel endpoints: answered for, and the sources of its own requests.
    pub local: Vec<IpAddr>,
    /// Every next hop the card's frames can have: only these are learnt from the requests
    /// they send (so that requests from anyone else cannot fill the neighbour cache).
    pub neighbours: Vec<IpAddr>,
}

impl Endpoints {
    /// Adds a local endpoint and a next hop (when not there yet).
    pub fn add(&mut self, local: IpAddr, next_hop: IpAddr) {
        if !self.local.contains(&local) {
            self.local.push(local);
        }
        if !self.neighbours.contains(&next_hop) {
            self.neighbours.push(next_hop);
        }
    }
}

/// What the port thread needs.
pub struct PortCtx<'a> {
    pub wire: PortWire<'a>,
    pub queues: &'a PortQueues,
    /// Signalled when frames went to the card (its receive path has work).
    pub card_wake: &'a Wake,
    /// espo's tunnel endpoints and its peers' next hops; SAs added while espo runs add
    /// theirs.
    pub endpoints: &'a RwLock<Endpoints>,
    /// The configured next hop per family (absent: the outer destination itself).
    pub next_hops: Vec<IpAddr>,
    pub shutdown: &'a Shutdown,
    pub published: &'a Mutex<PortView>,
    /// The outbound SAs' path MTUs: learnt from the ICMP errors about their packets that
    /// arrive here, and the sequence numbers of their packets noted as they leave.
    pub path_mtus: &'a PathMtus,
    /// Key management's inbox: IKE messages to espo go there, not to the card.
    pub ike: Option<&'a crate::ike::IkeInbox>,
    /// How long the thread looks for more before it sleeps ([`Look`]).
    pub busy_poll: std::time::Duration,
}

struct Port<'a> {
    ctx: PortCtx<'a>,
    neighbours: Neighbours,
    counters: PortCounters,
    out: Vec<u8>,
}

/// The port thread: until shutdown, frames both ways, ARP and ND.
pub fn run_port(ctx: PortCtx<'_>) -> PortCounters {
    let mut p = Port {
        ctx,
        neighbours: Neighbours::default(),
        counters: PortCounters::default(),
        out: Vec::with_capacity(128),
    };
    let mut io = PortIo::new();
    let mut ready = Vec::new();
    let mut look = Look::new(p.ctx.busy_poll);
    while !p.ctx.shutdown.requested() {
        let more = p.receive(&mut io);
        p.ctx.queues.wire_wake.clear();
        p.transmit(&mut io);
        let now = Instant::now();
        if p.ctx.wire.is_card() {
            // The card sends its frames itself: every next hop is kept resolved ahead of
            // them, none waits here.
            let hops = read(p.ctx.endpoints).neighbours.clone();
            for hop in hops {
                p.neighbours.keep_resolved(hop, now);
            }
        }
        let dropped = p.neighbours.tick(now);
        p.counters.unresolved += dropped as u64;
        p.send_requests();
        p.publish();
        if !more {
            let fds = [p.ctx.wire.fd(p.ctx.queues), p.ctx.queues.wire_wake.fd()];
            wait_readable_within(&fds, None, p.ctx.shutdown, &mut ready, &mut look, IDLE_POLL);
        }
    }
    p.publish();
    p.counters
}

impl Port<'_> {
    /// Takes up to [`RX_BURST`] frames from the socket, [`PORT_BATCH`] to a `recvmmsg`;
    /// true when more may wait.
    fn receive(&mut self, io: &mut PortIo) -> bool {
        let mut more = false;
        io.for_card.clear();
        for round in 0..RX_BURST / PORT_BATCH {
            let n = match self.ctx.wire.recv_batch(self.ctx.queues, io) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for i in 0..n {
                let (Some(len), Some(buf)) = (io.lens[i], io.bufs.get(i)) else {
                    continue;
                };
                self.counters.frames_in += 1;
                if let Some(frame) = self.take_from_wire(&buf[..len]) {
                    let mut data = io.stash.take(self.ctx.queues);
                    data.extend_from_slice(frame);
                    io.for_card.push(data);
                }
            }
            more = n == PORT_BATCH && round + 1 == RX_BURST / PORT_BATCH;
            if n < PORT_BATCH {
                break;
            }
        }
        if let PortWire::Socket(socket) = self.ctx.wire {
            self.counters.oversize = socket.oversize();
        }
        if !io.for_card.is_empty() {
            let mut q = lock(&self.ctx.queues.to_card);
            let room = MAX_TO_CARD.saturating_sub(q.len());
            let full = io.for_card.len().saturating_sub(room);
            let taken = io.for_card.len() - full;
            q.extend(io.for_card.drain(..taken));
            drop(q);
            io.for_card.clear();
            self.counters.card_full += full as u64;
            self.counters.to_card += taken as u64;
            if taken > 0 {
                self.ctx.card_wake.signal();
                self.ctx.queues.card_feed.signal();
            }
        }
        more
    }

    /// One frame from the wire: ARP, neighbour discovery, ICMP errors and IKE handled here;
    /// returned when it is a data frame for the card.
    fn take_from_wire<'f>(&mut self, frame: &'f [u8]) -> Option<&'f [u8]> {
        match resolve::parse(frame) {
            Kind::Neighbour(n) => self.neighbourly(n),
            Kind::Malformed(Malformed::Arp) => self.counters.malformed_arp += 1,
            Kind::Malformed(Malformed::Nd) => self.counters.malformed_nd += 1,
            Kind::OtherControl => {
                // ICMPv6 that is not neighbour discovery: a packet too big is the path MTU
                // table's; the rest is nothing for espo.
                if !self.path_mtu_error(frame) {
                    self.counters.ignored += 1;
                }
            }
            Kind::Data => {
                let ip = matches!(frame.get(12..14), Some([0x08, 0x00] | [0x86, 0xdd]));
                if !ip || frame.get(..6) != Some(&self.ctx.wire.mac()[..]) {
                    self.counters.ignored += 1;
                    return None;
                }
                if self.path_mtu_error(frame) {
                    return None;
                }
                if let Some(inbox) = self.ctx.ike {
                    match super::ike::intercept(frame, |ip| self.is_local(ip)) {
                        Some(super::ike::Intercepted::Ike(m)) => {
                            if inbox.offer(m.into()) {
                                self.counters.ike_in += 1;
                            } else {
                                self.counters.ike_backlog += 1;
                            }
                            return None;
                        }
                        Some(super::ike::Intercepted::Keepalive) => {
                            self.counters.ignored += 1;
                            return None;
                        }
                        None => {}
                    }
                }
                if self.ctx.wire.is_card() {
                    // The card passed it on as the link layer's, and it is not.
                    self.counters.ignored += 1;
                    return None;
                }
                return Some(frame);
            }
        }
        None
    }

    /// Whether `frame` is an ICMP error about a packet too big sent to the port's MAC:
    /// then it is the path MTU table's (read, and learnt from if believed), not the card's.
    fn path_mtu_error(&mut self, frame: &[u8]) -> bool {
        if frame.get(..6) != Some(&self.ctx.wire.mac()[..]) {
            return false;
        }
        match outer_pmtu::hear(frame.get(ETH_HEADER_LEN..).unwrap_or(&[])) {
            Heard::TooBig(error) => {
                if let PortWire::Card { shared, .. } = &self.ctx.wire {
                    // The card's packets leave without passing here: the numbers its SAs
                    // used so far, from the engine, before the quote is judged.
                    let engine = shared.engine();
                    for spi in self.ctx.path_mtus.spis() {
                        if let Some(used) = engine.seq_used(spi) {
                            self.ctx.path_mtus.note_used(spi, used);
                        }
                    }
                }
                self.ctx.path_mtus.learn(&error, Instant::now());
                true
            }
            Heard::Malformed => {
                self.ctx.path_mtus.count_malformed();
                true
            }
            Heard::Other => false,
        }
    }

    fn is_local(&self, ip: IpAddr) -> bool {
        read(self.ctx.endpoints).local.contains(&ip)
    }

    fn neighbourly(&mut self, n: Neighbourly) {
        let now = Instant::now();
        let mac = self.ctx.wire.mac();
        match n {
            Neighbourly::Request {
                sender_ip,
                sender_mac,
                target,
            } => {
                if !self.is_local(target) {
                    self.counters.ignored += 1;
                    return;
                }
                if let Some(sender_mac) = sender_mac
                    && !sender_ip.is_unspecified()
                {
                    let wanted = read(self.ctx.endpoints).neighbours.contains(&sender_ip);
                    let frames = self.neighbours.learn(sender_ip, sender_mac, now, wanted);
                    self.send_all(frames);
                }
                let asker_mac = sender_mac.unwrap_or([0; 6]);
                match (target, sender_ip) {
                    (IpAddr::V4(ours), IpAddr::V4(asker)) => {
                        resolve::arp_reply(&mut self.out, mac, ours, asker, asker_mac);
                        self.counters.arp_answered += 1;
                    }
                    (IpAddr::V6(ours), IpAddr::V6(asker)) => {
                        if sender_mac.is_none() && !asker.is_unspecified() {
                            // No address to answer to (RFC 4861 §7.2.4 would multicast;
                            // the asker will send the option next time).
                            self.counters.ignored += 1;
                            return;
                        }
                        resolve::nd_advertise(&mut self.out, mac, ours, asker, asker_mac);
                        self.counters.nd_answered += 1;
                    }
                    _ => return,
                }
                let out = std::mem::take(&mut self.out);
                self.send(&out);
                self.out = out;
            }
            Neighbourly::Reply { ip, mac } => {
                let frames = self.neighbours.learn(ip, mac, now, false);
                self.send_all(frames);
            }
        }
    }

    fn send(&mut self, frame: &[u8]) {
        if self.ctx.wire.send(frame) {
            self.counters.frames_out += 1;
        } else {
            self.counters.send_errors += 1;
        }
    }

    fn send_all(&mut self, frames: Vec<Vec<u8>>) {
        for f in frames {
            self.send(&f);
        }
    }

    /// Sends what the card sent, to its next hop's MAC: through the socket with
    /// `sendmmsg`, [`PORT_BATCH`] frames at a time.
    fn transmit(&mut self, io: &mut PortIo) {
        let frames = self.ctx.queues.take_for_wire();
        let now = Instant::now();
        let mac = self.ctx.wire.mac();
        for mut frame in frames {
            let Some(hop) = self.next_hop(&frame) else {
                self.counters.not_ip += 1;
                continue;
            };
            if let Some(src) = frame.get_mut(6..12) {
                src.copy_from_slice(&mac);
            }
            self.ctx
                .path_mtus
                .note_sent(frame.get(ETH_HEADER_LEN..).unwrap_or(&[]));
            match self.neighbours.lookup(hop, &frame, now) {
                Lookup::Send(dst) => {
                    frame[..6].copy_from_slice(&dst);
                    match self.ctx.wire {
                        PortWire::Socket(_) => io.for_wire.push(frame),
                        PortWire::Card { .. } => self.send(&frame),
                    }
                }
                Lookup::Queued => {}
                Lookup::Dropped => self.counters.unresolved += 1,
            }
        }
        if let PortWire::Socket(s) = self.ctx.wire
            && !io.for_wire.is_empty()
        {
            let failed = s.send_batch(&io.for_wire, &mut io.tx);
            self.counters.frames_out += (io.for_wire.len() - failed) as u64;
            self.counters.send_errors += failed as u64;
            while let Some(frame) = io.for_wire.pop() {
                io.stash.keep(self.ctx.queues, frame);
            }
        }
    }

    /// The next hop of a frame: the configured one of its family, or its destination.
    fn next_hop(&self, frame: &[u8]) -> Option<IpAddr> {
        let dst = match frame.get(12..14)? {
            [0x08, 0x00] => IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(frame.get(30..34)?).ok()?,
            )),
            [0x86, 0xdd] => IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(frame.get(38..54)?).ok()?,
            )),
            _ => return None,
        };
        Some(
            self.ctx
                .next_hops
                .iter()
                .copied()
                .find(|h| h.is_ipv4() == dst.is_ipv4())
                .unwrap_or(dst),
        )
    }

    fn send_requests(&mut self) {
        let mac = self.ctx.wire.mac();
        for ip in self.neighbours.take_due() {
            let ours = read(self.ctx.endpoints)
                .local
                .iter()
                .copied()
                .find(|l| l.is_ipv4() == ip.is_ipv4());
            match (ours, ip) {
                (Some(IpAddr::V4(ours)), IpAddr::V4(target)) => {
                    resolve::arp_request(&mut self.out, mac, ours, target);
                    self.counters.arp_requests_sent += 1;
                }
                (Some(IpAddr::V6(ours)), IpAddr::V6(target)) => {
                    resolve::nd_solicit(&mut self.out, mac, ours, target);
                    self.counters.nd_solicits_sent += 1;
                }
                _ => continue,
            }
            let out = std::mem::take(&mut self.out);
            self.send(&out);
            self.out = out;
        }
    }

    fn publish(&mut self) {
        if let PortWire::Card { macs, .. } = &self.ctx.wire {
            macs.set(&self.neighbours.resolved());
        }
        if let Ok(mut v) = self.ctx.published.try_lock() {
            v.counters.clone_from(&self.counters);
            v.neighbours = self.neighbours.view(Instant::now());
        }
    }
}

fn read(e: &RwLock<Endpoints>) -> std::sync::RwLockReadGuard<'_, Endpoints> {
    e.read().unwrap_or_else(|p| p.into_inner())
}

/// The family check [`Endpoints::local`] must pass: every family the SAs use has a local
/// address to send requests from.
pub fn missing_family(local: &[IpAddr], peers: &[IpAddr]) -> Option<IpAddr> {
    peers
        .iter()
        .copied()
        .find(|p| !local.iter().any(|l| l.is_ipv4() == p.is_ipv4()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_is_readable_once_per_idle_period() {
        let w = Wake::new().unwrap();
        w.signal();
        w.signal();
        let mut buf = [0u8; 8];
        assert_eq!(
            (&w.rx).read(&mut buf).unwrap(),
            1,
            "one byte for two signals"
        );
        w.clear();
        w.signal();
        assert_eq!((&w.rx).read(&mut buf).unwrap(), 1);
    }

    #[test]
    fn the_card_end_carries_frames_both_ways() {
        let q = std::sync::Arc::new(PortQueues::new().unwrap());
        let mut end = CardEnd::new(q.clone());
        Link::send(
            &mut end,
            Frame {
                data: vec![1, 2],
                cycle: 9,
            },
        );
        assert!(Wire::send(&mut end, &[3]));
        assert_eq!(
            lock(&q.to_wire).drain(..).collect::<Vec<_>>(),
            vec![vec![1, 2], vec![3]]
        );
        lock(&q.to_card).push_back(vec![7]);
        assert_eq!(Link::recv(&mut end).map(|f| f.data), Some(vec![7]));
        assert_eq!(Link::recv(&mut end), None);
    }

    #[test]
    fn frame_buffers_go_round_in_batches_and_come_back_empty() {
        let q = std::sync::Arc::new(PortQueues::new().unwrap());
        let mut end = CardEnd::new(q.clone());
        // The card gives back received frames' buffers: kept at hand until twice a batch,
        // then the oldest batch goes to the shared ones.
        for i in 0..2 * STASH - 1 {
            Link::recycle(&mut end, vec![i as u8; 100 + i]);
        }
        assert_eq!(lock(&q.spare).len(), 0);
        Link::recycle(&mut end, vec![7; 50]);
        assert_eq!(lock(&q.spare).len(), STASH);
        assert_eq!(end.stash.0.len(), STASH);
        // The port thread takes a batch of them for frames it receives: empty, their room
        // kept (no allocation for a frame that fits).
        let mut port = Stash::default();
        let buf = port.take(&q);
        assert!(buf.is_empty() && buf.capacity() >= 100);
        assert_eq!(lock(&q.spare).len(), 0);
        assert_eq!(port.0.len(), STASH - 1);
        // The card's own buffers serve the frames it sends, then the shared ones, then new.
        for _ in 0..STASH {
            let b = Link::buffer(&mut end);
            assert!(b.capacity() >= 50);
        }
        let fresh = Link::buffer(&mut end);
        assert_eq!(
            (fresh.len(), fresh.capacity()),
            (0, 0),
            "nothing kept: a new one"
        );
        // The shared ones never hold more than MAX_SPARE.
        q.give_back((0..MAX_SPARE + 10).map(|_| vec![1u8; 8]));
        assert_eq!(lock(&q.spare).len(), MAX_SPARE);
    }

    /// An experimental EtherType (IEEE 802 local use): nothing else on the link sends it.
    const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];

    fn test_frame(dst: Mac, src: Mac, marker: u8, i: u8) -> Vec<u8> {
        let mut f = vec![i; 60 + usize::from(i)];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&TEST_ETHERTYPE);
        f[14] = marker;
        f
    }

    /// Every test frame `socket` receives within `ms` milliseconds, up to `want`, batch by
    /// batch.
    fn receive_test_frames(
        socket: &PortSocket,
        io: &mut PortIo,
        want: usize,
        ms: u64,
    ) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let deadline = Instant::now() + std::time::Duration::from_millis(ms);
        while got.len() < want && Instant::now() < deadline {
            let n = socket.recv_batch(io).unwrap();
            assert!(n <= PORT_BATCH);
            for (len, buf) in io.lens[..n].iter().zip(io.bufs.iter()) {
                if let Some(len) = *len
                    && buf[12..14] == TEST_ETHERTYPE
                {
                    got.push(buf[..len].to_vec());
                }
            }
            if n == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        got
    }

    /// Runs `test` in a thread with a network namespace of its own (the veth pair goes
    /// with it) holding the veth pair pa ── pb, both up; `ip` runs `ip` there. Skipped
    /// without root.
    fn with_veth_pair(test: impl FnOnce(&dyn Fn(&[&str])) + Send + 'static) {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (a veth pair in a network namespace of its own)");
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let ip = |args: &[&str]| {
                let status = std::process::Command::new("ip")
                    .args(args)
                    .status()
                    .unwrap();
                assert!(status.success(), "ip {args:?}");
            };
            ip(&["link", "add", "pa", "type", "veth", "peer", "name", "pb"]);
            ip(&["link", "set", "pa", "up"]);
            ip(&["link", "set", "pb", "up"]);
            test(&ip);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_port_socket_takes_and_sends_frames_in_batches() {
        with_veth_pair(|_| {
            let port = PortSocket::open("pa").unwrap();
            let peer = PortSocket::open("pb").unwrap();
            let mut io = PortIo::new();
            let mut peer_io = PortIo::new();

            // 70 frames to the port in one call (three sendmmsg), taken 32 at most at a
            // time, in order and whole.
            let sent: Vec<Vec<u8>> = (0..70)
                .map(|i| test_frame(port.mac(), peer.mac(), 1, i))
                .collect();
            assert_eq!(peer.send_batch(&sent, &mut peer_io.tx), 0);
            assert_eq!(receive_test_frames(&port, &mut io, 70, 5000), sent);

            // The port's own frames reach the peer, and are not taken back by the port
            // (the socket sees them leave: skipped).
            let own: Vec<Vec<u8>> = (0..5)
                .map(|i| test_frame(peer.mac(), port.mac(), 2, i))
                .collect();
            assert_eq!(port.send_batch(&own, &mut io.tx), 0);
            assert_eq!(receive_test_frames(&peer, &mut peer_io, 5, 5000), own);
            assert!(receive_test_frames(&port, &mut io, 1, 200).is_empty());

            // A frame the interface refuses (longer than its MTU allows) is counted and
            // skipped; the frames around it go.
            let mut mixed = own.clone();
            mixed.insert(2, test_frame(peer.mac(), port.mac(), 3, 0).repeat(40));
            assert_eq!(port.send_batch(&mixed, &mut io.tx), 1);
            assert_eq!(receive_test_frames(&peer, &mut peer_io, 5, 5000), own);
        });
    }

    #[test]
    fn a_super_frame_is_counted_not_handed_on() {
        with_veth_pair(|ip| {
            ip(&["addr", "add", "10.9.0.1/24", "dev", "pb"]);
            let port = PortSocket::open("pa").unwrap();
            let mac = port.mac().map(|b| format!("{b:02x}")).join(":");
            ip(&["neigh", "add", "10.9.0.2", "lladdr", &mac, "dev", "pb"]);
            let udp = std::net::UdpSocket::bind("10.9.0.1:4500").unwrap();
            // Ten datagrams of 1000 bytes in one send with UDP GSO: the veth link carries
            // them to the port as one frame of 10 KB.
            nix::sys::socket::setsockopt(&udp, nix::sys::socket::sockopt::UdpGsoSegment, &1000)
                .unwrap();
            udp.send_to(&[0xab; 10_000], "10.9.0.2:4500").unwrap();
            // And one plain datagram after it.
            nix::sys::socket::setsockopt(&udp, nix::sys::socket::sockopt::UdpGsoSegment, &0)
                .unwrap();
            udp.send_to(&[0xcd; 1000], "10.9.0.2:4500").unwrap();

            let mut io = PortIo::new();
            let mut udp_frames = Vec::new();
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            while udp_frames.is_empty() && Instant::now() < deadline {
                let n = port.recv_batch(&mut io).unwrap();
                for (len, buf) in io.lens[..n].iter().zip(io.bufs.iter()) {
                    // IPv4, UDP, to port 4500.
                    if let Some(len) = *len
                        && buf[12..14] == [0x08, 0x00]
                        && buf[23] == 17
                        && buf[36..38] == 4500u16.to_be_bytes()
                    {
                        udp_frames.push(buf[..len].to_vec());
                    }
                }
                if n == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            assert_eq!(port.oversize(), 1, "the super-frame is counted");
            assert_eq!(udp_frames.len(), 1, "only the plain datagram is handed on");
            assert_eq!(udp_frames[0].len(), 14 + 20 + 8 + 1000);
            assert_eq!(udp_frames[0][42..], [0xcd; 1000]);
        });
    }

    #[test]
    fn every_family_needs_a_local_address() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(missing_family(&[v4], &[v4]), None);
        assert_eq!(missing_family(&[v4], &[v4, v6]), Some(v6));
    }
}
