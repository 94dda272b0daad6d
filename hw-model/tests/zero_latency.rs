//! With `ModelParams::zero_latency()` the card costs no simulated time but behaves the
//! same: what a host-side benchmark relies on.

mod common;
use common::*;
use espo_fpga::Status;
use espo_model::{MemLink, ModelParams};

#[test]
fn zero_latency_card_works_and_takes_no_time() {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::zero_latency());
    h.model.attach_link(Box::new(l));
    h.bring_up(1, 6);
    assert_eq!(
        h.sa_write(0, &gcm_sa(true, 0x10, [1; 16], [0; 4]), None),
        Status::Ok
    );
    let start = h.model.now_cycles();
    let f = ipv4_frame(1420, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..32).map(|_| (f.as_slice(), Some(0))).collect();
    h.post_tx(0, &posts);
    assert_eq!(
        h.model.next_event_cycle(),
        Some(start),
        "the doorbell is seen at once"
    );
    let end = h.model.run_until_idle();
    assert!(end - start <= 1, "{} cycles", end - start);
    let c = h.tx_completions(0);
    assert_eq!(c.len(), 32);
    assert!(
        c.iter()
            .enumerate()
            .all(|(i, c)| c.status == Status::Ok && c.seq == i as u64 + 1)
    );
    assert_eq!(tap.drain().len(), 32);
    h.model.run_until_idle(); // the TXCQ_HEAD doorbell woke the (now empty) fetcher
    assert_eq!(h.model.next_event_cycle(), None);
    assert!(h.model.is_idle());
}
