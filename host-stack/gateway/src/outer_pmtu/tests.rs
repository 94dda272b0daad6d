//! The path MTU table: which ICMP errors about tunnel packets are believed, what they
//! teach, and the seam that hands it to the outbound thread's PMTU check.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use proptest::prelude::*;

use super::engine::Learning;
use super::*;
use crate::path::{OutboundEngine, PacketBuf};
use crate::pmtu::PathLimit;
use espo_config::Config;
use espo_ipsec::wire::ipv4;

/// Outbound: ESP 0x1001 and ESP in UDP 0x1002 over IPv4, AH 0x1003 over IPv6, ESP with
/// ESN 0x1004 starting just below 2^32; inbound: ESP 0x2001.
const SAS: &str = r#"
[[sa]]
spi = 0x1001
protocol = "esp"
src = "192.0.2.1"
dst = "198.51.100.2"
encryption = "aes-gcm-128"
key = "000102030405060708090a0b0c0d0e0f10111213"

[[sa]]
spi = 0x1002
protocol = "esp"
src = "192.0.2.1"
dst = "198.51.100.3"
encryption = "aes-gcm-128"
key = "101112131415161718191a1b1c1d1e1f20212223"
udp_encap = { src_port = 4500, dst_port = 4500 }

[[sa]]
spi = 0x1003
protocol = "ah"
src = "2001:db8::1"
dst = "2001:db8:1::2"
integrity = "hmac-sha256-128"
integrity_key = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"

[[sa]]
spi = 0x1004
protocol = "esp"
src = "192.0.2.1"
dst = "198.51.100.4"
encryption = "aes-gcm-128"
key = "303132333435363738393a3b3c3d3e3f40414243"
esn = true
seq = 4294967294

[[sa]]
spi = 0x2001
protocol = "esp"
src = "198.51.100.2"
dst = "192.0.2.1"
encryption = "aes-gcm-128"
key = "404142434445464748494a4b4c4d4e4f50515253"

[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.2.0.0/16"
action = "protect"
sa = [0x1001]

[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.3.0.0/16"
action = "protect"
sa = [0x1002]

[[policy]]
dir = "out"
src = "fd00:1::/48"
dst = "fd00:2::/48"
action = "protect"
sa = [0x1003]

[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.4.0.0/16"
action = "protect"
sa = [0x1004]

[[policy]]
dir = "in"
src = "10.2.0.0/16"
dst = "10.1.0.0/16"
action = "protect"
sa = [0x2001]
"#;

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);

fn config() -> Config {
    Config::parse(SAS, Path::new("pmtu.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn table() -> PathMtus {
    let c = config();
    PathMtus::new(&c.sas, &c.policies, 1500)
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// An outer IPv4 packet of `total` bytes from `src` to `dst` whose upper layer starts with
/// `head`.
fn outer_v4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    head: &[u8],
    total: usize,
) -> Vec<u8> {
    let mut p = vec![0x5au8; total];
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: protocol,
        payload_len: total - ipv4::HEADER_LEN,
        hop_limit: 64,
        tos: 0,
        dont_frag: true,
        ident: 1,
    };
    repr.emit(
        &mut ipv4::Packet::new_unchecked(&mut p[..]),
        &ChecksumCaps::default(),
    )
    .unwrap();
    p[ipv4::HEADER_LEN..ipv4::HEADER_LEN + head.len()].copy_from_slice(head);
    p
}

/// An outer IPv6 packet of `total` bytes.
fn outer_v6(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: IpProtocol,
    head: &[u8],
    total: usize,
) -> Vec<u8> {
    let mut p = vec![0x5au8; total];
    let repr = ipv6::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: protocol,
        payload_len: total - ipv6::HEADER_LEN,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut p[..]))
        .unwrap();
    p[ipv6::HEADER_LEN..ipv6::HEADER_LEN + head.len()].copy_from_slice(head);
    p
}

fn esp(spi: u32, seq: u32) -> Vec<u8> {
    [spi.to_be_bytes(), seq.to_be_bytes()].concat()
}

/// ESP 0x1001's packet with sequence number `seq`, 1436 bytes long.
fn esp_packet(seq: u32) -> Vec<u8> {
    outer_v4(
        LOCAL,
        Ipv4Addr::new(198, 51, 100, 2),
        IpProtocol::Esp,
        &esp(0x1001, seq),
        1436,
    )
}

/// The ICMP "fragmentation needed" a router sends to `to` about `packet`, quoting as much
/// of it as an ICMPv4 error holds.
fn frag_needed(to: Ipv4Addr, mtu: u16, packet: &[u8]) -> Vec<u8> {
    let quote = &packet[..packet.len().min(548)];
    let message = icmpv4::Repr::DstUnreachable {
        reason: DstUnreachable::FragRequired,
        next_hop_mtu: mtu,
        quote,
    };
    let mut p = vec![0u8; ipv4::HEADER_LEN + message.buffer_len()];
    let caps = ChecksumCaps::default();
    ipv4::Repr {
        src_addr: ROUTER,
        dst_addr: to,
        next_header: IpProtocol::Icmp,
        payload_len: message.buffer_len(),
        hop_limit: 64,
        tos: 0xc0,
        dont_frag: false,
        ident: 0,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..]), &caps)
    .unwrap();
    message
        .emit(
            &mut icmpv4::Packet::new_unchecked(&mut p[ipv4::HEADER_LEN..]),
            &caps,
        )
        .unwrap();
    p
}

