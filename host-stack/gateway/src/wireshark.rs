//! Wireshark's decryption tables for the SAs a gateway holds, so that `tshark` (or
//! Wireshark) decodes a capture of the outside: the ESP SA table (`esp_sa`, Preferences →
//! Protocols → ESP) for every ESP SA, and the IKEv2 table (`ikev2_decryption_table`) for
//! the IKE SAs key management holds.
//!
//! Both hold keys. espo writes them only on request, over the control socket (root's
//! only), into files only root can read, and never prints them.

use std::fmt::Write as _;

use espo_ipsec::crypto::{EncryptionAlgorithm, IntegrityAlgorithm};
use espo_ipsec::spec::{SaProtocol, SaSpec};

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Wireshark's name of an ESP encryption algorithm.
fn encryption_name(e: EncryptionAlgorithm) -> &'static str {
    match e {
        EncryptionAlgorithm::AesGcm128 | EncryptionAlgorithm::AesGcm256 => {
            "AES-GCM with 16 octet ICV [RFC4106]"
        }
        EncryptionAlgorithm::ChaCha20Poly1305 => "ChaCha20 with Poly1305 [RFC7634]",
        EncryptionAlgorithm::AesCbc128 | EncryptionAlgorithm::AesCbc256 => "AES-CBC [RFC3602]",
        EncryptionAlgorithm::Null => "NULL",
    }
}

/// Wireshark's name of an ESP integrity algorithm.
fn integrity_name(i: Option<IntegrityAlgorithm>) -> &'static str {
    match i {
        None => "NULL",
        Some(IntegrityAlgorithm::HmacSha256_128) => "HMAC-SHA-256-128 [RFC4868]",
        Some(IntegrityAlgorithm::HmacSha384_192) => "HMAC-SHA-384-192 [RFC4868]",
        Some(IntegrityAlgorithm::HmacSha512_256) => "HMAC-SHA-512-256 [RFC4868]",
    }
}

/// The ESP SA table: one line per ESP SA (AH SAs have nothing to decrypt), in Wireshark's
/// UAT syntax — protocol, source, destination, SPI, encryption, its key (an AEAD key with
/// its salt), authentication, its key.
pub fn esp_table<'a>(sas: impl IntoIterator<Item = &'a SaSpec>) -> String {
    let mut out = String::new();
    for sa in sas {
        if sa.protocol != SaProtocol::Esp {
            continue;
        }
        let Some(encryption) = sa.encryption else {
            continue;
        };
        let key = sa
            .key
            .as_ref()
            .map(|k| hex(k.as_bytes()))
            .unwrap_or_default();
        let integrity_key = sa
            .integrity_key
            .as_ref()
            .map(|k| format!("0x{}", hex(k.as_bytes())))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\"{}\",\"{}\",\"{}\",\"{:#010x}\",\"{}\",\"0x{key}\",\"{}\",\"{integrity_key}\"",
            if sa.src.is_ipv4() { "IPv4" } else { "IPv6" },
            sa.src,
            sa.dst,
            sa.spi,
            encryption_name(encryption),
            integrity_name(sa.integrity),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use espo_ipsec::crypto::SecretKey;
    use espo_ipsec::spec::{DEFAULT_TTL, DfMode, Direction, Lifetime, SaMode};

    fn sa(encryption: EncryptionAlgorithm, integrity: Option<IntegrityAlgorithm>) -> SaSpec {
        SaSpec {
            spi: 0x1001,
            dir: Some(Direction::Out),
            protocol: SaProtocol::Esp,
            mode: SaMode::Tunnel,
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            encryption: Some(encryption),
            key: Some(SecretKey::from_slice(&[0xab; 20])),
            integrity,
            integrity_key: integrity.map(|_| SecretKey::from_slice(&[0xcd; 32])),
            esn: false,
            seq: 0,
            replay_window: 0,
            udp_encap: None,
            ttl: DEFAULT_TTL,
            df: DfMode::Copy,
            lifetime: Lifetime::default(),
        }
    }

    #[test]
    fn lines_follow_wiresharks_esp_sa_table() {
        let gcm = sa(EncryptionAlgorithm::AesGcm128, None);
        let cbc = sa(
            EncryptionAlgorithm::AesCbc128,
            Some(IntegrityAlgorithm::HmacSha256_128),
        );
        let table = esp_table([&gcm, &cbc]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x00001001\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x{}\",\"NULL\",\"\"",
                "ab".repeat(20)
            )
        );
        assert!(lines[1].ends_with(&format!(
            "\"AES-CBC [RFC3602]\",\"0x{}\",\"HMAC-SHA-256-128 [RFC4868]\",\"0x{}\"",
            "ab".repeat(20),
            "cd".repeat(32)
        )));
    }
}
