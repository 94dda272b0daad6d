//! Wire-level rules checked on captured frames: the IPv6 UDP checksum, padding after the
//! inner packet left out on encapsulation, ECN on decapsulation (RFC 6040), ESN exhaustion
//! at 2^64 - 1, and the event ring overflowing.

mod common;
use common::*;
use espo_fpga::regs::{ctrl, event};
use espo_fpga::{Counter, DfMode, EventCode, Status};
use espo_model::{MemLink, ModelParams};

fn card() -> (Host, MemLink) {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(Box::new(l));
    h.bring_up(1, 6);
    (h, tap)
}

fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

#[test]
fn udp_over_ipv6_carries_a_valid_checksum() {
    let (mut h, tap) = card();
    let mut sa = gcm_sa(true, 0x600, [6; 16], [0; 4]);
    set_outer(&mut sa, true, true);
    assert_eq!(h.sa_write(0, &sa, None), Status::Ok);
    let f = ipv4_frame(333, 0, 0, 9);
    h.post_tx(0, &[(&f, Some(0))]);
    h.model.run_until_idle();
    let wire = tap.drain().remove(0).data;
    let ip = &wire[14..];
    assert_eq!((ip[0] >> 4, ip[6], ip[7]), (6, 17, 64));
    let udp = &ip[40..];
    assert_ne!(&udp[6..8], &[0, 0]);
    let mut acc = sum16(&ip[8..40]) + udp.len() as u32 + 17 + sum16(udp);
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    assert_eq!(acc, 0xFFFF, "pseudo-header checksum verifies");
}

