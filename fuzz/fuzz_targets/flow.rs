//! Selector extraction from inner IPv4/IPv6 packets, whole and from a packet's first bytes
//! (`Flow::parse_head`, which must agree with the whole packet's parse or refuse).
#![no_main]

use espo_ipsec::wire::{Flow, IpProtocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte says where the head ends.
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let whole = Flow::parse(data);
    let head = &data[..usize::from(cut).min(data.len())];
    if let Ok(from_head) = Flow::parse_head(head, data.len()) {
        assert_eq!(Ok(from_head), whole);
    }
    if let Ok(flow) = whole {
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
