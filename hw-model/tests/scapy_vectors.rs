//! Independent AES-GCM ESP vectors, built once with scapy's IPsec layer
//! (`scapy.layers.ipsec.SecurityAssociation`, scapy 2.x) and embedded here so the test
//! needs neither Python nor scapy. The generating script:
//!
//! ```text
//! k128 = bytes(range(1, 21)); k256 = bytes(range(0x40, 0x64))   # key || 4-byte salt
//! inner4 = IP(src="10.11.0.1", dst="10.12.0.1", tos=0x2a, flags="DF")/UDP(sport=12345, dport=53)
//!          /Raw(b"espo-model independent vector " * 2)
//! inner6 = IPv6(src="2001:db8:1::1", dst="2001:db8:2::1", tc=0x28)/UDP(sport=1000, dport=2000)
//!          /Raw(b"v6 inner packet body" * 3)
//! sa = SecurityAssociation(ESP, spi=0x1001, seq_num=seq & 0xffffffff, crypt_algo="AES-GCM",
//!          crypt_key=key, tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2") or IPv6(...),
//!          [nat_t_header=UDP(sport=4500, dport=4500)], [esn_en=True, esn=seq >> 32])
//! esp = sa.encrypt(inner, iv=seq.to_bytes(8, "big"))
//! ```
//!
//! `espo` is the same with espo's outer header rules (datasheet §7.7): ESP padding to 16
//! bytes and the outer header's fields set as the card sets them:
//!
//! ```text
//! gcm16 = copy.copy(CRYPT_ALGOS["AES-GCM"]); gcm16.block_size = 16
//! tos = inner.tos (IPv4 inner) or inner.tc (IPv6 inner)
//! tunnel_header = IP(src=.., dst=.., tos=tos, id=seq & 0xffff, flags="DF", ttl=64)
//!              or IPv6(src=.., dst=.., tc=tos, fl=0, hlim=64)
//! nat_t_header = UDP(sport=4500, dport=4500, chksum=0)
//! sa = SecurityAssociation(...); sa.crypt_algo = gcm16
//! ```
//!
//! The model decapsulates scapy's default packets back to the inner packets (a peer may
//! pad to 4 bytes), and its own encapsulation of the inner packets equals `espo` byte for
//! byte.

mod common;
use common::*;
use espo_fpga::{AlgId, SaEntry, SaState, Status};
use espo_model::{MemLink, ModelParams};

struct Vector {
    name: &'static str,
    key: &'static str,
    seq: u64,
    inner: &'static str,
    /// scapy's packet with its defaults: 4-byte ESP alignment, IPv4 ID 1, TOS 0.
    esp: &'static str,
    /// scapy's packet built to espo's rules (`gcm16`, the `tunnel_header` fields above).
    espo: &'static str,
}