/// The ICMPv6 "packet too big" a router sends to `to` about `packet`.
fn packet_too_big(to: Ipv6Addr, mtu: u32, packet: &[u8]) -> Vec<u8> {
    let quote = &packet[..packet.len().min(1232)];
    let message = icmpv6::Repr::PktTooBig { mtu, quote };
    let router = v6("2001:db8::fe");
    let mut p = vec![0u8; ipv6::HEADER_LEN + message.buffer_len()];
    ipv6::Repr {
        src_addr: router,
        dst_addr: to,
        next_header: IpProtocol::Icmpv6,
        payload_len: message.buffer_len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut p[..]))
    .unwrap();
    message
        .emit(
            &router,
            &to,
            &mut icmpv6::Packet::new_unchecked(&mut p[ipv6::HEADER_LEN..]),
            &ChecksumCaps::default(),
        )
        .unwrap();
    p
}

fn heard(packet: &[u8]) -> TooBig<'_> {
    match hear(packet) {
        Heard::TooBig(error) => error,
        other => panic!("{other:?}"),
    }
}

/// `table` after ESP 0x1001 sent packets 1 to `last`.
fn sent(table: &PathMtus, last: u32) {
    for seq in 1..=last {
        table.note_sent(&esp_packet(seq));
    }
}

#[test]
fn a_genuine_error_lowers_the_path_mtu_until_it_expires() {
    let t = table();
    sent(&t, 5);
    let now = Instant::now();
    assert_eq!(t.path_mtu(0x1001), None);
    assert!(
        !t.any_learnt_at(now),
        "nothing learnt: every path the interface's"
    );
    let error = frag_needed(LOCAL, 1300, &esp_packet(5));
    assert_eq!(
        t.learn(&heard(&error), now),
        Verdict::Learnt {
            spi: 0x1001,
            mtu: 1300
        }
    );
    assert_eq!(t.path_mtu(0x1001), Some(1300));
    assert_eq!(t.path_mtu(0x1002), None, "one SA's path is not another's");
    // Never raised by an error; lowered further.
    let higher = frag_needed(LOCAL, 1400, &esp_packet(4));
    assert_eq!(
        t.learn(&heard(&higher), now),
        Verdict::NotLower { spi: 0x1001 }
    );
    let lower = frag_needed(LOCAL, 1200, &esp_packet(3));
    assert_eq!(
        t.learn(&heard(&lower), now),
        Verdict::Learnt {
            spi: 0x1001,
            mtu: 1200
        }
    );
    assert!(
        t.render(now)
            .contains("out 0x00001001 to 198.51.100.2: path mtu 1200")
    );
    // Ten minutes on the path is the interface's again: a higher value is learnt, and
    // status no longer shows the old one.
    assert!(t.any_learnt_at(now + EXPIRY / 2));
    let later = now + EXPIRY;
    assert!(!t.render(later).contains("path mtu 1200"));
    assert!(
        !t.any_learnt_at(later),
        "expired: every path the interface's again"
    );
    assert_eq!(
        t.learn(&heard(&higher), later),
        Verdict::Learnt {
            spi: 0x1001,
            mtu: 1400
        }
    );
    assert!(t.any_learnt_at(later), "learnt again");
    let c = t.counters();
    assert_eq!((c.learnt, c.not_lower, c.forged), (3, 1, 0));
}

