//! The outer path MTU learnt from ICMP errors about tunnel packets (RFC 4301 §8.2), on
//! both engines: a link between two routers in the path has a smaller MTU than the
//! gateways' outside interfaces, so the routers answer full-size tunnel packets with
//! "fragmentation needed" / "packet too big" instead of forwarding them.

use std::net::Ipv4Addr;

use super::lab::{self, Lab, lab_or_skip};
use super::{ip, pmtu, stat, topology, traffic};

/// A counter of the `outer path mtu:` line of espo status (`3 learnt`).
fn learnt(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("outer path mtu: icmp errors about tunnel packets: "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no outer path mtu line in {status}"))
}

/// The addressing of the outside: the gateways' endpoints, the routers' addresses on each
/// link, and the MTU of the link between the routers.
struct Outside {
    prefix_len: u8,
    gw_a: &'static str,
    router_a: &'static str,
    between_a: &'static str,
    between_b: &'static str,
    router_b: &'static str,
    gw_b: &'static str,
    path_mtu: usize,
    /// The AES-GCM-128 ESP tunnel's overhead at its worst with this outer header.
    overhead: usize,
}

const IPV4: Outside = Outside {
    prefix_len: 24,
    gw_a: "192.0.2.1",
    router_a: "192.0.2.254",
    between_a: "203.0.113.1",
    between_b: "203.0.113.2",
    router_b: "198.51.100.254",
    gw_b: "198.51.100.2",
    path_mtu: 1300,
    // 20 + 8 + 8 + 15 + 2 + 16
    overhead: 69,
};

const IPV6: Outside = Outside {
    prefix_len: 64,
    gw_a: "2001:db8:a::1",
    router_a: "2001:db8:a::fe",
    between_a: "2001:db8:c::1",
    between_b: "2001:db8:c::2",
    router_b: "2001:db8:b::fe",
    gw_b: "2001:db8:b::2",
    path_mtu: 1400,
    // 40 + 8 + 8 + 15 + 2 + 16
    overhead: 89,
};

fn net(addr: &str, prefix_len: u8) -> String {
    format!("{addr}/{prefix_len}")
}

/// The network of `addr` (its first `prefix_len` bits are all that differ between the
/// links here: the third group of the IPv6 address, the first three bytes of the IPv4).
fn network(addr: &str, prefix_len: u8) -> String {
    match addr.parse::<std::net::IpAddr>().unwrap() {
        std::net::IpAddr::V4(a) => {
            let [x, y, z, _] = a.octets();
            format!("{x}.{y}.{z}.0/{prefix_len}")
        }
        std::net::IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}::/{prefix_len}", s[0], s[1], s[2])
        }
    }
}

