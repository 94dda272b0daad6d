//! A link that keeps frame buffers ([`Link::buffer`] / [`Link::recycle`]): the card takes
//! every buffer for a frame it sends from the link, whatever the buffer held, gives back
//! every received frame's buffer once the frame is in host memory, and its frames and
//! completions are byte for byte those of a card on a link that keeps nothing.

mod common;
use common::*;
use espo_fpga::Status;
use espo_model::{Frame, Link, MemLink, ModelParams};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const N: usize = 64;

/// A cable end that hands out buffers full of junk (or ones given back) and keeps what
/// it is given back, counting both.
struct Keeping {
    end: MemLink,
    kept: Arc<Mutex<Vec<Vec<u8>>>>,
    handed: Arc<AtomicUsize>,
    returned: Arc<AtomicUsize>,
}

impl Link for Keeping {
    fn send(&mut self, frame: Frame) {
        self.end.send(frame);
    }

    fn recv(&mut self) -> Option<Frame> {
        self.end.recv()
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.handed.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.kept.lock().unwrap();
        kept.pop().unwrap_or_else(|| vec![0xee; 3000])
    }

    fn recycle(&mut self, mut data: Vec<u8>) {
        self.returned.fetch_add(1, Ordering::Relaxed);
        // What the link does with a buffer it keeps is its own: scribble over it.
        data.iter_mut().for_each(|b| *b = 0x5a);
        self.kept.lock().unwrap().push(data);
    }
}

struct Run {
    sent: Vec<Vec<u8>>,
    received: Vec<(Status, bool, Vec<u8>)>,
}

/// A card on `link` with SA 1 sealing and SA 9 opening what it sealed.
fn card(link: Box<dyn Link>) -> Host {
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(link);
    h.bring_up(1, 10);
    let mut sa = gcm_sa(true, 0x600d, [4; 16], [2; 4]);
    assert_eq!(h.sa_write(1, &sa, None), Status::Ok);
    sa.outbound = false;
    assert_eq!(h.sa_write(9, &sa, None), Status::Ok);
    h
}

/// Sends `N` frames (every other one sealed with SA 1, the rest passing as they are),
/// then receives them back (SA 9 opens what SA 1 sealed).
fn run(link: Box<dyn Link>, tap: &MemLink) -> Run {
    let mut h = card(link);
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| ipv4_frame(200 + 37 * i, 0, i as u16, i as u8))
        .collect();
    let posts: Vec<(&[u8], Option<u32>)> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (f.as_slice(), (i % 2 == 0).then_some(1)))
        .collect();
    h.post_tx(0, &posts);
    h.model.run_until_idle();
    assert_eq!(h.tx_completions(0).len(), N);
    let sent: Vec<Vec<u8>> = tap.drain().into_iter().map(|f| f.data).collect();
    assert_eq!(sent.len(), N);
    sent.iter().for_each(|f| tap.send_bytes(f));
    h.model.run_until_idle();
    let received = h
        .rx_completions(0)
        .into_iter()
        .map(|(c, data)| (c.status, c.decapsulated, data))
        .collect();
    Run { sent, received }
}

#[test]
fn a_card_takes_its_buffers_from_the_link_and_gives_every_received_frame_back() {
    let (plain_end, plain_tap) = MemLink::pair();
    let plain = run(Box::new(plain_end), &plain_tap);

    let (end, tap) = MemLink::pair();
    let handed = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let keeping = Keeping {
        end,
        kept: Arc::default(),
        handed: Arc::clone(&handed),
        returned: Arc::clone(&returned),
    };
    let kept = run(Box::new(keeping), &tap);

    assert_eq!(
        kept.sent, plain.sent,
        "frames sent from junk-filled buffers"
    );
    assert_eq!(
        kept.received, plain.received,
        "completions and data received"
    );
    assert_eq!(kept.received.len(), N);
    let opened = kept
        .received
        .iter()
        .filter(|(s, d, _)| *s == Status::Ok && *d)
        .count();
    assert_eq!(opened, N / 2);
    assert!(
        kept.received
            .iter()
            .all(|(s, _, _)| matches!(s, Status::Ok | Status::Bypass))
    );
    // One buffer per frame sent, one per frame opened; back: every frame received once it
    // was in host memory, and each opened frame's ciphertext.
    assert_eq!(handed.load(Ordering::Relaxed), N + N / 2);
    assert_eq!(returned.load(Ordering::Relaxed), N + N / 2);
}

/// Frames the card refuses give their buffers back too: an inner packet whose EtherType
/// does not match its IP version (refused `Malformed` before sealing), and a sealed frame
/// whose ICV was damaged on the wire (refused `IcvFail`, delivered as it came).
#[test]
fn refused_frames_give_their_buffers_back() {
    let (end, tap) = MemLink::pair();
    let handed = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let mut h = card(Box::new(Keeping {
        end,
        kept: Arc::default(),
        handed: Arc::clone(&handed),
        returned: Arc::clone(&returned),
    }));

    // Every frame to be sealed; every other one claims to carry IPv6.
    let frames: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let mut f = ipv4_frame(200 + 37 * i, 0, i as u16, i as u8);
            if i % 2 == 1 {
                f[12..14].copy_from_slice(&[0x86, 0xdd]);
            }
            f
        })
        .collect();
    let posts: Vec<(&[u8], Option<u32>)> = frames.iter().map(|f| (f.as_slice(), Some(1))).collect();
    h.post_tx(0, &posts);
    h.model.run_until_idle();
    let statuses: Vec<Status> = h.tx_completions(0).iter().map(|c| c.status).collect();
    assert_eq!(statuses.len(), N);
    for (i, s) in statuses.iter().enumerate() {
        let expected = if i % 2 == 1 {
            Status::Malformed
        } else {
            Status::Ok
        };
        assert_eq!(*s, expected, "frame {i}");
    }
    // One buffer for each frame sealed or refused; the refused ones' came back.
    assert_eq!(handed.load(Ordering::Relaxed), N);
    assert_eq!(returned.load(Ordering::Relaxed), N / 2);

    // The sealed frames come back, every other one with its last byte (the ICV's) damaged.
    let sealed: Vec<Vec<u8>> = tap.drain().into_iter().map(|f| f.data).collect();
    assert_eq!(sealed.len(), N / 2);
    for (i, f) in sealed.iter().enumerate() {
        let mut f = f.clone();
        if i % 2 == 1 {
            *f.last_mut().unwrap() ^= 0x80;
        }
        tap.send_bytes(&f);
    }
    h.model.run_until_idle();
    let received = h.rx_completions(0);
    assert_eq!(received.len(), N / 2);
    for (i, (c, data)) in received.iter().enumerate() {
        if i % 2 == 1 {
            assert_eq!(c.status, Status::IcvFail, "frame {i}");
            assert!(!c.decapsulated);
            let mut damaged = sealed[i].clone();
            *damaged.last_mut().unwrap() ^= 0x80;
            assert_eq!(*data, damaged, "a refused frame is delivered as it came");
        } else {
            assert_eq!((c.status, c.decapsulated), (Status::Ok, true), "frame {i}");
        }
    }
    // One more buffer for each frame opened or refused; back: each of those buffers
    // (the plaintext once in host memory, or the refused attempt's at once) and each
    // received frame's own.
    assert_eq!(handed.load(Ordering::Relaxed), N + N / 2);
    assert_eq!(returned.load(Ordering::Relaxed), N / 2 + N / 2 + N / 2);
}
