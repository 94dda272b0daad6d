//! Seal throughput of the crypto layer, one core.
//!
//! For each payload size (64, 512, 1420, 8192 bytes):
//! - `ring-aes-128-gcm`: raw AEAD seal through `espo_ipsec::crypto::Aead` (ring) — the
//!   baseline every other figure is read against;
//! - `rustcrypto-aes-128-gcm`: the same with RustCrypto `aes-gcm`, the independent
//!   implementation the card model uses;
//! - `ring-chacha20-poly1305`: raw AEAD seal, ChaCha20-Poly1305;
//! - `esp-aes-128-gcm`: `EspTransform::seal` (IV and AAD construction around the raw seal);
//! - `esp-aes-128-cbc-hmac-sha256`: `EspTransform::seal` on the CBC + HMAC path (random IV,
//!   AES-CBC, truncated HMAC-SHA-256). CBC encrypts the size rounded up to 16 bytes, as
//!   ESP padding would; throughput counts the payload size.
//!
//! Throughput is in payload bytes. The raw seals reuse one nonce: harmless for a
//! measurement, never done outside one.

use std::hint::black_box;

use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use espo_ipsec::crypto::{
    Aead, AeadAlgorithm, ESP_HEADER_LEN, EncryptionAlgorithm, EspTransform, IntegrityAlgorithm,
};

const SIZES: [usize; 4] = [64, 512, 1420, 8192];
const KEY: [u8; 36] = [0x42; 36];
const NONCE: [u8; 12] = [0x24; 12];
const AAD: [u8; 8] = [0, 0, 0x10, 0x01, 0, 0, 0, 1];

fn raw_seal(c: &mut Criterion, group: &str, algorithm: AeadAlgorithm) {
    let aead = Aead::new(algorithm, &KEY[..algorithm.key_len()]).expect("bench key");
    let mut g = c.benchmark_group("seal");
    for size in SIZES {
        let mut buf = vec![0xa5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new(group, size), |b| {
            b.iter(|| black_box(aead.seal(&NONCE, &AAD, black_box(&mut buf))))
        });
    }
    g.finish();
}

fn rustcrypto_seal(c: &mut Criterion) {
    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&KEY[..16]).expect("bench key");
    let nonce = aes_gcm::Nonce::from(NONCE);
    let mut g = c.benchmark_group("seal");
    for size in SIZES {
        let mut buf = vec![0xa5u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("rustcrypto-aes-128-gcm", size), |b| {
            b.iter(|| {
                black_box(cipher.encrypt_inout_detached(
                    &nonce,
                    &AAD,
                    black_box(&mut buf[..]).into(),
                ))
            })
        });
    }
    g.finish();
}

fn esp_seal(c: &mut Criterion, group: &str, transform: &EspTransform) {
    let mut g = c.benchmark_group("seal");
    for size in SIZES {
        let payload = size.next_multiple_of(transform.pad_align());
        let mut esp = vec![0xa5u8; transform.payload_offset() + payload + transform.icv_len()];
        esp[..4].copy_from_slice(&0x1001u32.to_be_bytes());
        let mut seq = 0u64;
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new(group, size), |b| {
            b.iter(|| {
                seq += 1;
                esp[4..ESP_HEADER_LEN].copy_from_slice(&(seq as u32).to_be_bytes());
                black_box(transform.seal(black_box(&mut esp), seq, true))
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    raw_seal(c, "ring-aes-128-gcm", AeadAlgorithm::Aes128Gcm);
    rustcrypto_seal(c);
    raw_seal(c, "ring-chacha20-poly1305", AeadAlgorithm::ChaCha20Poly1305);
    let gcm = EspTransform::new(EncryptionAlgorithm::AesGcm128, &KEY[..20], None).expect("gcm");
    esp_seal(c, "esp-aes-128-gcm", &gcm);
    let cbc = EspTransform::new(
        EncryptionAlgorithm::AesCbc128,
        &KEY[..16],
        Some((IntegrityAlgorithm::HmacSha256_128, &KEY[..32])),
    )
    .expect("cbc");
    esp_seal(c, "esp-aes-128-cbc-hmac-sha256", &cbc);
}

criterion_group!(aead, benches);
criterion_main!(aead);
