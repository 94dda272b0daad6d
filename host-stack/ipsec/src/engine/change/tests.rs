//! The live database: each operation alone, and random sequences of them interleaved with
//! packets through a sender and a receiver.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::counters::DropReason;
use crate::crypto::{EncryptionAlgorithm, SecretKey};
use crate::engine::{Decapsulated, Encapsulated};
use crate::sa::SaParams;
use crate::selector::{Cidr, PortRange, ProtocolSelector};
use crate::spec::{DfMode, Lifetime, SaSpec};

const A: [u8; 4] = [192, 0, 2, 1];
const B: [u8; 4] = [192, 0, 2, 2];

/// An AES-GCM-128 tunnel SA from A to B, its key derived from the SPI.
pub(crate) fn spec(spi: u32) -> SaSpec {
    let key: Vec<u8> = (0..20).map(|i| (spi as u8).wrapping_mul(31) ^ i).collect();
    SaSpec {
        spi,
        dir: None,
        protocol: SaProtocol::Esp,
        mode: SaMode::Tunnel,
        src: IpAddr::from(A),
        dst: IpAddr::from(B),
        encryption: Some(EncryptionAlgorithm::AesGcm128),
        key: Some(SecretKey::new(key)),
        integrity: None,
        integrity_key: None,
        esn: false,
        seq: 0,
        replay_window: 64,
        udp_encap: None,
        ttl: 64,
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    }
}

fn out_sa(spi: u32) -> OutboundSa {
    OutboundSa::new(SaParams::from_spec(&spec(spi)).unwrap(), 0)
}

fn in_sa(spi: u32) -> InboundSa {
    InboundSa::new(SaParams::from_spec(&spec(spi)).unwrap(), 64, 0).unwrap()
}

fn policy(dir: Direction, src: &str, dst: &str, action: PolicyAction, sas: &[u32]) -> PolicySpec {
    PolicySpec {
        dir,
        src: src.parse::<Cidr>().unwrap(),
        dst: dst.parse::<Cidr>().unwrap(),
        protocol: ProtocolSelector::Any,
        src_port: PortRange::ANY,
        dst_port: PortRange::ANY,
        action,
        sa: sas.to_vec(),
    }
}

/// An IPv4/UDP packet from 10.1.0.1 to `dst`, its payload `tag`.
pub(crate) fn inner(dst: [u8; 4], tag: u32) -> Vec<u8> {
    let mut p = vec![0u8; 28 + 4];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&32u16.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 0, 1]);
    p[16..20].copy_from_slice(&dst);
    let c = crate::wire::checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&(!c).to_be_bytes());
    p[20..22].copy_from_slice(&1000u16.to_be_bytes());
    p[22..24].copy_from_slice(&2000u16.to_be_bytes());
    p[24..26].copy_from_slice(&12u16.to_be_bytes());
    p[28..32].copy_from_slice(&tag.to_be_bytes());
    p
}

/// A sender with SA `spi` protecting 10.1/16 -> 10.2/16 (policy 0), and a receiver with
/// the same SA inbound and the matching inbound policy (policy 0).
fn pair(spi: u32) -> (Outbound, Inbound) {
    let mut tx = Outbound::default();
    tx.add_sa(out_sa(spi)).unwrap();
    tx.add_policy(
        &policy(
            Direction::Out,
            "10.1.0.0/16",
            "10.2.0.0/16",
            PolicyAction::Protect,
            &[spi],
        ),
        PolicyId(0),
        None,
    )
    .unwrap();
    let mut rx = Inbound::default();
    rx.add_sa(in_sa(spi)).unwrap();
    rx.add_policy(
        &policy(
            Direction::In,
            "10.1.0.0/16",
            "10.2.0.0/16",
            PolicyAction::Protect,
            &[spi],
        ),
        PolicyId(0),
        None,
    )
    .unwrap();
    (tx, rx)
}

/// Sends one packet with `tag` through `tx`: the SPI it went out on and the wire bytes.
fn send(tx: &mut Outbound, tag: u32) -> Result<(u32, Vec<u8>), DropReason> {
    send_seq(tx, tag).map(|(spi, _, wire)| (spi, wire))
}

