//! Decapsulation of hostile packets. The first byte picks a mode:
//! - even: the rest of the input is an outer packet, decapsulated as it is;
//! - odd: the rest builds an inner packet that a sender encapsulates, then the input's
//!   remaining bytes flip bits of the tunnel packet at chosen positions before it is
//!   decapsulated.
//! In both modes nothing may panic; a packet that arrives untouched must come out exactly
//! as it went in, and anything delivered must be an IP packet inside the buffer.
#![no_main]

use std::path::Path;
use std::sync::Mutex;

use espo_config::Config;
use espo_ipsec::engine::{Decapsulated, Encapsulated, SoftwareEngine};
use libfuzzer_sys::fuzz_target;

const SAS: &str = r#"
[[sa]]
spi = 0x1001
protocol = "esp"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "aes-gcm-128"
key = "00112233445566778899aabbccddeeff01020304"
replay_window = 128
[[sa]]
spi = 0x1002
protocol = "esp"
src = "2001:db8::1"
dst = "2001:db8::2"
encryption = "aes-cbc-128"
key = "00112233445566778899aabbccddeeff"
integrity = "hmac-sha256-128"
integrity_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
esn = true
[[sa]]
spi = 0x1003
protocol = "esp"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "chacha20-poly1305"
key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00010203"
udp_encap = { src_port = 4500, dst_port = 4500 }
[[sa]]
spi = 0x1004
protocol = "ah"
mode = "transport"
src = "192.0.2.1"
dst = "192.0.2.2"
integrity = "hmac-sha256-128"
integrity_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
"#;

fn policies(dir: &str) -> String {
    format!(
        "[[policy]]\ndir = \"{dir}\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\nprotocol = \"udp\"\naction = \"protect\"\nsa = [0x1003]\n\
         [[policy]]\ndir = \"{dir}\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\nprotocol = \"tcp\"\naction = \"protect\"\nsa = [0x1001, 0x1004]\n\
         [[policy]]\ndir = \"{dir}\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n\
         [[policy]]\ndir = \"{dir}\"\nsrc = \"2001:db8:a::/48\"\ndst = \"2001:db8:b::/48\"\naction = \"protect\"\nsa = [0x1002]\n\
         [[policy]]\ndir = \"{dir}\"\nsrc = \"0.0.0.0/0\"\ndst = \"0.0.0.0/0\"\naction = \"bypass\"\n"
    )
}

struct Pair {
    tx: SoftwareEngine,
    rx: SoftwareEngine,
}

static PAIR: Mutex<Option<Pair>> = Mutex::new(None);

fn build() -> Pair {
    let tx = Config::parse(&format!("{SAS}{}", policies("out")), Path::new("tx")).expect("tx config");
    let rx = Config::parse(&format!("{SAS}{}", policies("in")), Path::new("rx")).expect("rx config");
    Pair {
        tx: tx.software_engine().expect("tx"),
        rx: rx.software_engine().expect("rx"),
    }
}

/// An inner packet of the family, protocol and payload the input chooses.
fn inner_packet(data: &[u8]) -> Vec<u8> {
    let (sel, payload) = data.split_first().unwrap_or((&0, &[]));
    let payload = &payload[..payload.len().min(1500)];
    let proto = [17u8, 6, 1][usize::from(*sel % 3)];
    if sel & 0x80 == 0 {
        let len = 28 + payload.len();
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[1] = sel & 0x03;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[10, 1, 0, 1]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p[28..].copy_from_slice(payload);
        p
    } else {
        let len = 48 + payload.len();
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p[6] = if proto == 1 { 58 } else { proto };
        p[7] = 64;
        p[8..24].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p[24..40].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0xb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p[48..].copy_from_slice(payload);
        p
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut guard = PAIR.lock().unwrap_or_else(|e| e.into_inner());
    let pair = guard.get_or_insert_with(build);
    if mode % 2 == 0 {
        let mut buf = rest.to_vec();
        if let Ok(Decapsulated::Inner { range, .. }) = pair.rx.inbound.decapsulate(&mut buf) {
            assert!(range.end <= rest.len());
            assert!(matches!(buf[range.start] >> 4, 4 | 6));
        }
        return;
    }
    let split = rest.len().min(usize::from(mode >> 1) * 8);
    let (inner_spec, flips) = rest.split_at(split);
    let inner = inner_packet(inner_spec);
    let mut out = vec![0u8; inner.len() + 256];
    let len = match pair.tx.outbound.encapsulate(&inner, &mut out) {
        Ok(Encapsulated::Protected { len, .. }) => len,
        _ => return,
    };
    let mut wire = out[..len].to_vec();
    for pair_bytes in flips.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([pair_bytes[0], pair_bytes[1]])) % wire.len();
        wire[at] ^= pair_bytes[2];
    }
    let mut buf = wire.clone();
    match pair.rx.inbound.decapsulate(&mut buf) {
        Ok(Decapsulated::Inner { range, .. }) => {
            if wire == out[..len] {
                assert_eq!(&buf[range], &inner[..], "an untouched packet comes out as it went in");
            } else {
                assert!(range.end <= wire.len());
                assert!(matches!(buf[range.start] >> 4, 4 | 6));
            }
        }
        Ok(_) => {}
        Err(reason) => assert!(wire != out[..len], "an untouched packet was dropped: {reason}"),
    }
});