const VECTORS: &[Vector] = &[
    Vector {
        name: "gcm128-4in4",
        key: "0102030405060708090a0b0c0d0e0f1011121314",
        seq: 1,
        inner: "452a005800014000401126520a0b00010a0c0001303900350044d8be6573706f2d6d6f64656c20696e646570656e64656e7420766563746f72206573706f2d6d6f64656c20696e646570656e64656e7420766563746f7220",
        esp: "45000090000100004032f637c0000201c000020200001001000000010000000000000001905119b5d0d0ed11da8d05f1743fd17cceb57c0c0702bc544e092a5d8f854de4d7a54f5ed53032f46b620735591d83cc00758e8d7f4f23af10f23573c589abaf767752b8bb9256e28a1c3fa42720789aca2664fa9264dff8a34409195d2e71d230bcb8aa44a39742b448657d",
        espo: "452a0094000140004032b609c0000201c000020200001001000000010000000000000001905119b5d0d0ed11da8d05f1743fd17cceb57c0c0702bc544e092a5d8f854de4d7a54f5ed53032f46b620735591d83cc00758e8d7f4f23af10f23573c589abaf767752b8bb9256e28a1c3fa42720789aca2664fa9264dff8a344081992745df5d386897963c030f796a164646ff696bf",
    },
    Vector {
        name: "gcm128-4in4-seq2",
        key: "0102030405060708090a0b0c0d0e0f1011121314",
        seq: 2,
        inner: "452a005800014000401126520a0b00010a0c0001303900350044d8be6573706f2d6d6f64656c20696e646570656e64656e7420766563746f72206573706f2d6d6f64656c20696e646570656e64656e7420766563746f7220",
        esp: "45000090000100004032f637c0000201c00002020000100100000002000000000000000280d5453b1dbd40fde06a64bffac13aa35cbf5bb483ea1464072d5ceef7640e626ab3a6bb4443da16a3479e61e42f809679e84b0dabcce321e36de745af6b61a44517e06177a84e3a7f185c9f8d145c7c301afccb9c4e626cf7e799dab733b58ed8e0bc53808c5c52c4fbfaf0",
        espo: "452a0094000240004032b608c0000201c00002020000100100000002000000000000000280d5453b1dbd40fde06a64bffac13aa35cbf5bb483ea1464072d5ceef7640e626ab3a6bb4443da16a3479e61e42f809679e84b0dabcce321e36de745af6b61a44517e06177a84e3a7f185c9f8d145c7c301afccb9c4e626cf7e798daf29a2536df642c7b694b0f4dd2357c9da4615b79",
    },
    Vector {
        name: "gcm256-6in4",
        key: "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f60616263",
        seq: 5,
        inner: "628000000044114020010db800010000000000000000000120010db800020000000000000000000103e807d00044dfef763620696e6e6572207061636b657420626f6479763620696e6e6572207061636b657420626f6479763620696e6e6572207061636b657420626f6479",
        esp: "450000a4000100004032f623c0000201c00002020000100100000005000000000000000519c97a29973fa62debd077beae4d54e651ae79301f398d082d7f7ad1199c44ed5ac44f5200a098d0ab99bf99aad3ecf16e1f635cca11467d4998118b959b7a5c08b0350b1997b60a64f0b5c2289cb3df7c73b51505874fb54465728292bca022dbf2dc03676bc8ef57d32e1512f729eb1b9715d761313905a5969ab45cb2cd1a",
        espo: "452800a4000540004032b5f7c0000201c00002020000100100000005000000000000000519c97a29973fa62debd077beae4d54e651ae79301f398d082d7f7ad1199c44ed5ac44f5200a098d0ab99bf99aad3ecf16e1f635cca11467d4998118b959b7a5c08b0350b1997b60a64f0b5c2289cb3df7c73b51505874fb54465728292bca022dbf2dc03676bc8ef57d32e1512f729eb1b9715d761313905a5969ab45cb2cd1a",
    },
    Vector {
        name: "gcm128-4in6",
        key: "0102030405060708090a0b0c0d0e0f1011121314",
        seq: 7,
        inner: "452a005800014000401126520a0b00010a0c0001303900350044d8be6573706f2d6d6f64656c20696e646570656e64656e7420766563746f72206573706f2d6d6f64656c20696e646570656e64656e7420766563746f7220",
        esp: "60000000007c324020010db800000000000000000000000120010db80000000000000000000000020000100100000007000000000000000791341d95e38e80be5ef5709619db1c79ba416133840feb5436cb6c1ea28d4ba56fec8c121f0b3c1c66d6c60a51d9a32bb2c264d98fbd2f07c431edacca50f753a317dcc15c964c7ec15d7e28ff2542c55ef023031fae0fa6a0874b23e5e9b14b0e30665be7f7ae542ae8c954",
        espo: "62a000000080324020010db800000000000000000000000120010db80000000000000000000000020000100100000007000000000000000791341d95e38e80be5ef5709619db1c79ba416133840feb5436cb6c1ea28d4ba56fec8c121f0b3c1c66d6c60a51d9a32bb2c264d98fbd2f07c431edacca50f753a317dcc15c964c7ec15d7e28ff2542c55ef023031fae0fa6a0874a23dcf5a74200ac067dcbd623aa21881f6b2016ee3a",
    },
    Vector {
        name: "gcm128-esn",
        key: "0102030405060708090a0b0c0d0e0f1011121314",
        seq: 4294967299,
        inner: "452a005800014000401126520a0b00010a0c0001303900350044d8be6573706f2d6d6f64656c20696e646570656e64656e7420766563746f72206573706f2d6d6f64656c20696e646570656e64656e7420766563746f7220",
        esp: "45000090000100004032f637c0000201c000020200001001000000030000000100000003e8bcf0cd1007af3bf7be74d1d804332070c0212a855ffe1aa1a26b67c7bd41cabf51774603506cffc71a9cf5164c2fdee74b9109ad07514f65cb328733d8c5a467d24606186ca1e25dd9789550ab4917cd0e7ffab025f91125810c5181dd1081944dbe745aad1a31902025e6",
        espo: "452a0094000340004032b607c0000201c000020200001001000000030000000100000003e8bcf0cd1007af3bf7be74d1d804332070c0212a855ffe1aa1a26b67c7bd41cabf51774603506cffc71a9cf5164c2fdee74b9109ad07514f65cb328733d8c5a467d24606186ca1e25dd9789550ab4917cd0e7ffab025f91125810d51f02af4a7fbee0db810fda5c248fe1f53f5b55f46",
    },
    Vector {
        name: "gcm128-natt",
        key: "0102030405060708090a0b0c0d0e0f1011121314",
        seq: 9,
        inner: "452a005800014000401126520a0b00010a0c0001303900350044d8be6573706f2d6d6f64656c20696e646570656e64656e7420766563746f72206573706f2d6d6f64656c20696e646570656e64656e7420766563746f7220",
        esp: "45000098000100004011f650c0000201c0000202119411940084000000001001000000090000000000000009894981bd030fab7eb924771ad5935b0ba553c86b7b41a23d5582a8ed14e7251479e4b4a1e0bfcf9a113e0685659d3ceaa5f5ab0203cad6330a287a2449b313ba3256abdce15bd7751eadb10d9b163616faa7e98256831905da3939e8a88e9e082e99111ca9bbbb0ee27fa3f6",
        espo: "452a009c000940004011b61ac0000201c0000202119411940088000000001001000000090000000000000009894981bd030fab7eb924771ad5935b0ba553c86b7b41a23d5582a8ed14e7251479e4b4a1e0bfcf9a113e0685659d3ceaa5f5ab0203cad6330a287a2449b313ba3256abdce15bd7751eadb10d9b163616faa7e98256831905da3938e89ad6a3d05e5a202283c1def6eab430ea19330953",
    },
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn eth(ip: &[u8]) -> Vec<u8> {
    let ethertype: [u8; 2] = if ip[0] >> 4 == 6 {
        [0x86, 0xDD]
    } else {
        [0x08, 0x00]
    };
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype);
    f.extend_from_slice(ip);
    f
}

