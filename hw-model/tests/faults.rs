//! Every injectable fault, observed the way datasheet §10 says a driver observes it.

mod common;
use common::*;
use espo_fpga::regs::{ctrl, ident, queue};
use espo_fpga::{Counter, DmaUnit, EventCode, FaultCode, SaState, Status, TxDescriptor};
use espo_model::{FaultKind, FaultTrigger, MemLink, ModelParams};

fn card() -> (Host, MemLink) {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(Box::new(l));
    h.bring_up(1, 5);
    (h, tap)
}

fn fault_fields(h: &Host) -> (u64, u64, u64) {
    let v = u64::from(h.rd(&ctrl::FAULT_CODE));
    (
        ctrl::fault::CODE.get(v),
        ctrl::fault::UNIT.get(v),
        ctrl::fault::QUEUE.get(v),
    )
}

#[test]
fn dma_outside_mapped_windows_is_refused_and_reported() {
    let (mut h, tap) = card();
    let f = ipv4_frame(100, 0, 0, 0);
    h.post_tx(0, &[(&f, None)]);
    // Second descriptor points at an IOVA no window covers.
    let hq = h.queues[0].clone();
    let d = TxDescriptor {
        addr: 0xDEAD_0000,
        len: 100,
        bypass: true,
        sa_index: 0,
    };
    h.write(hq.txq.slot_addr(hq.txq.index, 16), &d.encode());
    h.queues[0].txq.index += 1;
    let idx = h.queues[0].txq.index;
    h.wr_q(&queue::TXQ_TAIL, 0, idx);
    h.model.run_until_idle();
    assert_eq!(
        h.tx_completions(0).len(),
        1,
        "the faulting descriptor never completes"
    );
    assert_eq!(tap.drain().len(), 1);
    assert!(ctrl::err::DMA_FAULT.is_set(h.rd(&ctrl::ERR_CAUSE).into()));
    let expected = (
        u64::from(FaultCode::DmaUnmapped.value()),
        u64::from(DmaUnit::TxDataRead.value()),
        0,
    );
    assert_eq!(fault_fields(&h), expected);
    assert_eq!(h.model.bar0_read64(ctrl::FAULT_ADDR.addr()), 0xDEAD_0000);
    let st = h.model.bar0_read32(queue::Q_STATUS.addr_in(0));
    assert!(
        queue::q_status::ERROR.is_set(st.into()) && !queue::q_status::ENABLED.is_set(st.into())
    );
    let ev: Vec<_> = h
        .events()
        .iter()
        .map(|e| (e.code, e.index, e.detail, e.aux))
        .collect();
    assert_eq!(
        ev,
        vec![
            (
                EventCode::DmaFault,
                0,
                0xDEAD_0000,
                DmaUnit::TxDataRead.value()
            ),
            (EventCode::QueueStopped, 0, 0, 0)
        ]
    );
    assert!(h.latch.count(0) >= 1, "vector 0 fired");
    assert_eq!(h.counter(Counter::DmaFaults), 1);
}

#[test]
fn unmapping_a_buffer_under_the_card_faults_its_rx_write() {
    let (mut h, tap) = card();
    let mem = espo_model::VecMemory::new(4096);
    h.model.map(0x9000_0000, 4096, mem).expect("map");
    let hq = h.queues[0].clone();
    // Re-point the next RX buffer at a window, then unmap it.
    let d = espo_fpga::RxDescriptor {
        addr: 0x9000_0000,
        len: 4096,
    };
    h.write(hq.rxq.slot_addr(0, 16), &d.encode());
    h.model.unmap(0x9000_0000).expect("unmap");
    tap.send_bytes(&ipv4_frame(100, 0, 0, 0));
    h.model.run_until_idle();
    assert_eq!(h.rx_completions(0).len(), 0);
    assert_eq!(fault_fields(&h).1, u64::from(DmaUnit::RxDataWrite.value()));
}

#[test]
fn injected_dma_error_reports_a_pcie_failure() {
    let (mut h, _tap) = card();
    h.model
        .inject(FaultKind::DmaError, FaultTrigger::AtPacket(2));
    let f = ipv4_frame(100, 0, 0, 0);
    h.post_tx(0, &[(&f, None), (&f, None), (&f, None)]);
    h.model.run_until_idle();
    assert_eq!(h.tx_completions(0).len(), 1);
    assert_eq!(fault_fields(&h).0, u64::from(FaultCode::DmaError.value()));
}

