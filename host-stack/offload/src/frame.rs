//! Outbound frames, and the zero-copy way in: a frame is in host memory (copied in by
//! [`OffloadEngine::submit`]) or in a card TX buffer the engine lent its owner
//! ([`OffloadEngine::tx_slot`]), where the packet was written straight from its source — a
//! TUN read, a segmenter — and from where the card reads it: no copy and no allocation
//! between the source and the card.
//!
//! The engine decides a lent frame's fate from its first bytes, copied once into host
//! memory ([`Flow::parse_head`]); the rest is never touched on the card path. A lent frame
//! that ends up in software (an SA there, the card faulty or gone) is copied out then.

use std::io;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use espo_driver::card::TxBuf;
use espo_ipsec::counters::DropReason;
use espo_ipsec::spd::{Action, Bundle};
use espo_ipsec::wire::Flow;
use espo_ipsec::wire::ethernet::EtherType;
use espo_ipsec::wire::flow::HEAD_LEN;

use super::tx::Work;
use super::{CardMode, OffloadEngine, OffloadOptions, SPARE_TX_BUFFERS, SentAs};

/// A packet's outbound decision: the bundle that protects it, or `None` for bypass.
pub(crate) type Bundled = Option<Bundle>;

/// Bytes in front of the IP packet in a frame (its Ethernet header).
pub const FRAME_HEADER: usize = 14;

/// Bytes of a lent frame read at once to decide it: the Ethernet header's room and the IP
/// packet's first [`HEAD_LEN`] bytes, in whole 8-byte words from the buffer's start.
const LENT_HEAD: usize = (FRAME_HEADER + HEAD_LEN).next_multiple_of(8);

/// The frame's first two words: its Ethernet header and the IP packet's first two bytes,
/// written as one when the header is (the packet's two bytes as they were).
const FIRST_WORDS: usize = 16;

/// A lent frame's first two words for each IP version, as native-endian words of its bytes:
/// the Ethernet header (the configured MACs, the version's EtherType), then room for the
/// IP packet's first two bytes, filled in with a few register operations. Made from the
/// options for each frame (no slower than keeping it in the engine, which changes the
/// engine's layout).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameStart {
    v4: [u64; 2],
    v6: [u64; 2],
}

impl FrameStart {
    /// The bits of the second word that are the IP packet's (bytes 14 and 15 of the frame).
    const PACKET_BYTES: u64 = u64::from_ne_bytes([0, 0, 0, 0, 0, 0, 0xff, 0xff]);

    pub(crate) fn new(options: &OffloadOptions) -> Self {
        let words = |ethertype: EtherType| {
            let mut b = [0u8; FIRST_WORDS];
            b[..6].copy_from_slice(&options.peer_mac);
            b[6..12].copy_from_slice(&options.local_mac);
            b[12..FRAME_HEADER].copy_from_slice(&ethertype.to_bytes());
            words_of(&b)
        };
        FrameStart {
            v4: words(EtherType::Ipv4),
            v6: words(EtherType::Ipv6),
        }
    }

    /// Writes the Ethernet header into a frame's first two words for the IP version its
    /// packet starts with, keeping the packet's two bytes; false, nothing changed, when the
    /// packet is not IPv4 or IPv6.
    #[inline]
    fn apply(&self, w: &mut [u64; 2]) -> bool {
        let header = match w[1].to_ne_bytes()[FRAME_HEADER - 8] >> 4 {
            4 => &self.v4,
            6 => &self.v6,
            _ => return false,
        };
        w[0] = header[0];
        w[1] = header[1] | (w[1] & Self::PACKET_BYTES);
        true
    }
}

/// A frame's first [`FIRST_WORDS`] bytes as the two words they are in memory.
fn words_of(b: &[u8; FIRST_WORDS]) -> [u64; 2] {
    let (mut w0, mut w1) = ([0u8; 8], [0u8; 8]);
    w0.copy_from_slice(&b[..8]);
    w1.copy_from_slice(&b[8..]);
    [u64::from_ne_bytes(w0), u64::from_ne_bytes(w1)]
}

/// An outbound frame.
#[derive(Debug)]
pub(crate) enum Frame {
    /// In host memory.
    Heap(Vec<u8>),
    /// In a card TX buffer lent to the engine, `len` bytes from its start.
    Lent { buf: TxBuf, len: usize },
}

impl Frame {
    pub(crate) fn len(&self) -> usize {
        match self {
            Frame::Heap(v) => v.len(),
            Frame::Lent { len, .. } => *len,
        }
    }

    /// Bytes of the IP packet (the lifetime byte count).
    pub(crate) fn inner_len(&self) -> u64 {
        self.len().saturating_sub(FRAME_HEADER) as u64
    }
}

