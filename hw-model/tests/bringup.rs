//! Register-level bring-up exactly as datasheet §5 describes, and the checks the card
//! makes while it is brought up.

mod common;
use common::*;
use espo_fpga::regs::{cap, ctrl, ident, irq, queue};
use espo_fpga::{Counter, FaultCode};
use espo_model::ModelParams;

#[test]
fn block_chain_identifies_every_block_and_version() {
    let host = Host::new(ModelParams::default());
    let blocks = host.walk_blocks();
    assert_eq!(blocks.len(), espo_fpga::regs::BLOCKS.len());
    assert_eq!(blocks[0], (0, ident::BLOCK_TYPE, 0x0001_0000));
    assert_eq!(host.rd(&cap::CAP_ALGS), 0b110, "AES-GCM-128 and -256 only");
    assert_eq!(host.rd(&cap::REPLAY_WINDOW_MAX), 4096);
    assert_eq!(host.rd(&ident::CLOCK_KHZ), 250_000);
    assert!(!cap::features::AH.is_set(host.rd(&cap::CAP_FEATURES).into()));
}

#[test]
fn bring_up_follows_the_datasheet_sequence() {
    let mut host = Host::new(ModelParams::default());
    host.bring_up(4, 6);
    assert_eq!(host.rd(&ctrl::ERR_CAUSE), 0);
    assert_eq!(host.rd(&ctrl::RESET_COUNT), 1);
    for q in 0..4 {
        let st = host.model.bar0_read32(queue::Q_STATUS.addr_in(q));
        assert!(
            queue::q_status::ENABLED.is_set(st.into()) && queue::q_status::IDLE.is_set(st.into())
        );
        assert_eq!(host.model.bar0_read32(queue::RXQ_HEAD.addr_in(q)), 0);
    }
}

#[test]
fn registers_are_inaccessible_during_reset_and_scratch_works_after() {
    let mut host = Host::new(ModelParams::default());
    host.wr(&ident::SCRATCH, 0x1234_5678);
    assert_eq!(host.rd(&ident::SCRATCH), 0x1234_5678);
    host.wr(&ctrl::CONTROL, 2);
    assert!(!ctrl::status::READY.is_set(host.rd(&ctrl::STATUS).into()));
    assert_eq!(host.rd(&ident::SCRATCH), 0, "reset restores reset values");
    host.wr(&ident::SCRATCH, 7);
    assert_eq!(
        host.rd(&ident::SCRATCH),
        0,
        "writes during reset are ignored"
    );
    host.model.run_until_idle();
    assert!(ctrl::status::READY.is_set(host.rd(&ctrl::STATUS).into()));
    host.wr(&ident::SCRATCH, 7);
    assert_eq!(host.rd(&ident::SCRATCH), 7);
    assert_eq!(host.rd(&ctrl::CONTROL), 0, "RESET is self-clearing");
}

#[test]
fn enable_without_rings_or_with_unknown_features_is_refused() {
    let mut host = Host::new(ModelParams::default());
    host.wr(&ctrl::CONTROL, 1);
    let status = host.rd(&ctrl::STATUS);
    assert!(!ctrl::status::ENABLED.is_set(status.into()));
    assert!(ctrl::err::CONFIG.is_set(host.rd(&ctrl::ERR_CAUSE).into()));
    assert_eq!(
        ctrl::fault::CODE.get(host.rd(&ctrl::FAULT_CODE).into()),
        u64::from(FaultCode::Config.value())
    );
    host.wr(&ctrl::ERR_CAUSE, u32::MAX);
    assert_eq!(host.rd(&ctrl::ERR_CAUSE), 0, "W1C clears");
    assert_eq!(host.rd(&ctrl::FAULT_CODE), 0);

    let mut host = Host::new(ModelParams::default());
    host.bring_up(0, 4);
    host.wr(&ctrl::CONTROL, 0);
    host.wr(&ctrl::DRIVER_FEATURES, cap::features::AH.mask() as u32);
    host.wr(&ctrl::CONTROL, 1);
    assert!(
        !ctrl::status::ENABLED.is_set(host.rd(&ctrl::STATUS).into()),
        "AH is not a card feature"
    );
}

#[test]
fn queue_enable_checks_its_rings() {
    let mut host = Host::new(ModelParams::default());
    host.bring_up(0, 4);
    host.wr_q(&queue::TXQ_LOG2, 2, 3); // below RING_MIN_LOG2
    host.wr_q(&queue::Q_CTRL, 2, 1);
    let st = host.model.bar0_read32(queue::Q_STATUS.addr_in(2));
    assert!(
        queue::q_status::ERROR.is_set(st.into()) && !queue::q_status::ENABLED.is_set(st.into())
    );
    assert!(ctrl::err::CONFIG.is_set(host.rd(&ctrl::ERR_CAUSE).into()));
    assert_eq!(ctrl::fault::QUEUE.get(host.rd(&ctrl::FAULT_CODE).into()), 2);
}

#[test]
fn counters_read_as_64_bit_registers() {
    let mut host = Host::new(ModelParams::default());
    host.bring_up(1, 4);
    let (_, peer) = {
        let (a, b) = espo_model::MemLink::pair();
        (host.model.attach_link(Box::new(a)), b)
    };
    peer.send_bytes(&[0xAB; 10]);
    host.model.run_until_idle();
    assert_eq!(host.counter(Counter::RxFrames), 1);
    assert_eq!(host.counter(Counter::RxRunt), 1);
    let c = host.rx_completions(0);
    assert_eq!(c.len(), 1, "runts are delivered raw with a verdict");
    assert_eq!(c[0].0.status, espo_fpga::Status::Malformed);
    assert_eq!(c[0].1, vec![0xAB; 10]);
    assert_eq!(host.rd(&irq::VECTOR_COUNT), 5);
}