fn sa_for(v: &Vector, outbound: bool) -> SaEntry {
    let key = unhex(v.key);
    let esp = unhex(v.esp);
    let outer_ipv6 = esp[0] >> 4 == 6;
    let mut e = SaEntry {
        outbound,
        outer_ipv6,
        esn: v.name.contains("esn"),
        udp_encap: v.name.contains("natt"),
        spi: 0x1001,
        alg: Some(if key.len() == 36 {
            AlgId::AesGcm256
        } else {
            AlgId::AesGcm128
        }),
        replay_window: 64,
        udp_src_port: 4500,
        udp_dst_port: 4500,
        seq: v.seq - 1,
        ..SaEntry::default()
    };
    let klen = key.len() - 4;
    e.key[..klen].copy_from_slice(&key[..klen]);
    e.salt.copy_from_slice(&key[klen..]);
    if outer_ipv6 {
        e.src_addr.copy_from_slice(&esp[8..24]);
        e.dst_addr.copy_from_slice(&esp[24..40]);
    } else {
        e.src_addr[..4].copy_from_slice(&esp[12..16]);
        e.dst_addr[..4].copy_from_slice(&esp[16..20]);
    }
    e
}

fn host_with_link() -> (Host, MemLink) {
    let mut host = Host::new(ModelParams::default());
    let (a, b) = MemLink::pair();
    host.model.attach_link(Box::new(a));
    host.bring_up(1, 5);
    (host, b)
}

#[test]
fn decapsulates_scapy_esp_to_the_inner_packets() {
    for v in VECTORS {
        let (mut host, peer) = host_with_link();
        let sa = sa_for(v, false);
        // ESN: the window must already sit in the right 2^32 subspace; import it.
        let state = SaState {
            seq: v.seq - 1,
            window: 64,
            ..SaState::default()
        };
        assert_eq!(
            host.sa_write(3, &sa, sa.esn.then_some(&state)),
            Status::Ok,
            "{}",
            v.name
        );
        peer.send_bytes(&eth(&unhex(v.esp)));
        host.model.run_until_idle();
        let got = host.rx_completions(0);
        assert_eq!(got.len(), 1, "{}", v.name);
        let (c, data) = &got[0];
        assert_eq!(c.status, Status::Ok, "{}", v.name);
        assert!(c.decapsulated);
        assert_eq!((c.sa_index, c.spi, c.seq), (3, 0x1001, v.seq), "{}", v.name);
        assert_eq!(c.udp_encap, sa.udp_encap);
        assert_eq!(
            &data[14..],
            unhex(v.inner).as_slice(),
            "{}: inner packet",
            v.name
        );
        assert_eq!(&data[..12], &eth(&[0x45])[..12], "MAC addresses kept");
    }
}

#[test]
fn encapsulation_matches_scapy_byte_for_byte() {
    for v in VECTORS {
        let (mut host, peer) = host_with_link();
        let sa = sa_for(v, true);
        assert_eq!(host.sa_write(0, &sa, None), Status::Ok, "{}", v.name);
        let inner = unhex(v.inner);
        host.post_tx(0, &[(&eth(&inner), Some(0))]);
        host.model.run_until_idle();
        let cpl = host.tx_completions(0);
        assert_eq!(
            (cpl.len(), cpl[0].status, cpl[0].seq),
            (1, Status::Ok, v.seq),
            "{}",
            v.name
        );
        let frames = peer.drain();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            &frames[0].data[14..],
            unhex(v.espo).as_slice(),
            "{}: outer header, ESP header, IV, ciphertext, padding, ICV",
            v.name
        );
    }
}

#[test]
fn the_espo_vectors_decapsulate_too() {
    for v in VECTORS {
        let (mut host, peer) = host_with_link();
        let sa = sa_for(v, false);
        let state = SaState {
            seq: v.seq - 1,
            window: 64,
            ..SaState::default()
        };
        assert_eq!(host.sa_write(0, &sa, Some(&state)), Status::Ok);
        peer.send_bytes(&eth(&unhex(v.espo)));
        host.model.run_until_idle();
        let got = host.rx_completions(0);
        assert_eq!(got[0].0.status, Status::Ok, "{}", v.name);
        assert_eq!(&got[0].1[14..], unhex(v.inner).as_slice(), "{}", v.name);
    }
}