#[test]
fn forged_and_foreign_quotes_are_ignored_and_counted() {
    let t = table();
    sent(&t, 5);
    let now = Instant::now();
    let verdict = |bytes: &[u8]| t.learn(&heard(bytes), now);
    let forged = Verdict::Ignored(Ignored::Forged);
    let not_ours = Verdict::Ignored(Ignored::NotOurs);
    // Sequence numbers the SA has not used.
    assert_eq!(verdict(&frag_needed(LOCAL, 1300, &esp_packet(6))), forged);
    assert_eq!(verdict(&frag_needed(LOCAL, 1300, &esp_packet(0))), forged);
    // Sent to another address than the quoted packet's source.
    let elsewhere = frag_needed(Ipv4Addr::new(192, 0, 2, 9), 1300, &esp_packet(5));
    assert_eq!(verdict(&elsewhere), forged);
    // An MTU the packet fits.
    assert_eq!(verdict(&frag_needed(LOCAL, 1436, &esp_packet(5))), forged);
    // Another SPI, another source, another peer, another protocol.
    let other_spi = outer_v4(
        LOCAL,
        Ipv4Addr::new(198, 51, 100, 2),
        IpProtocol::Esp,
        &esp(0x1002, 1),
        1436,
    );
    assert_eq!(verdict(&frag_needed(LOCAL, 1300, &other_spi)), not_ours);
    let other_src = outer_v4(
        Ipv4Addr::new(192, 0, 2, 9),
        Ipv4Addr::new(198, 51, 100, 2),
        IpProtocol::Esp,
        &esp(0x1001, 1),
        1436,
    );
    assert_eq!(
        verdict(&frag_needed(Ipv4Addr::new(192, 0, 2, 9), 1300, &other_src)),
        not_ours
    );
    let other_peer = outer_v4(
        LOCAL,
        Ipv4Addr::new(198, 51, 100, 9),
        IpProtocol::Esp,
        &esp(0x1001, 1),
        1436,
    );
    assert_eq!(verdict(&frag_needed(LOCAL, 1300, &other_peer)), not_ours);
    let tcp = outer_v4(
        LOCAL,
        Ipv4Addr::new(198, 51, 100, 2),
        IpProtocol::Tcp,
        &esp(0x1001, 1),
        1436,
    );
    assert_eq!(verdict(&frag_needed(LOCAL, 1300, &tcp)), not_ours);
    // A quote that ends before the sequence number.
    let packet = esp_packet(5);
    let short = frag_needed(LOCAL, 1300, &packet[..ipv4::HEADER_LEN + 6]);
    assert_eq!(verdict(&short), Verdict::Ignored(Ignored::ShortQuote));
    // A broken checksum: the error is not read at all.
    let mut broken = frag_needed(LOCAL, 1300, &esp_packet(5));
    broken[ipv4::HEADER_LEN + 7] ^= 1;
    assert_eq!(hear(&broken), Heard::Malformed);

    assert_eq!(t.path_mtu(0x1001), None, "nothing learnt");
    let c = t.counters();
    assert_eq!(
        (c.forged, c.not_ours, c.short_quote, c.learnt),
        (4, 4, 1, 0)
    );
    assert!(
        t.render(now)
            .contains("not ours 4, quote too short 1, forged 4")
    );
}

#[test]
fn numbers_noted_by_spi_are_believed_as_those_seen_leaving() {
    // The card's packets where its port is its own: reported sent by SPI and number.
    let t = table();
    let now = Instant::now();
    let unseen = frag_needed(LOCAL, 1300, &esp_packet(7));
    assert_eq!(
        t.learn(&heard(&unseen), now),
        Verdict::Ignored(Ignored::Forged)
    );
    t.note_used(0x1001, 7);
    t.note_used(0x1001, 3); // never lowers what was noted
    t.note_used(0x9999, 7); // no such SA: nothing
    assert_eq!(
        t.learn(&heard(&unseen), now),
        Verdict::Learnt {
            spi: 0x1001,
            mtu: 1300
        }
    );
}

