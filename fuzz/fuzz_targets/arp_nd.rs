//! ARP and neighbour discovery as the card's port reads them from the wire: any frame is
//! classified without a panic, and what is understood as a neighbour message carries
//! addresses of the right families.
#![no_main]

use std::net::IpAddr;

use espo_gateway::card::resolve::{Kind, Neighbourly, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Kind::Neighbour(Neighbourly::Request {
            sender_ip,
            sender_mac,
            target,
        }) => {
            assert_eq!(sender_ip.is_ipv4(), target.is_ipv4());
            if let Some(mac) = sender_mac {
                assert_eq!(mac[0] & 1, 0, "a group address is never learnt");
            }
        }
        Kind::Neighbour(Neighbourly::Reply { ip, mac }) => {
            assert_eq!(mac[0] & 1, 0, "a group address is never learnt");
            if let IpAddr::V6(v6) = ip {
                assert!(!v6.is_multicast());
            }
        }
        Kind::Malformed(_) | Kind::OtherControl | Kind::Data => {}
    }
});
