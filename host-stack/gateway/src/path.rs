//! The engine behind the gateway, one interface per direction.
//!
//! The gateway moves packets; an engine transforms them. Each direction hands its engine a
//! batch of packets and gets back, per packet, either something to forward or a counted
//! drop. The software engine implements both halves now; the offload engine (card model or
//! a real card over VFIO) implements the same two traits, so the gateway's threads, PMTU
//! handling and status do not change when the card takes over an SA.
//!
//! Packets live in [`PacketBuf`]s with [`HEADROOM`] in front and [`TAILROOM`] behind, so
//! an engine can build the tunnel packet around the inner one without a copy.

use std::net::IpAddr;
use std::ops::Range;
use std::os::fd::BorrowedFd;

use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::{
    Decapsulated, EncapsulatedInPlace, HEADROOM, Inbound, Outbound, TAILROOM,
};
use espo_ipsec::gso::Segments;
use espo_ipsec::lifetime::LifetimeEvent;
use espo_ipsec::spec::Direction;
use espo_offload::Placement;

use crate::pmtu::PathLimit;

/// Largest IP datagram.
pub const MAX_PACKET: usize = 65535;
/// Size of every packet buffer: the largest datagram with room for a tunnel around it.
pub const BUF_LEN: usize = HEADROOM + MAX_PACKET + TAILROOM;

/// One packet in flight: a fixed buffer and the range of it the packet occupies.
pub struct PacketBuf {
    buf: Box<[u8]>,
    range: Range<usize>,
}

impl Default for PacketBuf {
    fn default() -> Self {
        PacketBuf {
            buf: vec![0u8; BUF_LEN].into_boxed_slice(),
            range: 0..0,
        }
    }
}

impl core::fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PacketBuf")
            .field("range", &self.range)
            .finish()
    }
}

impl PacketBuf {
    /// A buffer of no bytes (allocates nothing): a placeholder for one that may never be
    /// needed.
    pub fn empty() -> PacketBuf {
        PacketBuf {
            buf: Box::default(),
            range: 0..0,
        }
    }

    /// The packet.
    pub fn packet(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }

    pub fn packet_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.range.clone()]
    }

    pub fn range(&self) -> Range<usize> {
        self.range.clone()
    }

    /// Where the packet lies in the buffer; clamped to the buffer.
    pub fn set_range(&mut self, range: Range<usize>) {
        let end = range.end.min(self.buf.len());
        self.range = range.start.min(end)..end;
    }

    /// The whole buffer, for receiving into and for engines that work in place.
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Space for a packet received at `offset` (leaving `offset` bytes of headroom).
    pub fn receive_area(&mut self, offset: usize) -> &mut [u8] {
        let offset = offset.min(self.buf.len());
        let end = (offset + MAX_PACKET).min(self.buf.len());
        &mut self.buf[offset..end]
    }

    /// Writes `prefix` into the buffer right in front of the packet, and returns the two
    /// together; `None` (nothing written) when the packet has less room than that in front.
    pub fn with_prefix(&mut self, prefix: &[u8]) -> Option<&[u8]> {
        let start = self.range.start.checked_sub(prefix.len())?;
        self.buf
            .get_mut(start..self.range.start)?
            .copy_from_slice(prefix);
        self.buf.get(start..self.range.end)
    }

    /// Copies `packet` in at [`HEADROOM`]; `false` (and nothing copied) when it is longer
    /// than [`MAX_PACKET`].
    pub fn load(&mut self, packet: &[u8]) -> bool {
        if packet.len() > MAX_PACKET {
            return false;
        }
        self.buf[HEADROOM..HEADROOM + packet.len()].copy_from_slice(packet);
        self.range = HEADROOM..HEADROOM + packet.len();
        true
    }

    /// A packet of `len` bytes written in at [`HEADROOM`] by `fill`; `false` (and the
    /// buffer left empty) when it is longer than [`MAX_PACKET`] or `fill` fails.
    pub fn load_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> bool) -> bool {
        self.range = 0..0;
        if len > MAX_PACKET || !fill(&mut self.buf[HEADROOM..HEADROOM + len]) {
            return false;
        }
        self.range = HEADROOM..HEADROOM + len;
        true
    }
}

/// What the outbound engine made of a packet it did not drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    /// The packet is now the tunnel packet; send it to the outer destination.
    Protected { spi: u32 },
    /// Policy says bypass: send the packet unchanged.
    Bypass,
    /// The engine has sent it itself (a card transmits on its own port): nothing to send.
    Transmitted { spi: u32 },
}