#[test]
fn old_sequence_numbers_are_not_believed() {
    let t = table();
    sent(&t, 5);
    // The SA has moved on by more than the window since packet 5.
    t.note_sent(&esp_packet(5 + SEQ_WINDOW as u32));
    let now = Instant::now();
    let stale = frag_needed(LOCAL, 1300, &esp_packet(5));
    assert_eq!(
        t.learn(&heard(&stale), now),
        Verdict::Ignored(Ignored::Forged)
    );
    let recent = frag_needed(LOCAL, 1300, &esp_packet(6));
    assert_eq!(
        t.learn(&heard(&recent), now),
        Verdict::Learnt {
            spi: 0x1001,
            mtu: 1300
        }
    );
}

#[test]
fn the_mtu_never_drops_below_the_family_minimum_and_old_routers_get_plateaus() {
    let t = table();
    sent(&t, 5);
    let now = Instant::now();
    let tiny = frag_needed(LOCAL, 40, &esp_packet(5));
    assert_eq!(
        t.learn(&heard(&tiny), now),
        Verdict::Learnt {
            spi: 0x1001,
            mtu: 68
        }
    );
    // A router older than RFC 1191 announces nothing: the plateau below the packet.
    let t = table();
    sent(&t, 5);
    let silent = frag_needed(LOCAL, 0, &esp_packet(5));
    assert_eq!(
        t.learn(&heard(&silent), now),
        Verdict::Learnt {
            spi: 0x1001,
            mtu: 1006
        }
    );
    // IPv6: at least 1280.
    let ah = outer_v6(
        v6("2001:db8::1"),
        v6("2001:db8:1::2"),
        IpProtocol::Ah,
        &[50, 4, 0, 0, 0, 0, 0x10, 0x03, 0, 0, 0, 1],
        1400,
    );
    t.note_sent(&ah);
    let error = packet_too_big(v6("2001:db8::1"), 1000, &ah);
    assert_eq!(
        t.learn(&heard(&error), now),
        Verdict::Learnt {
            spi: 0x1003,
            mtu: 1280
        }
    );
}

#[test]
fn esp_in_udp_and_ah_over_ipv6_are_matched() {
    let t = table();
    let now = Instant::now();
    let mut head = vec![0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0];
    head.extend_from_slice(&esp(0x1002, 1));
    let udp = outer_v4(
        LOCAL,
        Ipv4Addr::new(198, 51, 100, 3),
        IpProtocol::Udp,
        &head,
        1436,
    );
    t.note_sent(&udp);
    assert_eq!(
        t.learn(&heard(&frag_needed(LOCAL, 1300, &udp)), now),
        Verdict::Learnt {
            spi: 0x1002,
            mtu: 1300
        }
    );
    // The same SPI behind other ports is not that SA's.
    let mut other = head.clone();
    other[2..4].copy_from_slice(&4501u16.to_be_bytes());
    let udp = outer_v4(
        LOCAL,
        Ipv4Addr::new(198, 51, 100, 3),
        IpProtocol::Udp,
        &other,
        1436,
    );
    assert_eq!(
        t.learn(&heard(&frag_needed(LOCAL, 1200, &udp)), now),
        Verdict::Ignored(Ignored::NotOurs)
    );

    let ah = |seq: u32| {
        let mut head = vec![50, 4, 0, 0];
        head.extend_from_slice(&esp(0x1003, seq));
        outer_v6(
            v6("2001:db8::1"),
            v6("2001:db8:1::2"),
            IpProtocol::Ah,
            &head,
            1500,
        )
    };
    t.note_sent(&ah(1));
    t.note_sent(&ah(2));
    let error = packet_too_big(v6("2001:db8::1"), 1400, &ah(2));
    assert_eq!(
        t.learn(&heard(&error), now),
        Verdict::Learnt {
            spi: 0x1003,
            mtu: 1400
        }
    );
    let error = packet_too_big(v6("2001:db8::1"), 1300, &ah(3));
    assert_eq!(
        t.learn(&heard(&error), now),
        Verdict::Ignored(Ignored::Forged)
    );
    // Delivered by a raw ICMPv6 socket: the message alone, its destination from the
    // kernel.
    let error = packet_too_big(v6("2001:db8::1"), 1300, &ah(2));
    let message = &error[ipv6::HEADER_LEN..];
    let Heard::TooBig(alone) = hear_icmpv6(v6("2001:db8::fe"), Some(v6("2001:db8::1")), message)
    else {
        panic!("not heard")
    };
    assert_eq!(alone, heard(&error));
    assert_eq!(
        hear_icmpv6(v6("2001:db8::fe"), Some(v6("2001:db8::2")), message),
        Heard::Malformed,
        "the checksum covers the destination"
    );
}

