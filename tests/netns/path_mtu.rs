//! The outer path MTU learnt from ICMP errors about tunnel packets (RFC 4301 §8.2), on
//! both engines: a link between two routers in the path has a smaller MTU than the
//! gateways' outside interfaces, so the routers answer full-size tunnel packets with
//! "fragmentation needed" instead of forwarding them.

use std::net::Ipv4Addr;

use super::lab::{self, lab_or_skip};
use super::{ip, pmtu, stat, topology, traffic};

/// The MTU of the link between the routers.
const PATH_MTU: usize = 1300;
/// The largest inner packet that fits it: less the AES-GCM-128 ESP tunnel's overhead at its
/// worst (20 + 8 + 8 + 15 + 2 + 16 = 69 bytes), as for the interface's MTU.
const INNER_MTU: u32 = (PATH_MTU - 69) as u32;

/// A counter of the `outer path mtu:` line of espo status (`3 learnt`).
fn learnt(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("outer path mtu: icmp errors about tunnel packets: "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no outer path mtu line in {status}"))
}

#[test]
fn a_smaller_mtu_beyond_the_outside_link_is_learnt_on_both_engines() {
    // hA ── gwA (software) ══ rA ══ 1300 ══ rB ══ gwB (card model) ── hB
    let mut lab = lab_or_skip!("pmp");
    let (ha, gwa, ra, rb, gwb, hb) = (
        lab.ns("hA"),
        lab.ns("gwA"),
        lab.ns("rA"),
        lab.ns("rB"),
        lab.ns("gwB"),
        lab.ns("hB"),
    );
    let (a_out, ra_a) = lab.link(&gwa, "w0", &ra, "ra");
    let (ra_b, rb_a) = lab.link(&ra, "rx", &rb, "ry");
    let (rb_b, b_out) = lab.link(&rb, "rb", &gwb, "w1");
    for (ns, dev) in [
        (&gwa, &a_out),
        (&ra, &ra_a),
        (&ra, &ra_b),
        (&rb, &rb_a),
        (&rb, &rb_b),
    ] {
        lab.sysctl(ns, &format!("net.ipv6.conf.{dev}.disable_ipv6"), "1");
    }
    for (ns, dev) in [(&ra, &ra_b), (&rb, &rb_a)] {
        lab.ip(ns, &["link", "set", dev, "mtu", &PATH_MTU.to_string()]);
    }
    lab.addr(&gwa, &a_out, "192.0.2.1/24");
    lab.addr(&ra, &ra_a, "192.0.2.254/24");
    lab.addr(&ra, &ra_b, "203.0.113.1/30");
    lab.addr(&rb, &rb_a, "203.0.113.2/30");
    lab.addr(&rb, &rb_b, "198.51.100.254/24");
    for r in [&ra, &rb] {
        lab.sysctl(r, "net.ipv4.ip_forward", "1");
    }
    lab.ip(
        &ra,
        &["route", "add", "198.51.100.0/24", "via", "203.0.113.2"],
    );
    lab.ip(&rb, &["route", "add", "192.0.2.0/24", "via", "203.0.113.1"]);
    lab.ip(
        &gwa,
        &["route", "add", "198.51.100.0/24", "via", "192.0.2.254"],
    );
    topology::host_behind(&mut lab, &gwa, &ha, 1, "a");
    topology::host_behind(&mut lab, &gwb, &hb, 2, "b");
    // More addresses, so that each step below meets hosts without a path MTU of their own
    // for it (a host that learnt one also advertises a smaller TCP MSS from then on).
    for a in ["10.1.0.3/24", "10.1.0.4/24"] {
        lab.addr(&ha, &lab.name("ah"), a);
    }
    lab.addr(&hb, &lab.name("bh"), "10.2.0.3/24");

    let moved = |text: String| text.replace("192.0.2.2", "198.51.100.2");
    let a = lab.espo_run(
        &gwa,
        "left",
        &moved(lab::example("gw-gw/esp-model/gw-a.toml", &a_out)),
    );
    let b_config = lab::set_gateway_field(
        &moved(lab::example("gw-gw/esp-model/gw-b.toml", &b_out)),
        "next_hop",
        "\"198.51.100.254\"",
    );
    let b = lab.espo_run(&gwb, "right", &b_config);

    // Full-size segments (the TUN MTU fits the outside interface's 1500 bytes) meet the
    // 1300-byte link; each gateway learns it from the router's error and tells its host,
    // whose TCP sends smaller segments: the transfers complete both ways.
    traffic::tcp_transfer(&lab, &hb, &ha, ip("10.1.0.2"), 500_000);
    let from = Some(ip("10.1.0.3"));
    traffic::tcp_transfer_from(&lab, &ha, from, &hb, ip("10.2.0.2"), 500_000);

    // An oversized DF packet to an address the host has no path MTU for: the gateway
    // answers with the inner MTU of the path it learnt.
    let df = pmtu::udp4(
        Ipv4Addr::new(10, 2, 0, 2),
        Ipv4Addr::new(10, 1, 0, 4),
        1400,
        true,
    );
    let got = lab.run_in(&hb, || pmtu::send_and_catch(&df, false));
    assert_eq!(
        got,
        Some((ip("10.2.255.1"), INNER_MTU)),
        "fragmentation needed from the card gateway, naming the path's inner MTU: {}",
        lab.status(&b)
    );
    let df = pmtu::udp4(
        Ipv4Addr::new(10, 1, 0, 2),
        Ipv4Addr::new(10, 2, 0, 3),
        1400,
        true,
    );
    let got = lab.run_in(&ha, || pmtu::send_and_catch(&df, false));
    assert_eq!(
        got,
        Some((ip("10.1.255.1"), INNER_MTU)),
        "fragmentation needed from the software gateway, naming the path's inner MTU: {}",
        lab.status(&a)
    );

    for (gw, spi) in [(&a, "0x00001001"), (&b, "0x00002001")] {
        let status = lab.status(gw);
        assert!(learnt(&status) >= 1, "{status}");
        assert!(
            status.contains(&format!("out {spi} to ")) && status.contains("path mtu 1300"),
            "{status}"
        );
        // The packets too big for the path were answered, not sent to be lost.
        assert!(stat(&status, "outbound", "dropped") >= 1, "{status}");
    }
}