/// As [`send`], with the sequence number.
fn send_seq(tx: &mut Outbound, tag: u32) -> Result<(u32, u64, Vec<u8>), DropReason> {
    let mut out = vec![0u8; 256];
    match tx.encapsulate(&inner([10, 2, 0, 1], tag), &mut out)? {
        Encapsulated::Protected { len, spi, seq } => {
            out.truncate(len);
            Ok((spi, seq, out))
        }
        Encapsulated::Bypass => panic!("protected traffic bypassed"),
    }
}

/// Delivers a wire packet to `rx`: the SPI that accepted it and the tag inside.
fn receive(rx: &mut Inbound, mut wire: Vec<u8>) -> Result<(u32, u32), DropReason> {
    match rx.decapsulate(&mut wire)? {
        Decapsulated::Inner { range, spi, .. } => {
            let p = &wire[range];
            Ok((spi, u32::from_be_bytes(p[28..32].try_into().unwrap())))
        }
        other => panic!("not an inner packet: {other:?}"),
    }
}

#[test]
fn an_outbound_replace_switches_every_policy_between_two_packets() {
    let (mut tx, mut rx) = pair(0x100);
    rx.add_sa(in_sa(0x101)).unwrap();
    let before = send(&mut tx, 1).unwrap();
    assert_eq!(before.0, 0x100);
    let (_, old) = tx.replace_sa(0x100, out_sa(0x101)).unwrap();
    assert_eq!(
        (old.params.spi, old.seq(), old.counters.packets),
        (0x100, 1, 1)
    );
    assert_eq!(tx.sa_index(0x100), None, "the old SA is gone");
    let after = send(&mut tx, 2).unwrap();
    assert_eq!(after.0, 0x101, "the next packet goes out on the new SA");
    assert!(matches!(
        tx.spd().policies()[0].action,
        Action::Protect(b) if tx.sas()[b.inner].params.spi == 0x101
    ));
    assert_eq!(receive(&mut rx, before.1), Ok((0x100, 1)));
    assert_eq!(
        receive(&mut rx, after.1),
        Err(DropReason::PolicyMismatch),
        "the receiver's policy still names only the old SA"
    );
}

/// Packets of one flow, one after the other, each with a change to the policies before
/// it: every packet is decided by the policies as they are when it is sent (the last
/// decision is reused only while the SPD has not changed).
#[test]
fn each_packet_of_a_flow_is_decided_by_the_policies_as_they_are_then() {
    let (mut tx, _) = pair(0x100);
    tx.add_sa(out_sa(0x101)).unwrap();
    let to_b =
        |action, sas: &[u32]| policy(Direction::Out, "10.1.0.0/16", "10.2.0.0/16", action, sas);
    assert_eq!(send(&mut tx, 1).map(|s| s.0), Ok(0x100));
    assert_eq!(
        send(&mut tx, 2).map(|s| s.0),
        Ok(0x100),
        "the same flow again"
    );
    tx.set_bundle(PolicyId(0), &[0x101]).unwrap();
    assert_eq!(
        send(&mut tx, 3).map(|s| s.0),
        Ok(0x101),
        "after its bundle changed"
    );
    tx.remove_policy(PolicyId(0)).unwrap();
    assert_eq!(
        send(&mut tx, 4),
        Err(DropReason::NoPolicy),
        "after its policy went"
    );
    tx.add_policy(&to_b(PolicyAction::Discard, &[]), PolicyId(1), None)
        .unwrap();
    assert_eq!(send(&mut tx, 5), Err(DropReason::PolicyDiscard));
    tx.add_policy(&to_b(PolicyAction::Protect, &[0x100]), PolicyId(2), Some(0))
        .unwrap();
    assert_eq!(
        send(&mut tx, 6).map(|s| s.0),
        Ok(0x100),
        "a policy put before it"
    );
    tx.remove_policy(PolicyId(2)).unwrap();
    assert_eq!(send(&mut tx, 7), Err(DropReason::PolicyDiscard));
    // Another flow between two of this one's.
    tx.remove_policy(PolicyId(1)).unwrap();
    tx.add_policy(&to_b(PolicyAction::Protect, &[0x101]), PolicyId(3), None)
        .unwrap();
    let mut out = vec![0u8; 256];
    assert_eq!(
        tx.encapsulate(&inner([10, 3, 0, 1], 8), &mut out),
        Err(DropReason::NoPolicy)
    );
    assert_eq!(send(&mut tx, 9).map(|s| s.0), Ok(0x101));
}