#[test]
fn extended_sequence_numbers_are_placed_by_their_high_half() {
    let t = table();
    let now = Instant::now();
    let packet = |low: u32| {
        outer_v4(
            LOCAL,
            Ipv4Addr::new(198, 51, 100, 4),
            IpProtocol::Esp,
            &esp(0x1004, low),
            1436,
        )
    };
    // The SA starts at 2^32 - 2: its next numbers are 2^32 - 1, 2^32, 2^32 + 1 (low halves
    // 0xffffffff, 0, 1).
    for low in [0xffff_ffff, 0, 1] {
        t.note_sent(&packet(low));
    }
    let before_the_wrap = frag_needed(LOCAL, 1400, &packet(0xffff_ffff));
    assert_eq!(
        t.learn(&heard(&before_the_wrap), now),
        Verdict::Learnt {
            spi: 0x1004,
            mtu: 1400
        }
    );
    let after_the_wrap = frag_needed(LOCAL, 1300, &packet(1));
    assert_eq!(
        t.learn(&heard(&after_the_wrap), now),
        Verdict::Learnt {
            spi: 0x1004,
            mtu: 1300
        }
    );
    // Low half 2 is 2^32 + 2 (not sent yet) or 2 (2^32 numbers ago): neither.
    let unsent = frag_needed(LOCAL, 1200, &packet(2));
    assert_eq!(
        t.learn(&heard(&unsent), now),
        Verdict::Ignored(Ignored::Forged)
    );
}

#[test]
fn only_errors_about_packets_too_big_are_heard() {
    let echo = {
        let message = icmpv4::Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"ping",
        };
        let mut p = outer_v4(
            ROUTER,
            LOCAL,
            IpProtocol::Icmp,
            &[],
            ipv4::HEADER_LEN + message.buffer_len(),
        );
        message
            .emit(
                &mut icmpv4::Packet::new_unchecked(&mut p[ipv4::HEADER_LEN..]),
                &ChecksumCaps::default(),
            )
            .unwrap();
        p
    };
    assert_eq!(hear(&echo), Heard::Other);
    assert_eq!(hear(&esp_packet(1)), Heard::Other);
    assert_eq!(hear(&[]), Heard::Other);
    // A fragment of an ICMP error is not read.
    let mut error = frag_needed(LOCAL, 1300, &esp_packet(1));
    {
        let mut p = ipv4::Packet::new_unchecked(&mut error[..]);
        p.set_more_frags(true);
        p.fill_checksum();
    }
    assert_eq!(hear(&error), Heard::Other);
    // Behind an IPv6 extension header, a packet too big is still one.
    let ah = outer_v6(
        v6("2001:db8::1"),
        v6("2001:db8:1::2"),
        IpProtocol::Ah,
        &[50, 4, 0, 0, 0, 0, 0x10, 0x03, 0, 0, 0, 1],
        1400,
    );
    let plain = packet_too_big(v6("2001:db8::1"), 1280, &ah);
    let mut with_opts = plain[..ipv6::HEADER_LEN].to_vec();
    with_opts[6] = u8::from(IpProtocol::Ipv6Opts);
    let icmp_len = plain.len() - ipv6::HEADER_LEN;
    with_opts[4..6].copy_from_slice(&((icmp_len + 8) as u16).to_be_bytes());
    with_opts.extend_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0]);
    with_opts.extend_from_slice(&plain[ipv6::HEADER_LEN..]);
    assert_eq!(hear(&with_opts), hear(&plain));
    assert!(matches!(
        hear(&plain),
        Heard::TooBig(TooBig { mtu: 1280, .. })
    ));
}

