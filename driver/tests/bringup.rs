//! Bring-up (datasheet §5), identification, capability checks and refusals.
#![cfg(feature = "model")]

mod common;

use std::sync::Arc;

use common::bus::TestBus;
use common::*;
use espo_driver::card::{Card, CardConfig, CardError, CardState, DRIVER_KNOWN_FEATURES};
use espo_driver::model::{ModelDevice, ModelOptions};
use espo_fpga::regs::{cap, ctrl, ident, irq};
use espo_fpga::{AlgId, Counter};
use espo_model::ModelParams;

#[test]
fn opens_identifies_and_enables_the_card() {
    let (card, model) = card();
    let id = card.identity();
    assert_eq!(id.device_id, ident::DEVICE_ID_VALUE);
    assert_eq!(id.clock_khz, 250_000);
    let caps = card.capabilities();
    assert_eq!(caps.sa_table_size, cap::SA_TABLE_ENTRIES);
    assert_eq!(caps.queue_count, 4);
    assert!(caps.has_alg(AlgId::AesGcm128) && caps.has_alg(AlgId::AesGcm256));
    assert!(!caps.has_alg(AlgId::AesCbc128));
    assert_eq!(card.features(), DRIVER_KNOWN_FEATURES);
    assert_eq!(card.state(), CardState::Running);
    // Enabled, bus master on, one reset done by the driver.
    model.with(|m| {
        let status = u64::from(m.bar0_read32(ctrl::STATUS.addr()));
        assert!(ctrl::status::ENABLED.is_set(status));
        assert_eq!(m.bar0_read32(ctrl::RESET_COUNT.addr()), 1);
        assert_eq!(
            m.bar0_read32(ctrl::DRIVER_FEATURES.addr()),
            DRIVER_KNOWN_FEATURES
        );
        // Poll mode: every vector stays masked.
        assert_eq!(m.bar0_read32(irq::INT_MASK.addr()), 0x1F);
    });
    assert!(model.bus_master());
    assert_eq!(card.counter(Counter::TxFrames).unwrap(), 0);
}

#[test]
fn drop_resets_the_card_and_unmaps_every_region() {
    let dev = ModelDevice::new(ModelOptions::with_params(ModelParams::zero_latency()));
    let model = dev.handle();
    let card = Card::open(Arc::new(dev), CardConfig::default()).unwrap();
    assert!(model.dma_mappings() > 0);
    drop(card);
    assert_eq!(model.dma_mappings(), 0, "every DMA region unmapped");
    assert!(!model.bus_master());
    model.with(|m| {
        let status = u64::from(m.bar0_read32(ctrl::STATUS.addr()));
        assert!(!ctrl::status::ENABLED.is_set(status), "disabled and reset");
        assert_eq!(m.bar0_read32(ctrl::RESET_COUNT.addr()), 2);
    });
}

fn open_tampered(tamper: impl FnOnce(&common::bus::BusControl)) -> Result<Card, CardError> {
    let (bus, control) = TestBus::new(ModelDevice::with_params(ModelParams::zero_latency()));
    tamper(&control);
    Card::open(Arc::new(bus), CardConfig::default())
}

#[test]
fn refuses_what_it_does_not_know() {
    let not_espo = open_tampered(|c| c.override_read(u64::from(ident::DEVICE_ID.addr()), 0x1234));
    assert!(matches!(
        not_espo,
        Err(CardError::NotEspo { device_id: 0x1234 })
    ));
    // CTRL block reporting major version 2.
    let v2 = open_tampered(|c| c.override_read(u64::from(ctrl::BASE) + 4, 0x0002_0000));
    assert!(
        matches!(v2, Err(CardError::UnknownVersion { name: "CTRL", .. })),
        "{v2:?}"
    );
    // A minor version only adds registers: accepted.
    let minor = open_tampered(|c| c.override_read(u64::from(ctrl::BASE) + 4, 0x0001_0007));
    assert!(minor.is_ok());
    // An unknown block type in the chain.
    let unknown = open_tampered(|c| c.override_read(u64::from(irq::BASE), 0xBAD0_B10C));
    assert!(matches!(
        unknown,
        Err(CardError::UnknownBlock {
            offset: 0x300,
            block_type: 0xBAD0_B10C
        })
    ));
    // A NEXT pointer that loops back.
    let looped = open_tampered(|c| c.override_read(u64::from(ctrl::BASE) + 8, 0x100));
    assert!(matches!(looped, Err(CardError::BlockChain(_))));
    // A card claiming an absurd SA table is not trusted with allocation sizes.
    let huge = open_tampered(|c| c.override_read(u64::from(cap::SA_TABLE_SIZE.addr()), u32::MAX));
    assert!(matches!(huge, Err(CardError::Unsupported(_))));
}

#[test]
fn refuses_configurations_the_card_cannot_take() {
    let dev = || Arc::new(ModelDevice::with_params(ModelParams::zero_latency()));
    let too_many = CardConfig {
        queue_pairs: 5,
        ..CardConfig::default()
    };
    assert!(matches!(
        Card::open(dev(), too_many),
        Err(CardError::Unsupported(_))
    ));
    let ring = CardConfig {
        ring_log2: 16,
        ..CardConfig::default()
    };
    assert!(matches!(
        Card::open(dev(), ring),
        Err(CardError::Unsupported(_))
    ));
    let ah = CardConfig {
        features: Some(1 << 16),
        ..CardConfig::default()
    };
    assert!(matches!(
        Card::open(dev(), ah),
        Err(CardError::Unsupported(_))
    ));
}

#[test]
fn a_card_that_never_leaves_reset_times_out_on_the_device_clock() {
    let r = open_tampered(|c| c.override_read(u64::from(ctrl::STATUS.addr()), 0));
    assert!(matches!(r, Err(CardError::ResetTimeout { .. })), "{r:?}");
}

#[test]
fn several_queue_pairs_with_interrupts_unmask_their_vectors() {
    let config = CardConfig {
        queue_pairs: 3,
        irq: espo_driver::IrqMode::Interrupt {
            coalesce_packets: 4,
            coalesce_cycles: 100,
        },
        ..small_rings()
    };
    let (card, model) = card_with(
        ModelOptions::with_params(ModelParams::zero_latency()),
        config,
    );
    assert_eq!(card.queue_pairs(), 3);
    model.with(|m| {
        assert_eq!(m.bar0_read32(irq::INT_MASK.addr()), 0b10000);
        assert_eq!(m.bar0_read32(irq::COAL_PACKETS.addr()), 4);
        assert_eq!(m.bar0_read32(irq::COAL_CYCLES.addr()), 100);
    });
    for q in 0..3 {
        assert_eq!(card.tx_free(q).unwrap(), 16);
    }
    assert!(matches!(
        card.tx_free(3),
        Err(CardError::NoSuchQueue {
            queue: 3,
            queues: 3
        })
    ));
}
