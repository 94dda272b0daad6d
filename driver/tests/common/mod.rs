//! Shared by the driver's integration tests: cards on the model, test traffic, and a bus
//! wrapper that lets a test tamper with what the driver and the card say to each other.
#![allow(dead_code, reason = "each test binary uses a different part")]

pub mod bus;

use std::sync::Arc;
use std::time::Duration;

use espo_driver::card::{Card, CardConfig, RxPacket, TxAction, TxDone, TxRequest};
use espo_driver::model::{ModelDevice, ModelHandle, ModelOptions};
use espo_fpga::{AlgId, SaEntry};
use espo_model::{MemLink, ModelParams};

/// An Ethernet frame carrying an IPv4/UDP packet of `ip_len` bytes (at least 28), its
/// payload derived from `id` so that every frame of a test is distinct.
pub fn frame(ip_len: usize, id: u16) -> Vec<u8> {
    assert!(ip_len >= 28);
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1,
    ];
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp_len = (ip_len - 20) as u16;
    ip.extend_from_slice(&[0x30, 0x39, 0x30, 0x3a]);
    ip.extend_from_slice(&udp_len.to_be_bytes());
    ip.extend_from_slice(&[0, 0]);
    ip.extend((0..ip_len - 28).map(|i| (i as u8) ^ (id as u8)));
    f.extend_from_slice(&ip);
    f
}

/// An AES-GCM-128 SA of the tunnel 192.0.2.1 -> 192.0.2.2.
pub fn gcm_sa(outbound: bool, spi: u32) -> SaEntry {
    let mut e = SaEntry {
        outbound,
        spi,
        alg: Some(AlgId::AesGcm128),
        replay_window: if outbound { 0 } else { 64 },
        salt: [9, 8, 7, 6],
        ..SaEntry::default()
    };
    e.key[..16].copy_from_slice(&[0x42; 16]);
    e.src_addr[..4].copy_from_slice(&[192, 0, 2, 1]);
    e.dst_addr[..4].copy_from_slice(&[192, 0, 2, 2]);
    e
}

/// A card on a fresh model; the model's handle.
pub fn card_with(options: ModelOptions, config: CardConfig) -> (Card, ModelHandle) {
    let dev = ModelDevice::new(options);
    let handle = dev.handle();
    let card = Card::open(Arc::new(dev), config).expect("card comes up");
    (card, handle)
}

/// A card on a zero-latency model with the default configuration.
pub fn card() -> (Card, ModelHandle) {
    card_with(
        ModelOptions::with_params(ModelParams::zero_latency()),
        CardConfig::default(),
    )
}

/// A small-ring configuration, so that tests wrap and fill rings quickly.
pub fn small_rings() -> CardConfig {
    CardConfig {
        ring_log2: 4,
        ..CardConfig::default()
    }
}

/// Two cards whose ports are cabled together.
pub fn back_to_back(
    params: ModelParams,
    config: CardConfig,
) -> (Card, ModelHandle, Card, ModelHandle) {
    let (a_end, b_end) = MemLink::pair();
    let (a, ha) = card_with(ModelOptions::with_params(params.clone()), config.clone());
    let (b, hb) = card_with(ModelOptions::with_params(params), config);
    ha.attach_link(Box::new(a_end));
    hb.attach_link(Box::new(b_end));
    (a, ha, b, hb)
}

/// Requests for `frames`, tagged from `first_tag` on.
pub fn requests(frames: &[Vec<u8>], first_tag: u64, action: TxAction) -> Vec<TxRequest<'_>> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| TxRequest {
            tag: first_tag + i as u64,
            frame: f,
            action,
        })
        .collect()
}

/// Submits everything (retrying on backpressure, taking completions meanwhile) and waits
/// for every completion; returns them in completion order.
pub fn send_all(card: &mut Card, queue: u16, reqs: &[TxRequest<'_>]) -> Vec<TxDone> {
    let mut done = Vec::new();
    let mut at = 0;
    let mut spins = 0u32;
    while at < reqs.len() || card.tx_outstanding(queue).unwrap() > 0 {
        if at < reqs.len() {
            at += card.tx_batch(queue, &reqs[at..]).expect("tx_batch");
        }
        card.tx_completions(queue, &mut done)
            .expect("tx_completions");
        spins += 1;
        assert!(spins < 1_000_000, "TX made no progress");
    }
    done
}

/// Receives until `n` frames arrived or the device clock moved on by `timeout`.
pub fn receive(card: &mut Card, queue: u16, n: usize, timeout: Duration) -> Vec<RxPacket> {
    let mut got = Vec::new();
    let mut batch = vec![RxPacket::with_capacity(2048); 32];
    let start = card_now(card);
    while got.len() < n && card_now(card) - start < timeout {
        let k = card.rx_batch(queue, &mut batch).expect("rx_batch");
        got.extend(batch.iter().take(k).cloned());
    }
    got
}

/// The card's device clock, through a cheap public path.
pub fn card_now(card: &Card) -> Duration {
    card.now()
}