#[test]
fn each_inbound_packet_of_a_flow_is_checked_against_the_policies_as_they_are_then() {
    let (mut tx, mut rx) = pair(0x100);
    tx.add_sa(out_sa(0x101)).unwrap();
    rx.add_sa(in_sa(0x101)).unwrap();
    let from_a =
        |action, sas: &[u32]| policy(Direction::In, "10.1.0.0/16", "10.2.0.0/16", action, sas);
    let wire: Vec<_> = (1..=8).map(|t| send(&mut tx, t).unwrap().1).collect();
    let mut wire = wire.into_iter();
    let mut next = |rx: &mut Inbound| receive(rx, wire.next().unwrap());
    assert_eq!(next(&mut rx), Ok((0x100, 1)));
    assert_eq!(next(&mut rx), Ok((0x100, 2)), "the same flow again");
    // The policy now wants the flow through another SA: the same packets are refused.
    rx.set_bundle(PolicyId(0), &[0x101]).unwrap();
    assert_eq!(
        next(&mut rx),
        Err(DropReason::PolicyMismatch),
        "after its bundle changed"
    );
    rx.set_bundle(PolicyId(0), &[0x100]).unwrap();
    assert_eq!(next(&mut rx), Ok((0x100, 4)), "and back");
    rx.remove_policy(PolicyId(0)).unwrap();
    assert_eq!(
        next(&mut rx),
        Err(DropReason::PolicyMismatch),
        "after its policy went"
    );
    rx.add_policy(&from_a(PolicyAction::Bypass, &[]), PolicyId(1), None)
        .unwrap();
    assert_eq!(
        next(&mut rx),
        Err(DropReason::PolicyMismatch),
        "a bypass policy"
    );
    rx.add_policy(
        &from_a(PolicyAction::Protect, &[0x100]),
        PolicyId(2),
        Some(0),
    )
    .unwrap();
    assert_eq!(next(&mut rx), Ok((0x100, 7)), "a policy put before it");
    // Through another SA (the same flow, the same policies): refused.
    let other = {
        let mut out = vec![0u8; 256];
        tx.set_bundle(PolicyId(0), &[0x101]).unwrap();
        match tx.encapsulate(&inner([10, 2, 0, 1], 9), &mut out).unwrap() {
            Encapsulated::Protected { len, .. } => out[..len].to_vec(),
            Encapsulated::Bypass => panic!("bypassed"),
        }
    };
    assert_eq!(
        receive(&mut rx, other),
        Err(DropReason::PolicyMismatch),
        "another SA"
    );
    assert_eq!(next(&mut rx), Ok((0x100, 8)));
}

#[test]
fn an_inbound_replace_accepts_both_until_the_old_sa_goes() {
    let (mut tx, mut rx) = pair(0x100);
    let old_packets: Vec<_> = (0..3).map(|t| send(&mut tx, t).unwrap().1).collect();
    let new_index = rx.replace_sa(0x100, None, in_sa(0x101)).unwrap();
    tx.replace_sa(0x100, out_sa(0x101)).unwrap();
    let new_packet = send(&mut tx, 10).unwrap().1;
    assert_eq!(
        receive(&mut rx, new_packet),
        Ok((0x101, 10)),
        "the new SA accepts at once"
    );
    assert_eq!(
        receive(&mut rx, old_packets[0].clone()),
        Ok((0x100, 0)),
        "so does the old one"
    );
    let gone = rx.remove_sa(0x100, None).unwrap();
    assert_eq!(gone.counters.packets, 1);
    assert_eq!(
        receive(&mut rx, old_packets[1].clone()),
        Err(DropReason::UnknownSpi),
        "no verdict from a removed SA"
    );
    assert!(
        matches!(rx.spd().policies()[0].action, Action::Protect(b) if b.inner == new_index),
        "the new SA took the old one's place in the policy"
    );
    assert_eq!(rx.sas()[new_index].stands_for, None);
    assert_eq!(
        receive(&mut rx, send(&mut tx, 11).unwrap().1),
        Ok((0x101, 11))
    );
    assert_eq!(rx.sas()[new_index].counters.packets, 2);
}

