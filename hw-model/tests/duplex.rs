//! The port is full duplex (datasheet §7): frames sent and frames received at the same
//! time overlap, so both directions together take about the time of one.

mod common;
use common::*;
use espo_model::{MemLink, ModelParams};

/// Cycles the card takes for `tx` frames posted and `rx` frames arriving together.
fn elapsed(tx: usize, rx: usize) -> u64 {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(Box::new(l));
    h.bring_up(1, 9);
    let f = ipv4_frame(1474, 0, 0, 0);
    h.model.reset_perf();
    for _ in 0..rx {
        tap.send_bytes(&f);
    }
    let posts: Vec<(&[u8], Option<u32>)> = (0..tx).map(|_| (f.as_slice(), None)).collect();
    if tx > 0 {
        h.post_tx(0, &posts);
    }
    h.model.run_until_idle();
    assert_eq!(h.tx_completions(0).len(), tx);
    assert_eq!(h.rx_completions(0).len(), rx);
    assert_eq!(tap.drain().len(), tx);
    h.model.perf().elapsed_cycles()
}

#[test]
fn sending_and_receiving_together_take_the_time_of_one_direction() {
    let one = elapsed(256, 0).max(elapsed(0, 256));
    let both = elapsed(256, 256);
    assert!(one > 7_000, "256 frames of 1474 bytes at 100 Gbit/s: {one}");
    assert!(both * 10 < one * 11, "both {both} cycles, one way {one}");
}
