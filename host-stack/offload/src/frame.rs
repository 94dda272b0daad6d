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

/// The last packet's head that was parsed, by the bytes its selectors come from: the
/// packets of a burst are of one flow, and the next one whose bytes agree has the same
/// flow without being parsed again. Outbound it is kept for lent frames
/// ([`HeadWords::of_frame`]) and packets handed over from host memory
/// ([`HeadWords::of_bytes`]) alike, with the outbound decision; inbound for the packets
/// the card delivers ([`HeadWords::of_packet`]) with the inbound policy verdict — each `D`
/// beside the database version it was made with.
///
/// Kept only for an IPv4 header without options carrying TCP or UDP, not a later fragment
/// (the bytes [`KEY_MASKS`] covers, and the first byte, then decide [`Flow::parse_head`]'s
/// answer: the version and header length, the fragment offset, the protocol, both
/// addresses, both ports), and a packet agrees only when its length fields make
/// `parse_head` read the same ports: at least [`KEY_MIN_LEN`] bytes announced, no more
/// than the packet has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeptHead<D> {
    head: Option<([u64; 3], Flow)>,
    /// What was decided for the kept flow; cleared with every new head.
    kept: Option<D>,
}

impl<D> Default for KeptHead<D> {
    fn default() -> Self {
        Self {
            head: None,
            kept: None,
        }
    }
}

/// The bits of an IPv4 packet's words at its bytes 2, 10 and 18 a flow's selectors come
/// from when the header has no options: the fragment offset and the protocol, the
/// addresses (bytes 12 to 19) and the two ports after them (bytes 20 to 23).
const KEY_MASKS: [u64; 3] = [
    u64::from_ne_bytes([0, 0, 0, 0, 0x1f, 0xff, 0, 0xff]),
    u64::from_ne_bytes([0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    u64::from_ne_bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]),
];

/// The shortest IPv4 packet a [`KeptHead`] answers for: its header and both ports.
const KEY_MIN_LEN: usize = 24;

/// A packet's bytes a [`KeptHead`] compares: its first byte and its words at bytes 2, 10
/// and 18 (in memory order).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadWords {
    first: u8,
    words: [u64; 3],
}

impl HeadWords {
    /// From a lent frame's first words, as read: the packet starts at byte 14, so its
    /// bytes 2, 10 and 18 begin the frame's words 2, 3 and 4.
    #[inline]
    pub(crate) fn of_frame(words: &[u64; LENT_HEAD / 8]) -> Self {
        Self {
            first: words[1].to_ne_bytes()[6],
            words: [words[2], words[3], words[4]],
        }
    }