#[test]
fn an_sa_a_policy_names_cannot_be_removed_and_nothing_changes() {
    let (mut tx, mut rx) = pair(0x100);
    assert_eq!(
        tx.remove_sa(0x100).unwrap_err(),
        ChangeError::SaInUse {
            spi: 0x100,
            policy: PolicyId(0)
        }
    );
    assert!(matches!(
        rx.remove_sa(0x100, None),
        Err(ChangeError::SaInUse { .. })
    ));
    assert_eq!(
        receive(&mut rx, send(&mut tx, 1).unwrap().1),
        Ok((0x100, 1))
    );
    assert!(matches!(
        tx.remove_sa(0x999),
        Err(ChangeError::UnknownSa { .. })
    ));
    assert!(matches!(
        tx.add_sa(out_sa(0x100)),
        Err(ChangeError::DuplicateSa { .. })
    ));
    assert!(matches!(
        rx.add_sa(in_sa(0x100)),
        Err(ChangeError::DuplicateSa { .. })
    ));
    // Once the policy is gone the SA can go, and its packets find no SA.
    let wire = send(&mut tx, 2).unwrap().1;
    rx.remove_policy(PolicyId(0)).unwrap();
    rx.remove_sa(0x100, None).unwrap();
    assert_eq!(receive(&mut rx, wire), Err(DropReason::UnknownSpi));
    tx.remove_policy(PolicyId(0)).unwrap();
    tx.remove_sa(0x100).unwrap();
    assert_eq!(send(&mut tx, 3).unwrap_err(), DropReason::NoPolicy);
}

#[test]
fn policies_go_where_they_are_put_and_bundles_change() {
    let (mut tx, _) = pair(0x100);
    tx.add_sa(out_sa(0x200)).unwrap();
    // A discard policy for 10.2.9/24 put first wins over the protect policy.
    tx.add_policy(
        &policy(
            Direction::Out,
            "10.1.0.0/16",
            "10.2.9.0/24",
            PolicyAction::Discard,
            &[],
        ),
        PolicyId(7),
        Some(0),
    )
    .unwrap();
    let mut out = vec![0u8; 256];
    assert_eq!(
        tx.encapsulate(&inner([10, 2, 9, 1], 0), &mut out),
        Err(DropReason::PolicyDiscard)
    );
    assert_eq!(send(&mut tx, 0).unwrap().0, 0x100);
    tx.set_bundle(PolicyId(0), &[0x200]).unwrap();
    assert_eq!(send(&mut tx, 1).unwrap().0, 0x200);
    assert_eq!(
        tx.set_bundle(PolicyId(7), &[0x200]),
        Err(ChangeError::NotProtect(PolicyId(7)))
    );
    assert_eq!(
        tx.set_bundle(PolicyId(3), &[0x200]),
        Err(ChangeError::UnknownPolicy(PolicyId(3)))
    );
    assert!(matches!(
        tx.set_bundle(PolicyId(0), &[0x300]),
        Err(ChangeError::UnknownSa { .. })
    ));
    assert_eq!(
        tx.set_bundle(PolicyId(0), &[0x100, 0x200]),
        Err(ChangeError::Bundle)
    );
    assert_eq!(
        tx.add_policy(
            &policy(
                Direction::Out,
                "10.1.0.0/16",
                "10.3.0.0/16",
                PolicyAction::Bypass,
                &[]
            ),
            PolicyId(7),
            None
        ),
        Err(ChangeError::DuplicatePolicy(PolicyId(7)))
    );
    assert!(matches!(
        tx.add_policy(
            &policy(
                Direction::In,
                "10.1.0.0/16",
                "10.3.0.0/16",
                PolicyAction::Bypass,
                &[]
            ),
            PolicyId(8),
            None
        ),
        Err(ChangeError::WrongDirection { .. })
    ));
    tx.remove_policy(PolicyId(7)).unwrap();
    assert_eq!(
        tx.encapsulate(&inner([10, 2, 9, 1], 0), &mut out)
            .map(|_| ()),
        Ok(())
    );
    assert_eq!(
        tx.sas()[tx.sa_index(0x100).unwrap()].counters.packets,
        1,
        "untouched"
    );
}