#[test]
fn engine_hang_stops_completions_and_the_watchdog_reports_it() {
    let (mut h, tap) = card();
    let sa = gcm_sa(true, 0x42, [1; 16], [0; 4]);
    assert_eq!(h.sa_write(0, &sa, None), Status::Ok);
    h.model
        .inject(FaultKind::EngineHang, FaultTrigger::AtPacket(6));
    let f = ipv4_frame(500, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..10).map(|_| (f.as_slice(), Some(0))).collect();
    h.post_tx(0, &posts);
    let hang_seen_at = h.model.run_until_idle();
    let done = h.tx_completions(0);
    assert!(done.len() < 10, "{} completed", done.len());
    assert!(ctrl::status::FAULT.is_set(h.rd(&ctrl::STATUS).into()));
    assert!(ctrl::err::ENGINE_HANG.is_set(h.rd(&ctrl::ERR_CAUSE).into()));
    assert!(hang_seen_at >= h.model.params().watchdog_cycles);
    assert!(h.events().iter().any(|e| e.code == EventCode::EngineHang));
    assert!(tap.drain().len() <= 5);
    // The admin queue still answers: the read-back covers every sequence number used.
    let (st, state) = h.sa_read(0);
    assert_eq!(st, Status::Ok);
    let last_completed = done.iter().map(|c| c.seq).max().unwrap_or(0);
    assert!(state.seq >= last_completed);
    // Reset and re-initialisation bring the card back.
    h.bring_up(1, 5);
    assert!(!ctrl::status::FAULT.is_set(h.rd(&ctrl::STATUS).into()));
    h.post_tx(0, &[(&f, None)]);
    h.model.run_until_idle();
    assert_eq!(h.tx_completions(0)[0].status, Status::Bypass);
}

#[test]
fn icv_engine_error_fails_one_packet_and_consumes_its_sequence_number() {
    let (mut h, tap) = card();
    assert_eq!(
        h.sa_write(3, &gcm_sa(true, 0x43, [1; 16], [0; 4]), None),
        Status::Ok
    );
    h.model
        .inject(FaultKind::IcvEngineError, FaultTrigger::AtPacket(2));
    let f = ipv4_frame(100, 0, 0, 0);
    h.post_tx(0, &[(&f, Some(3)), (&f, Some(3)), (&f, Some(3))]);
    h.model.run_until_idle();
    let got: Vec<(Status, u64)> = h
        .tx_completions(0)
        .iter()
        .map(|c| (c.status, c.seq))
        .collect();
    assert_eq!(
        got,
        vec![(Status::Ok, 1), (Status::EngineError, 2), (Status::Ok, 3)]
    );
    assert_eq!(tap.drain().len(), 2);
    assert!(ctrl::err::ICV_ENGINE.is_set(h.rd(&ctrl::ERR_CAUSE).into()));
    let ev = h.events();
    assert_eq!((ev[0].code, ev[0].index), (EventCode::IcvEngineError, 3));
    assert!(
        !ctrl::status::FAULT.is_set(h.rd(&ctrl::STATUS).into()),
        "not fatal"
    );
}

#[test]
fn surprise_reset_is_seen_through_status_and_reset_count() {
    let (mut h, _tap) = card();
    let before = h.rd(&ctrl::RESET_COUNT);
    let now = h.model.now_cycles();
    h.model
        .inject(FaultKind::SurpriseReset, FaultTrigger::AtCycle(now + 10));
    let f = ipv4_frame(100, 0, 0, 0);
    let posts: Vec<(&[u8], Option<u32>)> = (0..8).map(|_| (f.as_slice(), None)).collect();
    h.post_tx(0, &posts);
    h.model.run_until_idle();
    assert_eq!(
        h.tx_completions(0).len(),
        0,
        "reset before the first completion"
    );
    assert_eq!(h.rd(&ctrl::RESET_COUNT), before + 1);
    assert!(!ctrl::status::ENABLED.is_set(h.rd(&ctrl::STATUS).into()));
    assert_eq!(h.rd(&ident::SCRATCH), 0);
    h.bring_up(1, 5);
    h.post_tx(0, &posts[..1]);
    h.model.run_until_idle();
    assert_eq!(h.tx_completions(0).len(), 1);
}

