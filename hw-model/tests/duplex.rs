//! The port is full duplex: frames sent and frames received at the same time overlap, so
//! both directions together take about the time of one while the AES-GCM engines the two
//! directions share keep up. Traffic as in `espo demo`: half of each direction on a card
//! SA, half passing the card as ready-made frames (4 engines seal or open one 1400-byte
//! packet per 22.5 cycles, 1 frame a direction takes 30 cycles on the port).

mod common;
use common::*;
use espo_fpga::Status;
use espo_model::{MemLink, ModelParams};

const N: usize = 256;

/// A card with SA 1 sending and SA 9 receiving the same traffic, and `N` frames to receive
/// (what the card itself sent: every other one ESP on SA 1).
fn card() -> (Host, MemLink, Vec<Vec<u8>>) {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(Box::new(l));
    h.bring_up(1, 10);
    let mut sa = gcm_sa(true, 0x600d, [4; 16], [2; 4]);
    assert_eq!(h.sa_write(1, &sa, None), Status::Ok);
    sa.outbound = false;
    assert_eq!(h.sa_write(9, &sa, None), Status::Ok);
    send(&mut h, N);
    h.model.run_until_idle();
    assert_eq!(h.tx_completions(0).len(), N);
    let frames: Vec<Vec<u8>> = tap.drain().into_iter().map(|f| f.data).collect();
    assert_eq!(frames.len(), N);
    (h, tap, frames)
}

fn send(h: &mut Host, n: usize) {
    let f = ipv4_frame(1400, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..n)
        .map(|i| (f.as_slice(), (i % 2 == 0).then_some(1)))
        .collect();
    h.post_tx(0, &posts);
}

/// Cycles the card takes for `tx` frames to seal and send and `rx` to receive and open,
/// handed over at the same time.
fn elapsed(tx: usize, rx: usize) -> u64 {
    let (mut h, tap, frames) = card();
    h.model.reset_perf();
    frames.iter().take(rx).for_each(|f| tap.send_bytes(f));
    if tx > 0 {
        send(&mut h, tx);
    }
    h.model.run_until_idle();
    assert_eq!(h.tx_completions(0).len(), tx);
    let rx_done = h.rx_completions(0);
    assert_eq!(rx_done.len(), rx);
    let opened = rx_done.iter().filter(|(c, _)| c.decapsulated).count();
    assert_eq!(opened, rx / 2);
    assert!(
        rx_done
            .iter()
            .all(|(c, _)| matches!(c.status, Status::Ok | Status::Bypass))
    );
    assert_eq!(tap.drain().len(), tx);
    h.model.perf().elapsed_cycles()
}

#[test]
fn sending_and_receiving_together_take_the_time_of_one_direction() {
    let one = elapsed(N, 0).max(elapsed(0, N));
    let both = elapsed(N, N);
    assert!(
        one > 7_000,
        "{N} frames of about 1474 bytes at 100 Gbit/s: {one}"
    );
    assert!(both * 10 < one * 11, "both {both} cycles, one way {one}");
}