#[test]
fn the_outbound_check_sees_the_path_its_sa_learnt() {
    let t = table();
    let mut engine = config().software_engine().unwrap().outbound;
    let mut learning = Learning::new(&mut engine, &t);
    let max_overhead = learning.max_overhead();
    // A UDP packet 40000 -> 7 of 1400 bytes.
    let udp = [0x9c, 0x40, 0, 7, 0x05, 0x64, 0, 0];
    let inner = outer_v4(
        Ipv4Addr::new(10, 1, 0, 2),
        Ipv4Addr::new(10, 2, 0, 2),
        IpProtocol::Udp,
        &udp,
        1400,
    );
    let tunnel = learning.tunnel(&inner).unwrap().unwrap();
    assert_eq!((tunnel.spi, tunnel.path), (Some(0x1001), None));
    // Encapsulated through the seam, the packet's sequence number is noted as used: an
    // error about it is believed, one about the next is not.
    let mut batch = vec![PacketBuf::default()];
    batch[0].load(&inner);
    let mut verdicts = Vec::new();
    learning.encapsulate(&mut batch, &mut verdicts);
    assert!(verdicts[0].is_ok(), "{verdicts:?}");
    let sent = batch[0].packet().to_vec();
    let now = Instant::now();
    let mut next = sent.clone();
    next[ipv4::HEADER_LEN + 4..ipv4::HEADER_LEN + 8].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(
        t.learn(&heard(&frag_needed(LOCAL, 1300, &next)), now),
        Verdict::Ignored(Ignored::Forged)
    );
    assert_eq!(
        t.learn(&heard(&frag_needed(LOCAL, 1300, &sent)), now),
        Verdict::Learnt {
            spi: 0x1001,
            mtu: 1300
        }
    );
    let tunnel = learning.tunnel(&inner).unwrap().unwrap();
    assert_eq!(
        tunnel.path,
        Some(PathLimit {
            outer_mtu: 1300,
            tunnel_mtu: 1300 - max_overhead,
        })
    );
    // Another SA's packets still see the interface.
    let other = outer_v4(
        Ipv4Addr::new(10, 1, 0, 2),
        Ipv4Addr::new(10, 4, 0, 2),
        IpProtocol::Udp,
        &udp,
        1400,
    );
    assert_eq!(learning.tunnel(&other).unwrap().unwrap().path, None);
}

#[test]
fn the_table_knows_the_outbound_sas_only() {
    let t = table();
    assert_eq!(t.families(), (true, true));
    assert_eq!(t.interface_mtu(), 1500);
    let inbound = outer_v4(
        Ipv4Addr::new(198, 51, 100, 2),
        LOCAL,
        IpProtocol::Esp,
        &esp(0x2001, 1),
        1436,
    );
    t.note_sent(&inbound);
    let error = frag_needed(Ipv4Addr::new(198, 51, 100, 2), 1300, &inbound);
    assert_eq!(
        t.learn(&heard(&error), Instant::now()),
        Verdict::Ignored(Ignored::NotOurs)
    );
}

proptest! {
    #[test]
    fn hostile_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..1600),
        mtu in any::<u32>(),
        to_ours in any::<bool>(),
    ) {
        let t = table();
        t.note_sent(&bytes);
        let _ = hear(&bytes);
        let _ = hear_icmpv6(v6("2001:db8::fe"), None, &bytes);
        let error = TooBig {
            to: to_ours.then_some(IpAddr::V4(LOCAL)),
            mtu,
            quote: &bytes,
        };
        if let Verdict::Learnt { mtu, .. } = t.learn(&error, Instant::now()) {
            prop_assert!((68..1500).contains(&mtu));
        }
    }

    #[test]
    fn a_believed_error_is_about_a_sent_packet(seq in 0u32..20, sent_up_to in 0u32..10, mtu in 0u16..2000) {
        let t = table();
        sent(&t, sent_up_to);
        let error = frag_needed(LOCAL, mtu, &esp_packet(seq));
        match t.learn(&heard(&error), Instant::now()) {
            Verdict::Learnt { mtu: learnt, .. } => {
                prop_assert!(seq >= 1 && seq <= sent_up_to);
                prop_assert!((68..1436).contains(&learnt));
            }
            Verdict::NotLower { .. } => prop_assert!(seq >= 1 && seq <= sent_up_to),
            Verdict::Ignored(why) => prop_assert_eq!(why, Ignored::Forged),
        }
    }
}