#[test]
fn a_replacement_of_another_shape_is_refused() {
    let (mut tx, mut rx) = pair(0x100);
    let mut ah = spec(0x101);
    ah.protocol = SaProtocol::Ah;
    ah.encryption = None;
    ah.key = None;
    ah.integrity = Some(crate::crypto::IntegrityAlgorithm::HmacSha256_128);
    ah.integrity_key = Some(SecretKey::new(vec![7; 32]));
    let p = SaParams::from_spec(&ah).unwrap();
    assert_eq!(
        tx.replace_sa(0x100, OutboundSa::new(p, 0)).unwrap_err(),
        ChangeError::ReplacementShape { spi: 0x100 }
    );
    let p = SaParams::from_spec(&ah).unwrap();
    assert!(
        rx.replace_sa(0x100, None, InboundSa::new(p, 64, 0).unwrap())
            .is_err()
    );
    assert_eq!(tx.sas().len(), 1);
    assert_eq!(rx.sas().len(), 1);
}

/// One step of a random run against a running tunnel.
#[derive(Debug, Clone)]
enum Step {
    /// Rekey: the receiver puts the next SA beside the current one, then the sender
    /// switches to it.
    Rekey,
    /// The oldest SA still in its grace period on the receiver goes.
    Retire,
    /// Packets through the tunnel, some held back to arrive later.
    Batch { packets: u8, hold: bool },
    /// Deliver what was held back.
    Late,
    /// An unrelated SA comes or goes on both sides.
    Extra { add: bool },
    /// An unrelated bypass policy comes or goes on the sender, first in the search order.
    Bypass { add: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Rekey),
        2 => Just(Step::Retire),
        4 => (1u8..8, any::<bool>()).prop_map(|(packets, hold)| Step::Batch { packets, hold }),
        1 => Just(Step::Late),
        1 => any::<bool>().prop_map(|add| Step::Extra { add }),
        1 => any::<bool>().prop_map(|add| Step::Bypass { add }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every packet is encapsulated on the SA the database names at that moment and
    /// decapsulated by exactly the SA it was sent on, if that SA is still there — never
    /// by a removed one; untouched SAs keep their counters.
    #[test]
    fn random_changes_between_batches_keep_every_verdict_consistent(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let (mut tx, mut rx) = pair(0x100);
        let mut current = 0x100u32;
        let mut live_in: BTreeSet<u32> = [0x100].into();
        let mut grace: Vec<u32> = Vec::new();
        let mut sent_on: BTreeMap<u32, (u32, u64)> = BTreeMap::new(); // tag -> (SPI, seq)
        let mut highest: BTreeMap<u32, u64> = BTreeMap::new(); // SPI -> highest accepted
        let mut held: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut extra: Option<u32> = None;
        let mut bypass = false;
        let mut tag = 0u32;
        let mut accepted: BTreeSet<u32> = BTreeSet::new();
        let deliver = |rx: &mut Inbound, t: u32, wire: Vec<u8>, live_in: &BTreeSet<u32>,
                       sent_on: &BTreeMap<u32, (u32, u64)>, accepted: &mut BTreeSet<u32>,
                       highest: &mut BTreeMap<u32, u64>| {
            let (spi, seq) = sent_on[&t];
            match receive(rx, wire) {
                Ok((by, got)) => {
                    assert_eq!((by, got), (spi, t), "accepted by the SA it was sent on");
                    assert!(live_in.contains(&spi), "never by a removed SA");
                    assert!(accepted.insert(t), "accepted once");
                    let h = highest.entry(spi).or_default();
                    *h = (*h).max(seq);
                }
                Err(DropReason::UnknownSpi) => {
                    assert!(!live_in.contains(&spi), "a live SA accepts its packets")
                }
                Err(DropReason::Stale) => assert!(
                    highest.get(&spi).is_some_and(|h| h - seq >= 64),
                    "stale only when left of the 64-packet window"
                ),
                Err(other) => panic!("unexpected drop {other} of packet {t} on {spi:#x}"),
            }
        };
        for s in steps {
            match s {
                Step::Rekey => {
                    let next = current + 1;
                    rx.replace_sa(current, None, in_sa(next)).unwrap();
                    live_in.insert(next);
                    grace.push(current);
                    let (_, old) = tx.replace_sa(current, out_sa(next)).unwrap();
                    prop_assert_eq!(old.params.spi, current);
                    current = next;
                }
                Step::Retire => {
                    if !grace.is_empty() {
                        let old = grace.remove(0);
                        rx.remove_sa(old, None).unwrap();
                        live_in.remove(&old);
                    }
                }
                Step::Batch { packets, hold } => {
                    for _ in 0..packets {
                        tag += 1;
                        let (spi, seq, wire) = send_seq(&mut tx, tag).unwrap();
                        prop_assert_eq!(spi, current, "sent on the SA the policy names now");
                        sent_on.insert(tag, (spi, seq));
                        if hold && tag.is_multiple_of(2) {
                            held.push((tag, wire));
                        } else {
                            deliver(&mut rx, tag, wire, &live_in, &sent_on, &mut accepted, &mut highest);
                        }
                    }
                }
                Step::Late => {
                    for (t, wire) in held.drain(..) {
                        deliver(&mut rx, t, wire, &live_in, &sent_on, &mut accepted, &mut highest);
                    }
                }
                Step::Extra { add } => match (add, extra) {
                    (true, None) => {
                        tx.add_sa(out_sa(0x9000)).unwrap();
                        rx.add_sa(in_sa(0x9000)).unwrap();
                        extra = Some(0x9000);
                    }
                    (false, Some(spi)) => {
                        tx.remove_sa(spi).unwrap();
                        rx.remove_sa(spi, None).unwrap();
                        extra = None;
                    }
                    _ => {}
                },
                Step::Bypass { add } => {
                    if add && !bypass {
                        tx.add_policy(
                            &policy(Direction::Out, "10.1.0.0/16", "10.3.0.0/16", PolicyAction::Bypass, &[]),
                            PolicyId(100),
                            Some(0),
                        ).unwrap();
                        bypass = true;
                    } else if !add && bypass {
                        tx.remove_policy(PolicyId(100)).unwrap();
                        bypass = false;
                    }
                }
            }
            // The sender's SAs: exactly the current one (and the extra one).
            let spis: BTreeSet<u32> = tx.sas().iter().map(|s| s.params.spi).collect();
            let mut want: BTreeSet<u32> = [current].into();
            want.extend(extra);
            prop_assert_eq!(spis, want);
            let spis: BTreeSet<u32> = rx.sas().iter().map(|s| s.params.spi).collect();
            let mut want = live_in.clone();
            want.extend(extra);
            prop_assert_eq!(spis, want);
        }
        // Everything sent on a still-live SA and delivered was accepted exactly once.
        let total = tx.sas()[tx.sa_index(current).unwrap()].counters.packets;
        prop_assert_eq!(
            total,
            sent_on.values().filter(|&&(s, _)| s == current).count() as u64,
            "the current SA counted exactly what it sent"
        );
    }
}

#[test]
fn a_port_key_management_asked_for_stays_when_its_last_sa_goes() {
    let mut inbound = Inbound::default();
    inbound.add_encap_port(4500);
    let mut sa = spec(0x1001);
    sa.udp_encap = Some(crate::spec::UdpEncap {
        src_port: 4500,
        dst_port: 4500,
    });
    let mut other = spec(0x1002);
    other.udp_encap = Some(crate::spec::UdpEncap {
        src_port: 4501,
        dst_port: 4501,
    });
    for s in [&sa, &other] {
        inbound
            .add_sa(InboundSa::new(SaParams::from_spec(s).unwrap(), 64, 0).unwrap())
            .unwrap();
    }
    assert_eq!(inbound.encap_ports, [4500, 4501]);
    inbound.remove_sa(0x1001, None).unwrap();
    inbound.remove_sa(0x1002, None).unwrap();
    assert_eq!(
        inbound.encap_ports,
        [4500],
        "4501 went with its SA, 4500 stays"
    );
}