/// hA ── gwA (software) ══ rA ══ smaller MTU ══ rB ══ gwB (card model) ── hB; with
/// `own_port`, gwB's card is served by `espo card serve --port` (the card's port its own:
/// the router's errors come through the card, and the card's packets are noted as the card
/// reports them sent).
fn both_engines_learn_the_path(lab: &mut Lab, o: &Outside, own_port: bool) {
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
    let v6 = o.prefix_len == 64;
    if !v6 {
        for (ns, dev) in [
            (&gwa, &a_out),
            (&ra, &ra_a),
            (&ra, &ra_b),
            (&rb, &rb_a),
            (&rb, &rb_b),
        ] {
            lab.sysctl(ns, &format!("net.ipv6.conf.{dev}.disable_ipv6"), "1");
        }
    }
    for (ns, dev) in [(&ra, &ra_b), (&rb, &rb_a)] {
        lab.ip(ns, &["link", "set", dev, "mtu", &o.path_mtu.to_string()]);
    }
    let p = o.prefix_len;
    lab.addr(&gwa, &a_out, &net(o.gw_a, p));
    lab.addr(&ra, &ra_a, &net(o.router_a, p));
    lab.addr(&ra, &ra_b, &net(o.between_a, p));
    lab.addr(&rb, &rb_a, &net(o.between_b, p));
    lab.addr(&rb, &rb_b, &net(o.router_b, p));
    for r in [&ra, &rb] {
        lab.sysctl(r, "net.ipv4.ip_forward", "1");
        lab.sysctl(r, "net.ipv6.conf.all.forwarding", "1");
    }
    let family = if v6 { "-6" } else { "-4" };
    let (net_a, net_b) = (network(o.gw_a, p), network(o.gw_b, p));
    lab.ip(&ra, &[family, "route", "add", &net_b, "via", o.between_b]);
    lab.ip(&rb, &[family, "route", "add", &net_a, "via", o.between_a]);
    lab.ip(&gwa, &[family, "route", "add", &net_b, "via", o.router_a]);
    topology::host_behind(lab, &gwa, &ha, 1, "a");
    topology::host_behind(lab, &gwb, &hb, 2, "b");
    // More addresses, so that each step below meets hosts without a path MTU of their own
    // for it (a host that learnt one also advertises a smaller TCP MSS from then on).
    for a in ["10.1.0.3/24", "10.1.0.4/24"] {
        lab.addr(&ha, &lab.name("ah"), a);
    }
    lab.addr(&hb, &lab.name("bh"), "10.2.0.3/24");

    let moved = |text: String| {
        text.replace("192.0.2.1", o.gw_a)
            .replace("192.0.2.2", o.gw_b)
    };
    let a = lab.espo_run(
        &gwa,
        "left",
        &moved(lab::example("gw-gw/esp-model/gw-a.toml", &a_out)),
    );
    let mut b_config = lab::set_gateway_field(
        &moved(lab::example("gw-gw/esp-model/gw-b.toml", &b_out)),
        "next_hop",
        &format!("\"{}\"", o.router_b),
    );
    if own_port {
        let socket = lab.card_server_on(&gwb, "right", &b_out);
        b_config = b_config
            .replace(
                "engine = \"model\"",
                &format!("engine = \"vfio-user\"\nsocket = \"{}\"", socket.display()),
            )
            .replace(&format!("port = \"{b_out}\"\n"), "");
        assert!(!b_config.contains("\nport = "), "{b_config}");
    }
    let b = lab.espo_run(&gwb, "right", &b_config);

    // Full-size segments (the TUN MTU fits the outside interface's 1500 bytes) meet the
    // smaller link; each gateway learns it from the router's error and tells its host,
    // whose TCP sends smaller segments: the transfers complete both ways.
    traffic::tcp_transfer(lab, &hb, &ha, ip("10.1.0.2"), 500_000);
    let from = Some(ip("10.1.0.3"));
    traffic::tcp_transfer_from(lab, &ha, from, &hb, ip("10.2.0.2"), 500_000);

    // An oversized DF packet to an address the host has no path MTU for: the gateway
    // answers with the inner MTU of the path it learnt.
    let inner_mtu = (o.path_mtu - o.overhead) as u32;
    let df = pmtu::udp4(
        Ipv4Addr::new(10, 2, 0, 2),
        Ipv4Addr::new(10, 1, 0, 4),
        1400,
        true,
    );
    let got = lab.run_in(&hb, || pmtu::send_and_catch(&df, false));
    assert_eq!(
        got,
        Some((ip("10.2.255.1"), inner_mtu)),
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
        Some((ip("10.1.255.1"), inner_mtu)),
        "fragmentation needed from the software gateway, naming the path's inner MTU: {}",
        lab.status(&a)
    );

    // While the learnt path holds, the card gateway still sends packets that fit it
    // straight from the card's buffers (only the ones too big for it go the host's way).
    let direct = |status: &str| {
        status
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("packets read straight into the card's buffers: ")
            })
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = direct(&lab.status(&b));
    let echoed = traffic::udp_echo(lab, &hb, &ha, ip("10.1.0.2"), 20, 300);
    assert_eq!(echoed, 20, "{}", lab.status(&b));
    let status = lab.status(&b);
    assert!(
        direct(&status) >= before + 20,
        "the echoes read straight into the card ({before} before): {status}"
    );

    for (gw, spi) in [(&a, "0x00001001"), (&b, "0x00002001")] {
        let status = lab.status(gw);
        assert!(learnt(&status) >= 1, "{status}");
        let line = format!("path mtu {}", o.path_mtu);
        assert!(
            status.contains(&format!("out {spi} to ")) && status.contains(&line),
            "{status}"
        );
        // The packets too big for the path were answered, not sent to be lost.
        assert!(stat(&status, "outbound", "dropped") >= 1, "{status}");
    }
}

#[test]
fn a_smaller_mtu_beyond_the_outside_link_is_learnt_on_both_engines() {
    let mut lab = lab_or_skip!("pmp");
    both_engines_learn_the_path(&mut lab, &IPV4, false);
}

#[test]
fn a_smaller_mtu_is_learnt_by_a_card_whose_port_is_its_own() {
    let mut lab = lab_or_skip!("pmo");
    both_engines_learn_the_path(&mut lab, &IPV4, true);
}

#[test]
fn a_smaller_ipv6_path_mtu_is_learnt_on_both_engines() {
    let mut lab = lab_or_skip!("pm6");
    both_engines_learn_the_path(&mut lab, &IPV6, false);
}
