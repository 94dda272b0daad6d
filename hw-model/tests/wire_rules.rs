//! Wire-level rules checked on captured frames: the IPv6 UDP checksum, ECN on
//! decapsulation (RFC 6040), ESN exhaustion at 2^64 - 1, and the event ring overflowing.

mod common;
use common::*;
use espo_fpga::regs::{ctrl, event};
use espo_fpga::{Counter, EventCode, Status};
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
    sa.outer_ipv6 = true;
    sa.udp_encap = true;
    sa.udp_src_port = 4500;
    sa.udp_dst_port = 4500;
    sa.src_addr = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    sa.dst_addr = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
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
