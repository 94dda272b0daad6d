//! Queue ownership (datasheet §7.1, §7.2): free-running indices masked by the ring size,
//! wraparound, phase-bit flips, full rings and backpressure, bad doorbells.

mod common;
use common::*;
use espo_fpga::regs::{ctrl, queue};
use espo_fpga::{Counter, Status, TxCompletion};
use espo_model::{MemLink, ModelParams};

fn card(log2: u32) -> (Host, MemLink) {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(Box::new(l));
    h.bring_up(1, log2);
    (h, tap)
}

#[test]
fn tx_ring_wraps_many_times_with_phase_flips() {
    let (mut h, tap) = card(4);
    let f = ipv4_frame(80, 0, 0, 0);
    let mut seen = 0u32;
    for round in 0..10 {
        let posts: Vec<(&[u8], Option<u32>)> = (0..13).map(|_| (f.as_slice(), None)).collect();
        h.post_tx(0, &posts);
        h.model.run_until_idle();
        let c = h.tx_completions(0);
        assert_eq!(c.len(), 13, "round {round}");
        for cpl in &c {
            assert_eq!(u32::from(cpl.desc_index), seen & 0xFFFF);
            seen += 1;
        }
        // The slot after the last completion still holds the previous pass's phase.
        let next = h.queues[0].txcq;
        let raw = h.read(next.slot_addr(next.index, 16), 16);
        assert_ne!(
            espo_fpga::desc::phase_of(&raw),
            espo_fpga::desc::phase_for(next.index, next.log2)
        );
    }
    assert_eq!(tap.drain().len(), 130);
    assert_eq!(
        h.model.bar0_read32(queue::TXQ_HEAD.addr_in(0)),
        130,
        "free-running, not masked"
    );
}

#[test]
fn full_completion_ring_stalls_until_the_host_frees_it() {
    let (mut h, tap) = card(4);
    let f = ipv4_frame(80, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..16).map(|_| (f.as_slice(), None)).collect();
    h.post_tx(0, &posts);
    h.model.run_until_idle();
    assert_eq!(
        tap.drain().len(),
        16,
        "a full ring of 16 descriptors is legal"
    );
    // The host posts 16 more without consuming completions: TXCQ is full, the card waits.
    let hq = h.queues[0].clone();
    let mut idx = hq.txq.index;
    for _ in 0..16 {
        let slot = idx & 15;
        let d = espo_fpga::TxDescriptor {
            addr: hq.tx_bufs + u64::from(slot) * h.buf_bytes,
            len: f.len() as u16,
            bypass: true,
            sa_index: 0,
        };
        h.write(hq.txq.slot_addr(idx, 16), &d.encode());
        idx += 1;
    }
    h.wr_q(&queue::TXQ_TAIL, 0, idx);
    h.queues[0].txq.index = idx;
    h.model.run_until_idle();
    assert_eq!(
        tap.drain().len(),
        0,
        "completion ring full: nothing fetched"
    );
    let first = h.tx_completions(0);
    assert_eq!(first.len(), 16);
    h.model.run_until_idle();
    assert_eq!(
        tap.drain().len(),
        16,
        "TXCQ_HEAD doorbell released the stall"
    );
    let second = h.tx_completions(0);
    assert_eq!(second.len(), 16);
    assert!(
        second
            .iter()
            .all(|c: &TxCompletion| c.status == Status::Bypass)
    );
}

#[test]
fn rx_without_buffers_pauses_the_link_and_loses_nothing() {
    let (mut h, tap) = card(4);
    for i in 0..40u16 {
        tap.send_bytes(&ipv4_frame(100, 0, i, 0));
    }
    h.model.run_until_idle();
    let first = h.rx_completions(0); // re-posts as it consumes
    assert_eq!(first.len(), 16, "16 buffers posted");
    let mut total = first.len();
    for _ in 0..5 {
        h.model.run_until_idle();
        total += h.rx_completions(0).len();
    }
    assert_eq!(total, 40);
    assert!(h.counter(Counter::RxPauseCycles) > 0);
    assert_eq!(h.counter(Counter::RxFrames), 40);
}

#[test]
fn doorbell_beyond_the_ring_stops_the_queue() {
    let (mut h, _tap) = card(4);
    h.wr_q(&queue::TXQ_TAIL, 0, 17);
    let st = h.model.bar0_read32(queue::Q_STATUS.addr_in(0));
    assert!(queue::q_status::ERROR.is_set(st.into()));
    assert!(ctrl::err::CONFIG.is_set(h.rd(&ctrl::ERR_CAUSE).into()));
    // Recovery: disable, re-enable (indices restart at 0).
    h.wr_q(&queue::Q_CTRL, 0, 0);
    h.wr_q(&queue::Q_CTRL, 0, 1);
    let st = h.model.bar0_read32(queue::Q_STATUS.addr_in(0));
    assert!(
        queue::q_status::ENABLED.is_set(st.into()) && !queue::q_status::ERROR.is_set(st.into())
    );
}

#[test]
fn steady_state_needs_no_register_reads_and_latency_is_positive() {
    let (mut h, tap) = card(6);
    let f = ipv4_frame(1420, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..32).map(|_| (f.as_slice(), None)).collect();
    let start = h.model.now_cycles();
    h.post_tx(0, &posts);
    let end = h.model.run_until_idle();
    assert_eq!(h.tx_completions(0).len(), 32);
    assert_eq!(tap.drain().len(), 32);
    let p = h.model.perf();
    assert_eq!(p.tx.packets, 32);
    assert!(
        p.tx.latency_min_cycles > 300,
        "PCIe round trips cost cycles: {}",
        p.tx.latency_min_cycles
    );
    assert!(
        end > start + 32 * 30,
        "32 frames of ~1.5 kB at 50 bytes/cycle"
    );
}
