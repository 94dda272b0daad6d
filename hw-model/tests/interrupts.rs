//! Interrupt vectors: masking, pending bits, coalescing by count and by time (§9).

mod common;
use common::*;
use espo_fpga::regs::irq;
use espo_model::{MemLink, ModelParams};

fn card() -> (Host, MemLink) {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(Box::new(l));
    h.bring_up(2, 5);
    h.latch.take();
    (h, tap)
}

#[test]
fn masked_vector_becomes_pending_and_fires_on_unmask() {
    let (mut h, _tap) = card();
    h.wr(&irq::INT_MASK, 0b10);
    let f = ipv4_frame(100, 0, 0, 0);
    h.post_tx(0, &[(&f, None)]);
    h.model.run_until_idle();
    assert_eq!(h.latch.take(), 0);
    assert_eq!(h.rd(&irq::INT_PENDING), 0b10);
    h.wr(&irq::INT_MASK, 0);
    assert_eq!(h.latch.take(), 0b10);
    assert_eq!(h.rd(&irq::INT_PENDING), 0);
    // W1C discards a pending message.
    h.wr(&irq::INT_MASK, 0b100);
    h.post_tx(1, &[(&f, None)]);
    h.model.run_until_idle();
    assert_eq!(h.rd(&irq::INT_PENDING), 0b100);
    h.wr(&irq::INT_PENDING, 0b100);
    h.wr(&irq::INT_MASK, 0);
    assert_eq!(h.latch.take(), 0);
}

#[test]
fn coalescing_by_count_and_by_time() {
    let (mut h, _tap) = card();
    h.wr(&irq::COAL_PACKETS, 4);
    h.wr(&irq::COAL_CYCLES, 2000);
    let before = h.latch.count(1);
    let f = ipv4_frame(100, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..10).map(|_| (f.as_slice(), None)).collect();
    h.post_tx(0, &posts);
    h.model.run_until_idle();
    assert_eq!(
        h.latch.count(1) - before,
        3,
        "two by count (4 + 4), one by the timer for the last 2"
    );
    assert_eq!(h.tx_completions(0).len(), 10);
}

#[test]
fn admin_completions_and_events_use_vector_zero() {
    let (mut h, _tap) = card();
    let before = h.latch.count(0);
    let _ = h.sa_read(0);
    assert_eq!(h.latch.count(0), before + 1);
}
