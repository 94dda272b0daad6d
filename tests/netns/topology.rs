//! The three tunnel topologies, addressed as the configurations in examples/ expect.
//!
//! ```text
//! gateway-to-gateway:  hA ── gwA ══ gwB ── hB     10.1.0.0/16, fd00:1::/48 | 10.2.0.0/16, fd00:2::/48
//! server-to-gateway:        srv ══ gw ── hB       srv's inner address 10.9.0.1 (on its TUN)
//! server-to-server:        srvA ══ srvB           inner = outer: 192.0.2.1 <-> 192.0.2.2
//! ```
//! `══` is the outside link (192.0.2.0/24, IPv6 off so that only tunnel traffic and ARP
//! cross it).

use super::lab::Lab;

/// Namespaces and the outside link of a topology.
pub struct Topology {
    /// Namespace of the left tunnel endpoint and the name of its outside interface.
    pub left: String,
    pub left_out: String,
    pub right: String,
    pub right_out: String,
    /// The hosts behind the endpoints (the endpoint itself for a server).
    pub left_host: String,
    pub right_host: String,
}

fn outside_link(lab: &mut Lab, left: &str, right: &str) -> (String, String) {
    let (l, r) = lab.link(left, "w0", right, "w1");
    for (ns, dev) in [(left, &l), (right, &r)] {
        lab.sysctl(ns, &format!("net.ipv6.conf.{dev}.disable_ipv6"), "1");
    }
    lab.addr(left, &l, "192.0.2.1/24");
    lab.addr(right, &r, "192.0.2.2/24");
    (l, r)
}

/// A host behind a gateway: `site` is 1 or 2 (10.{site}.0.0/24, fd00:{site}::/64).
fn host_behind(lab: &mut Lab, gw: &str, host: &str, site: u8, short: &str) {
    let (g, h) = lab.link(gw, &format!("{short}g"), host, &format!("{short}h"));
    lab.addr(gw, &g, &format!("10.{site}.0.1/24"));
    lab.addr(gw, &g, &format!("fd00:{site}::1/64"));
    lab.addr(host, &h, &format!("10.{site}.0.2/24"));
    lab.addr(host, &h, &format!("fd00:{site}::2/64"));
    lab.ip(
        host,
        &["route", "add", "default", "via", &format!("10.{site}.0.1")],
    );
    lab.ip(
        host,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &format!("fd00:{site}::1"),
        ],
    );
    lab.sysctl(gw, "net.ipv4.ip_forward", "1");
    lab.sysctl(gw, "net.ipv6.conf.all.forwarding", "1");
}

pub fn gateway_to_gateway(lab: &mut Lab) -> Topology {
    let (ha, gwa, gwb, hb) = (lab.ns("hA"), lab.ns("gwA"), lab.ns("gwB"), lab.ns("hB"));
    let (l, r) = outside_link(lab, &gwa, &gwb);
    host_behind(lab, &gwa, &ha, 1, "a");
    host_behind(lab, &gwb, &hb, 2, "b");
    Topology {
        left: gwa,
        left_out: l,
        right: gwb,
        right_out: r,
        left_host: ha,
        right_host: hb,
    }
}

pub fn server_to_gateway(lab: &mut Lab) -> Topology {
    let (srv, gw, hb) = (lab.ns("srv"), lab.ns("gw"), lab.ns("hB"));
    let (l, r) = outside_link(lab, &srv, &gw);
    host_behind(lab, &gw, &hb, 2, "b");
    Topology {
        left: srv.clone(),
        left_out: l,
        right: gw,
        right_out: r,
        left_host: srv,
        right_host: hb,
    }
}

pub fn server_to_server(lab: &mut Lab) -> Topology {
    let (a, b) = (lab.ns("srvA"), lab.ns("srvB"));
    let (l, r) = outside_link(lab, &a, &b);
    Topology {
        left: a.clone(),
        left_out: l,
        right: b.clone(),
        right_out: r,
        left_host: a,
        right_host: b,
    }
}

/// Server-to-server over IPv6: 2001:db8::1 <-> 2001:db8::2 (inner = outer).
pub fn server_to_server_v6(lab: &mut Lab) -> Topology {
    let (a, b) = (lab.ns("srvA"), lab.ns("srvB"));
    let (l, r) = lab.link(&a, "w0", &b, "w1");
    lab.addr(&a, &l, "2001:db8::1/64");
    lab.addr(&b, &r, "2001:db8::2/64");
    Topology {
        left: a.clone(),
        left_out: l,
        right: b.clone(),
        right_out: r,
        left_host: a,
        right_host: b,
    }
}