/// What the inbound engine made of a packet it did not drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// The packet is now the inner packet; deliver it to the inside.
    Inner { spi: u32 },
    /// An unprotected packet that policy lets through; the host stack already has it.
    Bypass,
    /// An unprotected packet that policy lets through and only espo has (it arrived on a
    /// card's port, not through the host stack): deliver it to the inside.
    Unprotected,
    /// Consumed (an RFC 3948 NAT keepalive): nothing to deliver.
    Consumed,
    /// The packet is now an IKE message (what followed the non-ESP marker on port 4500),
    /// for the key-management daemon.
    Ike {
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
    },
    /// The inner packet stays where the engine received it (a card's buffer) until
    /// [`InboundEngine::write_held`] writes it to the inside from there; its slot in the
    /// batch is empty. Only packets of flows the coalescer never holds (not TCP) are held,
    /// and only while no packet of their flow went into the batch: writing them first
    /// keeps every flow's order (other flows may pass them, as they pass the TCP segments
    /// the coalescer holds).
    Held { spi: u32 },
}

/// The moving state of one SA, as an engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaSnapshot {
    pub spi: u32,
    pub dst: IpAddr,
    pub direction: Direction,
    /// Outbound: the last sequence number used. Inbound: the highest one accepted.
    pub seq: u64,
    pub packets: u64,
    /// Bytes of inner packets.
    pub bytes: u64,
    pub placement: Placement,
}

/// The tunnel an inner packet would take, for the outbound thread's PMTU check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// What protecting the packet adds to it, in bytes.
    pub overhead: usize,
    /// The SPI of its bundle's outermost SA, where the engine knows it.
    pub spi: Option<u32>,
    /// What that SA's path allows, where ICMP errors about its packets lowered it.
    pub path: Option<PathLimit>,
}

impl Tunnel {
    /// The tunnel the software engine's SPD chose: its overhead and outermost SPI.
    pub fn of(t: espo_ipsec::engine::Tunnel) -> Tunnel {
        Tunnel {
            overhead: t.overhead,
            spi: Some(t.outer_spi),
            path: None,
        }
    }
}