#[test]
fn outer_ce_marks_the_inner_packet_or_drops_not_ect() {
    let (mut a, a_tap) = card();
    let (mut b, b_tap) = card();
    let sa = gcm_sa(true, 0x700, [7; 16], [0; 4]);
    assert_eq!(a.sa_write(0, &sa, None), Status::Ok);
    let mut inbound = sa.clone();
    inbound.outbound = false;
    assert_eq!(b.sa_write(0, &inbound, None), Status::Ok);
    let ect0 = ipv4_frame(100, 0x2a, 1, 0); // DSCP 10, ECT(0)
    let not_ect = ipv4_frame(100, 0x28, 2, 0); // DSCP 10, Not-ECT
    a.post_tx(0, &[(&ect0, Some(0)), (&not_ect, Some(0))]);
    a.model.run_until_idle();
    for (mut fr, inner_tos) in a_tap.drain().into_iter().map(|f| f.data).zip([0x2a, 0x28]) {
        assert_eq!(
            fr[15], inner_tos,
            "outer TOS copied from inner on encapsulation"
        );
        fr[15] |= 3; // a router marks CE on the outer header
        fr[24..26].copy_from_slice(&[0, 0]);
        let mut acc = sum16(&fr[14..34]);
        while acc > 0xFFFF {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
        fr[24..26].copy_from_slice(&(!(acc as u16)).to_be_bytes());
        b_tap.send_bytes(&fr);
    }
    b.model.run_until_idle();
    let rx = b.rx_completions(0);
    assert_eq!(rx[0].0.status, Status::Ok);
    let inner = &rx[0].1[14..];
    assert_eq!(
        inner[1], 0x2b,
        "CE over ECT(0): inner becomes CE, DSCP kept"
    );
    let mut acc = sum16(&inner[..20]);
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    assert_eq!(acc, 0xFFFF, "inner header checksum updated");
    assert_eq!(rx[1].0.status, Status::EcnDrop);
    assert_eq!(b.counter(Counter::RxEcnDrop), 1);
}

#[test]
fn esn_sequence_numbers_stop_at_two_to_the_64_minus_one() {
    let (mut h, tap) = card();
    let mut sa = gcm_sa(true, 0x800, [8; 16], [0; 4]);
    sa.esn = true;
    sa.seq = u64::MAX - 1;
    assert_eq!(h.sa_write(0, &sa, None), Status::Ok);
    let f = ipv4_frame(64, 0, 0, 0);
    h.post_tx(0, &[(&f, Some(0)), (&f, Some(0))]);
    h.model.run_until_idle();
    let got: Vec<(Status, u64)> = h
        .tx_completions(0)
        .iter()
        .map(|c| (c.status, c.seq))
        .collect();
    assert_eq!(got, vec![(Status::Ok, u64::MAX), (Status::SeqExhausted, 0)]);
    let wire = tap.drain().remove(0).data;
    assert_eq!(
        &wire[14 + 20 + 4..14 + 20 + 8],
        &[0xFF; 4],
        "low half on the wire"
    );
    assert_eq!(
        &wire[14 + 20 + 8..14 + 20 + 16],
        &[0xFF; 8],
        "IV = full 64-bit sequence number"
    );
    assert_eq!(h.events()[0].code, EventCode::SeqExhausted);
}

#[test]
fn a_full_event_ring_loses_events_and_says_so() {
    let (mut h, _tap) = card();
    let f = ipv4_frame(64, 0, 0, 0);
    // 130 SAs with soft and hard packet lifetimes of 1: two events each, 260 > 256 entries.
    for i in 0..130u32 {
        let mut sa = gcm_sa(true, 0x1000 + i, [1; 16], [0; 4]);
        sa.soft_packets = 1;
        sa.hard_packets = 1;
        assert_eq!(h.sa_write(i, &sa, None), Status::Ok);
        h.post_tx(0, &[(&f, Some(i))]);
        h.model.run_until_idle();
        h.tx_completions(0);
    }
    assert_eq!(h.model.bar0_read32(event::EQ_DROPPED.addr()), 4);
    assert!(ctrl::err::EVENT_OVERFLOW.is_set(h.rd(&ctrl::ERR_CAUSE).into()));
    assert_eq!(h.events().len(), 256);
}

#[test]
fn outer_ipv4_df_follows_the_sa_mode_and_the_id_is_the_sequence_number() {
    let (mut h, tap) = card();
    let with_df = ipv4_frame(100, 0, 0, 1);
    let mut without_df = with_df.clone();
    without_df[14 + 6] = 0;
    without_df[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
    let mut sum = sum16(&without_df[14..34]);
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    without_df[14 + 10..14 + 12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let v6 = ipv6_frame(100, 0, 1);
    // (mode, DF for an inner IPv4 with DF, without DF, inner IPv6)
    let cases = [
        (DfMode::Copy, [true, false, true]),
        (DfMode::Set, [true, true, true]),
        (DfMode::Clear, [false, false, false]),
    ];
    for (i, (mode, want)) in cases.into_iter().enumerate() {
        let mut sa = gcm_sa(true, 0x900 + i as u32, [9; 16], [0; 4]);
        sa.df_mode = mode;
        sa.seq = 0x1_2345_FFFE;
        sa.esn = true;
        assert_eq!(h.sa_write(i as u32, &sa, None), Status::Ok);
        let sa_index = Some(i as u32);
        h.post_tx(
            0,
            &[
                (&with_df, sa_index),
                (&without_df, sa_index),
                (&v6, sa_index),
            ],
        );
        h.model.run_until_idle();
        assert!(h.tx_completions(0).iter().all(|c| c.status == Status::Ok));
        let frames = tap.drain();
        for ((f, want_df), seq) in frames.iter().zip(want).zip(0x1_2345_FFFFu64..) {
            let ip = &f.data[14..];
            assert_eq!(ip[6] & 0x40 != 0, want_df, "{mode:?}");
            assert_eq!(
                &ip[4..6],
                &(seq as u16).to_be_bytes(),
                "ID = low 16 bits of {seq:#x}"
            );
            assert_eq!(ip[6] & !0x40, 0, "no MF, fragment offset 0");
        }
    }
    let mut bad = gcm_sa(true, 0x9FF, [9; 16], [0; 4]);
    bad.df_mode = DfMode::Unknown(3);
    assert_eq!(h.sa_write(9, &bad, None), Status::InvalidField);
}

#[test]
fn esp_payload_is_padded_to_sixteen_bytes() {
    let (mut h, tap) = card();
    let sa = gcm_sa(true, 0xA00, [10; 16], [0; 4]);
    assert_eq!(h.sa_write(0, &sa, None), Status::Ok);
    for len in 28..=60usize {
        h.post_tx(0, &[(&ipv4_frame(len, 0, 0, 0), Some(0))]);
    }
    h.model.run_until_idle();
    for (f, len) in tap.drain().iter().zip(28..) {
        // Ethernet, IPv4, ESP header, IV, then ciphertext and the 16-byte ICV.
        let ct = f.data.len() - 14 - 20 - 16 - 16;
        assert_eq!(ct % 16, 0, "inner {len}");
        assert!(
            ct >= len + 2 && ct < len + 2 + 16,
            "inner {len}: minimal padding"
        );
    }
}

/// Bytes after the inner packet in a TX frame (Ethernet padding of a short packet) are not
/// the packet's: the card encapsulates the inner packet alone, for every outer header the
/// card writes in front of it (IPv4 or IPv6, with or without UDP) — the same frame on the
/// wire as for the frame without them.
#[test]
fn bytes_after_the_inner_packet_are_left_out() {
    for (outer_ipv6, udp_encap) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut sa = gcm_sa(true, 0x900, [9; 16], [1, 2, 3, 4]);
        set_outer(&mut sa, outer_ipv6, udp_encap);
        let inner = ipv4_frame(30, 0, 7, 3);
        let mut padded = inner.clone();
        padded.extend_from_slice(&[0xab; 30]);
        let mut wire = Vec::new();
        for frame in [&inner, &padded] {
            let (mut h, tap) = card();
            assert_eq!(h.sa_write(0, &sa, None), Status::Ok);
            h.post_tx(0, &[(frame, Some(0))]);
            h.model.run_until_idle();
            assert_eq!(h.tx_completions(0)[0].status, Status::Ok);
            wire.push(tap.drain().remove(0).data);
        }
        assert_eq!(
            wire[0], wire[1],
            "outer IPv6 {outer_ipv6}, UDP {udp_encap}: the padding is not encapsulated"
        );
        assert!(!wire[1].windows(4).any(|w| w == [0xab; 4]));
    }
}
