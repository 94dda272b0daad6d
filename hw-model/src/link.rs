//! The card's Ethernet port and what can be attached to it. A [`Link`] carries whole
//! frames (Ethernet header and payload, no FCS). Attach an in-memory link between two
//! cards or a card and a test ([`MemLink`]), a frame source and sink such as a capture
//! file reader/writer ([`CaptureLink`]), or an unconnected port ([`NullLink`]). A Linux
//! interface (TAP, AF_PACKET) attaches by implementing [`Link`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A frame on the wire with the cycle (of the sending side's clock) it left at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub data: Vec<u8>,
    pub cycle: u64,
}

/// What the card's port is attached to.
pub trait Link: Send {
    /// The card sent a frame.
    fn send(&mut self, frame: Frame);
    /// The next frame for the card, if one is waiting. Frames not taken stay in the link
    /// (the port pauses the link when its receive FIFO is full).
    fn recv(&mut self) -> Option<Frame>;
    /// A buffer for a frame the card is about to send: by default a new, empty vector; a
    /// link that keeps the buffers given back ([`recycle`](Self::recycle)) hands one of
    /// them out, so that a frame costs no allocation. Its contents are of no meaning.
    fn buffer(&mut self) -> Vec<u8> {
        Vec::new()
    }
    /// A frame's buffer the card is done with (a received frame once it is in host
    /// memory), for [`buffer`](Self::buffer) to hand out again; by default dropped.
    fn recycle(&mut self, data: Vec<u8>) {
        drop(data);
    }
}

type Queue = Arc<Mutex<VecDeque<Frame>>>;

fn lock<T>(q: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}

/// Frame buffers a [`MemLink`] keeps for the next frames, shared by both ends.
type Spares = Arc<Mutex<Vec<Vec<u8>>>>;

/// The most buffers a [`MemLink`] keeps: a ring's worth of jumbo frames (about 9 MiB).
pub const MEM_LINK_SPARES: usize = 1024;

/// Keeps `data` among `spares` unless [`MEM_LINK_SPARES`] are kept already.
fn keep_in(spares: &mut Vec<Vec<u8>>, data: Vec<u8>) {
    if spares.len() < MEM_LINK_SPARES {
        spares.push(data);
    }
}

/// One end of an in-memory cable. Frames sent on one end are received on the other.
///
/// The cable keeps the buffers of frames it is done with — those a card gives back
/// ([`Link::recycle`]) and those [`discard`](Self::discard) drops — and hands them out for
/// the next frames, a card's ([`Link::buffer`]) or [`send_bytes`](Self::send_bytes)'s, so
/// that a steady flow of frames allocates nothing.
#[derive(Debug, Clone)]
pub struct MemLink {
    outgoing: Queue,
    incoming: Queue,
    spares: Spares,
}

impl MemLink {
    /// A cable: attach each end to a card, or keep one end to drive from a test.
    pub fn pair() -> (MemLink, MemLink) {
        let a: Queue = Arc::default();
        let b: Queue = Arc::default();
        let spares: Spares = Arc::default();
        (
            MemLink {
                outgoing: a.clone(),
                incoming: b.clone(),
                spares: spares.clone(),
            },
            MemLink {
                outgoing: b,
                incoming: a,
                spares,
            },
        )
    }

    /// A kept buffer (as it was left: whoever takes it sizes it), or a new one.
    fn spare(&self) -> Vec<u8> {
        lock(&self.spares).pop().unwrap_or_default()
    }

    fn keep(&self, data: Vec<u8>) {
        keep_in(&mut lock(&self.spares), data);
    }

    /// Drops every frame waiting at this end, keeping their buffers for the next frames;
    /// returns how many there were.
    pub fn discard(&self) -> usize {
        let mut incoming = lock(&self.incoming);
        let mut spares = lock(&self.spares);
        let n = incoming.len();
        for f in incoming.drain(..) {
            keep_in(&mut spares, f.data);
        }
        n
    }

    /// Frames waiting to be received at this end.
    pub fn pending(&self) -> usize {
        lock(&self.incoming).len()
    }

    /// Sends `data` as sent at cycle 0 (the receiver takes it at its current time).
    pub fn send_bytes(&self, data: &[u8]) {
        let mut buf = self.spare();
        buf.clear();
        buf.extend_from_slice(data);
        lock(&self.outgoing).push_back(Frame {
            data: buf,
            cycle: 0,
        });
    }

    /// Takes every frame waiting at this end.
    pub fn drain(&self) -> Vec<Frame> {
        lock(&self.incoming).drain(..).collect()
    }
}

