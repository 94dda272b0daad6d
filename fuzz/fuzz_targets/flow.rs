//! Selector extraction from inner IPv4/IPv6 packets.
#![no_main]

use espo_ipsec::wire::{Flow, IpProtocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(flow) = Flow::parse(data) {
        assert_eq!(flow.src.is_ipv4(), flow.dst.is_ipv4());
        assert_eq!(flow.src_port.is_some(), flow.dst_port.is_some());
        if flow.src_port.is_some() {
            assert!(matches!(
                flow.protocol,
                IpProtocol::Tcp | IpProtocol::Udp | IpProtocol::Sctp
            ));
        }
        if flow.icmp_type_code.is_some() {
            assert!(matches!(
                flow.protocol,
                IpProtocol::Icmp | IpProtocol::Icmpv6
            ));
        }
        let _ = flow.to_string();
    }
});
