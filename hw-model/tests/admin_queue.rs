//! Admin commands (datasheet §8): SA write, read-back, invalidate with export, import of
//! state, and every refusal.

mod common;
use common::*;
use espo_fpga::{AdminCommand, AdminOpcode, AlgId, SaState, Status};
use espo_model::ModelParams;

fn host() -> Host {
    let mut h = Host::new(ModelParams::default());
    h.bring_up(1, 4);
    h
}

#[test]
fn write_read_back_invalidate() {
    let mut h = host();
    let mut sa = gcm_sa(true, 0x2001, [7; 16], [1, 2, 3, 4]);
    sa.seq = 41;
    assert_eq!(h.sa_write(4095, &sa, None), Status::Ok);
    let (st, state) = h.sa_read(4095);
    assert_eq!(st, Status::Ok);
    assert!(state.valid);
    assert_eq!((state.seq, state.packets, state.bytes), (41, 0, 0));
    let (st, exported) = h.sa_invalidate(4095);
    assert_eq!((st, exported.valid, exported.seq), (Status::Ok, true, 41));
    let (_, after) = h.sa_read(4095);
    assert!(!after.valid, "invalidated");
}

#[test]
fn refusals_carry_their_status() {
    let mut h = host();
    let sa = gcm_sa(false, 0x10, [1; 16], [0; 4]);
    assert_eq!(h.sa_write(4096, &sa, None), Status::InvalidSaIndex);
    let mut cbc = sa.clone();
    cbc.alg = Some(AlgId::AesCbc128);
    assert_eq!(
        h.sa_write(1, &cbc, None),
        Status::AlgUnsupported,
        "CBC+HMAC is refused per SA"
    );
    let mut chacha = sa.clone();
    chacha.alg = Some(AlgId::Chacha20Poly1305);
    assert_eq!(h.sa_write(1, &chacha, None), Status::AlgUnsupported);
    let mut big = sa.clone();
    big.replay_window = 4097;
    assert_eq!(h.sa_write(1, &big, None), Status::InvalidField);
    let mut zero = sa.clone();
    zero.spi = 0;
    assert_eq!(h.sa_write(1, &zero, None), Status::InvalidField);
    assert_eq!(h.sa_write(1, &sa, None), Status::Ok);
    assert_eq!(
        h.sa_write(2, &sa, None),
        Status::InvalidField,
        "same SPI and destination at another index"
    );
    let short = AdminCommand {
        opcode: AdminOpcode::SaWrite,
        state: false,
        cid: 0,
        sa_index: 3,
        data_addr: IOVA_BASE,
        data_len: 100,
    };
    assert_eq!(h.admin(short).status, Status::DataTooShort);
    let unmapped = AdminCommand {
        data_addr: 0x10,
        data_len: 128,
        ..short
    };
    assert_eq!(h.admin(unmapped).status, Status::DataDmaFault);
    let unknown = AdminCommand {
        opcode: AdminOpcode::Unknown(99),
        ..short
    };
    assert_eq!(h.admin(unknown).status, Status::InvalidOpcode);
    let nop = AdminCommand {
        opcode: AdminOpcode::Nop,
        ..short
    };
    assert_eq!(h.admin(nop).status, Status::Ok);
}

#[test]
fn features_must_be_negotiated() {
    let mut h = Host::new(ModelParams::default());
    h.bring_up(0, 4);
    h.wr(&espo_fpga::regs::ctrl::CONTROL, 0);
    h.wr(
        &espo_fpga::regs::ctrl::DRIVER_FEATURES,
        espo_fpga::regs::cap::features::OUTER_IPV4.mask() as u32,
    );
    h.wr(&espo_fpga::regs::ctrl::CONTROL, 1);
    let mut sa = gcm_sa(true, 0x10, [1; 16], [0; 4]);
    sa.replay_window = 0;
    assert_eq!(h.sa_write(0, &sa, None), Status::Ok);
    sa.esn = true;
    assert_eq!(h.sa_write(0, &sa, None), Status::FeatureNotEnabled);
    sa.esn = false;
    sa.udp_encap = true;
    assert_eq!(h.sa_write(0, &sa, None), Status::FeatureNotEnabled);
}

#[test]
fn imported_state_continues_sequence_and_replay_window() {
    let mut h = host();
    let mut inbound = gcm_sa(false, 0x33, [9; 16], [0; 4]);
    inbound.replay_window = 128;
    let mut state = SaState {
        seq: 1000,
        window: 128,
        packets: 5,
        bytes: 500,
        ..SaState::default()
    };
    state.bitmap[0] = 0b0000_0101; // 1000 and 998 seen
    assert_eq!(h.sa_write(7, &inbound, Some(&state)), Status::Ok);
    let (_, back) = h.sa_read(7);
    assert_eq!(
        (back.seq, back.packets, back.bytes, back.window),
        (1000, 5, 500, 128)
    );
    assert!(back.received(0) && !back.received(1) && back.received(2));
    let out = gcm_sa(true, 0x34, [9; 16], [0; 4]);
    let st = SaState {
        seq: 77,
        ..SaState::default()
    };
    assert_eq!(h.sa_write(8, &out, Some(&st)), Status::Ok);
    assert_eq!(
        h.sa_read(8).1.seq,
        77,
        "outbound continues from the imported counter"
    );
}

#[test]
fn sa_entry_key_is_not_left_in_the_data_buffer_by_the_host_helper() {
    let mut h = host();
    let sa = gcm_sa(true, 0x44, [0xA5; 16], [0; 4]);
    assert_eq!(h.sa_write(0, &sa, None), Status::Ok);
    let data = h.read(IOVA_BASE, 1 << 20);
    assert!(!data.windows(16).any(|w| w == [0xA5; 16]));
}
