//! Selector extraction from inner IPv4/IPv6 packets, whole and from a packet's first bytes
//! (`Flow::parse_head`, which must agree with the whole packet's parse or refuse), and the
//! tunnel an outbound engine gives a packet from its head (`Outbound::tunnel_for_head`,
//! overhead and outermost SPI), which must be the whole packet's or `Malformed`.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use espo_config::Config;
use espo_ipsec::counters::DropReason;
use espo_ipsec::engine::Outbound;
use espo_ipsec::wire::{Flow, IpProtocol};
use libfuzzer_sys::fuzz_target;

/// TCP to port 443 of site 2 through ESP in UDP, the rest of site 2 through ESP with
/// AES-GCM (4-byte padding) or, for UDP, AES-CBC (16-byte blocks), an ESP and AH bundle
/// for ICMP, IPv6 site 2 through ESP over IPv6, everything else bypassed.
const CONFIG: &str = r#"
[[sa]]
spi = 0x1001
protocol = "esp"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "aes-gcm-128"
key = "00112233445566778899aabbccddeeff01020304"
[[sa]]
spi = 0x1002
protocol = "esp"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "aes-gcm-128"
key = "102132435465768798a9bacbdcedfe0f05060708"
udp_encap = { src_port = 4500, dst_port = 4500 }
[[sa]]
spi = 0x1003
protocol = "esp"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "aes-cbc-128"
key = "00112233445566778899aabbccddeeff"
integrity = "hmac-sha256-128"
integrity_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
[[sa]]
spi = 0x1004
protocol = "ah"
mode = "transport"
src = "192.0.2.1"
dst = "192.0.2.2"
integrity = "hmac-sha256-128"
integrity_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
[[sa]]
spi = 0x1005
protocol = "esp"
src = "2001:db8::1"
dst = "2001:db8::2"
encryption = "aes-gcm-128"
key = "202122232425262728292a2b2c2d2e2f090a0b0c"
[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.2.0.0/16"
protocol = "tcp"
dst_port = 443
action = "protect"
sa = [0x1002]
[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.2.0.0/16"
protocol = "udp"
action = "protect"
sa = [0x1003]
[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.2.0.0/16"
protocol = "icmp"
action = "protect"
sa = [0x1001, 0x1004]
[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.2.0.0/16"
action = "protect"
sa = [0x1001]
[[policy]]
dir = "out"
src = "fd00:1::/48"
dst = "fd00:2::/48"
action = "protect"
sa = [0x1005]
[[policy]]
dir = "out"
src = "0.0.0.0/0"
dst = "0.0.0.0/0"
action = "bypass"
"#;

fn outbound() -> &'static Outbound {
    static ENGINE: OnceLock<Outbound> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Config::parse(CONFIG, Path::new("flow"))
            .expect("the target's configuration")
            .software_engine()
            .expect("the target's engine")
            .outbound
    })
}

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
    // The tunnel, with the packet's addresses moved into the protected sites so that its
    // policies are reached (the rest of each address and every other byte as the input
    // has them; parsing does not check the IPv4 header checksum).
    let mut pkt = data.to_vec();
    match pkt.first().map(|b| b >> 4) {
        Some(4) if pkt.len() >= 20 => {
            pkt[12..14].copy_from_slice(&[10, 1]);
            pkt[16..18].copy_from_slice(&[10, 2]);
        }
        Some(6) if pkt.len() >= 40 => {
            pkt[8..14].copy_from_slice(&[0xfd, 0, 0, 1, 0, 0]);
            pkt[24..30].copy_from_slice(&[0xfd, 0, 0, 2, 0, 0]);
        }
        _ => {}
    }
    let out = outbound();
    let tunnel = out.tunnel_for_head(&pkt[..head.len()], pkt.len());
    if tunnel != Err(DropReason::Malformed) {
        assert_eq!(
            tunnel,
            out.tunnel_for(&pkt),
            "the head gives another tunnel"
        );
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
