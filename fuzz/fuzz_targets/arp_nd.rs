//! ARP and neighbour discovery as the card's port meets them: an Ethernet frame from the
//! wire, its ARP packet or its IPv6 packet's ICMPv6 message parsed by `espo_ipsec::wire`,
//! and what the port relies on: addresses of the right families, never a multicast target,
//! a link-layer address only from an option of Ethernet's length.
#![no_main]

use espo_ipsec::wire::ethernet::{EtherType, Frame};
use espo_ipsec::wire::{ChecksumCaps, IpProtocol, arp, icmpv6, ipv6, ndisc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::new_checked(data) else {
        return;
    };
    match frame.ethertype() {
        EtherType::Arp => {
            if let Ok(packet) = arp::Packet::new_checked(frame.payload())
                && let Ok(repr) = arp::Repr::parse(&packet)
            {
                assert_eq!(repr.source_hardware_addr.0[..], frame.payload()[8..14]);
                assert_eq!(
                    repr.source_protocol_addr.octets()[..],
                    frame.payload()[14..18]
                );
                assert_eq!(
                    repr.target_protocol_addr.octets()[..],
                    frame.payload()[24..28]
                );
            }
        }
        EtherType::Ipv6 => {
            let Ok(ip) = ipv6::Packet::new_checked(frame.payload()) else {
                return;
            };
            if ip.next_header() != IpProtocol::Icmpv6 {
                return;
            }
            let Ok(icmp) = icmpv6::Packet::new_checked(ip.payload()) else {
                return;
            };
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if let Ok(icmpv6::Repr::Ndisc(nd)) =
                icmpv6::Repr::parse(&src, &dst, &icmp, &ChecksumCaps::default())
            {
                assert!(icmp.verify_checksum(&src, &dst));
                let (target, lladdr) = match nd {
                    ndisc::Repr::NeighborSolicit {
                        target_addr,
                        lladdr,
                    }
                    | ndisc::Repr::NeighborAdvert {
                        target_addr,
                        lladdr,
                        ..
                    } => (target_addr, lladdr),
                };
                assert!(!target.is_multicast());
                if let Some(mac) = lladdr {
                    let options = icmp.options();
                    assert!(
                        options
                            .chunks(8)
                            .any(|o| o.len() == 8 && o[1] == 1 && o[2..] == mac.0),
                        "the address comes from a one-unit option"
                    );
                }
            }
        }
        _ => {}
    }
});