impl Link for MemLink {
    fn send(&mut self, frame: Frame) {
        lock(&self.outgoing).push_back(frame);
    }
    fn recv(&mut self) -> Option<Frame> {
        lock(&self.incoming).pop_front()
    }
    fn buffer(&mut self) -> Vec<u8> {
        self.spare()
    }
    fn recycle(&mut self, data: Vec<u8>) {
        self.keep(data);
    }
}

/// Frames to feed the port with, e.g. from a capture file.
pub trait FrameSource: Send {
    fn next_frame(&mut self) -> Option<Vec<u8>>;
}

/// Receives the frames the port sends, e.g. into a capture file.
pub trait FrameSink: Send {
    fn frame(&mut self, cycle: u64, data: &[u8]);
}

impl FrameSource for VecDeque<Vec<u8>> {
    fn next_frame(&mut self) -> Option<Vec<u8>> {
        self.pop_front()
    }
}

impl FrameSource for std::vec::IntoIter<Vec<u8>> {
    fn next_frame(&mut self) -> Option<Vec<u8>> {
        self.next()
    }
}

/// A sink collecting frames in memory, shareable with the test that inspects them.
#[derive(Debug, Clone, Default)]
pub struct CollectSink(pub Arc<Mutex<Vec<Frame>>>);

impl CollectSink {
    pub fn frames(&self) -> Vec<Frame> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl FrameSink for CollectSink {
    fn frame(&mut self, cycle: u64, data: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Frame {
                data: data.to_vec(),
                cycle,
            });
    }
}

/// A port attached to a frame source and a frame sink.
pub struct CaptureLink {
    source: Box<dyn FrameSource>,
    sink: Box<dyn FrameSink>,
}

impl CaptureLink {
    pub fn new(source: Box<dyn FrameSource>, sink: Box<dyn FrameSink>) -> Self {
        CaptureLink { source, sink }
    }
}

impl Link for CaptureLink {
    fn send(&mut self, frame: Frame) {
        self.sink.frame(frame.cycle, &frame.data);
    }
    fn recv(&mut self) -> Option<Frame> {
        self.source
            .next_frame()
            .map(|data| Frame { data, cycle: 0 })
    }
}

/// An unconnected port: sent frames vanish, nothing is received.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullLink;

impl Link for NullLink {
    fn send(&mut self, _frame: Frame) {}
    fn recv(&mut self) -> Option<Frame> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_link_crosses_over() {
        let (mut a, b) = MemLink::pair();
        a.send(Frame {
            data: vec![1],
            cycle: 5,
        });
        assert_eq!(b.pending(), 1);
        b.send_bytes(&[2]);
        assert_eq!(
            a.recv(),
            Some(Frame {
                data: vec![2],
                cycle: 0
            })
        );
        assert_eq!(
            b.drain(),
            vec![Frame {
                data: vec![1],
                cycle: 5
            }]
        );
        assert_eq!(a.recv(), None);
    }

    #[test]
    fn mem_link_hands_out_the_buffers_of_frames_it_is_done_with() {
        let (mut a, b) = MemLink::pair();
        // A card's frame, dropped by the far end: its buffer comes back for the next frame
        // either end makes, emptied.
        let mut data = a.buffer();
        data.extend_from_slice(&[3; 9000]);
        let at = data.as_ptr();
        a.send(Frame { data, cycle: 1 });
        assert_eq!(b.discard(), 1);
        assert_eq!(b.pending(), 0);
        b.send_bytes(&[4; 60]);
        let got = a.recv().expect("the frame sent");
        assert_eq!(got.data, vec![4; 60]);
        assert_eq!(
            got.data.as_ptr(),
            at,
            "the discarded frame's buffer is used again"
        );
        // A received frame's buffer given back by the card: the card's next frame gets it.
        let at = got.data.as_ptr();
        a.recycle(got.data);
        let next = a.buffer();
        assert_eq!(next.as_ptr(), at);
        // No more than MEM_LINK_SPARES are kept.
        for _ in 0..MEM_LINK_SPARES + 10 {
            a.recycle(vec![0; 1]);
        }
        assert_eq!(lock(&a.spares).len(), MEM_LINK_SPARES);
    }

    #[test]
    fn capture_link_reads_source_and_fills_sink() {
        let sink = CollectSink::default();
        let src: VecDeque<Vec<u8>> = VecDeque::from(vec![vec![7u8; 3]]);
        let mut l = CaptureLink::new(Box::new(src), Box::new(sink.clone()));
        assert_eq!(l.recv().map(|f| f.data), Some(vec![7; 3]));
        assert_eq!(l.recv(), None);
        l.send(Frame {
            data: vec![9],
            cycle: 11,
        });
        assert_eq!(
            sink.frames(),
            vec![Frame {
                data: vec![9],
                cycle: 11
            }]
        );
    }
}