/// A card TX buffer lent for one outbound packet ([`OffloadEngine::tx_slot`]). Write the IP
/// packet at [`FRAME_HEADER`] on, then hand it over with
/// [`submit_slot`](OffloadEngine::submit_slot) or back with
/// [`release_slot`](OffloadEngine::release_slot).
#[derive(Debug)]
pub struct TxSlot {
    buf: TxBuf,
}

impl OffloadEngine {
    /// A card TX buffer for one outbound packet, when the card takes packets now (`None`:
    /// use [`submit`](Self::submit)). Its packet may be [`tx_slot_room`](Self::tx_slot_room)
    /// bytes long.
    pub fn tx_slot(&mut self) -> Option<TxSlot> {
        if self.mode == CardMode::Gone {
            return None;
        }
        let card = self.card.as_mut()?;
        let buf = match self.spare_tx.pop() {
            Some(buf) => buf,
            None => card.tx_lend(self.options.queue).ok().flatten()?,
        };
        Some(TxSlot { buf })
    }

    /// The longest IP packet a [`TxSlot`] takes.
    pub fn tx_slot_room(&self) -> usize {
        self.max_frame.saturating_sub(FRAME_HEADER)
    }

    /// Copies `bytes` into the slot at byte `at` of its frame (the IP packet starts at
    /// [`FRAME_HEADER`]).
    pub fn tx_slot_write(&self, slot: &TxSlot, at: usize, bytes: &[u8]) -> io::Result<()> {
        let card = self.card.as_ref().ok_or(io::ErrorKind::NotConnected)?;
        card.tx_buf_write(slot.buf, at, bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// One `read(2)` from `fd` into the slot at byte `at` of its frame, straight into the
    /// card's memory; returns the bytes read. A TUN read of a packet goes to
    /// [`FRAME_HEADER`] (minus the length of a virtio-net header read before it).
    pub fn tx_slot_read_from(
        &self,
        slot: &TxSlot,
        fd: BorrowedFd<'_>,
        at: usize,
    ) -> io::Result<usize> {
        let card = self.card.as_ref().ok_or(io::ErrorKind::NotConnected)?;
        card.tx_buf_read_from(slot.buf, at, fd)
    }

    /// Gives an unused slot back.
    pub fn release_slot(&mut self, slot: TxSlot) {
        self.recycle_frame(Frame::Lent {
            buf: slot.buf,
            len: 0,
        });
    }

    /// [`submit`](Self::submit) for the IP packet of `inner_len` bytes in `slot` at
    /// [`FRAME_HEADER`]: its fate comes back as one [`TxReport`](crate::TxReport) with
    /// `tag`. Only its first bytes are read here.
    pub fn submit_slot(&mut self, tag: u64, slot: TxSlot, inner_len: usize) {
        let frame = Frame::Lent {
            buf: slot.buf,
            len: FRAME_HEADER + inner_len,
        };
        let mut start = [0u64; 2];
        let decided = if inner_len > self.tx_slot_room() {
            Err(DropReason::TooBig)
        } else {
            match self.lent_flow(slot.buf, inner_len) {
                Ok((flow, first)) => {
                    start = first;
                    self.decide(&flow).map(|bundle| (flow.dst, bundle))
                }
                Err(reason) => Err(reason),
            }
        };
        self.enqueue_lent(tag, frame, decided, start);
    }

    /// [`submit`](Self::submit) with the packet written once, into `slot`, where the card
    /// reads it: for a packet already in host memory (a segment, a TUN read), decided
    /// from those bytes.
    pub fn submit_into_slot(&mut self, tag: u64, slot: TxSlot, packet: &[u8]) {
        let mut frame = Frame::Lent {
            buf: slot.buf,
            len: FRAME_HEADER + packet.len(),
        };
        let decided = if packet.len() > self.tx_slot_room() {
            Err(DropReason::TooBig)
        } else {
            Flow::parse(packet)
                .map_err(|_| DropReason::Malformed)
                .and_then(|flow| self.decide(&flow).map(|bundle| (flow.dst, bundle)))
        };
        let decided = decided.and_then(|d| {
            self.frame_write(&mut frame, FRAME_HEADER, packet)?;
            Ok(d)
        });
        let mut first = [0u8; FIRST_WORDS];
        let n = packet.len().min(FIRST_WORDS - FRAME_HEADER);
        first[FRAME_HEADER..FRAME_HEADER + n].copy_from_slice(&packet[..n]);
        self.enqueue_lent(tag, frame, decided, words_of(&first));
    }

    /// The outbound decision on a packet's selectors; a packet policy discards (or traps)
    /// is refused here, before a frame is made for it. The last decision is kept with the
    /// database's version: the packets of a burst (a TUN read's segments) are of one flow,
    /// and the next one of it is decided by one comparison, not by walking the policies —
    /// until any policy changes.
    pub(crate) fn decide(&mut self, flow: &Flow) -> Result<Bundled, DropReason> {
        let version = self.sw.outbound.spd().version();
        let action = match &self.last_decision {
            Some((v, f, action)) if *v == version && f == flow => *action,
            _ => {
                let action = self.sw.outbound.classify_flow(flow);
                self.last_decision = Some((version, *flow, action));
                action
            }
        };
        match action? {
            Action::Discard | Action::Trap => Err(DropReason::PolicyDiscard),
            Action::Bypass => Ok(None),
            Action::Protect(bundle) => Ok(Some(bundle)),
        }
    }

    /// A lent frame decided on: its Ethernet header written, then queued; or given back
    /// and the packet dropped. `first`: the frame's first two words as read, the IP
    /// packet's first two bytes in them, written again with the header, so that the words
    /// are written whole.
    fn enqueue_lent(
        &mut self,
        tag: u64,
        frame: Frame,
        decided: Result<(IpAddr, Bundled), DropReason>,
        mut first: [u64; 2],
    ) {
        let decided = decided.and_then(|d| {
            let (Frame::Lent { buf, .. }, true) =
                (&frame, FrameStart::new(&self.options).apply(&mut first))
            else {
                return Err(DropReason::Malformed);
            };
            self.card
                .as_ref()
                .ok_or(DropReason::DeviceError)?
                .tx_buf_write_words(*buf, 0, &first)
                .map_err(|_| DropReason::DeviceError)?;
            Ok(d)
        });
        match decided {
            Ok((dst, bundle)) => self.enqueue(tag, frame, dst, bundle),
            Err(reason) => {
                self.recycle_frame(frame);
                self.tx_drop(tag, reason);
            }
        }
    }

    /// A frame decided on goes to the queue: a protected packet with its bundle, a
    /// bypass one addressed to its destination (`dst`) where the port is the card's own.
    pub(crate) fn enqueue(&mut self, tag: u64, mut frame: Frame, dst: IpAddr, bundle: Bundled) {
        let work = match bundle {
            Some(bundle) => Work::Protect {
                bundle: Some(bundle),
                frame,
                attempts: 0,
            },
            None => {
                if !self.address_frame(&mut frame, dst) {
                    self.recycle_frame(frame);
                    self.tx_drop(tag, DropReason::Unresolved);
                    return;
                }
                Work::Ready {
                    frame,
                    sent: SentAs::Bypass,
                }
            }
        };
        self.pending.push_back((tag, work));
    }

    /// The selectors of a frame's IP packet: from its first bytes for a lent frame (the
    /// whole packet read only when they do not suffice).
    pub(crate) fn frame_flow(&self, frame: &Frame) -> Result<Flow, DropReason> {
        match frame {
            Frame::Heap(v) => {
                Flow::parse(v.get(FRAME_HEADER..).unwrap_or(&[])).map_err(|_| DropReason::Malformed)
            }
            Frame::Lent { buf, len } => self
                .lent_flow(*buf, len.saturating_sub(FRAME_HEADER))
                .map(|(flow, _)| flow),
        }
    }

    /// The selectors of the IP packet of `inner_len` bytes in lent buffer `buf`: the
    /// frame's first [`LENT_HEAD`] bytes read at once, in whole words from the buffer's
    /// (aligned) start — the Ethernet header's room and the packet's first
    /// [`HEAD_LEN`] bytes — and the whole packet only when they do not suffice. Returned
    /// with the frame's first two words as read.
    fn lent_flow(&self, buf: TxBuf, inner_len: usize) -> Result<(Flow, [u64; 2]), DropReason> {
        let card = self.card.as_ref().ok_or(DropReason::DeviceError)?;
        let mut head = [0u8; LENT_HEAD];
        let n = inner_len.min(HEAD_LEN);
        match card.tx_buf_read_words::<{ LENT_HEAD / 8 }>(buf, 0) {
            Ok(words) => {
                for (bytes, w) in head.chunks_exact_mut(8).zip(words) {
                    bytes.copy_from_slice(&w.to_ne_bytes());
                }
            }
            // A buffer shorter than that: what the frame has of it.
            Err(_) => card
                .tx_buf_read(buf, 0, &mut head[..FRAME_HEADER + n])
                .map_err(|_| DropReason::DeviceError)?,
        }
        let mut first = [0u8; FIRST_WORDS];
        first.copy_from_slice(&head[..FIRST_WORDS]);
        let start = words_of(&first);
        let parsed = match Flow::parse_head(&head[FRAME_HEADER..FRAME_HEADER + n], inner_len) {
            Err(_) if n < inner_len => {
                let mut whole = vec![0u8; inner_len];
                card.tx_buf_read(buf, FRAME_HEADER, &mut whole)
                    .map_err(|_| DropReason::DeviceError)?;
                Flow::parse(&whole)
            }
            parsed => parsed,
        };
        parsed
            .map(|flow| (flow, start))
            .map_err(|_| DropReason::Malformed)
    }

    /// Writes `bytes` at byte `at` of a frame.
    pub(crate) fn frame_write(
        &self,
        frame: &mut Frame,
        at: usize,
        bytes: &[u8],
    ) -> Result<(), DropReason> {
        match frame {
            Frame::Heap(v) => {
                let end = at.checked_add(bytes.len()).ok_or(DropReason::Malformed)?;
                v.get_mut(at..end)
                    .ok_or(DropReason::Malformed)?
                    .copy_from_slice(bytes);
                Ok(())
            }
            Frame::Lent { buf, .. } => self
                .card
                .as_ref()
                .ok_or(DropReason::DeviceError)?
                .tx_buf_write(*buf, at, bytes)
                .map_err(|_| DropReason::DeviceError),
        }
    }

    /// A frame's bytes in host memory: a lent frame is copied out and its buffer given back
    /// (empty if the card cannot be read).
    pub(crate) fn frame_bytes(&mut self, frame: Frame) -> Vec<u8> {
        match frame {
            Frame::Heap(v) => v,
            Frame::Lent { buf, len } => {
                let mut v = self.buffer(len);
                v.resize(len, 0);
                if let Some(card) = self.card.as_mut() {
                    if card.tx_buf_read(buf, 0, &mut v).is_err() {
                        v.clear();
                    }
                    let _ = card.tx_return(buf);
                } else {
                    v.clear();
                }
                v
            }
        }
    }

    /// A frame done with: its buffer kept for reuse (a card buffer kept lent, for the next
    /// [`tx_slot`](Self::tx_slot)), or given back to the card.
    pub(crate) fn recycle_frame(&mut self, frame: Frame) {
        match frame {
            Frame::Heap(v) => self.recycle(v),
            Frame::Lent { buf, .. } => {
                if let Some(card) = self.card.as_mut() {
                    if self.spare_tx.len() < SPARE_TX_BUFFERS {
                        self.spare_tx.push(buf);
                    } else {
                        let _ = card.tx_return(buf);
                    }
                }
            }
        }
    }

    /// Every waiting lent frame, and every inbound packet lent to the owner, copied into
    /// host memory: the card is about to go, and its memory with it.
    pub(crate) fn unlend_pending(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        for (_, work) in pending.iter_mut() {
            let frame = match work {
                Work::Protect { frame, .. } | Work::Ready { frame, .. } => frame,
            };
            if let Frame::Lent { .. } = frame {
                let lent = std::mem::replace(frame, Frame::Heap(Vec::new()));
                *frame = Frame::Heap(self.frame_bytes(lent));
            }
        }
        self.pending = pending;
        // Inbound packets lent to the owner are copied out too: it may still write them.
        let Some(card) = self.card.as_ref() else {
            return;
        };
        let queue = self.options.queue;
        let (Ok(lent), Ok(bytes)) = (card.rx_lent_bufs(queue), card.rx_buf_bytes(queue)) else {
            return;
        };
        for buf in lent {
            let mut whole = vec![0u8; bytes];
            if card.rx_buf_read(buf, 0, &mut whole).is_ok() {
                self.rescued_rx.insert(buf, whole);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(w: [u64; 2]) -> [u8; FIRST_WORDS] {
        let mut b = [0u8; FIRST_WORDS];
        b[..8].copy_from_slice(&w[0].to_ne_bytes());
        b[8..].copy_from_slice(&w[1].to_ne_bytes());
        b
    }

    #[test]
    fn a_frame_starts_with_the_header_for_its_ip_version_and_keeps_the_packets_bytes() {
        let options = OffloadOptions {
            local_mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x55],
            peer_mac: [0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff],
            ..OffloadOptions::default()
        };
        let start = FrameStart::new(&options);
        for (first, second, ethertype) in [(0x45, 0x00, [0x08, 0x00]), (0x60, 0x1f, [0x86, 0xdd])] {
            let mut frame = [0x99u8; FIRST_WORDS];
            frame[14] = first;
            frame[15] = second;
            let mut w = words_of(&frame);
            assert!(start.apply(&mut w));
            let mut want = [0u8; FIRST_WORDS];
            want[..6].copy_from_slice(&options.peer_mac);
            want[6..12].copy_from_slice(&options.local_mac);
            want[12..14].copy_from_slice(&ethertype);
            want[14] = first;
            want[15] = second;
            assert_eq!(bytes(w), want);
        }
        // Not IPv4 or IPv6: nothing changed.
        for version in [0u8, 1, 5, 7, 15] {
            let mut frame = [0x99u8; FIRST_WORDS];
            frame[14] = version << 4;
            let mut w = words_of(&frame);
            assert!(!start.apply(&mut w));
            assert_eq!(bytes(w), frame);
        }
    }
}