#[test]
fn surprise_removal_reads_all_ones_and_stops_everything() {
    let (mut h, tap) = card();
    h.model
        .inject(FaultKind::SurpriseRemoval, FaultTrigger::AtPacket(1));
    let f = ipv4_frame(100, 0, 0, 0);
    h.post_tx(0, &[(&f, None)]);
    h.model.run_until_idle();
    assert_eq!(h.rd(&ident::DEVICE_ID), u32::MAX);
    assert_eq!(h.model.bar0_read64(ctrl::FAULT_ADDR.addr()), u64::MAX);
    h.wr(&ident::SCRATCH, 5);
    assert_eq!(h.rd(&ident::SCRATCH), u32::MAX);
    assert_eq!(h.tx_completions(0).len(), 0);
    assert_eq!(tap.drain().len(), 0);
    h.model.advance(1_000_000);
}

#[test]
fn dropped_interrupt_loses_the_message_not_the_completion() {
    let (mut h, _tap) = card();
    h.latch.take();
    let before = h.latch.count(1);
    h.model
        .inject(FaultKind::DroppedInterrupt, FaultTrigger::AtPacket(1));
    let f = ipv4_frame(100, 0, 0, 0);
    h.post_tx(0, &[(&f, None)]);
    h.model.run_until_idle();
    assert_eq!(h.latch.count(1), before, "no message on vector 1");
    assert_eq!(h.latch.take() & 0b10, 0);
    assert_eq!(
        h.tx_completions(0).len(),
        1,
        "the completion is in memory: polling finds it"
    );
    h.post_tx(0, &[(&f, None)]);
    h.model.run_until_idle();
    assert_eq!(h.latch.count(1), before + 1, "only one message lost");
}

#[test]
fn corrupt_completion_keeps_the_phase_and_garbles_the_rest() {
    let (mut h, tap) = card();
    h.model
        .inject(FaultKind::CorruptCompletion, FaultTrigger::AtCycle(0));
    let f = ipv4_frame(100, 0, 0, 0);
    h.post_tx(0, &[(&f, None), (&f, None)]);
    h.model.run_until_idle();
    let c = h.tx_completions(0);
    assert_eq!(c.len(), 2, "the phase bit is still right");
    assert_ne!(c[0].desc_index, 0);
    assert!(matches!(c[0].status, Status::Unknown(_)));
    assert_eq!(
        (c[1].desc_index, c[1].status),
        (1, Status::Bypass),
        "only one completion is garbled"
    );
    tap.send_bytes(&f);
    h.model
        .inject(FaultKind::CorruptCompletion, FaultTrigger::AtPacket(1));
    h.model.run_until_idle();
    let rx = h.rx_completions(0);
    assert_eq!(rx.len(), 1);
    assert!(usize::from(rx[0].0.len) > f.len() || rx[0].0.sa_index != espo_fpga::desc::NO_SA_INDEX);
}

#[test]
fn a_stale_export_reports_the_sequence_number_the_sa_was_written_with() {
    let (mut h, tap) = card();
    let mut out = gcm_sa(true, 0x77, [5; 16], [1; 4]);
    out.seq = 10;
    assert_eq!(h.sa_write(3, &out, None), Status::Ok);
    let inbound = gcm_sa(false, 0x78, [6; 16], [2; 4]);
    let state = SaState {
        seq: 500,
        window: 64,
        ..SaState::default()
    };
    assert_eq!(h.sa_write(4, &inbound, Some(&state)), Status::Ok);
    let f = ipv4_frame(200, 0, 1, 3);
    h.post_tx(0, &[(&f, Some(3)), (&f, Some(3)), (&f, Some(3))]);
    h.model.run_until_idle();
    assert_eq!(tap.drain().len(), 3);
    assert_eq!(
        h.sa_read(3).1.seq,
        13,
        "a sound card exports the last number used"
    );
    let now = h.model.now_cycles();
    h.model
        .inject(FaultKind::StaleSeqExport, FaultTrigger::AtCycle(now));
    h.model.run_until_idle();
    assert_eq!(h.sa_read(3).1.seq, 10, "the number it was written with");
    assert_eq!(h.sa_read(4).1.seq, 500, "inbound windows are not affected");
    let (st, exported) = h.sa_invalidate(3);
    assert_eq!((st, exported.seq), (Status::Ok, 10));
    // Imported state counts as written.
    let st = SaState {
        seq: 40,
        ..SaState::default()
    };
    assert_eq!(h.sa_write(3, &out, Some(&st)), Status::Ok);
    h.post_tx(0, &[(&f, Some(3))]);
    h.model.run_until_idle();
    assert_eq!(h.sa_read(3).1.seq, 40);
}