    /// From a packet's first bytes (zero past its end), as the inbound path copies them
    /// out of a card's buffer: the words are read where that copy wrote whole words.
    #[inline]
    pub(crate) fn of_packet(head: &[u8; HEAD_LEN]) -> Self {
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[at..at + 8]);
            u64::from_ne_bytes(b)
        };
        Self {
            first: head[0],
            words: [word(2), word(10), word(18)],
        }
    }

    /// From a packet's bytes in host memory, when it has all the bytes the words cover.
    #[inline]
    pub(crate) fn of_bytes(packet: &[u8]) -> Option<Self> {
        let word = |at: usize| -> Option<u64> {
            let b: [u8; 8] = packet.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_ne_bytes(b))
        };
        Some(Self {
            first: *packet.first()?,
            words: [word(2)?, word(10)?, word(18)?],
        })
    }

    fn key(&self) -> [u64; 3] {
        std::array::from_fn(|i| self.words[i] & KEY_MASKS[i])
    }

    /// The announced total length (the packet's bytes 2 and 3).
    fn total_len(&self) -> usize {
        let b = self.words[0].to_ne_bytes();
        usize::from(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Whether a packet of `inner_len` bytes with these bytes is one a head answers for,
    /// leaving the key aside: no options, and its announced length in bounds.
    fn in_bounds(&self, inner_len: usize) -> bool {
        self.first == 0x45 && (KEY_MIN_LEN..=inner_len).contains(&self.total_len())
    }
}

impl<D: Copy> KeptHead<D> {
    /// The flow of the IP packet of `inner_len` bytes with bytes `h`, when it agrees with
    /// the head kept.
    #[inline]
    pub(crate) fn flow(&self, h: &HeadWords, inner_len: usize) -> Option<Flow> {
        let (key, flow) = self.head.as_ref()?;
        (h.in_bounds(inner_len) && *key == h.key()).then_some(*flow)
    }

    /// Whether the IP packet of `inner_len` bytes with bytes `h` agrees with the head kept
    /// ([`flow`](Self::flow) without the flow).
    #[inline]
    pub(crate) fn agrees(&self, h: &HeadWords, inner_len: usize) -> bool {
        self.head
            .as_ref()
            .is_some_and(|(key, _)| h.in_bounds(inner_len) && *key == h.key())
    }

    /// Keeps `flow`, parsed from the packet of `inner_len` bytes with bytes `h`, when the
    /// packet is one a head can answer for; returns whether it did.
    #[inline]
    pub(crate) fn note(&mut self, h: &HeadWords, inner_len: usize, flow: &Flow) -> bool {
        let b = h.words[0].to_ne_bytes();
        // The packet's bytes 6 and 7 (fragment offset) and 9 (protocol).
        let first_fragment = u16::from_be_bytes([b[4], b[5]]) & 0x1fff == 0;
        if h.in_bounds(inner_len) && first_fragment && matches!(b[7], 6 | 17) {
            self.head = Some((h.key(), *flow));
            self.kept = None;
            return true;
        }
        false
    }

    /// What was kept for the kept flow.
    #[inline]
    pub(crate) fn kept(&self) -> Option<D> {
        self.kept
    }

    /// Keeps `d`, decided for the kept flow.
    pub(crate) fn keep(&mut self, d: D) {
        if self.head.is_some() {
            self.kept = Some(d);
        }
    }
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

    /// One `readv(2)` from the TUN device `fd` with the packet straight into the slot: the
    /// first `head.len()` bytes (a virtio-net header) into `head`, the packet into the slot
    /// at [`FRAME_HEADER`] while it fits ([`tx_slot_room`](Self::tx_slot_room) bytes), and
    /// the rest of a longer one (a super-packet) into `spill`. Returns the bytes read, all
    /// three parts together.
    pub fn tx_slot_read_parts(
        &self,
        slot: &TxSlot,
        fd: BorrowedFd<'_>,
        head: &mut [u8],
        spill: &mut [u8],
    ) -> io::Result<usize> {
        let card = self.card.as_ref().ok_or(io::ErrorKind::NotConnected)?;
        card.tx_buf_read_from_parts(slot.buf, FRAME_HEADER, self.tx_slot_room(), fd, head, spill)
    }

    /// Copies bytes of the slot's IP packet from its byte `at` on into `dst`.
    pub fn tx_slot_read(&self, slot: &TxSlot, at: usize, dst: &mut [u8]) -> io::Result<()> {
        let card = self.card.as_ref().ok_or(io::ErrorKind::NotConnected)?;
        card.tx_buf_read(slot.buf, FRAME_HEADER + at, dst)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// Completes the partial checksum of the slot's IP packet of `len` bytes where it lies
    /// (a TUN read's `NEEDS_CSUM`: the one's-complement sum from byte `start` to the end,
    /// the pseudo-header's part already in the field, complemented into the field at
    /// `start + offset`). `Malformed` when the field lies outside the packet.
    pub fn tx_slot_complete_checksum(
        &self,
        slot: &TxSlot,
        len: usize,
        start: usize,
        offset: usize,
    ) -> Result<(), DropReason> {
        let card = self.card.as_ref().ok_or(DropReason::DeviceError)?;
        let at = start + offset;
        if at + 2 > len || start > len {
            return Err(DropReason::Malformed);
        }
        let sum = card
            .tx_buf_ones_sum(slot.buf, FRAME_HEADER + start, len - start)
            .map_err(|_| DropReason::DeviceError)?;
        card.tx_buf_write(slot.buf, FRAME_HEADER + at, &(!sum).to_be_bytes())
            .map_err(|_| DropReason::DeviceError)
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
        if let Some(work) = self.kept_protected(slot.buf, inner_len) {
            self.pending.push_back((tag, work));
            return;
        }
        self.submit_slot_decided(tag, slot, inner_len);
    }

    /// [`submit_slot`](Self::submit_slot) unless `refuse` says no to the IP packet's first
    /// bytes (as many as it has, at most 66), given back then. The frame's first words are
    /// read once, for both: a TUN read straight into the slot is checked (link-scope
    /// traffic stays on the host) and decided with one look at the card's memory.
    pub fn submit_slot_unless(
        &mut self,
        tag: u64,
        slot: TxSlot,
        inner_len: usize,
        refuse: impl FnOnce(&[u8]) -> bool,
    ) -> Result<(), TxSlot> {
        let Some(card) = self.card.as_ref() else {
            return Err(slot);
        };
        let Ok(words) = card.tx_buf_read_words::<{ LENT_HEAD / 8 }>(slot.buf, 0) else {
            return Err(slot);
        };
        let mut frame = [0u8; LENT_HEAD];
        for (bytes, w) in frame.chunks_exact_mut(8).zip(words) {
            bytes.copy_from_slice(&w.to_ne_bytes());
        }
        let head = &frame[FRAME_HEADER..FRAME_HEADER + inner_len.min(LENT_HEAD - FRAME_HEADER)];
        if refuse(head) {
            return Err(slot);
        }
        match self.kept_protected_words(slot.buf, &words, inner_len) {
            Some(work) => self.pending.push_back((tag, work)),
            None => self.submit_slot_decided(tag, slot, inner_len),
        }
        Ok(())
    }

    /// [`submit_slot`](Self::submit_slot) for a packet not of the kept head's flow (or not
    /// protected by its decision): decided in full.
    fn submit_slot_decided(&mut self, tag: u64, slot: TxSlot, inner_len: usize) {
        let frame = Frame::Lent {
            buf: slot.buf,
            len: FRAME_HEADER + inner_len,
        };
        let mut start = [0u64; 2];
        let decided = if inner_len > self.tx_slot_room() {
            Err(DropReason::TooBig)
        } else {
            match self.lent_flow_kept(slot.buf, inner_len) {
                Ok((flow, first, kept)) => {
                    start = first;
                    let version = self.sw.outbound.spd().version();
                    let kept_decision = match (kept, self.kept_head.kept()) {
                        (true, Some((v, decided))) if v == version => Some(decided),
                        _ => None,
                    };
                    let decided = match kept_decision {
                        Some(decided) => decided,
                        None => {
                            let decided = self.decide(&flow);
                            if kept {
                                self.kept_head.keep((version, decided));
                            }
                            decided
                        }
                    };
                    decided.map(|bundle| (flow.dst, bundle))
                }
                Err(reason) => Err(reason),
            }
        };
        self.enqueue_lent(tag, frame, decided, start);
    }

    /// A lent packet of the kept head's flow whose kept decision, made with the outbound
    /// database as it is, protects it: its Ethernet header written and its work made, with
    /// nothing parsed, compared beyond the head's selector bytes, or copied (`None`:
    /// anything else, nothing written — [`submit_slot`](Self::submit_slot) decides it).
    #[inline]
    fn kept_protected(&self, buf: TxBuf, inner_len: usize) -> Option<Work> {
        let card = self.card.as_ref()?;
        if inner_len > self.tx_slot_room() {
            return None;
        }
        let words = card.tx_buf_read_words::<{ LENT_HEAD / 8 }>(buf, 0).ok()?;
        self.kept_protected_words(buf, &words, inner_len)
    }

    /// [`kept_protected`](Self::kept_protected) with the frame's first words already read.
    #[inline]
    fn kept_protected_words(
        &self,
        buf: TxBuf,
        words: &[u64; LENT_HEAD / 8],
        inner_len: usize,
    ) -> Option<Work> {
        let card = self.card.as_ref()?;
        if inner_len > self.tx_slot_room() {
            return None;
        }
        if !self
            .kept_head
            .agrees(&HeadWords::of_frame(words), inner_len)
        {
            return None;
        }
        let bundle = match self.kept_head.kept()? {
            (version, Ok(Some(bundle))) if version == self.sw.outbound.spd().version() => bundle,
            _ => return None,
        };
        let mut first = [words[0], words[1]];
        if !FrameStart::new(&self.options).apply(&mut first) {
            return None;
        }
        card.tx_buf_write_words(buf, 0, &first).ok()?;
        Some(Work::Protect {
            bundle: Some(bundle),
            frame: Frame::Lent {
                buf,
                len: FRAME_HEADER + inner_len,
            },
            attempts: 0,
        })
    }

    /// [`kept_protected`](Self::kept_protected) for a packet of `len` bytes whose `head`
    /// is in host memory (`h` its bytes), copied into lent buffer `buf`, where the rest
    /// already is (`None`: nothing written). The two are written out whole: with their
    /// common steps in shared functions the lent packet's path took 10 ns more per packet
    /// (33 ns against 22–23 in `espo bench --engine model`).
    #[inline]
    fn kept_protected_copy(
        &self,
        buf: TxBuf,
        h: &HeadWords,
        head: &[u8],
        len: usize,
    ) -> Option<Work> {
        let card = self.card.as_ref()?;
        if len > self.tx_slot_room() || !self.kept_head.agrees(h, len) {
            return None;
        }
        let bundle = match self.kept_head.kept()? {
            (version, Ok(Some(bundle))) if version == self.sw.outbound.spd().version() => bundle,
            _ => return None,
        };
        let mut start = [0u8; FIRST_WORDS];
        start[FRAME_HEADER..].copy_from_slice(head.get(..FIRST_WORDS - FRAME_HEADER)?);
        let mut first = words_of(&start);
        if !FrameStart::new(&self.options).apply(&mut first) {
            return None;
        }
        card.tx_buf_write(buf, FRAME_HEADER, head).ok()?;
        card.tx_buf_write_words(buf, 0, &first).ok()?;
        Some(Work::Protect {
            bundle: Some(bundle),
            frame: Frame::Lent {
                buf,
                len: FRAME_HEADER + len,
            },
            attempts: 0,
        })
    }

    /// [`submit`](Self::submit) with the packet written once, into `slot`, where the card
    /// reads it: for a packet already in host memory (a TUN read), decided from those
    /// bytes.
    pub fn submit_into_slot(&mut self, tag: u64, slot: TxSlot, packet: &[u8]) {
        self.submit_head_into_slot(tag, slot, packet, packet.len());
    }

    /// [`submit_into_slot`](Self::submit_into_slot) for a packet in two pieces of host
    /// memory, `head` then `payload` — a segment of a super-packet: its headers made
    /// apart, its payload where it lies in the super-packet — each written once into the
    /// slot, and decided from `head`, which must hold the packet's IP and transport
    /// headers (any segment's do; a packet whose selectors lie beyond is dropped
    /// `malformed`).
    pub fn submit_parts_into_slot(&mut self, tag: u64, slot: TxSlot, head: &[u8], payload: &[u8]) {
        let len = head.len() + payload.len();
        let written = len <= self.tx_slot_room()
            && self
                .tx_slot_write(&slot, FRAME_HEADER + head.len(), payload)
                .is_ok();
        if !written {
            let frame = Frame::Lent {
                buf: slot.buf,
                len: FRAME_HEADER + len,
            };
            let reason = match len > self.tx_slot_room() {
                true => DropReason::TooBig,
                false => DropReason::DeviceError,
            };
            self.enqueue_lent(tag, frame, Err(reason), [0; 2]);
            return;
        }
        self.submit_head_into_slot(tag, slot, head, len);
    }

    /// [`submit_into_slot`](Self::submit_into_slot) for a packet of `len` bytes of which
    /// the slot already holds all that follows `head` (at [`FRAME_HEADER`] +
    /// `head.len()`): `head` is written in front of it, and the packet decided from
    /// `head`, which must hold its IP and transport headers (any segment's do; a packet
    /// whose selectors lie beyond is dropped `malformed`).
    fn submit_head_into_slot(&mut self, tag: u64, slot: TxSlot, head: &[u8], len: usize) {
        if let Some(work) = HeadWords::of_bytes(head)
            .and_then(|h| self.kept_protected_copy(slot.buf, &h, head, len))
        {
            self.pending.push_back((tag, work));
            return;
        }
        let mut frame = Frame::Lent {
            buf: slot.buf,
            len: FRAME_HEADER + len,
        };
        let decided = if len > self.tx_slot_room() || head.len() > len {
            Err(DropReason::TooBig)
        } else {
            let parsed = if head.len() == len {
                Flow::parse(head)
            } else {
                Flow::parse_head(head, len)
            };
            parsed.map_err(|_| DropReason::Malformed).and_then(|flow| {
                let version = self.sw.outbound.spd().version();
                let decided = self.decide(&flow);
                // Kept for the flow's next packets (`kept_protected_copy`).
                if let Some(h) = HeadWords::of_bytes(head)
                    && self.kept_head.note(&h, len, &flow)
                {
                    self.kept_head.keep((version, decided));
                }
                decided.map(|bundle| (flow.dst, bundle))
            })
        };
        let decided = decided.and_then(|d| {
            self.frame_write(&mut frame, FRAME_HEADER, head)?;
            Ok(d)
        });
        let mut first = [0u8; FIRST_WORDS];
        let n = head.len().min(FIRST_WORDS - FRAME_HEADER);
        first[FRAME_HEADER..FRAME_HEADER + n].copy_from_slice(&head[..n]);
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
        match card.tx_buf_read_words::<{ LENT_HEAD / 8 }>(buf, 0) {
            Ok(words) => self.words_flow(buf, &words, inner_len),
            // A buffer shorter than that: what the frame has of it.
            Err(_) => {
                let mut head = [0u8; LENT_HEAD];
                let n = inner_len.min(HEAD_LEN);
                card.tx_buf_read(buf, 0, &mut head[..FRAME_HEADER + n])
                    .map_err(|_| DropReason::DeviceError)?;
                self.head_flow(buf, &head, inner_len)
            }
        }
    }

    /// [`lent_flow`](Self::lent_flow) for the packets of a burst: a packet whose selector
    /// bytes agree with the last one parsed ([`KeptHead`]) has its flow, without parsing.
    fn lent_flow_kept(
        &mut self,
        buf: TxBuf,
        inner_len: usize,
    ) -> Result<(Flow, [u64; 2], bool), DropReason> {
        let card = self.card.as_ref().ok_or(DropReason::DeviceError)?;
        let Ok(words) = card.tx_buf_read_words::<{ LENT_HEAD / 8 }>(buf, 0) else {
            let (flow, first) = self.lent_flow(buf, inner_len)?;
            return Ok((flow, first, false));
        };
        let h = HeadWords::of_frame(&words);
        if let Some(flow) = self.kept_head.flow(&h, inner_len) {
            return Ok((flow, [words[0], words[1]], true));
        }
        let (flow, first) = self.words_flow(buf, &words, inner_len)?;
        let kept = self.kept_head.note(&h, inner_len, &flow);
        Ok((flow, first, kept))
    }

    /// [`lent_flow`](Self::lent_flow) from the frame's first words as read.
    fn words_flow(
        &self,
        buf: TxBuf,
        words: &[u64; LENT_HEAD / 8],
        inner_len: usize,
    ) -> Result<(Flow, [u64; 2]), DropReason> {
        let mut head = [0u8; LENT_HEAD];
        for (bytes, w) in head.chunks_exact_mut(8).zip(words) {
            bytes.copy_from_slice(&w.to_ne_bytes());
        }
        self.head_flow(buf, &head, inner_len)
    }

    /// [`lent_flow`](Self::lent_flow) from the frame's first bytes (the Ethernet header's
    /// room and what the packet has of its first [`HEAD_LEN`] bytes).
    fn head_flow(
        &self,
        buf: TxBuf,
        head: &[u8; LENT_HEAD],
        inner_len: usize,
    ) -> Result<(Flow, [u64; 2]), DropReason> {
        let card = self.card.as_ref().ok_or(DropReason::DeviceError)?;
        let n = inner_len.min(HEAD_LEN);
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

    /// A frame's first [`LENT_HEAD`] bytes as the words the engine reads (zeros past the
    /// frame, as a buffer's stale bytes would be: they are not the packet's).
    fn frame_words(frame: &[u8]) -> [u64; LENT_HEAD / 8] {
        let mut b = [0u8; LENT_HEAD];
        let n = frame.len().min(LENT_HEAD);
        b[..n].copy_from_slice(&frame[..n]);
        std::array::from_fn(|i| u64::from_ne_bytes(b[8 * i..8 * i + 8].try_into().unwrap()))
    }

    /// A lent frame's bytes as the outbound path compares them.
    fn of_frame(frame: &[u8]) -> HeadWords {
        HeadWords::of_frame(&frame_words(frame))
    }

    /// A frame's IP packet's bytes as the inbound path compares them.
    fn of_packet(frame: &[u8]) -> HeadWords {
        HeadWords::of_packet(&ip_head(frame))
    }

    /// What parsing the head of the frame's IP packet gives (as `lent_flow` parses it).
    fn parsed(frame: &[u8]) -> Option<Flow> {
        let inner = &frame[FRAME_HEADER..];
        Flow::parse_head(&inner[..inner.len().min(HEAD_LEN)], inner.len()).ok()
    }

    /// An Ethernet frame with an IPv4-looking packet of `len` bytes: header fields from
    /// small sets (so that two packets often agree), the rest `fill`.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        first: u8,
        frag: u16,
        protocol: u8,
        total: u16,
        addrs: (u8, u8),
        ports: (u16, u16),
        len: usize,
        fill: u8,
    ) -> Vec<u8> {
        let mut f = vec![fill; FRAME_HEADER + len];
        let p = &mut f[FRAME_HEADER..];
        let mut header = [0u8; 24];
        header[0] = first;
        header[1] = fill;
        header[2..4].copy_from_slice(&total.to_be_bytes());
        header[4..6].copy_from_slice(&[fill, fill.wrapping_add(1)]);
        header[6..8].copy_from_slice(&frag.to_be_bytes());
        header[8] = fill;
        header[9] = protocol;
        header[12..16].copy_from_slice(&[10, 0, 0, addrs.0]);
        header[16..20].copy_from_slice(&[10, 0, 1, addrs.1]);
        header[20..22].copy_from_slice(&ports.0.to_be_bytes());
        header[22..24].copy_from_slice(&ports.1.to_be_bytes());
        let n = p.len().min(24);
        p[..n].copy_from_slice(&header[..n]);
        f
    }

    /// Mostly packets a head answers for (IPv4 without options, TCP or UDP, a first
    /// fragment, an announced length the packet has), and every other kind.
    fn a_frame() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![6 => Just(0x45u8), 1 => Just(0x46), 1 => Just(0x44), 1 => Just(0x65), 1 => any::<u8>()],
            prop_oneof![3 => Just(0u16), 3 => Just(0x4000), 1 => Just(0x2000), 1 => Just(0x0001), 1 => any::<u16>()],
            prop_oneof![3 => Just(6u8), 3 => Just(17), 1 => Just(1), 1 => Just(132), 1 => any::<u8>()],
            (0u8..2, 0u8..2),
            (0u16..2, 0u16..2),
            0usize..100,
            prop_oneof![4 => Just(0i32), 1 => -30i32..30, 1 => -2000i32..2000],
            any::<u8>(),
        )
            .prop_map(|(first, frag, protocol, addrs, ports, len, off, fill)| {
                let total = (len as i32 + off).clamp(0, 0xffff) as u16;
                frame(first, frag, protocol, total, addrs, ports, len, fill)
            })
    }

    /// A byte of the frame's first words to change: mostly one of the IP header's and
    /// the ports'.
    fn a_change() -> impl Strategy<Value = (usize, u8)> {
        (
            prop_oneof![3 => FRAME_HEADER..FRAME_HEADER + 24, 1 => 0usize..LENT_HEAD],
            any::<u8>(),
        )
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever packet was kept and whatever packet comes next, a head's answer is
        /// what parsing the next packet gives.
        #[test]
        fn a_kept_head_answers_as_parsing_does(
            first in a_frame(),
            next in a_frame(),
            damage in proptest::collection::vec(a_change(), 0..3),
        ) {
            let mut kept = KeptHead::<()>::default();
            if let Some(flow) = parsed(&first) {
                kept.note(&of_frame(&first), first.len() - FRAME_HEADER, &flow);
            }
            // The next packet: another, or the first with a few bytes changed.
            for candidate in [next, {
                let mut f = first.clone();
                for (at, b) in &damage {
                    if let Some(x) = f.get_mut(*at) {
                        *x = *b;
                    }
                }
                f
            }] {
                let inner_len = candidate.len() - FRAME_HEADER;
                if let Some(flow) = kept.flow(&of_frame(&candidate), inner_len) {
                    prop_assert_eq!(Some(flow), parsed(&candidate));
                }
            }
        }
    }

    /// The first bytes of a frame's IP packet as the inbound path copies them out of a
    /// card's buffer (zero past the packet's end).
    fn ip_head(frame: &[u8]) -> [u8; HEAD_LEN] {
        let inner = &frame[FRAME_HEADER..];
        let mut head = [0u8; HEAD_LEN];
        let n = inner.len().min(HEAD_LEN);
        head[..n].copy_from_slice(&inner[..n]);
        head
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A packet in host memory (`submit_into_slot`) gives the kept head the bytes a
        /// copied head does, or nothing when it is too short to have them all.
        #[test]
        fn a_packet_in_host_memory_gives_the_bytes_its_copied_head_does(frame in a_frame()) {
            let inner = &frame[FRAME_HEADER..];
            let copied = of_packet(&frame);
            match HeadWords::of_bytes(inner) {
                Some(h) => prop_assert_eq!((h.first, h.words), (copied.first, copied.words)),
                None => prop_assert!(inner.len() < 26),
            }
        }

        /// The inbound path's kept head too: whatever packet was kept and whatever packet
        /// comes next, its answer is what parsing the next packet's head gives.
        #[test]
        fn a_kept_inbound_head_answers_as_parsing_does(
            first in a_frame(),
            next in a_frame(),
            damage in proptest::collection::vec(a_change(), 0..3),
        ) {
            let mut kept = KeptHead::<()>::default();
            if let Some(flow) = parsed(&first) {
                kept.note(&of_packet(&first), first.len() - FRAME_HEADER, &flow);
            }
            for candidate in [next, {
                let mut f = first.clone();
                for (at, b) in &damage {
                    if let Some(x) = f.get_mut(*at) {
                        *x = *b;
                    }
                }
                f
            }] {
                let inner_len = candidate.len() - FRAME_HEADER;
                if let Some(flow) = kept.flow(&of_packet(&candidate), inner_len) {
                    prop_assert_eq!(Some(flow), parsed(&candidate));
                }
            }
        }
    }

    #[test]
    fn the_inbound_packets_of_a_flow_are_answered_without_parsing() {
        let a = frame(0x45, 0x4000, 17, 60, (1, 0), (1, 0), 60, 7);
        let flow = parsed(&a).unwrap();
        let mut kept = KeptHead::<()>::default();
        assert_eq!(kept.flow(&of_packet(&a), 60), None, "nothing kept yet");
        assert!(kept.note(&of_packet(&a), 60, &flow));
        let b = frame(0x45, 0x4000, 17, 1400, (1, 0), (1, 0), 1400, 9);
        assert_eq!(kept.flow(&of_packet(&b), 1400), Some(flow));
        assert_eq!(parsed(&b), Some(flow));
        for (c, len) in [
            (frame(0x45, 0x4000, 17, 60, (1, 0), (1, 1), 60, 7), 60),
            (frame(0x45, 0x4000, 17, 60, (1, 0), (2, 0), 60, 7), 60),
            (frame(0x45, 0x4000, 17, 60, (0, 0), (1, 0), 60, 7), 60),
            (frame(0x45, 0x4000, 17, 60, (1, 1), (1, 0), 60, 7), 60),
            (frame(0x45, 0x4000, 6, 60, (1, 0), (1, 0), 60, 7), 60),
            (frame(0x45, 0x0001, 17, 60, (1, 0), (1, 0), 60, 7), 60),
            (frame(0x46, 0x4000, 17, 60, (1, 0), (1, 0), 60, 7), 60),
            (frame(0x45, 0x4000, 17, 61, (1, 0), (1, 0), 60, 7), 60),
            (frame(0x45, 0x4000, 17, 23, (1, 0), (1, 0), 60, 7), 60),
        ] {
            assert_eq!(kept.flow(&of_packet(&c), len), None);
        }
        for c in [
            frame(0x45, 0, 1, 60, (1, 0), (8, 0), 60, 7),
            frame(0x46, 0, 6, 60, (1, 0), (1, 0), 60, 7),
            frame(0x45, 0x0001, 17, 60, (1, 0), (1, 0), 60, 7),
        ] {
            let mut k = KeptHead::<()>::default();
            if let Some(flow) = parsed(&c) {
                assert!(!k.note(&of_packet(&c), 60, &flow));
            }
            assert_eq!(k.flow(&of_packet(&c), 60), None);
        }
    }

    #[test]
    fn the_packets_of_a_flow_are_answered_without_parsing() {
        let a = frame(0x45, 0x4000, 6, 60, (1, 0), (1, 0), 60, 7);
        let flow = parsed(&a).unwrap();
        let mut kept = KeptHead::<()>::default();
        assert_eq!(kept.flow(&of_frame(&a), 60), None, "nothing kept yet");
        kept.note(&of_frame(&a), 60, &flow);
        // Another packet of the flow: other TOS, identification, TTL, checksum, length,
        // payload.
        let b = frame(0x45, 0x4000, 6, 1400, (1, 0), (1, 0), 1400, 9);
        assert_eq!(kept.flow(&of_frame(&b), 1400), Some(flow));
        assert_eq!(parsed(&b), Some(flow));
        // Another port, another address, a later fragment, options, an announced length
        // past the packet or too short for the ports: parsed.
        for (c, len) in [
            (frame(0x45, 0x4000, 6, 60, (1, 0), (1, 1), 60, 7), 60),
            (frame(0x45, 0x4000, 6, 60, (0, 0), (1, 0), 60, 7), 60),
            (frame(0x45, 0x0001, 6, 60, (1, 0), (1, 0), 60, 7), 60),
            (frame(0x46, 0x4000, 6, 60, (1, 0), (1, 0), 60, 7), 60),
            (frame(0x45, 0x4000, 6, 61, (1, 0), (1, 0), 60, 7), 60),
            (frame(0x45, 0x4000, 6, 23, (1, 0), (1, 0), 60, 7), 60),
        ] {
            assert_eq!(kept.flow(&of_frame(&c), len), None);
        }
        // Nothing kept of packets a head cannot answer for: ICMP, options, fragments.
        for c in [
            frame(0x45, 0, 1, 60, (1, 0), (8, 0), 60, 7),
            frame(0x46, 0, 6, 60, (1, 0), (1, 0), 60, 7),
            frame(0x45, 0x0001, 17, 60, (1, 0), (1, 0), 60, 7),
        ] {
            let mut k = KeptHead::<()>::default();
            if let Some(flow) = parsed(&c) {
                k.note(&of_frame(&c), 60, &flow);
            }
            assert_eq!(k.flow(&of_frame(&c), 60), None);
        }
    }
}