/// The outbound half of an engine: inner packets in, tunnel packets out.
pub trait OutboundEngine: Send {
    /// What protecting this inner packet would add to it, in bytes; `None` when policy
    /// bypasses it. Uses no sequence number.
    fn overhead(&self, inner: &[u8]) -> Result<Option<usize>, DropReason>;
    /// The tunnel this inner packet would take; `None` when policy bypasses it. Uses no
    /// sequence number. An engine that knows no more than the overhead says only that.
    fn tunnel(&self, inner: &[u8]) -> Result<Option<Tunnel>, DropReason> {
        Ok(self.overhead(inner)?.map(|overhead| Tunnel {
            overhead,
            spi: None,
            path: None,
        }))
    }
    /// The largest overhead any outbound bundle adds (padding at its worst).
    fn max_overhead(&self) -> usize;
    /// Transforms a batch in place: `verdicts[i]` says what became of `batch[i]`, whose
    /// range is the tunnel packet when protected.
    fn encapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Outgoing, DropReason>>,
    );
    /// Whether [`encapsulate_segments`](Self::encapsulate_segments) takes a super-packet's
    /// segments straight from it.
    fn takes_segments(&self) -> bool {
        false
    }
    /// Takes every segment `segments` has left, each written once, from the super-packet
    /// straight to where the engine sends it from (a card's TX buffer), with no batch in
    /// between, and sends it itself; appends each segment's length and fate to `out`, in
    /// order: `Ok` handed on to be sent (a later refusal comes through
    /// [`settle`](Self::settle)), or the reason it was dropped. Called only where
    /// [`takes_segments`](Self::takes_segments) says so. The caller checked the first,
    /// largest segment against the path MTU: the others, of the same flow and no longer,
    /// share its fate.
    fn encapsulate_segments(
        &mut self,
        segments: &mut Segments<'_>,
        out: &mut Vec<(usize, Result<(), DropReason>)>,
    ) {
        let _ = (segments, out);
    }
    /// Whether the engine reads packets from the TUN device straight into its own send
    /// buffers ([`read_into_buffer`](Self::read_into_buffer)): a card's TX buffers, which
    /// it reads by DMA.
    fn reads_into_buffers(&self) -> bool {
        false
    }
    /// One read from the TUN device `fd` into a send buffer of the engine: the first
    /// `vnet.len()` bytes (the virtio-net header; none when empty) into `vnet`, the packet
    /// into the buffer while it fits, and the rest of a longer one (a super-packet) into
    /// `area` past the buffer's length. A single packet that is whole in the buffer, not
    /// link-scope, and fits `outer_mtu` with the largest overhead any tunnel adds — and,
    /// with `learnt` (while a path MTU learnt from an ICMP error may hold for some SA),
    /// its own SA's path — is handed on to be sent as
    /// [`encapsulate`](Self::encapsulate) would have — its
    /// partial checksum completed where it lies — and never copied
    /// ([`DirectRead::Sent`]); anything else is left in host memory as a read into `area`
    /// would have left it, for the caller ([`DirectRead::InHost`]). `None` when the engine
    /// has no buffer free now: the caller reads as usual. Called only where
    /// [`reads_into_buffers`](Self::reads_into_buffers) says so, with nothing waiting in
    /// the caller's batch (what it hands on leaves after what was handed on before).
    fn read_into_buffer(
        &mut self,
        fd: BorrowedFd<'_>,
        vnet: &mut [u8],
        area: &mut [u8],
        outer_mtu: usize,
        learnt: Option<&crate::outer_pmtu::PathMtus>,
    ) -> Option<std::io::Result<DirectRead>> {
        let _ = (fd, vnet, area, outer_mtu, learnt);
        None
    }
    /// Sends what [`read_into_buffer`](Self::read_into_buffer) handed on: once after a run
    /// of reads, as [`encapsulate`](Self::encapsulate) sends its batch. A refusal comes
    /// through [`settle`](Self::settle).
    fn post_reads(&mut self) {}
    /// The state of every outbound SA, appended to `out`.
    fn snapshot(&self, out: &mut Vec<SaSnapshot>);
    /// Packets reported [`Outgoing::Transmitted`] that the engine could not send after all
    /// (an engine that transmits asynchronously learns their fate later): their reasons,
    /// appended to `out`.
    fn settle(&mut self, out: &mut Vec<DropReason>) {
        let _ = out;
    }
    /// The batch last encapsulated is sent. An engine whose SAs several workers share
    /// refuses a packet `seq-busy` (untouched) while other workers hold numbers too far
    /// behind; the caller sends the rest, calls this, and offers the packet again.
    fn sent(&mut self) {}
    /// The trap policies packets matched since the last call (`trapped` drops), appended
    /// to `out`: key management negotiates their SAs.
    fn take_acquires(&mut self, out: &mut Vec<espo_ipsec::spd::PolicyId>) {
        let _ = out;
    }
    /// Work between two batches (and when idle): changes to the SA and policy database,
    /// lifetimes. Called before every batch; cheap when there is nothing to do.
    fn housekeeping(&mut self) {}
    /// The thread is stopping: changes waiting for [`housekeeping`](Self::housekeeping) run
    /// one last time, and later ones are refused at once (`MailboxError::Closed`) instead of
    /// waiting for a thread that is gone.
    fn close(&mut self) {}
    /// A descriptor that polls readable when [`housekeeping`](Self::housekeeping) has work,
    /// for the thread's idle poll.
    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// Lifetime ends the engine reported, latest last (at most a few).
    fn lifetime_events(&self) -> &[LifetimeEvent] {
        &[]
    }
}

/// What [`OutboundEngine::read_into_buffer`] did with its read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectRead {
    /// A packet of `len` bytes, read into the engine's buffer and handed on from there.
    Sent { len: usize },
    /// `read` bytes, as a read into the caller's memory would have left them: the
    /// virtio-net header in `vnet`, the packet in `area`.
    InHost { read: usize },
    /// A packet read but lost on the way back to host memory (the engine's buffer could
    /// not be read): counted as dropped for `reason`.
    Dropped { reason: DropReason },
}

/// The inbound half of an engine: tunnel packets in, inner packets out.
pub trait InboundEngine: Send {
    /// Transforms a batch in place: `verdicts[i]` says what became of `batch[i]`, whose
    /// range is the inner packet when one was recovered.
    fn decapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Incoming, DropReason>>,
    );
    /// Writes the packets the last [`decapsulate`](Self::decapsulate) said are held
    /// ([`Incoming::Held`]), in their order, each straight from where it lies through the
    /// queue of `tun` its flow takes ([`crate::tun::queue_for`]), and gives their buffers
    /// back; appends each one's length and whether it was written whole to `out`.
    fn write_held(&mut self, tun: &[crate::tun::Tun], out: &mut Vec<(usize, bool)>) {
        let _ = (tun, out);
    }
    /// The state of every inbound SA, appended to `out`.
    fn snapshot(&self, out: &mut Vec<SaSnapshot>);
    /// As [`OutboundEngine::housekeeping`].
    fn housekeeping(&mut self) {}
    /// As [`OutboundEngine::close`].
    fn close(&mut self) {}
    /// As [`OutboundEngine::wake_fd`].
    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    /// As [`OutboundEngine::lifetime_events`].
    fn lifetime_events(&self) -> &[LifetimeEvent] {
        &[]
    }
}

