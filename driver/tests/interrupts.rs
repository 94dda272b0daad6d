//! Interrupt mode and poll mode (datasheet §9): vectors, coalescing, lost interrupts, and
//! a model whose clock runs on its own thread.
#![cfg(feature = "model")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use espo_driver::card::{Card, CardConfig, CardError, CardEvent, IrqMode, RxPacket, TxAction};
use espo_driver::model::{ModelDevice, ModelOptions, Pacing};
use espo_model::{FaultKind, FaultTrigger, MemLink};

fn irq_config(coalesce_packets: u32, coalesce_cycles: u32) -> CardConfig {
    CardConfig {
        irq: IrqMode::Interrupt {
            coalesce_packets,
            coalesce_cycles,
        },
        ..CardConfig::default()
    }
}

#[test]
fn completions_wake_the_queue_vector() {
    let (mut card, model) = card_with(ModelOptions::default(), irq_config(1, 0));
    let frames: Vec<_> = (0..4).map(|i| frame(200, i)).collect();
    card.tx_batch(0, &requests(&frames, 0, TxAction::Bypass))
        .unwrap();
    let start = card.now();
    assert!(card.wait_queue(0, Duration::from_millis(1)).unwrap());
    assert!(card.now() > start, "simulated time ran until the interrupt");
    assert!(card.now() - start < Duration::from_millis(1));
    let mut done = Vec::new();
    while done.len() < 4 {
        if card.tx_completions(0, &mut done).unwrap() == 0 {
            card.wait_queue(0, Duration::from_millis(1)).unwrap();
        }
    }
    assert!(model.interrupts_delivered(1) >= 1);
    assert_eq!(model.interrupts_delivered(2), 0, "queue 1 is not in use");
}

#[test]
fn received_frames_wake_the_queue_vector() {
    let (link, tap) = MemLink::pair();
    let (mut card, model) = card_with(ModelOptions::default(), irq_config(1, 0));
    model.attach_link(Box::new(link));
    tap.send_bytes(&frame(300, 7));
    assert!(card.wait_queue(0, Duration::from_millis(1)).unwrap());
    let mut batch = vec![RxPacket::default(); 4];
    assert_eq!(card.rx_batch(0, &mut batch).unwrap(), 1);
    assert_eq!(batch[0].data, frame(300, 7));
}

#[test]
fn a_wait_with_nothing_to_come_times_out_in_simulated_time() {
    let (mut card, _model) = card_with(ModelOptions::default(), irq_config(1, 0));
    let start = card.now();
    assert!(!card.wait_queue(0, Duration::from_micros(500)).unwrap());
    assert!(card.now() - start >= Duration::from_micros(500));
    assert_eq!(card.stats().irq_timeouts, 1);
}

#[test]
fn a_lost_interrupt_delays_nothing_but_the_wakeup() {
    let (mut card, model) = card_with(ModelOptions::default(), irq_config(1, 0));
    model.inject(FaultKind::DroppedInterrupt, FaultTrigger::AtCycle(0));
    let f = vec![frame(100, 1)];
    card.tx_batch(0, &requests(&f, 42, TxAction::Bypass))
        .unwrap();
    assert!(
        !card.wait_queue(0, Duration::from_micros(100)).unwrap(),
        "the message was lost"
    );
    let mut done = Vec::new();
    assert_eq!(
        card.tx_completions(0, &mut done).unwrap(),
        1,
        "the completion is in memory"
    );
    assert_eq!(done[0].tag, 42);
}

#[test]
fn coalescing_holds_the_interrupt_until_the_count_or_the_timer() {
    // Eight packets per interrupt, no timer: four completions raise none.
    let (mut card, model) = card_with(ModelOptions::default(), irq_config(8, 0));
    let frames: Vec<_> = (0..8).map(|i| frame(100, i)).collect();
    card.tx_batch(0, &requests(&frames[..4], 0, TxAction::Bypass))
        .unwrap();
    assert!(!card.wait_queue(0, Duration::from_micros(200)).unwrap());
    card.tx_batch(0, &requests(&frames[4..], 4, TxAction::Bypass))
        .unwrap();
    assert!(card.wait_queue(0, Duration::from_micros(200)).unwrap());
    assert_eq!(model.interrupts_delivered(1), 1);
    // With a timer, the four raise one after it expires.
    let (mut card, model) = card_with(ModelOptions::default(), irq_config(8, 2_500));
    card.tx_batch(0, &requests(&frames[..4], 0, TxAction::Bypass))
        .unwrap();
    let start = card.now();
    assert!(card.wait_queue(0, Duration::from_millis(1)).unwrap());
    assert!(
        card.now() - start >= Duration::from_micros(10),
        "not before the timer"
    );
    assert_eq!(model.interrupts_delivered(1), 1);
}

#[test]
fn events_raise_vector_zero() {
    let (mut card, _model) = card_with(ModelOptions::default(), irq_config(1, 0));
    let mut sa = gcm_sa(true, 0x10);
    sa.hard_packets = 1;
    card.sa_write(0, &sa, None).unwrap();
    let _ = card.wait_events(Duration::ZERO); // the admin completions' messages
    let f = vec![frame(100, 1)];
    send_all(
        &mut card,
        0,
        &requests(&f, 0, TxAction::Encap { sa_index: 0 }),
    );
    assert!(card.wait_events(Duration::from_millis(1)).unwrap());
    let mut events = Vec::new();
    card.service(&mut events).unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, CardEvent::LifetimeHard { sa_index: 0, .. }))
    );
}

#[test]
fn poll_mode_has_no_interrupts_to_wait_for() {
    let (mut card, model) = card();
    assert!(matches!(
        card.wait_queue(0, Duration::ZERO),
        Err(CardError::PollMode)
    ));
    let f = vec![frame(100, 1)];
    send_all(&mut card, 0, &requests(&f, 0, TxAction::Bypass));
    assert_eq!(model.interrupts_delivered(1), 0, "masked on the card");
}

#[test]
fn a_model_running_on_its_own_thread_in_real_time() {
    let dev = ModelDevice::new(ModelOptions {
        pacing: Pacing::RealTime,
        ..ModelOptions::default()
    });
    let model = dev.handle();
    let mut card = Card::open(Arc::new(dev), irq_config(1, 0)).unwrap();
    let frames: Vec<_> = (0..50).map(|i| frame(700, i)).collect();
    let reqs = requests(&frames, 0, TxAction::Bypass);
    let mut done = Vec::new();
    let mut at = 0;
    let started = std::time::Instant::now();
    while done.len() < 50 {
        at += card.tx_batch(0, &reqs[at..]).unwrap();
        if card.tx_completions(0, &mut done).unwrap() == 0 {
            card.wait_queue(0, Duration::from_millis(10)).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "stuck");
    }
    assert_eq!(
        done.iter().map(|d| d.tag).collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    assert!(model.now_cycles() > 0, "the thread moved simulated time on");
    drop(card);
    assert_eq!(model.dma_mappings(), 0);
}
