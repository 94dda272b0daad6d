//! RTL unit benches of the crypto units: AES against FIPS-197 Appendix C, GCM against the
//! test cases of the GCM specification (McGrew & Viega, "The Galois/Counter Mode of
//! Operation", Appendix B) and against an independent implementation on random inputs.

use espo_rtl::Rtl;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn block(s: &str) -> [u8; 16] {
    hex(s).try_into().expect("16 bytes")
}

#[test]
fn aes_matches_fips197_appendix_c() {
    let mut rtl = Rtl::new();
    let pt = block("00112233445566778899aabbccddeeff");
    let c1 = rtl
        .aes_encrypt(&hex("000102030405060708090a0b0c0d0e0f"), &[pt])
        .expect("AES-128");
    assert_eq!(
        c1,
        vec![block("69c4e0d86a7b0430d8cdb78070b4c55a")],
        "C.1 AES-128"
    );
    let k256 = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let c3 = rtl.aes_encrypt(&k256, &[pt]).expect("AES-256");
    assert_eq!(
        c3,
        vec![block("8ea2b7ca516745bfeafc49904b496089")],
        "C.3 AES-256"
    );
    // FIPS-197 Appendix B (AES-128).
    let b = rtl
        .aes_encrypt(
            &hex("2b7e151628aed2a6abf7158809cf4f3c"),
            &[block("3243f6a8885a308d313198a2e0370734")],
        )
        .expect("AES-128");
    assert_eq!(
        b,
        vec![block("3925841d02dc09fbdc118597196a0b32")],
        "Appendix B"
    );
}

#[test]
fn aes_keys_change_every_cycle_without_stalls() {
    // Blocks of different keys back to back: each keeps its own on-the-fly key schedule.
    let mut rtl = Rtl::new();
    let k128 = hex("000102030405060708090a0b0c0d0e0f");
    let k256 = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let pt = block("00112233445566778899aabbccddeeff");
    let mut expected = Vec::new();
    for i in 0..20u8 {
        let key = if i % 2 == 0 { &k128 } else { &k256 };
        let mut p = pt;
        p[0] ^= i;
        let out = rtl.aes_encrypt(key, &[p]).expect("aes");
        expected.push((key.clone(), p, out[0]));
    }
    // Now all at once: each block its own key, one per cycle.
    for (key, p, c) in &expected {
        assert_eq!(rtl.aes_encrypt(key, &[*p]).expect("aes")[0], *c);
    }
    let many: Vec<[u8; 16]> = (0..64u8).map(|i| [i; 16]).collect();
    let out = rtl.aes_encrypt(&k256, &many).expect("aes");
    use aes::cipher::{BlockEncrypt, KeyInit};
    let soft = aes::Aes256::new_from_slice(&k256).expect("key");
    for (p, c) in many.iter().zip(&out) {
        let mut b = aes::Block::clone_from_slice(p);
        soft.encrypt_block(&mut b);
        assert_eq!(b.as_slice(), c);
    }
}

struct GcmCase {
    key: &'static str,
    iv: &'static str,
    aad: &'static str,
    pt: &'static str,
    ct: &'static str,
    tag: &'static str,
}

const P60: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const P64: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const A20: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const K128: &str = "feffe9928665731c6d6a8f9467308308";
const K256: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
const IV: &str = "cafebabefacedbaddecaf888";

/// GCM specification test cases 1-4 (AES-128) and 13-16 (AES-256): the 96-bit IV ones.
const GCM_SPEC: &[GcmCase] = &[
    GcmCase {
        key: "00000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "",
        ct: "",
        tag: "58e2fccefa7e3061367f1d57a4e7455a",
    },
    GcmCase {
        key: "00000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "00000000000000000000000000000000",
        ct: "0388dace60b6a392f328c2b971b2fe78",
        tag: "ab6e47d42cec13bdf53a67b21257bddf",
    },
    GcmCase {
        key: K128,
        iv: IV,
        aad: "",
        pt: P64,
        ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
    },
    GcmCase {
        key: K128,
        iv: IV,
        aad: A20,
        pt: P60,
        ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        tag: "5bc94fbc3221a5db94fae95ae7121a47",
    },
    GcmCase {
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "",
        ct: "",
        tag: "530f8afbc74536b9a963b4f1c4cb738b",
    },
    GcmCase {
        key: "0000000000000000000000000000000000000000000000000000000000000000",
        iv: "000000000000000000000000",
        aad: "",
        pt: "00000000000000000000000000000000",
        ct: "cea7403d4d606b6e074ec5d3baf39d18",
        tag: "d0d1c8a799996bf0265b98b5d48ab919",
    },
    GcmCase {
        key: K256,
        iv: IV,
        aad: "",
        pt: P64,
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
        tag: "b094dac5d93471bdec1a502270e3cc6c",
    },
    GcmCase {
        key: K256,
        iv: IV,
        aad: A20,
        pt: P60,
        ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
];

#[test]
fn gcm_matches_the_specification_test_cases() {
    let mut rtl = Rtl::new();
    for (n, c) in GCM_SPEC.iter().enumerate() {
        let iv: [u8; 12] = hex(c.iv).try_into().expect("96-bit IV");
        let sealed = rtl
            .gcm_seal(&hex(c.key), &iv, &hex(c.aad), &hex(c.pt))
            .expect("seal");
        assert_eq!(sealed.text, hex(c.ct), "case {n}: ciphertext");
        assert_eq!(sealed.tag.to_vec(), hex(c.tag), "case {n}: tag");
        let opened = rtl
            .gcm_open(&hex(c.key), &iv, &hex(c.aad), &hex(c.ct))
            .expect("open");
        assert_eq!(opened.text, hex(c.pt), "case {n}: plaintext");
        assert_eq!(
            opened.tag.to_vec(),
            hex(c.tag),
            "case {n}: tag over the ciphertext"
        );
    }
}

#[test]
fn gcm_costs_two_slots_plus_one_per_block() {
    // Latency of a message: H, J0 (+ AAD blocks) and one slot per text block, then the AES
    // pipeline and two cycles of GHASH finalisation. Issue cost is what limits throughput.
    let mut rtl = Rtl::new();
    let iv = [7u8; 12];
    let key = [1u8; 16];
    let short = rtl
        .gcm_seal(&key, &iv, &[0; 8], &[0; 16])
        .expect("seal")
        .cycles;
    let long = rtl
        .gcm_seal(&key, &iv, &[0; 8], &[0; 16 * 11])
        .expect("seal")
        .cycles;
    assert_eq!(long - short, 10, "one cycle per extra 16-byte block");
}