/// Where the outbound thread sends tunnel packets: the software engine's raw sockets
/// ([`super::sockets::OuterTx`]); for a card engine, whatever its engine does not transmit
/// itself.
pub trait OutsideTx: Sync {
    /// Per-thread state a send needs (preallocated message headers).
    type Scratch;
    fn scratch(&self) -> Self::Scratch;
    /// Sends whole IP packets; returns how many could not be sent.
    fn send_batch(&self, packets: &[&[u8]], scratch: &mut Self::Scratch) -> usize;
    /// The system calls the sends through `scratch` made so far (0 where none are made:
    /// the card transmits).
    fn calls(&self, scratch: &Self::Scratch) -> u64;
}

/// Where the inbound thread takes tunnel packets from: the software engine's ESP, AH and
/// UDP sockets ([`super::sockets::OuterRx`]); for a card engine, its receive queues. Each
/// queue has a descriptor that polls readable when packets wait.
pub trait OutsideRx: Sync {
    type Scratch;
    fn scratch(&self) -> Self::Scratch;
    /// One descriptor per queue, in queue order.
    fn fds(&self) -> Vec<BorrowedFd<'_>>;
    /// Receives up to `bufs.len()` whole IP packets from `queue`; 0 when none waits.
    fn recv_batch(
        &self,
        queue: usize,
        bufs: &mut [PacketBuf],
        scratch: &mut Self::Scratch,
    ) -> std::io::Result<usize>;
    /// The system calls that brought packets in through `scratch` so far (0 where none
    /// do: a card's receive queue is read from memory).
    fn calls(&self, scratch: &Self::Scratch) -> u64;
}

impl OutboundEngine for Outbound {
    fn overhead(&self, inner: &[u8]) -> Result<Option<usize>, DropReason> {
        self.tunnel_overhead(inner)
    }

    fn tunnel(&self, inner: &[u8]) -> Result<Option<Tunnel>, DropReason> {
        Ok(self.tunnel_for(inner)?.map(Tunnel::of))
    }

    fn max_overhead(&self) -> usize {
        self.max_tunnel_overhead()
    }

    fn encapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Outgoing, DropReason>>,
    ) {
        verdicts.clear();
        self.begin_batch(batch.len());
        for p in batch.iter_mut() {
            let inner = p.range();
            let verdict = match self.encapsulate_in_place(p.buffer_mut(), inner) {
                Ok(EncapsulatedInPlace::Protected { range, spi, .. }) => {
                    p.set_range(range);
                    Ok(Outgoing::Protected { spi })
                }
                Ok(EncapsulatedInPlace::Bypass) => Ok(Outgoing::Bypass),
                Err(reason) => Err(reason),
            };
            verdicts.push(verdict);
        }
        self.end_batch();
    }

    fn take_acquires(&mut self, out: &mut Vec<espo_ipsec::spd::PolicyId>) {
        Outbound::take_acquires(self, out);
    }

    fn sent(&mut self) {
        self.batch_sent();
    }

    fn snapshot(&self, out: &mut Vec<SaSnapshot>) {
        out.extend(self.sas().iter().map(|sa| SaSnapshot {
            spi: sa.params.spi,
            dst: sa.params.dst,
            direction: Direction::Out,
            seq: sa.seq(),
            packets: sa.counters.packets,
            bytes: sa.counters.bytes,
            placement: Placement::Software,
        }));
    }
}

impl InboundEngine for Inbound {
    fn decapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Incoming, DropReason>>,
    ) {
        verdicts.clear();
        for p in batch.iter_mut() {
            let outer = p.range();
            let verdict = match Inbound::decapsulate(self, p.packet_mut()) {
                Ok(Decapsulated::Inner { range, spi, .. }) => {
                    p.set_range(outer.start + range.start..outer.start + range.end);
                    Ok(Incoming::Inner { spi })
                }
                Ok(Decapsulated::Bypass) => Ok(Incoming::Bypass),
                Ok(Decapsulated::Keepalive) => Ok(Incoming::Consumed),
                Ok(Decapsulated::Ike { range, src, dst }) => {
                    p.set_range(outer.start + range.start..outer.start + range.end);
                    Ok(Incoming::Ike { src, dst })
                }
                Err(reason) => Err(reason),
            };
            verdicts.push(verdict);
        }
    }

    fn snapshot(&self, out: &mut Vec<SaSnapshot>) {
        out.extend(self.sas().iter().map(|sa| SaSnapshot {
            spi: sa.params.spi,
            dst: sa.params.dst,
            direction: Direction::In,
            seq: sa.replay.highest(),
            packets: sa.counters.packets,
            bytes: sa.counters.bytes,
            placement: Placement::Software,
        }));
    }
}

#[cfg(test)]
mod tests;
